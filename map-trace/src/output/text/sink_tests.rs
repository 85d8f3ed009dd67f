//! The whole sink on generated traces: widths, colour, strips.

use std::sync::Arc;

use super::{style::width, TextSink, WIDTH};
use crate::golayout::MapImpl;
use crate::{
    output::{EndInfo, Sink, StartInfo},
    overhead::{Detached, Family, FamilyCost, HitCost, Overhead},
    symbols::pclntab::SourcePos,
    timeline::{
        EvacuateStep, Evacuated, EvacuationEnd, Grow, Origin, SliceGrow, SwissKind, SwissResize,
        Timeline,
    },
};

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn origin(function: &str, file: &str, line: u32) -> Option<Arc<Origin>> {
    Some(Arc::new(Origin {
        stack: vec![
            SourcePos {
                function: "runtime.mapassign_fast64".into(),
                file: "map_fast64.go".into(),
                line: 1,
                inlined: false,
            },
            SourcePos {
                function: function.into(),
                file: file.into(),
                line,
                inlined: false,
            },
        ],
        site: Some(1),
    }))
}

/// Call sites from short to absurd: long package paths, generics, closures, wide characters.
fn sites() -> Vec<(String, String, u32)> {
    vec![
        ("main.fillInt".into(), "/src/main.go".into(), 65),
        (
            "github.com/acme/orders/internal/cache.(*Store).Put".into(),
            "/home/ci/src/github.com/acme/orders/internal/cache/store.go".into(),
            1234,
        ),
        (
            format!(
                "github.com/acme/{}/pkg.(*Index[go.shape.string,go.shape.int]).Insert.func1.2",
                "very/deep/".repeat(6)
            ),
            format!("/src/{}_generated_with_a_long_name.go", "x".repeat(40)),
            u32::MAX,
        ),
        ("main.処理する".into(), "処理.go".into(), 7),
    ]
}

fn types() -> Vec<String> {
    vec![
        "map[int]int".into(),
        "map[string]*github.com/acme/orders/internal/cache.entry".into(),
        format!(
            "map[struct {{ A {0}; B {0} }}]map[string][]int",
            "github.com/acme/very/long/package/path.Type"
        ),
    ]
}

struct Trace {
    sink: TextSink<Vec<u8>>,
    timeline: Timeline,
}

impl Trace {
    fn new(color: bool, map_impl: MapImpl) -> Self {
        let mut sink = TextSink::new(vec![]).color(color);
        sink.start(&StartInfo {
            time_ns: T0,
            pid: u32::MAX,
            exe: format!("/very/long/path/{}/binary", "deep/".repeat(20)),
            launched: true,
            build_id: None,
            ..crate::testkit::start_info(map_impl)
        })
        .unwrap();
        Self {
            sink,
            timeline: Timeline::new(),
        }
    }

    fn grow(&mut self, g: Grow) {
        if let Some(e) = self.timeline.push(&g) {
            self.sink.evacuated(&e).unwrap();
        }
        self.sink.grow(&g).unwrap();
    }

    fn evacuated(&mut self, mut e: Evacuated) {
        self.timeline.push_evacuated(&mut e);
        self.sink.evacuated(&e).unwrap();
    }

    fn swiss(&mut self, r: SwissResize) {
        self.timeline.push_swiss(&r);
        self.sink.swiss(&r).unwrap();
    }

    fn finish(mut self, end_ns: u64, lost: u64) -> String {
        let (maps, history_cuts) = self.timeline.finish(end_ns);
        self.sink
            .detached(&Detached {
                sampled_duty: None,
                time_ns: end_ns,
                family: Family::Evacuation,
                share_percent: 1e300,
                budget_percent: 5.0,
                hits: u64::MAX,
            })
            .unwrap();
        self.sink
            .finish(&EndInfo {
                sampled: None,
                health: Default::default(),
                fatal: vec![],
                time_ns: end_ns,
                events: u64::MAX,
                lost,
                undecodable: 0,
                probe_hits: vec![
                    ("maps.(*Map).growToSmall".into(), u64::MAX),
                    ("maps.(*Map).growToTable".into(), u64::MAX),
                    ("maps.(*table).rehash".into(), u64::MAX),
                    ("return probes".into(), u64::MAX),
                ],
                read_errors: 0,
                reason: crate::output::StopReason::TargetExited,
                exit_status: Some(255),
                runtime_events_hidden: u64::MAX,
                load_factor_num: 13,
                slices: Some((u64::MAX, u64::MAX)),
                maps,
                overhead: Overhead {
                    sampling: None,
                    hit_cost: HitCost {
                        body_ns: 1e12,
                        stepped_ns: 1e12,
                        calibrated: true,
                    },
                    families: [Family::Maps, Family::GrowthEnds, Family::Evacuation]
                        .into_iter()
                        .map(|family| FamilyCost {
                            family,
                            hits: u64::MAX,
                            estimated_ns: u64::MAX,
                            detached: (family == Family::Evacuation)
                                .then_some((u64::MAX, 123_456.7)),
                        })
                        .collect(),
                    estimated_ns: u64::MAX,
                    target_cpu_ns: Some(1),
                    budget_percent: Some(99_999.5),
                },
                history_cuts,
            })
            .unwrap();
        String::from_utf8(self.sink.out).unwrap()
    }
}

#[allow(clippy::too_many_arguments)]
fn grow(
    map: u64,
    t: u64,
    b: u32,
    entries: u64,
    goid: u64,
    site: &(String, String, u32),
    ty: &str,
) -> Grow {
    Grow {
        time_ns: t,
        pid: 1,
        tid: 1,
        goid,
        map,
        maptype: 0x1000,
        buckets_before: 1u64.checked_shl(b).unwrap_or(u64::MAX),
        buckets_after: 1u64.checked_shl(b + 1).unwrap_or(u64::MAX),
        entries,
        same_size: false,
        key_size: 8,
        elem_size: 8,
        bucket_size: 144,
        overflow_buckets: 0,
        bytes_allocated: 144u64.saturating_mul(2u64.saturating_pow(b + 1)),
        partial: b % 7 == 3,
        origin: origin(&site.0, &site.1, site.2),
        type_name: Some(ty.into()),
    }
}

fn evac(map: u64, t: u64, buckets: u64, end: EvacuationEnd) -> Evacuated {
    Evacuated {
        time_ns: t,
        pid: 1,
        tid: 1,
        goid: 9,
        map,
        buckets,
        entries: buckets.saturating_mul(6),
        duration_ns: None,
        end,
        partial: false,
        origin: None,
        type_name: None,
    }
}

/// A classic trace: several maps from every site and type, growths ended by the probe, by the
/// next grow, and one still open; huge numbers at the end.
fn classic(color: bool) -> String {
    let mut tr = Trace::new(color, MapImpl::Classic);
    let sites = sites();
    let types = types();
    let mut map = 0xc0_0000_0000_u64;
    for (si, site) in sites.iter().enumerate() {
        for (ti, ty) in types.iter().enumerate() {
            map += 0x30;
            for b in 0..15u32 {
                let t = T0 + (si * 100 + ti * 30) as u64 * MS + u64::from(b) * MS;
                tr.grow(grow(map, t, b, 13 << b, 7 + si as u64, site, ty));
                if b % 3 == 0 {
                    for k in 0..5 {
                        let st = EvacuateStep {
                            time_ns: t + 1000,
                            pid: 1,
                            tid: 1,
                            goid: 20 + k,
                            map,
                            old_bucket: k,
                            duration_ns: 40_000,
                            partial: false,
                        };
                        tr.timeline.push_evacuate_step(&st);
                        tr.sink.evacuate_step(&st).unwrap();
                    }
                    tr.evacuated(evac(map, t + MS / 2, 2 << b, EvacuationEnd::Probe));
                } else if b % 3 == 1 {
                    tr.evacuated(evac(map, t + MS / 3, 2 << b, EvacuationEnd::NextGrow));
                }
            }
        }
    }
    // Extremes: every number at its largest.
    let mut g = grow(
        u64::MAX,
        u64::MAX,
        62,
        u64::MAX,
        u64::MAX,
        &sites[2],
        &types[2],
    );
    g.bytes_allocated = u64::MAX;
    tr.grow(g);
    tr.evacuated(evac(
        u64::MAX - 1,
        T0 + 5 * MS,
        u64::MAX,
        EvacuationEnd::Probe,
    ));
    tr.finish(T0 + 450 * MS, u64::MAX)
}

fn swiss_trace(color: bool) -> String {
    let mut tr = Trace::new(color, MapImpl::Swiss);
    let sites = sites();
    let types = types();
    for (i, (site, ty)) in sites.iter().zip(types.iter().cycle()).enumerate() {
        let map = 0x1733_6252_ad50 + i as u64 * 0x1000;
        let mk = |kind, k: u64, cap_before, cap_after, dir_before, dir_after| SwissResize {
            kind,
            time_ns: T0 + k * MS + i as u64 * 10 * MS,
            pid: 1,
            tid: 1,
            goid: 1,
            map,
            maptype: 0x2000,
            entries: 896 * k,
            key_size: 8,
            elem_size: 8,
            duration_ns: Some(if k == 9 { 25 * MS } else { 35_000 }),
            table_entries: 896,
            capacity_before: cap_before,
            capacity_after: cap_after,
            local_depth_before: 0,
            directory_len_before: dir_before,
            directory_len_after: dir_after,
            partial: false,
            origin: origin(&site.0, &site.1, site.2),
            type_name: Some(ty.as_str().into()),
        };
        tr.swiss(mk(SwissKind::SmallAlloc, 0, 0, 8, 0, 0));
        tr.swiss(mk(SwissKind::SmallToTable, 1, 8, 16, 0, 1));
        tr.swiss(mk(SwissKind::TableGrow, 2, 512, 1024, 1, 1));
        for k in 3..12 {
            tr.swiss(mk(
                SwissKind::TableSplit,
                k,
                1024,
                1024,
                1 << (k - 3),
                2 << (k - 3),
            ));
        }
        tr.swiss(mk(
            SwissKind::TableSplit,
            12,
            1024,
            1024,
            u64::MAX,
            u64::MAX,
        ));
    }
    tr.sink
        .slice(&SliceGrow {
            time_ns: T0,
            pid: 1,
            tid: 1,
            goid: 3,
            cap_before: u64::MAX / 2,
            cap_after: u64::MAX,
            elem_size: 8,
            bytes: u64::MAX,
            duration_ns: u64::MAX,
            elem_type: 0,
            partial: true,
            origin: origin(&sites[2].0, &sites[2].1, sites[2].2),
            elem_type_name: Some(types[2].as_str().into()),
        })
        .unwrap();
    tr.finish(T0 + 200 * MS, 0)
}

/// Removes `ESC [ … m` sequences.
fn strip_sgr(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            assert_eq!(chars.next(), Some('['), "only SGR sequences");
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
                assert!(c.is_ascii_digit() || c == ';', "only SGR sequences");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn test_text_every_line_fits_80_columns() {
    for text in [classic(false), swiss_trace(false)] {
        for line in text.lines() {
            assert!(
                width(line) <= WIDTH,
                "{} columns: {line}\n\n{text}",
                width(line)
            );
        }
    }
}

#[test]
fn test_text_live_lines_fit_for_any_numbers() {
    let numbers = [0, 1, 999, 1_000_001, 1 << 40, u64::MAX];
    let mut checked = 0;
    for site in &sites() {
        for ty in &types() {
            for &n in &numbers {
                let mut g = grow(n, n, 3, n, n, site, ty);
                g.bytes_allocated = n;
                g.buckets_before = n;
                g.buckets_after = n;
                g.same_size = n % 2 == 1;
                let mut e = evac(n, n, n, EvacuationEnd::NextGrow);
                e.duration_ns = Some(n);
                e.origin = g.origin.clone();
                let mut moves = super::live::Moves::default();
                moves.step(&EvacuateStep {
                    time_ns: n,
                    pid: 1,
                    tid: 1,
                    goid: n,
                    map: n,
                    old_bucket: n,
                    duration_ns: n,
                    partial: true,
                });
                let s = SliceGrow {
                    time_ns: n,
                    pid: 1,
                    tid: 1,
                    goid: n,
                    cap_before: n,
                    cap_after: n,
                    elem_size: n,
                    bytes: n,
                    duration_ns: n,
                    elem_type: n,
                    partial: n == 0,
                    origin: g.origin.clone(),
                    elem_type_name: Some(ty.as_str().into()),
                };
                let mut lines = vec![
                    super::live::grow(&g),
                    super::live::evacuated(&e, moves.take(n).as_ref()),
                    super::live::slice(&s),
                ];
                for kind in [
                    SwissKind::SmallAlloc,
                    SwissKind::SmallToTable,
                    SwissKind::TableGrow,
                    SwissKind::TableSplit,
                ] {
                    lines.push(super::live::swiss(&SwissResize {
                        kind,
                        time_ns: n,
                        pid: 1,
                        tid: 1,
                        goid: n,
                        map: n,
                        maptype: n,
                        entries: n,
                        key_size: n,
                        elem_size: n,
                        duration_ns: Some(n),
                        table_entries: n,
                        capacity_before: n,
                        capacity_after: n,
                        local_depth_before: n,
                        directory_len_before: 0,
                        directory_len_after: n,
                        partial: true,
                        origin: g.origin.clone(),
                        type_name: None,
                    }));
                }
                for l in &lines {
                    let plain = l.render(false);
                    assert!(l.width() <= WIDTH && width(&plain) <= WIDTH, "{plain}");
                    assert_eq!(strip_sgr(&l.render(true)), plain);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 4 * 3 * 6 * 7);
}

#[test]
fn test_text_without_color_has_no_escape() {
    for text in [classic(false), swiss_trace(false)] {
        assert!(!text.contains('\x1b'));
    }
}

#[test]
fn test_text_color_only_adds_sgr() {
    let (plain, colored) = (classic(false), classic(true));
    assert!(colored.contains('\x1b'));
    assert_eq!(strip_sgr(&colored), plain);
    assert_eq!(strip_sgr(&swiss_trace(true)), swiss_trace(false));
    // No sequence spans a line break, and every one is closed.
    for line in colored.lines() {
        assert_eq!(
            line.matches("\x1b[0m").count(),
            line.matches('\x1b').count() / 2,
            "{line:?}"
        );
    }
}

#[test]
fn test_text_color_wraps_intended_fields() {
    let colored = classic(true);
    let grow_line = colored
        .lines()
        .find(|l| l.contains(" grow ") && l.contains("len 13 "))
        .unwrap();
    // Dim time, bold sizes, nothing else for a small allocation.
    assert_eq!(
        grow_line,
        "\x1b[2m22:13:20.000\x1b[0m g7 0xc000000030 grow \x1b[1m1→2\x1b[0m len 13 288B \
         main.fillInt (main.go:65)"
    );
    // Allocations from 1 MiB are yellow, from 64 MiB red.
    let big = colored.lines().find(|l| l.contains("len 106496 ")).unwrap();
    assert!(big.contains(" \x1b[33m2.2MiB\x1b[0m "), "{big:?}");
    let mut g = grow(0xc0, T0, 20, 1, 1, &sites()[0], "map[int]int");
    g.bytes_allocated = 100 << 20;
    let huge = super::live::grow(&g).render(true);
    assert!(huge.contains(" \x1b[1;31m100MiB\x1b[0m "), "{huge:?}");
    // Presize hints are green, warnings red, the strip's growth yellow.
    assert!(colored.contains("\x1b[32mpresize: make(map[int]int, 212992)\x1b[0m\n"));
    assert!(colored.contains("\x1b[1;31m# WARNING: "));
    assert!(colored.contains("\x1b[33m====="));
    assert!(colored.contains("\x1b[2m......"));
}

#[test]
fn test_text_live_lines_content() {
    let text = classic(false);
    let l: Vec<&str> = text.lines().collect();
    assert!(l[0].starts_with("# tracing pid 4294967295 …"));
    assert!(l[0].ends_with("/binary (go1.23.9, classic maps, amd64)"));
    assert_eq!(
        l[2],
        "22:13:20.000 g7 0xc000000030 grow 1→2 len 13 288B main.fillInt (main.go:65)"
    );
    // Probe ends with the moves summed up, inferred ends as an upper bound.
    assert_eq!(
        l[3],
        "22:13:20.000 g9 0xc000000030 done 2 in 500µs, 5 moves 200µs by 5g (main.go:65)"
    );
    assert_eq!(
        l[5],
        "22:13:20.001 g- 0xc000000030 done 4 in ≤333µs (by next grow) …llInt (main.go:65)"
    );
    assert!(text.contains(" g9 0xfffffffffffffffe done 18446744073709551615 (grew before trace)\n"));
    assert!(text.contains(" 0xc000000030 grow 8→16 len 104 2.2KiB partial (main.go:65)\n"));
    // A long site keeps its location, and loses its package path first.
    assert!(text.contains(" …(*Store).Put (store.go:1234)\n"), "{text}");
    assert!(text.contains(" main.処理する (処理.go:7)\n"), "{text}");
}

#[test]
fn test_text_summary_sites_hints_and_strips() {
    let text = classic(false);
    assert!(text.contains("\n\n# summary: 18446744073709551615 resize events in 13 maps;\n"));
    assert!(text.contains("\n# by call site (most events first)\n"));
    assert!(text.contains("\n    15     1    9.0 MiB    1.0 ms  main.fillInt (main.go:65)\n"));
    // Every hint is complete, whatever its length: under SITE, at column 2, or broken.
    assert!(text.contains(&format!(
        "\n{}presize: make(map[int]int, 212992)\n",
        " ".repeat(35)
    )));
    assert!(text.contains(
        "\n  presize: make(map[string]*github.com/acme/orders/internal/cache.entry, 212992)\n"
    ));
    let long = format!("presize: make({}, 212992)", types()[2]);
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("  presize: make(map[struct"))
        .collect();
    let at = starts[1];
    let continued = lines[at + 1..]
        .iter()
        .take_while(|l| {
            l.starts_with("    ") && !l.trim_start().starts_with(|c: char| c.is_ascii_digit())
        })
        .count();
    assert!(continued >= 1);
    let broken: String = lines[at..=at + continued]
        .iter()
        .map(|l| l.trim_start())
        .collect();
    assert_eq!(broken, long);
    // Timeline: 8 maps, each a header and an 80-column strip, then the axis.
    let tl: Vec<&str> = text
        .split("# timeline: top 8 of 13 maps by events, 22:13:20.000 to 22:13:20.244 (244ms)\n")
        .nth(1)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(
        tl[..2],
        [
            "# strips: | an event, 2-9 or * (10+) in one column, = growing,",
            "#   > still growing at the end"
        ]
    );
    assert_eq!(
        tl[2],
        "0xc000000030 map[int]int 15 grows 1→32768 9.0MiB grew ≤4.2ms still growing"
    );
    // Zoomed to the shown maps' events (0 to 244 ms, 3.05 ms a column): grows 1 ms apart
    // from 0 ms make 4, 3, 3, 3, 2 in the first columns; the last growth is open: `=` to the
    // end, `>` last.
    assert_eq!(tl[3], format!("43332{}>", "=".repeat(74)));
    assert_eq!(
        tl[18],
        "|0                  |61.0ms             |122ms              |183ms        244ms|"
    );
    assert_eq!(tl.len(), 19);
}

#[test]
fn test_text_overhead_lines_wrap() {
    let text = classic(false);
    // Wider than 80 columns: broken after the `;`, then the detach on its own line.
    assert!(text.contains("\n# overhead: a probe hit costs 1000000000.0 µs, "));
    assert!(
        text.contains("\n#   added ~18446744073709.6 ms\n"),
        "{text}"
    );
    assert!(text.contains("\n#     detached at 23:34:33.709551 (123457% > 99999.5%)\n"));
    assert!(text.contains("\n22:13:20.450 detached --evacuation: ~"));
}

#[test]
fn test_text_swiss_lines() {
    let text = swiss_trace(false);
    assert!(text.contains(
        "\n22:13:20.000 g1 0x17336252ad50 new 8 len 0 35.0µs main.fillInt (main.go:65)\n"
    ));
    assert!(text.contains(
        "\n22:13:20.003 g1 0x17336252ad50 split dir 1→2 len 2688 35.0µs …llInt (main.go:65)\n"
    ));
    assert!(text.contains("\n    13     1          -   25.4 ms  main.fillInt (main.go:65)\n"));
    // Zoomed to the maps' events (64 ms, 0.8 ms a column): resizes 1 ms apart, then a 25 ms
    // resize over 32 columns.
    assert!(
        text.contains(&format!("\n||||.||||.||||=|{}.....", "=".repeat(27))),
        "{text}"
    );
}
