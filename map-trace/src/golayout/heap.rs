//! What sampling a map from outside needs of each release: where the runtime's heap metadata
//! lives (`mheap_` → arenas → `heapArena.spans` → `mspan`) and where the map headers keep
//! their counts, seeds and storage pointers.
//!
//! Every offset below was read from the DWARF of a binary built with each release, amd64 and
//! arm64 (`objdump --dwarf=info`, members of `runtime.mspan`, `runtime.heapArena`,
//! `runtime.mheap`, `runtime.hmap`, `internal/runtime/maps.{Map,table,groupsReference}` and the
//! map type), and checked against the release's source (`runtime/mheap.go`, `malloc.go`,
//! `mbitmap.go`, `map.go`/`map_noswiss.go`, `internal/runtime/maps/{map,table}.go`). Go 1.18 and
//! 1.20 have no toolchain here to read them from: they get no sampling.

use crate::symbols::elf::Arch;

/// Offsets into the runtime's heap metadata of one release and architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapLayout {
    /// `arenaBaseOffset` (`malloc.go`): amd64 `0xffff800000000000`, arm64 0.
    pub arena_base_offset: u64,
    /// `mheap.sweepgen` (u32).
    pub mheap_sweepgen: u64,
    /// `mheap.arenas` (`[1]*[1<<22]*heapArena` on linux/amd64 and arm64).
    pub mheap_arenas: u64,
    /// `heapArena.spans` (`[8192]*mspan`).
    pub arena_spans: u64,
    /// `mspan.startAddr`.
    pub span_start: u64,
    /// `mspan.npages`.
    pub span_npages: u64,
    /// `mspan.freeindex`.
    pub span_freeindex: u64,
    /// Bytes of `mspan.freeindex`: 8 (uintptr) through 1.21, 2 (uint16) from 1.22.
    pub freeindex_size: u8,
    /// `mspan.allocBits` (`*gcBits`).
    pub span_alloc_bits: u64,
    /// `mspan.sweepgen` (u32).
    pub span_sweepgen: u64,
    /// `mspan.state` (`mSpanStateBox`, one byte).
    pub span_state: u64,
    /// `mspan.elemsize`.
    pub span_elemsize: u64,
    /// `mspan.limit`.
    pub span_limit: u64,
    /// 1.22+: pointerful objects over 512 bytes start with an 8-byte allocation header
    /// (`mbitmap.go`, `mallocHeaderSize`), so the pointer a map holds to its bucket array or
    /// directory is the slot's base plus 8.
    pub alloc_headers: bool,
}

/// `mSpanInUse` (`mheap.go`: `mSpanDead`, `mSpanInUse`, `mSpanManual`); 2 is a stack.
pub const SPAN_IN_USE: u8 = 1;
/// Bytes of heap one arena covers (`heapArenaBytes`, 64 MiB on 64-bit Linux).
pub const ARENA_BYTES: u64 = 64 << 20;
/// Entries of the arena index's second level (`arenaL2Bits` = 48 − 26).
pub const ARENA_L2_ENTRIES: u64 = 1 << 22;
/// Runtime page size (`_PageShift` = 13).
pub const PAGE_BYTES: u64 = 8192;

/// The heap layout of Go 1.`minor` on `arch`, or `None` where it could not be verified.
pub fn heap_layout(minor: u32, arch: Arch) -> Option<HeapLayout> {
    let arm64 = arch == Arch::Aarch64;
    let arena_base_offset = if arm64 { 0 } else { 0xffff_8000_0000_0000 };
    // (heapArena.spans, mheap.sweepgen, mheap.arenas, mspan: freeindex size, allocBits,
    // sweepgen, state, elemsize, limit)
    let (
        arena_spans,
        mheap_sweepgen,
        mheap_arenas,
        freeindex_size,
        alloc_bits,
        sweepgen,
        state,
        elemsize,
        limit,
    ) = match minor {
        // 1.19: heapArena's bitmap comes before spans; mspan.freeindex is a uintptr.
        19 => (2_097_152, 65_848, 65_936, 8, 72, 88, 99, 104, 112),
        // 1.21: pinnerBits moves mspan's tail by 8.
        21 => (1_064_960, 65_856, 65_944, 8, 72, 96, 107, 112, 120),
        // 1.22: allocation headers empty heapArena's bitmap; freeindex is a uint16. arm64's
        // mheap pads with a 128-byte cache line before the arenas.
        22..=27 => (
            0,
            65_856,
            if arm64 { 66_072 } else { 66_008 },
            2,
            64,
            88,
            99,
            104,
            112,
        ),
        _ => return None,
    };
    Some(HeapLayout {
        arena_base_offset,
        mheap_sweepgen,
        mheap_arenas,
        arena_spans,
        span_start: 24,
        span_npages: 32,
        span_freeindex: 48,
        freeindex_size,
        span_alloc_bits: alloc_bits,
        span_sweepgen: sweepgen,
        span_state: state,
        span_elemsize: elemsize,
        span_limit: limit,
        alloc_headers: minor >= 22,
    })
}

/// Where a map header keeps what a sample reads (the same on amd64 and arm64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderLayout {
    /// `runtime.hmap`: count +0 (int), flags +8, B +9, noverflow +10 (u16), hash0 +12 (u32),
    /// buckets +16, oldbuckets +24. `size` is 48, or 56 in 1.24/1.25 noswissmap builds
    /// (`clearSeq`).
    Classic {
        /// `unsafe.Sizeof(hmap{})`.
        size: u64,
    },
    /// `maps.Map` (48 bytes): used +0, seed +8, dirPtr +16, dirLen +24, globalDepth +32 (u8),
    /// writing +34 (u8). `maps.table` (32 bytes): used +0 (u16), capacity +2, growthLeft +4,
    /// localDepth +6 (u8), index +8 (int), groups.data +16, groups.lengthMask +24. The map
    /// type's `GroupSize` is at +80.
    Swiss,
}

impl HeaderLayout {
    /// The header's size in bytes.
    pub fn size(self) -> u64 {
        match self {
            HeaderLayout::Classic { size } => size,
            HeaderLayout::Swiss => 48,
        }
    }
}

/// Offset of `GroupSize` (uintptr) in the Swiss map type (`abi.SwissMapType` in 1.24/1.25,
/// `abi.MapType` from 1.26).
pub const SWISS_MAPTYPE_GROUP_SIZE: u64 = 80;
/// Offset of `BucketSize` (u16) in the classic map type (`runtime.maptype`, `abi.MapType`,
/// `abi.OldMapType`).
pub const CLASSIC_MAPTYPE_BUCKET_SIZE: u64 = 82;
/// Offset of the bucket (classic `Bucket`) or group (Swiss `Group`) type pointer in the map
/// type, in every release.
pub const MAPTYPE_UNIT_TYPE: u64 = 64;
/// Offset of `PtrBytes` (`ptrdata` before 1.21) in the runtime type: nonzero when the type holds
/// pointers.
pub const TYPE_PTR_BYTES: u64 = 8;
/// `maps.table`'s size.
pub const SWISS_TABLE_BYTES: u64 = 32;
/// Slots in a Swiss table before it splits (`maxTableCapacity`).
pub const SWISS_MAX_TABLE_CAPACITY: u64 = 1024;

/// The header layout of a binary: `noswiss_clear_seq` is true for 1.24/1.25 classic builds.
pub fn header_layout(minor: u32, map_impl: super::MapImpl) -> HeaderLayout {
    match map_impl {
        super::MapImpl::Swiss => HeaderLayout::Swiss,
        super::MapImpl::Classic => HeaderLayout::Classic {
            size: if (24..=25).contains(&minor) { 56 } else { 48 },
        },
    }
}

/// Go's malloc size classes (`sizeclasses.go`, the same table in 1.19 and 1.27).
const SIZE_CLASSES: [u16; 68] = [
    0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
    352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792,
    2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
    10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672,
    32768,
];

/// Bytes the heap holds for an allocation of `size` bytes: its size class, or whole pages
/// above 32 KiB. 0 stays 0.
pub fn held_bytes(size: u64) -> u64 {
    if size == 0 {
        return 0;
    }
    if size <= 32768 {
        let i = SIZE_CLASSES.partition_point(|&c| u64::from(c) < size);
        return u64::from(SIZE_CLASSES[i]);
    }
    size.div_ceil(PAGE_BYTES) * PAGE_BYTES
}

/// Bytes the heap holds for one object of `size` bytes: [`held_bytes`], after the 8-byte
/// allocation header that 1.22+ (`alloc_headers`) puts before a small object of more than 512
/// bytes holding pointers (`mallocgc`: `!noscan && !heapBitsInSpan(size)`; large objects keep
/// their type in the span instead).
pub fn object_bytes(size: u64, pointers: bool, alloc_headers: bool) -> u64 {
    if alloc_headers && pointers && size > 512 && size + 8 <= 32768 {
        held_bytes(size + 8)
    } else {
        held_bytes(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_heap_layouts_per_release() {
        assert!(heap_layout(18, Arch::X86_64).is_none());
        assert!(heap_layout(20, Arch::X86_64).is_none());
        assert!(heap_layout(28, Arch::X86_64).is_none());
        let l19 = heap_layout(19, Arch::X86_64).unwrap();
        assert_eq!(
            (l19.arena_spans, l19.freeindex_size, l19.alloc_headers),
            (2_097_152, 8, false)
        );
        let l27 = heap_layout(27, Arch::X86_64).unwrap();
        let a27 = heap_layout(27, Arch::Aarch64).unwrap();
        assert_eq!((l27.mheap_arenas, a27.mheap_arenas), (66_008, 66_072));
        assert_eq!(
            (l27.arena_base_offset, a27.arena_base_offset),
            (0xffff_8000_0000_0000, 0)
        );
        assert!(l27.alloc_headers);
        // 1.21 only: mspan.sweepgen at 96.
        assert_eq!(heap_layout(21, Arch::Aarch64).unwrap().span_sweepgen, 96);
    }

    #[test]
    fn test_header_sizes() {
        use super::super::MapImpl;
        assert_eq!(header_layout(23, MapImpl::Classic).size(), 48);
        assert_eq!(header_layout(24, MapImpl::Classic).size(), 56);
        assert_eq!(header_layout(25, MapImpl::Classic).size(), 56);
        assert_eq!(header_layout(27, MapImpl::Swiss).size(), 48);
    }

    #[test]
    fn test_object_bytes_adds_the_allocation_header() {
        assert_eq!(object_bytes(1024, true, true), 1152);
        assert_eq!(object_bytes(1024, false, true), 1024);
        assert_eq!(object_bytes(1024, true, false), 1024);
        assert_eq!(object_bytes(512, true, true), 512);
        assert_eq!(object_bytes(40960, true, true), 40960);
    }

    #[test]
    fn test_held_bytes_rounds_to_size_classes_and_pages() {
        assert_eq!(held_bytes(0), 0);
        assert_eq!(held_bytes(1), 8);
        assert_eq!(held_bytes(48), 48);
        assert_eq!(held_bytes(49), 64);
        assert_eq!(held_bytes(32768), 32768);
        assert_eq!(held_bytes(32769), 40960);
        assert_eq!(held_bytes(1 << 20), 1 << 20);
    }
}
