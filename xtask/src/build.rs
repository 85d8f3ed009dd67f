//! Toolchain setup and the build of the eBPF object and the self-contained binary.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

use crate::cache::{self, output, run};

/// The nightly that builds the eBPF crate (aya-ebpf 0.2 needs build-std and bpf-linker).
const NIGHTLY: &str = "nightly";
/// bpf-linker version; it must link the same LLVM major as the nightly's rustc.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Tools the build needs.
pub struct Tools {
    /// Directory holding `bpf-linker`.
    pub bpf_linker_bin: PathBuf,
}

/// Command without the variables an outer cargo/rustup sets, so a nested cargo picks its own.
pub fn clean_cmd(program: &str) -> Command {
    let mut c = Command::new(program);
    for v in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTDOC",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
    ] {
        c.env_remove(v);
    }
    c
}

fn nightly_sysroot() -> Result<PathBuf> {
    let probe = clean_cmd("rustup")
        .args(["run", NIGHTLY, "rustc", "--print", "sysroot"])
        .output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        run(clean_cmd("rustup").args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]))?;
    }
    let s = output(clean_cmd("rustup").args(["run", NIGHTLY, "rustc", "--print", "sysroot"]))?;
    Ok(PathBuf::from(s.trim()))
}

fn ensure_rust_src(sysroot: &std::path::Path) -> Result<()> {
    if sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        return Ok(());
    }
    run(clean_cmd("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

/// LLVM major version of the nightly rustc (bpf-linker must match it).
fn nightly_llvm_major() -> Result<u32> {
    let v = output(clean_cmd("rustup").args(["run", NIGHTLY, "rustc", "-vV"]))?;
    let line = v
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("no LLVM version in rustc -vV")?;
    line.split('.')
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .context("parsing the LLVM version")
}

fn ensure_bpf_linker(sysroot: &std::path::Path) -> Result<PathBuf> {
    let cache = cache::dir();
    let root = cache.join("bpf-linker");
    let bin = root.join("bin");
    let major = nightly_llvm_major()?;
    let stamp = root.join(format!("llvm-{major}.stamp"));
    if bin.join("bpf-linker").is_file() && stamp.is_file() {
        return Ok(bin);
    }
    // bpf-linker links libLLVM dynamically through LLVM_PREFIX/lib/libLLVM.so: point that at the
    // nightly's own libLLVM so both sides of the link use the same LLVM.
    let libdir = sysroot.join("lib");
    let lib = fs::read_dir(&libdir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so"))
        })
        .with_context(|| format!("no libLLVM in {}", libdir.display()))?;
    let prefix = cache.join("llvm");
    fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&lib, &link)?;
    run(clean_cmd("cargo")
        .args(["install", "--locked", "--force", "--root"])
        .arg(&root)
        .args([
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix))?;
    fs::write(&stamp, b"")?;
    Ok(bin)
}

/// Installs rust-src and bpf-linker if missing; then the Go toolchains.
pub fn setup() -> Result<Tools> {
    let tools = setup_rust()?;
    crate::go::ensure_all()?;
    Ok(tools)
}

/// The Rust side of setup only.
pub fn setup_rust() -> Result<Tools> {
    let sysroot = nightly_sysroot()?;
    ensure_rust_src(&sysroot)?;
    let bpf_linker_bin = ensure_bpf_linker(&sysroot)?;
    Ok(Tools { bpf_linker_bin })
}

/// The eBPF target architecture matching this machine.
pub fn bpf_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        "x86_64"
    }
}

/// Builds the eBPF object for this machine's architecture; returns its path.
pub fn build_ebpf(tools: &Tools) -> Result<PathBuf> {
    build_ebpf_for(tools, bpf_arch())
}

/// Builds the eBPF object for `arch` (`x86_64` or `aarch64`: the `pt_regs` layout and Go's
/// argument registers differ); returns its path.
pub fn build_ebpf_for(tools: &Tools, arch: &str) -> Result<PathBuf> {
    let root = cache::root();
    let target = cache::target_dir().join("bpf");
    let path = format!(
        "{}:{}",
        tools.bpf_linker_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(clean_cmd("rustup")
        .args([
            "run",
            NIGHTLY,
            "cargo",
            "build",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(root.join("map-trace-ebpf"))
        .env("PATH", path)
        .env("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback")
        .env("CARGO_CFG_BPF_TARGET_ARCH", arch)
        .env(
            "RUSTFLAGS",
            format!("--cfg bpf_target_arch=\"{arch}\" -C debuginfo=2 -C link-arg=--btf"),
        ))?;
    let built = target.join("bpfel-unknown-none/release/map-trace");
    if !built.is_file() {
        bail!("eBPF build produced no {}", built.display());
    }
    let obj = target.join(format!("map-trace-{arch}.bpf.o"));
    fs::copy(&built, &obj)?;
    crate::object::check(&obj, arch)?;
    Ok(obj)
}

/// Builds `target/{debug,release}/map-trace` with the eBPF object embedded; returns its path.
pub fn build(release: bool) -> Result<PathBuf> {
    let tools = setup_rust()?;
    let obj = build_ebpf(&tools)?;
    let mut c = clean_cmd("cargo");
    c.args(["build", "--package", "map-trace"])
        .current_dir(cache::root());
    if release {
        c.arg("--release");
    }
    c.env("MAP_TRACE_EBPF_OBJECT", &obj);
    run(&mut c)?;
    let bin = cache::target_dir()
        .join(if release { "release" } else { "debug" })
        .join("map-trace");
    eprintln!("xtask: built {}", bin.display());
    Ok(bin)
}

/// Builds a static (musl) map-trace for `rust_target` with `obj` embedded; returns its path.
pub fn build_static(rust_target: &str, obj: &std::path::Path, out_name: &str) -> Result<PathBuf> {
    let installed = output(clean_cmd("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|l| l.trim() == rust_target) {
        run(clean_cmd("rustup").args(["target", "add", rust_target]))?;
    }
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        rust_target.to_uppercase().replace('-', "_")
    );
    run(clean_cmd("cargo")
        .args([
            "build",
            "--release",
            "--package",
            "map-trace",
            "--bin",
            "map-trace",
            "--target",
            rust_target,
        ])
        .current_dir(cache::root())
        .env(linker_var, "rust-lld")
        .env("MAP_TRACE_EBPF_OBJECT", obj))?;
    let built = cache::target_dir()
        .join(rust_target)
        .join("release/map-trace");
    let dist = cache::target_dir().join("dist");
    fs::create_dir_all(&dist)?;
    let out = dist.join(out_name);
    fs::copy(&built, &out)?;
    Ok(out)
}

/// `cargo xtask dist`: static binaries for x86-64 and arm64 with SHA-256 checksums.
pub fn dist() -> Result<()> {
    let tools = setup_rust()?;
    let mut sums = String::new();
    for (arch, target) in [
        ("x86_64", "x86_64-unknown-linux-musl"),
        ("aarch64", "aarch64-unknown-linux-musl"),
    ] {
        let obj = build_ebpf_for(&tools, arch)?;
        let bin = build_static(target, &obj, &format!("map-trace-{arch}-linux"))?;
        let sum = output(Command::new("sha256sum").arg(&bin))?;
        let hash = sum.split_whitespace().next().unwrap_or("").to_string();
        sums.push_str(&format!(
            "{hash}  {}\n",
            bin.file_name().unwrap().to_string_lossy()
        ));
        eprintln!("xtask: {}", bin.display());
    }
    let dist = cache::target_dir().join("dist");
    fs::write(dist.join("SHA256SUMS"), sums)?;
    eprintln!("xtask: {}", dist.join("SHA256SUMS").display());
    Ok(())
}
