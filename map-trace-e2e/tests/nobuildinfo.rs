//! Go binaries whose `.go.buildinfo` section was removed (as some release pipelines ship
//! them): the version comes from `runtime.buildVersion`, and they are traced exactly like the
//! builds they were copied from; programs that are not Go stay refused however Go-like their
//! bytes look.

use std::time::Duration;

use map_trace_e2e::*;
use serde_json::Value;

/// Versions whose fixtures have `-nobuildinfo` copies (xtask `NOBUILDINFO_VERSIONS`).
fn nobuildinfo_versions() -> Vec<String> {
    std::env::var("MAP_TRACE_NOBUILDINFO_VERSIONS")
        .expect("MAP_TRACE_NOBUILDINFO_VERSIONS (run through cargo xtask test)")
        .split(',')
        .map(str::to_string)
        .collect()
}

/// Build variants copied without `.go.buildinfo` (xtask `NOBUILDINFO_VARIANTS`).
const VARIANTS: [&str; 5] = ["", "-stripped", "-pie", "-pie-stripped", "-cgo-stripped"];

fn c_fixture(name: &str) -> std::path::PathBuf {
    let p = std::path::PathBuf::from(std::env::var("MAP_TRACE_FIXTURES").unwrap())
        .join("c")
        .join(name);
    assert!(p.is_file(), "missing fixture {}", p.display());
    p
}

/// `int 100000` under map-trace: (start record, the fixture map's records by kind, all).
fn trace_int(v: &str, suffix: &str) -> (Value, Vec<Value>) {
    let (events, f) = trace_json(&fixture_variant(v, suffix), &[], &["int", "100000"]);
    assert_eq!(f.status.code(), Some(0), "go{v}{suffix}: {}", f.stderr);
    let maps = fixture_maps(&f.stderr);
    assert_eq!(maps.len(), 1, "go{v}{suffix}: fixture printed {maps:?}");
    let map = &maps[0].0;
    let start = events[0].clone();
    assert_eq!(start["event"], "start");
    let mine: Vec<Value> = events
        .iter()
        .filter(|e| e["event"] != "start" && e["event"] != "summary" && of_fixture_map(e, map))
        .cloned()
        .collect();
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary", "go{v}{suffix}");
    assert_eq!(summary["lost"], 0, "go{v}{suffix}");
    (start, mine)
}

fn kinds<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|e| e["event"] == kind).collect()
}

/// The deterministic part of `int 100000`, as `trace.rs` and `swiss.rs` check it.
fn check_exact(v: &str, suffix: &str, records: &[Value]) {
    if is_swiss(v) {
        let to_table = kinds(records, "map_small_to_table");
        assert_eq!(to_table.len(), 1, "go{v}{suffix}: {to_table:?}");
        assert_eq!(to_table[0]["entries"], 8);
        let grows = kinds(records, "map_table_grow");
        assert_eq!(grows.len(), 6, "go{v}{suffix}: {grows:?}");
        for (g, cap) in grows.iter().zip([16u64, 32, 64, 128, 256, 512]) {
            assert_eq!(g["capacity_before"], cap, "go{v}{suffix} {g}");
            assert_eq!(g["table_entries"], cap * 7 / 8, "go{v}{suffix} {g}");
        }
        let splits = kinds(records, "map_table_split").len();
        assert!(
            (125..=130).contains(&splits),
            "go{v}{suffix}: {splits} splits"
        );
    } else {
        let grows = kinds(records, "map_grow");
        let expected = expected_sequential(100_000, load_factor_num(v));
        assert_eq!(grows.len(), expected.len(), "go{v}{suffix}: {grows:?}");
        for (g, (b, entries)) in grows.iter().zip(&expected) {
            assert_eq!(g["buckets_before"], 1u64 << b, "go{v}{suffix} {g}");
            assert_eq!(g["entries"], *entries, "go{v}{suffix} {g}");
            assert_eq!(g["partial"], false, "go{v}{suffix} {g}");
        }
    }
}

#[test]
fn test_nobuildinfo_variants_traced_like_their_builds() {
    require_root();
    for v in nobuildinfo_versions() {
        let (normal, records) = trace_int(&v, "");
        assert_eq!(normal["go_version_source"], "buildinfo", "go{v}");
        check_exact(&v, "", &records);
        let version = normal["go_version"].as_str().unwrap().to_string();
        assert!(version.starts_with(&go_prefix(&v)), "go{v}: {version}");
        for s in VARIANTS {
            let suffix = format!("{s}-nobuildinfo");
            let (start, records) = trace_int(&v, &suffix);
            assert_eq!(
                start["go_version_source"], "runtime.buildVersion",
                "go{v}{suffix}"
            );
            // The whole string, experiments included (`go1.24.11 X:noswissmap`).
            assert_eq!(start["go_version"], version.as_str(), "go{v}{suffix}");
            assert_eq!(start["map_impl"], normal["map_impl"], "go{v}{suffix}");
            check_exact(&v, &suffix, &records);
        }
    }
}

#[test]
fn test_c_programs_with_go_version_strings_are_refused() {
    require_root();
    for (name, needle) in [
        ("notgo", "not a go binary"),
        ("notgo-stripped", "not a go binary"),
        ("fakepclntab", ".gopclntab magic"),
        ("fakepclntab-stripped", ".gopclntab magic"),
    ] {
        let exe = c_fixture(name);
        let f = map_trace(&["--", exe.to_str().unwrap()]);
        assert_eq!(f.status.code(), Some(2), "{name}: {}", f.stderr);
        let lines: Vec<&str> = f.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {:?}", f.stderr);
        assert!(
            lines[0].to_lowercase().contains(needle),
            "{name}: {:?}",
            lines[0]
        );
        assert!(!f.stderr.contains("panicked"), "{name}");
    }
}

#[test]
fn test_agent_attaches_to_nobuildinfo_processes() {
    require_root();
    let versions = nobuildinfo_versions();
    let line = fill_int_line().to_string();
    let site = format!("main.fillInt (main.go:{line})");
    // Oldest (classic, symbols) and newest (Swiss, stripped PIE).
    let cases = [
        (versions[0].clone(), "-nobuildinfo"),
        (
            versions[versions.len() - 1].clone(),
            "-pie-stripped-nobuildinfo",
        ),
    ];
    let mut agent = Agent::start(&[]);
    let mut running = vec![];
    for (v, s) in &cases {
        let w = start_waiting(&fixture_variant(v, s), &["int", "100000"]);
        // Other Go processes on the host are attached too: wait for this pid's line.
        let want = format!(" for pid {} in ", w.id());
        let stderr = agent.stderr.as_mut().unwrap();
        let line = loop {
            let l = stderr.wait_for("map-trace agent: attached ", Duration::from_secs(10));
            if l.contains(&want) {
                break l;
            }
        };
        assert!(
            line.contains(&format!("({}", go_prefix(v))),
            "{v}{s}: {line}"
        );
        running.push(w);
    }
    for w in running.iter_mut() {
        w.work();
    }
    std::thread::sleep(Duration::from_millis(500));
    let m = agent.metrics();
    for (v, s) in &cases {
        let exe = format!("growth{s}");
        let version_label = format!("executable=\"{exe}\",go_version=\"{}", go_prefix(v));
        assert!(m.contains(&version_label), "{version_label}\n{m}");
        let got = |kind: &str| {
            sample(
                &m,
                "map_trace_map_grows_total",
                &[
                    ("executable", exe.as_str()),
                    ("site", site.as_str()),
                    ("kind", kind),
                ],
            ) as u64
        };
        if is_swiss(v) {
            assert_eq!(got("small_to_table"), 1, "{v}{s}\n{m}");
            assert_eq!(got("table_grow"), 6, "{v}{s}\n{m}");
        } else {
            let want = expected_sequential(100_000, load_factor_num(v)).len() as u64;
            assert_eq!(got("double"), want, "{v}{s}\n{m}");
        }
    }
    assert_eq!(sample(&m, "map_trace_lost_events_total", &[]), 0.0);
    for w in running {
        assert!(w.exit().status.success());
    }
    let (f, _) = agent.stop();
    assert!(f.status.success(), "agent: {}", f.stderr);
}
