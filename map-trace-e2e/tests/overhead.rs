//! The overhead budget: the cost of a probe hit is measured at start-up, every summary estimates
//! what the probes added, and `--max-overhead` detaches an opt-in family that exceeds it, after
//! which the target runs at full speed again.

use std::time::{Duration, Instant};

use map_trace_e2e::*;
use serde_json::Value;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `map-trace --format json ARGS` with its stdout piped into `cat > FILE`, and `cat`
/// stopped (SIGSTOP) for `stall`: map-trace's output blocks as soon as the pipe is full.
/// Returns the records, map-trace's stderr lines with the time each arrived (since the spawn),
/// and how it finished.
fn trace_into_stopped_consumer(
    args: &[&str],
    stall: Duration,
) -> (Vec<Value>, Vec<(Duration, String)>, Finished) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let out = temp_unique("stalled", "json");
    let mut cat = Command::new("sh")
        .arg("-c")
        .arg(format!("exec cat > '{}'", out.display()))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(cat.id() as i32, libc::SIGSTOP) };
    let t0 = Instant::now();
    let mut mt = cli()
        .args(["--format", "json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(cat.stdin.take().unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = mt.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        std::io::BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .map(|l| (t0.elapsed(), l))
            .collect::<Vec<_>>()
    });
    std::thread::sleep(stall);
    // SAFETY: as above.
    unsafe { libc::kill(cat.id() as i32, libc::SIGCONT) };
    let f = wait(mt, Duration::from_secs(180));
    let lines = lines.join().unwrap();
    assert!(cat.wait().unwrap().success());
    // The launched fixture shares map-trace's stdout: its own lines are not JSON.
    let text = std::fs::read_to_string(&out).unwrap();
    let records: String = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    (json_lines(&records), lines, f)
}

/// The budget holds on its own clock: with the output stopped (a consumer under SIGSTOP for
/// 10 s, so every write of map-trace's blocks) and the debug build falling behind the event
/// rate, `--slices` is still detached within 1 s of the first window it is over budget in.
#[test]
fn max_overhead_detaches_slices_and_the_target_speeds_up() {
    require_root();
    let v = versions().into_iter().last().unwrap();
    let fx = fixture(&v);
    let (events, lines, f) = trace_into_stopped_consumer(
        &[
            "--slices",
            "--max-overhead",
            "5",
            "--",
            fx.to_str().unwrap(),
            "rounds",
            "300",
            "2000",
        ],
        Duration::from_secs(10),
    );
    let stderr: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert!(f.status.success(), "go{v}: {stderr:?}");
    let at = |prefix: &str| {
        lines
            .iter()
            .find(|(_, l)| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {stderr:?}"))
            .0
    };
    let (attached, detached_at) = (
        at("map-trace: attached"),
        at("map-trace: detached --slices"),
    );
    // Budget windows are 250 ms of wall time with at least 20 ms of the target's CPU; the
    // target burns CPU from the start, so the first window ends ~250 ms after attaching, and
    // the detach must follow it within 1 s.
    let latency = detached_at.saturating_sub(attached);
    eprintln!("attached → detached with the output stopped: {latency:?}");
    assert!(
        latency < Duration::from_millis(250 + 1000),
        "detached {latency:?} after attaching"
    );
    assert!(
        detached_at < Duration::from_secs(10),
        "not while the consumer was stopped"
    );
    let rounds: Vec<f64> = stderr
        .iter()
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
    assert_eq!(summary["event"], "summary");
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
    // Nothing was dropped silently: what the stalled output made the ring drop is reported.
    let lost = summary["lost"].as_u64().unwrap();
    eprintln!("lost while the output was stopped: {lost}");
    if lost > 0 {
        let warning = format!("map-trace: warning: {lost} events lost");
        assert!(stderr.iter().any(|l| l.starts_with(&warning)), "{stderr:?}");
    }
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

/// With only the default probes, on a program that fills thousands of small maps, the default
/// families alone exceed a 5% budget. The costliest go first and the events stay: on Swiss maps
/// the single-stepped resize timing (`timed_resizes`; resizes keep coming, untimed), on
/// hash-bucket maps the growth-end probe (`growth_ends`; ends are inferred from then on). The
/// map event probes, still over budget alone, are then sampled, never detached for good.
#[test]
fn max_overhead_sheds_the_default_timing_and_growth_ends_but_keeps_the_events() {
    require_root();
    let pick = [
        classic_versions().last().cloned(),
        swiss_versions().last().cloned(),
    ];
    for v in pick.into_iter().flatten() {
        let fx = fixture(&v);
        let (events, f) = trace_json(
            &fx,
            &["--max-overhead", "5"],
            // Long enough (~3.5 s here with the debug build) that sampling windows open well
            // after the shed: at a duty near 0.1 one opens about every second, and 600 rounds
            // (1.4 s) sometimes ended before the first one past the 500 ms mark below.
            &["maprounds", "1500", "2000", "20"],
        );
        assert!(f.status.success(), "go{v}: {}", f.stderr);
        let swiss = is_swiss(&v);
        let shed = if swiss {
            "timed_resizes"
        } else {
            "growth_ends"
        };
        let detached: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "probes_detached" && e["sampled_duty"].is_null())
            .collect();
        let names: Vec<&str> = detached
            .iter()
            .map(|d| d["family"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec![shed], "go{v}: {}", f.stderr);
        // Then the event probes are sampled, after the shed.
        let sampled = events
            .iter()
            .find(|e| e["event"] == "probes_detached" && e["sampled_duty"].is_number())
            .unwrap_or_else(|| panic!("go{v}: the events were not sampled: {}", f.stderr));
        assert_eq!(sampled["family"], "maps");
        assert!(sampled["time_ns"].as_u64() >= detached[0]["time_ns"].as_u64());
        assert!(detached[0]["flag"].is_null());
        assert!(detached[0]["share_percent"].as_f64().unwrap() > 0.0);
        let t = detached[0]["time_ns"].as_u64().unwrap();
        assert!(
            f.stderr.contains(&format!("map-trace: detached {shed}:")),
            "go{v}: {}",
            f.stderr
        );
        // The events keep coming after the shed, for the whole run (1500 rounds of 2000 maps),
        // in the windows the sampling leaves attached.
        let (grow_kind, resize_kind) = if swiss {
            ("map_small_to_table", "map_table_grow")
        } else {
            ("map_grow", "map_grow")
        };
        let late = |kind: &str| {
            events
                .iter()
                .filter(|e| e["event"] == kind && e["time_ns"].as_u64().unwrap() > t + 500_000_000)
                .collect::<Vec<_>>()
        };
        assert!(
            late(grow_kind).len() > 1_000,
            "go{v}: {} late",
            late(grow_kind).len()
        );
        if swiss {
            // Resizes after the shed are untimed; some before it were timed.
            let after = late(resize_kind);
            assert!(after.len() > 1_000, "go{v}");
            assert!(after.iter().all(|e| e["duration_ns"].is_null()), "go{v}");
            assert!(events.iter().any(|e| e["event"] == resize_kind
                && e["time_ns"].as_u64().unwrap() < t
                && e["duration_ns"].as_u64().is_some_and(|d| d > 0)));
        } else {
            // Ends after the shed come from the next grow of the same map (`inferred`); none
            // from the probe (allow the unregistering window).
            assert!(events.iter().any(|e| e["event"] == "map_evacuated"
                && e["inferred"] == true
                && e["time_ns"].as_u64().unwrap() > t));
            let probed = events
                .iter()
                .filter(|e| {
                    e["event"] == "map_evacuated"
                        && e["inferred"] == false
                        && e["time_ns"].as_u64().unwrap() > t + 500_000_000
                })
                .count();
            assert_eq!(probed, 0, "go{v}");
        }
        let summary = events.last().unwrap();
        assert_eq!(summary["event"], "summary");
        let fam = |name: &str| {
            summary["overhead"]["families"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["family"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("go{v}: no family {name}"))
        };
        assert_eq!(fam(shed)["detached_at_ns"], detached[0]["time_ns"]);
        assert_eq!(fam("maps")["detached_at_ns"], sampled["time_ns"]);
        assert!(summary["sampled"]["coverage"].as_f64().unwrap() < 1.0);
        assert!(
            f.stderr.contains("map-trace: sampling maps:"),
            "go{v}: {}",
            f.stderr
        );
        if swiss {
            // The target speeds up once each resize stops paying a single-stepped RET.
            let rounds: Vec<f64> = f
                .stderr
                .lines()
                .filter_map(|l| l.strip_prefix("round_ns ")?.parse().ok())
                .collect();
            assert_eq!(rounds.len(), 1500);
            let (before, after) = (median(rounds[..2].to_vec()), median(rounds[100..].to_vec()));
            eprintln!("go{v}: {before} ns/round timed, {after} after the shed");
            assert!(before > 1.3 * after, "go{v}: {before} vs {after}");
        }
    }
}

/// When the map event probes alone exceed the budget, they do not go dark: they are
/// duty-cycled (attached for a window, detached, again) at the rate the budget allows, every
/// output says the counts are a sample, and the summary scales them. The ground truth is
/// exact: the fixture serves 120,000 requests at 20,000 a second, each growing two small maps
/// once (a 12-key `map[string]any` from JSON, a 10-entry header map), as a service whose load
/// does not depend on its speed. The scaled count must be within 15% of it.
#[test]
fn max_overhead_samples_the_event_probes_and_scales_the_counts() {
    require_root();
    let pick = [
        classic_versions().last().cloned(),
        swiss_versions().last().cloned(),
    ];
    let n = 120_000u64;
    for v in pick.into_iter().flatten() {
        let (events, f) = trace_json(
            &fixture(&v),
            &["--max-overhead", "5"],
            &["paced", &n.to_string(), "20000"],
        );
        assert!(f.status.success(), "go{v}: {}", f.stderr);
        let truth = 2 * n;
        let sampled: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "probes_detached" && e["sampled_duty"].is_number())
            .collect();
        assert_eq!(sampled.len(), 1, "go{v}: {}", f.stderr);
        assert_eq!(sampled[0]["family"], "maps");
        let duty = sampled[0]["sampled_duty"].as_f64().unwrap();
        assert!(duty > 0.0 && duty < 1.0, "go{v}: duty {duty}");
        assert!(
            f.stderr.contains("map-trace: sampling maps:"),
            "go{v}: {}",
            f.stderr
        );
        let summary = events.last().unwrap();
        assert_eq!(summary["event"], "summary");
        let s = &summary["sampled"];
        let (coverage, seen, estimated) = (
            s["coverage"].as_f64().unwrap(),
            summary["events"].as_u64().unwrap(),
            s["events_estimated"].as_u64().unwrap(),
        );
        assert_eq!(
            s["events_before"].as_u64().unwrap() + s["events_sampled"].as_u64().unwrap(),
            seen
        );
        let err = estimated as f64 / truth as f64 - 1.0;
        eprintln!(
            "go{v}: duty {duty:.3}, coverage {coverage:.3}: {seen} seen, {estimated} estimated, {truth} true ({:+.1}%)",
            err * 100.0
        );
        assert!(coverage < 0.5, "go{v}: coverage {coverage}");
        // A sample: far fewer seen than happened, and the estimate close to the truth.
        assert!(seen < truth * 3 / 4, "go{v}: {seen} seen of {truth}");
        assert!(
            err.abs() < 0.15,
            "go{v}: estimated {estimated}, truth {truth}"
        );
        // Events keep arriving while sampled, to the end of the run.
        let since = s["since_ns"].as_u64().unwrap();
        let last = events
            .iter()
            .filter(|e| e["event"].as_str().unwrap().starts_with("map_"))
            .filter_map(|e| e["time_ns"].as_u64())
            .max()
            .unwrap();
        assert!(
            last > since + 2_000_000_000,
            "go{v}: nothing late in the run"
        );
        let maps = summary["overhead"]["families"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["family"] == "maps")
            .unwrap()
            .clone();
        assert_eq!(maps["detached_at_ns"], sampled[0]["time_ns"]);
    }
}

/// Without `--max-overhead`, the budget is on at 5% (the summary says so); `--max-overhead 0`
/// turns it off.
#[test]
fn the_budget_is_on_by_default_at_5_percent() {
    require_root();
    let v = versions().last().unwrap().clone();
    let run = |flags: &[&str]| {
        let out = temp_unique("budget-default", "json");
        let mut c = std::process::Command::new(bin());
        c.args(flags)
            .args(["--format", "json", "-o", out.to_str().unwrap(), "--"])
            .arg(fixture(&v))
            .args(["int", "1000"]);
        let f = run_to_end(c);
        assert!(f.status.success(), "go{v}: {}", f.stderr);
        let events = json_lines(&std::fs::read_to_string(&out).unwrap());
        events.last().unwrap()["overhead"]["budget_percent"].clone()
    };
    assert_eq!(run(&[]), 5.0);
    assert!(run(&["--max-overhead", "0"]).is_null());
    assert_eq!(run(&["--max-overhead", "2"]), 2.0);
}
