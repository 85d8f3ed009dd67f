//! `cargo xtask bench`: the target's slowdown under tracing, measured side by side in one run.
//!
//! The fixture times its own fill loop (`fill_ns` on stderr), so map-trace's start-up and
//! attach time are not counted: the ratio is what the traced program itself pays. Runs are
//! interleaved (untraced, traced, untraced, …) so machine noise hits both alike; medians are
//! compared. Prints numbers; asserts nothing (this machine is noisy).

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{build, go};

fn fill_ns(stderr: &[u8]) -> Result<u64> {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .find_map(|l| l.strip_prefix("fill_ns "))
        .context("fixture printed no fill_ns")?
        .trim()
        .parse()
        .context("parsing fill_ns")
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn run_once(cmd: &mut Command) -> Result<u64> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    fill_ns(&out.stderr)
}

/// Benchmarks the default mode on N sequential inserts for each test Go version.
pub fn bench() -> Result<()> {
    let bin = build::build(true)?;
    let fixtures = go::fixtures()?;
    let rounds = 7;
    println!(
        "map-trace overhead on a sequential-insert loop (median of {rounds} interleaved runs)"
    );
    println!(
        "{:<10} {:>9} {:>7} {:>13} {:>13} {:>7}",
        "go", "inserts", "grows", "untraced ms", "traced ms", "ratio"
    );
    for v in go::TEST_VERSIONS {
        let fx = fixtures.join(format!("go{v}/growth"));
        for n in ["1000000", "10000000"] {
            let (mut plain, mut traced) = (vec![], vec![]);
            for _ in 0..rounds {
                plain.push(run_once(Command::new(&fx).args(["int", n]))?);
                traced.push(run_once(
                    Command::new(&bin)
                        .args(["-o", "/dev/null", "--"])
                        .arg(&fx)
                        .args(["int", n]),
                )?);
            }
            let (p, t) = (median(&mut plain), median(&mut traced));
            let grows = grows_for(n.parse()?, if v.starts_with("1.21.") { 12 } else { 13 });
            println!(
                "{:<10} {:>9} {:>7} {:>13.2} {:>13.2} {:>7.3}",
                v,
                n,
                grows,
                p as f64 / 1e6,
                t as f64 / 1e6,
                t as f64 / p as f64
            );
        }
    }
    Ok(())
}

fn grows_for(n: u64, lfn: u64) -> u64 {
    let mut b = 0u32;
    let mut grows = 0;
    while !(n <= 8 || (b > 0 && n <= lfn * (1u64 << (b - 1)))) {
        b += 1;
        grows += 1;
    }
    grows
}
