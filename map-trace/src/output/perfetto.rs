//! `--trace-out FILE`: Chrome/Perfetto trace-event JSON (the JSON Object Format of the
//! Trace Event Format), which ui.perfetto.dev and chrome://tracing open.
//!
//! - one track per goroutine (`tid` = goroutine id, named by `thread_name` metadata), under
//!   the traced process (`pid`, named by `process_name`);
//! - a Swiss resize is a complete slice (`ph: "X"`) as long as the resize took; a hash-bucket
//!   grow, which is incremental and not timed, an instant (`ph: "i"`, thread scope);
//! - a classic map's growth, from `hashGrow` to the end of its incremental evacuation, is an
//!   async slice (`ph: "b"`/`"e"`, `id` = the map's address), since it spans many writes by
//!   possibly several goroutines; one still in progress when tracing stopped ends there with
//!   `in_progress: true`; an end whose start was not seen is an instant;
//! - `--evacuation` steps are complete slices on the goroutine that moved the bucket;
//! - a probe family detached by `--max-overhead`, and events lost (ring buffer full), are
//!   global instants (`s: "g"`);
//! - a counter track (`ph: "C"`) per map with its entries (and buckets, for hash-bucket maps)
//!   at each grow or resize.
//!
//! Events are written as they arrive (`ts` in µs from the first event); the file is closed
//! with `]}` when tracing ends.

use std::io::{self, Write};

use rustc_hash::FxHashSet;
use serde_json::{json, Value};

use super::{hex, EndInfo, Sink, StartInfo};
use crate::timeline::{
    health::{MapFreed, MapSample},
    EvacuateStep, Evacuated, Grow, Origin, SliceGrow, SwissResize,
};

/// Most maps given their own counter track; events of further maps still get slices.
pub const MAX_COUNTER_TRACKS: usize = 1000;

/// Streams trace events to `out`.
pub struct PerfettoSink<W: Write> {
    out: W,
    pid: u32,
    first_ns: Option<u64>,
    wrote_any: bool,
    goroutines: FxHashSet<u64>,
    counters: FxHashSet<u64>,
}

impl<W: Write> PerfettoSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            pid: 0,
            first_ns: None,
            wrote_any: false,
            goroutines: FxHashSet::default(),
            counters: FxHashSet::default(),
        }
    }

    fn event(&mut self, v: &Value) -> io::Result<()> {
        if self.wrote_any {
            self.out.write_all(b",\n")?;
        }
        self.wrote_any = true;
        serde_json::to_writer(&mut self.out, v)?;
        Ok(())
    }

    /// µs since the first event (the trace's time origin).
    fn ts(&mut self, time_ns: u64) -> f64 {
        let first = *self.first_ns.get_or_insert(time_ns);
        time_ns.saturating_sub(first) as f64 / 1000.0
    }

    fn goroutine(&mut self, goid: u64) -> io::Result<()> {
        if self.goroutines.insert(goid) {
            let pid = self.pid;
            self.event(&json!({
                "ph": "M", "name": "thread_name", "pid": pid, "tid": goid,
                "args": { "name": format!("goroutine {goid}") },
            }))?;
        }
        Ok(())
    }

    fn counter(&mut self, map: u64, ts: f64, args: Value) -> io::Result<()> {
        self.counter_track(map, "size", ts, args)
    }

    /// A counter of `map` on its track `what` (`size` from its events, `held` from its
    /// samples); the tracks of at most [`MAX_COUNTER_TRACKS`] maps.
    fn counter_track(&mut self, map: u64, what: &str, ts: f64, args: Value) -> io::Result<()> {
        if self.counters.len() >= MAX_COUNTER_TRACKS && !self.counters.contains(&map) {
            return Ok(());
        }
        self.counters.insert(map);
        let pid = self.pid;
        self.event(&json!({
            "ph": "C", "name": format!("map {} {what}", hex(map)), "pid": pid, "ts": ts,
            "args": args,
        }))
    }

    /// A complete slice (`ph: "X"`) on goroutine `goid`'s track; returns its `ts`.
    fn complete(
        &mut self,
        (name, cat): (&str, &str),
        goid: u64,
        time_ns: u64,
        duration_ns: u64,
        args: Value,
    ) -> io::Result<f64> {
        let ts = self.ts(time_ns);
        self.goroutine(goid)?;
        let pid = self.pid;
        self.event(&json!({
            "ph": "X", "name": name, "cat": cat, "pid": pid, "tid": goid,
            "ts": ts, "dur": duration_ns as f64 / 1000.0, "args": args,
        }))?;
        Ok(ts)
    }

    /// An instant on goroutine `goid`'s track; returns its `ts`.
    fn instant(&mut self, name: String, goid: u64, time_ns: u64, args: Value) -> io::Result<f64> {
        let ts = self.ts(time_ns);
        self.goroutine(goid)?;
        let pid = self.pid;
        self.event(&json!({
            "ph": "i", "s": "t", "name": name, "cat": "map", "pid": pid, "tid": goid, "ts": ts,
            "args": args,
        }))?;
        Ok(ts)
    }

    /// An instant across the whole trace (map-trace's own events).
    fn global_instant(&mut self, name: String, time_ns: u64, args: Value) -> io::Result<()> {
        let ts = self.ts(time_ns);
        let pid = self.pid;
        self.event(&json!({
            "ph": "i", "s": "g", "name": name, "cat": "map_trace", "pid": pid, "tid": 0,
            "ts": ts, "args": args,
        }))
    }

    /// A growth as an async slice from `from_ns` to `to_ns`.
    fn growth_span(
        &mut self,
        map: u64,
        goid: u64,
        from_ns: u64,
        to_ns: u64,
        name: String,
        args: Value,
    ) -> io::Result<()> {
        self.goroutine(goid)?;
        let (b, e) = (self.ts(from_ns), self.ts(to_ns));
        let pid = self.pid;
        let id = hex(map);
        self.event(&json!({
            "ph": "b", "cat": "map_growth", "name": name, "id": id, "pid": pid, "tid": goid,
            "ts": b, "args": args,
        }))?;
        self.event(&json!({
            "ph": "e", "cat": "map_growth", "name": name, "id": id, "pid": pid, "tid": goid,
            "ts": e,
        }))
    }
}

fn where_(origin: &Option<std::sync::Arc<Origin>>) -> String {
    match origin.as_deref().and_then(Origin::site) {
        Some(p) => format!("{} ({}:{})", p.function, p.file, p.line),
        None => String::new(),
    }
}

impl<W: Write + Send> Sink for PerfettoSink<W> {
    fn start(&mut self, s: &StartInfo) -> io::Result<()> {
        self.pid = s.pid;
        self.out
            .write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")?;
        let pid = self.pid;
        self.event(&json!({
            "ph": "M", "name": "process_name", "pid": pid,
            "args": { "name": format!("{} ({}, {} maps)", s.exe, s.go_version, s.map_impl.name()) },
        }))
    }

    fn grow(&mut self, g: &Grow) -> io::Result<()> {
        let kind = if g.same_size {
            "same-size grow"
        } else {
            "grow"
        };
        let ts = self.instant(
            format!(
                "map {kind} {} -> {} buckets",
                g.buckets_before, g.buckets_after
            ),
            g.goid,
            g.time_ns,
            json!({
                "map": hex(g.map), "type": g.type_name.as_deref(), "entries": g.entries,
                "bytes_allocated": g.bytes_allocated, "site": where_(&g.origin),
            }),
        )?;
        self.counter(
            g.map,
            ts,
            json!({ "entries": g.entries, "buckets": g.buckets_after }),
        )
    }

    fn swiss(&mut self, r: &SwissResize) -> io::Result<()> {
        let ts = self.complete(
            (r.kind.event_name(), "map"),
            r.goid,
            r.time_ns,
            r.duration_ns.unwrap_or(0),
            json!({
                "map": hex(r.map), "type": r.type_name.as_deref(), "entries": r.entries,
                "capacity_before": r.capacity_before, "capacity_after": r.capacity_after,
                "site": where_(&r.origin),
            }),
        )?;
        self.counter(r.map, ts, json!({ "entries": r.entries }))
    }

    fn slice(&mut self, s: &SliceGrow) -> io::Result<()> {
        self.complete(
            ("slice_grow", "slice"),
            s.goid,
            s.time_ns,
            s.duration_ns,
            json!({
                "cap_before": s.cap_before, "cap_after": s.cap_after, "bytes": s.bytes,
                "elem_type": s.elem_type_name.as_deref(), "site": where_(&s.origin),
            }),
        )
        .map(drop)
    }

    fn evacuated(&mut self, e: &Evacuated) -> io::Result<()> {
        let args = json!({
            "map": hex(e.map), "type": e.type_name.as_deref(), "buckets": e.buckets,
            "entries": e.entries, "site": where_(&e.origin),
            "inferred_end": e.end == crate::timeline::EvacuationEnd::NextGrow,
        });
        let name = format!("map growth to {} buckets", e.buckets);
        match e.duration_ns {
            Some(d) => self.growth_span(
                e.map,
                e.goid,
                e.time_ns.saturating_sub(d),
                e.time_ns,
                name,
                args,
            ),
            None => self
                .instant(
                    format!("{name} finished (began before tracing)"),
                    e.goid,
                    e.time_ns,
                    args,
                )
                .map(drop),
        }
    }

    fn evacuate_step(&mut self, st: &EvacuateStep) -> io::Result<()> {
        self.complete(
            ("evacuate", "map_evacuate"),
            st.goid,
            st.time_ns,
            st.duration_ns,
            json!({ "map": hex(st.map), "old_bucket": st.old_bucket }),
        )
        .map(drop)
    }

    fn detached(&mut self, d: &crate::overhead::Detached) -> io::Result<()> {
        let what = if d.sampled_duty.is_some() {
            "sampling"
        } else {
            "detached"
        };
        self.global_instant(
            format!("{what} {}", d.family.flag().unwrap_or(d.family.name())),
            d.time_ns,
            match d.sampled_duty {
                None => {
                    json!({ "share_percent": d.share_percent, "budget_percent": d.budget_percent })
                }
                Some(duty) => json!({
                    "share_percent": d.share_percent, "budget_percent": d.budget_percent,
                    "sampled_duty": duty,
                }),
            },
        )
    }

    fn map_sample(&mut self, m: &MapSample) -> io::Result<()> {
        let ts = self.ts(m.time_ns);
        self.counter_track(
            m.map,
            "held",
            ts,
            json!({
                "entries": m.health.entries,
                "storage_bytes": m.health.storage_bytes,
                "retained_bytes": m.health.retained_bytes,
            }),
        )?;
        if m.kept_raised {
            self.global_instant(
                format!("map {} kept after deletes", hex(m.map)),
                m.time_ns,
                json!({ "advice": crate::output::format::sample_advice(m) }),
            )?;
        }
        Ok(())
    }

    fn map_freed(&mut self, f: &MapFreed) -> io::Result<()> {
        self.global_instant(
            format!("map {} freed", hex(f.map)),
            f.time_ns,
            json!({ "type": f.type_name.as_deref(), "site": where_(&f.origin) }),
        )
    }

    fn concurrent_write(&mut self, c: &crate::timeline::fatal::ConcurrentWrite) -> io::Result<()> {
        self.instant(
            format!("fatal error: {}", c.kind.message()),
            c.goid,
            c.time_ns,
            json!({
                "site": where_(&c.origin),
                "map": c.map.map(hex),
                "type": c.type_name.as_deref(),
                "map_found": c.found,
            }),
        )?;
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, e: &EndInfo) -> io::Result<()> {
        // Losses are said in every output: here as a global instant at the end.
        if e.lost > 0 {
            self.global_instant(
                format!("{} events lost (ring buffer full)", e.lost),
                e.time_ns,
                json!({ "lost": e.lost }),
            )?;
        }
        // Growths still running when tracing stopped end at the stop.
        for m in &e.maps {
            if let (None, Some(since)) = (&m.swiss, m.growing_since_ns) {
                let args = json!({
                    "map": hex(m.map), "type": m.type_name.as_deref(), "buckets": m.buckets_last,
                    "site": where_(&m.origin), "in_progress": true,
                });
                let goid = m.goroutines.ids().first().copied().unwrap_or(0);
                let name = format!("map growth to {} buckets", m.buckets_last);
                self.growth_span(m.map, goid, since, e.time_ns.max(since), name, args)?;
            }
        }
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{interpret, interpret_swiss};
    use map_trace_common::event::{EventKind, MapGrowEvent, SwissEvent};

    #[test]
    fn test_trace_is_valid_trace_event_json() {
        let mut buf = vec![];
        {
            let mut s = PerfettoSink::new(&mut buf);
            s.start(&StartInfo {
                time_ns: 0,
                go_version: "go1.26.6".into(),
                launched: true,
                build_id: None,
                ..crate::testkit::start_info(crate::golayout::MapImpl::Swiss)
            })
            .unwrap();
            let header =
                |kind: EventKind, goid, ts| crate::testkit::records::header(kind, 7, goid, ts);
            let g = interpret(
                &MapGrowEvent {
                    header: header(EventKind::MapGrow, 1, 1_000),
                    map: 0xc000,
                    count: 13,
                    b: 1,
                    bucket_size: 144,
                    ..Default::default()
                },
                13,
                0,
            );
            s.grow(&g).unwrap();
            let r = interpret_swiss(
                &SwissEvent {
                    header: header(EventKind::MapTableSplit, 17, 5_000),
                    map: 0xd000,
                    duration_ns: 70_000,
                    capacity_before: 1024,
                    capacity_after: 1024,
                    ..Default::default()
                },
                0,
            )
            .unwrap();
            s.swiss(&r).unwrap();
            s.finish(&EndInfo {
                sampled: None,
                health: Default::default(),
                fatal: vec![],
                time_ns: 0,
                events: 2,
                lost: 0,
                undecodable: 0,
                probe_hits: vec![],
                read_errors: 0,
                reason: crate::output::StopReason::TargetExited,
                exit_status: None,
                runtime_events_hidden: 0,
                load_factor_num: 13,
                slices: None,
                maps: vec![],
                overhead: Default::default(),
                history_cuts: Default::default(),
            })
            .unwrap();
        }
        let v: Value = serde_json::from_slice(&buf).unwrap();
        let evs = v["traceEvents"].as_array().unwrap();
        // process name, goroutine 1 name, instant, counter, goroutine 17 name, slice, counter
        assert_eq!(evs.len(), 7);
        for e in evs {
            check_event(e);
        }
        let slice = evs.iter().find(|e| e["ph"] == "X").unwrap();
        assert_eq!(slice["tid"], 17);
        assert_eq!(slice["ts"], 4.0);
        assert_eq!(slice["dur"], 70.0);
    }

    /// The trace-event format's rules for the phases this sink writes.
    pub fn check_event(e: &Value) {
        let ph = e["ph"].as_str().expect("ph");
        assert!(e["pid"].is_u64(), "{e}");
        assert!(e["name"].is_string(), "{e}");
        match ph {
            "M" => assert!(e["args"]["name"].is_string(), "{e}"),
            "X" => {
                assert!(
                    e["tid"].is_u64() && e["ts"].as_f64().is_some_and(|t| t >= 0.0),
                    "{e}"
                );
                assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "{e}");
            }
            "i" => {
                assert!(
                    e["tid"].is_u64() && e["ts"].as_f64().is_some_and(|t| t >= 0.0),
                    "{e}"
                );
                assert!(["g", "p", "t"].contains(&e["s"].as_str().unwrap()), "{e}");
            }
            "C" => {
                assert!(e["ts"].as_f64().is_some_and(|t| t >= 0.0), "{e}");
                assert!(
                    e["args"]
                        .as_object()
                        .is_some_and(|a| a.values().all(Value::is_number)),
                    "{e}"
                );
            }
            other => panic!("unexpected phase {other}"),
        }
    }
}
