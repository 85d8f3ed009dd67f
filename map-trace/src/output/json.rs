//! `--format json`: JSON lines, schema_version 1 (documented in the README).

use std::io::{self, Write};

use serde_json::{json, Value};

use super::{hex, EndInfo, Sink, StartInfo};
use crate::timeline::{Grow, SwissKind, SwissResize};

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

/// The record for one Swiss-table resize (`map_small_to_table`, `map_table_grow`,
/// `map_table_split`).
pub fn swiss_record(r: &SwissResize) -> Value {
    let mut v = json!({
        "event": r.kind.event_name(),
        "time_ns": r.time_ns,
        "pid": r.pid,
        "tid": r.tid,
        "goid": r.goid,
        "map": hex(r.map),
        "maptype": hex(r.maptype),
        "entries": r.entries,
        "key_size": r.key_size,
        "elem_size": r.elem_size,
        "duration_ns": r.duration_ns,
        "directory_len_before": r.directory_len_before,
        "directory_len_after": r.directory_len_after,
        "partial": r.partial,
    });
    let extra = match r.kind {
        SwissKind::SmallToTable | SwissKind::SmallAlloc => {
            json!({ "capacity_after": r.capacity_after })
        }
        SwissKind::TableGrow => json!({
            "capacity_before": r.capacity_before,
            "capacity_after": r.capacity_after,
            "table_entries": r.table_entries,
        }),
        SwissKind::TableSplit => json!({
            "capacity": r.capacity_before,
            "local_depth_before": r.local_depth_before,
            "table_entries": r.table_entries,
        }),
    };
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        a.extend(b);
    }
    v
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

    fn swiss(&mut self, r: &SwissResize) -> io::Result<()> {
        self.line(&swiss_record(r))
    }

    fn finish(&mut self, e: &EndInfo) -> io::Result<()> {
        let maps: Vec<Value> = e
            .maps
            .iter()
            .map(|m| {
                let mut v = json!({
                    "map": hex(m.map),
                    "maptype": hex(m.maptype),
                    "key_size": m.key_size,
                    "elem_size": m.elem_size,
                    "entries_last": m.entries_last,
                    "goids": m.goroutines,
                    "first_time_ns": m.first_time_ns,
                    "last_time_ns": m.last_time_ns,
                });
                let extra = match &m.swiss {
                    None => json!({
                        "impl": "classic",
                        "grows": m.grows,
                        "same_size_grows": m.same_size_grows,
                        "buckets_first": m.buckets_first,
                        "buckets_last": m.buckets_last,
                        "bytes_allocated": m.bytes_allocated,
                    }),
                    Some(s) => json!({
                        "impl": "swiss",
                        "resizes": m.grows,
                        "small_allocs": s.small_allocs,
                        "small_to_table": s.small_to_table,
                        "table_grows": s.table_grows,
                        "table_splits": s.table_splits,
                        "directory_doublings": s.directory_doublings,
                        "directory_len_last": s.directory_len_last,
                        "total_duration_ns": s.total_duration_ns,
                        "max_duration_ns": s.max_duration_ns,
                    }),
                };
                if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
                    a.extend(b);
                }
                v
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
