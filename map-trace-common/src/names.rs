//! Names both sides must spell the same way: BPF maps and eBPF programs.

/// Ring buffer carrying every event record to userspace.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-process layouts (`HashMap<u32 tgid, MapLayout>`), written by userspace before attaching.
pub const LAYOUTS_MAP: &str = "LAYOUTS";
/// Per-CPU counters, indexed by [`crate::config::Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";

/// Uprobe on the body of `runtime.hashGrow` (classic hash maps, Go 1.18–1.23, `noswissmap`).
pub const PROG_HMAP_HASH_GROW: &str = "hmap_hash_grow";
