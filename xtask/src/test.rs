//! `cargo xtask demo` and `cargo xtask test`.

use std::process::Command;

use anyhow::{bail, Result};

use crate::{
    build::{self, clean_cmd},
    cache::{self, run},
    go,
};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Seconds per fuzz target in `cargo xtask test`.
const FUZZ_SECONDS: u64 = 30;

/// Builds everything and traces the demo workload.
pub fn demo() -> Result<()> {
    let bin = build::build(false)?;
    let demo = cache::target_dir().join("demo/demo");
    go::build(
        go::DEMO_VERSION,
        &cache::root().join("demo"),
        &demo,
        &[],
        &[],
    )?;
    let mut c = if is_root() {
        Command::new(&bin)
    } else {
        eprintln!("xtask: map-trace needs root to load eBPF programs; running it with sudo");
        let mut c = Command::new("sudo");
        c.arg(&bin);
        c
    };
    let report = cache::target_dir().join("demo/report.html");
    let trace = cache::target_dir().join("demo/trace.json");
    c.arg("--report")
        .arg(&report)
        .arg("--trace-out")
        .arg(&trace)
        .arg("--")
        .arg(&demo);
    run(&mut c)?;
    eprintln!(
        "xtask: also written: {} (open in a browser) and {} (open in ui.perfetto.dev)",
        report.display(),
        trace.display()
    );
    Ok(())
}

/// Unit tests, then the privileged end-to-end tests.
pub fn test() -> Result<()> {
    let root = cache::root();
    // Unit tests: no privileges, no eBPF object needed.
    run(clean_cmd("cargo")
        .args(["test", "--workspace", "--exclude", "map-trace-e2e"])
        .current_dir(&root))?;
    if !is_root() {
        bail!("the end-to-end tests attach uprobes and must run as root (e.g. sudo -E cargo xtask test)");
    }
    let bin = build::build(false)?;
    go::ensure_all()?;
    // The call-site rule's data: what each release's standard library holds.
    go::check_std_packages()?;
    let fixtures = go::fixtures()?;
    // Large Go programs nobody here wrote: the go commands of a classic and a Swiss release.
    let real_programs: Vec<String> = go::REAL_PROGRAM_VERSIONS
        .iter()
        .map(|v| go::ensure(v).map(|p| p.display().to_string()))
        .collect::<Result<_>>()?;
    // Independent checkers for the agent's outputs and manifests: Debian's Prometheus server and
    // promtool, and kubernetes-validate with its offline schemas (both in the xtask cache).
    let prometheus = crate::tools::prometheus()?;
    let kv = crate::tools::kubernetes_validate()?;
    let python = crate::tools::python()?;
    // Renders `--report` pages (DOM, console errors, a screenshot).
    let chromium = crate::tools::chromium()?;
    run(clean_cmd("cargo")
        .args([
            "test",
            "--package",
            "map-trace-e2e",
            "--",
            "--test-threads=1",
        ])
        .current_dir(&root)
        .env("MAP_TRACE_BIN", &bin)
        .env("MAP_TRACE_FIXTURES", &fixtures)
        .env("MAP_TRACE_GO_VERSIONS", go::TEST_VERSIONS.join(","))
        .env(
            "MAP_TRACE_NOBUILDINFO_VERSIONS",
            go::NOBUILDINFO_VERSIONS.join(","),
        )
        .env("MAP_TRACE_REAL_PROGRAMS", real_programs.join(","))
        .env("MAP_TRACE_PROMETHEUS_DIR", &prometheus)
        .env("MAP_TRACE_PYTHON", python)
        .env("MAP_TRACE_KV_PYTHONPATH", &kv)
        .env("MAP_TRACE_CHROMIUM", &chromium))?;
    // The real binary inside QEMU guests: arm64 and amd64, kernels 5.10 to 6.12.
    crate::vm::vm_test()?;
    // Bounded fuzzing of the parsers and the decoder (the corpus lives in fuzz/corpus).
    crate::fuzz::fuzz(FUZZ_SECONDS)?;
    Ok(())
}
