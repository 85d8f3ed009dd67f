//! Failure drills: what happens to the target and to the counts when things go wrong.

use std::{
    os::unix::fs::PermissionsExt,
    process::{Command, Stdio},
    time::Duration,
};

use map_trace_e2e::*;
use serde_json::Value;

fn attach(pid: u32, out: &std::path::Path) -> std::process::Child {
    let (c, lines) = spawn_attached(&[
        "--pid",
        &pid.to_string(),
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
    ]);
    std::thread::spawn(move || drop(lines.rest()));
    c
}

fn grows_for(events: &[Value], map: &str) -> usize {
    events
        .iter()
        .filter(|e| e["map"] == map && is_resize(e))
        .count()
}

/// A grow or resize record (not a growth's end or an evacuation step).
fn is_resize(e: &Value) -> bool {
    let kind = e["event"].as_str().unwrap();
    kind.starts_with("map_") && kind != "map_evacuated" && kind != "map_evacuate_step"
}

/// Events a fixture's `int 100000` produces for its own map.
fn expected_events(v: &str) -> std::ops::RangeInclusive<usize> {
    if is_swiss(v) {
        // 1 small→table + 6 grows + 125–130 seed-dependent splits (see swiss.rs).
        (1 + 6 + 125)..=(1 + 6 + 130)
    } else {
        let n = expected_sequential(100_000, load_factor_num(v)).len();
        n..=n
    }
}

#[test]
fn test_binary_deleted_or_replaced_while_running() {
    require_root();
    for v in [
        classic_versions().last().unwrap().clone(),
        swiss_versions().last().unwrap().clone(),
    ] {
        for how in ["deleted", "replaced"] {
            let copy = temp(&format!("victim-{v}-{how}"));
            std::fs::copy(fixture(&v), &copy).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
            let fx = start_waiting(&copy, &["int", "100000"]);
            if how == "deleted" {
                std::fs::remove_file(&copy).unwrap();
            } else {
                // A new build lands on the same path (rename over it, as installers do).
                let next = temp(&format!("victim-{v}-next"));
                std::fs::write(&next, b"#!/bin/sh\nexit 0\n").unwrap();
                std::fs::rename(&next, &copy).unwrap();
            }
            let out = temp(&format!("victim-{v}-{how}.json"));
            let mt = attach(fx.id(), &out);
            let (f, maps) = fx.finish();
            assert!(f.status.success());
            let f = wait(mt, Duration::from_secs(60));
            assert_eq!(f.status.code(), Some(0), "go{v} {how}: {}", f.stderr);
            let events = json_lines(&std::fs::read_to_string(&out).unwrap());
            assert!(
                events[0]["exe"].as_str().unwrap().ends_with("(deleted)"),
                "go{v} {how}: {}",
                events[0]
            );
            let n = grows_for(&events, &maps[0].0);
            assert!(expected_events(&v).contains(&n), "go{v} {how}: {n} events");
        }
    }
}

#[test]
fn test_two_instances_on_one_pid() {
    require_root();
    for v in [
        classic_versions().last().unwrap().clone(),
        swiss_versions().last().unwrap().clone(),
    ] {
        let fx = start_waiting(&fixture(&v), &["int", "100000"]);
        let (a, b) = (
            temp(&format!("two-a-{v}.json")),
            temp(&format!("two-b-{v}.json")),
        );
        let ma = attach(fx.id(), &a);
        let mb = attach(fx.id(), &b);
        let (f, maps) = fx.finish();
        assert!(f.status.success());
        let mut counts = vec![];
        for (m, out) in [(ma, a), (mb, b)] {
            let f = wait(m, Duration::from_secs(60));
            assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
            let events = json_lines(&std::fs::read_to_string(&out).unwrap());
            let n = grows_for(&events, &maps[0].0);
            assert!(
                expected_events(&v).contains(&n),
                "go{v}: {}: {n} events",
                out.display()
            );
            counts.push(n);
        }
        assert_eq!(
            counts[0], counts[1],
            "go{v}: both instances see every event"
        );
    }
}

#[test]
fn test_pid_exits_between_discovery_and_attach() {
    require_root();
    let v = classic_versions().last().unwrap().clone();
    let mut child = Command::new(fixture(&v))
        .args(["-wait", "int", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(200));
    let mt = cli()
        .args(["--pid", &pid.to_string()])
        .env("MAP_TRACE_TEST_PAUSE_BEFORE_ATTACH_MS", "1500")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // map-trace has resolved the target and is paused before attaching: end the target now.
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    let f = wait(mt, Duration::from_secs(30));
    assert_eq!(f.status.code(), Some(2), "{}", f.stderr);
    assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);
    assert!(
        f.stderr.contains("no such process") || f.stderr.contains("exited"),
        "{}",
        f.stderr
    );
}

#[test]
fn test_ring_buffer_overflow_counts_every_event() {
    require_root();
    for v in [
        classic_versions().last().unwrap().clone(),
        swiss_versions().last().unwrap().clone(),
    ] {
        // A 4 KiB ring buffer (about 40 records) and a burst of 100000 resizes.
        let (events, f) = trace_json(
            &fixture(&v),
            &["--ring-buffer-size", "4"],
            &["maps", "100000", "9"],
        );
        assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
        let summary = events.last().unwrap();
        let received = events
            .iter()
            .filter(|e| e["event"].as_str().unwrap().starts_with("map_"))
            .count() as u64;
        let resizes = events.iter().filter(|e| is_resize(e)).count() as u64;
        assert_eq!(summary["events"], resizes);
        let lost = summary["lost"].as_u64().unwrap();
        // Produced = records the kernel side tried to queue, counted in the kernel: one per
        // hashGrow hit (classic); one per growToTable body hit (untimed) plus one per matched
        // return probe of a timed table resize (Swiss).
        let hits = &summary["probe_hits"];
        // Classic maps also queue one record per finished growth (every map is shown: the
        // test binary passes --runtime-maps, so none is dropped in userspace).
        let produced = if is_swiss(&v) {
            hits["maps.(*Map).growToTable"].as_u64().unwrap()
                + hits["return probes"].as_u64().unwrap()
        } else {
            hits["runtime.hashGrow"].as_u64().unwrap()
                + hits["runtime.advanceEvacuationMark (growth finished)"]
                    .as_u64()
                    .unwrap()
        };
        assert!(produced >= 100_000, "go{v}: produced {produced}");
        assert!(
            lost > 0,
            "go{v}: the burst did not overflow a 4 KiB ring (received {received})"
        );
        assert_eq!(
            received + lost,
            produced,
            "go{v}: received {received} + lost {lost} != produced {produced}"
        );
        assert!(
            f.stderr.contains("events lost"),
            "a warning names the loss: {}",
            f.stderr
        );
    }
}
