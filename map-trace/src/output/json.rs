//! `--format json`: JSON lines, schema_version 1 (documented in the README).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::{json, Value};

use super::{hex, EndInfo, Hex, Sink, StartInfo};
use crate::{
    symbols::pclntab::SourcePos,
    timeline::{
        health::{MapFreed, MapSample},
        EvacuateStep, Evacuated, EvacuationEnd, Grow, MapSummary, Origin, SiteSummary, SliceGrow,
        SwissKind, SwissResize,
    },
};

/// `site` (the first user frame, or null) and `stack` (innermost first;
/// empty when not symbolized), borrowed from an event's origin.
fn site_stack(o: &Option<std::sync::Arc<Origin>>) -> (Option<&SourcePos>, &[SourcePos]) {
    match o.as_deref() {
        Some(o) => (o.site(), &o.stack),
        None => (None, &[]),
    }
}

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

    /// The output it writes to.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn line<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")
    }
}

/// The `map_grow` record (hot path: a plain struct, no `Value` tree).
#[derive(Serialize)]
struct GrowRecord<'a> {
    event: &'static str,
    time_ns: u64,
    pid: u32,
    tid: u32,
    goid: u64,
    map: Hex,
    maptype: Hex,
    buckets_before: u64,
    buckets_after: u64,
    entries: u64,
    same_size: bool,
    key_size: u64,
    elem_size: u64,
    bucket_size: u64,
    overflow_buckets: u64,
    bytes_allocated: u64,
    partial: bool,
    #[serde(rename = "type")]
    type_name: Option<&'a str>,
    site: Option<&'a SourcePos>,
    stack: &'a [SourcePos],
}

/// The `map_evacuated` record: a classic map's growth finished.
#[derive(Serialize)]
struct EvacuatedRecord<'a> {
    event: &'static str,
    time_ns: u64,
    pid: u32,
    tid: u32,
    goid: u64,
    map: Hex,
    buckets: u64,
    entries: u64,
    duration_ns: Option<u64>,
    inferred: bool,
    partial: bool,
    #[serde(rename = "type")]
    type_name: Option<&'a str>,
    site: Option<&'a SourcePos>,
}

/// The `map_evacuate_step` record (`--evacuation`).
#[derive(Serialize)]
struct EvacuateStepRecord {
    event: &'static str,
    time_ns: u64,
    pid: u32,
    tid: u32,
    goid: u64,
    map: Hex,
    old_bucket: u64,
    duration_ns: u64,
    partial: bool,
}

/// The `slice_grow` record.
#[derive(Serialize)]
struct SliceRecord<'a> {
    event: &'static str,
    time_ns: u64,
    pid: u32,
    tid: u32,
    goid: u64,
    cap_before: u64,
    cap_after: u64,
    elem_size: u64,
    elem_type: Option<&'a str>,
    bytes: u64,
    duration_ns: u64,
    partial: bool,
    site: Option<&'a SourcePos>,
    stack: &'a [SourcePos],
}

/// The `map_sample` record: what a live map holds now.
#[derive(Serialize)]
struct SampleRecord<'a> {
    event: &'static str,
    time_ns: u64,
    pid: u32,
    map: Hex,
    #[serde(rename = "type")]
    type_name: Option<&'a str>,
    site: Option<&'a SourcePos>,
    entries: u64,
    peak_entries: u64,
    storage_bytes: u64,
    retained_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    overflow_buckets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tombstones: Option<u64>,
    reseeded: bool,
    /// Found by `--discover`: `site` is where it was accessed (absent otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    discovered: bool,
}

/// The `map_kept_after_deletes` finding.
#[derive(Serialize)]
struct KeptRecord<'a> {
    event: &'static str,
    time_ns: u64,
    pid: u32,
    map: Hex,
    #[serde(rename = "type")]
    type_name: Option<&'a str>,
    site: Option<&'a SourcePos>,
    entries: u64,
    peak_entries: u64,
    storage_bytes: u64,
    retained_bytes: u64,
    advice: String,
    /// As in `map_sample`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    discovered: bool,
}

/// The `map_freed` record: a sampled map the GC freed.
#[derive(Serialize)]
struct FreedRecord<'a> {
    event: &'static str,
    time_ns: u64,
    map: Hex,
    #[serde(rename = "type")]
    type_name: Option<&'a str>,
    site: Option<&'a SourcePos>,
}

/// A Swiss record; kind-specific fields are omitted when they do not apply.
#[derive(Serialize)]
struct SwissRecord<'a> {
    event: &'static str,
    time_ns: u64,
    pid: u32,
    tid: u32,
    goid: u64,
    map: Hex,
    maptype: Hex,
    entries: u64,
    key_size: u64,
    elem_size: u64,
    /// `null` when the resize was not timed.
    duration_ns: Option<u64>,
    directory_len_before: u64,
    directory_len_after: u64,
    partial: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_depth_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table_entries: Option<u64>,
    /// What the new table(s) hold: slots × (key + element + 1 control byte).
    bytes_allocated: u64,
    #[serde(rename = "type")]
    type_name: Option<&'a str>,
    site: Option<&'a SourcePos>,
    stack: &'a [SourcePos],
}

/// The `map_concurrent_write` record: the runtime is killing the process for a map misuse.
#[derive(Serialize)]
struct ConcurrentWriteRecord<'a> {
    event: &'static str,
    time_ns: u64,
    pid: u32,
    tid: u32,
    goid: u64,
    /// `writes`, `read_write`, `iteration_write`.
    kind: &'static str,
    message: &'static str,
    /// The goroutine's call site: its first user frame.
    site: Option<&'a SourcePos>,
    stack: &'a [SourcePos],
    /// The runtime map function that called `fatal`.
    function: Option<&'a str>,
    /// The map header, when the decoder found it (null otherwise: see `map_found`).
    map: Option<Hex>,
    /// Where the map was found (`register rdx`, …), or why it was not.
    map_found: &'a str,
    #[serde(rename = "type")]
    type_name: Option<&'a str>,
    /// Where map-trace saw this map grow or used before (null: not seen).
    map_site: Option<&'a SourcePos>,
}

/// The record of one [`crate::timeline::fatal::ConcurrentWrite`] (also in the summary).
fn concurrent_write_struct(
    c: &crate::timeline::fatal::ConcurrentWrite,
) -> ConcurrentWriteRecord<'_> {
    let (site, stack) = site_stack(&c.origin);
    ConcurrentWriteRecord {
        event: "map_concurrent_write",
        time_ns: c.time_ns,
        pid: c.pid,
        tid: c.tid,
        goid: c.goid,
        kind: c.kind.name(),
        message: c.kind.message(),
        site,
        stack,
        function: c.function.as_deref(),
        map: c.map.map(Hex),
        map_found: &c.found,
        type_name: c.type_name.as_deref(),
        map_site: site_stack(&c.known_origin).0,
    }
}

fn grow_struct(g: &Grow) -> GrowRecord<'_> {
    let (site, stack) = site_stack(&g.origin);
    GrowRecord {
        event: "map_grow",
        time_ns: g.time_ns,
        pid: g.pid,
        tid: g.tid,
        goid: g.goid,
        map: Hex(g.map),
        maptype: Hex(g.maptype),
        buckets_before: g.buckets_before,
        buckets_after: g.buckets_after,
        entries: g.entries,
        same_size: g.same_size,
        key_size: g.key_size,
        elem_size: g.elem_size,
        bucket_size: g.bucket_size,
        overflow_buckets: g.overflow_buckets,
        bytes_allocated: g.bytes_allocated,
        partial: g.partial,
        type_name: g.type_name.as_deref(),
        site,
        stack,
    }
}

fn swiss_struct(r: &SwissResize) -> SwissRecord<'_> {
    let (site, stack) = site_stack(&r.origin);
    let (mut capacity_before, mut capacity_after, mut capacity) = (None, None, None);
    let (mut local_depth_before, mut table_entries) = (None, None);
    match r.kind {
        SwissKind::SmallToTable | SwissKind::SmallAlloc => capacity_after = Some(r.capacity_after),
        SwissKind::TableGrow => {
            capacity_before = Some(r.capacity_before);
            capacity_after = Some(r.capacity_after);
            table_entries = Some(r.table_entries);
        }
        SwissKind::TableSplit => {
            capacity = Some(r.capacity_before);
            local_depth_before = Some(r.local_depth_before);
            table_entries = Some(r.table_entries);
        }
    }
    SwissRecord {
        event: r.kind.event_name(),
        time_ns: r.time_ns,
        pid: r.pid,
        tid: r.tid,
        goid: r.goid,
        map: Hex(r.map),
        maptype: Hex(r.maptype),
        entries: r.entries,
        key_size: r.key_size,
        elem_size: r.elem_size,
        duration_ns: r.duration_ns,
        directory_len_before: r.directory_len_before,
        directory_len_after: r.directory_len_after,
        partial: r.partial,
        capacity_before,
        capacity_after,
        capacity,
        local_depth_before,
        table_entries,
        bytes_allocated: r.bytes_allocated(),
        type_name: r.type_name.as_deref(),
        site,
        stack,
    }
}

impl<W: Write + Send> Sink for JsonSink<W> {
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
            "go_version_source": s.go_version_source.name(),
            "map_impl": s.map_impl.name(),
            "arch": s.arch.goarch(),
            "launched": s.launched,
            "probes": probes,
            "map_trace_version": env!("CARGO_PKG_VERSION"),
        }))?;
        self.out.flush()
    }

    fn grow(&mut self, g: &Grow) -> io::Result<()> {
        self.line(&grow_struct(g))
    }

    fn swiss(&mut self, r: &SwissResize) -> io::Result<()> {
        self.line(&swiss_struct(r))
    }

    fn slice(&mut self, s: &SliceGrow) -> io::Result<()> {
        let (site, stack) = site_stack(&s.origin);
        self.line(&SliceRecord {
            event: "slice_grow",
            time_ns: s.time_ns,
            pid: s.pid,
            tid: s.tid,
            goid: s.goid,
            cap_before: s.cap_before,
            cap_after: s.cap_after,
            elem_size: s.elem_size,
            elem_type: s.elem_type_name.as_deref(),
            bytes: s.bytes,
            duration_ns: s.duration_ns,
            partial: s.partial,
            site,
            stack,
        })
    }

    fn evacuated(&mut self, e: &Evacuated) -> io::Result<()> {
        self.line(&EvacuatedRecord {
            event: "map_evacuated",
            time_ns: e.time_ns,
            pid: e.pid,
            tid: e.tid,
            goid: e.goid,
            map: Hex(e.map),
            buckets: e.buckets,
            entries: e.entries,
            duration_ns: e.duration_ns,
            inferred: e.end == EvacuationEnd::NextGrow,
            partial: e.partial,
            type_name: e.type_name.as_deref(),
            site: site_stack(&e.origin).0,
        })
    }

    fn evacuate_step(&mut self, st: &EvacuateStep) -> io::Result<()> {
        self.line(&EvacuateStepRecord {
            event: "map_evacuate_step",
            time_ns: st.time_ns,
            pid: st.pid,
            tid: st.tid,
            goid: st.goid,
            map: Hex(st.map),
            old_bucket: st.old_bucket,
            duration_ns: st.duration_ns,
            partial: st.partial,
        })
    }

    fn detached(&mut self, d: &crate::overhead::Detached) -> io::Result<()> {
        let mut v = json!({
            "event": "probes_detached",
            "time_ns": d.time_ns,
            "family": d.family.name(),
            "flag": d.family.flag(),
            "share_percent": d.share_percent,
            "budget_percent": d.budget_percent,
            "hits": d.hits,
        });
        // Only a duty-cycled family has it.
        if let (Some(duty), Value::Object(o)) = (d.sampled_duty, &mut v) {
            o.insert("sampled_duty".into(), json!(duty));
        }
        self.line(&v)?;
        self.out.flush()
    }

    fn map_sample(&mut self, m: &MapSample) -> io::Result<()> {
        let site = site_stack(&m.origin).0;
        let h = &m.health;
        self.line(&SampleRecord {
            event: "map_sample",
            time_ns: m.time_ns,
            pid: m.pid,
            map: Hex(m.map),
            type_name: m.type_name.as_deref(),
            site,
            entries: h.entries,
            peak_entries: m.peak_entries,
            storage_bytes: h.storage_bytes,
            retained_bytes: h.retained_bytes,
            overflow_buckets: (!m.swiss).then_some(h.overflow_buckets),
            tombstones: m.swiss.then_some(h.tombstones),
            reseeded: h.reseeded,
            discovered: m.discovered,
        })?;
        if m.kept_raised {
            self.line(&KeptRecord {
                event: "map_kept_after_deletes",
                time_ns: m.time_ns,
                pid: m.pid,
                map: Hex(m.map),
                type_name: m.type_name.as_deref(),
                site,
                entries: h.entries,
                peak_entries: m.peak_entries,
                storage_bytes: h.storage_bytes,
                retained_bytes: h.retained_bytes,
                advice: crate::output::format::sample_advice(m),
                discovered: m.discovered,
            })?;
        }
        Ok(())
    }

    fn map_freed(&mut self, f: &MapFreed) -> io::Result<()> {
        self.line(&FreedRecord {
            event: "map_freed",
            time_ns: f.time_ns,
            map: Hex(f.map),
            type_name: f.type_name.as_deref(),
            site: site_stack(&f.origin).0,
        })
    }

    fn concurrent_write(&mut self, c: &crate::timeline::fatal::ConcurrentWrite) -> io::Result<()> {
        self.line(&concurrent_write_struct(c))?;
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, e: &EndInfo) -> io::Result<()> {
        let hits: serde_json::Map<String, Value> = e
            .probe_hits
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let sites = crate::timeline::by_site(&e.maps, e.load_factor_num);
        let lfn = e.load_factor_num;
        // Keys in the order serde_json gives a `json!` object (sorted), as before.
        self.line(&SummaryRecord {
            concurrent_writes: e.fatal.iter().map(concurrent_write_struct).collect(),
            event: "summary",
            events: e.events,
            exit_status: e.exit_status,
            lost: e.lost,
            maps: Each(&e.maps, &|m| map_json(m, lfn)),
            overhead: overhead_json(&e.overhead),
            probe_hits: hits,
            read_errors: e.read_errors,
            reason: e.reason.name(),
            runtime_events_hidden: e.runtime_events_hidden,
            sampled: e.sampled.map(|s| {
                json!({
                    "family": s.sampling.family.name(),
                    "since_ns": s.sampling.since_ns,
                    "attached_ns": s.sampling.attached_ns,
                    "elapsed_ns": s.sampling.elapsed_ns,
                    "coverage": s.sampling.coverage(),
                    "events_before": s.events_before,
                    "events_sampled": s.events_sampled,
                    "lost_sampled": s.lost_sampled,
                    "events_estimated": s.events_estimated(),
                })
            }),
            sampling: e
                .health
                .enabled
                .then(|| sampling_json(&e.health))
                .or_else(|| {
                    e.health
                        .note
                        .as_ref()
                        .map(|n| json!({ "enabled": false, "note": n }))
                }),
            sites: Each(&sites, &site_json),
            slice_grows: e.slices.map(|s| s.0),
            slice_grows_below_min_bytes: e.slices.map(|s| s.1),
            time_ns: e.time_ns,
            undecodable: e.undecodable,
        })?;
        self.out.flush()
    }
}

/// A sequence serialized one element at a time: a summary of 100,000 maps never exists as
/// one `Value` tree (that took ~700 MB), only one map's at a time.
struct Each<'a, T>(&'a [T], &'a dyn Fn(&T) -> Value);

impl<T> Serialize for Each<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for x in self.0 {
            seq.serialize_element(&(self.1)(x))?;
        }
        seq.end()
    }
}

/// The `summary` record (fields in sorted order, as a `json!` object writes them).
#[derive(Serialize)]
struct SummaryRecord<'a> {
    /// The map misuse the runtime killed the process for (`map_concurrent_write` records);
    /// absent when there was none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    concurrent_writes: Vec<ConcurrentWriteRecord<'a>>,
    event: &'static str,
    events: u64,
    exit_status: Option<i32>,
    lost: u64,
    maps: Each<'a, MapSummary>,
    overhead: Value,
    probe_hits: serde_json::Map<String, Value>,
    read_errors: u64,
    reason: &'static str,
    runtime_events_hidden: u64,
    /// Only when the event probes were duty-cycled.
    #[serde(skip_serializing_if = "Option::is_none")]
    sampled: Option<Value>,
    /// Map sampling: what it covered (absent when it neither ran nor was refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    sampling: Option<Value>,
    sites: Each<'a, SiteSummary>,
    slice_grows: Option<u64>,
    slice_grows_below_min_bytes: Option<u64>,
    time_ns: u64,
    undecodable: u64,
}

/// One map of the summary.
fn map_json(m: &MapSummary, load_factor_num: u64) -> Value {
    let mut v = json!({
        "map": hex(m.map),
        "maptype": hex(m.maptype),
        "key_size": m.key_size,
        "elem_size": m.elem_size,
        "entries_last": m.entries_last,
        "goids": m.goroutines.ids(),
        "goids_truncated": m.goroutines.truncated(),
        "first_time_ns": m.first_time_ns,
        "last_time_ns": m.last_time_ns,
        "site": site_stack(&m.origin).0,
        "type": m.type_name.as_deref(),
        "presize_hint": m.presize_hint(load_factor_num),
    });
    let extra = match &m.swiss {
        None => json!({
            "impl": "classic",
            "grows": m.grows,
            "same_size_grows": m.same_size_grows,
            "buckets_first": m.buckets_first,
            "buckets_last": m.buckets_last,
            "bytes_allocated": m.bytes_allocated,
            "evacuations": m.evacuations,
            "evacuation_total_ns": m.evacuation_total_ns,
            "evacuation_max_ns": m.evacuation_max_ns,
            "growing_at_end": m.growing_since_ns.is_some(),
            "evacuate_steps": m.evacuate_steps,
            "evacuate_steps_ns": m.evacuate_steps_ns,
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
    if let (Value::Object(a), Some(h)) = (&mut v, &m.health) {
        if h.samples > 0 || h.freed_ns.is_some() {
            a.insert("health".into(), health_json(h, m.swiss.is_some()));
        }
    }
    if let (Value::Object(a), true) = (&mut v, m.discovered) {
        a.insert("discovered".into(), json!(true));
    }
    v
}

/// A sampled map's `health` object in the summary.
fn health_json(h: &crate::timeline::health::HealthSummary, swiss: bool) -> Value {
    let mut v = json!({
        "samples": h.samples,
        "last_sample_ns": h.last_ns,
        "entries": h.last.entries,
        "peak_entries": h.peak_entries,
        "storage_bytes": h.last.storage_bytes,
        "retained_bytes": h.last.retained_bytes,
        "kept_after_deletes_since_ns": h.kept_since_ns,
        "freed_ns": h.freed_ns,
    });
    if let Value::Object(a) = &mut v {
        if swiss {
            a.insert("tombstones".into(), json!(h.last.tombstones));
        } else {
            a.insert("overflow_buckets".into(), json!(h.last.overflow_buckets));
        }
    }
    v
}

/// The summary's `sampling` object.
fn sampling_json(r: &crate::timeline::health::SamplingReport) -> Value {
    let mut v = json!({
        "enabled": true,
        "note": r.note,
        "rounds": r.rounds,
        "samples": r.samples,
        "rounds_capped": r.rounds_capped,
        "freed": r.freed,
        "not_heap": r.not_heap,
        "unreadable": r.unreadable,
        "kept_ratio": r.rule.ratio,
        "kept_min_bytes": r.rule.min_bytes,
        "kept_samples": r.rule.samples,
    });
    if let (Value::Object(a), Some(d)) = (&mut v, &r.discovery) {
        a.insert("discovery".into(), json!(d));
    }
    v
}

/// One call site of the summary.
fn site_json(t: &SiteSummary) -> Value {
    let mut v = site_core_json(t);
    if let (Value::Object(a), Some(l)) = (&mut v, &t.live) {
        a.insert(
            "live".into(),
            json!({
                "maps": l.maps,
                "entries": l.entries,
                "storage_bytes": l.storage_bytes,
                "retained_bytes": l.retained_bytes,
                "kept_after_deletes": l.kept,
            }),
        );
    }
    if let (Value::Object(a), true) = (&mut v, t.discovered) {
        a.insert("discovered".into(), json!(true));
    }
    v
}

fn site_core_json(t: &SiteSummary) -> Value {
    json!({
        "site": t.site,
        "type": t.type_name.as_deref(),
        "maps": t.maps,
        "events": t.events,
        "bytes_allocated": t.bytes_allocated,
        "total_duration_ns": t.total_duration_ns,
        "growth_span_ns": t.growth_span_ns,
        "presize_hint": t.presize_hint,
        "first_time_ns": t.first_time_ns,
        "last_time_ns": t.last_time_ns,
    })
}

/// The summary's `overhead` object.
fn overhead_json(o: &crate::overhead::Overhead) -> Value {
    let families: Vec<Value> = o
        .families
        .iter()
        .map(|f| {
            json!({
                "family": f.family.name(),
                "flag": f.family.flag(),
                "hits": f.hits,
                "estimated_ns": f.estimated_ns,
                "detached_at_ns": f.detached.map(|d| d.0),
                "detached_share_percent": f.detached.map(|d| d.1),
            })
        })
        .collect();
    json!({
        "body_hit_cost_ns": o.hit_cost.body_ns.round() as u64,
        "stepped_hit_cost_ns": o.hit_cost.stepped_ns.round() as u64,
        "hit_cost_measured": o.hit_cost.calibrated,
        "estimated_ns": o.estimated_ns,
        "target_cpu_ns": o.target_cpu_ns,
        "budget_percent": o.budget_percent,
        "families": families,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_hex_matches_format() {
        for v in [0u64, 1, 0xf, 0x10, 0xc000012345, u64::MAX] {
            assert_eq!(
                serde_json::to_string(&Hex(v)).unwrap(),
                format!("\"{v:#x}\"")
            );
        }
    }
}
