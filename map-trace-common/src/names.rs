//! Names both sides must spell the same way: BPF maps and eBPF programs.

/// Ring buffer carrying every event record to userspace.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-process layouts (`HashMap<u64, MapLayout>`: tgid, or attach cookie ≥ `COOKIE_BASE`), written by userspace before attaching.
pub const LAYOUTS_MAP: &str = "LAYOUTS";
/// Per-CPU counters, indexed by [`crate::config::Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Per-CPU probe cost per traced executable (agent), `PerCpuHashMap<u64, ExeCost>` keyed by
/// attach cookie; written empty by userspace before attaching.
pub const EXE_COST_MAP: &str = "EXE_COST";

/// Maps found by the discovery probes (`HashMap<DiscoveredKey, Discovered>`): userspace reads
/// and deletes a process's entries when its window ends.
pub const DISCOVERED_MAP: &str = "DISCOVERED";

/// `Array<u32>` of one entry: 1 while the discovery window is open.
pub const DISCOVERING_MAP: &str = "DISCOVERING";

/// `PerCpuHashMap<u64, u64>`: hits per discovery probe, by probed address.
pub const ACCESS_HITS_MAP: &str = "ACCESS_HITS";

/// Every map userspace opens by name.
pub const MAPS: [&str; 7] = [
    EVENTS_MAP,
    LAYOUTS_MAP,
    COUNTERS_MAP,
    EXE_COST_MAP,
    DISCOVERED_MAP,
    DISCOVERING_MAP,
    ACCESS_HITS_MAP,
];

/// Uprobe on the body of `runtime.hashGrow` (classic hash maps, Go 1.18–1.23, `noswissmap`).
pub const PROG_HMAP_HASH_GROW: &str = "hmap_hash_grow";
/// Body uprobe on `internal/runtime/maps.(*Map).growToTable` (Swiss maps, Go 1.24+).
pub const PROG_SWISS_GROW_TO_TABLE: &str = "swiss_grow_to_table";
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
/// Uprobes on the block of `runtime.advanceEvacuationMark` that finishes a classic growth, one
/// program per register that can hold the `*hmap` there (decoded per binary): index `n` reads
/// register `n` of the list in the eBPF side's `go_abi::reg`.
pub const PROG_HMAP_EVACUATED: [&str; EVAC_REGS] = [
    "hmap_evacuated_0",
    "hmap_evacuated_1",
    "hmap_evacuated_2",
    "hmap_evacuated_3",
    "hmap_evacuated_4",
    "hmap_evacuated_5",
    "hmap_evacuated_6",
    "hmap_evacuated_7",
    "hmap_evacuated_8",
    "hmap_evacuated_9",
    "hmap_evacuated_10",
    "hmap_evacuated_11",
    "hmap_evacuated_12",
    "hmap_evacuated_13",
    "hmap_evacuated_14",
    "hmap_evacuated_15",
    "hmap_evacuated_16",
    "hmap_evacuated_17",
    "hmap_evacuated_18",
    "hmap_evacuated_19",
    "hmap_evacuated_20",
    "hmap_evacuated_21",
    "hmap_evacuated_22",
    "hmap_evacuated_23",
    "hmap_evacuated_24",
    "hmap_evacuated_25",
    "hmap_evacuated_26",
];
/// Registers a `hmap_evacuated_N` program exists for: amd64 uses the first 13
/// ([`X86_64_REGS`]), arm64 all 27 (R0–R26).
pub const EVAC_REGS: usize = 27;
/// The amd64 registers `hmap_evacuated_0..13` read, in the eBPF side's `go_abi::reg` order (Go's
/// nine integer argument registers, then the four others the runtime leaves `h` in). The
/// userspace decoder's table (`symbols::flow::X86_REGS`) is checked against it in a unit test,
/// and xtask's build checks the object has a program per register, and no more.
pub const X86_64_REGS: [&str; 13] = [
    "rax", "rbx", "rcx", "rdi", "rsi", "r8", "r9", "r10", "r11", "rdx", "r12", "r13", "r15",
];

/// How many `hmap_evacuated_N` programs the object built for `arch` (`x86_64`, `aarch64`)
/// has.
pub const fn evac_regs(arch: &str) -> usize {
    match arch.as_bytes() {
        b"x86_64" => X86_64_REGS.len(),
        _ => EVAC_REGS,
    }
}

/// Body uprobe on `runtime.fatal` (Go 1.19+; `runtime.throw` in 1.18), where the runtime kills
/// a process that misused a map ("concurrent map writes", …): part of the default probes.
pub const PROG_MAP_FATAL: &str = "map_fatal";

/// Entry uprobe on `internal/runtime/maps.fatal`, the Swiss maps' wrapper of `runtime.fatal`
/// (Go 1.24+), in place of [`PROG_MAP_FATAL`]: taken before the wrapper's stack check, whose
/// trip through `morestack` (a preemption, a stack growth) overwrites every register but the
/// message, so the map function's registers are seen as it left them.
pub const PROG_MAP_FATAL_ENTRY: &str = "map_fatal_entry";

/// Every program userspace loads or attaches by name, except the per-register
/// [`PROG_HMAP_EVACUATED`] (see [`programs_for`]).
pub const PROGRAMS: [&str; 14] = [
    PROG_HMAP_HASH_GROW,
    PROG_SWISS_GROW_TO_TABLE,
    PROG_SWISS_REHASH,
    PROG_SWISS_REHASH_RET,
    PROG_SWISS_GROW_TO_SMALL,
    PROG_SLICE_GROW,
    PROG_SLICE_GROW_RET,
    PROG_SCHED_EXEC,
    PROG_HMAP_EVACUATE,
    PROG_HMAP_EVACUATE_RET,
    PROG_CALIBRATE,
    PROG_MAP_ACCESS,
    PROG_MAP_FATAL,
    PROG_MAP_FATAL_ENTRY,
];

/// Every program name the object built for `arch` must hold.
pub fn programs_for(arch: &str) -> impl Iterator<Item = &'static str> {
    PROGRAMS
        .into_iter()
        .chain(PROG_HMAP_EVACUATED[..evac_regs(arch)].iter().copied())
}
/// Opt-in body uprobe on `runtime.evacuate*` (`--evacuation`).
pub const PROG_HMAP_EVACUATE: &str = "hmap_evacuate";
/// Uprobe on each RET of `runtime.evacuate*`.
pub const PROG_HMAP_EVACUATE_RET: &str = "hmap_evacuate_ret";
/// Uprobe on a function of map-trace itself, hit in a loop at start-up to measure what one probe
/// hit costs on this host.
pub const PROG_CALIBRATE: &str = "calibrate";
/// Body uprobe on each map access function (`runtime.mapaccess1`, `mapassign_fast64`,
/// `mapdelete`, `mapiterinit`, …) during the `--discover` window of a `--pid` attach.
pub const PROG_MAP_ACCESS: &str = "map_access";

/// The Go functions the discovery probes go on, where a binary has them: every map read,
/// write, delete, iteration and `clear` calls one (`len` alone does not). Each takes the map
/// type and the map header as its first two arguments, in every supported release (Swiss
/// builds define them in `internal/runtime/maps` under these linknamed names).
pub const MAP_ACCESS_FUNCTIONS: [&str; 21] = [
    "runtime.mapaccess1",
    "runtime.mapaccess2",
    "runtime.mapaccess1_fast32",
    "runtime.mapaccess2_fast32",
    "runtime.mapaccess1_fast64",
    "runtime.mapaccess2_fast64",
    "runtime.mapaccess1_faststr",
    "runtime.mapaccess2_faststr",
    "runtime.mapassign",
    "runtime.mapassign_fast32",
    "runtime.mapassign_fast32ptr",
    "runtime.mapassign_fast64",
    "runtime.mapassign_fast64ptr",
    "runtime.mapassign_faststr",
    "runtime.mapdelete",
    "runtime.mapdelete_fast32",
    "runtime.mapdelete_fast64",
    "runtime.mapdelete_faststr",
    "runtime.mapiterinit",
    "runtime.mapIterStart",
    "runtime.mapclear",
];
