//! Events → per-map summaries: [`Timeline`] decides which map each event belongs to (an
//! address is reused by a new map), closes growth spans, and records each map's history.

use rustc_hash::FxHashMap;

use super::{
    health::{Found, KeptRule, MapFreed, MapSample, Outcome},
    history::{self, Mark, Point, SpanEnd},
    site_of, EvacuateStep, Evacuated, EvacuationEnd, Grow, MapSummary, SwissKind, SwissResize,
};

/// One map to sample: its summary's id in this timeline, header and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SampleTarget {
    /// Which map (stable for the run; a new map at a reused address gets a new id).
    pub id: u64,
    /// Header address.
    pub map: u64,
    /// Map type descriptor.
    pub maptype: u64,
    /// The least geometry a header of this map can show: hash-bucket B after its last grow
    /// seen, or the Swiss directory length after its last resize (neither ever shrinks). A
    /// header below it is another object in a reused slot.
    pub min_geometry: u64,
}

/// What one sample means for the outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SampleNews {
    /// A live map's state.
    Live(MapSample),
    /// A map the GC freed.
    Freed(MapFreed),
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
    caps: history::HistoryCaps,
    /// When a sample found the map at an address freed (Unix ns): a discovery that saw the
    /// address before then saw that map, not a new one.
    freed_at: FxHashMap<u64, u64>,
}

/// Freed addresses remembered for discovery (the window reads its table once, seconds
/// after attaching).
const FREED_REMEMBERED: usize = 100_000;

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
                    && (self.maps[i].discovered
                        || site_of(&self.maps[i].origin) == site_of(&g.origin)) =>
            {
                self.seen_growing(i, &g.origin);
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
        self.caps.push(
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
                    && (self.maps[i].discovered
                        || site_of(&self.maps[i].origin) == site_of(&r.origin))
                    && !(r.kind == SwissKind::SmallAlloc
                        || (r.kind == SwissKind::SmallToTable
                            && self.maps[i]
                                .swiss
                                .as_ref()
                                .is_some_and(|s| s.small_to_table > 0))) =>
            {
                self.seen_growing(i, &r.origin);
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
        self.caps.push(
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

    /// A discovered map seen growing: from now on it is one like the others, known by where
    /// it grows.
    fn seen_growing(&mut self, i: usize, origin: &Option<std::sync::Arc<super::Origin>>) {
        let m = &mut self.maps[i];
        if m.discovered {
            m.discovered = false;
            m.origin = origin.clone();
        }
    }

    /// Whether a map at `map` is tracked now.
    pub fn tracks(&self, map: u64) -> bool {
        self.current.contains_key(&map)
    }

    /// What the timeline knows of the map at `map`: its type's address and name, and where it
    /// was grown or found.
    pub fn known(&self, map: u64) -> Option<&MapSummary> {
        self.current.get(&map).and_then(|&i| self.maps.get(i))
    }

    /// Adds a map the `--discover` window found (see [`Found`]), accessed from `origin`;
    /// returns what to sample it as, or `None` when a map at that address is tracked already.
    pub fn push_discovered(
        &mut self,
        f: &Found,
        origin: Option<std::sync::Arc<super::Origin>>,
        type_name: Option<std::sync::Arc<str>>,
    ) -> Option<SampleTarget> {
        if self.current.contains_key(&f.map) {
            return None;
        }
        // First accessed before a sample found the map there freed: that map, gone.
        if self.freed_at.get(&f.map).is_some_and(|&t| f.time_ns <= t) {
            return None;
        }
        let mut m = MapSummary::first_seen(
            f.map,
            f.maptype,
            (0, 0),
            f.time_ns,
            0,
            f.swiss.then(Box::default),
            (origin, type_name),
        );
        m.discovered = true;
        self.maps.push(m);
        let i = self.maps.len() - 1;
        self.current.insert(f.map, i);
        Some(SampleTarget {
            id: i as u64,
            map: f.map,
            maptype: f.maptype,
            min_geometry: 0,
        })
    }

    /// The maps to sample next, largest storage first (the last sample's, or the bytes its
    /// grows allocated), at most `max`: `(header, map type)`. Maps found freed or off the heap
    /// are not sampled again.
    pub fn sample_candidates(&self, max: usize) -> Vec<SampleTarget> {
        let mut v: Vec<(u64, SampleTarget)> = self
            .current
            .values()
            .map(|&i| (i, &self.maps[i]))
            .filter(|(_, m)| {
                m.health
                    .as_ref()
                    .is_none_or(|h| h.freed_ns.is_none() && !h.not_heap)
            })
            .map(|(i, m)| {
                let size = m
                    .health
                    .as_ref()
                    .filter(|h| h.samples > 0)
                    .map_or(m.bytes_allocated, |h| h.last.storage_bytes);
                (
                    size,
                    SampleTarget {
                        id: i as u64,
                        map: m.map,
                        maptype: m.maptype,
                        min_geometry: match &m.swiss {
                            Some(sw) => sw.directory_len_last,
                            None => u64::from(m.buckets_last.max(1).ilog2()),
                        },
                    },
                )
            })
            .collect();
        // Largest first; the id breaks ties so the choice is the same every round.
        v.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        v.truncate(max);
        v.into_iter().map(|(_, t)| t).collect()
    }

    /// Applies one sample of the map at `map`. Returns what the outputs are told: a live
    /// sample, or that the map was freed (`None`: nothing to tell).
    pub fn push_sample(
        &mut self,
        time_ns: u64,
        pid: u32,
        target: SampleTarget,
        outcome: Outcome,
        rule: &KeptRule,
    ) -> Option<SampleNews> {
        let map = target.map;
        // The map sampled is still the one at that address (a grow there since may have
        // started another).
        let i = target.id as usize;
        if self.current.get(&map) != Some(&i) {
            return None;
        }
        let m = &mut self.maps[i];
        let h = m.health.get_or_insert_with(Default::default);
        match outcome {
            Outcome::Live(now) => {
                // Still being emptied (fewer entries than the last sample): the finding waits
                // for the deletes to stop, so that it tells what the map settled at.
                let shrinking = h.samples > 0 && now.entries < h.last.entries;
                h.last = now;
                h.last_ns = time_ns;
                h.samples += 1;
                h.peak_entries = h.peak_entries.max(now.entries).max(m.entries_last);
                let mut raised = false;
                if rule.holds(&now) {
                    h.kept_streak = h.kept_streak.saturating_add(1);
                    if h.kept_streak >= rule.samples && h.kept_since_ns.is_none() && !shrinking {
                        h.kept_since_ns = Some(time_ns);
                        raised = true;
                    }
                } else {
                    h.kept_streak = 0;
                    h.kept_since_ns = None;
                }
                Some(SampleNews::Live(MapSample {
                    time_ns,
                    pid,
                    map,
                    type_name: m.type_name.clone(),
                    origin: m.origin.clone(),
                    swiss: m.swiss.is_some(),
                    health: now,
                    peak_entries: h.peak_entries,
                    kept_raised: raised,
                    discovered: m.discovered,
                }))
            }
            Outcome::Freed => {
                h.freed_ns = Some(time_ns);
                h.kept_since_ns = None;
                if self.freed_at.len() < FREED_REMEMBERED || self.freed_at.contains_key(&map) {
                    self.freed_at.insert(map, time_ns);
                }
                // A later grow at this address is a new map.
                self.current.remove(&map);
                Some(SampleNews::Freed(MapFreed {
                    time_ns,
                    map,
                    type_name: m.type_name.clone(),
                    origin: m.origin.clone(),
                }))
            }
            Outcome::NotHeap => {
                h.not_heap = true;
                None
            }
            Outcome::Unreadable => None,
        }
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
    pub fn history_caps(&self) -> &history::HistoryCaps {
        &self.caps
    }

    /// The summary when tracing stopped at `end_ns`: a hash-bucket growth still open then is
    /// in progress (its span ends at `end_ns`), or, when ends are inferred, of unknown end.
    pub fn finish(mut self, end_ns: u64) -> (Vec<MapSummary>, history::HistoryCaps) {
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
        let caps = std::mem::take(&mut self.caps);
        (self.into_summary(), caps)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use map_trace_common::event::EventKind;

    use super::*;
    use crate::testkit::records;
    use crate::timeline::{
        interpret, interpret_swiss,
        test_events::{pos, sequential_inserts},
        Origin,
    };

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
        let mut g = interpret(&records::grow(0xc000, 13, 1, 1), 13, 0);
        g.origin = at(10);
        t.push(&g);
        let mut g = interpret(&records::grow(0xc000, 26, 2, 2), 13, 0);
        g.origin = at(10);
        t.push(&g);
        let mut g = interpret(&records::grow(0xc000, 52, 3, 3), 13, 0);
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

    /// The discovery of map 0xc000 (type 0x77), first accessed at `time_ns`.
    fn found_at(time_ns: u64) -> Found {
        Found {
            time_ns,
            map: 0xc000,
            maptype: 0x77,
            stack: map_trace_common::event::Stack::default(),
            swiss: false,
        }
    }

    #[test]
    fn test_a_discovery_older_than_the_free_at_its_address_is_not_a_new_map() {
        let found = found_at(5);
        let mut t = Timeline::new();
        t.push(&interpret(&records::grow(0xc000, 13, 1, 1), 13, 0));
        let target = t.sample_candidates(10).remove(0);
        // Freed at 20: the window's entry from 5 saw that map; one from 30 sees a new one.
        assert!(t
            .push_sample(20, 1, target, Outcome::Freed, &KeptRule::default())
            .is_some());
        assert!(t.push_discovered(&found, None, None).is_none());
        assert!(t.sample_candidates(10).is_empty());
        let again = t
            .push_discovered(&found_at(30), None, None)
            .expect("a new map");
        assert_ne!(again.id, target.id);
        assert_eq!(t.sample_candidates(10), vec![again]);
    }

    #[test]
    fn test_a_discovered_map_is_tracked_once_and_adopted_by_its_grows() {
        let used_at = Some(Arc::new(Origin {
            stack: vec![pos("main.use", 7)],
            site: Some(0),
        }));
        let found = found_at(5);
        let mut t = Timeline::new();
        let target = t
            .push_discovered(&found, used_at.clone(), Some("map[int]int".into()))
            .expect("a new map");
        assert_eq!(
            (target.map, target.maptype, target.min_geometry),
            (0xc000, 0x77, 0)
        );
        assert!(t.tracks(0xc000));
        // Found twice (or already tracked): not added again.
        assert!(t.push_discovered(&found, used_at, None).is_none());
        assert_eq!(t.sample_candidates(10), vec![target]);
        let s = t.summary();
        assert_eq!((s.len(), s[0].grows, s[0].discovered), (1, 0, true));
        // It grows later, called from elsewhere: the same map, now known by its grow site.
        let mut g = interpret(&records::grow(0xc000, 13, 10, 1), 13, 0);
        g.maptype = 0x77;
        g.origin = Some(Arc::new(Origin {
            stack: vec![pos("runtime.mapassign_fast64", 1), pos("main.add", 9)],
            site: Some(1),
        }));
        t.push(&g);
        let s = t.summary();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!((s[0].grows, s[0].discovered), (1, false));
        assert_eq!(
            s[0].origin.as_deref().and_then(Origin::site),
            Some(&pos("main.add", 9))
        );
    }

    #[test]
    fn test_kept_after_deletes_is_raised_once_the_deletes_stop() {
        let mut t = Timeline::new();
        t.push(&interpret(&records::grow(0xc000, 13, 1, 1), 13, 0));
        let target = t.sample_candidates(10).remove(0);
        let rule = KeptRule::default();
        // 8 MiB held throughout; the entries fall, then settle at 1,000.
        let at = |entries: u64| crate::timeline::health::Health {
            entries,
            storage_bytes: 8 << 20,
            retained_bytes: (8 << 20) - entries * 32,
            ..Default::default()
        };
        let mut raised = vec![];
        for (i, entries) in [200_000, 40_000, 20_000, 9_000, 7_617, 1_000, 1_000, 1_000]
            .into_iter()
            .enumerate()
        {
            let news = t.push_sample(i as u64, 1, target, Outcome::Live(at(entries)), &rule);
            match news {
                Some(SampleNews::Live(s)) if s.kept_raised => raised.push(s.health.entries),
                Some(SampleNews::Live(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        // Three samples met the rule by 9,000 entries, still falling: raised at 1,000,
        // once, when they stopped.
        assert_eq!(raised, vec![1_000]);
        // A map that meets the rule at rest is raised at its third sample.
        let mut t = Timeline::new();
        t.push(&interpret(&records::grow(0xd000, 13, 1, 1), 13, 0));
        let target = t.sample_candidates(10).remove(0);
        let raised: Vec<bool> = (0..4)
            .map(
                |i| match t.push_sample(i, 1, target, Outcome::Live(at(500)), &rule) {
                    Some(SampleNews::Live(s)) => s.kept_raised,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(raised, vec![false, false, true, false]);
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
    fn test_swiss_summary_counts() {
        let mut t = Timeline::new();
        let mut evs = vec![records::swiss(EventKind::MapSmallToTable, 0xa, 8, 0, 1)];
        for cap in [16u16, 32, 64, 128, 256, 512] {
            evs.push(records::swiss(EventKind::MapTableGrow, 0xa, cap, 1, 1));
        }
        evs.push(records::swiss(EventKind::MapTableSplit, 0xa, 1024, 1, 2));
        evs.push(records::swiss(EventKind::MapTableSplit, 0xa, 1024, 2, 2));
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
            &interpret_swiss(&records::swiss(EventKind::MapSmallToTable, 0xa, 8, 0, 1), 0).unwrap(),
        );
        assert_eq!(t.summary().len(), 2);
        assert!(interpret_swiss(&records::swiss(EventKind::MapGrow, 0xa, 8, 0, 1), 0).is_none());
    }

    #[test]
    fn test_time_conversion_and_address_reuse() {
        let mut t = Timeline::new();
        let a = interpret(&records::grow(0xc0, 8, 0, 100), 13, 1_000);
        assert_eq!(a.time_ns, 1_100);
        t.push(&a);
        t.push(&interpret(&records::grow(0xc0, 13, 1, 200), 13, 0));
        // A new map at the same address starts small again.
        t.push(&interpret(&records::grow(0xc0, 8, 0, 300), 13, 0));
        let s = t.summary();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].grows, 2);
        assert_eq!(s[1].grows, 1);
        assert_eq!(t.grows(), 3);
    }
}
