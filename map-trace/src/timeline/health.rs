//! What a map holds now: the samples of its header (see [`crate::heap`]), its peak, and the
//! "kept after deletes" finding (storage far above what its entries need, for several samples
//! in a row: Go never shrinks a map, golang/go#20135).

use std::sync::Arc;

use super::Origin;

/// One live map's state at a sample (also a recording's `samples` entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// `len(m)`.
    pub entries: u64,
    /// Heap bytes held: header, bucket arrays (old ones too while growing) or directory and
    /// tables, rounded to malloc size classes.
    pub storage_bytes: u64,
    /// `storage_bytes` minus what `make(map[K]V, entries)` would hold (hash-bucket maps:
    /// overflow buckets beyond the preallocated ones left out, which a map built at the right
    /// size gets too).
    pub retained_bytes: u64,
    /// Hash-bucket maps: overflow buckets (`noverflow`).
    pub overflow_buckets: u64,
    /// Swiss maps: deleted slots not yet reused.
    pub tombstones: u64,
    /// The program emptied the map since the last sample (the runtime gave it a new seed).
    pub reseeded: bool,
}

/// What a sample of one map found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Live, holding this.
    Live(Health),
    /// Freed by the GC (its slot is free, or another object's now).
    Freed,
    /// Not a heap object (a header on a goroutine stack): never reported.
    NotHeap,
    /// Not readable this time.
    Unreadable,
}

/// When a map is "kept after deletes": `storage ≥ ratio × need`, `storage ≥ min_bytes`, for
/// `samples` samples in a row (`--kept-ratio`, `--kept-min-bytes`, `--kept-samples`), raised
/// at the first such sample that has no fewer entries than the one before (a map still being
/// emptied is reported once the deletes stop).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeptRule {
    /// Storage over need.
    pub ratio: u64,
    /// Least storage, bytes.
    pub min_bytes: u64,
    /// Consecutive samples.
    pub samples: u32,
}

impl Default for KeptRule {
    fn default() -> Self {
        Self {
            ratio: 4,
            min_bytes: 1 << 20,
            samples: 3,
        }
    }
}

impl KeptRule {
    /// The defaults (4×, 1 MiB, 3 samples).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Whether one sample meets the rule's size conditions.
    pub fn holds(&self, h: &Health) -> bool {
        let need = h.storage_bytes.saturating_sub(h.retained_bytes);
        h.storage_bytes >= self.min_bytes && h.storage_bytes >= need.saturating_mul(self.ratio)
    }
}

/// A map's samples so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthSummary {
    /// The last live sample.
    pub last: Health,
    /// Unix ns of that sample.
    pub last_ns: u64,
    /// Most entries seen, at grows and samples.
    pub peak_entries: u64,
    /// Live samples taken.
    pub samples: u64,
    /// Consecutive samples meeting the kept rule.
    pub kept_streak: u32,
    /// When the map was first found kept after deletes (Unix ns).
    pub kept_since_ns: Option<u64>,
    /// When a sample found it freed (Unix ns).
    pub freed_ns: Option<u64>,
    /// Its header is no heap object (a goroutine stack's): never reported, never sampled again.
    pub not_heap: bool,
}

/// One sample as the outputs get it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSample {
    /// Unix ns.
    pub time_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Header address.
    pub map: u64,
    /// The map's Go type.
    pub type_name: Option<Arc<str>>,
    /// Where its first grow was called from.
    pub origin: Option<Arc<Origin>>,
    /// Hash-bucket (false) or Swiss (true).
    pub swiss: bool,
    /// What it holds.
    pub health: Health,
    /// Most entries seen.
    pub peak_entries: u64,
    /// This sample completed the kept rule: the "kept after deletes" finding is raised now.
    pub kept_raised: bool,
    /// Found by `--discover`: `origin` is where it was accessed, not where it grew.
    pub discovered: bool,
}

/// A sampled map the GC freed, as the outputs get it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapFreed {
    /// Unix ns of the sample that found it.
    pub time_ns: u64,
    /// Header address.
    pub map: u64,
    /// The map's Go type.
    pub type_name: Option<Arc<str>>,
    /// Where its first grow was called from.
    pub origin: Option<Arc<Origin>>,
}

/// [`SamplingReport::note`] when the user turned sampling off: not a problem, so the text
/// summary does not repeat it.
pub const OFF_BY_FLAG: &str = "--no-sampling";

/// A map a `--discover` probe saw in its window, interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// Unix ns of its first access in the window.
    pub time_ns: u64,
    /// Header address.
    pub map: u64,
    /// Map type descriptor.
    pub maptype: u64,
    /// The callers of the access function (return addresses, innermost first).
    pub stack: map_trace_common::event::Stack,
    /// A Swiss map (the binary's map implementation).
    pub swiss: bool,
}

/// What the `--discover` window did, for the summary: how long its probes were attached, what
/// they saw, and what became of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiscoveryReport {
    /// Milliseconds the probes were attached.
    pub window_ms: u64,
    /// Map access functions probed.
    pub functions: u64,
    /// Probe hits (map accesses seen).
    pub hits: u64,
    /// Distinct maps the probes recorded.
    pub seen: u64,
    /// Of them, forgotten by the table before it was read (it holds
    /// `probes::DISCOVERED_ENTRIES`, least recently accessed out first).
    pub evicted: u64,
    /// Read from the table but already tracked (seen growing).
    pub already_tracked: u64,
    /// Not a live heap map at the first sample (a map on a goroutine stack, freed since, or
    /// unreadable).
    pub not_live: u64,
    /// Live heap maps left out: more than `--max-sampled-maps`, the smallest storage out first.
    pub over_cap: u64,
    /// Added to the tracked maps.
    pub added: u64,
    /// Why the window closed: `window` (its length), `budget` (`--max-overhead` shed it),
    /// `stopped` (tracing ended first).
    pub ended: String,
}

/// What map sampling did in a run, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SamplingReport {
    /// Sampling ran (false: `--no-sampling`, or it could not; `note` says why).
    pub enabled: bool,
    /// Why it did not run, or stopped (refused reads, an unverified Go release, no `mheap_`).
    pub note: Option<String>,
    /// Rounds taken.
    pub rounds: u64,
    /// Map samples taken (live, freed or unreadable).
    pub samples: u64,
    /// Rounds that had more candidates than `--max-sampled-maps`.
    pub rounds_capped: u64,
    /// Of the samples: found freed, found not a heap map (on a stack, or never a map), and
    /// unreadable (the rest were live).
    pub freed: u64,
    /// See `freed`.
    pub not_heap: u64,
    /// See `freed`.
    pub unreadable: u64,
    /// The kept-after-deletes rule in force.
    pub rule: KeptRule,
    /// The `--discover` window, when one ran.
    pub discovery: Option<DiscoveryReport>,
}
