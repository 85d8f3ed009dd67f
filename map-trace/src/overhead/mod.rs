//! What the probes cost the traced program, and the `--max-overhead` budget.
//!
//! A probe hit is a trap into the kernel on the traced thread: ~0.3–1 µs on bare metal, ~14 µs on
//! some VMs. map-trace measures it at start-up by probing one of its own functions
//! ([`calibrate`]), multiplies it by the hits each probe family took, and compares that with the
//! CPU time the target used over the same window. Opt-in families whose share exceeds the budget
//! are detached. When the default families alone exceed it, the costliest of them are shed
//! first, keeping the events: the single-stepped Swiss resize timing (`timed_resizes`; the
//! events then come untimed from the body probes), then the growth-end probe (`growth_ends`;
//! ends are then inferred from each map's next grow). The plain event probes (`maps`) stay.

pub mod governor;

use std::{hint::black_box, time::Instant};

use anyhow::{bail, Context, Result};
use map_trace_common::{config::Counter, names};

use crate::{
    plan::ProbeSite,
    probes::{Probes, Scope, TakenLink},
};

/// A group of probes that is attached, costed and detached together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// The default map probes: `hashGrow`, or the Swiss `growToTable`/`rehash` bodies.
    Maps,
    /// The default probe on the block that ends a classic growth.
    GrowthEnds,
    /// The default probes on the RETs of Swiss `rehash` (or `grow`/`split`), which time each
    /// table resize; single-stepped.
    TimedResizes,
    /// `--evacuation`: every `evacuate*` call, body and RETs.
    Evacuation,
    /// `--slices`: every `growslice` call, body and RETs.
    Slices,
    /// `--small-maps`: every Swiss map's first group.
    SmallMaps,
}

impl Family {
    /// Every family, in report order.
    pub const ALL: [Family; 6] = [
        Family::Maps,
        Family::GrowthEnds,
        Family::TimedResizes,
        Family::Evacuation,
        Family::Slices,
        Family::SmallMaps,
    ];

    /// The family an eBPF program belongs to.
    pub fn of(program: &str) -> Family {
        match program {
            names::PROG_HMAP_EVACUATE | names::PROG_HMAP_EVACUATE_RET => Family::Evacuation,
            names::PROG_SLICE_GROW | names::PROG_SLICE_GROW_RET => Family::Slices,
            names::PROG_SWISS_GROW_TO_SMALL => Family::SmallMaps,
            names::PROG_SWISS_REHASH_RET => Family::TimedResizes,
            p if names::PROG_HMAP_EVACUATED.contains(&p) => Family::GrowthEnds,
            _ => Family::Maps,
        }
    }

    /// Name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Family::Maps => "maps",
            Family::GrowthEnds => "growth_ends",
            Family::TimedResizes => "timed_resizes",
            Family::Evacuation => "evacuation",
            Family::Slices => "slices",
            Family::SmallMaps => "small_maps",
        }
    }

    /// The flag that enables an opt-in family; `None` for the default ones.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Family::Evacuation => Some("--evacuation"),
            Family::Slices => Some("--slices"),
            Family::SmallMaps => Some("--small-maps"),
            Family::Maps | Family::GrowthEnds | Family::TimedResizes => None,
        }
    }

    /// The default families a budget may shed, costliest first: what each one's loss costs the
    /// user (a duration; an exact end) is smaller than the next one's (the events).
    pub const SHED_ORDER: [Family; 2] = [Family::TimedResizes, Family::GrowthEnds];

    /// Estimated nanoseconds its probes added: each hit's trap at the calibrated cost (from
    /// their counters' hits, `hits_of`), plus the time its handlers took, which the eBPF side
    /// measures (the calibration probe's handler is empty; the real ones read target memory
    /// and walk the stack). `stepped_growth_ends`: the growth-end probe sits on the
    /// single-stepped store fallback.
    pub fn estimate_ns(
        self,
        cost: &HitCost,
        hits_of: impl Fn(Counter) -> u64,
        stepped_growth_ends: bool,
    ) -> u64 {
        let traps: f64 = self
            .counters()
            .iter()
            .map(|&c| {
                let hits = hits_of(c);
                if c == Counter::HitsEvacuated && stepped_growth_ends {
                    hits as f64 * cost.stepped_ns
                } else {
                    cost.estimate(c, hits)
                }
            })
            .sum();
        traps as u64 + hits_of(self.handler_counter())
    }

    /// Estimated nanoseconds from a family's own totals, as the agent's per-executable
    /// [`map_trace_common::config::ExeCost`] has them: `hits` program runs at the trap cost
    /// of its kind of probe, plus `handler_ns`. Body and RET hits of the families that have
    /// both are equally many, so they are priced at the mean of the two.
    pub fn estimate_from(
        self,
        cost: &HitCost,
        hits: u64,
        handler_ns: u64,
        stepped_growth_ends: bool,
    ) -> u64 {
        let per = match self {
            Family::Maps | Family::SmallMaps => cost.body_ns,
            Family::GrowthEnds if stepped_growth_ends => cost.stepped_ns,
            Family::GrowthEnds => cost.body_ns,
            Family::TimedResizes => cost.stepped_ns,
            Family::Evacuation | Family::Slices => (cost.body_ns + cost.stepped_ns) / 2.0,
        };
        (hits as f64 * per) as u64 + handler_ns
    }

    /// Its slot in [`map_trace_common::config::ExeCost`] (the order of the `Ns*` counters).
    pub fn cost_slot(self) -> usize {
        (self.handler_counter() as u32 - Counter::NsMaps as u32) as usize
    }

    /// The counter of nanoseconds its handlers took.
    pub fn handler_counter(self) -> Counter {
        match self {
            Family::Maps => Counter::NsMaps,
            Family::GrowthEnds => Counter::NsGrowthEnds,
            Family::TimedResizes => Counter::NsTimedResizes,
            Family::Evacuation => Counter::NsEvacuation,
            Family::Slices => Counter::NsSlices,
            Family::SmallMaps => Counter::NsSmallMaps,
        }
    }

    /// The hit counters of its programs.
    pub fn counters(self) -> &'static [Counter] {
        match self {
            Family::Maps => &[
                Counter::HitsHashGrow,
                Counter::HitsGrowToTable,
                Counter::HitsRehash,
            ],
            Family::GrowthEnds => &[Counter::HitsEvacuated],
            Family::TimedResizes => &[Counter::HitsSwissRet],
            Family::Evacuation => &[Counter::HitsEvacuate, Counter::HitsEvacuateRet],
            Family::Slices => &[Counter::HitsGrowslice, Counter::HitsGrowsliceRet],
            Family::SmallMaps => &[Counter::HitsGrowToSmall],
        }
    }
}

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
            Counter::HitsSwissRet | Counter::HitsGrowsliceRet | Counter::HitsEvacuateRet => {
                self.stepped_ns
            }
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

/// Per-family cost so far, for outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyCost {
    /// The family.
    pub family: Family,
    /// Probe hits (every process the probes saw).
    pub hits: u64,
    /// `hits × cost`.
    pub estimated_ns: u64,
    /// When `--max-overhead` detached it (Unix ns), and the share of the target's CPU time it
    /// took in the window that decided it (percent).
    pub detached: Option<(u64, f64)>,
}

/// Everything the outputs say about overhead.
#[derive(Clone, Debug, PartialEq)]
pub struct Overhead {
    /// Cost of one hit.
    pub hit_cost: HitCost,
    /// Families attached at start, with their hits.
    pub families: Vec<FamilyCost>,
    /// Sum of the estimates.
    pub estimated_ns: u64,
    /// CPU time the target used while traced (from /proc; `None` when it exited first).
    pub target_cpu_ns: Option<u64>,
    /// `--max-overhead`, percent.
    pub budget_percent: Option<f64>,
    /// The event probes were duty-cycled to stay within the budget.
    pub sampling: Option<Sampling>,
}

impl Default for Overhead {
    fn default() -> Self {
        Self {
            hit_cost: HitCost::FALLBACK,
            families: vec![],
            estimated_ns: 0,
            target_cpu_ns: None,
            budget_percent: None,
            sampling: None,
        }
    }
}

/// A family the budget kept measuring by duty-cycling it (attached for a window, detached,
/// again) once it alone was over budget: what was seen from then on is a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// The family (the map event probes).
    pub family: Family,
    /// When cycling began, Unix ns.
    pub since_ns: u64,
    /// Time its probes were attached since then, ns.
    pub attached_ns: u64,
    /// Time elapsed since then until tracing stopped, ns.
    pub elapsed_ns: u64,
    /// Records the ring buffer had lost before cycling began (those lost after it are events
    /// of the sample too).
    pub lost_before: u64,
}

impl Sampling {
    /// The share of the time since cycling began that the probes were attached (0–1].
    ///
    /// Scaling by it is right for a target whose work comes at its own pace (a service
    /// answering requests): the probes add CPU time but do not change how many events happen
    /// per second. A target that is CPU-bound (a batch job) does less work per second while its
    /// probes trap, so the scaled count is then a lower bound.
    pub fn coverage(&self) -> f64 {
        if self.elapsed_ns == 0 {
            1.0
        } else {
            (self.attached_ns as f64 / self.elapsed_ns as f64).clamp(1e-6, 1.0)
        }
    }

    /// Events seen while sampling, scaled to the whole time: `seen / coverage`.
    pub fn scale(&self, seen: u64) -> u64 {
        (seen as f64 / self.coverage()).round() as u64
    }
}

/// The shortest window a cycled family is attached for: long enough for the target to use
/// measurable CPU, and for the attach's own cost (one registration per probe) to be small.
pub const MIN_ON_NS: u64 = 50_000_000;
/// One on+off cycle when the duty allows it (longer when the duty is below
/// `MIN_ON_NS / PERIOD_NS`).
pub const PERIOD_NS: u64 = 1_000_000_000;
/// The lowest duty: one 50 ms window every 5 s.
pub const MIN_DUTY: f64 = 0.01;
/// The duty aims at this fraction of the budget, leaving room for the estimate's error.
const HEADROOM: f64 = 0.8;

/// The duty cycle of a family that alone exceeds the budget (pure logic, clock passed in).
#[derive(Debug, Clone, PartialEq)]
pub struct DutyCycle {
    budget_percent: f64,
    duty: f64,
    on: bool,
    switch_at_ns: u64,
    on_since_ns: u64,
    /// Attached time so far, ns.
    pub attached_ns: u64,
    /// When cycling began (the caller's clock), ns.
    pub since_ns: u64,
}

impl DutyCycle {
    /// Starts at `now_ns` with the family just detached, after it took `share_percent` of
    /// the target's CPU while attached.
    pub fn start(budget_percent: f64, share_percent: f64, now_ns: u64) -> Self {
        let mut c = Self {
            budget_percent,
            duty: 1.0,
            on: false,
            switch_at_ns: now_ns,
            on_since_ns: now_ns,
            attached_ns: 0,
            since_ns: now_ns,
        };
        c.set_duty(share_percent);
        c.switch_at_ns = now_ns + c.off_ns();
        c
    }

    fn set_duty(&mut self, share_percent: f64) {
        self.duty = if share_percent <= 0.0 {
            1.0
        } else {
            (HEADROOM * self.budget_percent / share_percent).clamp(MIN_DUTY, 1.0)
        };
    }

    /// The current duty (share of the time attached).
    pub fn duty(&self) -> f64 {
        self.duty
    }

    /// Whether the family is attached now.
    pub fn is_on(&self) -> bool {
        self.on
    }

    fn on_ns(&self) -> u64 {
        ((self.duty * PERIOD_NS as f64) as u64).max(MIN_ON_NS)
    }

    fn off_ns(&self) -> u64 {
        (self.on_ns() as f64 * (1.0 - self.duty) / self.duty) as u64
    }

    /// When the next switch is due, ns.
    pub fn switch_at_ns(&self) -> u64 {
        self.switch_at_ns
    }

    /// Switches on at `now_ns` (the caller attaches the family).
    pub fn switch_on(&mut self, now_ns: u64) {
        self.on = true;
        self.on_since_ns = now_ns;
        self.switch_at_ns = now_ns + self.on_ns();
    }

    /// Switches off at `now_ns` (the caller detached the family), with the share of the
    /// target's CPU the family took while it was on (`None`: too little CPU to tell). Returns
    /// `false` when that share fits the budget with room to spare: cycling can end and the
    /// family stay attached.
    pub fn switch_off(&mut self, now_ns: u64, share_percent: Option<f64>) -> bool {
        if self.on {
            self.attached_ns += now_ns.saturating_sub(self.on_since_ns);
        }
        self.on = false;
        if let Some(share) = share_percent {
            self.set_duty(share);
        }
        self.switch_at_ns = now_ns + self.off_ns();
        self.duty < 1.0
    }

    /// Attached time until `now_ns`, counting a window still open.
    pub fn attached_until(&self, now_ns: u64) -> u64 {
        self.attached_ns
            + if self.on {
                now_ns.saturating_sub(self.on_since_ns)
            } else {
                0
            }
    }
}

/// A family `--max-overhead` detached.
#[derive(Clone, Debug, PartialEq)]
pub struct Detached {
    /// Unix ns.
    pub time_ns: u64,
    /// Which family.
    pub family: Family,
    /// Its estimated share of the target's CPU time in the deciding window, percent.
    pub share_percent: f64,
    /// The budget, percent.
    pub budget_percent: f64,
    /// Its hits until then.
    pub hits: u64,
    /// Not gone for good: duty-cycled at this duty (share of the time attached) from now on,
    /// because it alone was over budget (the map event probes only).
    pub sampled_duty: Option<f64>,
}

/// Less target CPU time than this in a window decides nothing (a mostly idle target: the window
/// is extended until it has used this much).
pub const MIN_WINDOW_CPU_NS: u64 = 20_000_000;

/// The `--max-overhead` decision, fed cumulative figures once per window (pure logic).
#[derive(Debug)]
pub struct Budget {
    percent: f64,
    /// Estimated ns per family at the start of the window.
    base_spent_ns: Vec<(Family, u64)>,
    base_cpu_ns: Option<u64>,
    warned_default: bool,
}

/// What one budget check decided.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    /// Families to detach, with their share (percent): opt-in families over budget on their
    /// own, then default families in [`Family::SHED_ORDER`] while the default ones together
    /// are over it.
    pub detach: Vec<(Family, f64)>,
    /// The plain event probes alone are over budget (reported once; they stay attached).
    pub default_over: Option<f64>,
}

impl Budget {
    /// A budget of `percent` of the target's CPU time.
    pub fn new(percent: f64) -> Self {
        Self {
            percent,
            base_spent_ns: vec![],
            base_cpu_ns: None,
            warned_default: false,
        }
    }

    /// The budget, percent.
    pub fn percent(&self) -> f64 {
        self.percent
    }

    /// Checks the window since the last decision: `spent_ns` are the cumulative estimated
    /// nanoseconds per attached family (see [`Family::estimate_ns`]), `cpu_ns` the target's
    /// cumulative CPU time.
    pub fn check(&mut self, spent_ns: &[(Family, u64)], cpu_ns: u64) -> Verdict {
        let Some(base_cpu) = self.base_cpu_ns else {
            self.base_cpu_ns = Some(cpu_ns);
            self.base_spent_ns = spent_ns.to_vec();
            return Verdict::default();
        };
        let window = cpu_ns.saturating_sub(base_cpu);
        if window < MIN_WINDOW_CPU_NS {
            return Verdict::default();
        }
        let mut v = Verdict::default();
        let mut default_share = 0.0;
        let mut defaults = vec![];
        for &(family, n) in spent_ns {
            let base = self
                .base_spent_ns
                .iter()
                .find(|(f, _)| *f == family)
                .map_or(0, |(_, b)| *b);
            let share = n.saturating_sub(base) as f64 / window as f64 * 100.0;
            match family.flag() {
                Some(_) if share > self.percent => v.detach.push((family, share)),
                Some(_) => {}
                None => {
                    default_share += share;
                    defaults.push((family, share));
                }
            }
        }
        for shed in Family::SHED_ORDER {
            if default_share <= self.percent {
                break;
            }
            // A family that cost nothing in the window saves nothing when shed.
            if let Some(&(f, share)) = defaults.iter().find(|(f, s)| *f == shed && *s > 0.0) {
                v.detach.push((f, share));
                default_share -= share;
            }
        }
        if default_share > self.percent && !self.warned_default {
            self.warned_default = true;
            v.default_over = Some(default_share);
        }
        self.base_cpu_ns = Some(cpu_ns);
        self.base_spent_ns = spent_ns.to_vec();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_family_of_programs() {
        assert_eq!(Family::of(names::PROG_SLICE_GROW_RET), Family::Slices);
        assert_eq!(
            Family::of(names::PROG_HMAP_EVACUATED[3]),
            Family::GrowthEnds
        );
        assert_eq!(Family::of(names::PROG_HMAP_EVACUATE), Family::Evacuation);
        assert_eq!(Family::of(names::PROG_HMAP_HASH_GROW), Family::Maps);
        assert_eq!(
            Family::of(names::PROG_SWISS_GROW_TO_SMALL),
            Family::SmallMaps
        );
        assert!(Family::Maps.flag().is_none() && Family::GrowthEnds.flag().is_none());
        assert_eq!(
            Family::of(names::PROG_SWISS_REHASH_RET),
            Family::TimedResizes
        );
        assert_eq!(Family::of(names::PROG_SWISS_REHASH), Family::Maps);
    }

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
    fn test_estimate_from_totals_prices_each_kind_of_hit() {
        let c = HitCost {
            body_ns: 1_000.0,
            stepped_ns: 12_000.0,
            calibrated: true,
        };
        assert_eq!(Family::Maps.estimate_from(&c, 10, 500, false), 10_500);
        assert_eq!(
            Family::TimedResizes.estimate_from(&c, 10, 0, false),
            120_000
        );
        assert_eq!(Family::GrowthEnds.estimate_from(&c, 1, 0, true), 12_000);
        assert_eq!(Family::Slices.estimate_from(&c, 2, 0, false), 13_000);
        // Slots follow the Ns counters.
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(f.cost_slot(), i, "{f:?}");
        }
    }

    #[test]
    fn test_budget_detaches_only_opt_in_families_over_budget() {
        // Inputs are estimated ns per family. Budget 5 %.
        let mut b = Budget::new(5.0);
        let v = b.check(&[(Family::Maps, 10), (Family::Slices, 0)], 1_000_000_000);
        assert_eq!(
            v,
            Verdict::default(),
            "the first call only sets the baseline"
        );
        // 1 s of target CPU: slices 980 ms (98 %), maps 0.3 ms.
        let v = b.check(
            &[(Family::Maps, 300_010), (Family::Slices, 980_000_000)],
            2_000_000_000,
        );
        assert_eq!(v.detach.len(), 1);
        assert_eq!(v.detach[0].0, Family::Slices);
        assert!((v.detach[0].1 - 98.0).abs() < 1e-9);
        assert_eq!(v.default_over, None);
        // Under budget: 42 ms in 1 s = 4.2 %.
        let v = b.check(
            &[(Family::Maps, 300_010), (Family::Slices, 1_022_000_000)],
            3_000_000_000,
        );
        assert!(v.detach.is_empty());
    }

    #[test]
    fn test_budget_sheds_timing_then_growth_ends_and_keeps_the_events() {
        let mut b = Budget::new(5.0);
        let zero = [
            (Family::Maps, 0),
            (Family::GrowthEnds, 0),
            (Family::TimedResizes, 0),
        ];
        b.check(&zero, 0);
        // 100 ms of target CPU: timing 4 ms, ends 2 ms, events 2 ms = 8 % > 5 %. Shedding the
        // timing brings it to 4 %: the growth ends stay.
        let v = b.check(
            &[
                (Family::Maps, 2_000_000),
                (Family::GrowthEnds, 2_000_000),
                (Family::TimedResizes, 4_000_000),
            ],
            100_000_000,
        );
        assert_eq!(v.detach.len(), 1);
        assert_eq!(v.detach[0].0, Family::TimedResizes);
        assert_eq!(v.default_over, None);
        // Next window, without the timing: events 3 %, ends 3 %: the ends go, the events stay.
        let v = b.check(
            &[(Family::Maps, 5_000_000), (Family::GrowthEnds, 5_000_000)],
            200_000_000,
        );
        assert_eq!(
            v.detach.iter().map(|d| d.0).collect::<Vec<_>>(),
            vec![Family::GrowthEnds]
        );
        assert_eq!(v.default_over, None);
        // Events alone at 10 %: nothing left to shed; said once.
        let mut idle = Budget::new(5.0);
        idle.check(&zero, 0);
        // A family that cost nothing (no table resize on Swiss) is not shed for nothing.
        let v = idle.check(
            &[
                (Family::Maps, 10_000_000),
                (Family::GrowthEnds, 0),
                (Family::TimedResizes, 0),
            ],
            100_000_000,
        );
        assert!(v.detach.is_empty());
        assert!(v.default_over.is_some());

        let v = b.check(&[(Family::Maps, 15_000_000)], 300_000_000);
        assert!(v.detach.is_empty());
        assert!((v.default_over.unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn test_budget_waits_for_enough_target_cpu_and_warns_once_for_defaults() {
        let mut b = Budget::new(1.0);
        b.check(&[(Family::Maps, 0)], 0);
        // 5 ms of CPU is too little to judge; the window grows.
        assert_eq!(
            b.check(&[(Family::Maps, 10_000_000)], 5_000_000),
            Verdict::default()
        );
        // 25 ms of CPU, 10 ms in probes = 40 %: the defaults stay, reported once.
        let v = b.check(&[(Family::Maps, 10_000_000)], 25_000_000);
        assert!(v.detach.is_empty());
        assert!((v.default_over.unwrap() - 40.0).abs() < 1e-9);
        let v = b.check(&[(Family::Maps, 20_000_000)], 50_000_000);
        assert_eq!(v.default_over, None);
    }

    #[test]
    fn test_duty_cycle_keeps_the_average_share_within_the_budget() {
        // 50 % of the target's CPU while attached, budget 5 %: attached 8 % of the time.
        let mut c = DutyCycle::start(5.0, 50.0, 0);
        assert!((c.duty() - 0.08).abs() < 1e-9);
        assert!(!c.is_on());
        let off = c.switch_at_ns();
        assert_eq!(off, 920_000_000);
        c.switch_on(off);
        assert_eq!(c.switch_at_ns(), off + 80_000_000);
        // The window measured 100 %: the duty halves, and stays above its floor.
        assert!(c.switch_off(off + 80_000_000, Some(100.0)));
        assert!((c.duty() - 0.04).abs() < 1e-9);
        assert_eq!(c.attached_ns, 80_000_000);
        // Very costly: one 50 ms window every 5 s at most.
        assert!(c.switch_off(off + 80_000_000, Some(10_000.0)));
        assert!((c.duty() - MIN_DUTY).abs() < 1e-9);
        let t = c.switch_at_ns();
        c.switch_on(t);
        assert_eq!(c.switch_at_ns() - t, MIN_ON_NS);
        assert_eq!(c.attached_until(t + 10), 80_000_010);
        // Cheap again (2 % < 80 % of 5 %): cycling may end.
        assert!(!c.switch_off(t + MIN_ON_NS, Some(2.0)));
        // The average share over a cycle is the duty times the share while on.
        let c = DutyCycle::start(5.0, 25.0, 0);
        let (on, off) = (c.on_ns() as f64, c.off_ns() as f64);
        assert!((25.0 * on / (on + off) - 4.0).abs() < 1e-6);
    }

    #[test]
    fn test_sampling_scales_what_was_seen() {
        let s = Sampling {
            family: Family::Maps,
            since_ns: 0,
            attached_ns: 250,
            elapsed_ns: 1000,
            lost_before: 0,
        };
        assert!((s.coverage() - 0.25).abs() < 1e-12);
        assert_eq!(s.scale(1000), 4000);
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
