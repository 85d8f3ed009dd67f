//! Call sites: every reported grow names the first frame outside the Go runtime, from the
//! frame-pointer stack and `.gopclntab` (stripped and PIE binaries too); maps the runtime grows
//! for itself are hidden by default and counted.

use std::process::Command;

use map_trace_e2e::*;
use serde_json::Value;

/// Default-mode (no `--runtime-maps`) JSON trace of `fixture int 100000`.
fn trace_default(exe: &std::path::Path) -> Vec<Value> {
    let out = temp_unique("sites", "json");
    let mut c = Command::new(bin());
    c.args(["--format", "json", "-o", out.to_str().unwrap(), "--"])
        .arg(exe)
        .args(["int", "100000"]);
    let f = run_to_end(c);
    assert!(f.status.success(), "{}", f.stderr);
    json_lines(&std::fs::read_to_string(&out).unwrap())
}

/// A grow or resize record (growth ends and evacuation steps carry no stack of their own).
fn is_resize(e: &Value) -> bool {
    e["event"]
        .as_str()
        .is_some_and(|k| k.starts_with("map_") && k != "map_evacuated" && k != "map_evacuate_step")
}

#[test]
fn every_event_names_its_call_site_in_every_version_and_variant() {
    require_root();
    let line = u64::from(fill_int_line());
    for v in versions() {
        for suffix in ["", "-stripped", "-pie-stripped"] {
            let events = trace_default(&fixture_variant(&v, suffix));
            let grows: Vec<&Value> = events.iter().filter(|e| is_resize(e)).collect();
            // Every event shown has a call site outside the runtime (or it would be hidden).
            for e in &grows {
                assert!(e["site"]["function"].is_string(), "go{v}{suffix}: {e}");
            }
            // The fixture's own map: exactly its grows, at the line of its insert.
            let mine: Vec<&&Value> = grows
                .iter()
                .filter(|e| e["site"]["function"] == "main.fillInt")
                .collect();
            if is_swiss(&v) {
                let kind = |k: &str| mine.iter().filter(|e| e["event"] == k).count();
                assert_eq!(kind("map_small_to_table"), 1, "go{v}{suffix}");
                assert_eq!(kind("map_table_grow"), 6, "go{v}{suffix}");
                let splits = kind("map_table_split");
                assert!((125..=130).contains(&splits), "go{v}{suffix}: {splits}");
            } else {
                let expected = expected_sequential(100_000, load_factor_num(&v)).len();
                assert_eq!(mine.len(), expected, "go{v}{suffix}");
            }
            for e in &mine {
                // The map's Go type, from its type descriptor.
                assert_eq!(e["type"], "map[int]int", "go{v}{suffix}: {e}");
                let site = &e["site"];
                assert!(
                    site["file"]
                        .as_str()
                        .is_some_and(|f| f.ends_with("main.go")),
                    "go{v}{suffix}: {e}"
                );
                assert_eq!(site["line"], line, "go{v}{suffix}: {e}");
                // The stack starts inside the runtime (mapassign*) and reaches the site.
                let stack = e["stack"].as_array().unwrap();
                assert!(
                    stack[0]["function"].as_str().is_some_and(|f| {
                        f.starts_with("runtime.") || f.starts_with("internal/runtime/")
                    }),
                    "go{v}{suffix}: {e}"
                );
                assert!(stack.iter().any(|f| f == site), "go{v}{suffix}: {e}");
            }
            // Its summary entry carries the site too.
            let summary = events.last().unwrap();
            assert_eq!(summary["event"], "summary");
            let maps = summary["maps"].as_array().unwrap();
            let fill: Vec<&Value> = maps
                .iter()
                .filter(|m| m["site"]["function"] == "main.fillInt")
                .collect();
            assert_eq!(fill.len(), 1, "go{v}{suffix}: {summary}");
            // The hint that builds its final storage at once.
            let m = fill[0];
            assert_eq!(m["type"], "map[int]int");
            // The per-site aggregate: one map, all its events, the same hint.
            let agg: Vec<&Value> = summary["sites"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["site"]["function"] == "main.fillInt")
                .collect();
            assert_eq!(agg.len(), 1, "go{v}{suffix}: {summary}");
            assert_eq!(agg[0]["maps"], 1);
            assert_eq!(agg[0]["events"], mine.len() as u64, "go{v}{suffix}");
            assert_eq!(agg[0]["presize_hint"], m["presize_hint"]);
            assert_eq!(agg[0]["type"], "map[int]int");
            let hint = m["presize_hint"].as_u64().unwrap();
            if is_swiss(&v) {
                let dir = m["directory_len_last"].as_u64().unwrap();
                assert_eq!(hint, dir * 896, "go{v}{suffix}");
                assert!(hint >= 100_000, "go{v}{suffix}: hint {hint}");
            } else {
                let buckets = m["buckets_last"].as_u64().unwrap();
                assert_eq!(hint, load_factor_num(&v) * buckets / 2, "go{v}{suffix}");
                assert!(hint >= 100_000, "go{v}{suffix}: hint {hint}");
            }
        }
    }
}

#[test]
fn runtime_maps_are_hidden_by_default_and_counted() {
    require_root();
    // The go command grows many maps, some inside the runtime itself.
    let v = versions().into_iter().last().unwrap();
    let hidden = trace_default(&fixture(&v));
    let summary = hidden.last().unwrap();
    let n_hidden = summary["runtime_events_hidden"].as_u64().unwrap();
    let (all, f) = trace_json(&fixture(&v), &[], &["int", "100000"]); // cli(): --runtime-maps
    assert!(f.status.success());
    let all_summary = all.last().unwrap();
    assert_eq!(all_summary["runtime_events_hidden"], 0);
    // Every event hidden in one run is a runtime map's: the fixture's own are all shown.
    let shown = summary["events"].as_u64().unwrap();
    assert!(all_summary["events"].as_u64().unwrap() >= shown);
    for e in all.iter().filter(|e| is_resize(e)) {
        if e["site"].is_null() {
            assert!(
                e["stack"].as_array().unwrap().iter().all(|f| {
                    let name = f["function"].as_str().unwrap();
                    name.starts_with("runtime.") || name.starts_with("internal/")
                }),
                "{e}"
            );
        }
    }
    eprintln!("go{v}: {n_hidden} runtime-map events hidden by default");
}
