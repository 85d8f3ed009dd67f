//! End-to-end on Swiss-table maps (Go 1.24+): exact counts where the runtime is
//! deterministic, the kernel's own uprobe tracer where it is not.

use std::collections::BTreeMap;

use map_trace_e2e::*;
use serde_json::Value;

fn launch(version: &str, suffix: &str, args: &[&str]) -> (Vec<Value>, String) {
    let (events, f) = trace_json(&fixture_variant(version, suffix), &[], args);
    assert_eq!(
        f.status.code(),
        Some(0),
        "go{version}{suffix}: {}",
        f.stderr
    );
    (events, f.stderr)
}

fn of<'a>(events: &'a [Value], map: &str, kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["map"] == map)
        .collect()
}

/// Checks the deterministic part of N sequential inserts into make(map[int]int): one
/// small→table (9th key, capacity 16), then six table grows 16→32→…→1024, each when the table
/// holds 7/8 of its capacity; returns the splits.
fn check_sequence<'a>(v: &str, events: &'a [Value], map: &str) -> Vec<&'a Value> {
    let to_table = of(events, map, "map_small_to_table");
    assert_eq!(to_table.len(), 1, "go{v}: {to_table:?}");
    assert_eq!(to_table[0]["capacity_after"], 16);
    assert_eq!(to_table[0]["entries"], 8);
    let grows = of(events, map, "map_table_grow");
    assert_eq!(grows.len(), 6, "go{v}: {grows:?}");
    for (g, cap) in grows.iter().zip([16u64, 32, 64, 128, 256, 512]) {
        assert_eq!(g["capacity_before"], cap, "go{v} {g}");
        assert_eq!(g["capacity_after"], cap * 2, "go{v} {g}");
        assert_eq!(g["table_entries"], cap * 7 / 8, "go{v} {g}");
        assert_eq!(
            (g["key_size"].as_u64(), g["elem_size"].as_u64()),
            (Some(8), Some(8))
        );
    }
    let splits = of(events, map, "map_table_split");
    for s in &splits {
        assert_eq!(s["capacity"], 1024, "go{v} {s}");
        assert_eq!(s["table_entries"], 896, "go{v} {s}");
    }
    for e in events.iter().filter(|e| e["map"] == map) {
        // Table resizes are timed by their RET probes; small→table comes from the body probe
        // alone (an 8-entry copy), untimed.
        if e["event"] == "map_small_to_table" {
            assert!(e["duration_ns"].is_null(), "{e}");
        } else {
            assert!(e["duration_ns"].as_u64().unwrap() > 0, "{e}");
        }
        assert_eq!(e["partial"], false);
    }
    splits
}

#[test]
fn test_swiss_million_int_keys() {
    require_root();
    for v in swiss_versions() {
        let (events, stderr) = launch(&v, "", &["int", "1000000"]);
        assert_eq!(events[0]["map_impl"], "swiss");
        assert!(events[0]["go_version"]
            .as_str()
            .unwrap()
            .starts_with(&go_prefix(&v)));
        let map = fixture_maps(&stderr)[0].0.clone();
        let splits = check_sequence(&v, &events, &map);
        // 1e6 keys at 7/8 of 1024 per table need ~1116 tables at the end; with uniform hashing
        // the tables fill unevenly, so the split count depends on the per-run hash seed. The
        // reference notes measured 2038–2045 across 1.24–1.27; allow a margin around that.
        assert!(
            (2000..=2080).contains(&splits.len()),
            "go{v}: {} splits",
            splits.len()
        );
        let doublings = splits
            .iter()
            .filter(|s| s["directory_len_after"].as_u64() > s["directory_len_before"].as_u64())
            .count();
        assert_eq!(doublings, 11, "go{v}: directory 1 → 2048");
        let summary = events.last().unwrap();
        let m = summary_map(&events, &map);
        assert_eq!(m["impl"], "swiss");
        assert_eq!(m["table_grows"], 6);
        assert_eq!(m["table_splits"], splits.len() as u64);
        assert_eq!(m["directory_len_last"], 2048);
        assert_eq!(summary["lost"], 0);
    }
}

#[test]
fn test_swiss_stripped_pie_cgo_and_presized() {
    require_root();
    for v in swiss_versions() {
        for suffix in [
            "",
            "-stripped",
            "-pie",
            "-pie-stripped",
            "-cgo",
            "-cgo-stripped",
        ] {
            let (events, stderr) = launch(&v, suffix, &["int", "100000"]);
            let map = fixture_maps(&stderr)[0].0.clone();
            let splits = check_sequence(&v, &events, &map);
            // 1e5 keys need at least 112 full tables; how many splits it takes depends on how
            // evenly the per-run hash seed spreads keys over the tables: 127 in nearly every run,
            // 128 seen about once in 40 runs here (the reference notes saw only 127).
            assert!(
                (125..=130).contains(&splits.len()),
                "go{v}{suffix}: {} splits",
                splits.len()
            );
        }
        let (events, stderr) = launch(&v, "", &["inthint", "100000"]);
        let map = fixture_maps(&stderr)[0].0.clone();
        assert!(
            events.iter().all(|e| e["map"] != map.as_str()),
            "go{v}: presized map resized"
        );
    }
}

#[test]
fn test_swiss_goroutines_and_key_sizes() {
    require_root();
    for v in swiss_versions() {
        let (events, stderr) = launch(&v, "", &["goroutines", "20000", "4"]);
        let maps = fixture_maps(&stderr);
        assert_eq!(maps.len(), 4);
        for (map, goid) in &maps {
            let mine: Vec<_> = events.iter().filter(|e| of_fixture_map(e, map)).collect();
            assert!(mine.len() > 7, "go{v} {map}");
            assert!(
                mine.iter().all(|e| e["goid"] == *goid),
                "go{v}: {map} expected goid {goid}"
            );
        }
        let (events, stderr) = launch(&v, "", &["str", "5000"]);
        let map = fixture_maps(&stderr)[0].0.clone();
        let mine: Vec<_> = events.iter().filter(|e| e["map"] == map.as_str()).collect();
        assert!(!mine.is_empty());
        assert!(mine
            .iter()
            .all(|e| e["key_size"] == 16 && e["elem_size"] == 8));
        let (events, stderr) = launch(&v, "", &["struct", "5000"]);
        let map = fixture_maps(&stderr)[0].0.clone();
        assert!(events
            .iter()
            .filter(|e| e["map"] == map.as_str())
            .all(|e| e["key_size"] == 24 && e["elem_size"] == 16));
    }
}

#[test]
fn test_swiss_matches_kernel_uprobe_events() {
    require_root();
    let args = if cfg!(target_arch = "aarch64") {
        "m=%x2:x64 cap=+2(%x0):u16"
    } else {
        "m=%cx:x64 cap=+2(%ax):u16"
    };
    for v in swiss_versions() {
        let fx = fixture(&v);
        let (events, _) = launch(&v, "", &["int", "10"]);
        let probe = format!(
            "{}:{} {args}",
            fx.display(),
            probe_offset(&events[0], "rehash", 0x20)
        );
        let ((events, stderr), lines) = with_kernel_probe(
            "maptrace_e2e_swiss",
            "rh",
            &probe,
            || launch(&v, "", &["goroutines", "50000", "3"]),
            |(e, _)| e[0]["pid"].as_u64().unwrap(),
        );
        let mut kernel: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        for l in &lines {
            *kernel.entry((l["m"], l["cap"])).or_default() += 1;
        }
        let mut ours: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e["event"] == "map_table_grow" || e["event"] == "map_table_split")
        {
            let cap = e
                .get("capacity_before")
                .or(e.get("capacity"))
                .unwrap()
                .as_u64()
                .unwrap();
            *ours.entry((hex_field(&e["map"]), cap)).or_default() += 1;
        }
        for (p, _) in fixture_maps(&stderr) {
            let p = u64::from_str_radix(p.trim_start_matches("0x"), 16).unwrap();
            assert!(
                kernel.keys().any(|k| k.0 == p),
                "go{v}: kernel saw no rehash of {p:#x}"
            );
        }
        assert_eq!(ours, kernel, "go{v}: map-trace and uprobe_events disagree");
    }
}

#[test]
fn test_swiss_small_maps_is_opt_in() {
    require_root();
    for v in swiss_versions() {
        let (events, _) = launch(&v, "", &["maps", "1000", "1"]);
        let summary = events.last().unwrap();
        assert_eq!(
            summary["probe_hits"]["maps.(*Map).growToSmall"], 0,
            "go{v}: unprobed by default"
        );
        assert!(events.iter().all(|e| e["event"] != "map_small_alloc"));

        let (events, f) = trace_json(&fixture(&v), &["--small-maps"], &["maps", "1000", "1"]);
        assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
        let allocs = events
            .iter()
            .filter(|e| e["event"] == "map_small_alloc")
            .count();
        // The fixture's 1000 maps plus the few the runtime itself creates.
        assert!((1000..1100).contains(&allocs), "go{v}: {allocs}");
        assert!(events
            .iter()
            .filter(|e| e["event"] == "map_small_alloc")
            .all(|e| e["capacity_after"] == 8));
    }
}
