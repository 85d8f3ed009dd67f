//! `cargo xtask fuzz [SECONDS]`: runs every cargo-fuzz target for a bounded time.
//!
//! cargo-fuzz is installed into the xtask cache; the nightly toolchain builds the targets with
//! AddressSanitizer. The checked-in corpus (fuzz/corpus/<target>) seeds each run; new inputs go
//! to target/fuzz-corpus so the repository is not modified. A crash fails the run and leaves
//! the reproducer in fuzz/artifacts/<target>/.

use std::{fs, path::PathBuf};

use anyhow::{bail, Result};

use crate::{
    build::clean_cmd,
    cache::{self, run},
};

/// The fuzz targets (fuzz/fuzz_targets/*.rs).
pub const TARGETS: &[&str] = &["inspect", "pclntab", "buildinfo", "decode", "replay"];

fn ensure_cargo_fuzz() -> Result<PathBuf> {
    let root = cache::dir().join("cargo-fuzz");
    let bin = root.join("bin");
    if !bin.join("cargo-fuzz").is_file() {
        run(clean_cmd("cargo")
            .args(["install", "--locked", "--root"])
            .arg(&root)
            .args(["cargo-fuzz", "--version", "0.13.1"]))?;
    }
    Ok(bin)
}

/// Fuzzes each target for `seconds`.
pub fn fuzz(seconds: u64) -> Result<()> {
    let bin = ensure_cargo_fuzz()?;
    let root = cache::root();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for t in TARGETS {
        let work = cache::target_dir().join("fuzz-corpus").join(t);
        fs::create_dir_all(&work)?;
        let seeds = root.join("fuzz/corpus").join(t);
        let status = clean_cmd("rustup")
            .args(["run", "nightly", "cargo", "fuzz", "run", t])
            .arg(&work)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args([
                "-rss_limit_mb=2048",
                "-max_len=65536",
                "-print_final_stats=1",
            ])
            .current_dir(&root)
            .env("PATH", &path)
            .env("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback")
            .status()?;
        if !status.success() {
            bail!("fuzz target {t} failed (see fuzz/artifacts/{t}/)");
        }
        eprintln!("xtask: fuzz target {t}: {seconds} s, no crash");
    }
    Ok(())
}
