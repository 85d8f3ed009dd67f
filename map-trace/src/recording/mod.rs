//! `--record FILE` and `map-trace replay FILE`: a traced run's raw stream, self-contained.
//!
//! A recording is JSON lines (format version [`RECORD_VERSION`]):
//!
//! 1. a header: `{"record_version":1,"map_trace_version":…,"start":{…},"settings":{…}}`, what the
//!    outputs' start record shows ([`StartInfo`](crate::output::StartInfo)) and what the [`Pipeline`](crate::pipeline::Pipeline) needs ([`Settings`](crate::pipeline::Settings));
//! 2. in arrival order, one `{"record":"<hex>"}` per ring-buffer record (its bytes, verbatim,
//!    whatever their pid or kind), `{"detached":{…}}` when `--max-overhead` detached a family,
//!    and symbol-table entries written the first time the run resolved a stack or a type
//!    address, before the record that needed them: `{"stack":{"pcs":["0x…",…],"origin":…}}`,
//!    `{"type":{"addr":"0x…","name":…}}`, so that a replay needs no executable;
//! 3. an end line: `{"end":{…}}`, what the summary adds to the pipeline's own counts ([`SessionEnd`](crate::pipeline::SessionEnd);
//!    `undecodable` and `events` are written for people and ignored on replay, which counts
//!    them again).
//!
//! [`replay`] feeds a recording through the same pipeline into any [`Sink`](crate::output::Sink): the outputs are
//! those of the live run, times included (they come from the recording).

//!
//! `format.rs` is the schema, `write.rs` the live side, `read.rs` the replay side.

mod format;
mod read;
mod v1;
mod write;

pub use read::{replay, ReplayError, SymbolTable};
pub use write::{RecordWriter, Recorder};

/// Version of the recording format: 2 since ring-buffer records carry `--stack-depth`
/// stacks (`depth, pad, pcs[…]`, cut after the stack). Version 1 recordings (8-address
/// stacks laid out `pcs[8], depth, pad`) still replay: their records are rewritten on reading.
pub const RECORD_VERSION: u64 = 2;

#[cfg(test)]
mod tests {
    use std::io::{self, Write};

    use super::*;
    use crate::{
        output::{json::JsonSink, StartInfo},
        overhead::{Detached, Family, FamilyCost, HitCost, Overhead, Sampling},
        pipeline::{Pipeline, Resolve, SessionEnd, Settings},
        plan::ProbeSite,
        testkit::{records, Capture, FakeResolver},
        timeline::health::{DiscoveryReport, Found, Health, Outcome},
    };
    use format::{End, Line};
    use map_trace_common::event::{as_bytes, EventKind, MapGrowEvent};

    fn start() -> StartInfo {
        StartInfo {
            go_version_source: crate::plan::VersionSource::RuntimeBuildVersion,
            probes: vec![ProbeSite {
                program: "hmap_hash_grow",
                function: "runtime.hashGrow",
                vaddr: 0x40dc0a,
                offset_in_function: 10,
                file_offset: 0xdc0a,
            }],
            ..crate::testkit::start_info(crate::golayout::MapImpl::Classic)
        }
    }

    fn settings() -> Settings {
        Settings {
            pid: 7,
            load_factor_num: 13,
            mono_to_unix_ns: 1_700_000_000_000_000_000,
            infer_growth_ends: true,
            slices: false,
            min_bytes: 0,
            runtime_maps: false,
            kept: Default::default(),
        }
    }

    fn ending() -> SessionEnd {
        SessionEnd {
            time_ns: 1_700_000_000_000_900_000,
            lost: 2,
            probe_hits: vec![("runtime.hashGrow".into(), 5)],
            read_errors: 1,
            reason: crate::output::StopReason::Signal,
            exit_status: None,
            overhead: Overhead {
                sampling: Some(Sampling {
                    family: Family::Maps,
                    since_ns: 1_700_000_000_000_600_000,
                    attached_ns: 12_345,
                    elapsed_ns: 300_000,
                    lost_before: 1,
                }),
                hit_cost: HitCost {
                    body_ns: 561.8875,
                    stepped_ns: 0.1 + 0.2,
                    calibrated: true,
                },
                families: vec![FamilyCost {
                    family: Family::Slices,
                    hits: 5,
                    estimated_ns: 2809,
                    detached: Some((1_700_000_000_000_500_000, 12.345_678_9)),
                }],
                estimated_ns: 2809,
                target_cpu_ns: Some(10_000_000),
                budget_percent: Some(5.0),
            },
        }
    }

    fn grow(map: u64, b: u8, line: u64, ts: u64) -> MapGrowEvent {
        let mut ev = MapGrowEvent {
            header: records::header(EventKind::MapGrow, 7, 3, ts),
            map,
            maptype: 0x4a0000,
            count: 13 << b >> 1,
            key_size: 8,
            elem_size: 8,
            bucket_size: 144,
            b,
            ..Default::default()
        };
        ev.stack.pcs[..2].copy_from_slice(&[line, 0xdead]);
        ev.stack.depth = 1;
        ev
    }

    /// A live-style run: the pipeline with a recorder around its resolver. Returns the JSON
    /// output and the recording.
    fn live(records: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        let out = Capture::default();
        let mut p = Pipeline::new(
            settings(),
            Recorder::new(FakeResolver::default(), Some(RecordWriter::new(Vec::new()))),
            Box::new(JsonSink::new(out.clone())),
        );
        p.resolver_mut().header(&start(), &settings());
        p.start(&start()).unwrap();
        for (i, r) in records.iter().enumerate() {
            p.record(r);
            p.resolver_mut().record(r);
            if i == 3 {
                // A sampling round after the first maps grew: 0xc000 live and kept after
                // deletes, 0xd000 freed; then whether sampling runs.
                p.sampling_state(true, None);
                p.resolver_mut().sampling_state(true, None);
                // A --discover window found 0xe000, which grew before the attach.
                let mut stack = map_trace_common::event::Stack::default();
                stack.pcs[0] = 50;
                stack.depth = 1;
                let found = [Found {
                    time_ns: 1_700_000_000_000_700_000,
                    map: 0xe000,
                    maptype: 0x4a0000,
                    stack,
                    swiss: false,
                }];
                assert!(p.discovered(&found)[0].is_some());
                let report = DiscoveryReport {
                    window_ms: 1000,
                    functions: 18,
                    hits: 40,
                    seen: 3,
                    added: 1,
                    ended: "window".into(),
                    ..Default::default()
                };
                p.resolver_mut().discovered(&found, &report);
                p.discovery_report(report);
                for round in 0..3u64 {
                    let (targets, capped) = p.sample_candidates(10);
                    let results: Vec<_> = targets
                        .iter()
                        .map(|&t| {
                            let o = if t.map == 0xd000 && round == 2 {
                                Outcome::Freed
                            } else {
                                Outcome::Live(Health {
                                    entries: 5,
                                    storage_bytes: 8 << 20,
                                    retained_bytes: (8 << 20) - 200,
                                    overflow_buckets: 1,
                                    tombstones: 0,
                                    reseeded: round == 1,
                                })
                            };
                            (t, o)
                        })
                        .collect();
                    let t = 1_700_000_000_001_000_000 + round;
                    p.samples(t, &results, capped);
                    p.resolver_mut().samples(t, &results, capped);
                }
            }
            if i == 1 {
                let d = Detached {
                    sampled_duty: None,
                    time_ns: 1_700_000_000_000_500_000,
                    family: Family::Slices,
                    share_percent: 12.345_678_9,
                    budget_percent: 5.0,
                    hits: 5,
                };
                p.detached(&d);
                p.resolver_mut().detached(&d);
                // The event probes duty-cycled from here on.
                let d = Detached {
                    sampled_duty: Some(0.08),
                    time_ns: 1_700_000_000_000_600_000,
                    family: Family::Maps,
                    share_percent: 50.0,
                    budget_percent: 5.0,
                    hits: 9,
                };
                p.detached(&d);
                p.resolver_mut().detached(&d);
            }
        }
        let (u, ev) = (p.undecodable(), p.events());
        p.resolver_mut().end(&ending(), u, ev);
        assert!(p.resolver_mut().take_error().is_none());
        p.finish(ending()).unwrap();
        let rec = p.resolver_mut().out.take().unwrap().into_inner();
        let json = out.bytes();
        (json, rec)
    }

    fn replayed(rec: &[u8]) -> Result<Vec<u8>, ReplayError> {
        let out = Capture::default();
        replay(rec, Box::new(JsonSink::new(out.clone())))?;
        Ok(out.bytes())
    }

    fn records() -> Vec<Vec<u8>> {
        vec![
            as_bytes(&grow(0xc000, 0, 10, 100)).to_vec(),
            as_bytes(&grow(0xc000, 1, 10, 200)).to_vec(),
            vec![0xff; 3],
            as_bytes(&grow(0xd000, 0, 20, 300)).to_vec(),
            as_bytes(&grow(0xc000, 2, 10, 400)).to_vec(),
        ]
    }

    #[test]
    fn test_replay_gives_the_live_output() {
        let (json, rec) = live(&records());
        assert_eq!(
            String::from_utf8(replayed(&rec).unwrap()).unwrap(),
            String::from_utf8(json).unwrap()
        );
        let text = String::from_utf8(rec.clone()).unwrap();
        // Symbols once each, before the first record that needs them.
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("{\"record_version\":2,"));
        assert!(
            lines[1].starts_with("{\"stack\":{\"pcs\":[\"0xa\"],"),
            "{}",
            lines[1]
        );
        assert_eq!(
            lines[2],
            "{\"type\":{\"addr\":\"0x4a0000\",\"name\":\"map[int]int\"}}"
        );
        assert!(
            lines[3].starts_with("{\"record\":\"0100000007000000"),
            "{}",
            lines[3]
        );
        // The grows' two stacks and the discovered map's.
        assert_eq!(text.matches("\"stack\":").count(), 3);
        assert_eq!(text.matches("\"type\":").count(), 1);
        assert_eq!(text.matches("{\"record\":").count(), 5);
        assert!(lines.last().unwrap().starts_with("{\"end\":"));
        // The sampling rounds are recorded and replayed: samples, the finding, the freed map.
        assert_eq!(text.matches("{\"samples\":").count(), 3);
        let out = String::from_utf8(replayed(&rec).unwrap()).unwrap();
        // 0xc000 three times, 0xd000 twice (freed at the third), 0xe000 (discovered) three.
        assert_eq!(out.matches("\"event\":\"map_sample\"").count(), 8, "{out}");
        assert_eq!(
            out.matches("\"discovered\":true").count(),
            3 + 2 + 1,
            "{out}"
        );
        assert_eq!(
            out.matches("\"event\":\"map_kept_after_deletes\"").count(),
            2
        );
        assert_eq!(text.matches("{\"discovered\":").count(), 1);
        assert_eq!(out.matches("\"event\":\"map_freed\"").count(), 1);
        let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        let s = &summary["sampling"];
        assert_eq!(s["enabled"], true, "{s}");
        assert_eq!(
            (&s["discovery"]["window_ms"], &s["discovery"]["added"]),
            (&1000.into(), &1.into()),
            "{s}"
        );
    }

    /// Recordings made before `go_version_source` existed replay as `buildinfo` (their only
    /// source then); a value this build does not know is refused.
    #[test]
    fn test_go_version_source_in_recordings() {
        let (json, rec) = live(&records());
        let text = String::from_utf8(rec).unwrap();
        assert!(text.contains(r#""go_version_source":"runtime.buildVersion""#));
        assert!(String::from_utf8(json)
            .unwrap()
            .contains(r#""go_version_source":"runtime.buildVersion""#));
        let old = text.replace(r#""go_version_source":"runtime.buildVersion","#, "");
        assert!(!old.contains("go_version_source"));
        let out = String::from_utf8(replayed(old.as_bytes()).unwrap()).unwrap();
        assert!(out.contains(r#""go_version_source":"buildinfo""#), "{out}");
        let odd = text.replace(
            r#""go_version_source":"runtime.buildVersion""#,
            r#""go_version_source":"guess""#,
        );
        assert!(replayed(odd.as_bytes()).is_err());
    }

    #[test]
    fn test_recorded_floats_round_trip() {
        let (_, rec) = live(&records());
        let text = String::from_utf8(rec).unwrap();
        let end = text.lines().last().unwrap();
        let Line::End(e) = serde_json::from_str(end).unwrap() else {
            panic!("not an end line: {end}");
        };
        let e = ending_of(e);
        assert_eq!(e.overhead, ending().overhead);
        assert_eq!(e.probe_hits, ending().probe_hits);
    }

    fn ending_of(e: End) -> SessionEnd {
        read::ending(e).unwrap()
    }

    #[test]
    fn test_replay_rejects_malformed_input_with_its_line() {
        let (_, rec) = live(&records());
        let text = String::from_utf8(rec).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let with = |i: usize, l: &str| {
            let mut v = lines.clone();
            v[i] = l;
            v.join("\n")
        };
        let err = |input: &str| replayed(input.as_bytes()).unwrap_err().to_string();
        assert_eq!(err(""), "line 1: empty: not a map-trace recording");
        assert_eq!(err("\n\n"), "line 1: empty: not a map-trace recording");
        assert!(err("hello").starts_with("line 1: not a map-trace recording: "));
        assert_eq!(
            err(&with(0, "{\"record_version\":3}")),
            "line 1: recording format version 3; this map-trace reads versions 1 and 2"
        );
        assert_eq!(
            err("{\"record\":\"00\"}"),
            "line 1: not a map-trace recording (no record_version)"
        );
        assert!(err(&with(0, "{\"record_version\":2}"))
            .starts_with("line 1: bad header: missing field"));
        let h = lines[0].replace("\"classic\"", "\"hashmap\"");
        assert_eq!(
            err(&with(0, &h)),
            "line 1: map_impl \"hashmap\" is not one of classic, swiss"
        );
        assert_eq!(
            err(&with(3, "{\"record\":\"abc\"}")),
            "line 4: record of 3 hex digits (odd)"
        );
        assert_eq!(
            err(&with(3, "{\"record\":\"zz\"}")),
            "line 4: record is not hex"
        );
        assert!(err(&with(3, "{\"nonsense\":1}")).starts_with("line 4: unknown variant `nonsense`"));
        assert!(err(&with(3, "[1,2")).starts_with("line 4: "));
        assert!(
            err(&with(1, "{\"stack\":{\"pcs\":[\"12\"],\"origin\":null}}"))
                .starts_with("line 2: \"12\" is not an address")
        );
        let deep = format!(
            "{{\"stack\":{{\"pcs\":[{}],\"origin\":null}}}}",
            ["1"; 65].join(",")
        );
        assert_eq!(
            err(&with(1, &deep)),
            "line 2: a stack of 65 frames (at most 64)"
        );
        assert_eq!(
            err(&with(
                1,
                "{\"stack\":{\"pcs\":[1],\"origin\":{\"frames\":[],\"site\":0}}}"
            )),
            "line 2: a call site past the stack's frames"
        );
        let d = lines
            .iter()
            .position(|l| l.starts_with("{\"detached\""))
            .unwrap();
        let bad_family = lines[d].replace("\"slices\"", "\"nope\"");
        assert_eq!(
            err(&with(d, &bad_family)),
            format!("line {}: unknown probe family \"nope\"", d + 1)
        );
        let n = lines.len();
        let bad_reason = lines[n - 1].replace("\"signal\"", "\"crash\"");
        assert_eq!(
            err(&with(n - 1, &bad_reason)),
            format!("line {n}: reason \"crash\" is not one of target_exited, signal, duration")
        );
        assert_eq!(
            err(&lines[..n - 1].join("\n")),
            format!(
                "the recording ends after line {} without its end line (cut short?)",
                n - 1
            )
        );
        assert_eq!(
            err(&format!("{text}{{\"record\":\"00\"}}\n")),
            format!("line {}: a line after the end line", n + 1)
        );
        let mut bytes = lines[..2].join("\n").into_bytes();
        bytes.extend_from_slice(b"\n\xff\xfe\n");
        assert_eq!(
            replayed(&bytes).unwrap_err().to_string(),
            "line 3: not UTF-8 text"
        );
        assert!(replayed(&bytes).unwrap_err().is_bad_input());
    }

    #[test]
    fn test_replay_without_symbols_reports_no_site() {
        // A hand-made recording may leave stacks out: their events are not symbolized.
        let (_, rec) = live(&records());
        let text: String = String::from_utf8(rec)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("{\"stack\"") && !l.starts_with("{\"type\""))
            .map(|l| format!("{l}\r\n"))
            .collect();
        let json = String::from_utf8(replayed(text.as_bytes()).unwrap()).unwrap();
        assert!(json.contains("\"site\":null"));
        assert!(!json.contains("main.f"));
    }

    #[test]
    fn test_recorder_keeps_the_first_write_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("no space"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut r = Recorder::new(FakeResolver::default(), Some(RecordWriter::new(Full)));
        r.record(&[1]);
        r.record(&[2]);
        assert_eq!(r.take_error().unwrap().to_string(), "no space");
        assert!(r.take_error().is_none());
        // Without a writer it only resolves.
        let mut r: Recorder<_, Full> = Recorder::new(FakeResolver::default(), None);
        r.record(&[1]);
        assert!(r.type_name(1).is_some());
        assert!(r.take_error().is_none());
    }
}
