//! Map health in the agent: the maps each traced process grew, sampled every
//! `--sample-interval` (10 s) with the CLI's sampler (`crate::heap`), at most
//! `--max-sampled-maps` (200) per executable, largest storage first, summed into the gauges
//! `map_trace_map_entries`, `map_trace_map_storage_bytes` and `map_trace_map_retained_bytes`
//! per executable, container, pod and site. The gauges are rebuilt every round: the series of
//! a map the GC freed, or of a process that exited, go away at the next round.

use super::*;
use crate::{
    heap::{
        memory::{ProcessMemory, ReadError},
        sampler::{self, Candidate, Outcome, Sampler},
    },
    plan::HeapPlan,
};
use metrics::HeldLabels;

/// Most maps tracked per process: past it, maps that grow later are not sampled (the oldest
/// tracked are kept: a map that grew long ago is the one that keeps memory).
pub(super) const MAX_TRACKED_PER_PROCESS: usize = 10_000;

/// One map a process grew.
#[derive(Clone, Debug)]
pub(super) struct Tracked {
    /// Stable for this process's table (a new map at a reused address gets a new id).
    id: u64,
    maptype: u64,
    site: Arc<str>,
    /// Geometry after its last grow seen (hash-bucket B, Swiss directory length).
    min_geometry: u64,
    /// Storage at its last sample (0 before the first).
    storage: u64,
}

/// The maps of one process, and its sampler.
#[derive(Default)]
pub(super) struct ProcMaps {
    maps: FxHashMap<u64, Tracked>,
    next_id: u64,
    sampler: Option<Sampler<ProcessMemory>>,
    /// Reading its memory was refused or it is gone: not sampled again.
    off: bool,
}

impl ProcMaps {
    /// A grow of the map at `map` (`geometry` after it) from `site`.
    pub(super) fn grew(&mut self, map: u64, maptype: u64, site: &str, geometry: u64) {
        if let Some(t) = self.maps.get_mut(&map) {
            if t.maptype == maptype && &*t.site == site && t.min_geometry <= geometry {
                t.min_geometry = geometry;
                return;
            }
        } else if self.maps.len() >= MAX_TRACKED_PER_PROCESS {
            return;
        }
        self.next_id += 1;
        self.maps.insert(
            map,
            Tracked {
                id: self.next_id,
                maptype,
                site: site.into(),
                min_geometry: geometry,
                storage: 0,
            },
        );
    }
}

/// What one executable's round needs.
struct ExeRound {
    id: u32,
    plan: HeapPlan,
    load_factor_num: u64,
    ino: u64,
    executable: String,
    go_version: String,
}

impl Agent {
    /// One sampling round over every traced executable.
    pub(super) fn sample_maps(&mut self) {
        let Some(want) = self.cfg.sampling else {
            return;
        };
        let rounds: Vec<ExeRound> = self
            .exes
            .iter()
            .filter(|(_, e)| e.live)
            .filter_map(|(&id, e)| {
                Some(ExeRound {
                    id,
                    plan: e.heap?,
                    load_factor_num: e.load_factor_num,
                    ino: e.ino,
                    executable: e.name.clone(),
                    go_version: e.go_version.clone(),
                })
            })
            .collect();
        let mut sums: FxHashMap<HeldLabels, (i64, i64, i64)> = FxHashMap::default();
        for r in &rounds {
            // The executable's largest maps, across its processes.
            let mut all: Vec<(u64, u32, u64)> = self
                .procs
                .iter()
                .filter(|(_, p)| p.exe == r.id && !p.maps.off)
                .flat_map(|(&pid, p)| p.maps.maps.iter().map(move |(&a, t)| (t.storage, pid, a)))
                .collect();
            all.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            all.truncate(want.max_maps);
            let mut by_pid: FxHashMap<u32, Vec<u64>> = FxHashMap::default();
            for (_, pid, a) in all {
                by_pid.entry(pid).or_default().push(a);
            }
            for (pid, addrs) in by_pid {
                let Some(p) = self.procs.get_mut(&pid) else {
                    continue;
                };
                let pm = &mut p.maps;
                if pm.sampler.is_none() {
                    pm.sampler = sampler::for_process(pid, r.ino, &r.plan, r.load_factor_num);
                }
                let Some(s) = pm.sampler.as_mut() else {
                    pm.off = true;
                    continue;
                };
                let targets: Vec<Candidate> = addrs
                    .iter()
                    .filter_map(|a| {
                        let t = pm.maps.get(a)?;
                        Some(Candidate {
                            id: t.id,
                            map: *a,
                            maptype: t.maptype,
                            min_geometry: t.min_geometry,
                        })
                    })
                    .collect();
                let results = match s.sample(&targets) {
                    Ok(r) => r,
                    Err(e) => {
                        if e == ReadError::Refused {
                            eprintln!("map-trace agent: warning: pid {pid}: {e}: its maps are not sampled");
                        }
                        pm.off = true;
                        continue;
                    }
                };
                for (c, o) in results {
                    match o {
                        Outcome::Live(h) => {
                            let Some(t) = pm.maps.get_mut(&c.map) else {
                                continue;
                            };
                            t.storage = h.storage_bytes;
                            let labels = HeldLabels {
                                executable: r.executable.clone(),
                                go_version: r.go_version.clone(),
                                pod_uid: p.container.pod_uid.clone(),
                                container_id: p.container.container_id.clone(),
                                site: t.site.to_string(),
                            };
                            let sum = sums.entry(labels).or_default();
                            sum.0 += h.entries as i64;
                            sum.1 += h.storage_bytes as i64;
                            sum.2 += h.retained_bytes as i64;
                        }
                        Outcome::Freed | Outcome::NotHeap => {
                            pm.maps.remove(&c.map);
                        }
                        Outcome::Unreadable => {}
                    }
                }
            }
        }
        let m = &self.metrics;
        m.map_entries.clear();
        m.map_storage.clear();
        m.map_retained.clear();
        for (labels, (entries, storage, retained)) in sums {
            m.map_entries.get_or_create(&labels).set(entries);
            m.map_storage.get_or_create(&labels).set(storage);
            m.map_retained.get_or_create(&labels).set(retained);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_process_tracks_each_map_once_and_a_reused_address_anew() {
        let mut pm = ProcMaps::default();
        pm.grew(0xa0, 1, "main.f (x.go:1)", 4);
        pm.grew(0xa0, 1, "main.f (x.go:1)", 5);
        assert_eq!(pm.maps[&0xa0].id, 1);
        assert_eq!(pm.maps[&0xa0].min_geometry, 5);
        // Another site or a smaller map at the address: another map.
        pm.grew(0xa0, 1, "main.g (x.go:2)", 1);
        assert_eq!(pm.maps[&0xa0].id, 2);
        assert_eq!(pm.maps.len(), 1);
    }

    #[test]
    fn test_the_table_is_bounded() {
        let mut pm = ProcMaps::default();
        for a in 0..(MAX_TRACKED_PER_PROCESS as u64 + 10) {
            pm.grew(a, 1, "s", 1);
        }
        assert_eq!(pm.maps.len(), MAX_TRACKED_PER_PROCESS);
        assert!(pm.maps.contains_key(&0), "the oldest are kept");
    }
}
