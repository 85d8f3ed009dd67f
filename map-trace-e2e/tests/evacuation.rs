//! Growth ends of classic maps: `map_evacuated` (default mode, one probe hit per growth) and the
//! opt-in per-bucket `map_evacuate_step` (`--evacuation`).

use map_trace_e2e::*;
use serde_json::Value;

fn of_map<'a>(events: &'a [Value], kind: &str, map: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["map"] == map)
        .collect()
}

/// Every growth that finished before the program exited is reported, once, after its grow and
/// before the next, with the right size and a duration that spans exactly grow → end.
#[test]
fn default_mode_reports_the_end_of_every_growth() {
    require_root();
    for v in classic_versions() {
        for exe in [fixture(&v), fixture_variant(&v, "-pie-stripped")] {
            let (events, f) = trace_json(&exe, &[], &["int", "100000"]);
            assert!(f.status.success(), "go{v}: {}", f.stderr);
            let map = fixture_maps(&f.stderr)[0].0.clone();
            let grows = grows_of(&events, &map);
            let ends = of_map(&events, "map_evacuated", &map);
            // Ground truth (reference notes §9.1, from bpftrace): 14 grows, all finished; go1.21
            // (load factor 6.0) grows 15 times and its last evacuation is still running at exit.
            let unfinished = usize::from(v.starts_with("1.21"));
            assert_eq!(grows.len(), 14 + unfinished, "go{v} {exe:?}");
            assert_eq!(ends.len(), grows.len() - unfinished, "go{v} {exe:?}");
            for (i, e) in ends.iter().enumerate() {
                let g = grows[i];
                let (gt, et) = (
                    g["time_ns"].as_u64().unwrap(),
                    e["time_ns"].as_u64().unwrap(),
                );
                assert!(et >= gt, "go{v}: end before its grow: {g} {e}");
                if let Some(next) = grows.get(i + 1) {
                    assert!(
                        et <= next["time_ns"].as_u64().unwrap(),
                        "go{v}: {e} after {next}"
                    );
                }
                assert_eq!(e["duration_ns"].as_u64(), Some(et - gt), "go{v}: {e}");
                assert_eq!(e["buckets"], g["buckets_after"], "go{v}: {e}");
                assert_eq!(e["inferred"], false);
                assert_eq!(e["type"], "map[int]int");
                assert_eq!(e["site"]["function"], "main.fillInt", "go{v}: {e}");
            }
            let summary = events.last().unwrap();
            let m = summary_map(&events, &map);
            assert_eq!(m["evacuations"], ends.len() as u64, "go{v}");
            assert_eq!(m["growing_at_end"], unfinished == 1, "go{v}");
            // One hit per finished growth, of any map in the process.
            let hits = summary["probe_hits"]["runtime.advanceEvacuationMark (growth finished)"]
                .as_u64()
                .unwrap();
            let all_ends = events
                .iter()
                .filter(|e| e["event"] == "map_evacuated")
                .count() as u64;
            assert!(
                hits >= ends.len() as u64
                    && hits <= all_ends + summary["runtime_events_hidden"].as_u64().unwrap(),
                "go{v}: {hits} hits"
            );
        }
    }
}

/// `--evacuation`: between a grow and its reported end, the steps moved every old bucket
/// (0 … newbit−1) and no step of that growth comes after the end.
#[test]
fn evacuation_steps_cover_every_old_bucket_before_the_end() {
    require_root();
    let classic = classic_versions();
    for v in [classic.first().unwrap(), classic.last().unwrap()] {
        let (events, f) = trace_json(&fixture(v), &["--evacuation"], &["int", "20000"]);
        assert!(f.status.success(), "go{v}: {}", f.stderr);
        let map = fixture_maps(&f.stderr)[0].0.clone();
        let grows = grows_of(&events, &map);
        let ends = of_map(&events, "map_evacuated", &map);
        let steps = of_map(&events, "map_evacuate_step", &map);
        assert!(ends.len() >= 10, "go{v}: {} ends", ends.len());
        let time = |e: &Value| e["time_ns"].as_u64().unwrap();
        for (i, end) in ends.iter().enumerate() {
            let (from, to) = (time(grows[i]), time(end));
            let newbit = grows[i]["buckets_before"].as_u64().unwrap();
            let mut moved: Vec<u64> = steps
                .iter()
                .filter(|s| time(s) >= from && time(s) <= to)
                .map(|s| s["old_bucket"].as_u64().unwrap())
                .collect();
            moved.sort_unstable();
            moved.dedup();
            assert_eq!(
                moved,
                (0..newbit).collect::<Vec<_>>(),
                "go{v}: growth {i} ({newbit} old buckets)"
            );
            let next = grows.get(i + 1).map(|g| time(g)).unwrap_or(u64::MAX);
            assert!(
                !steps.iter().any(|s| time(s) > to && time(s) < next),
                "go{v}: a step of growth {i} after its end"
            );
        }
        let summary = events.last().unwrap();
        let hits = &summary["probe_hits"];
        assert_eq!(
            hits["runtime.evacuate*"],
            hits["runtime.evacuate* return probes"]
        );
        // Steps of runtime maps whose grows were hidden are not reported.
        assert!(
            hits["runtime.evacuate*"].as_u64().unwrap()
                >= events
                    .iter()
                    .filter(|e| e["event"] == "map_evacuate_step")
                    .count() as u64,
            "go{v}"
        );
        assert!(steps.iter().all(|s| s["duration_ns"].as_u64().unwrap() > 0));
    }
}
