//! Timeline reconstruction: raw grow events → interpreted grows → per-map summaries.
//!
//! Pure logic: no aya, no I/O, no clocks (the caller passes the monotonic → Unix offset).
//!
//! This file holds the model: what one event of a traced program means ([`Grow`],
//! [`Evacuated`], [`EvacuateStep`], [`SliceGrow`], [`SwissResize`]) and where it was called
//! from ([`Origin`]). The steps over it live in their own files, re-exported here:
//! `interpret` (ring-buffer records → these types), `aggregate` ([`Timeline`]: events → one
//! summary per map), `summary` (the per-map and per-site summaries), and [`history`] (each
//! map's events over time, bounded).

mod aggregate;
pub mod fatal;
pub mod health;
pub mod history;
mod interpret;
mod summary;
#[cfg(test)]
mod test_events;

use std::sync::Arc;

use crate::symbols::{pclntab::SourcePos, symbolize::CallStack};

pub use aggregate::{SampleNews, SampleTarget, Timeline};
pub use interpret::{
    interpret, interpret_evacuate_step, interpret_evacuated, interpret_slice, interpret_swiss,
    to_unix_ns,
};
pub use summary::{by_site, GoroutineIds, MapSummary, SiteSummary, SwissSummary};

/// Where a grow was called from: the symbolized stack, innermost first, and which frame is the
/// call site (the first user frame, see `symbols::packages`; `None` when every frame is the
/// runtime's, reflection's or the `maps` helpers').
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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

/// The symbolizer's stack, as the timeline keeps it.
impl From<CallStack> for Origin {
    fn from(s: CallStack) -> Self {
        Self {
            stack: s.frames,
            site: s.site,
        }
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
    /// The `kind` label of metrics and profiles (`None` for `--small-maps` allocations, which
    /// the agent does not count).
    pub fn label(self) -> Option<&'static str> {
        match self {
            SwissKind::SmallToTable => Some("small_to_table"),
            SwissKind::TableGrow => Some("table_grow"),
            SwissKind::TableSplit => Some("table_split"),
            SwissKind::SmallAlloc => None,
        }
    }

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

impl SwissResize {
    /// The bytes the resize allocated: one table of `capacity_after` slots (two for a split),
    /// each a key, an element and a control byte; 0 when the event's reads failed.
    pub fn bytes_allocated(&self) -> u64 {
        let tables: u64 = if self.kind == SwissKind::TableSplit {
            2
        } else {
            1
        };
        if self.partial {
            0
        } else {
            tables.saturating_mul(self.capacity_after).saturating_mul(
                self.key_size
                    .saturating_add(self.elem_size)
                    .saturating_add(1),
            )
        }
    }
}

impl Grow {
    /// The `kind` label of metrics and profiles.
    pub fn label(&self) -> &'static str {
        if self.same_size {
            "same_size"
        } else {
            "double"
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

#[cfg(test)]
mod tests {
    use super::*;
    use test_events::pos;

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
    fn test_origin_from_call_stack_keeps_frames_and_site() {
        let o = Origin::from(CallStack {
            frames: vec![pos("runtime.mapassign", 1), pos("main.fill", 9)],
            site: Some(1),
        });
        assert_eq!(o.site(), Some(&pos("main.fill", 9)));
        assert_eq!(o.stack.len(), 2);
    }
}
