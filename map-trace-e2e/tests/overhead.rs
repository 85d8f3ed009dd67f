//! The overhead budget: the cost of a probe hit is measured at start-up, every summary estimates
//! what the probes added, and `--max-overhead` detaches an opt-in family that exceeds it, after
//! which the target runs at full speed again.

use map_trace_e2e::*;
use serde_json::Value;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn max_overhead_detaches_slices_and_the_target_speeds_up() {
    require_root();
    let v = versions().into_iter().last().unwrap();
    let (events, f) = trace_json(
        &fixture(&v),
        &["--slices", "--max-overhead", "5"],
        &["rounds", "300", "2000"],
    );
    assert!(f.status.success(), "go{v}: {}", f.stderr);
    let rounds: Vec<f64> = f
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("round_ns ")?.parse().ok())
        .collect();
    assert_eq!(rounds.len(), 300);
    let detached: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "probes_detached")
        .collect();
    assert_eq!(detached.len(), 1, "{detached:?}");
    assert_eq!(detached[0]["flag"], "--slices");
    assert!(detached[0]["share_percent"].as_f64().unwrap() > 5.0);
    assert!(
        f.stderr.contains("map-trace: detached --slices"),
        "{}",
        f.stderr
    );
    // Each traced round traps ~10,000 times; once detached a round costs what it does untraced.
    // The margin (20×) is far below the measured ratio (~500× here) so noise cannot flip it.
    let traced = median(rounds[..3].to_vec());
    let after = median(rounds[200..].to_vec());
    assert!(
        traced > 20.0 * after,
        "traced {traced} ns/round, after detach {after}"
    );
    // No slice growth is reported once the detach is through (allow the unregistering window).
    let t = detached[0]["time_ns"].as_u64().unwrap();
    let late = events
        .iter()
        .filter(|e| {
            e["event"] == "slice_grow" && e["time_ns"].as_u64().unwrap() > t + 2_000_000_000
        })
        .count();
    assert_eq!(late, 0);
    let summary = events.last().unwrap();
    let o = &summary["overhead"];
    let slices = o["families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["family"] == "slices")
        .unwrap();
    assert_eq!(slices["detached_at_ns"], detached[0]["time_ns"]);
    assert!(slices["estimated_ns"].as_u64().unwrap() > 0);
    // The default map probes stay attached.
    assert!(o["families"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["family"] == "maps" && f["detached_at_ns"].is_null()));
}

#[test]
fn every_summary_estimates_the_probes_cost() {
    require_root();
    for v in [
        versions().first().unwrap().clone(),
        versions().last().unwrap().clone(),
    ] {
        let (events, f) = trace_json(&fixture(&v), &[], &["int", "100000"]);
        assert!(f.status.success(), "go{v}: {}", f.stderr);
        let summary = events.last().unwrap();
        let o = &summary["overhead"];
        assert_eq!(o["hit_cost_measured"], true, "go{v}: {o}");
        assert!(
            o["body_hit_cost_ns"].as_u64().unwrap() > 0
                && o["stepped_hit_cost_ns"].as_u64().unwrap() > 0
        );
        let families = o["families"].as_array().unwrap();
        let hits: u64 = families.iter().map(|f| f["hits"].as_u64().unwrap()).sum();
        let listed: u64 = summary["probe_hits"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(hits, listed, "go{v}: families {families:?} vs probe_hits");
        assert_eq!(
            o["estimated_ns"].as_u64().unwrap(),
            families
                .iter()
                .map(|f| f["estimated_ns"].as_u64().unwrap())
                .sum::<u64>()
        );
        // Measured from /proc in clock ticks (10 ms): a short run can read 0.
        assert!(o["target_cpu_ns"].is_u64(), "go{v}: {o}");
        assert!(o["budget_percent"].is_null());
    }
}
