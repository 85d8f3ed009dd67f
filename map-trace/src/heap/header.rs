//! One map header read from the target: its entries, seed, storage pointer and the storage it
//! holds, for hash-bucket maps (`runtime.hmap`) and Swiss maps (`maps.Map`).

use rustc_hash::FxHashSet;

use super::memory::{Memory, ReadError};
use crate::golayout::{
    heap::{held_bytes, object_bytes, HeaderLayout, SWISS_MAX_TABLE_CAPACITY, SWISS_TABLE_BYTES},
    sizing,
};

/// What one read of a map header found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// `len(m)`.
    pub entries: u64,
    /// `hmap.hash0` / `Map.seed`: reseeded when the map is emptied.
    pub seed: u64,
    /// `hmap.buckets` / `Map.dirPtr`: kept when the map is emptied or cleared.
    pub storage_ptr: u64,
    /// `B` / `dirLen`: with the pointer, what an emptied map keeps.
    pub geometry: u64,
    /// Heap bytes held: the header and every array it owns, rounded to malloc size classes.
    pub storage_bytes: u64,
    /// Hash-bucket maps: `noverflow` (exact while B < 16, as in the runtime). Swiss: 0.
    pub overflow_buckets: u64,
    /// Swiss maps: deleted slots not yet reused. Hash-bucket: 0.
    pub tombstones: u64,
    /// Hash-bucket maps: bytes of the overflow buckets beyond the preallocated ones (a map
    /// built at the right size gets overflow buckets too, so they are not counted as retained).
    pub overflow_bytes: u64,
}

/// The element sizes a header needs from its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeSizes {
    /// Hash-bucket `BucketSize`, or Swiss `GroupSize`.
    pub unit: u64,
    /// The bucket or group type holds pointers (its arrays then carry 1.22's allocation
    /// header; hash-bucket overflow buckets are then not listed in `mapextra`).
    pub pointers: bool,
    /// The release has allocation headers (1.22+).
    pub alloc_headers: bool,
}

impl TypeSizes {
    /// Bytes held by an array of `n` buckets or groups.
    fn array(&self, n: u64) -> u64 {
        object_bytes(n * self.unit, self.pointers, self.alloc_headers)
    }
}

/// Most Swiss tables read per map: a directory beyond this is not plausible for a map header
/// (2^16 tables of 1024 slots is 64 Mi entries per directory level).
const MAX_DIRECTORY: u64 = 1 << 16;

/// Reads the header at `addr`; `None` when it does not look like a live map of this layout.
pub fn read(
    mem: &impl Memory,
    addr: u64,
    layout: HeaderLayout,
    sizes: TypeSizes,
) -> Result<Option<Reading>, ReadError> {
    match layout {
        HeaderLayout::Classic { size } => classic(mem, addr, size, sizes),
        HeaderLayout::Swiss => swiss(mem, addr, sizes),
    }
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

fn classic(
    mem: &impl Memory,
    addr: u64,
    header_size: u64,
    sizes: TypeSizes,
) -> Result<Option<Reading>, ReadError> {
    let bucket_size = sizes.unit;
    let mut h = [0u8; 56];
    mem.read(addr, &mut h[..header_size as usize])?;
    let count = u64_at(&h, 0);
    let (flags, b) = (h[8], h[9]);
    let noverflow = u64::from(u16::from_le_bytes([h[10], h[11]]));
    let seed = u64::from(u32::from_le_bytes([h[12], h[13], h[14], h[15]]));
    let buckets = u64_at(&h, 16);
    let oldbuckets = u64_at(&h, 24);
    // flags has 4 bits (iterator, oldIterator, hashWriting, sameSizeGrow); B < 64; a map with
    // entries has buckets.
    // A map holds at most 8 entries per bucket, old buckets and overflow buckets included.
    let slots = 8 * (3u64 << b.min(56)).saturating_add(noverflow + 16);
    if flags > 15
        || b > 56
        || count > slots
        || ((count > 0 || b > 0) && (buckets == 0 || !buckets.is_multiple_of(8)))
        || !oldbuckets.is_multiple_of(8)
        || bucket_size == 0
    {
        return Ok(None);
    }
    let b32 = u32::from(b);
    let mut bytes = held_bytes(header_size);
    let mut prealloc = 0;
    if buckets != 0 {
        let allocated = sizing::allocated_buckets(b32);
        prealloc = allocated - sizing::bucket_count(b32);
        bytes += sizes.array(allocated);
    }
    // Overflow buckets beyond the preallocated ones are allocated one by one.
    let one = sizes.array(1);
    let mut overflow_bytes = noverflow.saturating_sub(prealloc) * one;
    if oldbuckets != 0 {
        let same_size = flags & 8 != 0;
        let old_b = if same_size {
            b32
        } else {
            b32.saturating_sub(1)
        };
        let old_allocated = sizing::allocated_buckets(old_b);
        bytes += sizes.array(old_allocated);
        // The old array's overflow buckets, which noverflow (reset at the grow) no longer
        // counts: listed in mapextra.oldoverflow when buckets hold no pointers.
        let extra = u64_at(&h, header_size as usize - 8);
        if extra != 0 && !sizes.pointers {
            let oldoverflow = mem.u64(extra + 8)?;
            if oldoverflow != 0 {
                let len = mem.u64(oldoverflow + 8)?;
                let old_prealloc = old_allocated - sizing::bucket_count(old_b);
                overflow_bytes += len.min(1 << 40).saturating_sub(old_prealloc) * one;
            }
        }
    }
    bytes += overflow_bytes;
    Ok(Some(Reading {
        entries: count,
        seed,
        storage_ptr: buckets,
        geometry: u64::from(b),
        storage_bytes: bytes,
        overflow_buckets: noverflow,
        tombstones: 0,
        overflow_bytes,
    }))
}

fn swiss(mem: &impl Memory, addr: u64, sizes: TypeSizes) -> Result<Option<Reading>, ReadError> {
    let group_size = sizes.unit;
    let mut h = [0u8; 40];
    mem.read(addr, &mut h)?;
    let used = u64_at(&h, 0);
    let seed = u64_at(&h, 8);
    let dir_ptr = u64_at(&h, 16);
    let dir_len = u64_at(&h, 24);
    let (global_depth, writing) = (h[32], h[34]);
    let plausible = used < 1 << 56
        && writing <= 1
        && group_size != 0
        && global_depth < 32
        && (dir_len == 0 || (dir_len == 1 << global_depth && dir_ptr != 0))
        && dir_len <= MAX_DIRECTORY
        && (dir_len != 0 || used <= 8);
    if !plausible {
        return Ok(None);
    }
    let mut bytes = held_bytes(48);
    let mut tombstones = 0;
    let mut capacity_sum = 0u64;
    if dir_len == 0 {
        if dir_ptr != 0 {
            bytes += sizes.array(1);
        }
    } else {
        let mut dir = vec![0u8; (dir_len * 8) as usize];
        mem.read(dir_ptr, &mut dir)?;
        // []*table: pointers.
        bytes += object_bytes(dir_len * 8, true, sizes.alloc_headers);
        let mut seen = FxHashSet::default();
        for i in 0..dir_len as usize {
            let t = u64_at(&dir, i * 8);
            if t == 0 {
                return Ok(None);
            }
            if !seen.insert(t) {
                continue;
            }
            let mut tb = [0u8; 32];
            mem.read(t, &mut tb)?;
            let t_used = u64::from(u16::from_le_bytes([tb[0], tb[1]]));
            let capacity = u64::from(u16::from_le_bytes([tb[2], tb[3]]));
            let growth_left = u64::from(u16::from_le_bytes([tb[4], tb[5]]));
            let length_mask = u64_at(&tb, 24);
            if capacity == 0
                || capacity > SWISS_MAX_TABLE_CAPACITY
                || length_mask + 1 != capacity / 8
            {
                return Ok(None);
            }
            bytes += held_bytes(SWISS_TABLE_BYTES) + sizes.array(length_mask + 1);
            capacity_sum += capacity;
            let max_growth = if capacity <= 8 {
                capacity - 1
            } else {
                capacity * 7 / 8
            };
            tombstones += max_growth
                .saturating_sub(growth_left)
                .saturating_sub(t_used);
        }
    }
    if dir_len > 0 && used > capacity_sum {
        return Ok(None);
    }
    Ok(Some(Reading {
        entries: used,
        seed,
        storage_ptr: dir_ptr,
        geometry: dir_len,
        storage_bytes: bytes,
        overflow_buckets: 0,
        tombstones,
        overflow_bytes: 0,
    }))
}

/// Heap bytes `make(map[K]V, entries)` would hold with the same layout: what a map of that
/// many entries needs, built at the right size.
pub fn needed_bytes(
    layout: HeaderLayout,
    sizes: TypeSizes,
    entries: u64,
    load_factor_num: u64,
) -> u64 {
    match layout {
        HeaderLayout::Classic { size } => {
            let header = held_bytes(size);
            if entries == 0 {
                return header;
            }
            // makemap: the smallest B with !overLoadFactor(hint, B).
            let mut b = 0u8;
            while b < 56 && sizing::over_load_factor(entries, b, load_factor_num) {
                b += 1;
            }
            header + sizes.array(sizing::allocated_buckets(u32::from(b)))
        }
        HeaderLayout::Swiss => {
            let header = held_bytes(48);
            if entries == 0 {
                return header;
            }
            if entries <= 8 {
                return header + sizes.array(1);
            }
            // NewMap (internal/runtime/maps/map.go): capacity hint×8/7 split over a
            // power-of-two directory of tables of at most 1024 slots, each a power of two.
            let target = entries * 8 / 7;
            let dir = target
                .div_ceil(SWISS_MAX_TABLE_CAPACITY)
                .next_power_of_two();
            let capacity = (target / dir).max(8).next_power_of_two();
            header
                + object_bytes(dir * 8, true, sizes.alloc_headers)
                + dir * (held_bytes(SWISS_TABLE_BYTES) + sizes.array(capacity / 8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::memory::FakeMemory;

    #[allow(clippy::too_many_arguments)]
    fn hmap(
        mem: &mut FakeMemory,
        addr: u64,
        count: u64,
        b: u8,
        noverflow: u16,
        seed: u32,
        buckets: u64,
        old: u64,
        flags: u8,
    ) {
        let mut h = [0u8; 48];
        h[..8].copy_from_slice(&count.to_le_bytes());
        h[8] = flags;
        h[9] = b;
        h[10..12].copy_from_slice(&noverflow.to_le_bytes());
        h[12..16].copy_from_slice(&seed.to_le_bytes());
        h[16..24].copy_from_slice(&buckets.to_le_bytes());
        h[24..32].copy_from_slice(&old.to_le_bytes());
        mem.put(addr, &h);
    }

    const CLASSIC: HeaderLayout = HeaderLayout::Classic { size: 48 };
    /// map[int]int buckets: 144 bytes, no pointers, a release with allocation headers.
    const BUCKETS: TypeSizes = TypeSizes {
        unit: 144,
        pointers: false,
        alloc_headers: true,
    };

    #[test]
    fn test_classic_storage_counts_buckets_preallocated_overflow_and_old_buckets() {
        let mut mem = FakeMemory::default();
        // map[int]int: 144-byte buckets. B = 5: 32 buckets + 2 preallocated overflow.
        hmap(&mut mem, 0x1000, 200, 5, 3, 77, 0x9000, 0, 0);
        let r = read(&mem, 0x1000, CLASSIC, BUCKETS).unwrap().unwrap();
        assert_eq!(
            (r.entries, r.seed, r.storage_ptr, r.geometry),
            (200, 77, 0x9000, 5)
        );
        // 34 × 144 = 4896 → size class 5376; one overflow bucket beyond the 2: 144.
        assert_eq!(r.storage_bytes, 48 + 5376 + 144);
        assert_eq!(r.overflow_buckets, 3);
        // Growing (doubling from B = 4): old array of 16 + 1 buckets, 2448 → 2688.
        hmap(&mut mem, 0x1000, 200, 5, 0, 77, 0x9000, 0xa000, 0);
        let r = read(&mem, 0x1000, CLASSIC, BUCKETS).unwrap().unwrap();
        assert_eq!(r.storage_bytes, 48 + 5376 + 2688);
        // The old array had 5 overflow buckets (mapextra.oldoverflow), 1 of them preallocated.
        mem.put_u64(0x1000 + 40, 0xb000);
        mem.put_u64(0xb000 + 8, 0xc000);
        mem.put_u64(0xc000 + 8, 5);
        let sizes = BUCKETS;
        let r = read(&mem, 0x1000, CLASSIC, sizes).unwrap().unwrap();
        assert_eq!(r.storage_bytes, 48 + 5376 + 2688 + 4 * 144);
        assert_eq!(r.overflow_bytes, 4 * 144);
        // Buckets with pointers: overflow buckets are not listed; arrays over 512 bytes carry
        // an 8-byte allocation header (4904 → 5376, 2456 → 2688: same classes here).
        let ptr = TypeSizes {
            pointers: true,
            ..sizes
        };
        let r = read(&mem, 0x1000, CLASSIC, ptr).unwrap().unwrap();
        assert_eq!(r.storage_bytes, 48 + 5376 + 2688);
        mem.put_u64(0x1000 + 40, 0);
        // Implausible flags.
        hmap(&mut mem, 0x1000, 200, 5, 0, 77, 0x9000, 0, 0x40);
        assert_eq!(read(&mem, 0x1000, CLASSIC, BUCKETS).unwrap(), None);
    }

    #[test]
    fn test_swiss_storage_counts_directory_distinct_tables_and_tombstones() {
        let mut mem = FakeMemory::default();
        let (map, dir, t0, t1) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
        let mut h = [0u8; 48];
        h[..8].copy_from_slice(&1500u64.to_le_bytes());
        h[8..16].copy_from_slice(&9u64.to_le_bytes());
        h[16..24].copy_from_slice(&dir.to_le_bytes());
        h[24..32].copy_from_slice(&4u64.to_le_bytes());
        h[32] = 2;
        mem.put(map, &h);
        // Four directory entries, two distinct tables (t0 has local depth 1).
        for (i, t) in [t0, t0, t1, t1].iter().enumerate() {
            mem.put_u64(dir + i as u64 * 8, *t);
        }
        let table = |used: u16, cap: u16, left: u16| {
            let mut t = [0u8; 32];
            t[..2].copy_from_slice(&used.to_le_bytes());
            t[2..4].copy_from_slice(&cap.to_le_bytes());
            t[4..6].copy_from_slice(&left.to_le_bytes());
            t[24..32].copy_from_slice(&(u64::from(cap) / 8 - 1).to_le_bytes());
            t
        };
        mem.put(t0, &table(700, 1024, 100)); // 896 − 100 − 700 = 96 tombstones
        mem.put(t1, &table(800, 1024, 96));
        // map[int]int groups: 8 + 8×16 = 136 bytes; 128 groups = 17408 → 18432.
        let r = read(
            &mem,
            map,
            HeaderLayout::Swiss,
            TypeSizes {
                unit: 136,
                pointers: false,
                alloc_headers: true,
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.entries, 1500);
        assert_eq!(r.storage_bytes, 48 + 32 + 2 * (32 + 18432));
        assert_eq!(r.tombstones, 96);
        // A directory length that is not 2^globalDepth.
        mem.put_u64(map + 24, 3);
        assert_eq!(
            read(
                &mem,
                map,
                HeaderLayout::Swiss,
                TypeSizes {
                    unit: 136,
                    pointers: false,
                    alloc_headers: true
                }
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn test_needed_bytes_follows_makemap() {
        // Classic, LF 6.5: 100 entries → B = 4 (104 ≥ 100): 16 + 1 buckets.
        let need = needed_bytes(CLASSIC, BUCKETS, 100, 13);
        assert_eq!(need, 48 + held_bytes(17 * 144));
        assert_eq!(needed_bytes(CLASSIC, BUCKETS, 0, 13), 48);
        assert_eq!(needed_bytes(CLASSIC, BUCKETS, 8, 13), 48 + 144);
        // Swiss: 8 entries fit the small group; 3000 → 3428 slots → 4 tables of 1024 (857→1024).
        let s = TypeSizes {
            unit: 136,
            pointers: false,
            alloc_headers: true,
        };
        assert_eq!(
            needed_bytes(HeaderLayout::Swiss, s, 8, 0),
            48 + held_bytes(136)
        );
        assert_eq!(
            needed_bytes(HeaderLayout::Swiss, s, 3000, 0),
            48 + 32 + 4 * (32 + held_bytes(128 * 136))
        );
    }
}
