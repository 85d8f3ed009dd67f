//! The agent seen by independent tools: a real Prometheus server (Debian's) scrapes it and a
//! PromQL query returns the fixture's grows; `promtool check metrics` accepts the exposition.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use map_trace_e2e::*;

fn prometheus_dir() -> std::path::PathBuf {
    std::env::var_os("MAP_TRACE_PROMETHEUS_DIR")
        .expect("MAP_TRACE_PROMETHEUS_DIR is not set: run with `cargo xtask test`")
        .into()
}

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
    let dir = temp("prometheus");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: map-trace\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            agent.port
        ),
    )
    .unwrap();
    let web = free_port();
    let mut prom = Command::new(prometheus_dir().join("prometheus"))
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
    let query = format!(
        "sum(map_trace_map_grows_total{{kind=\"double\",executable=\"growth\",site=\"{site}\"}})"
    );
    let url = format!("/api/v1/query?query={}", encode(&query));
    let start = Instant::now();
    let answer = loop {
        if let Some(body) = http_get(web, &url) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if let Some(r) = v["data"]["result"].as_array().and_then(|r| r.first()) {
                break r["value"][1].as_str().unwrap().to_string();
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = prom.kill();
            panic!("Prometheus returned no series for {query} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("PromQL {query} = {answer} after {:?}", start.elapsed());
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(answer, expected.to_string());
    w.exit();
    let (f, _) = agent.stop();
    assert!(f.status.success());
}
