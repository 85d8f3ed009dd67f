//! `--slices`: every `growslice` of the fixture's slice is reported with its exact new capacity
//! (checked against what the program itself saw), its element type and call site; `--min-bytes`
//! reports exactly the growths at or above the threshold.

use map_trace_e2e::*;
use serde_json::Value;

/// The capacities the fixture printed, and those map-trace reported for its `appendInts`.
fn caps(v: &str, flags: &[&str]) -> (Vec<u64>, Vec<u64>, Value) {
    let mut all = vec!["--slices"];
    all.extend_from_slice(flags);
    let (events, f) = trace_json(&fixture(v), &all, &["append", "100000"]);
    assert!(f.status.success(), "{}", f.stderr);
    let printed: Vec<u64> = f
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("slicecap ")?.parse().ok())
        .collect();
    let reported: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "slice_grow" && e["site"]["function"] == "main.appendInts")
        .map(|e| {
            assert_eq!(e["elem_size"], 8, "go{v}: {e}");
            assert_eq!(e["elem_type"], "int", "go{v}: {e}");
            assert_eq!(
                e["bytes"],
                e["cap_after"].as_u64().unwrap() * 8,
                "go{v}: {e}"
            );
            e["cap_after"].as_u64().unwrap()
        })
        .collect();
    (printed, reported, events.last().unwrap().clone())
}

#[test]
fn slices_report_every_heap_growth_with_its_capacity() {
    require_root();
    for v in versions() {
        let (printed, reported, summary) = caps(&v, &[]);
        assert!(printed.len() > 20, "go{v}: {printed:?}");
        // From Go 1.25, the compiler lets append first grow into a 32-byte buffer on the
        // goroutine's stack (1.26+: growsliceBuf): no heap allocation, no growslice call,
        // nothing to report. Every heap growth after that is reported, with its capacity.
        let skip = printed.len() - reported.len();
        assert!(
            printed[skip..] == reported[..] && printed[..skip].iter().all(|c| c * 8 <= 32),
            "go{v}: printed {printed:?}, reported {reported:?}"
        );
        assert!(skip <= 1, "go{v}: {skip} growths unreported");
        assert_eq!(summary["slice_grows_below_min_bytes"], 0);
        assert_eq!(
            summary["probe_hits"]["runtime.growslice"],
            summary["probe_hits"]["runtime.growslice return probes"]
        );
    }
}

#[test]
fn min_bytes_reports_exactly_the_growths_above_it() {
    require_root();
    let v = versions().into_iter().last().unwrap();
    let (printed, reported, summary) = caps(&v, &["--min-bytes", "65536"]);
    let want: Vec<u64> = printed.into_iter().filter(|c| c * 8 >= 65536).collect();
    assert!(!want.is_empty());
    assert_eq!(reported, want, "go{v}");
    assert!(summary["slice_grows_below_min_bytes"].as_u64().unwrap() > 0);
}
