//! `map-trace agent`: Go processes of several versions found on their own (one before the
//! agent, the others after it, stripped and PIE among them), counted exactly per call site,
//! dropped when they exit; the agent exits 0 on SIGTERM.

use std::time::Duration;

use map_trace_e2e::*;

/// (fixture, expected small_to_table, table_grow, classic doublings) for `int 100000`.
fn expectations(version: &str) -> (u64, u64, u64) {
    if is_swiss(version) {
        (1, 6, 0)
    } else {
        (
            0,
            0,
            expected_sequential(100_000, load_factor_num(version)).len() as u64,
        )
    }
}

#[test]
fn agent_counts_every_go_process_by_site_and_drops_exited_ones() {
    require_root();
    let line = fill_int_line().to_string();
    let site = format!("main.fillInt (main.go:{line})");
    // Classic and Swiss versions, oldest and newest, each in its own build variant (so each
    // has its own `executable` label).
    let (classic, swiss) = (classic_versions(), swiss_versions());
    let cases: Vec<(String, &str)> = vec![
        (classic[0].clone(), ""),
        (swiss[0].clone(), "-stripped"),
        (classic[classic.len() - 1].clone(), "-pie-stripped"),
        (swiss[swiss.len() - 1].clone(), "-cgo"),
        (classic[classic.len() / 2].clone(), "-pie"),
        (swiss[swiss.len() / 2].clone(), "-cgo-stripped"),
    ];
    // Started before the agent: found by the start-up scan.
    let (v0, s0) = &cases[0];
    let mut early = start_waiting(&fixture_variant(v0, s0), &["int", "100000"]);
    let agent = Agent::start(&[]);
    agent.wait_until(Duration::from_secs(10), "the early process", |m| {
        sample(m, "map_trace_attached_processes", &[]) >= 1.0
    });
    let mut running = vec![];
    let mut delays = vec![];
    for (v, s) in &cases[1..] {
        let before = sample(
            &agent.metrics(),
            "map_trace_attach_delay_seconds_count",
            &[],
        );
        let w = start_waiting(&fixture_variant(v, s), &["int", "100000"]);
        // Started after the agent: announced by the exec tracepoint. The bound is generous;
        // the measured delay is printed.
        let took = agent.wait_until(Duration::from_secs(10), "a new process", |m| {
            sample(m, "map_trace_attach_delay_seconds_count", &[]) > before
        });
        delays.push(took);
        running.push((v.clone(), *s, w));
    }
    let m = agent.metrics();
    let sum = sample(&m, "map_trace_attach_delay_seconds_sum", &[]);
    let count = sample(&m, "map_trace_attach_delay_seconds_count", &[]);
    eprintln!(
        "exec → probes live: mean {:.1} ms over {count} executables; seen in metrics after {delays:?}",
        1000.0 * sum / count
    );
    // The attach delay is observed once the probes are live, a moment before the process
    // is registered (its symbols are opened between the two): wait for the gauge.
    agent.wait_until(Duration::from_secs(10), "every process attached", |m| {
        sample(m, "map_trace_attached_processes", &[]) == cases.len() as f64
    });

    early.work();
    for (_, _, w) in running.iter_mut() {
        w.work();
    }
    // Counted from the ring buffer within the agent's 100 ms drain tick.
    std::thread::sleep(Duration::from_millis(500));
    let m = agent.metrics();
    for (v, s) in &cases {
        let exe = format!("growth{s}");
        // The Go version label is the binary's own (e.g. go1.19.8 for Debian's 1.19).
        let version_label = format!("executable=\"{exe}\",go_version=\"{}", go_prefix(v));
        assert!(m.contains(&version_label), "{version_label}\n{m}");
        let labels = |kind: &'static str| {
            [
                ("executable", exe.as_str()),
                ("site", site.as_str()),
                ("kind", kind),
            ]
        };
        let (small, grow, double) = expectations(v);
        let got = |kind| sample(&m, "map_trace_map_grows_total", &labels(kind)) as u64;
        assert_eq!(got("double"), double, "{v}{s} classic doublings\n{m}");
        assert_eq!(got("small_to_table"), small, "{v}{s} small→table\n{m}");
        assert_eq!(got("table_grow"), grow, "{v}{s} table grows\n{m}");
        if is_swiss(v) {
            let splits = got("table_split");
            assert!(
                (125..=130).contains(&splits),
                "{v}{s}: {splits} splits\n{m}"
            );
            let resizes = sample(
                &m,
                "map_trace_map_grow_duration_seconds_count",
                &[("executable", exe.as_str())],
            ) as u64;
            // Every table resize is timed (small→table is not); runtime-internal maps grown
            // after attach count too.
            assert!(resizes >= 6 + splits, "{v}{s}: {resizes} timed resizes");
        }
        assert!(
            sample(
                &m,
                "map_trace_map_grow_bytes_total",
                &labels(if is_swiss(v) { "table_split" } else { "double" })
            ) > 0.0
        );
    }
    assert_eq!(sample(&m, "map_trace_lost_events_total", &[]), 0.0);

    // Exits: the processes leave the gauges, and their executables lose their probes.
    assert!(early.exit().status.success());
    for (_, _, w) in running {
        assert!(w.exit().status.success());
    }
    let took = agent.wait_until(Duration::from_secs(10), "exited processes dropped", |m| {
        sample(m, "map_trace_attached_processes", &[]) == 0.0
            && sample(m, "map_trace_attached_executables", &[]) == 0.0
    });
    eprintln!("exited processes dropped after {took:?}");
    // Series of exited processes stay (counters do not go backwards).
    assert!(
        sample(
            &agent.metrics(),
            "map_trace_map_grows_total",
            &[("site", site.as_str())]
        ) > 0.0
    );

    let (f, took) = agent.stop();
    eprintln!("SIGTERM → exit: {took:?}");
    assert!(f.status.success(), "agent exit: {:?}", f.status);
}

#[test]
fn agent_sigterm_detaches_and_leaves_targets_running() {
    require_root();
    let v = versions()
        .into_iter()
        .find(|v| is_swiss(v))
        .expect("a Swiss version");
    let mut w = start_waiting(&fixture(&v), &["int", "100000"]);
    let agent = Agent::start(&[]);
    agent.wait_until(Duration::from_secs(10), "attach", |m| {
        sample(m, "map_trace_attached_executables", &[]) == 1.0
    });
    let (f, took) = agent.stop();
    eprintln!("SIGTERM with 1 executable (5 probes) attached → exit: {took:?}");
    assert!(f.status.success());
    assert!(f.stderr.contains("detached 1 executables"), "{}", f.stderr);
    // The target works and exits normally after the agent left.
    w.work();
    assert!(w.exit().status.success());
}

#[test]
fn agent_filters_and_refuses_a_busy_port() {
    require_root();
    let v = versions().into_iter().next().unwrap();
    let agent = Agent::start(&["--exclude", "growth-str*"]);
    let mut a = start_waiting(&fixture_variant(&v, "-stripped"), &["int", "1000"]);
    let mut b = start_waiting(&fixture(&v), &["int", "1000"]);
    agent.wait_until(Duration::from_secs(10), "the allowed process", |m| {
        sample(m, "map_trace_attached_processes", &[]) == 1.0
    });
    a.work();
    b.work();
    std::thread::sleep(Duration::from_millis(300));
    let m = agent.metrics();
    assert_eq!(
        sample(
            &m,
            "map_trace_map_grows_total",
            &[("executable", "growth-stripped")]
        ),
        0.0,
        "{m}"
    );
    assert!(sample(&m, "map_trace_map_grows_total", &[("executable", "growth")]) > 0.0);

    // A second agent on the same port: one line, exit 2.
    let f = wait(
        std::process::Command::new(bin())
            .args([
                "agent",
                "--metrics-addr",
                &format!("127.0.0.1:{}", agent.port),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(30),
    );
    assert_eq!(f.status.code(), Some(2), "{}", f.stderr);
    assert_eq!(f.stderr.trim().lines().count(), 1, "{}", f.stderr);
    assert!(f.stderr.contains("cannot serve metrics"), "{}", f.stderr);
    a.exit();
    b.exit();
    agent.stop();
}

/// A "container" built from kernel pieces: the fixture runs from a tmpfs mounted in its own
/// mount namespace (invisible to the agent's), inside a cgroup shaped like a Kubernetes pod's
/// (systemd driver, containerd). The agent must reach the file through /proc/PID/exe and label
/// the series with the pod UID and container id.
#[test]
fn agent_traces_a_process_in_another_mount_namespace_and_labels_its_pod() {
    require_root();
    let v = classic_versions().into_iter().last().unwrap();
    let expected = expected_sequential(100_000, load_factor_num(&v)).len() as f64;
    let uid = "0c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e5f";
    let cid = "3f4e8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";
    // cgroup v2: the unified hierarchy of a hybrid host, or the root of a pure v2 host.
    let root = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "/sys/fs/cgroup".to_string()
    } else {
        "/sys/fs/cgroup/unified".to_string()
    };
    let levels = [
        "kubepods.slice".to_string(),
        "kubepods-besteffort.slice".to_string(),
        format!("kubepods-besteffort-pod{}.slice", uid.replace('-', "_")),
        format!("cri-containerd-{cid}.scope"),
    ];
    let cg = format!("{root}/{}", levels.join("/"));
    std::fs::create_dir_all(&cg).unwrap();

    let agent = Agent::start(&[]);
    let script = format!(
        "mount --make-rprivate / && mkdir -p /mnt/map-trace-ctr && \
         mount -t tmpfs none /mnt/map-trace-ctr && cp {} /mnt/map-trace-ctr/app && \
         echo $$ > {cg}/cgroup.procs && exec /mnt/map-trace-ctr/app -wait -hold int 100000",
        fixture(&v).display()
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--fork", "sh", "-c", &script]);
    let mut w = start_waiting_cmd(cmd);
    assert!(
        !std::path::Path::new("/mnt/map-trace-ctr/app").exists(),
        "the executable must be invisible outside its mount namespace"
    );
    agent.wait_until(Duration::from_secs(10), "the namespaced process", |m| {
        sample(m, "map_trace_attached_processes", &[]) == 1.0
    });
    w.work();
    std::thread::sleep(Duration::from_millis(500));
    let m = agent.metrics();
    let site = format!("main.fillInt (main.go:{})", fill_int_line());
    let got = sample(
        &m,
        "map_trace_map_grows_total",
        &[
            ("executable", "app"),
            ("pod_uid", uid),
            ("container_id", cid),
            ("site", &site),
            ("kind", "double"),
        ],
    );
    w.exit();
    let (f, _) = agent.stop();
    // The cgroup can go once its process has exited.
    let mut dir = std::path::PathBuf::from(&cg);
    for _ in 0..levels.len() {
        let _ = std::fs::remove_dir(&dir);
        dir.pop();
    }
    assert_eq!(got, expected, "{m}");
    assert!(f.status.success());
}

/// `--events` writes the CLI's JSON records; an unsupported Go version is logged once and
/// counted, however many processes run it.
#[test]
fn agent_event_log_and_unsupported_versions() {
    require_root();
    // A classic release with a three-part version (go1.X.Y) to rewrite.
    let v = classic_versions()
        .into_iter()
        .rfind(|v| v.len() == "1.23.9".len() && !v.contains('-'))
        .unwrap();
    let log = temp("agent-events.jsonl");
    let _ = std::fs::remove_file(&log);
    let agent = Agent::start(&["--events", log.to_str().unwrap()]);
    let mut w = start_waiting(&fixture(&v), &["int", "100000"]);
    agent.wait_until(Duration::from_secs(10), "attach", |m| {
        sample(m, "map_trace_attached_processes", &[]) == 1.0
    });
    w.work();
    let old = fixture_with_version(&v, &format!("go1.17.{}", &v[5..]));
    for i in 0..3 {
        let mut o = start_waiting(&old, &["int", "10"]);
        if i == 0 {
            // It must still be running when the agent looks at it.
            agent.wait_until(Duration::from_secs(10), "the unsupported version", |m| {
                sample(m, "map_trace_skipped_executables_total", &[]) == 1.0
            });
        }
        o.work();
        o.exit();
    }
    std::thread::sleep(Duration::from_millis(500));
    let m = agent.metrics();
    let pid = u64::from(w.id());
    w.exit();
    let (f, _) = agent.stop();
    assert!(f.status.success());
    assert_eq!(
        sample(
            &m,
            "map_trace_skipped_executables_total",
            &[("reason", "unsupported")]
        ),
        1.0,
        "{m}\nagent stderr: {}",
        f.stderr
    );
    assert_eq!(
        f.stderr.matches("unsupported Go version").count(),
        1,
        "logged once: {}",
        f.stderr
    );
    let events = json_lines(&std::fs::read_to_string(&log).unwrap());
    // The fixture's map: the one with the most grows in its process.
    let mut per_map = std::collections::BTreeMap::<String, usize>::new();
    for e in events
        .iter()
        .filter(|e| e["event"] == "map_grow" && e["pid"] == pid)
    {
        *per_map.entry(e["map"].to_string()).or_default() += 1;
    }
    let expected = expected_sequential(100_000, load_factor_num(&v)).len();
    assert_eq!(
        per_map.values().max().copied(),
        Some(expected),
        "{per_map:?}"
    );
}

/// Under an event flood, with `--events` going to a pipe nobody reads, `/healthz` and
/// `/metrics` keep answering within 1 s, the stalled output costs counted event lines only,
/// and every probe hit is either counted as a grow or as lost.
#[test]
fn agent_answers_under_an_event_flood_with_a_stalled_event_log() {
    require_root();
    let v = classic_versions().last().unwrap().clone();
    // A small ring, so the flood also overruns it.
    let agent = Agent::start_with_stdout(
        // Only the fixture: the identity below counts every probe hit on the host.
        &[
            "--include",
            "growth",
            "--events",
            "-",
            "--ring-buffer-size",
            "256",
        ],
        std::process::Stdio::piped(),
    );
    // 400,000 maps of 9 keys: one grow each, as fast as the probes let the program run.
    let mut w = start_waiting(&fixture(&v), &["maps", "400000", "9"]);
    agent.wait_until(Duration::from_secs(10), "attach", |m| {
        sample(m, "map_trace_attached_processes", &[]) == 1.0
    });
    let port = agent.port;
    let flood = std::thread::spawn(move || {
        w.work();
        w.exit()
    });
    let (mut worst, mut polls) = (Duration::ZERO, 0);
    while !flood.is_finished() {
        for path in ["/healthz", "/metrics"] {
            let t = std::time::Instant::now();
            assert!(http_get(port, path).is_some(), "{path} did not answer");
            worst = worst.max(t.elapsed());
            polls += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let f = flood.join().unwrap();
    assert!(f.status.success(), "{}", f.stderr);
    eprintln!("{polls} requests during the flood; slowest answer {worst:?}");
    assert!(polls >= 4, "the flood was too short to test anything");
    assert!(worst < Duration::from_secs(1), "slowest answer {worst:?}");
    // Every hashGrow hit is a counted grow or a lost record (nothing else runs Go here). The
    // lost records also count exec notifications of whatever else the host started during the
    // flood (their own counter).
    let settled = |m: &str| {
        let grows: f64 = m
            .lines()
            .filter(|l| l.starts_with("map_trace_map_grows_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let lost = sample(m, "map_trace_lost_events_total", &[])
            - sample(m, "map_trace_lost_exec_notifications_total", &[]);
        let hits = sample(m, "map_trace_probe_hits_total", &[("probe", "hash_grow")]);
        hits >= 400_000.0 && grows + lost == hits
    };
    agent.wait_until(Duration::from_secs(30), "grows + lost = hits", settled);
    let m = agent.metrics();
    let dropped = sample(&m, "map_trace_events_dropped_total", &[]);
    eprintln!(
        "lost in the ring: {}; event lines dropped: {dropped}",
        sample(&m, "map_trace_lost_events_total", &[])
    );
    assert!(dropped > 0.0, "a stalled --events output drops lines: {m}");
    let (f, _) = agent.stop();
    assert!(f.status.success(), "{}", f.stderr);
    assert!(f.stderr.contains("--events lines dropped"), "{}", f.stderr);
}

/// The per-executable budget: a JSON service in miniature (two small maps per request, at a
/// paced 20,000 requests a second) is far over it, so its event probes are duty-cycled, the
/// duty gauge and the shed counter say so, and its scaled counts agree with the truth. A light
/// executable traced beside it keeps every probe and counts exactly.
#[test]
fn agent_budget_samples_a_busy_executable_and_leaves_a_light_one_exact() {
    require_root();
    let pick = [
        classic_versions().last().cloned(),
        swiss_versions().last().cloned(),
    ];
    let n = 160_000u64;
    for v in pick.into_iter().flatten() {
        let agent = Agent::start(&["--include", "growth*", "--max-overhead", "3"]);
        let light_exe = fixture_variant(&v, "-stripped");
        let mut light = start_waiting(&light_exe, &["int", "100000"]);
        let mut busy = start_waiting(&fixture(&v), &["paced", &n.to_string(), "20000"]);
        agent.wait_until(Duration::from_secs(10), "attach", |m| {
            sample(m, "map_trace_attached_processes", &[]) == 2.0
        });
        let busy_maps = [("executable", "growth"), ("family", "maps")];
        let m = agent.metrics();
        assert_eq!(
            sample(&m, "map_trace_probe_duty_ratio", &busy_maps),
            1.0,
            "{m}"
        );
        light.work();
        let flood = std::thread::spawn(move || {
            busy.work();
            busy.exit()
        });
        // Decided within a few budget windows (250 ms each) of the load starting.
        let took = agent.wait_until(Duration::from_secs(6), "the busy one sampled", |m| {
            let d = sample(m, "map_trace_probe_duty_ratio", &busy_maps);
            d > 0.0 && d < 1.0
        });
        let m = agent.metrics();
        let duty = sample(&m, "map_trace_probe_duty_ratio", &busy_maps);
        let share = sample(
            &m,
            "map_trace_probe_overhead_ratio",
            &[("executable", "growth")],
        );
        eprintln!("go{v}: sampled after {took:?} at duty {duty:.3}; share before {share:.3}");
        assert_eq!(sample(&m, "map_trace_budget_sheds_total", &busy_maps), 1.0);
        // The light one keeps everything.
        let light_maps = [("executable", "growth-stripped"), ("family", "maps")];
        assert_eq!(
            sample(&m, "map_trace_probe_duty_ratio", &light_maps),
            1.0,
            "{m}"
        );
        assert_eq!(sample(&m, "map_trace_budget_sheds_total", &light_maps), 0.0);
        let f = flood.join().unwrap();
        assert!(f.status.success(), "{}", f.stderr);
        assert!(light.exit().status.success());
        std::thread::sleep(Duration::from_millis(500));
        let m = agent.metrics();
        // Two maps grown per request (the decoded object and the header map).
        let truth = 2 * n;
        let estimated = sample(&m, "map_trace_map_grows_total", &[("executable", "growth")]);
        let err = estimated / truth as f64 - 1.0;
        eprintln!(
            "go{v}: {estimated} grows estimated, {truth} true ({:+.1}%)",
            err * 100.0
        );
        assert!(
            err.abs() < 0.15,
            "go{v}: estimated {estimated}, truth {truth}"
        );
        let (small, grow, double) = expectations(&v);
        let site = format!("main.fillInt (main.go:{})", fill_int_line());
        let exact = |kind| {
            sample(
                &m,
                "map_trace_map_grows_total",
                &[
                    ("executable", "growth-stripped"),
                    ("site", site.as_str()),
                    ("kind", kind),
                ],
            ) as u64
        };
        assert_eq!(
            (
                exact("small_to_table"),
                exact("table_grow"),
                exact("double")
            ),
            (small, grow, double),
            "go{v}: the light executable\n{m}"
        );
        let (f, _) = agent.stop();
        assert!(f.status.success(), "{}", f.stderr);
        assert!(
            f.stderr.contains("growth: sampling maps:"),
            "go{v}: {}",
            f.stderr
        );
    }
}
