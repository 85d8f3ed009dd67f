//! What the Go runtime computes about a map's size: the classic load-factor test, bucket
//! arrays, Swiss-table loads, and the `make` hints that give a map its final size at once.
//! Arithmetic that mirrors `runtime/map.go` (classic) and `internal/runtime/maps` (Swiss); the
//! per-version input, `load_factor_num`, comes from [`Layout`](super::Layout).

/// Buckets of a classic map with `B = b`: 2^b (0 when the shift overflows).
pub fn bucket_count(b: u32) -> u64 {
    1u64.checked_shl(b).unwrap_or(0)
}

/// `overLoadFactor(count, B)`: more than 8 entries and more than `LF * 2^B` (LF = num / 2).
pub fn over_load_factor(count: u64, b: u8, load_factor_num: u64) -> bool {
    let half_buckets = 1u64.checked_shl(u32::from(b)).unwrap_or(u64::MAX) >> 1;
    count > 8 && count > load_factor_num.saturating_mul(half_buckets)
}

/// Whether `hashGrow`, called with `count` entries in 2^`b` buckets, keeps the size: it doubles
/// iff `overLoadFactor(count+1, B)` (the insert that triggered it is not counted yet);
/// otherwise it is a same-size grow (too many overflow buckets).
pub fn is_same_size_grow(count: u64, b: u8, load_factor_num: u64) -> bool {
    !over_load_factor(count.saturating_add(1), b, load_factor_num)
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

/// Classic: the largest `make(map[K]V, hint)` that starts with `buckets` buckets, `LF × buckets`
/// (`load_factor_num` is twice the load factor LF).
pub fn classic_hint(buckets: u64, load_factor_num: u64) -> u64 {
    load_factor_num.saturating_mul(buckets) / 2
}

/// Entries a full-size Swiss table (1024 slots) holds before it splits (7/8 load).
const MAX_TABLE_LOAD: u64 = 896;

/// Swiss: the hint that sizes a directory of `directory_len` full tables.
pub fn swiss_directory_hint(directory_len: u64) -> u64 {
    directory_len.saturating_mul(MAX_TABLE_LOAD)
}

/// Swiss: the hint that sizes one table of `capacity` slots (7/8 load).
pub fn swiss_table_hint(capacity: u64) -> u64 {
    capacity * 7 / 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_hints_fill_the_storage_they_name() {
        // 6.5 entries per bucket × 16 buckets: make(…, 104) starts with B = 4, 105 with B = 5.
        assert_eq!(classic_hint(16, 13), 104);
        assert!(!over_load_factor(104, 4, 13) && over_load_factor(105, 4, 13));
        assert_eq!(swiss_directory_hint(4), 4 * 896);
        assert_eq!(swiss_table_hint(1024), 896);
    }
}
