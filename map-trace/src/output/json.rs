//! `--format json`: JSON lines, schema_version 1 (documented in the README).

use std::io::{self, Write};

use serde_json::{json, Value};

use super::{hex, EndInfo, Sink, StartInfo};
use crate::timeline::Grow;

/// Schema version of the JSON records.
pub const SCHEMA_VERSION: u32 = 1;

/// Writes one JSON object per line.
pub struct JsonSink<W: Write> {
    out: W,
}

impl<W: Write> JsonSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    fn line(&mut self, v: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// The `map_grow` record for one grow.
pub fn grow_record(g: &Grow) -> Value {
    json!({
        "event": "map_grow",
        "time_ns": g.time_ns,
        "pid": g.pid,
        "tid": g.tid,
        "goid": g.goid,
        "map": hex(g.map),
        "maptype": hex(g.maptype),
        "buckets_before": g.buckets_before,
        "buckets_after": g.buckets_after,
        "entries": g.entries,
        "same_size": g.same_size,
        "key_size": g.key_size,
        "elem_size": g.elem_size,
        "bucket_size": g.bucket_size,
        "overflow_buckets": g.overflow_buckets,
        "bytes_allocated": g.bytes_allocated,
        "partial": g.partial,
    })
}

impl<W: Write> Sink for JsonSink<W> {
    fn start(&mut self, s: &StartInfo) -> io::Result<()> {
        let probes: Vec<Value> = s
            .probes
            .iter()
            .map(|p| {
                json!({
                    "function": p.function,
                    "offset": p.offset_in_function,
                    "address": hex(p.vaddr),
                    "file_offset": hex(p.file_offset),
                })
            })
            .collect();
        self.line(&json!({
            "event": "start",
            "schema_version": SCHEMA_VERSION,
            "time_ns": s.time_ns,
            "pid": s.pid,
            "exe": s.exe,
            "go_version": s.go_version,
            "map_impl": s.map_impl,
            "arch": s.arch,
            "launched": s.launched,
            "probes": probes,
            "map_trace_version": env!("CARGO_PKG_VERSION"),
        }))
    }

    fn grow(&mut self, g: &Grow) -> io::Result<()> {
        self.line(&grow_record(g))
    }

    fn finish(&mut self, e: &EndInfo) -> io::Result<()> {
        let maps: Vec<Value> = e
            .maps
            .iter()
            .map(|m| {
                json!({
                    "map": hex(m.map),
                    "maptype": hex(m.maptype),
                    "key_size": m.key_size,
                    "elem_size": m.elem_size,
                    "grows": m.grows,
                    "same_size_grows": m.same_size_grows,
                    "buckets_first": m.buckets_first,
                    "buckets_last": m.buckets_last,
                    "entries_last": m.entries_last,
                    "bytes_allocated": m.bytes_allocated,
                    "goids": m.goroutines,
                    "first_time_ns": m.first_time_ns,
                    "last_time_ns": m.last_time_ns,
                })
            })
            .collect();
        let hits: serde_json::Map<String, Value> = e
            .probe_hits
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        self.line(&json!({
            "event": "summary",
            "time_ns": e.time_ns,
            "reason": e.reason,
            "exit_status": e.exit_status,
            "events": e.events,
            "lost": e.lost,
            "undecodable": e.undecodable,
            "read_errors": e.read_errors,
            "probe_hits": hits,
            "maps": maps,
        }))
    }
}
