//! Go version → the runtime layout map-trace needs: struct offsets, load factor, probe plan.
//!
//! Offsets are data, one row per range of Go releases, each checked against that release's
//! source and DWARF (`runtime/runtime2.go` for `g`, `runtime/map.go` or `map_noswiss.go` for
//! `hmap`, `internal/abi/type.go` for the map type). The e2e tests verify them at run time.

use map_trace_common::config::MapLayout;

use crate::symbols::buildinfo::GoVersion;

/// Oldest and newest Go minor releases whose classic maps this build traces.
pub const SUPPORTED: &str = "Go 1.18–1.23, and 1.24–1.25 built with GOEXPERIMENT=noswissmap";

/// Why a binary cannot be traced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// Released before the register ABI and the layouts this build knows.
    #[error("unsupported Go version {version}: map-trace supports {SUPPORTED}")]
    TooOld {
        /// As recorded in the binary.
        version: String,
    },
    /// Swiss-table maps (Go 1.24+ default) are not traced by this build.
    #[error(
        "unsupported Go version {version}: it uses Swiss-table maps, which this build does not \
         trace yet; map-trace supports {SUPPORTED}"
    )]
    Swiss {
        /// As recorded in the binary.
        version: String,
    },
    /// Newer than every layout this build knows.
    #[error("unsupported Go version {version}: map-trace supports {SUPPORTED}")]
    TooNew {
        /// As recorded in the binary.
        version: String,
    },
}

/// Everything version-specific about one executable's classic maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassicLayout {
    /// Offsets handed to the eBPF side.
    pub offsets: MapLayout,
    /// `loadFactorNum` with `loadFactorDen == 2`: 12 in Go 1.21 (6.0 per bucket), 13 elsewhere.
    pub load_factor_num: u64,
}

/// Offset of `g.goid`: 152, moved to 160 in 1.23/1.24 (`syscallbp`), back to 152 in 1.25
/// (`gobuf.ret` removed).
fn goid_offset(minor: u32) -> u32 {
    match minor {
        23 | 24 => 160,
        _ => 152,
    }
}

/// Picks the classic-map layout for `version`. `has_hash_grow` says whether the binary contains
/// `runtime.hashGrow` (classic maps compiled in).
pub fn classic(version: &GoVersion, has_hash_grow: bool) -> Result<ClassicLayout, LayoutError> {
    let v = || version.raw.clone();
    if version.major != 1 || version.minor < 18 {
        return Err(LayoutError::TooOld { version: v() });
    }
    if version.minor > 27 {
        return Err(LayoutError::TooNew { version: v() });
    }
    if version.minor >= 24 && !(has_hash_grow && version.minor <= 25) {
        return Err(LayoutError::Swiss { version: v() });
    }
    let offsets = MapLayout {
        g_goid: goid_offset(version.minor),
        // hmap: count +0, flags +8, B +9, noverflow +10 in every classic version
        // (1.24/1.25 noswiss add clearSeq at +40, after these fields).
        hmap_count: 0,
        hmap_flags: 8,
        hmap_b: 9,
        hmap_noverflow: 10,
        // maptype (runtime.maptype / abi.MapType / abi.OldMapType): Type is 48 bytes, then
        // Key +48, Elem +56, Bucket +64, Hasher +72, KeySize +80, ValueSize +81, BucketSize +82.
        maptype_key: 48,
        maptype_elem: 56,
        maptype_bucket_size: 82,
        type_size: 0,
        _pad: 0,
    };
    // map.go: loadFactorNum = (bucketCnt*13/16)*2 == 12 in 1.21 only (integer division);
    // 2*bucketCnt*13/16 == 13 before and after.
    let load_factor_num = if version.minor == 21 { 12 } else { 13 };
    Ok(ClassicLayout {
        offsets,
        load_factor_num,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> GoVersion {
        GoVersion::parse(s, "").unwrap()
    }

    #[test]
    fn test_classic_goid_offsets_per_version() {
        let cases = [
            ("go1.18.10", 152),
            ("go1.21.13", 152),
            ("go1.22.10", 152),
            ("go1.23.9", 160),
            ("go1.24.11 X:noswissmap", 160),
            ("go1.25.5 X:noswissmap", 152),
        ];
        for (s, goid) in cases {
            assert_eq!(classic(&v(s), true).unwrap().offsets.g_goid, goid, "{s}");
        }
    }

    #[test]
    fn test_classic_load_factor_go121_differs() {
        assert_eq!(classic(&v("go1.21.13"), true).unwrap().load_factor_num, 12);
        assert_eq!(classic(&v("go1.22.10"), true).unwrap().load_factor_num, 13);
        assert_eq!(classic(&v("go1.19.8"), true).unwrap().load_factor_num, 13);
    }

    #[test]
    fn test_classic_rejects_unsupported() {
        assert!(matches!(
            classic(&v("go1.17.13"), true),
            Err(LayoutError::TooOld { .. })
        ));
        assert!(matches!(
            classic(&v("go1.24.11"), false),
            Err(LayoutError::Swiss { .. })
        ));
        assert!(matches!(
            classic(&v("go1.26.6"), true),
            Err(LayoutError::Swiss { .. })
        ));
        assert!(matches!(
            classic(&v("go1.31.0"), true),
            Err(LayoutError::TooNew { .. })
        ));
        let msg = classic(&v("go1.26.6"), false).unwrap_err().to_string();
        assert!(msg.contains("go1.26.6") && msg.contains("1.18"), "{msg}");
    }
}
