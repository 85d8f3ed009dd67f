//! End-to-end: real Go programs (several Go versions), real uprobes, the real map-trace binary.

use std::{process::Command, time::Duration};

use map_trace_e2e::*;
use serde_json::Value;

/// Launch mode, JSON to a file; returns (events, fixture stderr, map-trace exit code).
fn launch_json(version: &str, args: &[&str]) -> (Vec<Value>, String, i32) {
    let (events, f) = trace_json(&fixture(version), &[], args);
    assert!(
        f.stderr.contains("map-trace: attached"),
        "stderr: {}",
        f.stderr
    );
    (events, f.stderr, f.status.code().unwrap_or(-1))
}

fn only_map(stderr: &str) -> String {
    let maps = fixture_maps(stderr);
    assert_eq!(maps.len(), 1, "fixture printed {maps:?}");
    maps[0].0.clone()
}

#[test]
fn test_launch_sequential_int_inserts_exact_grows() {
    require_root();
    for v in classic_versions() {
        let n = 100_000;
        let (events, stderr, code) = launch_json(&v, &["int", "100000"]);
        assert_eq!(code, 0, "go{v}: {stderr}");
        let start = &events[0];
        assert_eq!(start["event"], "start");
        assert_eq!(start["schema_version"], 1);
        assert!(start["go_version"]
            .as_str()
            .unwrap()
            .starts_with(&go_prefix(&v)));
        assert_eq!(start["map_impl"], "classic");
        let map = only_map(&stderr);
        let grows = grows_of(&events, &map);
        let expected = expected_sequential(n, load_factor_num(&v));
        let want = if v.starts_with("1.21.") { 15 } else { 14 };
        assert_eq!(expected.len(), want);
        assert_eq!(grows.len(), want, "go{v}: {grows:?}");
        for (g, (b, entries)) in grows.iter().zip(&expected) {
            assert_eq!(g["buckets_before"], 1u64 << b, "go{v} {g}");
            assert_eq!(g["buckets_after"], 1u64 << (b + 1), "go{v} {g}");
            assert_eq!(g["entries"], *entries, "go{v} {g}");
            assert_eq!(g["same_size"], false);
            assert_eq!(g["key_size"], 8);
            assert_eq!(g["elem_size"], 8);
            assert_eq!(g["bucket_size"], 144);
            assert_eq!(g["partial"], false);
            assert!(g["goid"].as_u64().unwrap() >= 1);
        }
        if !v.starts_with("1.21.") {
            let entries: Vec<u64> = grows
                .iter()
                .map(|g| g["entries"].as_u64().unwrap())
                .collect();
            assert_eq!(&entries[..3], &[8, 13, 26]);
            assert_eq!(*entries.last().unwrap(), 53248);
            assert_eq!(grows.last().unwrap()["buckets_after"], 16384);
        }
        let summary = events.last().unwrap();
        assert_eq!(summary["event"], "summary");
        assert_eq!(summary["reason"], "target_exited");
        assert_eq!(summary["exit_status"], 0);
        assert_eq!(summary["lost"], 0);
        let total = events.iter().filter(|e| e["event"] == "map_grow").count() as u64;
        assert_eq!(summary["events"], total);
        assert_eq!(summary["probe_hits"]["runtime.hashGrow"], total);
        let m = summary_map(&events, &map);
        assert_eq!(m["grows"], want as u64);
        assert_eq!(m["buckets_first"], 1);
    }
}

#[test]
fn test_launch_presized_map_never_grows() {
    require_root();
    for v in classic_versions() {
        let (events, stderr, code) = launch_json(&v, &["inthint", "100000"]);
        assert_eq!(code, 0);
        let map = only_map(&stderr);
        assert!(
            grows_of(&events, &map).is_empty(),
            "go{v}: presized map grew"
        );
    }
}

#[test]
fn test_string_and_struct_key_sizes() {
    require_root();
    for v in classic_versions() {
        let (events, stderr, _) = launch_json(&v, &["str", "5000"]);
        let map = only_map(&stderr);
        let grows = grows_of(&events, &map);
        assert_eq!(
            grows.len(),
            expected_sequential(5000, load_factor_num(&v)).len(),
            "go{v}"
        );
        assert!(grows
            .iter()
            .all(|g| g["key_size"] == 16 && g["elem_size"] == 8 && g["bucket_size"] == 208));

        let (events, stderr, _) = launch_json(&v, &["struct", "5000"]);
        let map = only_map(&stderr);
        let grows = grows_of(&events, &map);
        assert!(!grows.is_empty());
        assert!(
            grows
                .iter()
                .all(|g| g["key_size"] == 24 && g["elem_size"] == 16),
            "go{v}: {grows:?}"
        );
    }
}

#[test]
fn test_goroutines_report_their_own_goids() {
    require_root();
    for v in classic_versions() {
        let (events, stderr, _) = launch_json(&v, &["goroutines", "20000", "4"]);
        let maps = fixture_maps(&stderr);
        assert_eq!(maps.len(), 4);
        let mut goids: Vec<u64> = vec![];
        for (map, goid) in &maps {
            let grows = grows_of(&events, map);
            assert_eq!(
                grows.len(),
                expected_sequential(20000, load_factor_num(&v)).len(),
                "go{v} {map}"
            );
            assert!(
                grows.iter().all(|g| g["goid"] == *goid),
                "go{v}: {map} expected goid {goid}: {grows:?}"
            );
            goids.push(*goid);
        }
        goids.sort();
        goids.dedup();
        assert_eq!(goids.len(), 4, "go{v}: goids {goids:?}");
    }
}

#[test]
fn test_launch_mode_exit_status_and_text_output() {
    require_root();
    let v = &versions()[0];
    let fx = fixture(v);
    let f = map_trace(&["--", fx.to_str().unwrap(), "exit", "7"]);
    assert_eq!(f.status.code(), Some(7), "stderr: {}", f.stderr);
    assert!(
        f.stdout.contains("exiting with 7"),
        "child's stdout is inherited: {}",
        f.stdout
    );
    assert!(f.stdout.contains("# summary:"));

    let f = map_trace(&["--", fx.to_str().unwrap(), "int", "1000"]);
    assert_eq!(f.status.code(), Some(0));
    let map = only_map(&f.stderr);
    let lines: Vec<&str> = f
        .stdout
        .lines()
        .filter(|l| l.contains(&map) && l.contains(" grow "))
        .collect();
    assert_eq!(lines.len(), 8, "{}", f.stdout);
    assert!(
        lines[0].contains(" grow 1→2 len 8 ")
            && lines[0].ends_with(&format!(" (main.go:{})", fill_int_line())),
        "{}",
        lines[0]
    );
    assert!(f.stdout.contains("len 1000"));
    // A pipe: no colour, and every line within 80 columns (the fixture prints no wide
    // characters, so characters are columns).
    assert!(!f.stdout.contains('\x1b'), "{}", f.stdout);
    for l in f.stdout.lines() {
        assert!(
            l.chars().count() <= 80,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    assert!(f.stdout.contains("\n# by call site (most events first)\n"));
    assert!(
        f.stdout.contains("presize: make(map[int]int, 1664)"),
        "{}",
        f.stdout
    );
    assert!(f.stdout.contains("\n# timeline: top "), "{}", f.stdout);
}

#[test]
fn test_pid_mode_traces_running_process_until_it_exits() {
    require_root();
    for v in classic_versions() {
        let fx = start_waiting(&fixture(&v), &["int", "100000"]);
        let pid = fx.id().to_string();
        let out = temp(&format!("pid-{v}.json"));
        let (mt, _mt_err) = spawn_attached(&[
            "--pid",
            &pid,
            "--format",
            "json",
            "-o",
            out.to_str().unwrap(),
        ]);
        let (fxf, maps) = fx.finish();
        assert!(fxf.status.success());
        let mtf = wait(mt, Duration::from_secs(30));
        assert_eq!(
            mtf.status.code(),
            Some(0),
            "map-trace exits 0 when the target exits"
        );
        let events = json_lines(&std::fs::read_to_string(&out).unwrap());
        let map = maps[0].0.clone();
        assert_eq!(
            grows_of(&events, &map).len(),
            expected_sequential(100_000, load_factor_num(&v)).len()
        );
        let summary = events.last().unwrap();
        assert_eq!(summary["reason"], "target_exited");
        assert_eq!(summary["exit_status"], Value::Null);
        assert_eq!(events[0]["launched"], false);
        assert_eq!(events[0]["pid"], fxf_pid(&pid));
    }
}

fn fxf_pid(pid: &str) -> u64 {
    pid.parse().unwrap()
}

/// Byte at `addr` in the process's memory (a live uprobe shows as 0xCC on x86-64).
fn mem_byte(pid: u32, addr: u64) -> u8 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, addr).unwrap();
    b[0]
}

#[test]
fn test_kill9_of_map_trace_leaves_target_untouched() {
    require_root();
    let v = versions().last().unwrap().clone();
    // Untraced reference output.
    let fx = fixture(&v);
    let reference = Command::new(&fx).args(["int", "200000"]).output().unwrap();
    assert!(reference.status.success());

    let fx_run = start_waiting(&fx, &["int", "200000"]);
    let pid = fx_run.id();
    let out = temp("kill9.json");
    let (mut mt, _) = spawn_attached(&[
        "--pid",
        &pid.to_string(),
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
    ]);
    let start = json_lines(&std::fs::read_to_string(&out).unwrap())[0].clone();
    let addr = u64::from_str_radix(
        start["probes"][0]["address"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let original = {
        use std::os::unix::fs::FileExt;
        let off = u64::from_str_radix(
            start["probes"][0]["file_offset"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap();
        let mut b = [0u8; 1];
        std::fs::File::open(&fx)
            .unwrap()
            .read_exact_at(&mut b, off)
            .unwrap();
        b[0]
    };
    if cfg!(target_arch = "x86_64") {
        assert_eq!(
            mem_byte(pid, addr),
            0xcc,
            "the probe is live while map-trace runs"
        );
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(mt.id() as i32, libc::SIGKILL) };
    mt.wait().unwrap();
    assert_eq!(
        mem_byte(pid, addr),
        original,
        "a probe remained after map-trace was killed"
    );
    let (f, _) = fx_run.finish();
    assert!(f.status.success(), "target must finish normally");
    assert_eq!(
        f.stdout,
        String::from_utf8_lossy(&reference.stdout),
        "output changed by tracing"
    );
}

#[test]
fn test_traced_output_identical_to_untraced() {
    require_root();
    for v in versions() {
        let fx = fixture(&v);
        for args in [
            &["int", "300000"][..],
            &["goroutines", "30000", "4"],
            &["str", "50000"],
        ] {
            let plain = Command::new(&fx).args(args).output().unwrap();
            let mut argv = vec!["-o", "/dev/null", "--", fx.to_str().unwrap()];
            argv.extend_from_slice(args);
            let traced = map_trace(&argv);
            assert_eq!(traced.status.code(), plain.status.code());
            assert_eq!(
                traced.stdout,
                String::from_utf8_lossy(&plain.stdout),
                "go{v} {args:?}"
            );
        }
    }
}

#[test]
fn test_duration_and_signals_detach_cleanly() {
    require_root();
    let v = versions()[0].clone();
    let fx = start_waiting(&fixture(&v), &["int", "100000"]);
    let pid = fx.id().to_string();

    let f = map_trace(&["--pid", &pid, "--duration", "1s", "--format", "json"]);
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    assert_eq!(json_lines(&f.stdout).last().unwrap()["reason"], "duration");

    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (mt, _) = spawn_attached(&["--pid", &pid, "--format", "json"]);
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(mt.id() as i32, sig) };
        let f = wait(mt, Duration::from_secs(30));
        assert_eq!(f.status.code(), Some(0), "signal {sig}: {}", f.stderr);
        assert_eq!(json_lines(&f.stdout).last().unwrap()["reason"], "signal");
    }
    let (f, _) = fx.finish();
    assert!(f.status.success());
    assert_eq!(f.stdout, "len 100000\n");
}

#[test]
fn test_same_size_grows_under_churn_are_consistent() {
    require_root();
    for v in classic_versions() {
        let (events, stderr, code) = launch_json(&v, &["churn", "300000"]);
        assert_eq!(code, 0);
        let map = only_map(&stderr);
        let grows = grows_of(&events, &map);
        let same: Vec<_> = grows.iter().filter(|g| g["same_size"] == true).collect();
        assert!(
            same.len() > 10,
            "go{v}: expected many same-size grows, got {}",
            same.len()
        );
        // Every grow starts from the size the previous one ended with: a misclassified
        // same-size/doubling grow would break the chain, since B is read from the live map.
        for w in grows.windows(2) {
            assert_eq!(
                w[1]["buckets_before"], w[0]["buckets_after"],
                "go{v}: {} then {}",
                w[0], w[1]
            );
        }
        for g in &same {
            assert_eq!(g["buckets_before"], g["buckets_after"]);
        }
        let m = summary_map(&events, &map);
        assert_eq!(m["same_size_grows"], same.len() as u64);
    }
}

#[test]
fn test_stripped_pie_and_cgo_binaries_trace_the_same() {
    require_root();
    for v in classic_versions() {
        for suffix in [
            "-stripped",
            "-pie",
            "-pie-stripped",
            "-cgo",
            "-cgo-stripped",
        ] {
            let (events, f) = trace_json(&fixture_variant(&v, suffix), &[], &["int", "100000"]);
            assert_eq!(f.status.code(), Some(0), "go{v}{suffix}: {}", f.stderr);
            let map = only_map(&f.stderr);
            let grows = grows_of(&events, &map);
            let expected = expected_sequential(100_000, load_factor_num(&v));
            assert_eq!(grows.len(), expected.len(), "go{v}{suffix}");
            for (g, (b, entries)) in grows.iter().zip(&expected) {
                assert_eq!(
                    (
                        g["buckets_before"].as_u64().unwrap(),
                        g["entries"].as_u64().unwrap()
                    ),
                    (1u64 << b, *entries)
                );
            }
        }
    }
}

#[test]
fn test_stress_goroutine_stacks_identical_output() {
    require_root();
    // 1000 goroutines per round grow maps at the bottom of deep recursions (stacks grow and
    // move), GC in between (stacks shrink); Swiss versions run with return probes attached.
    for v in versions() {
        let fx = fixture(&v);
        let plain = Command::new(&fx)
            .args(["stress", "200", "1000"])
            .output()
            .unwrap();
        assert!(plain.status.success());
        let (events, traced) = trace_json(&fx, &[], &["stress", "200", "1000"]);
        assert_eq!(traced.status.code(), Some(0), "go{v}: {}", traced.stderr);
        assert_eq!(
            traced.stdout,
            String::from_utf8_lossy(&plain.stdout),
            "go{v}: output changed by tracing"
        );
        let summary = events.last().unwrap();
        assert_eq!(summary["lost"], 0, "go{v}");
        // Every one of the 2000 goroutines grew its map at least once.
        let goids: std::collections::BTreeSet<u64> = events
            .iter()
            .filter(|e| e["event"].as_str().unwrap().starts_with("map_"))
            .map(|e| e["goid"].as_u64().unwrap())
            .collect();
        assert!(
            goids.len() >= 2000,
            "go{v}: {} goroutines seen",
            goids.len()
        );
        if is_swiss(&v) {
            // Table resizes are timed (one RET hit each); small→table is not.
            let resizes = events
                .iter()
                .filter(|e| e["event"] == "map_table_grow" || e["event"] == "map_table_split")
                .count() as u64;
            assert!(resizes > 0, "go{v}");
            assert_eq!(
                summary["probe_hits"]["return probes"].as_u64(),
                Some(resizes),
                "go{v}: every timed resize returned"
            );
        }
    }
}
