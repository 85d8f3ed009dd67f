//! Names both sides must spell the same way: BPF maps and eBPF programs.

/// Ring buffer carrying every event record to userspace.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-process layouts (`HashMap<u64, MapLayout>`: tgid, or attach cookie ≥ `COOKIE_BASE`), written by userspace before attaching.
pub const LAYOUTS_MAP: &str = "LAYOUTS";
/// Per-CPU counters, indexed by [`crate::config::Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";

/// Uprobe on the body of `runtime.hashGrow` (classic hash maps, Go 1.18–1.23, `noswissmap`).
pub const PROG_HMAP_HASH_GROW: &str = "hmap_hash_grow";
/// Body uprobe on `internal/runtime/maps.(*Map).growToTable` (Swiss maps, Go 1.24+).
pub const PROG_SWISS_GROW_TO_TABLE: &str = "swiss_grow_to_table";
/// Uprobe on each RET of `growToTable`.
pub const PROG_SWISS_GROW_TO_TABLE_RET: &str = "swiss_grow_to_table_ret";
/// Body uprobe on `(*table).rehash` (or on `grow` and `split` when `rehash` is inlined).
pub const PROG_SWISS_REHASH: &str = "swiss_rehash";
/// Uprobe on each RET of the function `swiss_rehash` is attached to.
pub const PROG_SWISS_REHASH_RET: &str = "swiss_rehash_ret";
/// Opt-in body uprobe on `(*Map).growToSmall` (`--small-maps`).
pub const PROG_SWISS_GROW_TO_SMALL: &str = "swiss_grow_to_small";
/// Opt-in body uprobe on `runtime.growslice` (`--slices`).
pub const PROG_SLICE_GROW: &str = "slice_grow";
/// Uprobe on each RET of `runtime.growslice`.
pub const PROG_SLICE_GROW_RET: &str = "slice_grow_ret";
/// Tracepoint program on `sched/sched_process_exec` (agent mode: new processes).
pub const PROG_SCHED_EXEC: &str = "sched_exec";
/// Uprobe on the block of `runtime.advanceEvacuationMark` that finishes a classic growth.
pub const PROG_HMAP_EVACUATED: &str = "hmap_evacuated";
/// Opt-in body uprobe on `runtime.evacuate*` (`--evacuation`).
pub const PROG_HMAP_EVACUATE: &str = "hmap_evacuate";
/// Uprobe on each RET of `runtime.evacuate*`.
pub const PROG_HMAP_EVACUATE_RET: &str = "hmap_evacuate_ret";
