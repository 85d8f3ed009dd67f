//! End-to-end crash capture: two goroutines misuse one map until the Go runtime kills the
//! process. map-trace, attached by pid, must report each goroutine that reached the fatal
//! error (one or two per crash) with the fixture's own function and line, the message's kind
//! and the map (checked against the address the fixture printed), and the process must die
//! exactly as it does untraced: the same exit status and the same fatal error on stderr.

use std::{collections::BTreeSet, time::Duration};

use map_trace_e2e::*;
use serde_json::Value;

/// What a crash left on stderr that does not change between runs: the fatal errors' messages,
/// and the program's own functions in the traceback (addresses, goroutine ids and arguments
/// change; when both goroutines reach the fatal error, the runtime's two prints interleave,
/// untraced as traced: `fatal error: fatal error: concurrent map writesconcurrent map writes`).
fn crash_shape(stderr: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
    // The runtime prints `fatal error: `, the message and the newline in three calls, so two
    // goroutines' lines can interleave at any of them: the messages are found where they are.
    // Anything else left on such a line counts as a message of its own.
    const MESSAGES: [&str; 3] = [
        "concurrent map writes",
        "concurrent map read and map write",
        "concurrent map iteration and map write",
    ];
    let mut fatal = BTreeSet::new();
    for l in stderr.iter().filter(|l| l.starts_with("fatal error:")) {
        let mut rest = l.replace("fatal error:", "");
        for m in MESSAGES {
            if rest.contains(m) {
                fatal.insert(m.to_string());
                rest = rest.replace(m, "");
            }
        }
        if !rest.trim().is_empty() {
            fatal.insert(rest.trim().to_string());
        }
    }
    let frames = stderr
        .iter()
        .filter(|l| l.starts_with("main."))
        .filter_map(|l| l.split('(').next())
        .map(str::to_string)
        .collect();
    (fatal, frames)
}

/// The fixture's `crashmap 0x…` line.
fn crash_map(stderr: &[String]) -> String {
    stderr
        .iter()
        .find_map(|l| l.strip_prefix("crashmap "))
        .expect("the fixture printed its map")
        .to_string()
}

/// Runs `exe MODE 64` untraced until it crashes.
fn untraced(exe: &std::path::Path, mode: &str) -> (Finished, Vec<String>) {
    start_crashing(exe, mode).release_until_exit("go")
}

/// Attaches map-trace to `exe MODE 64`, lets it crash, and checks what map-trace reported
/// against what the fixture did.
fn check(version: &str, variant: &str, mode: &str, kind: &str, function: &str, marker: &str) {
    let exe = fixture_variant(version, variant);
    let what = format!("go{version}{variant} {mode}");
    let (plain, plain_err) = untraced(&exe, mode);

    let w = start_crashing(&exe, mode);
    let (mt, out, mt_err) = attach_to(w.id(), &["--format", "json", "--discover", "0"]);
    let pid = w.id();
    let (traced, traced_err) = w.release_until_exit("go");
    let mt = wait(mt, Duration::from_secs(60));
    let events: Vec<Value> = out
        .rest()
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let err = mt_err.rest();

    // The target died as it does untraced.
    assert_eq!(traced.status.code(), Some(2), "{what}: traced exit");
    assert_eq!(
        plain.status.code(),
        traced.status.code(),
        "{what}: exit status"
    );
    let (fatal, frames) = crash_shape(&traced_err);
    assert_eq!(
        fatal,
        BTreeSet::from([message(kind).to_string()]),
        "{what}: {traced_err:?}"
    );
    // Which goroutine the runtime prints depends on which one got there first; the
    // misusing function is in both tracebacks.
    let (plain_fatal, plain_frames) = crash_shape(&plain_err);
    assert_eq!(fatal, plain_fatal, "{what}: stderr");
    assert!(
        frames.contains(function) && plain_frames.contains(function),
        "{what}: {frames:?} / {plain_frames:?}"
    );
    assert!(
        mt.status.success(),
        "{what}: map-trace {:?}: {err:?}",
        mt.status
    );

    // One record per goroutine that reached the fatal error.
    let records: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "map_concurrent_write")
        .collect();
    assert!(
        (1..=2).contains(&records.len()),
        "{what}: {} records: {records:?}; map-trace said {err:?}",
        records.len()
    );
    let map = crash_map(&traced_err);
    let line = crash_line(marker);
    let mut goids = BTreeSet::new();
    for r in &records {
        assert_eq!(r["pid"], pid, "{what}: {r}");
        assert_eq!(r["kind"], kind, "{what}: {r}");
        assert_eq!(r["message"], message(kind), "{what}: {r}");
        assert_eq!(r["site"]["function"], function, "{what}: {r}");
        assert_eq!(r["site"]["file"], "growth/crash.go", "{what}: {r}");
        assert_eq!(r["site"]["line"], line, "{what}: {r}");
        assert!(r["goid"].as_u64().unwrap() > 0, "{what}: {r}");
        assert!(
            goids.insert(r["goid"].as_u64()),
            "{what}: one record per goroutine: {records:?}"
        );
        // The fixture's map, found in the map function's frame, with its type: also when the
        // goroutine was sent through morestack at the Swiss wrapper's stack check (probed
        // before it).
        assert_eq!(
            r["map"],
            map.as_str(),
            "{what}: map ({}): {r}",
            r["map_found"]
        );
        assert_eq!(r["type"], "map[int]int", "{what}: {r}");
        assert!(
            r["function"].as_str().unwrap().contains("map")
                || r["function"].as_str().unwrap().contains("Iter"),
            "{what}: {r}"
        );
    }
    // The summary has them too, and the probe hits they came from.
    let summary = events.last().expect("a summary");
    assert_eq!(summary["event"], "summary", "{what}");
    assert_eq!(summary["reason"], "target_exited", "{what}");
    assert_eq!(
        summary["concurrent_writes"].as_array().map(Vec::len),
        Some(records.len()),
        "{what}"
    );
    assert_eq!(
        summary["probe_hits"]["runtime.fatal (the crash path)"].as_u64(),
        Some(records.len() as u64),
        "{what}: {}",
        summary["probe_hits"]
    );
    let fatal_family = summary["overhead"]["families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["family"] == "fatal")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        fatal_family["hits"].as_u64(),
        Some(records.len() as u64),
        "{what}"
    );
}

fn message(kind: &str) -> &'static str {
    match kind {
        "writes" => "concurrent map writes",
        "iteration_write" => "concurrent map iteration and map write",
        _ => unreachable!(),
    }
}

/// Two goroutines writing one map: `concurrent map writes`, in every version and build
/// (plain, stripped, PIE).
#[test]
fn concurrent_writes_are_reported_before_the_process_dies() {
    require_root();
    for v in versions() {
        for variant in ["", "-stripped", "-pie"] {
            check(&v, variant, "race", "writes", "main.raceWriter", "write");
        }
    }
}

/// A range loop racing a write: `concurrent map iteration and map write`, in every version.
#[test]
fn iteration_racing_a_write_is_reported() {
    require_root();
    for v in versions() {
        check(
            &v,
            "",
            "iterrace",
            "iteration_write",
            "main.iterReader",
            "iterate",
        );
    }
}

/// In launch mode map-trace exits with the crashed program's status, after its records.
#[test]
fn launched_program_crash_gives_its_exit_status() {
    require_root();
    let v = versions().pop().unwrap();
    let exe = fixture(&v);
    let f = map_trace(&[
        "--format",
        "json",
        "--",
        exe.to_str().unwrap(),
        "race",
        "64",
    ]);
    assert_eq!(f.status.code(), Some(2), "{}", f.stderr);
    let events = json_lines(&f.stdout);
    assert!(events.iter().any(|e| e["event"] == "map_concurrent_write"));
    assert!(
        f.stderr.contains("fatal error: concurrent map writes"),
        "{}",
        f.stderr
    );
    let summary = events.last().unwrap();
    assert_eq!(summary["exit_status"], 2);
}
