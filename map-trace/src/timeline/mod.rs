//! Timeline reconstruction: raw grow events → interpreted grows → per-map summaries.
//!
//! Pure logic: no aya, no I/O, no clocks (the caller passes the monotonic → Unix offset).

pub mod history;

use std::sync::Arc;

use rustc_hash::FxHashMap;

use history::{History, Mark, Point, SpanEnd};

use map_trace_common::event::{
    EvacuateStepEvent, EventKind, MapEvacuatedEvent, MapGrowEvent, SliceEvent, SwissEvent,
};

use crate::symbols::pclntab::SourcePos;

/// Where a grow was called from: the symbolized stack, innermost first, and which frame is the
/// call site (the first outside the Go runtime; `None` when every frame is the runtime's own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Frames, innermost first.
    pub stack: Vec<SourcePos>,
    /// Index into `stack` of the call site.
    pub site: Option<usize>,
}

impl Origin {
    /// The call site, if a frame outside the runtime was found.
    pub fn site(&self) -> Option<&SourcePos> {
        self.site.and_then(|i| self.stack.get(i))
    }

    /// A map grown by the Go runtime itself (no frame outside it).
    pub fn is_runtime(&self) -> bool {
        self.site.is_none() && !self.stack.is_empty()
    }
}

/// The call site of an optional origin.
pub fn site_of(o: &Option<Arc<Origin>>) -> Option<&SourcePos> {
    o.as_deref().and_then(Origin::site)
}

/// One classic-map grow, interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grow {
    /// Unix epoch nanoseconds.
    pub time_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Goroutine id.
    pub goid: u64,
    /// `*hmap` address.
    pub map: u64,
    /// `*maptype` address.
    pub maptype: u64,
    /// 2^B before the grow.
    pub buckets_before: u64,
    /// 2^B after the grow (same as before for a same-size grow).
    pub buckets_after: u64,
    /// `len(m)` when the grow started.
    pub entries: u64,
    /// Same-size grow (too many overflow buckets) rather than doubling.
    pub same_size: bool,
    /// Key size in bytes.
    pub key_size: u64,
    /// Element size in bytes.
    pub elem_size: u64,
    /// Bytes per bucket.
    pub bucket_size: u64,
    /// Overflow buckets counted before the grow (approximate for large maps, as in the runtime).
    pub overflow_buckets: u64,
    /// Bytes requested for the new bucket array, including the overflow buckets the runtime
    /// preallocates for B ≥ 4, before malloc size-class rounding.
    pub bytes_allocated: u64,
    /// Some target memory could not be read; zero fields are unknown.
    pub partial: bool,
    /// Where it was called from (filled in by the collector; `None` if not symbolized).
    pub origin: Option<Arc<Origin>>,
    /// The map's Go type, e.g. `map[string]int` (filled in by the collector).
    pub type_name: Option<Arc<str>>,
}

/// `overLoadFactor(count, B)`: more than 8 entries and more than `LF * 2^B` (LF = num / 2).
pub fn over_load_factor(count: u64, b: u8, load_factor_num: u64) -> bool {
    let half_buckets = 1u64.checked_shl(u32::from(b)).unwrap_or(u64::MAX) >> 1;
    count > 8 && count > load_factor_num.saturating_mul(half_buckets)
}

/// Bucket count `makeBucketArray(t, b)` allocates: 2^b, plus 2^(b-4) overflow buckets for b ≥ 4.
pub fn allocated_buckets(b: u32) -> u64 {
    let base = 1u64.checked_shl(b).unwrap_or(0);
    if b >= 4 {
        base.saturating_add(1u64.checked_shl(b - 4).unwrap_or(0))
    } else {
        base
    }
}

/// Interprets a raw event. `hashGrow` doubles iff `overLoadFactor(count+1, B)` (the insert that
/// triggered it is not counted yet); otherwise it is a same-size grow.
pub fn interpret(ev: &MapGrowEvent, load_factor_num: u64, mono_to_unix_ns: i128) -> Grow {
    let same_size = !over_load_factor(ev.count.saturating_add(1), ev.b, load_factor_num);
    let b_before = u32::from(ev.b);
    let b_after = if same_size { b_before } else { b_before + 1 };
    let pow = |b: u32| 1u64.checked_shl(b).unwrap_or(0);
    let time_ns = to_unix_ns(ev.header.ts_ns, mono_to_unix_ns);
    Grow {
        time_ns,
        pid: ev.header.pid,
        tid: ev.header.tid,
        goid: ev.header.goid,
        map: ev.map,
        maptype: ev.maptype,
        buckets_before: pow(b_before),
        buckets_after: pow(b_after),
        entries: ev.count,
        same_size,
        key_size: ev.key_size,
        elem_size: ev.elem_size,
        bucket_size: u64::from(ev.bucket_size),
        overflow_buckets: u64::from(ev.noverflow),
        bytes_allocated: allocated_buckets(b_after).saturating_mul(u64::from(ev.bucket_size)),
        partial: ev.read_error != 0,
        origin: None,
        type_name: None,
    }
}

/// Monotonic kernel ns → Unix ns, clamped to the u64 range.
pub fn to_unix_ns(ts_ns: u64, mono_to_unix_ns: i128) -> u64 {
    (i128::from(ts_ns) + mono_to_unix_ns).clamp(0, u64::MAX as i128) as u64
}

/// How the end of a classic growth was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvacuationEnd {
    /// The `map_evacuated` probe saw the old buckets freed: the time is exact.
    Probe,
    /// A later grow of the same map proves the growth had finished (the runtime only grows a map
    /// that is not growing); the time is an upper bound. Used when the binary offers no
    /// finishing block to probe.
    NextGrow,
}

/// A classic map's growth finished: every old bucket was moved and the old array released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evacuated {
    /// Unix ns when it finished (an upper bound for [`EvacuationEnd::NextGrow`]).
    pub time_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Goroutine that moved the last bucket (0 when inferred).
    pub goid: u64,
    /// `*hmap` address.
    pub map: u64,
    /// Buckets now (2^B).
    pub buckets: u64,
    /// `len(m)` when it finished.
    pub entries: u64,
    /// Nanoseconds since the grow began; `None` when that grow was not seen (it began before
    /// tracing, or its map was hidden).
    pub duration_ns: Option<u64>,
    /// How the end was learned.
    pub end: EvacuationEnd,
    /// Some target memory could not be read; zero fields are unknown.
    pub partial: bool,
    /// Where the map's grow was called from (from the grow; `None` if not seen).
    pub origin: Option<Arc<Origin>>,
    /// The map's Go type (from the grow).
    pub type_name: Option<Arc<str>>,
}

/// Interprets a raw `map_evacuated` record (duration, origin and type are filled in by
/// [`Timeline::push_evacuated`]).
pub fn interpret_evacuated(ev: &MapEvacuatedEvent, mono_to_unix_ns: i128) -> Evacuated {
    Evacuated {
        time_ns: to_unix_ns(ev.header.ts_ns, mono_to_unix_ns),
        pid: ev.header.pid,
        tid: ev.header.tid,
        goid: ev.header.goid,
        map: ev.map,
        buckets: 1u64.checked_shl(u32::from(ev.b)).unwrap_or(0),
        entries: ev.count,
        duration_ns: None,
        end: EvacuationEnd::Probe,
        partial: ev.read_error != 0,
        origin: None,
        type_name: None,
    }
}

/// One `evacuate` call (`--evacuation`): which goroutine moved which old bucket, and how long
/// it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvacuateStep {
    /// Unix ns when the call started.
    pub time_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Goroutine id.
    pub goid: u64,
    /// `*hmap` address.
    pub map: u64,
    /// Old bucket index moved.
    pub old_bucket: u64,
    /// Nanoseconds from the body to the return.
    pub duration_ns: u64,
    /// Some target memory could not be read.
    pub partial: bool,
}

/// Interprets a raw `map_evacuate_step` record.
pub fn interpret_evacuate_step(ev: &EvacuateStepEvent, mono_to_unix_ns: i128) -> EvacuateStep {
    EvacuateStep {
        time_ns: to_unix_ns(ev.header.ts_ns, mono_to_unix_ns),
        pid: ev.header.pid,
        tid: ev.header.tid,
        goid: ev.header.goid,
        map: ev.map,
        old_bucket: ev.old_bucket,
        duration_ns: ev.duration_ns,
        partial: ev.read_error != 0,
    }
}

/// One slice growth (`--slices`), interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceGrow {
    /// Unix epoch nanoseconds when `growslice` was entered.
    pub time_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Goroutine id.
    pub goid: u64,
    /// Capacity before.
    pub cap_before: u64,
    /// Capacity after.
    pub cap_after: u64,
    /// Element size in bytes.
    pub elem_size: u64,
    /// Bytes of the new backing array (`cap_after × elem_size`).
    pub bytes: u64,
    /// Time spent in `growslice` (allocation and copy).
    pub duration_ns: u64,
    /// Element type descriptor address.
    pub elem_type: u64,
    /// Some target memory could not be read.
    pub partial: bool,
    /// Where it was called from (filled in by the collector).
    pub origin: Option<Arc<Origin>>,
    /// The element's Go type (filled in by the collector).
    pub elem_type_name: Option<Arc<str>>,
}

/// Interprets a slice record.
pub fn interpret_slice(ev: &SliceEvent, mono_to_unix_ns: i128) -> SliceGrow {
    let time_ns = to_unix_ns(ev.header.ts_ns, mono_to_unix_ns);
    SliceGrow {
        time_ns,
        pid: ev.header.pid,
        tid: ev.header.tid,
        goid: ev.header.goid,
        cap_before: ev.old_cap,
        cap_after: ev.new_cap,
        elem_size: ev.elem_size,
        bytes: ev.new_cap.saturating_mul(ev.elem_size),
        duration_ns: ev.duration_ns,
        elem_type: ev.elem_type,
        partial: ev.read_error != 0,
        origin: None,
        elem_type_name: None,
    }
}

/// What a Swiss-table resize did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwissKind {
    /// A small map (one 8-slot group) became a table (`growToTable`).
    SmallToTable,
    /// One table was rebuilt at twice its capacity.
    TableGrow,
    /// One full table was split into two.
    TableSplit,
    /// A map's first group was allocated (`--small-maps`).
    SmallAlloc,
}

impl SwissKind {
    /// The JSON `event` name.
    pub fn event_name(self) -> &'static str {
        match self {
            SwissKind::SmallToTable => "map_small_to_table",
            SwissKind::TableGrow => "map_table_grow",
            SwissKind::TableSplit => "map_table_split",
            SwissKind::SmallAlloc => "map_small_alloc",
        }
    }
}

/// One Swiss-table resize, interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwissResize {
    /// What happened.
    pub kind: SwissKind,
    /// Unix epoch nanoseconds when the resize started.
    pub time_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Goroutine id.
    pub goid: u64,
    /// `*maps.Map` address.
    pub map: u64,
    /// Map type descriptor address.
    pub maptype: u64,
    /// `len(m)` when the resize started.
    pub entries: u64,
    /// Key size in bytes.
    pub key_size: u64,
    /// Element size in bytes.
    pub elem_size: u64,
    /// Time spent in the resize (body probe to return probe); `None` when not timed
    /// (`growToTable` always; table resizes once `--max-overhead` shed `timed_resizes`).
    pub duration_ns: Option<u64>,
    /// Entries in the table being resized.
    pub table_entries: u64,
    /// Slots before (8 for a small map).
    pub capacity_before: u64,
    /// Slots after (of each half, for a split).
    pub capacity_after: u64,
    /// The table's local depth before (splits).
    pub local_depth_before: u64,
    /// Directory length before (0 for a small map).
    pub directory_len_before: u64,
    /// Directory length after.
    pub directory_len_after: u64,
    /// Some target memory could not be read; zero fields are unknown.
    pub partial: bool,
    /// Where it was called from (filled in by the collector; `None` if not symbolized).
    pub origin: Option<Arc<Origin>>,
    /// The map's Go type (filled in by the collector).
    pub type_name: Option<Arc<str>>,
}

/// Interprets a Swiss record.
pub fn interpret_swiss(ev: &SwissEvent, mono_to_unix_ns: i128) -> Option<SwissResize> {
    let kind = match EventKind::try_from(ev.header.kind).ok()? {
        EventKind::MapSmallToTable => SwissKind::SmallToTable,
        EventKind::MapTableGrow => SwissKind::TableGrow,
        EventKind::MapTableSplit => SwissKind::TableSplit,
        EventKind::MapSmallAlloc => SwissKind::SmallAlloc,
        EventKind::MapGrow
        | EventKind::Exec
        | EventKind::SliceGrow
        | EventKind::MapEvacuated
        | EventKind::MapEvacuateStep => return None,
    };
    let time_ns = to_unix_ns(ev.header.ts_ns, mono_to_unix_ns);
    Some(SwissResize {
        kind,
        time_ns,
        pid: ev.header.pid,
        tid: ev.header.tid,
        goid: ev.header.goid,
        map: ev.map,
        maptype: ev.maptype,
        entries: ev.map_used,
        key_size: ev.key_size,
        elem_size: ev.elem_size,
        // The RET probe stamps at least 1; 0 is "not timed".
        duration_ns: (ev.duration_ns > 0).then_some(ev.duration_ns),
        table_entries: u64::from(ev.table_used),
        capacity_before: u64::from(ev.capacity_before),
        capacity_after: u64::from(ev.capacity_after),
        local_depth_before: u64::from(ev.local_depth),
        directory_len_before: ev.dir_len_before,
        directory_len_after: ev.dir_len_after,
        partial: ev.read_error != 0,
        origin: None,
        type_name: None,
    })
}

/// Goroutine ids seen for one map: sorted, deduplicated, at most [`Goids::MAX`] kept (a map is
/// usually grown by one or a few goroutines; the cap bounds memory when it is not).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Goids {
    ids: Vec<u64>,
    truncated: bool,
}

impl Goids {
    /// Most ids kept per map.
    pub const MAX: usize = 64;

    /// Records an id.
    pub fn insert(&mut self, goid: u64) {
        if let Err(i) = self.ids.binary_search(&goid) {
            if self.ids.len() < Self::MAX {
                self.ids.insert(i, goid);
            } else {
                self.truncated = true;
            }
        }
    }

    /// The ids kept, ascending.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// More distinct ids were seen than kept.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// Everything seen for one map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSummary {
    /// `*hmap` address.
    pub map: u64,
    /// `*maptype` address.
    pub maptype: u64,
    /// Key size in bytes.
    pub key_size: u64,
    /// Element size in bytes.
    pub elem_size: u64,
    /// Grows (doubling and same-size).
    pub grows: u64,
    /// Of which same-size.
    pub same_size_grows: u64,
    /// Buckets before the first grow seen.
    pub buckets_first: u64,
    /// Buckets after the last grow seen.
    pub buckets_last: u64,
    /// Entries at the last grow seen.
    pub entries_last: u64,
    /// Sum of bytes allocated for new bucket arrays.
    pub bytes_allocated: u64,
    /// Goroutines that triggered grows.
    pub goroutines: Goids,
    /// Time of the first grow (Unix ns).
    pub first_time_ns: u64,
    /// Time of the last grow (Unix ns).
    pub last_time_ns: u64,
    /// Swiss maps: what the resizes were.
    /// Boxed: hash-bucket maps have none, and 100,000 summaries should not carry 72 empty bytes each.
    pub swiss: Option<Box<SwissSummary>>,
    /// Classic: growths seen finishing (old buckets freed).
    pub evacuations: u64,
    /// Classic: sum of growth spans (grow began → old buckets freed) over those seen whole.
    pub evacuation_total_ns: u64,
    /// Classic: the longest such span.
    pub evacuation_max_ns: u64,
    /// Classic: when the growth still in progress began (Unix ns); `None` when the map is not
    /// growing. Still set at the end of tracing: the last growth had not finished.
    pub growing_since_ns: Option<u64>,
    /// `--evacuation`: `evacuate` calls seen for this map.
    pub evacuate_steps: u64,
    /// `--evacuation`: time spent in them.
    pub evacuate_steps_ns: u64,
    /// Swiss: slots in all tables after the last resize.
    pub slots: u64,
    /// Its events in order, each with the span it began (bounded).
    pub history: History,
    /// Where its first grow was called from.
    pub origin: Option<Arc<Origin>>,
    /// The map's Go type.
    pub type_name: Option<Arc<str>>,
}

impl MapSummary {
    /// A map at its first event: nothing counted yet.
    fn first_seen(
        map: u64,
        maptype: u64,
        (key_size, elem_size): (u64, u64),
        time_ns: u64,
        buckets: u64,
        swiss: Option<Box<SwissSummary>>,
        (origin, type_name): (Option<Arc<Origin>>, Option<Arc<str>>),
    ) -> Self {
        Self {
            map,
            maptype,
            key_size,
            elem_size,
            grows: 0,
            same_size_grows: 0,
            buckets_first: buckets,
            buckets_last: buckets,
            entries_last: 0,
            bytes_allocated: 0,
            goroutines: Goids::default(),
            first_time_ns: time_ns,
            last_time_ns: time_ns,
            swiss,
            evacuations: 0,
            evacuation_total_ns: 0,
            evacuation_max_ns: 0,
            growing_since_ns: None,
            evacuate_steps: 0,
            evacuate_steps_ns: 0,
            slots: 0,
            history: History::default(),
            origin,
            type_name,
        }
    }

    /// The `make(map[K]V, hint)` that builds the map's final storage at once, so that none of
    /// the grows seen would have happened (hash-bucket maps; `load_factor_num` is twice the
    /// version's load factor), or, for Swiss maps, that sizes the directory and tables as they
    /// ended (uneven hashing can still split a few tables). `None` without grows.
    pub fn presize_hint(&self, load_factor_num: u64) -> Option<u64> {
        match &self.swiss {
            None => (self.grows > self.same_size_grows)
                .then(|| load_factor_num.saturating_mul(self.buckets_last) / 2),
            Some(s) => {
                if s.table_splits > 0 || s.directory_len_last > 1 {
                    Some(s.directory_len_last.saturating_mul(MAX_TABLE_LOAD))
                } else if s.capacity_last > 0 {
                    Some(s.capacity_last * 7 / 8)
                } else {
                    None
                }
            }
        }
    }
}

/// Entries a full-size Swiss table (1024 slots) holds before it splits (7/8 load).
const MAX_TABLE_LOAD: u64 = 896;

/// Swiss-table counts for one map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwissSummary {
    /// First group allocated (`--small-maps` only).
    pub small_allocs: u64,
    /// Small map → first table.
    pub small_to_table: u64,
    /// Table grows (capacity doubled).
    pub table_grows: u64,
    /// Table splits.
    pub table_splits: u64,
    /// Splits that doubled the directory.
    pub directory_doublings: u64,
    /// Directory length after the last resize (number of table slots).
    pub directory_len_last: u64,
    /// Sum of resize durations.
    pub total_duration_ns: u64,
    /// Longest single resize.
    pub max_duration_ns: u64,
    /// Slots of the table after the last grow (maps that never split).
    pub capacity_last: u64,
}

/// Per-map aggregation of grows, in arrival order.
#[derive(Debug, Default)]
pub struct Timeline {
    maps: Vec<MapSummary>,
    /// Index of the current summary for a map address.
    current: FxHashMap<u64, usize>,
    grows: u64,
    /// No finishing probe: infer a growth's end from the map's next grow.
    infer_ends: bool,
    /// Caps on the per-map histories.
    budget: history::Budget,
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// A timeline for a binary whose finishing block could not be probed: a growth's end is
    /// inferred from the same map's next grow ([`EvacuationEnd::NextGrow`]).
    pub fn inferring_ends() -> Self {
        Self {
            infer_ends: true,
            ..Self::default()
        }
    }

    /// The growth-end probe was detached (`--max-overhead`): ends are inferred from here on.
    pub fn infer_ends_from_now(&mut self) {
        self.infer_ends = true;
    }

    /// Adds a grow. A map is its address plus its call site: a grow whose map is smaller than
    /// the last one recorded at that address, of another type, or grown from another site, is a
    /// different map that reused the address (the old one was freed, or a map on a goroutine
    /// stack moved): it starts a new entry.
    ///
    /// Returns the inferred end of the map's previous growth when ends are inferred. With the
    /// finishing probe, a previous growth that is still open here ended unseen (`clear(m)`
    /// finishes a growth too, or its record was lost) and is simply closed.
    pub fn push(&mut self, g: &Grow) -> Option<Evacuated> {
        self.grows += 1;
        let idx = match self.current.get(&g.map) {
            Some(&i)
                if self.maps[i].buckets_last <= g.buckets_before
                    && self.maps[i].maptype == g.maptype
                    && site_of(&self.maps[i].origin) == site_of(&g.origin) =>
            {
                i
            }
            _ => {
                self.maps.push(MapSummary::first_seen(
                    g.map,
                    g.maptype,
                    (g.key_size, g.elem_size),
                    g.time_ns,
                    g.buckets_before,
                    None,
                    (g.origin.clone(), g.type_name.clone()),
                ));
                let i = self.maps.len() - 1;
                self.current.insert(g.map, i);
                i
            }
        };
        let m = &mut self.maps[idx];
        if let Some(since) = m.growing_since_ns {
            let end = if self.infer_ends {
                SpanEnd::Inferred
            } else {
                SpanEnd::Unseen
            };
            m.history.close(since, g.time_ns, end);
        }
        self.budget.point(
            &mut m.history,
            Point {
                time_ns: g.time_ns,
                mark: if g.same_size {
                    Mark::SameSize
                } else {
                    Mark::Doubling
                },
                size_before: g.buckets_before,
                size_after: g.buckets_after,
                entries: g.entries,
                goid: g.goid,
                bytes_allocated: g.bytes_allocated,
                directory_len: 0,
                duration_ns: 0,
                end: None,
            },
        );
        let inferred = match m.growing_since_ns.take() {
            Some(since) if self.infer_ends => {
                let span = g.time_ns.saturating_sub(since);
                m.evacuations += 1;
                m.evacuation_total_ns = m.evacuation_total_ns.saturating_add(span);
                m.evacuation_max_ns = m.evacuation_max_ns.max(span);
                Some(Evacuated {
                    time_ns: g.time_ns,
                    pid: g.pid,
                    tid: g.tid,
                    goid: 0,
                    map: g.map,
                    buckets: m.buckets_last,
                    entries: g.entries,
                    duration_ns: Some(span),
                    end: EvacuationEnd::NextGrow,
                    partial: g.partial,
                    origin: m.origin.clone(),
                    type_name: m.type_name.clone(),
                })
            }
            _ => None,
        };
        m.growing_since_ns = Some(g.time_ns);
        m.grows += 1;
        m.same_size_grows += u64::from(g.same_size);
        m.buckets_last = g.buckets_after;
        m.entries_last = g.entries;
        m.bytes_allocated = m.bytes_allocated.saturating_add(g.bytes_allocated);
        m.goroutines.insert(g.goid);
        m.last_time_ns = g.time_ns;
        inferred
    }

    /// Adds a finished growth: closes the map's open growth, filling in `e`'s duration, call
    /// site and type. Returns false when no grow of this map was seen (it began before tracing,
    /// or the map was hidden); `e` is then left as it came.
    pub fn push_evacuated(&mut self, e: &mut Evacuated) -> bool {
        let Some(&idx) = self.current.get(&e.map) else {
            return false;
        };
        let m = &mut self.maps[idx];
        if m.swiss.is_some() {
            return false;
        }
        e.origin = m.origin.clone();
        e.type_name = m.type_name.clone();
        m.evacuations += 1;
        if let Some(since) = m.growing_since_ns.take() {
            let span = e.time_ns.saturating_sub(since);
            e.duration_ns = Some(span);
            m.history.close(since, e.time_ns, SpanEnd::Probe);
            m.evacuation_total_ns = m.evacuation_total_ns.saturating_add(span);
            m.evacuation_max_ns = m.evacuation_max_ns.max(span);
        }
        true
    }

    /// Adds an `evacuate` call (`--evacuation`) to its map's totals; false for a map whose grow
    /// was not seen.
    pub fn push_evacuate_step(&mut self, s: &EvacuateStep) -> bool {
        let Some(&idx) = self.current.get(&s.map) else {
            return false;
        };
        let m = &mut self.maps[idx];
        m.evacuate_steps += 1;
        m.evacuate_steps_ns = m.evacuate_steps_ns.saturating_add(s.duration_ns);
        true
    }

    /// Adds a Swiss resize. A map becomes a table only once in its life, so a small→table
    /// conversion at an address already seen is a new map that reused the address (a freed
    /// heap map, or a map on a goroutine stack).
    pub fn push_swiss(&mut self, r: &SwissResize) {
        self.grows += 1;
        let idx = match self.current.get(&r.map) {
            Some(&i)
                if self.maps[i].maptype == r.maptype
                    && site_of(&self.maps[i].origin) == site_of(&r.origin)
                    && !(r.kind == SwissKind::SmallAlloc
                        || (r.kind == SwissKind::SmallToTable
                            && self.maps[i]
                                .swiss
                                .as_ref()
                                .is_some_and(|s| s.small_to_table > 0))) =>
            {
                i
            }
            _ => {
                self.maps.push(MapSummary::first_seen(
                    r.map,
                    r.maptype,
                    (r.key_size, r.elem_size),
                    r.time_ns,
                    0,
                    Some(Box::default()),
                    (r.origin.clone(), r.type_name.clone()),
                ));
                let i = self.maps.len() - 1;
                self.current.insert(r.map, i);
                i
            }
        };
        let m = &mut self.maps[idx];
        let (before, after) =
            history::swiss_slots(r.kind, m.slots, r.capacity_before, r.capacity_after);
        m.slots = after;
        self.budget.point(
            &mut m.history,
            Point {
                time_ns: r.time_ns,
                mark: Mark::Swiss(r.kind),
                size_before: before,
                size_after: after,
                entries: r.entries,
                goid: r.goid,
                bytes_allocated: 0,
                directory_len: u32::try_from(r.directory_len_after).unwrap_or(u32::MAX),
                duration_ns: r.duration_ns.unwrap_or(0),
                end: Some(SpanEnd::Resize),
            },
        );
        m.grows += 1;
        m.entries_last = r.entries;
        m.goroutines.insert(r.goid);
        m.last_time_ns = r.time_ns;
        let s = m.swiss.get_or_insert_with(Box::default);
        match r.kind {
            SwissKind::SmallToTable => {
                s.small_to_table += 1;
                s.capacity_last = s.capacity_last.max(r.capacity_after);
            }
            SwissKind::SmallAlloc => s.small_allocs += 1,
            SwissKind::TableGrow => {
                s.table_grows += 1;
                s.capacity_last = s.capacity_last.max(r.capacity_after);
            }
            SwissKind::TableSplit => {
                s.table_splits += 1;
                if r.directory_len_after > r.directory_len_before {
                    s.directory_doublings += 1;
                }
            }
        }
        s.directory_len_last = r.directory_len_after;
        let d = r.duration_ns.unwrap_or(0);
        s.total_duration_ns = s.total_duration_ns.saturating_add(d);
        s.max_duration_ns = s.max_duration_ns.max(d);
    }

    /// Total grows pushed.
    pub fn grows(&self) -> u64 {
        self.grows
    }

    /// Maps ordered by grows (most first), then by first appearance.
    pub fn summary(&self) -> Vec<MapSummary> {
        Self {
            maps: self.maps.clone(),
            ..Self::default()
        }
        .into_summary()
    }

    /// What the history caps cut so far.
    pub fn cuts(&self) -> &history::Budget {
        &self.budget
    }

    /// The summary when tracing stopped at `end_ns`: a hash-bucket growth still open then is
    /// in progress (its span ends at `end_ns`), or, when ends are inferred, of unknown end.
    pub fn finish(mut self, end_ns: u64) -> (Vec<MapSummary>, history::Budget) {
        for m in &mut self.maps {
            let Some(since) = m.growing_since_ns.filter(|_| m.swiss.is_none()) else {
                continue;
            };
            if self.infer_ends {
                m.history.end_unknown_since = Some(since);
            } else {
                m.history
                    .close(since, end_ns.max(since), SpanEnd::InProgress);
            }
        }
        let budget = std::mem::take(&mut self.budget);
        (self.into_summary(), budget)
    }

    /// [`Timeline::summary`] without copying (the timeline is consumed).
    pub fn into_summary(self) -> Vec<MapSummary> {
        let mut v = self.maps;
        v.sort_by(|a, b| {
            b.grows
                .cmp(&a.grows)
                .then(a.first_time_ns.cmp(&b.first_time_ns))
        });
        v
    }
}

/// Everything grown from one call site (and map type): the per-site aggregate of the maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteSummary {
    /// The call site; `None` collects the maps whose stack was not symbolized.
    pub site: Option<SourcePos>,
    /// The maps' Go type.
    pub type_name: Option<Arc<str>>,
    /// Distinct maps.
    pub maps: u64,
    /// Grows and resizes of all of them.
    pub events: u64,
    /// Bytes allocated for new storage (hash-bucket maps).
    pub bytes_allocated: u64,
    /// Time in Swiss resizes.
    pub total_duration_ns: u64,
    /// Hash-bucket maps: time their maps spent growing (grow → old buckets freed), summed over
    /// the growths seen whole. Wall time during which writes paid for evacuation, not CPU time.
    pub growth_span_ns: u64,
    /// The largest presize hint among the maps: `make(…, hint)` there covers every one.
    pub presize_hint: Option<u64>,
    /// First and last event (Unix ns).
    pub first_time_ns: u64,
    /// Last event.
    pub last_time_ns: u64,
}

/// Groups per-map summaries by call site and type, most events first.
pub fn by_site(maps: &[MapSummary], load_factor_num: u64) -> Vec<SiteSummary> {
    let mut out: Vec<SiteSummary> = vec![];
    let mut index: FxHashMap<(Option<SourcePos>, Option<Arc<str>>), usize> = FxHashMap::default();
    for m in maps {
        let site = m.origin.as_deref().and_then(Origin::site).cloned();
        let key = (site.clone(), m.type_name.clone());
        let i = *index.entry(key).or_insert_with(|| {
            out.push(SiteSummary {
                site,
                type_name: m.type_name.clone(),
                maps: 0,
                events: 0,
                bytes_allocated: 0,
                total_duration_ns: 0,
                growth_span_ns: 0,
                presize_hint: None,
                first_time_ns: m.first_time_ns,
                last_time_ns: m.last_time_ns,
            });
            out.len() - 1
        });
        let s = &mut out[i];
        s.maps += 1;
        s.events += m.grows;
        s.bytes_allocated = s.bytes_allocated.saturating_add(m.bytes_allocated);
        if let Some(sw) = &m.swiss {
            s.total_duration_ns = s.total_duration_ns.saturating_add(sw.total_duration_ns);
        }
        s.growth_span_ns = s.growth_span_ns.saturating_add(m.evacuation_total_ns);
        s.presize_hint = s.presize_hint.max(m.presize_hint(load_factor_num));
        s.first_time_ns = s.first_time_ns.min(m.first_time_ns);
        s.last_time_ns = s.last_time_ns.max(m.last_time_ns);
    }
    out.sort_by(|a, b| {
        b.events
            .cmp(&a.events)
            .then(a.first_time_ns.cmp(&b.first_time_ns))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use map_trace_common::event::{EventHeader, EventKind};

    fn raw(map: u64, count: u64, b: u8, ts: u64) -> MapGrowEvent {
        MapGrowEvent {
            header: EventHeader {
                kind: EventKind::MapGrow as u32,
                tid: 2,
                pid: 1,
                exe: 0,
                goid: 7,
                ts_ns: ts,
            },
            map,
            maptype: 0x1000,
            count,
            key_size: 8,
            elem_size: 8,
            bucket_size: 144,
            b,
            flags: 0,
            noverflow: 0,
            read_error: 0,
            _pad: 0,
            stack: Default::default(),
        }
    }

    /// Replays the grows of N sequential inserts into make(map[int]int): a grow happens on the
    /// insert that would make count+1 exceed the load factor.
    fn sequential_inserts(n: u64, lfn: u64) -> Vec<MapGrowEvent> {
        let mut b = 0u8;
        let mut out = vec![];
        for count in 0..n {
            if over_load_factor(count + 1, b, lfn) {
                out.push(raw(0xc000, count, b, count));
                b += 1;
            }
        }
        out
    }

    fn pos(function: &str, line: u32) -> SourcePos {
        SourcePos {
            function: function.into(),
            file: "x.go".into(),
            line,
        }
    }

    #[test]
    fn test_presize_hint() {
        let mut t = Timeline::new();
        for (b, count) in [(1u8, 13u64), (2, 26), (3, 52)] {
            t.push(&interpret(&raw(0xc000, count, b, u64::from(b)), 13, 0));
        }
        let m = &t.into_summary()[0];
        assert_eq!(m.buckets_last, 16);
        // 6.5 entries per bucket × 16 buckets: make(…, 104) starts with B = 4.
        assert_eq!(m.presize_hint(13), Some(104));
        assert_eq!(m.presize_hint(12), Some(96));
    }

    #[test]
    fn test_by_site_aggregates_maps_of_one_site() {
        let origin = |line| {
            Some(Arc::new(Origin {
                stack: vec![pos("runtime.mapassign_fast64", 1), pos("main.f", line)],
                site: Some(1),
            }))
        };
        let mut t = Timeline::new();
        // Two maps from line 10 (one grows twice, one once), one from line 20.
        for (map, count, b, line) in [
            (0xa0, 13, 1, 10),
            (0xa0, 26, 2, 10),
            (0xb0, 13, 1, 10),
            (0xc0, 13, 1, 20),
        ] {
            let mut g = interpret(&raw(map, count, b, map), 13, 0);
            g.origin = origin(line);
            g.type_name = Some("map[int]int".into());
            t.push(&g);
        }
        let sites = by_site(&t.into_summary(), 13);
        assert_eq!(sites.len(), 2);
        assert_eq!(sites[0].site, Some(pos("main.f", 10)));
        assert_eq!((sites[0].maps, sites[0].events), (2, 3));
        assert_eq!(
            sites[0].presize_hint,
            Some(52),
            "6.5 × 8 buckets, the larger map"
        );
        assert_eq!((sites[1].maps, sites[1].events), (1, 1));
        assert_eq!(sites[1].type_name.as_deref(), Some("map[int]int"));
    }

    #[test]
    fn test_origin_site_and_runtime() {
        let user = Origin {
            stack: vec![pos("runtime.mapassign_fast64", 1), pos("main.fill", 9)],
            site: Some(1),
        };
        assert_eq!(user.site(), Some(&pos("main.fill", 9)));
        assert!(!user.is_runtime());
        let runtime = Origin {
            stack: vec![pos("runtime.mapassign", 1), pos("runtime.main", 2)],
            site: None,
        };
        assert!(runtime.is_runtime());
        // An unreadable stack is not evidence of a runtime map.
        assert!(!Origin {
            stack: vec![],
            site: None
        }
        .is_runtime());
    }

    #[test]
    fn test_same_address_from_another_site_is_another_map() {
        // A map on a goroutine stack moved, and another took its address: the sites differ.
        let at = |line| {
            Some(Arc::new(Origin {
                stack: vec![pos("runtime.mapassign_fast64", 1), pos("main.f", line)],
                site: Some(1),
            }))
        };
        let mut t = Timeline::new();
        let mut g = interpret(&raw(0xc000, 13, 1, 1), 13, 0);
        g.origin = at(10);
        t.push(&g);
        let mut g = interpret(&raw(0xc000, 26, 2, 2), 13, 0);
        g.origin = at(10);
        t.push(&g);
        let mut g = interpret(&raw(0xc000, 52, 3, 3), 13, 0);
        g.origin = at(20);
        t.push(&g);
        let maps = t.into_summary();
        assert_eq!(maps.len(), 2);
        assert_eq!(maps[0].grows, 2);
        assert_eq!(maps[1].grows, 1);
        assert_eq!(
            maps[1].origin.as_deref().and_then(Origin::site),
            Some(&pos("main.f", 20))
        );
    }

    #[test]
    fn test_sequential_100k_grows_match_runtime_go122() {
        let evs = sequential_inserts(100_000, 13);
        assert_eq!(evs.len(), 14);
        let entries: Vec<u64> = evs.iter().map(|e| e.count).collect();
        assert_eq!(&entries[..4], &[8, 13, 26, 52]);
        assert_eq!(*entries.last().unwrap(), 53248);
        let mut t = Timeline::new();
        for e in &evs {
            let g = interpret(e, 13, 0);
            assert!(!g.same_size, "{g:?}");
            t.push(&g);
        }
        let s = t.summary();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].grows, s[0].buckets_first, s[0].buckets_last),
            (14, 1, 16384)
        );
    }

    #[test]
    fn test_sequential_100k_grows_go121_load_factor() {
        assert_eq!(sequential_inserts(100_000, 12).len(), 15);
        assert_eq!(sequential_inserts(1000, 12).len(), 8);
        assert_eq!(sequential_inserts(1_000_000, 13).len(), 18);
    }

    #[test]
    fn test_goids_sorted_dedup_capped() {
        let mut g = Goids::default();
        for id in [5, 1, 5, 3] {
            g.insert(id);
        }
        assert_eq!(g.ids(), &[1, 3, 5]);
        assert!(!g.truncated());
        for id in 100..200 {
            g.insert(id);
        }
        assert_eq!(g.ids().len(), Goids::MAX);
        assert!(g.truncated());
    }

    #[test]
    fn test_same_size_grow_detected() {
        // 40 entries in 8 buckets (B=3) is under 6.5*8 = 52: a grow now is a same-size grow.
        let g = interpret(&raw(1, 40, 3, 0), 13, 0);
        assert!(g.same_size);
        assert_eq!((g.buckets_before, g.buckets_after), (8, 8));
        // With Go 1.21's 6.0 the threshold is 48; at 52 entries both double.
        assert!(!interpret(&raw(1, 52, 3, 0), 12, 0).same_size);
        assert!(!interpret(&raw(1, 52, 3, 0), 13, 0).same_size);
        assert!(interpret(&raw(1, 51, 3, 0), 13, 0).same_size);
        assert!(!interpret(&raw(1, 51, 3, 0), 12, 0).same_size);
    }

    #[test]
    fn test_bytes_allocated_includes_preallocated_overflow() {
        // B 3 → 4: 16 buckets + 1 overflow bucket of 144 bytes.
        let g = interpret(&raw(1, 52, 3, 0), 13, 0);
        assert_eq!(g.bytes_allocated, 17 * 144);
        // B 0 → 1: 2 buckets.
        assert_eq!(interpret(&raw(1, 8, 0, 0), 13, 0).bytes_allocated, 2 * 144);
        // Garbage B does not overflow.
        let _ = interpret(&raw(1, u64::MAX, 200, 0), 13, 0);
    }

    #[test]
    fn test_interpret_swiss_untimed_when_the_duration_is_zero() {
        // The body probes send growToTable (always) and table resizes (once the budget shed
        // the timing) with duration 0; the RET probe stamps at least 1.
        let mut ev = swiss(EventKind::MapSmallToTable, 0xa, 8, 0, 1);
        ev.duration_ns = 0;
        assert_eq!(interpret_swiss(&ev, 0).unwrap().duration_ns, None);
        ev.duration_ns = 1;
        assert_eq!(interpret_swiss(&ev, 0).unwrap().duration_ns, Some(1));
        // An untimed resize adds nothing to the map's durations.
        let mut t = Timeline::new();
        let mut r = interpret_swiss(&swiss(EventKind::MapTableGrow, 0xb, 16, 1, 1), 0).unwrap();
        t.push_swiss(&r);
        r.duration_ns = None;
        r.capacity_before = 32;
        r.capacity_after = 64;
        t.push_swiss(&r);
        let (maps, _) = t.finish(100);
        let sw = maps[0].swiss.as_ref().unwrap();
        assert_eq!((sw.table_grows, sw.total_duration_ns), (2, 70_000));
    }

    fn swiss(kind: EventKind, map: u64, cap: u16, dir_before: u64, dir_after: u64) -> SwissEvent {
        SwissEvent {
            header: EventHeader {
                kind: kind as u32,
                tid: 2,
                pid: 1,
                exe: 0,
                goid: 5,
                ts_ns: 10,
            },
            map,
            maptype: 0x2000,
            map_used: 896,
            key_size: 8,
            elem_size: 8,
            duration_ns: 70_000,
            dir_len_before: dir_before,
            dir_len_after: dir_after,
            table_used: 896,
            capacity_before: cap,
            capacity_after: if kind == EventKind::MapTableGrow {
                cap * 2
            } else {
                cap
            },
            local_depth: 0,
            read_error: 0,
            stack: Default::default(),
        }
    }

    #[test]
    fn test_swiss_summary_counts() {
        let mut t = Timeline::new();
        let mut evs = vec![swiss(EventKind::MapSmallToTable, 0xa, 8, 0, 1)];
        for cap in [16u16, 32, 64, 128, 256, 512] {
            evs.push(swiss(EventKind::MapTableGrow, 0xa, cap, 1, 1));
        }
        evs.push(swiss(EventKind::MapTableSplit, 0xa, 1024, 1, 2));
        evs.push(swiss(EventKind::MapTableSplit, 0xa, 1024, 2, 2));
        for e in &evs {
            t.push_swiss(&interpret_swiss(e, 0).unwrap());
        }
        let s = t.summary();
        assert_eq!(s.len(), 1);
        let sw = s[0].swiss.as_ref().unwrap();
        assert_eq!(
            (
                sw.small_to_table,
                sw.table_grows,
                sw.table_splits,
                sw.directory_doublings
            ),
            (1, 6, 2, 1)
        );
        assert_eq!(
            (
                sw.directory_len_last,
                sw.total_duration_ns,
                sw.max_duration_ns
            ),
            (2, 9 * 70_000, 70_000)
        );
        // A new small map at the same address is a different map.
        t.push_swiss(
            &interpret_swiss(&swiss(EventKind::MapSmallToTable, 0xa, 8, 0, 1), 0).unwrap(),
        );
        assert_eq!(t.summary().len(), 2);
        assert!(interpret_swiss(&swiss(EventKind::MapGrow, 0xa, 8, 0, 1), 0).is_none());
    }

    #[test]
    fn test_time_conversion_and_address_reuse() {
        let mut t = Timeline::new();
        let a = interpret(&raw(0xc0, 8, 0, 100), 13, 1_000);
        assert_eq!(a.time_ns, 1_100);
        t.push(&a);
        t.push(&interpret(&raw(0xc0, 13, 1, 200), 13, 0));
        // A new map at the same address starts small again.
        t.push(&interpret(&raw(0xc0, 8, 0, 300), 13, 0));
        let s = t.summary();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].grows, 2);
        assert_eq!(s[1].grows, 1);
        assert_eq!(t.grows(), 3);
    }
}
