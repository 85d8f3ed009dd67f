//! `--pprof`: the profile a run writes, read by `go tool pprof` (a client nobody here wrote),
//! holds exactly the JSON events of the same run: per sample type the same totals, per stack
//! and labels the same values; `replay --pprof` of its recording writes the same bytes.

use std::{collections::BTreeMap, path::Path, process::Command};

use map_trace_e2e::*;
use serde_json::Value;

/// Values in the profile's sample-type order.
type Values = [i64; 4];

/// (logical stack, innermost first, as `function` names; kind; map_type) → values.
type Samples = BTreeMap<(Vec<String>, String, String), Values>;

/// The go command of the newest toolchain the tests have (its `go tool pprof`).
fn go() -> std::path::PathBuf {
    real_programs()
        .last()
        .expect("MAP_TRACE_REAL_PROGRAMS")
        .clone()
}

/// `go tool pprof -raw FILE`: the sample types, and the samples with their stacks expanded
/// from the locations (a location's lines, innermost first).
fn pprof_raw(file: &Path) -> (Vec<String>, Samples, String) {
    let out = Command::new(go())
        .args(["tool", "pprof", "-raw"])
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines().peekable();
    for l in lines.by_ref() {
        if l == "Samples:" {
            break;
        }
    }
    let types: Vec<String> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|t| t.trim_end_matches("[dflt]").to_string())
        .collect();
    // Samples: "  v v v v: loc loc …" then a labels line.
    let mut raw: Vec<(Values, Vec<u64>, String, String)> = vec![];
    while let Some(l) = lines.next() {
        if l.starts_with("Locations") {
            break;
        }
        let Some((values, locs)) = l.split_once(':') else {
            continue;
        };
        let v: Vec<i64> = values
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let locs: Vec<u64> = locs
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let labels = lines.next().unwrap().trim();
        // "kind:[K] map_type:[T]" (keys sorted; a type may hold brackets and spaces).
        let kind = labels
            .strip_prefix("kind:[")
            .and_then(|r| r.split_once(']'))
            .unwrap()
            .0
            .to_string();
        let t = labels
            .split_once(" map_type:[")
            .unwrap()
            .1
            .strip_suffix(']')
            .unwrap()
            .to_string();
        raw.push((v.try_into().unwrap(), locs, kind, t));
    }
    // Locations: "  N: 0x0 M=1 FUNCTION FILE:LINE:COL s=S", inlined lines continued below.
    let mut locations: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut current = 0;
    for l in lines.by_ref() {
        if l.starts_with("Mappings") {
            break;
        }
        let t = l.trim();
        let rest = match t.split_once(": 0x") {
            Some((id, rest)) if id.chars().all(|c| c.is_ascii_digit()) => {
                current = id.parse().unwrap();
                rest.split_once(' ').unwrap().1.split_once(' ').unwrap().1
            }
            _ => t,
        };
        // Drop " s=N", then the last word (FILE:LINE:COL): the rest is the function.
        let rest = rest.rsplit_once(" s=").map_or(rest, |r| r.0);
        let function = rest.rsplit_once(' ').unwrap().0;
        locations
            .entry(current)
            .or_default()
            .push(function.to_string());
    }
    let mapping: String = lines.collect::<Vec<_>>().join("\n");
    let mut samples = Samples::new();
    for (v, locs, kind, t) in raw {
        let stack: Vec<String> = locs.iter().flat_map(|id| locations[id].clone()).collect();
        let e = samples.entry((stack, kind, t)).or_insert([0; 4]);
        for (a, b) in e.iter_mut().zip(v) {
            *a += b;
        }
    }
    (types, samples, mapping)
}

/// The same sums from the run's JSON events.
fn from_json(events: &[Value]) -> Samples {
    let names = |e: &Value| -> Vec<String> {
        e["stack"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|f| f["function"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let ty = |e: &Value| e["type"].as_str().unwrap_or("unknown").to_string();
    let mut samples = Samples::new();
    let mut add = |key: (Vec<String>, String, String), v: Values| {
        let e = samples.entry(key).or_insert([0; 4]);
        for (a, b) in e.iter_mut().zip(v) {
            *a += b;
        }
    };
    // A hash-bucket growth's span goes to the stack of the grow that started it.
    let mut grow_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events {
        let n = |k: &str| e[k].as_i64().unwrap_or(0);
        let kind = match e["event"].as_str().unwrap_or("") {
            "map_grow" => {
                grow_of.insert(e["map"].as_str().unwrap().into(), names(e));
                let k = if e["same_size"] == true {
                    "same_size"
                } else {
                    "double"
                };
                add((names(e), k.into(), ty(e)), [1, n("bytes_allocated"), 0, 0]);
                continue;
            }
            "map_evacuated" => {
                if let Some(d) = e["duration_ns"].as_i64() {
                    let stack = grow_of
                        .get(e["map"].as_str().unwrap())
                        .cloned()
                        .unwrap_or_default();
                    add((stack, "growth_end".into(), ty(e)), [0, 0, 0, d]);
                }
                continue;
            }
            "map_small_to_table" => "small_to_table",
            "map_table_grow" => "table_grow",
            "map_table_split" => "table_split",
            "map_small_alloc" => "small_alloc",
            _ => continue,
        };
        add(
            (names(e), kind.into(), ty(e)),
            [1, n("bytes_allocated"), n("duration_ns"), 0],
        );
    }
    samples
}

fn totals(s: &Samples) -> Values {
    s.values().fold([0; 4], |mut t, v| {
        for (a, b) in t.iter_mut().zip(v) {
            *a += b;
        }
        t
    })
}

#[test]
fn pprof_profiles_hold_the_json_events_and_replay_to_the_same_bytes() {
    require_root();
    let vs = versions();
    let cases = [
        (vs.first().unwrap().clone(), ""),
        (vs.last().unwrap().clone(), ""),
        (vs.last().unwrap().clone(), "-pie-stripped"),
    ];
    for (v, suffix) in cases {
        let tag = format!("go{v}{suffix}");
        let exe = fixture_variant(&v, suffix);
        let profile = temp_unique("profile", "pb.gz");
        let rec = temp_unique("profile", "rec");
        for args in [&["sites", "300"][..], &["int", "100000"][..]] {
            let (events, f) = trace_json(
                &exe,
                &[
                    "--pprof",
                    profile.to_str().unwrap(),
                    "--record",
                    rec.to_str().unwrap(),
                ],
                args,
            );
            assert!(f.status.success(), "{tag} {args:?}: {}", f.stderr);
            let (types, got, mapping) = pprof_raw(&profile);
            assert_eq!(
                types,
                [
                    "resizes/count",
                    "bytes/bytes",
                    "resize_time/nanoseconds",
                    "growth_span/nanoseconds"
                ],
                "{tag}"
            );
            let want = from_json(&events);
            assert!(totals(&want)[0] > 0, "{tag} {args:?}: no map events");
            assert_eq!(totals(&got), totals(&want), "{tag} {args:?}: totals");
            assert_eq!(got, want, "{tag} {args:?}: samples by stack and labels");
            // The mapping: the executable and its Go build ID (go tool buildid's).
            let id = Command::new(go())
                .args(["tool", "buildid"])
                .arg(&exe)
                .env("GOTOOLCHAIN", "local")
                .output()
                .unwrap();
            let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
            assert!(!id.is_empty(), "{tag}");
            assert!(mapping.contains(&id), "{tag}: {mapping}");
            // The same profile from the recording, byte for byte.
            let again = temp_unique("profile-replay", "pb.gz");
            let mut c = Command::new(bin());
            c.arg("replay")
                .arg(&rec)
                .args(["-o", "/dev/null", "--pprof"])
                .arg(&again);
            let r = run_to_end(c);
            assert!(r.status.success(), "{tag}: {}", r.stderr);
            assert!(
                std::fs::read(&again).unwrap() == std::fs::read(&profile).unwrap(),
                "{tag} {args:?}: replay --pprof differs from the live profile"
            );
            let _ = std::fs::remove_file(&again);
        }
        let _ = std::fs::remove_file(&profile);
        let _ = std::fs::remove_file(&rec);
    }
}
