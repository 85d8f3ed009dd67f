//! Go version → the runtime layout map-trace needs: struct offsets, load factor, probe plan.
//!
//! Offsets are data, one row per range of Go releases, each checked against that release's
//! source and DWARF (`runtime/runtime2.go` for `g`, `runtime/map.go` or `map_noswiss.go` for
//! `hmap`, `internal/abi/type.go` for the map type). The e2e tests verify them at run time.
//! What the runtime computes from them (load factors, bucket arrays, hints) is in [`sizing`].

pub mod heap;
pub mod sizing;

use map_trace_common::config::MapLayout;

use crate::symbols::buildinfo::GoVersion;

/// The releases this build traces, for error messages.
pub const SUPPORTED: &str = "Go 1.18–1.27 (classic hash maps through 1.23 and in 1.24–1.25 \
     GOEXPERIMENT=noswissmap builds; Swiss tables from 1.24)";

/// Why a binary cannot be traced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// Released before the register ABI and the layouts this build knows.
    #[error("unsupported Go version {version}: map-trace supports {SUPPORTED}")]
    TooOld {
        /// As recorded in the binary.
        version: String,
    },
    /// Newer than every layout this build knows.
    #[error("unsupported Go version {version}: map-trace supports {SUPPORTED}")]
    TooNew {
        /// As recorded in the binary.
        version: String,
    },
    /// Neither `runtime.hashGrow` nor the Swiss-table functions are in the binary.
    #[error(
        "{version}: no map growth functions found (runtime.hashGrow or internal/runtime/maps)"
    )]
    NoMapCode {
        /// As recorded in the binary.
        version: String,
    },
}

/// Which map implementation a binary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapImpl {
    /// Hash buckets with incremental evacuation (`runtime/map.go`).
    Classic,
    /// Swiss tables (`internal/runtime/maps`, Go 1.24+ default).
    Swiss,
}

impl MapImpl {
    /// Every implementation, for parsing names.
    pub const ALL: [MapImpl; 2] = [MapImpl::Classic, MapImpl::Swiss];

    /// Name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            MapImpl::Classic => "classic",
            MapImpl::Swiss => "swiss",
        }
    }
}

/// Everything version-specific about one executable's maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Which implementation.
    pub map_impl: MapImpl,
    /// Offsets handed to the eBPF side.
    pub offsets: MapLayout,
    /// Classic maps: `loadFactorNum` with `loadFactorDen == 2`: 12 in Go 1.21 (6.0 per bucket),
    /// 13 elsewhere. Unused for Swiss maps.
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

/// Fails for releases outside the range this build has layouts for.
pub fn check_range(version: &GoVersion) -> Result<(), LayoutError> {
    if version.major != 1 || version.minor < 18 {
        return Err(LayoutError::TooOld {
            version: version.raw.clone(),
        });
    }
    if version.minor > 27 {
        return Err(LayoutError::TooNew {
            version: version.raw.clone(),
        });
    }
    Ok(())
}

/// Picks the layout for `version`. `has_hash_grow`: the binary contains `runtime.hashGrow`
/// (classic maps compiled in); `has_swiss`: it contains `internal/runtime/maps` growth code.
pub fn layout(
    version: &GoVersion,
    has_hash_grow: bool,
    has_swiss: bool,
) -> Result<Layout, LayoutError> {
    let v = || version.raw.clone();
    check_range(version)?;
    let mut offsets = MapLayout {
        g_goid: goid_offset(version.minor),
        // maptype (runtime.maptype / abi.MapType / abi.OldMapType / abi.SwissMapType): Type is
        // 48 bytes, then Key +48, Elem +56 in every version.
        maptype_key: 48,
        maptype_elem: 56,
        type_size: 0,
        // growslice(et, old slice, cap) until 1.19; (oldPtr, newLen, oldCap, num, et) from 1.20.
        growslice_abi: u32::from(version.minor < 20),
        ..MapLayout::default()
    };
    let classic = has_hash_grow && version.minor <= 25;
    if classic {
        // hmap: count +0, flags +8, B +9, noverflow +10 in every classic version (1.24/1.25
        // noswiss add clearSeq at +40, after these fields). BucketSize u16 at maptype +82.
        offsets.hmap_count = 0;
        offsets.hmap_flags = 8;
        offsets.hmap_b = 9;
        offsets.hmap_noverflow = 10;
        offsets.maptype_bucket_size = 82;
        // map.go: loadFactorNum = (bucketCnt*13/16)*2 == 12 in 1.21 only (integer division);
        // 2*bucketCnt*13/16 == 13 before and after.
        let load_factor_num = if version.minor == 21 { 12 } else { 13 };
        return Ok(Layout {
            map_impl: MapImpl::Classic,
            offsets,
            load_factor_num,
        });
    }
    if has_swiss && version.minor >= 24 {
        // maps.Map: used +0, seed +8, dirPtr +16, dirLen +24 (1.24–1.27).
        // maps.table: used u16 +0, capacity u16 +2, growthLeft u16 +4, localDepth u8 +6.
        offsets.swiss_map_used = 0;
        offsets.swiss_map_dir_ptr = 16;
        offsets.swiss_map_dir_len = 24;
        offsets.swiss_table_used = 0;
        offsets.swiss_table_capacity = 2;
        offsets.swiss_table_local_depth = 6;
        return Ok(Layout {
            map_impl: MapImpl::Swiss,
            offsets,
            load_factor_num: 0,
        });
    }
    Err(LayoutError::NoMapCode { version: v() })
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
            assert_eq!(
                layout(&v(s), true, false).unwrap().offsets.g_goid,
                goid,
                "{s}"
            );
        }
    }

    /// The eBPF side reads the hmap header in one 16-byte read from `count`, and the key and
    /// element type pointers in one 16-byte read: the offsets must keep that shape.
    #[test]
    fn test_classic_offsets_fit_the_ebpf_block_reads() {
        for s in [
            "go1.18.1",
            "go1.21.13",
            "go1.23.9",
            "go1.24.11 X:noswissmap",
            "go1.25.5 X:noswissmap",
        ] {
            let o = layout(&v(s), true, false).unwrap().offsets;
            assert_eq!(o.hmap_count % 8, 0);
            for f in [o.hmap_flags, o.hmap_b, o.hmap_noverflow + 1] {
                assert!(f >= o.hmap_count && f - o.hmap_count < 16, "{s}");
            }
            assert_eq!(o.maptype_elem, o.maptype_key + 8, "{s}");
        }
    }

    #[test]
    fn test_classic_load_factor_go121_differs() {
        assert_eq!(
            layout(&v("go1.21.13"), true, false)
                .unwrap()
                .load_factor_num,
            12
        );
        assert_eq!(
            layout(&v("go1.22.10"), true, false)
                .unwrap()
                .load_factor_num,
            13
        );
        assert_eq!(
            layout(&v("go1.19.8"), true, false).unwrap().load_factor_num,
            13
        );
    }

    #[test]
    fn test_layout_picks_implementation() {
        let l = layout(&v("go1.24.11 X:noswissmap"), true, false).unwrap();
        assert_eq!(l.map_impl, MapImpl::Classic);
        let l = layout(&v("go1.24.11"), false, true).unwrap();
        assert_eq!((l.map_impl, l.offsets.g_goid), (MapImpl::Swiss, 160));
        let l = layout(&v("go1.27.3"), false, true).unwrap();
        assert_eq!(
            (l.map_impl, l.offsets.g_goid, l.offsets.swiss_map_dir_len),
            (MapImpl::Swiss, 152, 24)
        );
    }

    #[test]
    fn test_layout_rejects_unsupported() {
        assert!(matches!(
            layout(&v("go1.17.13"), true, false),
            Err(LayoutError::TooOld { .. })
        ));
        assert!(matches!(
            layout(&v("go1.31.0"), false, true),
            Err(LayoutError::TooNew { .. })
        ));
        assert!(matches!(
            layout(&v("go1.23.9"), false, false),
            Err(LayoutError::NoMapCode { .. })
        ));
        let msg = layout(&v("go1.31.0"), false, true).unwrap_err().to_string();
        assert!(msg.contains("go1.31.0") && msg.contains("1.18"), "{msg}");
    }
}
