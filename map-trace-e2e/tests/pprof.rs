//! pprof profiles, read by `go tool pprof` (a client nobody here wrote): `--pprof` holds
//! exactly the JSON events of the same run (per sample type the same totals, per stack and
//! labels the same values) and `replay --pprof` of its recording writes the same bytes; the
//! agent's `/debug/pprof/mapgrowth` holds exactly its `--events` log's.

use std::{process::Command, time::Duration};

use map_trace_e2e::*;

#[test]
fn pprof_profiles_hold_the_json_events_and_replay_to_the_same_bytes() {
    require_root();
    let vs = versions();
    let cases = [
        (vs.first().unwrap().clone(), ""),
        (vs.last().unwrap().clone(), ""),
        (vs.last().unwrap().clone(), "-pie-stripped"),
    ];
    for (v, suffix) in cases {
        let tag = format!("go{v}{suffix}");
        let exe = fixture_variant(&v, suffix);
        let profile = temp_unique("profile", "pb.gz");
        let rec = temp_unique("profile", "rec");
        for args in [&["sites", "300"][..], &["int", "100000"][..]] {
            let (events, f) = trace_json(
                &exe,
                &[
                    "--pprof",
                    profile.to_str().unwrap(),
                    "--record",
                    rec.to_str().unwrap(),
                ],
                args,
            );
            assert!(f.status.success(), "{tag} {args:?}: {}", f.stderr);
            let (types, got, mapping) = pprof_raw(&profile);
            assert_eq!(
                types,
                [
                    "resizes/count",
                    "bytes/bytes",
                    "resize_time/nanoseconds",
                    "growth_span/nanoseconds"
                ],
                "{tag}"
            );
            let want = from_json(&events);
            assert!(totals(&want)[0] > 0, "{tag} {args:?}: no map events");
            assert_eq!(totals(&got), totals(&want), "{tag} {args:?}: totals");
            assert_eq!(got, want, "{tag} {args:?}: samples by stack and labels");
            // The mapping: the executable and its Go build ID (go tool buildid's).
            let id = Command::new(go_command())
                .args(["tool", "buildid"])
                .arg(&exe)
                .env("GOTOOLCHAIN", "local")
                .output()
                .unwrap();
            let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
            assert!(!id.is_empty(), "{tag}");
            assert!(mapping.contains(&id), "{tag}: {mapping}");
            // The same profile from the recording, byte for byte.
            let again = temp_unique("profile-replay", "pb.gz");
            let mut c = Command::new(bin());
            c.arg("replay")
                .arg(&rec)
                .args(["-o", "/dev/null", "--pprof"])
                .arg(&again);
            let r = run_to_end(c);
            assert!(r.status.success(), "{tag}: {}", r.stderr);
            assert!(
                std::fs::read(&again).unwrap() == std::fs::read(&profile).unwrap(),
                "{tag} {args:?}: replay --pprof differs from the live profile"
            );
            let _ = std::fs::remove_file(&again);
        }
        let _ = std::fs::remove_file(&profile);
        let _ = std::fs::remove_file(&rec);
    }
}

/// `GET path` on the agent's port, the body as bytes (the profile is binary), with the status.
fn get_bytes(port: u16, path: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = vec![];
    c.read_to_end(&mut all).unwrap();
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..at]).into_owned();
    (
        head.lines().next().unwrap().to_string(),
        all[at + 4..].to_vec(),
    )
}

#[test]
fn agent_profiles_of_its_window_hold_its_event_log() {
    require_root();
    // A hash-bucket release and a Swiss one, each with inlined and reflected call sites.
    let vs = versions();
    for v in [vs.first().unwrap(), vs.last().unwrap()] {
        let log = temp_unique("agent-profile", "jsonl");
        let agent = Agent::start(&["--events", log.to_str().unwrap()]);
        let mut w = start_waiting(&fixture(v), &["sites", "300"]);
        agent.wait_until(Duration::from_secs(10), "attach", |m| {
            sample(m, "map_trace_attached_processes", &[]) == 1.0
        });
        w.work();
        std::thread::sleep(Duration::from_millis(500));
        let pid = u64::from(w.id());
        let (status, body) = get_bytes(
            agent.port,
            "/debug/pprof/mapgrowth?seconds=60&executable=growth",
        );
        assert_eq!(
            status,
            "HTTP/1.1 200 OK",
            "go{v}: {}",
            String::from_utf8_lossy(&body)
        );
        let (bad, _) = get_bytes(
            agent.port,
            "/debug/pprof/mapgrowth?seconds=0&executable=growth",
        );
        assert_eq!(bad, "HTTP/1.1 400 Bad Request", "go{v}");
        let (unknown, text) = get_bytes(agent.port, "/debug/pprof/mapgrowth?executable=nope");
        assert_eq!(unknown, "HTTP/1.1 404 Not Found", "go{v}");
        assert!(
            String::from_utf8_lossy(&text).contains("growth"),
            "go{v}: the known ones"
        );
        let dropped = sample(
            &agent.metrics(),
            "map_trace_profile_samples_dropped_total",
            &[],
        );
        w.exit();
        let (f, _) = agent.stop();
        assert!(f.status.success(), "go{v}: {}", f.stderr);
        assert_eq!(dropped, 0.0, "go{v}");
        let file = temp_unique("agent-profile", "pb.gz");
        std::fs::write(&file, &body).unwrap();
        let (types, got, mapping) = pprof_raw(&file);
        assert_eq!(types[0], "resizes/count", "go{v}");
        let events: Vec<serde_json::Value> = json_lines(&std::fs::read_to_string(&log).unwrap())
            .into_iter()
            .filter(|e| e["pid"] == pid)
            .collect();
        let want = from_json(&events);
        assert!(totals(&want)[0] > 0, "go{v}: no events logged");
        // Every stack has the site the events name, and a type.
        assert!(want.keys().all(|k| k.2 != "unknown"), "go{v}: {want:?}");
        assert_eq!(totals(&got), totals(&want), "go{v}: totals");
        assert_eq!(got, want, "go{v}: samples by stack and labels");
        assert!(mapping.contains("growth"), "go{v}: {mapping}");
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(&log);
    }
}
