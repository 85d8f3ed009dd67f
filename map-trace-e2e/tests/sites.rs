//! Call sites: every reported grow names the first frame outside the Go runtime, from the
//! frame-pointer stack and `.gopclntab` (stripped and PIE binaries too); maps the runtime grows
//! for itself are hidden by default and counted.

use std::process::Command;

use map_trace_e2e::*;
use serde_json::Value;

/// Default-mode (no `--runtime-maps`) JSON trace of `fixture int 100000`.
fn trace_default(exe: &std::path::Path) -> Vec<Value> {
    let out = temp_unique("sites", "json");
    let mut c = Command::new(bin());
    c.args(["--format", "json", "-o", out.to_str().unwrap(), "--"])
        .arg(exe)
        .args(["int", "100000"]);
    let f = run_to_end(c);
    assert!(f.status.success(), "{}", f.stderr);
    json_lines(&std::fs::read_to_string(&out).unwrap())
}

/// A grow or resize record (growth ends and evacuation steps carry no stack of their own).
fn is_resize(e: &Value) -> bool {
    e["event"]
        .as_str()
        .is_some_and(|k| k.starts_with("map_") && k != "map_evacuated" && k != "map_evacuate_step")
}

#[test]
fn every_event_names_its_call_site_in_every_version_and_variant() {
    require_root();
    let line = u64::from(fill_int_line());
    for v in versions() {
        for suffix in ["", "-stripped", "-pie-stripped"] {
            let events = trace_default(&fixture_variant(&v, suffix));
            let grows: Vec<&Value> = events.iter().filter(|e| is_resize(e)).collect();
            // Every event shown has a call site outside the runtime (or it would be hidden).
            for e in &grows {
                assert!(e["site"]["function"].is_string(), "go{v}{suffix}: {e}");
            }
            // The fixture's own map: exactly its grows, at the line of its insert.
            let mine: Vec<&&Value> = grows
                .iter()
                .filter(|e| e["site"]["function"] == "main.fillInt")
                .collect();
            if is_swiss(&v) {
                let kind = |k: &str| mine.iter().filter(|e| e["event"] == k).count();
                assert_eq!(kind("map_small_to_table"), 1, "go{v}{suffix}");
                assert_eq!(kind("map_table_grow"), 6, "go{v}{suffix}");
                let splits = kind("map_table_split");
                assert!((125..=130).contains(&splits), "go{v}{suffix}: {splits}");
            } else {
                let expected = expected_sequential(100_000, load_factor_num(&v)).len();
                assert_eq!(mine.len(), expected, "go{v}{suffix}");
            }
            for e in &mine {
                // The map's Go type, from its type descriptor.
                assert_eq!(e["type"], "map[int]int", "go{v}{suffix}: {e}");
                let site = &e["site"];
                assert!(
                    site["file"]
                        .as_str()
                        .is_some_and(|f| f.ends_with("main.go")),
                    "go{v}{suffix}: {e}"
                );
                assert_eq!(site["line"], line, "go{v}{suffix}: {e}");
                // The stack starts inside the runtime (mapassign*) and reaches the site.
                let stack = e["stack"].as_array().unwrap();
                assert!(
                    stack[0]["function"].as_str().is_some_and(|f| {
                        f.starts_with("runtime.") || f.starts_with("internal/runtime/")
                    }),
                    "go{v}{suffix}: {e}"
                );
                assert!(stack.iter().any(|f| f == site), "go{v}{suffix}: {e}");
            }
            // Its summary entry carries the site too.
            let summary = events.last().unwrap();
            assert_eq!(summary["event"], "summary");
            let maps = summary["maps"].as_array().unwrap();
            let fill: Vec<&Value> = maps
                .iter()
                .filter(|m| m["site"]["function"] == "main.fillInt")
                .collect();
            assert_eq!(fill.len(), 1, "go{v}{suffix}: {summary}");
            // The hint that builds its final storage at once.
            let m = fill[0];
            assert_eq!(m["type"], "map[int]int");
            // The per-site aggregate: one map, all its events, the same hint.
            let agg: Vec<&Value> = summary["sites"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["site"]["function"] == "main.fillInt")
                .collect();
            assert_eq!(agg.len(), 1, "go{v}{suffix}: {summary}");
            assert_eq!(agg[0]["maps"], 1);
            assert_eq!(agg[0]["events"], mine.len() as u64, "go{v}{suffix}");
            assert_eq!(agg[0]["presize_hint"], m["presize_hint"]);
            assert_eq!(agg[0]["type"], "map[int]int");
            let hint = m["presize_hint"].as_u64().unwrap();
            if is_swiss(&v) {
                let dir = m["directory_len_last"].as_u64().unwrap();
                assert_eq!(hint, dir * 896, "go{v}{suffix}");
                assert!(hint >= 100_000, "go{v}{suffix}: hint {hint}");
            } else {
                let buckets = m["buckets_last"].as_u64().unwrap();
                assert_eq!(hint, load_factor_num(&v) * buckets / 2, "go{v}{suffix}");
                assert!(hint >= 100_000, "go{v}{suffix}: hint {hint}");
            }
        }
    }
}

#[test]
fn runtime_maps_are_hidden_by_default_and_counted() {
    require_root();
    // The go command grows many maps, some inside the runtime itself.
    let v = versions().into_iter().last().unwrap();
    let hidden = trace_default(&fixture(&v));
    let summary = hidden.last().unwrap();
    let n_hidden = summary["runtime_events_hidden"].as_u64().unwrap();
    let (all, f) = trace_json(&fixture(&v), &[], &["int", "100000"]); // cli(): --runtime-maps
    assert!(f.status.success());
    let all_summary = all.last().unwrap();
    assert_eq!(all_summary["runtime_events_hidden"], 0);
    // Every event hidden in one run is a runtime map's: the fixture's own are all shown.
    let shown = summary["events"].as_u64().unwrap();
    assert!(all_summary["events"].as_u64().unwrap() >= shown);
    for e in all.iter().filter(|e| is_resize(e)) {
        if e["site"].is_null() {
            assert!(
                e["stack"].as_array().unwrap().iter().all(|f| {
                    let name = f["function"].as_str().unwrap();
                    // The runtime, reflection and the maps helpers: never a site.
                    ["runtime.", "internal/", "reflect.", "maps.", "type:"]
                        .iter()
                        .any(|p| name.starts_with(p))
                }),
                "{e}"
            );
        }
    }
    eprintln!("go{v}: {n_hidden} runtime-map events hidden by default");
}

/// The line of `// site: NAME` in the fixture's sites files, and that file's name.
fn site_marker(name: &str) -> (&'static str, u32) {
    let files = [
        (
            "sites.go",
            include_str!("../../fixtures/go/growth/sites.go"),
        ),
        (
            "sites_go121.go",
            include_str!("../../fixtures/go/growth/sites_go121.go"),
        ),
        (
            "sites_go123.go",
            include_str!("../../fixtures/go/growth/sites_go123.go"),
        ),
    ];
    let marker = format!("// site: {name}");
    for (file, src) in files {
        if let Some(i) = src.lines().position(|l| l.trim_end().ends_with(&marker)) {
            return (file, i as u32 + 1);
        }
    }
    panic!("no {marker} in the fixture");
}

/// The Go minor release of a test version (`1.24.11-noswiss` → 24).
fn minor(v: &str) -> u32 {
    v.split('.').nth(1).unwrap().parse().unwrap()
}

/// `function|file|line|inlined` frames of the fixture's `callers NAME …` line.
fn runtime_frames(stderr: &str, name: &str) -> Vec<(String, String, u64, bool)> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&format!("callers {name} ")))
        .unwrap_or_else(|| panic!("no callers {name} line in {stderr}"));
    line.split(' ')
        .skip(2)
        .map(|f| {
            let p: Vec<&str> = f.split('|').collect();
            (
                p[0].into(),
                p[1].into(),
                p[2].parse().unwrap(),
                p[3] == "true",
            )
        })
        .collect()
}

#[test]
fn inlined_generic_reflected_json_and_std_maps_calls_are_sited_at_the_users_line() {
    require_root();
    let vs = versions();
    for v in &vs {
        // The compiler inlined the helper into its caller in this release.
        let inlining = std::fs::read_to_string(fixture(v).with_file_name("inlining.txt")).unwrap();
        assert!(
            inlining.contains("inlining call to put"),
            "go{v}: {inlining}"
        );
        let mut variants = vec!["", "-stripped", "-pie-stripped"];
        if v == vs.last().unwrap() {
            variants.push("-cgo");
        }
        for suffix in variants {
            let tag = format!("go{v}{suffix}");
            let (events, f) = trace_json(&fixture_variant(v, suffix), &[], &["sites", "200"]);
            assert!(f.status.success(), "{tag}: {}", f.stderr);
            let cases: Vec<(String, String)> = f
                .stderr
                .lines()
                .filter_map(|l| {
                    let mut w = l.strip_prefix("sitecase ")?.split(' ');
                    Some((w.next()?.to_string(), w.next()?.to_string()))
                })
                .collect();
            let mut want = vec!["put", "generic", "reflect", "json"];
            if minor(v) >= 21 {
                want.push("copy");
            }
            if minor(v) >= 23 {
                want.extend(["insert", "collect"]);
            }
            let names: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
            assert_eq!(names, want, "{tag}: {}", f.stderr);
            for (name, map) in &cases {
                let grows: Vec<&Value> = events
                    .iter()
                    .filter(|e| is_resize(e) && &e["map"] == map)
                    .collect();
                // (A stack the probe could not read is every_event_names_its_call_site…'s
                // concern; here each case needs grows with one.)
                let grows: Vec<&Value> = grows
                    .into_iter()
                    .filter(|e| e["stack"].as_array().is_some_and(|s| !s.is_empty()))
                    .collect();
                assert!(
                    !grows.is_empty(),
                    "{tag} {name}: no grows of {map} with a stack"
                );
                let (file, line) = site_marker(name);
                for e in grows {
                    let site = &e["site"];
                    let stack = e["stack"].as_array().unwrap();
                    let frames: Vec<String> = stack
                        .iter()
                        .map(|f| format!("{} {}:{}", f["function"], f["file"], f["line"]))
                        .collect();
                    let ctx = format!("{tag} {name}: {e} in {frames:#?}");
                    // The stack (16 return addresses by default) reaches the user's function
                    // that called in (json's is the deepest), and the site is exactly its line.
                    assert!(
                        site["file"].as_str().is_some_and(|f| f.ends_with(file)),
                        "{ctx}"
                    );
                    assert_eq!(site["line"], line, "{ctx}");
                    assert!(stack.iter().any(|f| f == site), "{ctx}");
                    let function = site["function"].as_str().unwrap();
                    let expect = match name.as_str() {
                        "put" => "main.put",
                        "generic" => "main.gput[",
                        "reflect" => "main.sitesReflect",
                        "json" => "main.sitesJSON",
                        "copy" => "main.sitesCopy",
                        "insert" => "main.sitesInsert",
                        "collect" => "main.sitesCollect",
                        _ => unreachable!(),
                    };
                    assert!(function.starts_with(expect), "{ctx}");
                    let i = stack.iter().position(|f| f == site).unwrap();
                    // The inlined helper is its own frame, then its caller's at the call.
                    if name == "put" {
                        assert_eq!(site["inlined"], true, "{ctx}");
                        let oracle = runtime_frames(&f.stderr, "put");
                        // The runtime's frames after the helper's own are map-trace's.
                        for (k, (func, file, line, inl)) in oracle.iter().enumerate().skip(1) {
                            let Some(m) = stack.get(i + k) else { break };
                            assert_eq!(m["function"], func.as_str(), "{ctx}");
                            assert_eq!(m["file"], file.as_str(), "{ctx}");
                            assert_eq!(m["line"], *line, "{ctx}");
                            assert_eq!(m["inlined"] == true, *inl, "{ctx}");
                        }
                        assert!(oracle[0].3, "the runtime sees put inlined: {oracle:?}");
                        assert_eq!(oracle[0].0, "main.put");
                    }
                    // The std code called in sits right before the user's frame: the std
                    // maps helpers (inlined), reflection, encoding/json.
                    let called = match name.as_str() {
                        "copy" | "insert" | "collect" => Some("maps."),
                        "reflect" => Some("reflect."),
                        "json" => Some("encoding/json"),
                        _ => None,
                    };
                    if let Some(prefix) = called {
                        assert!(
                            stack[i - 1]["function"]
                                .as_str()
                                .unwrap()
                                .starts_with(prefix),
                            "{ctx}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_stack_cut_short_is_sited_at_its_first_frame_outside_the_runtime() {
    require_root();
    // json.Unmarshal into a map: 9 return addresses from mapassign to the user's code in the
    // hash-map releases (1.21 on); at --stack-depth 8 the user's frame is cut off.
    let v = versions()
        .into_iter()
        .find(|v| minor(v) >= 21 && !is_swiss(v))
        .expect("a hash-map release from 1.21");
    let run = |depth: &str| {
        let (events, f) = trace_json(&fixture(&v), &["--stack-depth", depth], &["sites", "200"]);
        assert!(
            f.status.success(),
            "go{v} --stack-depth {depth}: {}",
            f.stderr
        );
        let map = f
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("sitecase json "))
            .expect("the json case")
            .to_string();
        events
            .into_iter()
            .filter(|e| is_resize(e) && e["map"] == map.as_str())
            .filter(|e| e["stack"].as_array().is_some_and(|s| !s.is_empty()))
            .collect::<Vec<Value>>()
    };
    let cut = run("8");
    assert!(!cut.is_empty());
    for e in &cut {
        let stack = e["stack"].as_array().unwrap();
        let physical = stack.iter().filter(|f| f["inlined"] != true).count();
        assert_eq!(physical, 8, "go{v}: {e}");
        assert!(
            !stack
                .iter()
                .any(|f| f["function"].as_str().unwrap().starts_with("main.")),
            "go{v}: {e}"
        );
        let first = stack
            .iter()
            .find(|f| {
                let f = f["function"].as_str().unwrap();
                !f.starts_with("runtime.") && !f.starts_with("reflect.")
            })
            .unwrap();
        assert_eq!(&e["site"], first, "go{v}: {e}");
        assert!(
            e["site"]["function"]
                .as_str()
                .unwrap()
                .starts_with("encoding/json."),
            "go{v}: {e}"
        );
    }
    // The deepest reads the whole chain: through main.main to runtime.goexit.
    for e in run("64") {
        let stack = e["stack"].as_array().unwrap();
        assert_eq!(e["site"]["function"], "main.sitesJSON", "go{v}: {e}");
        assert_eq!(
            stack.last().unwrap()["function"],
            "runtime.goexit",
            "go{v}: {e}"
        );
    }
    // Outside 1–64: a usage error.
    for bad in ["0", "65"] {
        let f = map_trace(&[
            "--stack-depth",
            bad,
            "--",
            fixture(&v).to_str().unwrap(),
            "int",
            "1",
        ]);
        assert_eq!(
            f.status.code(),
            Some(2),
            "--stack-depth {bad}: {}",
            f.stderr
        );
    }
}
