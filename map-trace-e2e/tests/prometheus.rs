//! The agent seen by independent tools: a real Prometheus server (Debian's) scrapes it and a
//! PromQL query returns the fixture's grows; `promtool check metrics` accepts the exposition.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use map_trace_e2e::*;

/// Percent-encodes a query-string value.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_agent_and_promql_returns_the_grows() {
    require_root();
    let v = classic_versions()
        .into_iter()
        .last()
        .expect("a classic version");
    let expected = expected_sequential(100_000, load_factor_num(&v)).len();
    let site = format!("main.fillInt (main.go:{})", fill_int_line());

    let agent = Agent::start(&[]);
    let mut w = start_waiting(&fixture(&v), &["int", "100000"]);
    agent.wait_until(Duration::from_secs(10), "attach", |m| {
        sample(m, "map_trace_attached_processes", &[]) == 1.0
    });
    w.work();

    // promtool lints the exposition as Prometheus text.
    let exposition = agent.metrics();
    let mut lint = Command::new(prometheus_dir().join("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A real Prometheus server scraping every second.
    let prom = Prometheus::scraping(agent.port, "prometheus");
    let query = format!(
        "sum(map_trace_map_grows_total{{kind=\"double\",executable=\"growth\",site=\"{site}\"}})"
    );
    let start = Instant::now();
    let answer = prom.until(&query, Duration::from_secs(60), |v| v.is_some());
    eprintln!("PromQL {query} = {answer:?} after {:?}", start.elapsed());
    drop(prom);
    assert_eq!(answer, Some(expected as f64));
    w.exit();
    let (f, _) = agent.stop();
    assert!(f.status.success());
}

/// A Prometheus server scraping the agent every second; killed when dropped.
struct Prometheus {
    child: std::process::Child,
    web: u16,
}

impl Prometheus {
    fn scraping(agent_port: u16, name: &str) -> Self {
        let dir = temp(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: map-trace\n    static_configs:\n      - targets: ['127.0.0.1:{agent_port}']\n",
            ),
        )
        .unwrap();
        let web = free_port();
        let child = Command::new(prometheus_dir().join("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, web }
    }

    /// The value of an instant query's first series (`None`: no series, or not up yet).
    fn query(&self, q: &str) -> Option<f64> {
        let body = http_get(self.web, &format!("/api/v1/query?query={}", encode(q)))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let r = v["data"]["result"].as_array()?.first()?.clone();
        r["value"][1].as_str()?.parse().ok()
    }

    /// Polls `q` until `ok` holds for its value (`None`: no series), for at most `limit`.
    fn until(&self, q: &str, limit: Duration, ok: impl Fn(Option<f64>) -> bool) -> Option<f64> {
        let start = Instant::now();
        loop {
            let v = self.query(q);
            if ok(v) {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "PromQL {q}: last {v:?}, not as expected within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The map health gauges as a real Prometheus stores them agree with the CLI attached to the
/// same process, site by site, and with the fixture's own `len`; a dropped map's series goes
/// away after the GC.
#[test]
fn prometheus_map_health_gauges_match_the_cli() {
    require_root();
    let v = versions().last().unwrap().clone();
    let agent = Agent::start(&["--include", "growth", "--sample-interval", "1s"]);
    let mut w = start_waiting(&fixture(&v), &["health", "40", "1000"]);
    agent.wait_until(Duration::from_secs(10), "attach", |m| {
        sample(m, "map_trace_attached_processes", &[]) == 1.0
    });
    let (mt, out, err) = attach_to(
        w.id(),
        &[
            "--format",
            "json",
            "--sample-interval",
            "1s",
            "--discover",
            "0",
        ],
    );
    let prom = Prometheus::scraping(agent.port, "prometheus-health");
    w.step("go", "phase filled");
    let seen = w.stderr_seen().to_vec();
    let kept_len: u64 = seen
        .iter()
        .filter(|l| l.starts_with("kept "))
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    let gauge = |name: &str, function: &str| {
        format!("sum(max_over_time({name}{{executable=\"growth\",site=~\"{function} .*\"}}[2s]))")
    };
    // The maps are static until the next phase: wait for the gauges to settle there.
    let entries = prom
        .until(
            &gauge("map_trace_map_entries", "main.keepMaps"),
            Duration::from_secs(60),
            |v| v == Some(kept_len as f64),
        )
        .unwrap();
    let storage = prom
        .until(
            &gauge("map_trace_map_storage_bytes", "main.bigMap"),
            Duration::from_secs(60),
            |v| v.is_some_and(|b| b > 4.0 * 1024.0 * 1024.0),
        )
        .unwrap();
    let retained = prom
        .query(&gauge("map_trace_map_retained_bytes", "main.bigMap"))
        .unwrap();
    let dropped_q = gauge("map_trace_map_entries", "main.dropMaps");
    prom.until(&dropped_q, Duration::from_secs(60), |v| v == Some(40_000.0));

    // Dropped, and two GCs: the dropped maps' series go away; the kept ones stay.
    w.step("next", "phase dropped");
    let gone_q = "count(map_trace_map_entries{executable=\"growth\",site=~\"main.dropMaps .*\"})"
        .to_string();
    prom.until(&gone_q, Duration::from_secs(60), |v| v.is_none());
    assert_eq!(
        prom.query(&gauge("map_trace_map_entries", "main.keepMaps")),
        Some(kept_len as f64)
    );
    w.step("next", "phase reused");
    w.step("next", "phase emptied");
    w.step("next", "done");
    let fin = w.exit();
    assert!(fin.status.success(), "{}", fin.stderr);

    // The CLI's summary for the same process: the same numbers per site.
    let f = wait(mt, Duration::from_secs(60));
    assert!(f.status.success(), "{:?}", err.rest());
    let summary: serde_json::Value = serde_json::from_str(out.rest().last().unwrap()).unwrap();
    let live = |function: &str| {
        summary["sites"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["site"]["function"] == function)
            .map(|s| s["live"].clone())
            .next()
            .unwrap_or_else(|| panic!("no {function} site: {}", summary["sites"]))
    };
    let big = live("main.bigMap");
    eprintln!(
        "Prometheus: keepMaps {entries} entries, bigMap {storage} B storage, {retained} B retained; CLI bigMap {big}"
    );
    assert_eq!(big["storage_bytes"].as_f64().unwrap(), storage);
    assert_eq!(big["retained_bytes"].as_f64().unwrap(), retained);
    let (f, _) = agent.stop();
    assert!(f.status.success());
}

/// A process killed for a map misuse is counted by the agent, and a real Prometheus stores the
/// count under the misusing call site and kind, for a classic and a Swiss build.
#[test]
fn prometheus_counts_concurrent_map_fatal_errors() {
    require_root();
    let events = temp_unique("fatal-events", "jsonl");
    let agent = Agent::start(&["--include", "growth", "--events", events.to_str().unwrap()]);
    let prom = Prometheus::scraping(agent.port, "prometheus-fatal");
    let mut maps = vec![];
    let site = format!("main.raceWriter (crash.go:{})", crash_line("write"));
    let mut builds = vec![classic_versions().pop().unwrap()];
    builds.extend(swiss_versions().pop());
    for (i, v) in builds.iter().enumerate() {
        let w = start_crashing(&fixture(v), "race");
        agent.wait_until(Duration::from_secs(10), "attach", |m| {
            sample(m, "map_trace_attached_processes", &[]) == 1.0
        });
        let (f, stderr) = w.release_until_exit("go");
        assert_eq!(f.status.code(), Some(2), "go{v}: {stderr:?}");
        let crashmap = stderr
            .iter()
            .find_map(|l| l.strip_prefix("crashmap "))
            .unwrap()
            .to_string();
        maps.push(crashmap);
        // `go1.25.5`, or `go1.25.5 X:noswissmap` for a noswissmap build.
        let go_version = go_prefix(v);
        let q = format!(
            "sum(map_trace_concurrent_map_fatal_total{{executable=\"growth\",go_version=~\"{go_version}( .*)?\",kind=\"writes\",site=\"{site}\"}})"
        );
        let n = prom
            .until(&q, Duration::from_secs(60), |v| v.is_some())
            .unwrap();
        eprintln!("PromQL {q} = {n}");
        assert!((1.0..=2.0).contains(&n), "go{v}: {n} fatal errors counted");
        // Before the next build's process: this one is gone from the agent.
        if i + 1 < builds.len() {
            agent.wait_until(Duration::from_secs(10), "reap", |m| {
                sample(m, "map_trace_attached_processes", &[]) == 0.0
            });
        }
    }
    drop(prom);
    let (f, _) = agent.stop();
    assert!(f.status.success());
    // `--events` has the records, each with its process's map found in the frame.
    let text = std::fs::read_to_string(&events).unwrap();
    let records: Vec<serde_json::Value> = json_lines(&text)
        .into_iter()
        .filter(|e| e["event"] == "map_concurrent_write")
        .collect();
    for m in &maps {
        let of: Vec<_> = records.iter().filter(|r| r["map"] == m.as_str()).collect();
        assert!((1..=2).contains(&of.len()), "map {m}: {records:?}");
        for r in of {
            assert_eq!(r["site"]["function"], "main.raceWriter", "{r}");
            assert_eq!(r["type"], "map[int]int", "{r}");
        }
    }
}
