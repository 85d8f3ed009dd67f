//! The summaries the outputs print: one [`MapSummary`] per map (built by
//! [`Timeline`](super::Timeline)), the presize hint derived from it, and [`by_site`], which
//! groups maps by call site and type.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{history::History, Origin};
use crate::{golayout::sizing, symbols::pclntab::SourcePos};

/// Goroutine ids seen for one map: sorted, deduplicated, at most [`GoroutineIds::MAX`] kept (a
/// map is usually grown by one or a few goroutines; the cap bounds memory when it is not).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoroutineIds {
    ids: Vec<u64>,
    truncated: bool,
}

impl GoroutineIds {
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
    pub goroutines: GoroutineIds,
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
    /// What samples of its header found (`None`: never sampled).
    pub health: Option<Box<super::health::HealthSummary>>,
    /// Found by the `--discover` window, not seen growing: `origin` is where it was accessed
    /// (its growth happened before map-trace attached), and it has no grows.
    pub discovered: bool,
}

impl MapSummary {
    /// A map at its first event: nothing counted yet.
    pub(super) fn first_seen(
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
            goroutines: GoroutineIds::default(),
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
            health: None,
            discovered: false,
        }
    }

    /// The `make(map[K]V, hint)` that builds the map's final storage at once, so that none of
    /// the grows seen would have happened (hash-bucket maps; `load_factor_num` is twice the
    /// version's load factor), or, for Swiss maps, that sizes the directory and tables as they
    /// ended (uneven hashing can still split a few tables). `None` without grows.
    pub fn presize_hint(&self, load_factor_num: u64) -> Option<u64> {
        match &self.swiss {
            None => (self.grows > self.same_size_grows)
                .then(|| sizing::classic_hint(self.buckets_last, load_factor_num)),
            Some(s) => {
                if s.table_splits > 0 || s.directory_len_last > 1 {
                    Some(sizing::swiss_directory_hint(s.directory_len_last))
                } else if s.capacity_last > 0 {
                    Some(sizing::swiss_table_hint(s.capacity_last))
                } else {
                    None
                }
            }
        }
    }
}

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
    /// What its sampled maps, still live at their last sample, hold (`None`: none sampled).
    pub live: Option<SiteLive>,
    /// Its maps were found by `--discover`: the site is where they were accessed.
    pub discovered: bool,
}

/// The live maps of one site at their last samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SiteLive {
    /// Maps live at their last sample.
    pub maps: u64,
    /// Their entries.
    pub entries: u64,
    /// Their storage.
    pub storage_bytes: u64,
    /// Their retained bytes.
    pub retained_bytes: u64,
    /// Of them, found kept after deletes.
    pub kept: u64,
}

/// Groups per-map summaries by call site and type, most events first.
pub fn by_site(maps: &[MapSummary], load_factor_num: u64) -> Vec<SiteSummary> {
    let mut out: Vec<SiteSummary> = vec![];
    // Site, type, discovered.
    type Key = (Option<SourcePos>, Option<Arc<str>>, bool);
    let mut index: FxHashMap<Key, usize> = FxHashMap::default();
    for m in maps {
        let site = m.origin.as_deref().and_then(Origin::site).cloned();
        // Where maps grew and where discovered maps were accessed are different rows.
        let key = (site.clone(), m.type_name.clone(), m.discovered);
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
                live: None,
                discovered: m.discovered,
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
        if let Some(h) = m
            .health
            .as_deref()
            .filter(|h| h.samples > 0 && h.freed_ns.is_none())
        {
            let l = s.live.get_or_insert_with(SiteLive::default);
            l.maps += 1;
            l.entries += h.last.entries;
            l.storage_bytes += h.last.storage_bytes;
            l.retained_bytes += h.last.retained_bytes;
            l.kept += u64::from(h.kept_since_ns.is_some());
        }
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
    use crate::testkit::records;
    use crate::timeline::{interpret, test_events::pos, Timeline};

    #[test]
    fn test_presize_hint() {
        let mut t = Timeline::new();
        for (b, count) in [(1u8, 13u64), (2, 26), (3, 52)] {
            t.push(&interpret(
                &records::grow(0xc000, count, b, u64::from(b)),
                13,
                0,
            ));
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
            let mut g = interpret(&records::grow(map, count, b, map), 13, 0);
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
    fn test_goids_sorted_dedup_capped() {
        let mut g = GoroutineIds::default();
        for id in [5, 1, 5, 3] {
            g.insert(id);
        }
        assert_eq!(g.ids(), &[1, 3, 5]);
        assert!(!g.truncated());
        for id in 100..200 {
            g.insert(id);
        }
        assert_eq!(g.ids().len(), GoroutineIds::MAX);
        assert!(g.truncated());
    }
}
