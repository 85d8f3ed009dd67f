//! The report sink end to end: a timeline in, the page's structure out.

use super::*;
use crate::golayout::MapImpl;
use crate::{
    plan::ProbeSite,
    timeline::history::MAX_POINTS_PER_MAP,
    timeline::{
        Evacuated, EvacuationEnd, Grow, MapSummary, Origin, SwissKind, SwissResize, Timeline,
    },
};

/// The timeline's summary when tracing stops, as the session builds `EndInfo`.
fn end_of(t: Timeline, events: u64) -> EndInfo {
    let (maps, cuts) = t.finish(T0 + 2_000_000_000);
    let mut e = end_info(maps, events);
    e.history_cuts = cuts;
    e
}

const T0: u64 = 1_700_000_000_000_000_000;

fn origin(function: &str, line: u32) -> Option<Arc<Origin>> {
    Some(Arc::new(Origin {
        stack: vec![
            SourcePos {
                function: "runtime.mapassign".into(),
                file: "/go/src/runtime/map.go".into(),
                line: 1,
                inlined: false,
            },
            SourcePos {
                function: function.into(),
                file: "/src/app/main.go".into(),
                line,
                inlined: false,
            },
        ],
        site: Some(1),
    }))
}

fn grow(map: u64, b: u32, at_us: u64, type_name: &str, line: u32) -> Grow {
    Grow {
        time_ns: T0 + at_us * 1000,
        pid: 42,
        tid: 42,
        goid: 7,
        map,
        maptype: 0x1000,
        buckets_before: 1 << b,
        buckets_after: 1 << (b + 1),
        entries: 13 << b,
        same_size: false,
        key_size: 8,
        elem_size: 8,
        bucket_size: 144,
        overflow_buckets: 0,
        bytes_allocated: 144 << (b + 1),
        partial: false,
        origin: origin("main.fill", line),
        type_name: Some(type_name.into()),
    }
}

fn evacuated(g: &Grow, after_us: u64, end: EvacuationEnd) -> Evacuated {
    Evacuated {
        time_ns: g.time_ns + after_us * 1000,
        pid: 42,
        tid: 42,
        goid: 7,
        map: g.map,
        buckets: g.buckets_after,
        entries: g.entries + 10,
        duration_ns: None,
        end,
        partial: false,
        origin: None,
        type_name: None,
    }
}

fn swiss(kind: SwissKind, map: u64, at_us: u64, cap: (u64, u64), dir: u64) -> SwissResize {
    SwissResize {
        kind,
        time_ns: T0 + at_us * 1000,
        pid: 42,
        tid: 42,
        goid: 9,
        map,
        maptype: 0x2000,
        entries: cap.0 * 7 / 8,
        key_size: 8,
        elem_size: 8,
        duration_ns: Some(20_000),
        table_entries: cap.0 * 7 / 8,
        capacity_before: cap.0,
        capacity_after: cap.1,
        local_depth_before: 0,
        directory_len_before: dir,
        directory_len_after: if kind == SwissKind::TableSplit {
            dir * 2
        } else {
            dir
        },
        partial: false,
        origin: origin("main.index", 30),
        type_name: Some("map[string]*main.T".into()),
    }
}

fn start_info(map_impl: MapImpl, ends_probed: bool) -> StartInfo {
    StartInfo {
        time_ns: T0,
        pid: 42,
        exe: "/srv/app <prod> & \"x\"".into(),
        probes: if ends_probed {
            vec![ProbeSite {
                program: "hmap_evacuated_0",
                function: "runtime.advanceEvacuationMark",
                vaddr: 0x1000,
                offset_in_function: 0x40,
                file_offset: 0x1000,
            }]
        } else {
            vec![]
        },
        launched: true,
        build_id: None,
        ..crate::testkit::start_info(map_impl)
    }
}

fn end_info(maps: Vec<MapSummary>, events: u64) -> EndInfo {
    EndInfo {
        sampled: None,
        health: Default::default(),
        fatal: vec![],
        time_ns: T0 + 2_000_000_000,
        events,
        lost: 3,
        undecodable: 0,
        probe_hits: vec![("runtime.hashGrow".into(), events)],
        read_errors: 0,
        reason: crate::output::StopReason::TargetExited,
        exit_status: Some(0),
        runtime_events_hidden: 0,
        load_factor_num: 13,
        slices: None,
        maps,
        overhead: crate::overhead::Overhead::default(),
        history_cuts: Default::default(),
    }
}

fn out_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("map-trace-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Feeds grows (with their ends) to a timeline and a report; returns the page.
fn classic_page(name: &str, evs: &[(Grow, Option<Evacuated>)], probed: bool) -> String {
    let path = out_path(name);
    let mut sink = ReportSink::create(&path).unwrap();
    sink.start(&start_info(MapImpl::Classic, probed)).unwrap();
    let mut t = Timeline::new();
    for (g, e) in evs {
        t.push(g);
        sink.grow(g).unwrap();
        if let Some(e) = e {
            let mut e = e.clone();
            t.push_evacuated(&mut e);
            sink.evacuated(&e).unwrap();
        }
    }
    let grows = t.grows();
    sink.finish(&end_of(t, grows)).unwrap();
    assert!(!tmp_path(&path).exists(), "the temporary file is renamed");
    std::fs::read_to_string(&path).unwrap()
}

/// Open/close tags nest properly (void elements and `/>` aside; `<style>` and `<script>`
/// bodies skipped).
fn check_nesting(html: &str) {
    const VOID: [&str; 4] = ["meta", "br", "input", "!doctype"];
    let mut stack: Vec<String> = vec![];
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().unwrap_or_default();
            assert_eq!(open, name, "</{name}> closes <{open}>");
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap()
            .to_lowercase();
        if tag.ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        if name == "style" || name == "script" {
            let close = format!("</{name}>");
            let j = rest.find(&close).expect("closed");
            rest = &rest[j + close.len()..];
            continue;
        }
        stack.push(name);
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

/// Occurrences of `needle` in the charts (after the legend).
fn count(h: &str, needle: &str) -> usize {
    h[h.find("<figure").unwrap_or(h.len())..]
        .matches(needle)
        .count()
}

#[test]
fn test_esc_go_type_names() {
    assert_eq!(esc("map[int]int"), "map[int]int");
    assert!(matches!(esc("map[int]int"), Cow::Borrowed(_)));
    assert_eq!(
        esc("map[string]<-chan *main.T"),
        "map[string]&lt;-chan *main.T"
    );
    assert_eq!(
        esc(r#"map[struct { A string "json:\"a\"" }]'x'&"#),
        "map[struct { A string &quot;json:\\&quot;a\\&quot;&quot; }]&#39;x&#39;&amp;"
    );
    assert_eq!(esc("a>b"), "a&gt;b");
}

#[test]
fn test_report_classic_structure() {
    let nasty = "map[string]<-chan *main.T[\"q\"]";
    let a: Vec<Grow> = (0..4)
        .map(|b| grow(0xa0, b, 100 * u64::from(b), nasty, 10))
        .collect();
    let b: Vec<Grow> = (0..3)
        .map(|b| grow(0xb0, b, 50 + 100 * u64::from(b), "map[int]int", 20))
        .collect();
    let mut evs = vec![];
    // Map a: every growth ends (probe), but the last, still in progress at the end.
    for (i, g) in a.iter().enumerate() {
        evs.push((
            g.clone(),
            (i < 3).then(|| evacuated(g, 40, EvacuationEnd::Probe)),
        ));
    }
    for g in &b {
        evs.push((g.clone(), Some(evacuated(g, 30, EvacuationEnd::Probe))));
    }
    let h = classic_page("classic.html", &evs, true);
    check_nesting(&h);
    assert!(h.starts_with("<!DOCTYPE html>"));
    // Every text escaped: the raw type name never appears.
    assert!(!h.contains("<-chan"), "unescaped type");
    assert!(h.contains("map[string]&lt;-chan *main.T[&quot;q&quot;]"));
    assert!(h.contains("/srv/app &lt;prod&gt; &amp; &quot;x&quot;"));
    // Header.
    for s in [
        "go1.23.9",
        "classic (hash buckets)",
        "pid <span id=\"pid\">42</span>",
        "2023-11-14 22:13:20.000000 UTC",
        "3 (ring buffer full",
    ] {
        assert!(h.contains(s), "{s} missing");
    }
    // A row per site, a chart per map, most events first.
    assert_eq!(h.matches("<tr class=\"site\">").count(), 2);
    assert!(h.contains("main.fill (main.go:10)"));
    assert!(h.contains("<code>make(map[string]&lt;-chan *main.T[&quot;q&quot;], 104)</code>"));
    assert_eq!(count(&h, "<svg class=\"chart\""), 2);
    let first = h.find("data-map=\"0xa0\"").unwrap();
    assert!(first < h.find("data-map=\"0xb0\"").unwrap());
    // Markers and spans: 7 grows; 6 finished growths and 1 in progress.
    assert_eq!(count(&h, "<circle class=\"ev grow\""), 7);
    assert_eq!(count(&h, "<rect class=\"span done\""), 6);
    assert_eq!(count(&h, "<rect class=\"span open\""), 1);
    assert_eq!(count(&h, "<path class=\"size\""), 2);
    // Log2 axis from 1 to 16 buckets for map a.
    assert!(h.contains(">16</text>") && h.contains(">1</text>"));
    // Nothing to fetch: the only URL is the SVG namespace.
    let urls = h.matches("http://").count() + h.matches("https://").count();
    assert_eq!(urls, count(&h, "xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(!h.contains(" src=") && !h.contains(" href="));
}

#[test]
fn test_report_inferred_and_unseen_ends() {
    let gs: Vec<Grow> = (0..3)
        .map(|b| grow(0xa0, b, 100 * u64::from(b), "map[int]int", 10))
        .collect();
    // No finishing probe: ends inferred from the next grow, the last unknown.
    let mut t = Timeline::inferring_ends();
    let path = out_path("inferred.html");
    let mut sink = ReportSink::create(&path).unwrap();
    sink.start(&start_info(MapImpl::Classic, false)).unwrap();
    for g in &gs {
        if let Some(e) = t.push(g) {
            sink.evacuated(&e).unwrap();
        }
        sink.grow(g).unwrap();
    }
    sink.finish(&end_of(t, 3)).unwrap();
    let h = std::fs::read_to_string(&path).unwrap();
    check_nesting(&h);
    assert_eq!(count(&h, "<rect class=\"span inferred\""), 2);
    assert_eq!(count(&h, "<rect class=\"span open\""), 0);
    assert!(h.contains("The end of the last growth (from +200.0 µs) is not known"));

    // With the probe, a growth the next grow found unfinished ended unseen.
    let evs: Vec<_> = gs.iter().map(|g| (g.clone(), None)).collect();
    let h = classic_page("unseen.html", &evs, true);
    assert_eq!(count(&h, "<rect class=\"span unseen\""), 2);
    assert_eq!(count(&h, "<rect class=\"span open\""), 1);
}

#[test]
fn test_report_swiss_structure() {
    let path = out_path("swiss.html");
    let mut sink = ReportSink::create(&path).unwrap();
    sink.start(&start_info(MapImpl::Swiss, false)).unwrap();
    let mut t = Timeline::new();
    let mut evs = vec![swiss(SwissKind::SmallToTable, 0xc0, 0, (8, 16), 0)];
    for (i, cap) in [16u64, 32, 64, 128, 256, 512].into_iter().enumerate() {
        evs.push(swiss(
            SwissKind::TableGrow,
            0xc0,
            100 + 100 * i as u64,
            (cap, cap * 2),
            1,
        ));
    }
    evs.push(swiss(SwissKind::TableSplit, 0xc0, 1000, (1024, 1024), 1));
    evs.push(swiss(SwissKind::TableSplit, 0xc0, 1200, (1024, 1024), 2));
    for r in &evs {
        t.push_swiss(r);
        sink.swiss(r).unwrap();
    }
    let end = end_of(t, evs.len() as u64);
    // Its history: 16 → … → 1024 slots, then 2048, 3072.
    assert_eq!(end.maps[0].slots, 3072);
    sink.finish(&end).unwrap();
    let h = std::fs::read_to_string(&path).unwrap();
    check_nesting(&h);
    assert!(h.contains("swiss (Swiss tables)"));
    assert!(h.contains("map[string]*main.T"));
    assert_eq!(count(&h, "<svg class=\"chart\""), 1);
    assert_eq!(count(&h, "<circle class=\"ev totable\""), 1);
    assert_eq!(count(&h, "<circle class=\"ev grow\""), 6);
    assert_eq!(count(&h, "<circle class=\"ev split\""), 2);
    // A bar per resize (9 of 20 µs; none merged at this zoom).
    assert_eq!(count(&h, "<rect class=\"span resize\""), 9);
    assert!(h.contains("slots (log2)"));
    assert!(h.contains(">4Ki</text>"), "log2 axis up to 4Ki slots");
}

#[test]
fn test_report_caps_and_omitted_maps() {
    let path = out_path("caps.html");
    let mut sink = ReportSink::create(&path).unwrap();
    sink.start(&start_info(MapImpl::Classic, true)).unwrap();
    let mut t = Timeline::new();
    // MAX_CHARTS + 5 maps of one grow, and one map of many same-size grows.
    for i in 0..(MAX_CHARTS as u64 + 5) {
        let g = grow(0x1000 + i * 16, 0, i, "map[int]int", 10);
        t.push(&g);
        sink.grow(&g).unwrap();
    }
    let n = MAX_POINTS_PER_MAP as u64 + 10;
    for i in 0..n {
        let mut g = grow(0xf000, 3, 1000 + i, "map[int]int", 11);
        g.same_size = true;
        g.buckets_before = 8;
        g.buckets_after = 8;
        t.push(&g);
        sink.grow(&g).unwrap();
    }
    let grows = t.grows();
    sink.finish(&end_of(t, grows)).unwrap();
    let h = std::fs::read_to_string(&path).unwrap();
    check_nesting(&h);
    assert_eq!(count(&h, "<svg class=\"chart\""), MAX_CHARTS);
    assert!(
        h.contains("6 more map(s) not charted"),
        "36 maps, 30 charted"
    );
    assert!(h.contains("1 map(s) reached 10000 points each"));
    assert!(h.contains("<p class=\"cut\">Cut: "));
    // Same-size grows on one pixel share markers.
    assert!(count(&h, "<circle class=\"ev same\"") < 2000);
}

#[test]
fn test_report_follows_timeline_map_identity() {
    // Address reuse: a smaller map, and a map from another site, at one address.
    let evs = [
        grow(0xa0, 0, 0, "map[int]int", 10),
        grow(0xa0, 1, 10, "map[int]int", 10),
        grow(0xa0, 0, 20, "map[int]int", 10),
        grow(0xa0, 1, 30, "map[int]int", 12),
    ];
    let evs: Vec<_> = evs.into_iter().map(|g| (g, None)).collect();
    let h = classic_page("identity.html", &evs, true);
    assert_eq!(count(&h, "<svg class=\"chart\""), 3);
    assert!(!h.contains("no points kept"));
}

#[test]
fn test_report_slices_section() {
    let path = out_path("slices.html");
    let mut sink = ReportSink::create(&path).unwrap();
    sink.start(&start_info(MapImpl::Classic, true)).unwrap();
    for cap in [1u64, 2, 4, 8] {
        sink.slice(&SliceGrow {
            time_ns: T0 + cap,
            pid: 42,
            tid: 42,
            goid: 1,
            cap_before: cap / 2,
            cap_after: cap,
            elem_size: 8,
            bytes: cap * 8,
            duration_ns: 100,
            elem_type: 0x10,
            partial: false,
            origin: origin("main.appendInts", 80),
            elem_type_name: Some("<-chan int".into()),
        })
        .unwrap();
    }
    let mut end = end_info(vec![], 0);
    end.slices = Some((4, 0));
    end.overhead.budget_percent = Some(5.0);
    end.overhead.families = vec![crate::overhead::FamilyCost {
        family: crate::overhead::Family::Slices,
        hits: 4,
        estimated_ns: 1000,
        detached: Some((T0 + 1_000_000, 12.0)),
    }];
    sink.finish(&end).unwrap();
    let h = std::fs::read_to_string(&path).unwrap();
    check_nesting(&h);
    assert!(h.contains("<section id=\"slices\">"));
    assert!(h.contains("4 growths, 120 B"));
    assert_eq!(h.matches("<tr class=\"slice-site\">").count(), 1);
    assert!(h.contains("<code>&lt;-chan int</code>"));
    assert!(h.contains("main.appendInts (main.go:80)"));
    assert!(h.contains("No map grew while traced."));
    assert!(h.contains("detached the --slices probes at +1.0 ms (12% of the target"));
}

#[test]
fn test_report_file_handling() {
    assert!(ReportSink::create(Path::new("/nonexistent-dir/x/report.html")).is_err());
    // Dropped unfinished (the session failed): no file left behind.
    let path = out_path("dropped.html");
    let sink = ReportSink::create(&path).unwrap();
    assert!(tmp_path(&path).exists());
    drop(sink);
    assert!(!tmp_path(&path).exists() && !path.exists());
}
