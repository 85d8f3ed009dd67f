//! `--trace-out`: a Perfetto/Chrome trace-event file beside the normal output, checked against
//! the trace-event format's rules (no trace processor can be downloaded here) and against the
//! JSON events of the same run.

use map_trace_e2e::*;
use serde_json::Value;

/// The rules of the Trace Event Format for the phases map-trace writes.
fn check(e: &Value) {
    let ph = e["ph"].as_str().expect("ph");
    assert!(e["pid"].is_u64() && e["name"].is_string(), "{e}");
    let ts_ok = || e["ts"].as_f64().is_some_and(|t| t >= 0.0);
    match ph {
        "M" => assert!(
            ["process_name", "thread_name"].contains(&e["name"].as_str().unwrap())
                && e["args"]["name"].is_string(),
            "{e}"
        ),
        "X" => assert!(
            e["tid"].is_u64() && ts_ok() && e["dur"].as_f64().is_some_and(|d| d >= 0.0),
            "{e}"
        ),
        "i" => assert!(
            e["tid"].is_u64() && ts_ok() && (e["s"] == "t" || e["s"] == "g"),
            "{e}"
        ),
        // Async slices: an id and a category pair each begin with its end.
        "b" | "e" => assert!(
            e["tid"].is_u64() && ts_ok() && e["id"].is_string() && e["cat"].is_string(),
            "{e}"
        ),
        "C" => assert!(
            ts_ok()
                && e["args"]
                    .as_object()
                    .is_some_and(|a| !a.is_empty() && a.values().all(Value::is_number)),
            "{e}"
        ),
        other => panic!("phase {other} not expected: {e}"),
    }
}

#[test]
fn trace_out_is_valid_and_matches_the_events() {
    require_root();
    let versions = [
        classic_versions().into_iter().last().unwrap(),
        swiss_versions().into_iter().last().unwrap(),
    ];
    for v in versions {
        let out = temp(&format!("perfetto-{v}.json"));
        let mut flags = vec!["--trace-out", out.to_str().unwrap()];
        if !is_swiss(&v) {
            flags.push("--evacuation");
        }
        let (events, f) = trace_json(&fixture(&v), &flags, &["goroutines", "20000", "3"]);
        assert!(f.status.success(), "{}", f.stderr);
        let trace: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap())
            .expect("the trace file is one JSON object");
        assert_eq!(trace["displayTimeUnit"], "ns");
        let tevs = trace["traceEvents"].as_array().unwrap();
        tevs.iter().for_each(check);
        let of = |ph: &str| tevs.iter().filter(|e| e["ph"] == ph).count();
        let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
        let grows = count("map_grow");
        let steps = count("map_evacuate_step");
        let ends = count("map_evacuated");
        let unstarted_ends = events
            .iter()
            .filter(|e| e["event"] == "map_evacuated" && e["duration_ns"].is_null())
            .count();
        let summary = events.last().unwrap();
        let growing = summary["maps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["growing_at_end"] == true)
            .count();
        let resizes = events
            .iter()
            .filter(|e| {
                e["event"].as_str().is_some_and(|k| k.starts_with("map_"))
                    && !["map_grow", "map_evacuated", "map_evacuate_step"]
                        .contains(&e["event"].as_str().unwrap())
            })
            .count();
        assert_eq!(
            of("i"),
            grows + unstarted_ends,
            "go{v}: one instant per hash-bucket grow"
        );
        assert_eq!(
            of("X"),
            resizes + steps,
            "go{v}: one slice per Swiss resize or evacuate step"
        );
        assert_eq!(
            of("b"),
            ends - unstarted_ends + growing,
            "go{v}: one async slice per growth"
        );
        assert_eq!(of("b"), of("e"), "go{v}");
        if !is_swiss(&v) {
            assert!(
                ends > 0 && steps > ends,
                "go{v}: {ends} ends, {steps} steps"
            );
        }
        assert_eq!(
            of("C"),
            grows + resizes,
            "go{v}: a counter sample per event"
        );
        // A named track for every goroutine that grew a map, in the traced process.
        let pid = events[0]["pid"].as_u64().unwrap();
        let mut goids: Vec<u64> = events.iter().filter_map(|e| e["goid"].as_u64()).collect();
        goids.sort();
        goids.dedup();
        for g in &goids {
            assert!(
                tevs.iter().any(|e| e["ph"] == "M"
                    && e["name"] == "thread_name"
                    && e["tid"] == *g
                    && e["pid"] == pid),
                "go{v}: no track for goroutine {g}"
            );
        }
        assert!(goids.len() >= 3, "go{v}: {goids:?}");
    }
}
