//! Is an address an allocated heap object of a given size? The runtime's own answer, read from
//! its heap metadata the way `spanOfHeap` and `isFree` compute it (`mheap.go`, `mbitmap.go`):
//! `mheap_.arenas[0][arenaIndex(p)]` → `heapArena.spans[(p/8192) % 8192]` → the `mspan`, whose
//! state, bounds, element size, `freeindex` and `allocBits` decide.

use rustc_hash::FxHashMap;

use super::memory::{Memory, ReadError};
use crate::golayout::heap::{HeapLayout, ARENA_BYTES, ARENA_L2_ENTRIES, PAGE_BYTES, SPAN_IN_USE};

/// What the heap metadata says about a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// An allocated object of the expected size starts here. `span_sweepgen` is its span's
    /// `sweepgen` (compared with the heap's to tell whether the span was swept this cycle).
    Allocated {
        /// `mspan.sweepgen`.
        span_sweepgen: u32,
    },
    /// The slot is free: the object that was here was freed by a sweep. `span_sweepgen` as
    /// in `Allocated`: a span being swept can show a slot free that is not (below).
    Free {
        /// `mspan.sweepgen`.
        span_sweepgen: u32,
    },
    /// Not a heap object of this size: no arena, a span that is not in use (a goroutine stack
    /// is `mSpanManual`), outside the span, or another size class or alignment.
    NotHeapObject,
}

/// Reads slots through the heap metadata of one process.
pub struct HeapIndex {
    layout: HeapLayout,
    /// Address of `runtime.mheap_` in the process.
    mheap: u64,
    /// `mheap_.arenas[0]`: set once at heap init, never changed.
    l2: Option<u64>,
    /// `*heapArena` per arena index: an L2 entry never goes back to nil (`mheap.go`).
    arenas: FxHashMap<u64, u64>,
}

impl HeapIndex {
    /// An index over the heap whose `mheap_` is at `mheap`.
    pub fn new(layout: HeapLayout, mheap: u64) -> Self {
        Self {
            layout,
            mheap,
            l2: None,
            arenas: FxHashMap::default(),
        }
    }

    /// Whether the release puts allocation headers on objects (1.22+).
    pub fn alloc_headers(&self) -> bool {
        self.layout.alloc_headers
    }

    /// `mheap_.sweepgen`: +2 per GC cycle.
    pub fn sweepgen(&self, mem: &impl Memory) -> Result<u32, ReadError> {
        let mut b = [0u8; 4];
        mem.read(self.mheap + self.layout.mheap_sweepgen, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn heap_arena(&mut self, mem: &impl Memory, addr: u64) -> Result<Option<u64>, ReadError> {
        let idx = addr.wrapping_sub(self.layout.arena_base_offset) / ARENA_BYTES;
        if idx >= ARENA_L2_ENTRIES {
            return Ok(None);
        }
        if let Some(&a) = self.arenas.get(&idx) {
            return Ok(Some(a));
        }
        let l2 = match self.l2 {
            Some(l2) => l2,
            None => {
                let l2 = mem.u64(self.mheap + self.layout.mheap_arenas)?;
                if l2 == 0 {
                    return Ok(None);
                }
                self.l2 = Some(l2);
                l2
            }
        };
        let arena = mem.u64(l2 + idx * 8)?;
        if arena == 0 {
            return Ok(None);
        }
        if self.arenas.len() < 1 << 16 {
            self.arenas.insert(idx, arena);
        }
        Ok(Some(arena))
    }

    /// Whether an object of `elem_size` bytes is allocated at `addr`.
    pub fn slot(
        &mut self,
        mem: &impl Memory,
        addr: u64,
        elem_size: u64,
    ) -> Result<Slot, ReadError> {
        let l = self.layout;
        let Some(arena) = self.heap_arena(mem, addr)? else {
            return Ok(Slot::NotHeapObject);
        };
        let page = (addr / PAGE_BYTES) % (ARENA_BYTES / PAGE_BYTES);
        let span = match mem.u64(arena + l.arena_spans + page * 8) {
            Ok(s) => s,
            Err(ReadError::Unmapped(_)) => return Ok(Slot::NotHeapObject),
            Err(e) => return Err(e),
        };
        if span == 0 {
            return Ok(Slot::NotHeapObject);
        }
        let mut s = [0u8; 128];
        let len = (l.span_limit + 8) as usize;
        mem.read(span, &mut s[..len])?;
        let u64_at = |o: u64| u64::from_le_bytes(s[o as usize..o as usize + 8].try_into().unwrap());
        let state = s[l.span_state as usize];
        let start = u64_at(l.span_start);
        let limit = u64_at(l.span_limit);
        let elemsize = u64_at(l.span_elemsize);
        if state != SPAN_IN_USE || addr < start || addr >= limit {
            return Ok(Slot::NotHeapObject);
        }
        if elemsize != elem_size || !(addr - start).is_multiple_of(elemsize) {
            return Ok(Slot::NotHeapObject);
        }
        let idx = (addr - start) / elemsize;
        let freeindex = match l.freeindex_size {
            2 => u64::from(u16::from_le_bytes(
                s[l.span_freeindex as usize..l.span_freeindex as usize + 2]
                    .try_into()
                    .unwrap(),
            )),
            _ => u64_at(l.span_freeindex),
        };
        let span_sweepgen = u32::from_le_bytes(
            s[l.span_sweepgen as usize..l.span_sweepgen as usize + 4]
                .try_into()
                .unwrap(),
        );
        if idx < freeindex {
            return Ok(Slot::Allocated { span_sweepgen });
        }
        let bits = u64_at(l.span_alloc_bits);
        let mut byte = [0u8];
        mem.read(bits + idx / 8, &mut byte)?;
        Ok(if byte[0] & (1 << (idx % 8)) != 0 {
            Slot::Allocated { span_sweepgen }
        } else {
            Slot::Free { span_sweepgen }
        })
    }
}

/// A test heap: one arena with spans of given element sizes, laid out as the runtime does.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use crate::heap::memory::FakeMemory;

    pub const MHEAP: u64 = 0x10_0000;
    const L2: u64 = 0x20_0000;
    const ARENA: u64 = 0x40_0000;
    const SPANS: u64 = 0x80_0000;
    const BITS: u64 = 0x90_0000;
    /// Heap objects start here (arena index on amd64: (0xc000000000 + 2^47) >> 26).
    pub const HEAP: u64 = 0xc0_0000_0000;

    pub fn layout() -> HeapLayout {
        crate::golayout::heap::heap_layout(27, crate::symbols::elf::Arch::X86_64).unwrap()
    }

    /// A heap with `mheap_.sweepgen = sweepgen` and no spans yet.
    pub fn heap(mem: &mut FakeMemory, sweepgen: u32) {
        let l = layout();
        mem.zeroed(MHEAP, 70_000);
        mem.put(MHEAP + l.mheap_sweepgen, &sweepgen.to_le_bytes());
        mem.put_u64(MHEAP + l.mheap_arenas, L2);
        mem.zeroed(L2, (ARENA_L2_ENTRIES * 8) as usize);
        let idx = HEAP.wrapping_sub(l.arena_base_offset) / ARENA_BYTES;
        mem.put_u64(L2 + idx * 8, ARENA);
        mem.zeroed(ARENA, 8192 * 8);
        mem.zeroed(SPANS, 16 * 256);
        mem.zeroed(BITS, 16 * 64);
    }

    /// Span number `n` (one page at `HEAP + n*8192`) of `elemsize`, state, freeindex and
    /// sweepgen; `alloc` lists slot indexes whose allocBits are set.
    pub fn span(
        mem: &mut FakeMemory,
        n: u64,
        elemsize: u64,
        state: u8,
        freeindex: u16,
        sweepgen: u32,
        alloc: &[u64],
    ) -> u64 {
        let l = layout();
        let start = HEAP + n * PAGE_BYTES;
        let span = SPANS + n * 256;
        mem.put_u64(ARENA + ((start / PAGE_BYTES) % 8192) * 8, span);
        mem.put_u64(span + l.span_start, start);
        mem.put_u64(span + l.span_npages, 1);
        mem.put(span + l.span_freeindex, &freeindex.to_le_bytes());
        mem.put_u64(span + l.span_alloc_bits, BITS + n * 64);
        mem.put(span + l.span_sweepgen, &sweepgen.to_le_bytes());
        mem.put(span + l.span_state, &[state]);
        mem.put_u64(span + l.span_elemsize, elemsize);
        mem.put_u64(
            span + l.span_limit,
            start + (PAGE_BYTES / elemsize) * elemsize,
        );
        let mut bits = [0u8; 64];
        for &i in alloc {
            bits[(i / 8) as usize] |= 1 << (i % 8);
        }
        mem.put(BITS + n * 64, &bits);
        start
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;
    use crate::heap::memory::FakeMemory;

    #[test]
    fn test_slot_follows_freeindex_and_alloc_bits() {
        let mut mem = FakeMemory::default();
        heap(&mut mem, 10);
        let start = span(&mut mem, 0, 48, SPAN_IN_USE, 2, 10, &[5]);
        let mut h = HeapIndex::new(layout(), MHEAP);
        assert_eq!(h.sweepgen(&mem), Ok(10));
        let allocated = Slot::Allocated { span_sweepgen: 10 };
        assert_eq!(h.slot(&mem, start, 48), Ok(allocated));
        assert_eq!(h.slot(&mem, start + 48, 48), Ok(allocated));
        assert!(matches!(
            h.slot(&mem, start + 96, 48),
            Ok(Slot::Free { .. })
        ));
        assert_eq!(h.slot(&mem, start + 5 * 48, 48), Ok(allocated));
        // Misaligned, another size class.
        assert_eq!(h.slot(&mem, start + 8, 48), Ok(Slot::NotHeapObject));
        assert_eq!(h.slot(&mem, start, 64), Ok(Slot::NotHeapObject));
        // Past the span's limit: 8192 / 48 = 170 slots.
        assert_eq!(h.slot(&mem, start + 170 * 48, 48), Ok(Slot::NotHeapObject));
    }

    #[test]
    fn test_stacks_and_unknown_arenas_are_not_heap_objects() {
        let mut mem = FakeMemory::default();
        heap(&mut mem, 10);
        let stack = span(&mut mem, 1, 48, 2, 100, 10, &[]);
        let mut h = HeapIndex::new(layout(), MHEAP);
        assert_eq!(h.slot(&mem, stack, 48), Ok(Slot::NotHeapObject));
        // A page with no span, and an address in an arena that does not exist.
        assert_eq!(
            h.slot(&mem, HEAP + 7 * PAGE_BYTES, 48),
            Ok(Slot::NotHeapObject)
        );
        assert_eq!(h.slot(&mem, 0x7fff_0000_0000, 48), Ok(Slot::NotHeapObject));
    }
}
