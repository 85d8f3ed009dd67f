//! Every `--sample-interval`: which of the tracked maps are still live, and what they hold.
//!
//! A map header is reported only while the runtime's heap metadata says its slot is an
//! allocated object of the header's size class ([`HeapIndex::slot`]) and the header reads as a
//! plausible map whose identity is the one pinned at its first sample. Go does not clear freed
//! memory, so a dead header still shows its old count: the slot check is what makes a freed map
//! disappear, within one GC cycle (its span is swept) plus an interval. A slot freed and handed to
//! a new map shows a new seed; so does a live map the program emptied (delete down to zero or
//! `clear`), which the runtime reseeds. Those are told apart by the sweep generation (the span
//! was already swept this cycle at the last sample, and no cycle began since: the slot cannot
//! have been freed and reused) or by the storage pointer and geometry, which an emptied map
//! keeps.

use rustc_hash::FxHashMap;

use super::{
    header::{self, Reading, TypeSizes},
    memory::{Memory, ReadError},
    spans::{HeapIndex, Slot},
};
use crate::golayout::heap::{
    held_bytes, HeaderLayout, CLASSIC_MAPTYPE_BUCKET_SIZE, MAPTYPE_UNIT_TYPE,
    SWISS_MAPTYPE_GROUP_SIZE, TYPE_PTR_BYTES,
};
pub use crate::timeline::health::{Health, Outcome};

/// A map to sample (the timeline's [`SampleTarget`]).
pub use crate::timeline::SampleTarget as Candidate;

/// Where the ids of [`Sampler::sample_found`]'s maps start: above any timeline id.
pub const FOUND_IDS: u64 = 1 << 62;

/// The identity pinned at a map's first sample.
#[derive(Clone, Copy, Debug)]
struct Pinned {
    seed: u64,
    storage_ptr: u64,
    geometry: u64,
    /// `mheap_.sweepgen` at the last sample.
    heap_sweepgen: u32,
    /// The header's span had been swept in that cycle.
    swept: bool,
}

/// The sampler of process `pid`, whose executable (inode `ino`) has the heap metadata of
/// `plan`; `None` when a PIE's load address cannot be read from `/proc/PID/maps` (call it once
/// the process has exec'd).
pub fn for_process(
    pid: u32,
    ino: u64,
    plan: &crate::plan::HeapPlan,
    load_factor_num: u64,
) -> Option<Sampler<super::memory::ProcessMemory>> {
    let bias = match plan.pie_first_load {
        None => 0,
        Some(first) => {
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
            super::locate::load_bias(&maps, ino, first)?
        }
    };
    Some(Sampler::new(
        super::memory::ProcessMemory::new(pid),
        HeapIndex::new(plan.layout, plan.mheap_vaddr.wrapping_add(bias)),
        plan.header,
        load_factor_num,
    ))
}

/// Samples the maps of one process.
pub struct Sampler<M> {
    mem: M,
    heap: HeapIndex,
    layout: HeaderLayout,
    load_factor_num: u64,
    pinned: FxHashMap<u64, Pinned>,
    units: FxHashMap<u64, TypeSizes>,
    alloc_headers: bool,
}

impl<M: Memory> Sampler<M> {
    /// A sampler reading `mem` through `heap`, for headers of `layout`.
    pub fn new(mem: M, heap: HeapIndex, layout: HeaderLayout, load_factor_num: u64) -> Self {
        let alloc_headers = heap.alloc_headers();
        Self {
            alloc_headers,
            mem,
            heap,
            layout,
            load_factor_num,
            pinned: FxHashMap::default(),
            units: FxHashMap::default(),
        }
    }

    /// The memory it reads (for its cost counters).
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The bucket or group size of a map type, and whether it holds pointers, read once per
    /// type.
    fn sizes(&mut self, maptype: u64) -> Result<TypeSizes, ReadError> {
        if let Some(&u) = self.units.get(&maptype) {
            return Ok(u);
        }
        let u = match self.layout {
            HeaderLayout::Classic { .. } => {
                let mut b = [0u8; 2];
                self.mem
                    .read(maptype + CLASSIC_MAPTYPE_BUCKET_SIZE, &mut b)?;
                u64::from(u16::from_le_bytes(b))
            }
            HeaderLayout::Swiss => self.mem.u64(maptype + SWISS_MAPTYPE_GROUP_SIZE)?,
        };
        let unit_type = self.mem.u64(maptype + MAPTYPE_UNIT_TYPE)?;
        let pointers = unit_type != 0 && self.mem.u64(unit_type + TYPE_PTR_BYTES)? != 0;
        let sizes = TypeSizes {
            unit: u,
            pointers,
            alloc_headers: self.alloc_headers,
        };
        if self.units.len() < 1 << 16 {
            self.units.insert(maptype, sizes);
        }
        Ok(sizes)
    }

    /// Samples `maps`. A refused or vanished process fails the whole round (the caller stops
    /// sampling); other read failures are the map's [`Outcome::Unreadable`].
    ///
    /// Identities are kept for the maps of this round only: a map that drops out of the
    /// largest `--max-sampled-maps` is pinned again when it comes back, so the pins stay
    /// bounded by the round's size.
    pub fn sample(&mut self, maps: &[Candidate]) -> Result<Vec<(Candidate, Outcome)>, ReadError> {
        let out = self.round(maps)?;
        if self.pinned.len() > maps.len() {
            let ids: rustc_hash::FxHashSet<u64> = maps.iter().map(|c| c.id).collect();
            self.pinned.retain(|id, _| ids.contains(id));
        }
        Ok(out)
    }

    /// Samples maps the `--discover` window found, under ids of their own (at or above
    /// [`FOUND_IDS`]), without forgetting the pins of the tracked maps. [`Sampler::adopt`] then
    /// keeps the pins of those that become tracked.
    pub fn sample_found(
        &mut self,
        maps: &[Candidate],
    ) -> Result<Vec<(Candidate, Outcome)>, ReadError> {
        self.round(maps)
    }

    /// The found maps now tracked, `(found id, tracked id)`: their identities stay pinned under
    /// the tracked ids; the other found maps' pins are dropped.
    pub fn adopt(&mut self, ids: &[(u64, u64)]) {
        for &(from, to) in ids {
            if let Some(p) = self.pinned.remove(&from) {
                self.pinned.insert(to, p);
            }
        }
        self.pinned.retain(|id, _| *id < FOUND_IDS);
    }

    fn round(&mut self, maps: &[Candidate]) -> Result<Vec<(Candidate, Outcome)>, ReadError> {
        let heap_sweepgen = self.heap.sweepgen(&self.mem)?;
        let mut out = Vec::with_capacity(maps.len());
        for c in maps {
            let o = match self.one(*c, heap_sweepgen) {
                Ok(o) => o,
                Err(e @ (ReadError::Refused | ReadError::Gone)) => return Err(e),
                Err(ReadError::Unmapped(_)) => Outcome::Unreadable,
            };
            if matches!(o, Outcome::Freed | Outcome::NotHeap) {
                self.pinned.remove(&c.id);
            }
            out.push((*c, o));
        }
        Ok(out)
    }

    fn one(&mut self, c: Candidate, heap_sweepgen: u32) -> Result<Outcome, ReadError> {
        let elem = held_bytes(self.layout.size());
        let span_sweepgen = match self.heap.slot(&self.mem, c.map, elem)? {
            Slot::Allocated { span_sweepgen } => span_sweepgen,
            // Being swept (sweepgen = the heap's − 1, or + 1 once a new cycle began during
            // this round): sweep() resets freeindex before it swaps in the new allocation
            // bits, so for a moment an object allocated since the last sweep shows as free.
            // Read again next round.
            Slot::Free { span_sweepgen }
                if span_sweepgen == heap_sweepgen.wrapping_sub(1)
                    || span_sweepgen == heap_sweepgen.wrapping_add(1) =>
            {
                return Ok(Outcome::Unreadable)
            }
            Slot::Free { .. } => return Ok(Outcome::Freed),
            // Seen live before: its span was freed whole (every object in it died) and maybe
            // reused for another size class or a stack.
            Slot::NotHeapObject if self.pinned.contains_key(&c.id) => return Ok(Outcome::Freed),
            Slot::NotHeapObject => return Ok(Outcome::NotHeap),
        };
        let sizes = self.sizes(c.maptype)?;
        let Some(r) = header::read(&self.mem, c.map, self.layout, sizes)? else {
            // An allocated object of the header's size that is no map: the slot was reused.
            return Ok(Outcome::Freed);
        };
        if r.geometry < c.min_geometry {
            // Smaller than this map ever was since its last grow: another map (or object)
            // took the slot, even before this map's first sample.
            return Ok(Outcome::Freed);
        }
        // Swept this cycle: sweepgen == heap's (swept) or heap's + 3 (cached, swept).
        let swept =
            span_sweepgen == heap_sweepgen || span_sweepgen == heap_sweepgen.wrapping_add(3);
        let mut reseeded = false;
        if let Some(p) = self.pinned.get(&c.id) {
            if p.seed != r.seed {
                let fenced = p.swept && p.heap_sweepgen == heap_sweepgen;
                let same_storage = r.storage_ptr != 0
                    && r.storage_ptr == p.storage_ptr
                    && r.geometry == p.geometry;
                if !(fenced || same_storage) {
                    return Ok(Outcome::Freed);
                }
                reseeded = true;
            }
        }
        self.pinned.insert(
            c.id,
            Pinned {
                seed: r.seed,
                storage_ptr: r.storage_ptr,
                geometry: r.geometry,
                heap_sweepgen,
                swept,
            },
        );
        Ok(Outcome::Live(self.health(&r, sizes, reseeded)))
    }

    fn health(&self, r: &Reading, sizes: TypeSizes, reseeded: bool) -> Health {
        let need = header::needed_bytes(self.layout, sizes, r.entries, self.load_factor_num);
        Health {
            entries: r.entries,
            storage_bytes: r.storage_bytes,
            retained_bytes: (r.storage_bytes - r.overflow_bytes).saturating_sub(need),
            overflow_buckets: r.overflow_buckets,
            tombstones: r.tombstones,
            reseeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golayout::heap::SPAN_IN_USE;
    use crate::heap::{memory::FakeMemory, spans::fake};

    const MAPTYPE: u64 = 0x5000;

    fn hmap(mem: &mut FakeMemory, addr: u64, count: u64, b: u8, seed: u32, buckets: u64) {
        let mut h = [0u8; 48];
        h[..8].copy_from_slice(&count.to_le_bytes());
        h[9] = b;
        h[12..16].copy_from_slice(&seed.to_le_bytes());
        h[16..24].copy_from_slice(&buckets.to_le_bytes());
        mem.put(addr, &h);
    }

    fn setup(sweepgen: u32, span_sweepgen: u32, alloc: &[u64]) -> (FakeMemory, u64) {
        let mut mem = FakeMemory::default();
        fake::heap(&mut mem, sweepgen);
        let start = fake::span(&mut mem, 0, 48, SPAN_IN_USE, 0, span_sweepgen, alloc);
        mem.zeroed(MAPTYPE, 96);
        mem.put(MAPTYPE + 82, &144u16.to_le_bytes());
        (mem, start)
    }

    fn sampler(mem: FakeMemory) -> Sampler<FakeMemory> {
        Sampler::new(
            mem,
            HeapIndex::new(fake::layout(), fake::MHEAP),
            HeaderLayout::Classic { size: 48 },
            13,
        )
    }

    fn one(s: &mut Sampler<FakeMemory>, map: u64) -> Outcome {
        s.sample(&[Candidate {
            id: map,
            map,
            maptype: MAPTYPE,
            min_geometry: 0,
        }])
        .unwrap()[0]
            .1
    }

    #[test]
    fn test_live_then_freed_when_the_sweep_frees_the_slot() {
        let (mut mem, start) = setup(10, 10, &[0]);
        hmap(&mut mem, start, 1000, 8, 42, 0x9_0000);
        let mut s = sampler(mem);
        let Outcome::Live(h) = one(&mut s, start) else {
            panic!()
        };
        assert_eq!(h.entries, 1000);
        // 256 + 16 buckets × 144 = 39168 → 40960; B = 8 is what 1000 entries need.
        assert_eq!(h.storage_bytes, 48 + 40960);
        assert_eq!(h.retained_bytes, 0);
        // The GC swept the span: the slot's alloc bit is clear now; the stale header remains.
        fake::span(&mut s.mem, 0, 48, SPAN_IN_USE, 0, 12, &[]);
        assert_eq!(one(&mut s, start), Outcome::Freed);
    }

    #[test]
    fn test_a_slot_that_shows_free_in_a_span_being_swept_is_read_again() {
        // Heap sweepgen 12, span 11: being swept. sweep() has reset freeindex but not yet
        // swapped in the marked bits, so a map allocated since the last sweep shows free.
        let (mut mem, start) = setup(12, 11, &[]);
        hmap(&mut mem, start, 1000, 8, 42, 0x9_0000);
        let mut s = sampler(mem);
        assert_eq!(one(&mut s, start), Outcome::Unreadable);
        // Swept (12), its bit in the new allocation bits: live.
        fake::span(&mut s.mem, 0, 48, SPAN_IN_USE, 0, 12, &[0]);
        assert!(matches!(one(&mut s, start), Outcome::Live(_)));
        // A new cycle began during a round (heap 12 read, span 13): also in flux.
        fake::span(&mut s.mem, 0, 48, SPAN_IN_USE, 0, 13, &[]);
        assert_eq!(one(&mut s, start), Outcome::Unreadable);
        // Swept with the bit clear: freed.
        fake::span(&mut s.mem, 0, 48, SPAN_IN_USE, 0, 12, &[]);
        assert_eq!(one(&mut s, start), Outcome::Freed);
    }

    #[test]
    fn test_emptied_map_is_still_live_and_a_reused_slot_is_not_the_old_map() {
        let (mut mem, start) = setup(10, 10, &[0, 1]);
        hmap(&mut mem, start, 1000, 8, 42, 0x9_0000);
        hmap(&mut mem, start + 48, 1000, 8, 43, 0xa_0000);
        let mut s = sampler(mem);
        let both = |s: &mut Sampler<FakeMemory>| -> Vec<Outcome> {
            let c = |map| Candidate {
                id: map,
                map,
                maptype: MAPTYPE,
                min_geometry: 0,
            };
            s.sample(&[c(start), c(start + 48)])
                .unwrap()
                .into_iter()
                .map(|r| r.1)
                .collect()
        };
        assert!(both(&mut s).iter().all(|o| matches!(o, Outcome::Live(_))));
        // A GC cycle passes (sweepgen 10 → 12), the span is swept again, both slots still
        // allocated. The first map was emptied (new seed, same buckets): still live, and all
        // of its storage is retained. The second slot now holds a new map (new seed, new
        // buckets, B = 0): the old map is gone.
        s.mem.put(
            fake::MHEAP + fake::layout().mheap_sweepgen,
            &12u32.to_le_bytes(),
        );
        fake::span(&mut s.mem, 0, 48, SPAN_IN_USE, 0, 12, &[0, 1]);
        hmap(&mut s.mem, start, 0, 8, 99, 0x9_0000);
        hmap(&mut s.mem, start + 48, 3, 0, 7, 0xb_0000);
        let r = both(&mut s);
        let Outcome::Live(h) = r[0] else { panic!() };
        assert!(h.reseeded);
        assert_eq!((h.entries, h.retained_bytes), (0, 40960));
        assert_eq!(r[1], Outcome::Freed);
    }

    #[test]
    fn test_the_sweep_fence_accepts_a_reseed_with_new_storage_within_one_cycle() {
        let (mut mem, start) = setup(10, 10, &[0]);
        hmap(&mut mem, start, 1000, 8, 42, 0x9_0000);
        let mut s = sampler(mem);
        assert!(matches!(one(&mut s, start), Outcome::Live(_)));
        // Same cycle, span already swept at the last sample: a new seed cannot be a reuse.
        hmap(&mut s.mem, start, 0, 8, 5, 0xc_0000);
        assert!(matches!(
            one(&mut s, start),
            Outcome::Live(Health { reseeded: true, .. })
        ));
    }

    #[test]
    fn test_a_map_whose_span_was_freed_whole_is_freed() {
        let (mut mem, start) = setup(10, 10, &[0]);
        hmap(&mut mem, start, 1000, 8, 42, 0x9_0000);
        let mut s = sampler(mem);
        assert!(matches!(one(&mut s, start), Outcome::Live(_)));
        // Every object of the span died: the sweep gave the span back (state mSpanDead).
        fake::span(&mut s.mem, 0, 48, 0, 0, 12, &[]);
        assert_eq!(one(&mut s, start), Outcome::Freed);
    }

    /// The slot was reused before the map's first sample: a header smaller than the map was
    /// at its last grow is not it.
    #[test]
    fn test_a_header_smaller_than_the_map_ever_was_is_not_it() {
        let (mut mem, start) = setup(10, 10, &[0]);
        hmap(&mut mem, start, 3, 0, 42, 0x9_0000);
        let mut s = sampler(mem);
        let c = Candidate {
            id: 1,
            map: start,
            maptype: MAPTYPE,
            min_geometry: 8,
        };
        assert_eq!(s.sample(&[c]).unwrap()[0].1, Outcome::Freed);
    }

    #[test]
    fn test_headers_on_stacks_are_never_reported() {
        let mut mem = FakeMemory::default();
        fake::heap(&mut mem, 10);
        let stack = fake::span(&mut mem, 2, 48, 2, 0, 10, &[0]);
        hmap(&mut mem, stack, 100, 4, 1, 0x9_0000);
        mem.zeroed(MAPTYPE, 96);
        let mut s = sampler(mem);
        assert_eq!(one(&mut s, stack), Outcome::NotHeap);
    }
}
