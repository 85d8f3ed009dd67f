//! What one probe hit costs on this host, measured at start-up on a function of map-trace's
//! own.

use std::{hint::black_box, time::Instant};

use anyhow::{bail, Context, Result};
use map_trace_common::{config::Counter, names};

use crate::{
    plan::ProbeSite,
    probes::{Probes, Scope, TakenLink},
};

/// What one probe hit costs on this host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HitCost {
    /// Nanoseconds per hit of a probe on a function's body: its first instruction is the frame
    /// setup (`PUSH RBP` on amd64, which the kernel emulates; `STP` on arm64), as at Go's body
    /// probes.
    pub body_ns: f64,
    /// Nanoseconds per hit of a probe on an instruction the kernel single-steps out of line: a
    /// RET, or the store the growth-end probe sits on.
    pub stepped_ns: f64,
    /// Measured at start-up; `false` when calibration failed and [`HitCost::FALLBACK`] is used.
    pub calibrated: bool,
}

impl HitCost {
    /// Used when calibration fails: a bare-metal-class figure, so estimates err low. Outputs say
    /// the figure was not measured.
    pub const FALLBACK: HitCost = HitCost {
        body_ns: 1500.0,
        stepped_ns: 1500.0,
        calibrated: false,
    };

    /// Estimated nanoseconds for `hits` hits of `counter`'s probes: RETs are single-stepped,
    /// body probes and the growth-end probe (on an instruction the kernel emulates) are not.
    pub fn estimate(&self, counter: Counter, hits: u64) -> f64 {
        let per = match counter {
            // The crash path's probe may sit on a stepped instruction (the Swiss wrapper's
            // stack check; 1.19's `SUBQ`): priced so, for the one or two hits of a crash.
            Counter::HitsSwissRet
            | Counter::HitsGrowsliceRet
            | Counter::HitsEvacuateRet
            | Counter::HitsFatal => self.stepped_ns,
            _ => self.body_ns,
        };
        hits as f64 * per
    }
}

// The function probed at start-up: a frame setup and a RET, the instructions map-trace probes
// in Go code (a body probe lands on the frame setup after the stack check; exit probes on
// RETs). Written in assembly so the probed instructions are known.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
extern "C" fn calibration_point() {
    core::arch::naked_asm!("push rbp", "mov rbp, rsp", "pop rbp", "ret")
}
#[cfg(target_arch = "x86_64")]
const CALIBRATION_RET_OFFSET: u64 = 5;

#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
extern "C" fn calibration_point() {
    core::arch::naked_asm!(
        "stp x29, x30, [sp, #-16]!",
        "mov x29, sp",
        "ldp x29, x30, [sp], #16",
        "ret"
    )
}
#[cfg(target_arch = "aarch64")]
const CALIBRATION_RET_OFFSET: u64 = 12;

/// Calls per timed round, and rounds.
const CALLS: u32 = 400;
const ROUNDS: u32 = 3;

/// Measures the cost of a probe hit: times 400 calls of the calibration function bare, with a
/// uprobe on its first instruction, and with one more on its RET (program
/// [`names::PROG_CALIBRATE`]), best of 3 rounds each. The RET probe's cost is the difference
/// between the last two.
///
/// Returns the cost and the two links, which stay attached: nothing calls the calibration
/// function again, and detaching a uprobe waits for an RCU grace period in the kernel (~100 ms
/// each on this VM's 6.18), which the caller can put where nobody waits for it.
pub fn calibrate(probes: &mut Probes) -> Result<(HitCost, Vec<TakenLink>)> {
    let f: extern "C" fn() = calibration_point;
    let addr = f as *const () as u64;
    let (exe, file_offset) = own_file_offset(addr)?;
    let time = |rounds: u32| {
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..CALLS {
                    black_box(f)();
                }
                t.elapsed().as_nanos() as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    let mut links = vec![];
    // Adds a probe at `offset` and times the calls with every probe so far.
    let mut probed = |offset: u64| -> Result<f64> {
        let site = ProbeSite {
            program: names::PROG_CALIBRATE,
            function: "calibration_point",
            vaddr: addr + offset,
            offset_in_function: offset,
            file_offset: file_offset + offset,
        };
        let before = probes.counter(Counter::Calibration);
        let id = probes.attach(&site, &exe, Scope::Process(std::process::id()))?;
        links.extend(probes.take_link(names::PROG_CALIBRATE, id));
        let t = time(ROUNDS);
        crate::timing::mark("  calibration rounds");
        // Each hit is counted in the trap itself, before the call returns.
        let hits = probes.counter(Counter::Calibration) - before;
        let expected = u64::from(CALLS * ROUNDS) * links.len() as u64;
        if hits != expected {
            bail!("calibration probes hit {hits} times, expected {expected}");
        }
        Ok(t)
    };
    let bare = time(ROUNDS);
    let body = probed(0)?;
    let both = probed(CALIBRATION_RET_OFFSET)?;
    let per_call = |with: f64, without: f64| ((with - without) / f64::from(CALLS)).max(0.0);
    let cost = HitCost {
        body_ns: per_call(body, bare),
        stepped_ns: per_call(both, body),
        calibrated: true,
    };
    Ok((cost, links))
}

/// [`calibrate`], or when it fails, one warning line (starting with `who`) and
/// [`HitCost::FALLBACK`].
pub fn calibrate_or_fallback(probes: &mut Probes, who: &str) -> (HitCost, Vec<TakenLink>) {
    match calibrate(probes) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "{who}: warning: could not measure what a probe hit costs here ({e:#}); \
                 overhead estimates assume {:.1} µs",
                HitCost::FALLBACK.body_ns / 1000.0
            );
            (HitCost::FALLBACK, vec![])
        }
    }
}

/// The file and file offset of `addr` in this process's executable mappings.
fn own_file_offset(addr: u64) -> Result<(std::path::PathBuf, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps").context("reading /proc/self/maps")?;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms), Some(off), _, _, Some(path)) =
            (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi), Ok(off)) = (
            u64::from_str_radix(lo, 16),
            u64::from_str_radix(hi, 16),
            u64::from_str_radix(off, 16),
        ) else {
            continue;
        };
        if (lo..hi).contains(&addr) && perms.contains('x') && path.starts_with('/') {
            return Ok((path.into(), addr - lo + off));
        }
    }
    bail!("map-trace's own code is not in a file mapping")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overhead::Family;

    #[test]
    fn test_hit_cost_estimates_ret_probes_at_their_own_cost() {
        let c = HitCost {
            body_ns: 10_000.0,
            stepped_ns: 4_000.0,
            calibrated: true,
        };
        let est = Family::Slices.estimate_ns(
            &c,
            |k| match k {
                Counter::HitsGrowslice => 100,
                Counter::HitsGrowsliceRet => 100,
                Counter::NsSlices => 55_000,
                _ => 7,
            },
            false,
        );
        assert_eq!(est, 1_400_000 + 55_000);
        // Growth ends: emulated, unless the plan fell back to the store.
        let hits = |k| u64::from(k == Counter::HitsEvacuated) * 10;
        assert_eq!(Family::GrowthEnds.estimate_ns(&c, hits, false), 100_000);
        assert_eq!(Family::GrowthEnds.estimate_ns(&c, hits, true), 40_000);
    }

    #[test]
    fn test_own_file_offset_finds_this_code() {
        let f: extern "C" fn() = calibration_point;
        let addr = f as *const () as u64;
        let (path, off) = own_file_offset(addr).unwrap();
        // The bytes at that file offset are the function's code.
        let file = std::fs::read(&path).unwrap();
        // SAFETY: reads this process's own code at a function's address.
        let mem = unsafe { std::slice::from_raw_parts(addr as *const u8, 8) };
        assert_eq!(&file[off as usize..off as usize + 8], mem);
        // The RET offset is a RET.
        let ret = crate::symbols::ret::ret_offsets(crate::symbols::elf::Arch::host(), mem, 0);
        assert_eq!(ret.first(), Some(&CALIBRATION_RET_OFFSET));
    }
}
