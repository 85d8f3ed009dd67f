//! Project tasks that are not a plain cargo build: toolchain setup, the eBPF build, Go fixtures,
//! the demo and the full test run. Every install goes into one cache directory that xtask owns
//! (`$MAP_TRACE_CACHE`, default `~/.cache/map-trace`); delete it to start from scratch.

mod bench;
mod build;
mod cache;
mod fuzz;
mod go;
mod object;
mod test;
mod tools;
mod vm;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the build and the tests need (idempotent; only what is missing).
    Setup,
    /// Build target/{debug,release}/map-trace with its eBPF object embedded.
    Build {
        /// Optimized build in target/release.
        #[arg(long)]
        release: bool,
    },
    /// Build the Go test programs with every Go toolchain of the test matrix.
    Fixtures,
    /// Install the test-only checkers into the cache: Prometheus + promtool, kubernetes-validate,
    /// headless Chromium.
    TestTools,
    /// Set up, build, and trace the demo Go workload (needs root; uses sudo if available).
    Demo,
    /// Measure overhead side by side with untraced runs and bare kernel probes (root).
    Bench {
        /// Run one section only: slowdown, per-hit, stack-depth, attach, pipeline, agent, modes,
        /// small-maps, sampling or discovery.
        #[arg(long)]
        only: Option<String>,
    },
    /// Run every fuzz target for a bounded time (nightly + cargo-fuzz from the cache).
    Fuzz {
        /// Seconds per target.
        #[arg(default_value_t = 60)]
        seconds: u64,
    },
    /// Rewrite map-trace's list of standard-library packages per Go release from the test
    /// toolchains' `go list std`.
    StdPackages,
    /// Static musl binaries for x86-64 and arm64 with checksums, in target/dist.
    Dist,
    /// Boot Debian kernels (arm64 6.1/6.12/5.10, amd64 5.10) under QEMU and run the checks inside.
    VmTest,
    /// Everything CI runs: unit tests, then end-to-end tests against real Go programs (root).
    Test,
}

fn main() {
    let cli = Cli::parse();
    let r: Result<()> = match cli.cmd {
        Cmd::Setup => build::setup().map(|_| ()),
        Cmd::Build { release } => build::build(release).map(|_| ()),
        Cmd::Fixtures => go::fixtures().map(|_| ()),
        Cmd::TestTools => tools::prometheus()
            .and_then(|p| Ok((p, tools::kubernetes_validate()?, tools::chromium()?)))
            .map(|(p, k, c)| {
                eprintln!(
                    "xtask: {}, {} and {}",
                    p.display(),
                    k.display(),
                    c.display()
                )
            }),
        Cmd::Demo => test::demo(),
        Cmd::Test => test::test(),
        Cmd::Bench { only } => bench::bench(only.as_deref()),
        Cmd::Dist => build::dist(),
        Cmd::StdPackages => go::write_std_packages(),
        Cmd::VmTest => vm::vm_test(),
        Cmd::Fuzz { seconds } => fuzz::fuzz(seconds),
    };
    if let Err(e) = r {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
