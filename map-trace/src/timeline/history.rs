//! Per-map history: the ordered events and growth spans of one map, as the timeline
//! reconstructs them, for the outputs that draw a map over time (the HTML report's charts, the
//! text summary's strips). Bounded: see [`MAX_POINTS_PER_MAP`] and [`MAX_POINTS_TOTAL`].

use super::SwissKind;

/// Most points kept per map; later ones are counted in [`History::dropped`].
pub const MAX_POINTS_PER_MAP: usize = 10_000;
/// Most points kept over all maps (64 bytes each: 6.4 MB).
pub const MAX_POINTS_TOTAL: usize = 100_000;

/// Histories up to this many points are kept in vectors of exactly their length.
pub const EXACT_FIT_POINTS: usize = 16;

/// What one event did to its map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A hash-bucket map doubled its bucket array.
    Doubling,
    /// A hash-bucket map rehashed into an array of the same size.
    SameSize,
    /// A Swiss-table resize.
    Swiss(SwissKind),
}

/// One event of a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// Unix ns (when it started).
    pub time_ns: u64,
    /// What happened.
    pub mark: Mark,
    /// Storage before and after: buckets (hash-bucket maps) or slots in all tables (Swiss: a
    /// resize replaces one table by one twice its size, or by two; a small map's group is 8).
    pub size_before: u64,
    /// Storage after.
    pub size_after: u64,
    /// `len(m)` then.
    pub entries: u64,
    /// Goroutine.
    pub goid: u64,
    /// Hash-bucket maps: bytes allocated for the new array.
    pub bytes_allocated: u64,
    /// Swiss: directory length after.
    pub directory_len: u32,
    /// How long the stretch this event began lasted: a Swiss resize's time, or a hash-bucket
    /// growth's span from its grow to its end (0 while it is open).
    pub duration_ns: u64,
    /// How that stretch ended: always `Resize` for a Swiss resize; for a grow, set when its
    /// growth ends (or tracing stops), `None` while open.
    pub end: Option<SpanEnd>,
}

/// How a span ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanEnd {
    /// A hash-bucket growth whose old buckets were seen freed.
    Probe,
    /// Inferred from the map's next grow (an upper bound; no finishing probe in this binary).
    Inferred,
    /// The map grew again and no end was seen (`clear(m)`, or a lost record).
    Unseen,
    /// Still growing when tracing ended.
    InProgress,
    /// A Swiss resize (synchronous, timed).
    Resize,
}

/// A stretch of time a map spent resizing (derived from its [`Point`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Unix ns.
    pub start_ns: u64,
    /// Unix ns.
    pub end_ns: u64,
    /// How it ended.
    pub end: SpanEnd,
}

/// One map's events, in order; each carries the span it began (see [`History::spans`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Events, oldest first.
    pub points: Vec<Point>,
    /// Points not kept (the caps).
    pub dropped: u64,
    /// Ends inferred and tracing stopped: when the last growth began, whose end is unknown.
    pub end_unknown_since: Option<u64>,
}

impl History {
    /// The growth spans and Swiss resizes, in the order they began.
    pub fn spans(&self) -> impl Iterator<Item = Span> + '_ {
        self.points.iter().filter_map(|p| {
            p.end.map(|end| Span {
                start_ns: p.time_ns,
                end_ns: p.time_ns.saturating_add(p.duration_ns),
                end,
            })
        })
    }

    /// Ends the growth that began at `since` (the last grow kept): at `end_ns`, as `end`. Does
    /// nothing when that grow's point was not kept.
    pub fn close(&mut self, since: u64, end_ns: u64, end: SpanEnd) {
        if let Some(p) = self.points.last_mut().filter(|p| {
            p.time_ns == since
                && p.end.is_none()
                && matches!(p.mark, Mark::Doubling | Mark::SameSize)
        }) {
            p.duration_ns = end_ns.saturating_sub(since);
            p.end = Some(end);
        }
    }
}

/// Enforces [`MAX_POINTS_PER_MAP`] and [`MAX_POINTS_TOTAL`] as points are added to the maps'
/// histories, and counts what they cut, over all maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryCaps {
    /// Points kept over all maps.
    pub kept: usize,
    /// Points not kept.
    pub dropped: u64,
    /// Maps that reached [`MAX_POINTS_PER_MAP`].
    pub maps_capped: u64,
    /// [`MAX_POINTS_TOTAL`] was reached.
    pub total_reached: bool,
}

impl HistoryCaps {
    /// Adds a point if there is room; counts it as dropped if not. The first [`EXACT_FIT_POINTS`]
    /// points of a map grow its vector one at a time (most maps grow a few times; the usual
    /// doubling, from a minimum of four, would double or quadruple the memory of 100,000 small
    /// maps).
    pub fn push(&mut self, h: &mut History, p: Point) {
        let n = h.points.len();
        if n >= MAX_POINTS_PER_MAP || self.kept >= MAX_POINTS_TOTAL {
            if h.dropped == 0 && n >= MAX_POINTS_PER_MAP {
                self.maps_capped += 1;
            }
            h.dropped += 1;
            self.dropped += 1;
            self.total_reached |= self.kept >= MAX_POINTS_TOTAL;
            return;
        }
        self.kept += 1;
        if n == h.points.capacity() && n < EXACT_FIT_POINTS {
            h.points.reserve_exact(1);
        }
        h.points.push(p);
    }
}

/// Slots in all of a Swiss map's tables after a resize, from `before` (a map first seen mid-life
/// starts from the table being resized).
pub fn swiss_slots(
    kind: SwissKind,
    before: u64,
    capacity_before: u64,
    capacity_after: u64,
) -> (u64, u64) {
    let before = before.max(match kind {
        SwissKind::SmallAlloc => 0,
        SwissKind::SmallToTable => 8,
        _ => capacity_before,
    });
    let after = match kind {
        SwissKind::SmallAlloc => before.max(8),
        SwissKind::SmallToTable => before - 8 + capacity_after,
        SwissKind::TableGrow => before - capacity_before + capacity_after,
        SwissKind::TableSplit => before - capacity_before + capacity_after.saturating_mul(2),
    };
    (before, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_point_and_span_sizes_bound_memory() {
        // MAX_POINTS_TOTAL × 64 bytes = 12.8 MB at most.
        assert!(std::mem::size_of::<Point>() <= 64);
        assert!(std::mem::size_of::<Span>() <= 64);
    }

    #[test]
    fn test_swiss_slots_follow_resizes() {
        let (b, a) = swiss_slots(SwissKind::SmallToTable, 0, 8, 16);
        assert_eq!((b, a), (8, 16));
        let (b, a) = swiss_slots(SwissKind::TableGrow, a, 16, 32);
        assert_eq!((b, a), (16, 32));
        // A split replaces one 1024-slot table by two.
        let (_, a) = swiss_slots(SwissKind::TableSplit, 1024, 1024, 1024);
        assert_eq!(a, 2048);
        // First seen mid-life: starts from the table being resized.
        assert_eq!(swiss_slots(SwissKind::TableGrow, 0, 512, 1024), (512, 1024));
    }

    fn grow_point(t: u64) -> Point {
        Point {
            time_ns: t,
            mark: Mark::Doubling,
            size_before: 1,
            size_after: 2,
            entries: 8,
            goid: 1,
            bytes_allocated: 0,
            directory_len: 0,
            duration_ns: 0,
            end: None,
        }
    }

    #[test]
    fn test_caps_cut_per_map_and_count() {
        let mut caps = HistoryCaps::default();
        let mut h = History::default();
        for t in 0..MAX_POINTS_PER_MAP as u64 + 5 {
            caps.push(&mut h, grow_point(t));
        }
        assert_eq!(h.points.len(), MAX_POINTS_PER_MAP);
        assert_eq!((h.dropped, caps.dropped, caps.maps_capped), (5, 5, 1));
        assert!(!caps.total_reached);
        // A small map's vector holds exactly its points.
        let mut small = History::default();
        for t in 0..3 {
            caps.push(&mut small, grow_point(t));
        }
        assert_eq!(small.points.capacity(), 3);
    }

    #[test]
    fn test_spans_come_from_the_points() {
        let mut h = History::default();
        let mut caps = HistoryCaps::default();
        caps.push(&mut h, grow_point(100));
        assert_eq!(h.spans().count(), 0, "an open growth has no span yet");
        h.close(100, 250, SpanEnd::Probe);
        // Only the last grow, still open, can be closed.
        h.close(100, 900, SpanEnd::Unseen);
        let spans: Vec<Span> = h.spans().collect();
        assert_eq!(
            spans,
            [Span {
                start_ns: 100,
                end_ns: 250,
                end: SpanEnd::Probe
            }]
        );
    }
}
