//! End-to-end map health: the fixture's `health` mode keeps some maps and drops others, reuses
//! the freed slots, empties maps that stay reachable, keeps a large map's storage after
//! deleting most of it, and grows a map on a goroutine stack; map-trace, attached by pid,
//! samples them every 100 ms. Checked against what the fixture itself reports (addresses,
//! `len`, `runtime.MemStats.HeapAlloc`).

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Child,
    time::{Duration, Instant},
};

use map_trace_e2e::*;
use serde_json::Value;

/// map-trace's JSON lines, read as they come.
struct Out {
    lines: Lines,
    events: Vec<Value>,
    /// map-trace's stderr.
    err: Lines,
    /// map-trace's pid.
    pid: u32,
}

impl Out {
    /// map-trace attached to `pid` with `args`, its lines read as they come.
    fn attach(pid: u32, args: &[&str]) -> (Child, Self) {
        let (mt, lines, err) = attach_to(pid, args);
        let out = Self {
            pid: mt.id(),
            lines,
            events: vec![],
            err,
        };
        (mt, out)
    }

    /// Reads lines until `done(events)` holds, or fails after `limit`.
    fn until(&mut self, what: &str, limit: Duration, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.events) {
                return;
            }
            if Instant::now() >= deadline {
                // What sampling did until now: stop map-trace for its summary.
                // SAFETY: kill(2) on the pid of a child this test started.
                unsafe { libc::kill(self.pid as i32, libc::SIGINT) };
                let last = self
                    .lines
                    .wait_for("{\"event\":\"summary\"", Duration::from_secs(20));
                let s: Value = serde_json::from_str(&last).unwrap_or_default();
                panic!(
                    "{what}: not within {limit:?} ({} records read, the last {}, now {}); map-trace said {:?}; its summary's sampling: {}",
                    self.events.len(),
                    self.events.last().map(|e| e.to_string()).unwrap_or_default(),
                    now_ns(),
                    self.err.now(),
                    s["sampling"]
                );
            }
            // One line, then every line already there: `done` runs once per batch (map-trace
            // writes thousands of lines a second here; a check per line fell behind them).
            let l = self
                .lines
                .wait_for("{", deadline.saturating_duration_since(Instant::now()));
            self.events
                .push(serde_json::from_str(&l).expect("a JSON line"));
            for l in self.lines.arrived() {
                self.events
                    .push(serde_json::from_str(&l).expect("a JSON line"));
            }
        }
    }

    /// Waits up to `limit` for a line, then takes every line already there (the checks run
    /// once per batch: map-trace writes ~1,000 lines a second here).
    fn read(&mut self, limit: Duration) {
        let l = self.lines.wait_for("{", limit);
        self.events
            .push(serde_json::from_str(&l).expect("a JSON line"));
        for l in self.lines.arrived() {
            self.events
                .push(serde_json::from_str(&l).expect("a JSON line"));
        }
    }

    /// Distinct sampling rounds (their `time_ns`) after `after_ns`.
    fn rounds_after(events: &[Value], after_ns: u64) -> usize {
        events
            .iter()
            .filter(|e| e["event"] == "map_sample")
            .filter_map(|e| e["time_ns"].as_u64())
            .filter(|&t| t > after_ns)
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// Unix ns now: samples stamped later were read after what the fixture did before it.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn samples<'a>(events: &'a [Value], map: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == "map_sample" && e["map"] == map)
        .collect()
}

/// The fixture's `KIND 0x… LEN …` lines.
fn reported(stderr: &[String], kind: &str) -> Vec<(String, Vec<i64>)> {
    stderr
        .iter()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == kind).then(|| {
                let addr = f.next().unwrap().to_string();
                let nums = f.filter_map(|x| x.parse().ok()).collect();
                (addr, nums)
            })
        })
        .collect()
}

fn health(version: &str, suffix: &str) {
    let tag = format!("go{version}{suffix}");
    let exe = fixture_variant(version, suffix);
    let mut w = start_waiting(&exe, &["health", "40", "1000"]);
    let report = temp_unique("health-report", "html");
    let report_arg = report.to_str().unwrap();
    let (mt, mut out) = Out::attach(
        w.id(),
        &[
            "--report",
            report_arg,
            "--format",
            "json",
            "--sample-interval",
            "100ms",
        ],
    );

    // Filled: every map the fixture grew and keeps reachable is sampled with its len.
    w.step("go", "phase filled");
    // Samples stamped before this may have been read while the fixture was still filling.
    let filled = now_ns();
    let seen = w.stderr_seen().to_vec();
    let kept = reported(&seen, "kept");
    let dropped = reported(&seen, "dropped");
    let big = reported(&seen, "big").remove(0).0;
    let (sized, sized_nums) = reported(&seen, "sized").remove(0);
    assert_eq!((kept.len(), dropped.len()), (40, 40), "{tag}");
    let all: Vec<String> = kept
        .iter()
        .chain(&dropped)
        .map(|m| m.0.clone())
        .chain([big.clone(), sized.clone()])
        .collect();
    out.until(
        &format!("{tag}: a sample of every map"),
        Duration::from_secs(30),
        |ev| {
            all.iter().all(|m| {
                samples(ev, m)
                    .last()
                    .is_some_and(|s| s["time_ns"].as_u64().unwrap() > filled)
            })
        },
    );
    for (m, nums) in kept.iter().chain(&dropped) {
        let last = *samples(&out.events, m).last().unwrap();
        assert_eq!(last["entries"].as_i64(), Some(nums[0]), "{tag} {last}");
        assert_eq!(last["type"], "map[int]int", "{tag} {last}");
    }
    // The heap grew by what the map holds (HeapAlloc around it, after GCs; other small
    // allocations of the fixture in between make the margin).
    let s = *samples(&out.events, &sized).last().unwrap();
    let storage = s["storage_bytes"].as_i64().unwrap();
    let delta = sized_nums[1];
    assert!(
        (storage - delta).abs() * 50 <= delta,
        "{tag}: storage {storage} vs HeapAlloc delta {delta} (2% margin)"
    );
    assert_eq!(s["entries"], 50000);
    // Grown in one go: what it holds is what it needs, but for a hash-bucket growth left
    // unfinished (no write since), whose old array is still held.
    let retained = s["retained_bytes"].as_i64().unwrap();
    assert!(retained * 2 < storage, "{tag}: {s}");

    // Kept after deletes: 200,000 entries deleted down to 1,000.
    out.until(
        &format!("{tag}: the kept-after-deletes finding"),
        Duration::from_secs(30),
        |ev| {
            ev.iter()
                .any(|e| e["event"] == "map_kept_after_deletes" && e["map"] == big)
        },
    );
    let f = out
        .events
        .iter()
        .find(|e| e["event"] == "map_kept_after_deletes")
        .unwrap();
    assert_eq!(f["map"], big, "{tag}: only the big map qualifies: {f}");
    assert_eq!(f["site"]["function"], "main.bigMap", "{tag} {f}");
    // Raised once the deletes stopped: at the 1,000 left, or (a fixture descheduled for a
    // whole interval mid-delete) where the sample before it saw the same count.
    let before: Vec<&Value> = samples(&out.events, &big)
        .into_iter()
        .filter(|s| s["time_ns"].as_u64() < f["time_ns"].as_u64())
        .collect();
    assert!(
        f["entries"] == 1000 || before.last().is_some_and(|s| s["entries"] == f["entries"]),
        "{tag}: raised while the map was still being emptied: {f}; samples before: {before:?}"
    );
    assert!(f["retained_bytes"].as_u64().unwrap() > 3 << 20, "{tag} {f}");
    assert!(f["advice"].as_str().unwrap().contains("maps.Clone"), "{f}");

    // Dropped, two GCs: every dropped map is reported freed, no kept map is.
    w.step("next", "phase dropped");
    let unfreed = |ev: &[Value]| -> Vec<String> {
        dropped
            .iter()
            .filter(|(m, _)| {
                !ev.iter()
                    .any(|e| e["event"] == "map_freed" && &e["map"] == m)
            })
            .map(|(m, _)| {
                let last = samples(ev, m)
                    .last()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                format!("{m}: {last}")
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !unfreed(&out.events).is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{tag}: dropped maps not freed within 30 s: {:?}; map-trace said {:?}",
            unfreed(&out.events),
            out.err.now()
        );
        out.read(left);
    }
    let freed: BTreeMap<String, u64> = out
        .events
        .iter()
        .filter(|e| e["event"] == "map_freed")
        .map(|e| {
            (
                e["map"].as_str().unwrap().to_string(),
                e["time_ns"].as_u64().unwrap(),
            )
        })
        .collect();
    for (m, _) in &kept {
        assert!(
            !freed.contains_key(m),
            "{tag}: kept map {m} reported freed; its records: {:?}",
            out.events
                .iter()
                .filter(|e| e["map"] == m.as_str() && e["event"] != "map_grow")
                .filter(|e| e["event"] != "map_evacuated")
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        );
    }

    // Reused: 20,000 new small maps take the freed slots; no dropped map comes back.
    w.step("next", "phase reused");
    let t = now_ns();
    out.until(
        &format!("{tag}: three rounds after reuse"),
        Duration::from_secs(30),
        |ev| Out::rounds_after(ev, t) >= 3,
    );

    // Emptied (deletes, clear) and a GC with the maps reachable: still tracked.
    w.step("next", "phase emptied");
    let t = now_ns();
    out.until(
        &format!("{tag}: three rounds after emptying"),
        Duration::from_secs(30),
        |ev| Out::rounds_after(ev, t) >= 3,
    );
    for (m, _) in &kept[..2] {
        let last = *samples(&out.events, m).last().unwrap();
        assert!(
            last["time_ns"].as_u64().unwrap() > t,
            "{tag}: {m} no longer sampled"
        );
        assert_eq!(last["entries"], 0, "{tag} {last}");
        assert!(last["retained_bytes"].as_u64().unwrap() > 0, "{tag} {last}");
    }
    for (m, at) in &freed {
        for s in samples(&out.events, m) {
            assert!(
                s["time_ns"].as_u64().unwrap() <= *at,
                "{tag}: a dropped map came back after it was freed: {s}"
            );
        }
    }
    // A map on a goroutine stack is never reported.
    assert!(
        !out.events
            .iter()
            .any(|e| e["event"] == "map_sample" && e["site"]["function"] == "main.stackMap"),
        "{tag}: a stack map was sampled"
    );

    w.step("next", "done");
    let fin = w.exit();
    assert!(fin.status.success(), "{tag}: {}", fin.stderr);
    let f = wait(mt, Duration::from_secs(60));
    assert!(f.status.success(), "{tag}: {:?}", out.err.rest());
    let rest = out.lines.rest();
    let last = rest.last().unwrap();
    let summary: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{tag}: {e}: …{}", &last[last.len().saturating_sub(300)..]));
    assert_eq!(summary["event"], "summary", "{tag}");
    assert_eq!(summary["sampling"]["enabled"], true, "{tag}");
    let keep_site = summary["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"]["function"] == "main.keepMaps")
        .unwrap();
    assert_eq!(keep_site["live"]["maps"], 40, "{tag} {keep_site}");
    // The report: the sites table and a chart of the map holding the most.
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("<section id=\"held\">"),
        "{tag}: no held section"
    );
    assert!(
        html.contains(&format!("<figure class=\"held-map\" data-map=\"{big}\">")),
        "{tag}: no chart of the big map"
    );
    assert!(html.contains("main.keepMaps"), "{tag}");
    assert_eq!(keep_site["live"]["entries"], 38 * 1000, "{tag} {keep_site}");
}

#[test]
fn health_samples_live_maps_forgets_freed_ones_and_finds_kept_storage() {
    require_root();
    for v in versions() {
        if v == "1.18" || v == "1.20" {
            continue;
        }
        health(&v, "");
    }
    // Release-style builds: mheap_ from mallocinit's code; a PIE's load address.
    let vs = versions();
    for (v, suffix) in [
        (vs.first().unwrap().as_str(), "-stripped"),
        (vs.last().unwrap().as_str(), "-pie-stripped"),
        (vs.last().unwrap().as_str(), "-cgo"),
    ] {
        health(v, suffix);
    }
}

/// The sum of the samples of gauge `name` whose site label starts with `function` (the line
/// number is the fixture's).
fn site_sum(exposition: &str, name: &str, function: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| l.contains(&format!("site=\"{function} (")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The agent samples the maps of the processes it traces: its gauges follow what the maps
/// hold, and the series of freed maps go away.
#[test]
fn agent_gauges_follow_the_maps_and_freed_ones_go_away() {
    require_root();
    let (classic, swiss) = (classic_versions(), swiss_versions());
    for v in [&classic[0], &swiss[swiss.len() - 1]] {
        let agent = Agent::start(&["--sample-interval", "200ms"]);
        let mut w = start_waiting(&fixture(v), &["health", "40", "1000"]);
        agent.wait_until(Duration::from_secs(10), "the fixture traced", |m| {
            sample(m, "map_trace_attached_processes", &[]) >= 1.0
        });
        w.step("go", "phase filled");
        let seen = w.stderr_seen().to_vec();
        let sized = reported(&seen, "sized").remove(0).1;
        let took = agent.wait_until(Duration::from_secs(30), "the filled maps' gauges", |m| {
            site_sum(m, "map_trace_map_entries", "main.keepMaps") == 40_000.0
                && site_sum(m, "map_trace_map_entries", "main.dropMaps") == 40_000.0
                && site_sum(m, "map_trace_map_entries", "main.bigMap") == 1000.0
                && site_sum(m, "map_trace_map_entries", "main.sizedMap") == 50_000.0
        });
        let m = agent.metrics();
        let retained = site_sum(&m, "map_trace_map_retained_bytes", "main.bigMap");
        assert!(
            retained > 3.0 * 1048576.0,
            "go{v}: bigMap retained {retained}\n{m}"
        );
        // The same storage the CLI reports, against the fixture's HeapAlloc delta.
        let storage = site_sum(&m, "map_trace_map_storage_bytes", "main.sizedMap");
        let delta = sized[1] as f64;
        assert!(
            (storage - delta).abs() <= delta * 0.02,
            "go{v}: sizedMap storage {storage} vs HeapAlloc delta {delta}"
        );
        assert_eq!(site_sum(&m, "map_trace_map_entries", "main.stackMap"), 0.0);
        w.step("next", "phase dropped");
        let gone = agent.wait_until(
            Duration::from_secs(30),
            "the dropped maps' series gone",
            |m| {
                !m.contains("site=\"main.dropMaps (")
                    || !m.lines().any(|l| {
                        l.starts_with("map_trace_map_entries{") && l.contains("main.dropMaps")
                    })
            },
        );
        let m = agent.metrics();
        assert_eq!(
            site_sum(&m, "map_trace_map_entries", "main.keepMaps"),
            40_000.0,
            "go{v}: kept maps stay"
        );
        println!("go{v}: gauges in {took:?}, dropped maps' series gone {gone:?} after the GCs");
        w.step("next", "phase reused");
        w.step("next", "phase emptied");
        w.step("next", "done");
        let f = w.exit();
        assert!(f.status.success(), "go{v}: {}", f.stderr);
        // The process exited: its series go at the next round.
        agent.wait_until(
            Duration::from_secs(30),
            "the exited process's series gone",
            |m| !m.lines().any(|l| l.starts_with("map_trace_map_entries{")),
        );
    }
}

/// A map that finished growing before map-trace attached by pid is found by the `--discover`
/// window, sampled with what it holds, and reported kept after deletes, at the code that uses
/// it; a presized map that never grew is found too. Every release (the map access functions
/// differ: classic `runtime.mapaccess*`, Swiss linknamed ones), stripped and PIE.
#[test]
fn discovery_finds_maps_that_grew_before_the_attach() {
    require_root();
    let vs: Vec<String> = versions()
        .into_iter()
        .filter(|v| v != "1.18" && v != "1.20")
        .collect();
    let mut runs: Vec<(String, &str)> = vs.iter().map(|v| (v.clone(), "")).collect();
    runs.push((vs.first().unwrap().clone(), "-stripped"));
    runs.push((vs.last().unwrap().clone(), "-pie-stripped"));
    for (v, suffix) in &runs {
        discovery(v, suffix);
    }
}

fn discovery(version: &str, suffix: &str) {
    let tag = format!("go{version}{suffix}");
    let exe = fixture_variant(version, suffix);
    let mut w = start_waiting(&exe, &["old", "200000"]);
    // The maps are built, and only read and deleted from now on.
    w.step("go", "phase built");
    let seen = w.stderr_seen().to_vec();
    let (big, big_nums) = reported(&seen, "oldbig").remove(0);
    let (sized, sized_nums) = reported(&seen, "oldsized").remove(0);
    let (mt, mut out) = Out::attach(
        w.id(),
        &[
            "--format",
            "json",
            "--sample-interval",
            "100ms",
            "--discover",
            "1s",
        ],
    );
    out.until(
        &format!("{tag}: the old map found and kept after deletes"),
        Duration::from_secs(30),
        |ev| {
            ev.iter()
                .any(|e| e["event"] == "map_kept_after_deletes" && e["map"] == big.as_str())
                && !samples(ev, &sized).is_empty()
        },
    );
    let b = *samples(&out.events, &big).last().unwrap();
    assert_eq!(b["discovered"], true, "{tag} {b}");
    assert_eq!(b["entries"], big_nums[0], "{tag} {b}");
    assert_eq!(b["site"]["function"], "main.useOld", "{tag} {b}");
    // 200,000 keys' storage for 1,000.
    assert!(
        b["retained_bytes"].as_u64().unwrap() > 4 * 1024 * 1024,
        "{tag} {b}"
    );
    let kept = out
        .events
        .iter()
        .find(|e| e["event"] == "map_kept_after_deletes" && e["map"] == big.as_str())
        .unwrap();
    assert!(
        kept["advice"]
            .as_str()
            .unwrap()
            .contains("used at main.useOld"),
        "{tag} {kept}"
    );
    let s = *samples(&out.events, &sized).last().unwrap();
    assert_eq!(s["discovered"], true, "{tag} {s}");
    assert_eq!(s["entries"], sized_nums[0], "{tag} {s}");
    // Presized for its 5,000 entries: little retained.
    assert!(
        s["retained_bytes"].as_u64().unwrap() < s["storage_bytes"].as_u64().unwrap() / 2,
        "{tag} {s}"
    );

    w.step("stop", "done");
    let fin = w.exit();
    assert!(fin.status.success(), "{tag}: {}", fin.stderr);
    let f = wait(mt, Duration::from_secs(60));
    assert!(f.status.success(), "{tag}: {:?}", out.err.rest());
    let rest = out.lines.rest();
    let summary: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary", "{tag}");
    let d = &summary["sampling"]["discovery"];
    assert_eq!(d["ended"], "window", "{tag} {d}");
    assert!(d["hits"].as_u64().unwrap() > 0, "{tag} {d}");
    assert!(d["added"].as_u64().unwrap() >= 2, "{tag} {d}");
    let m = summary_map(
        &rest
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect::<Vec<Value>>(),
        &big,
    )
    .clone();
    assert_eq!(m["discovered"], true, "{tag} {m}");
    assert_eq!(m["health"]["entries"], big_nums[0], "{tag} {m}");
    // Both maps, each at the line that uses it.
    let live: u64 = summary["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["site"]["function"] == "main.useOld" && s["discovered"] == true)
        .map(|s| s["live"]["maps"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(live, 2, "{tag}: {}", summary["sites"]);
    println!(
        "{tag}: discovery {d}; old map {} entries, {} retained",
        b["entries"], b["retained_bytes"]
    );
}
