//! Settings userspace hands to the eBPF programs through BPF maps.

/// Field offsets of the Go runtime structures one traced process uses.
///
/// Stored in the `LAYOUTS` map keyed by the process's tgid (CLI: probes attached for one process)
/// or by the probe's attach cookie (agent: one id per executable file, probes for every process),
/// so one loaded object serves processes built with different Go versions. All offsets are in bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapLayout {
    /// Offset of `goid` (u64) in `runtime.g`.
    pub g_goid: u32,
    /// Offset of `count` (int) in `runtime.hmap`.
    pub hmap_count: u32,
    /// Offset of `flags` (u8) in `runtime.hmap`.
    pub hmap_flags: u32,
    /// Offset of `B` (u8, log2 of the bucket count) in `runtime.hmap`.
    pub hmap_b: u32,
    /// Offset of `noverflow` (u16) in `runtime.hmap`.
    pub hmap_noverflow: u32,
    /// Offset of the key `*_type` in the map type descriptor.
    pub maptype_key: u32,
    /// Offset of the element `*_type` in the map type descriptor.
    pub maptype_elem: u32,
    /// Offset of `BucketSize` (u16) in the map type descriptor.
    pub maptype_bucket_size: u32,
    /// Offset of `Size_` (uintptr) in `abi.Type`.
    pub type_size: u32,
    /// Offset of `used` (u64) in `maps.Map` (Swiss).
    pub swiss_map_used: u32,
    /// Offset of `dirPtr` in `maps.Map`.
    pub swiss_map_dir_ptr: u32,
    /// Offset of `dirLen` (int) in `maps.Map`.
    pub swiss_map_dir_len: u32,
    /// Offset of `used` (u16) in `maps.table`.
    pub swiss_table_used: u32,
    /// Offset of `capacity` (u16) in `maps.table`.
    pub swiss_table_capacity: u32,
    /// Offset of `localDepth` (u8) in `maps.table`.
    pub swiss_table_local_depth: u32,
    /// `runtime.growslice`'s signature: 0 = Go 1.20+ `(oldPtr, newLen, oldCap, num, et)`,
    /// 1 = Go 1.18/1.19 `(et, old slice, cap)`.
    pub growslice_abi: u32,
    /// `LAYOUT_*` bits: what the programs do for this process, changed while attached.
    pub flags: u32,
}

/// [`MapLayout::flags`]: Swiss `rehash` body probes leave the event to the RET probes, which
/// time the resize. Cleared (before those probes are detached) when `--max-overhead` sheds
/// the timing: the body probes then send the event themselves, untimed.
pub const LAYOUT_TIMED_RESIZES: u32 = 1;

#[cfg(feature = "user")]
// SAFETY: MapLayout is repr(C), made of u32 only, with no implicit padding.
unsafe impl aya::Pod for MapLayout {}

const _: () = assert!(core::mem::size_of::<MapLayout>() == 68);

/// Indexes into the per-CPU `COUNTERS` array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Events the ring buffer had no room for (`bpf_ringbuf_reserve` failed).
    Lost = 0,
    /// Hits of the `hashGrow` probe from traced processes.
    HitsHashGrow = 1,
    /// Hits from processes with no layout (not ours, or not configured yet): ignored.
    HitsUnconfigured = 2,
    /// Reads of target memory that failed (the event was still sent, with zeroes).
    ReadErrors = 3,
    /// Hits of the Swiss `growToTable` body probe.
    HitsGrowToTable = 4,
    /// Hits of the Swiss `rehash` (or `grow`/`split`) body probe.
    HitsRehash = 5,
    /// Hits of the Swiss return probes.
    HitsSwissRet = 6,
    /// Return probes with no matching entry (attached mid-call): ignored.
    UnmatchedRet = 7,
    /// Hits of the opt-in Swiss `growToSmall` probe (`--small-maps`).
    HitsGrowToSmall = 8,
    /// `execve` notifications the agent's ring buffer had no room for.
    LostExec = 9,
    /// Hits of the opt-in `growslice` body probe (`--slices`).
    HitsGrowslice = 10,
    /// Hits of the `growslice` return probes.
    HitsGrowsliceRet = 11,
    /// Hits of the `map_evacuated` block probe in `advanceEvacuationMark` (one per finished
    /// classic-map growth).
    HitsEvacuated = 12,
    /// Hits of the opt-in `evacuate*` body probes (`--evacuation`).
    HitsEvacuate = 13,
    /// Hits of the `evacuate*` return probes.
    HitsEvacuateRet = 14,
    /// Hits of the start-up calibration probe on map-trace's own code (the cost of one hit on
    /// this host).
    Calibration = 15,
    /// Nanoseconds spent in the handlers of each probe family (the part of a hit's cost that
    /// the calibration probe's empty handler does not have: reads of target memory, the stack
    /// walk, the ring buffer).
    NsMaps = 16,
    /// See [`Counter::NsMaps`].
    NsGrowthEnds = 17,
    /// See [`Counter::NsMaps`].
    NsTimedResizes = 18,
    /// See [`Counter::NsMaps`].
    NsEvacuation = 19,
    /// See [`Counter::NsMaps`].
    NsSlices = 20,
    /// See [`Counter::NsMaps`].
    NsSmallMaps = 21,
    /// See [`Counter::NsMaps`] (the `--discover` window's probes).
    NsDiscovery = 22,
    /// See [`Counter::NsMaps`] (the probe on the runtime's fatal-error path).
    NsFatal = 23,
    /// Hits of the discovery probes on the map access functions (`--discover`, `--pid` only).
    HitsMapAccess = 24,
    /// Maps the discovery probes added to the `DISCOVERED` table (an LRU table: userspace
    /// counts those it no longer finds there as evicted).
    DiscoveryNew = 25,
    /// Hits of the probe on the runtime's fatal-error path (`runtime.fatal`; `runtime.throw`
    /// in Go 1.18; the Swiss wrapper `internal/runtime/maps.fatal`): once per goroutine that
    /// reached it, so once or twice per crash, never otherwise. A goroutine sent back to the
    /// wrapper's entry by its stack check is not counted again.
    HitsFatal = 26,
}

/// How a hit counter's probe is named to people: in summaries, and in the agent's
/// `map_trace_probe_hits_total{probe=…}` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HitName {
    /// The Go function (or probes) in the summary's hit counts.
    pub summary: &'static str,
    /// The metric label value.
    pub label: &'static str,
}

impl Counter {
    /// The names of a hit counter's probe; `None` for counters that are not probe hits.
    pub const fn hit_name(self) -> Option<HitName> {
        let (summary, label) = match self {
            Counter::HitsHashGrow => ("runtime.hashGrow", "hash_grow"),
            Counter::HitsGrowToTable => ("maps.(*Map).growToTable", "grow_to_table"),
            Counter::HitsRehash => ("maps.(*table).rehash", "rehash"),
            Counter::HitsSwissRet => ("return probes", "swiss_return"),
            Counter::HitsUnconfigured => ("probes of processes not traced", "unconfigured"),
            Counter::HitsGrowToSmall => ("maps.(*Map).growToSmall", "grow_to_small"),
            Counter::HitsGrowslice => ("runtime.growslice", "growslice"),
            Counter::HitsGrowsliceRet => ("runtime.growslice return probes", "growslice_return"),
            Counter::HitsEvacuated => (
                "runtime.advanceEvacuationMark (growth finished)",
                "growth_finished",
            ),
            Counter::HitsEvacuate => ("runtime.evacuate*", "evacuate"),
            Counter::HitsEvacuateRet => ("runtime.evacuate* return probes", "evacuate_return"),
            Counter::Calibration => ("map-trace's calibration probe", "calibration"),
            Counter::HitsMapAccess => (
                "runtime.map{access,assign,delete,…} (discovery)",
                "map_access",
            ),
            Counter::HitsFatal => ("runtime.fatal (the crash path)", "fatal"),
            _ => return None,
        };
        Some(HitName { summary, label })
    }
}

/// Probe families the eBPF side times, in the order of their `Ns*` counters
/// ([`Counter::NsMaps`] first).
pub const TIMED_FAMILIES: usize = 8;

/// What one executable's probes cost (agent mode, `EXE_COST` map, per CPU): hits and handler
/// nanoseconds per family, indexed as the `Ns*` counters from [`Counter::NsMaps`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExeCost {
    /// Program runs (hits) per family.
    pub hits: [u64; TIMED_FAMILIES],
    /// Nanoseconds in the handlers per family.
    pub ns: [u64; TIMED_FAMILIES],
}

#[cfg(feature = "user")]
// SAFETY: ExeCost is repr(C), made of u64 only, with no padding.
unsafe impl aya::Pod for ExeCost {}

impl core::ops::AddAssign for ExeCost {
    fn add_assign(&mut self, o: Self) {
        for i in 0..TIMED_FAMILIES {
            self.hits[i] = self.hits[i].wrapping_add(o.hits[i]);
            self.ns[i] = self.ns[i].wrapping_add(o.ns[i]);
        }
    }
}

/// `LAYOUTS` keys at or above this are attach cookies (executable ids), below it tgids.
pub const COOKIE_BASE: u64 = 1 << 32;

/// Number of slots in the `COUNTERS` array.
pub const COUNTER_SLOTS: u32 = 27;
