//! `--record` and `map-trace replay`: a live run's recording, replayed on its own, gives the
//! live run's outputs byte for byte (JSON lines, the Perfetto trace and the HTML report), times
//! included: they come from the recording.

use std::process::Command;

use map_trace_e2e::*;

/// map-trace without `--runtime-maps` (as a user runs it), to completion.
fn run(args: &[&str]) -> Finished {
    let mut c = Command::new(bin());
    c.args(args);
    run_to_end(c)
}

#[test]
fn replay_of_a_recording_gives_the_live_outputs() {
    require_root();
    let versions = [
        classic_versions().into_iter().last().unwrap(),
        swiss_versions().into_iter().last().unwrap(),
    ];
    for v in versions {
        let f = |name: &str| temp(&format!("record-{v}-{name}"));
        let (rec, live, live_trace, live_report) = (
            f("run.rec"),
            f("live.jsonl"),
            f("live.trace.json"),
            f("live.html"),
        );
        let exe = fixture(&v);
        let mut argv = vec![
            "--format",
            "json",
            "-o",
            live.to_str().unwrap(),
            "--trace-out",
            live_trace.to_str().unwrap(),
            "--report",
            live_report.to_str().unwrap(),
            "--record",
            rec.to_str().unwrap(),
        ];
        if !is_swiss(&v) {
            argv.push("--evacuation");
        }
        argv.extend(["--", exe.to_str().unwrap(), "goroutines", "3000", "3"]);
        let l = run(&argv);
        assert!(l.status.success(), "{v}: {}", l.stderr);

        let (replayed, trace, report) =
            (f("replay.jsonl"), f("replay.trace.json"), f("replay.html"));
        let r = run(&[
            "replay",
            rec.to_str().unwrap(),
            "--format",
            "json",
            "-o",
            replayed.to_str().unwrap(),
            "--trace-out",
            trace.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ]);
        assert!(
            r.status.success() && r.stderr.is_empty(),
            "{v}: {}",
            r.stderr
        );
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
        let events = json_lines(&read(&live));
        assert!(
            events
                .iter()
                .filter(|e| e["event"] == "map_grow" || e["event"] == "map_table_split")
                .count()
                >= 3,
            "{v}: too few events to compare"
        );
        assert_eq!(read(&live), read(&replayed), "{v}: JSON lines differ");
        assert_eq!(
            read(&live_trace),
            read(&trace),
            "{v}: Perfetto traces differ"
        );
        assert_eq!(
            read(&live_report),
            read(&report),
            "{v}: HTML reports differ"
        );

        // Text replays too, and its summary agrees with the JSON one.
        let t = run(&["replay", rec.to_str().unwrap()]);
        assert!(t.status.success(), "{v}: {}", t.stderr);
        let summary = events.last().unwrap();
        assert!(
            t.stdout.contains(&format!(
                "# summary: {} resize events in {} maps; lost events: {}",
                summary["events"],
                summary["maps"].as_array().unwrap().len(),
                summary["lost"]
            )),
            "{v}: {}",
            t.stdout
        );
    }
}

/// A recording that cannot be written fails the run like an output that cannot be written.
#[test]
fn record_to_an_unwritable_place_fails() {
    require_root();
    let v = classic_versions().into_iter().last().unwrap();
    let exe = fixture(&v);
    let f = run(&[
        "--record",
        "/nonexistent-dir/run.rec",
        "--",
        exe.to_str().unwrap(),
        "int",
        "10",
    ]);
    assert_eq!(f.status.code(), Some(1), "{}", f.stderr);
    assert!(
        f.stderr.contains("creating /nonexistent-dir/run.rec"),
        "{}",
        f.stderr
    );
    // A device that takes no bytes: the first flush fails.
    let f = run(&[
        "--record",
        "/dev/full",
        "--",
        exe.to_str().unwrap(),
        "int",
        "1000",
    ]);
    assert_eq!(f.status.code(), Some(1), "{}", f.stderr);
    assert!(f.stderr.contains("No space left on device"), "{}", f.stderr);
}

/// A `--max-overhead` detach is recorded where it happened among the records: the replay's
/// JSON lines, with their `probes_detached` record, are the live run's.
#[test]
fn replay_keeps_a_max_overhead_detach() {
    require_root();
    let v = versions().into_iter().last().unwrap();
    let (rec, live, replayed) = (
        temp(&format!("detach-{v}.rec")),
        temp(&format!("detach-{v}-live.jsonl")),
        temp(&format!("detach-{v}-replay.jsonl")),
    );
    let exe = fixture(&v);
    let l = run(&[
        "--slices",
        "--max-overhead",
        "5",
        // Every growslice call is still recorded (~6 MB); the JSON keeps only the detach.
        "--min-bytes",
        "1000000",
        "--format",
        "json",
        "-o",
        live.to_str().unwrap(),
        "--record",
        rec.to_str().unwrap(),
        "--",
        exe.to_str().unwrap(),
        "rounds",
        "10",
        "2000",
    ]);
    assert!(l.status.success(), "go{v}: {}", l.stderr);
    let r = run(&[
        "replay",
        rec.to_str().unwrap(),
        "--format",
        "json",
        "-o",
        replayed.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "go{v}: {}", r.stderr);
    let live = std::fs::read_to_string(&live).unwrap();
    assert_eq!(
        json_lines(&live)
            .iter()
            .filter(|e| e["event"] == "probes_detached")
            .count(),
        1,
        "go{v}: no detach to compare"
    );
    assert_eq!(live, std::fs::read_to_string(&replayed).unwrap(), "go{v}");
    for p in [&rec, &replayed] {
        let _ = std::fs::remove_file(p);
    }
}
