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
        "i" => assert!(e["tid"].is_u64() && ts_ok() && e["s"] == "t", "{e}"),
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
        let (events, f) = trace_json(
            &fixture(&v),
            &["--trace-out", out.to_str().unwrap()],
            &["goroutines", "20000", "3"],
        );
        assert!(f.status.success(), "{}", f.stderr);
        let trace: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap())
            .expect("the trace file is one JSON object");
        assert_eq!(trace["displayTimeUnit"], "ns");
        let tevs = trace["traceEvents"].as_array().unwrap();
        tevs.iter().for_each(check);
        let of = |ph: &str| tevs.iter().filter(|e| e["ph"] == ph).count();
        let grows = events.iter().filter(|e| e["event"] == "map_grow").count();
        let resizes = events
            .iter()
            .filter(|e| {
                e["event"].as_str().is_some_and(|k| k.starts_with("map_"))
                    && e["event"] != "map_grow"
            })
            .count();
        assert_eq!(of("i"), grows, "go{v}: one instant per hash-bucket grow");
        assert_eq!(of("X"), resizes, "go{v}: one slice per Swiss resize");
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
