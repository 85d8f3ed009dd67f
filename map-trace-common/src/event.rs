//! Event records written to the `EVENTS` ring buffer.
//!
//! Every record starts with an [`EventHeader`]; its `kind` says which payload follows. Userspace
//! checks the kind with [`EventKind::try_from`] and never transmutes bytes into an enum.

/// Header shared by every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    /// Thread id (kernel pid of the thread) that hit the probe.
    pub tid: u32,
    /// Process id (kernel tgid).
    pub pid: u32,
    /// Executable id: the attach cookie of the probe that fired (agent mode, one id per traced
    /// executable file), or 0 when probes are attached for one process (CLI).
    pub exe: u32,
    /// Goroutine id read from the current `g` (R14 on amd64, R28 on arm64).
    pub goid: u64,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
}

const _: () = assert!(core::mem::size_of::<EventHeader>() == 32);

/// What a record holds.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A [`MapGrowEvent`]: `runtime.hashGrow` started a classic-map growth.
    MapGrow = 1,
    /// A [`SwissEvent`]: a small Swiss map (one 8-slot group) became a table (`growToTable`).
    MapSmallToTable = 2,
    /// A [`SwissEvent`]: one Swiss table was rebuilt at twice its capacity (`rehash` → `grow`).
    MapTableGrow = 3,
    /// A [`SwissEvent`]: one full Swiss table was split in two (`rehash` → `split`).
    MapTableSplit = 4,
    /// A [`SwissEvent`]: a map's first insert allocated its first 8-slot group
    /// (`growToSmall`; only with `--small-maps`).
    MapSmallAlloc = 5,
    /// A bare [`EventHeader`]: process `pid` called `execve` (agent mode only;
    /// `sched/sched_process_exec` tracepoint). `goid` and `exe` are zero.
    Exec = 6,
    /// A [`SliceEvent`]: `runtime.growslice` gave a slice a new backing array (`--slices`).
    SliceGrow = 7,
    /// A [`MapEvacuatedEvent`]: a classic map's growth finished (`advanceEvacuationMark` freed
    /// the old buckets).
    MapEvacuated = 8,
    /// A [`EvacuateStepEvent`]: one `evacuate` call moved one old bucket (`--evacuation`).
    MapEvacuateStep = 9,
    /// A [`MapFatalEvent`]: a goroutine entered the runtime's fatal-error path (the process is
    /// about to die); userspace keeps the map misuse messages.
    MapFatal = 10,
}

/// A record kind this build does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownKind(pub u32);

impl TryFrom<u32> for EventKind {
    type Error = UnknownKind;
    fn try_from(v: u32) -> Result<Self, UnknownKind> {
        match v {
            1 => Ok(EventKind::MapGrow),
            2 => Ok(EventKind::MapSmallToTable),
            3 => Ok(EventKind::MapTableGrow),
            4 => Ok(EventKind::MapTableSplit),
            5 => Ok(EventKind::MapSmallAlloc),
            6 => Ok(EventKind::Exec),
            7 => Ok(EventKind::SliceGrow),
            8 => Ok(EventKind::MapEvacuated),
            9 => Ok(EventKind::MapEvacuateStep),
            10 => Ok(EventKind::MapFatal),
            other => Err(UnknownKind(other)),
        }
    }
}

/// Most return addresses a [`Stack`] holds (`--stack-depth` at most).
pub const MAX_STACK_FRAMES: usize = 64;

/// Return addresses read by default (`--stack-depth`; the agent's default is
/// [`AGENT_STACK_DEPTH`]).
pub const DEFAULT_STACK_DEPTH: u32 = 16;

/// The agent's default `--stack-depth`: its sites need the first user frame only.
pub const AGENT_STACK_DEPTH: u32 = 12;

/// Return addresses a discovery table entry keeps (32,768 entries in kernel memory).
pub const DISCOVERY_FRAMES: usize = 16;

/// The goroutine's return addresses at a probe, innermost first, from Go's frame-pointer chain
/// (amd64 and arm64 both keep `[fp]` = caller's fp, `[fp+8]` = return address). Addresses are
/// the process's virtual addresses; userspace symbolizes them with `.gopclntab`.
///
/// A record whose stack is its last field is sent cut after `pcs[depth - 1]` (see
/// [`stack_record_len`]): the ring holds only the addresses read.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stack<const N: usize = MAX_STACK_FRAMES> {
    /// How many of `pcs` are valid.
    pub depth: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
    /// Return addresses; `pcs[0]` returns into the probed function's caller.
    pub pcs: [u64; N],
}

const _: () = assert!(core::mem::size_of::<Stack>() == 8 + 8 * MAX_STACK_FRAMES);

impl<const N: usize> Default for Stack<N> {
    fn default() -> Self {
        Self {
            depth: 0,
            _pad: 0,
            pcs: [0; N],
        }
    }
}

impl<const N: usize> Stack<N> {
    /// The valid return addresses (`depth` of them, at most `N`).
    pub fn frames(&self) -> &[u64] {
        &self.pcs[..(self.depth as usize).min(N)]
    }

    /// The same addresses in a full-size stack.
    pub fn widen(&self) -> Stack {
        let mut s = Stack::default();
        let f = self.frames();
        let n = f.len().min(MAX_STACK_FRAMES);
        s.pcs[..n].copy_from_slice(&f[..n]);
        s.depth = n as u32;
        s
    }
}

/// Bytes of a record of type `T` (whose last field is a [`Stack`]) holding `depth` return
/// addresses: the record cut after them.
pub const fn stack_record_len(size: usize, depth: u32) -> usize {
    let d = if depth as usize > MAX_STACK_FRAMES {
        MAX_STACK_FRAMES
    } else {
        depth as usize
    };
    size - 8 * (MAX_STACK_FRAMES - d)
}

/// `runtime.hashGrow(t *maptype, h *hmap)` was entered: the map's state *before* the grow.
///
/// Whether the grow doubles or keeps the size (overflow cleanup) depends on the Go version's load
/// factor and is decided in userspace from `count` and `b`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapGrowEvent {
    /// Common header, `kind == EventKind::MapGrow`.
    pub header: EventHeader,
    /// Address of the `runtime.hmap`.
    pub map: u64,
    /// Address of the map's type descriptor (`*maptype`).
    pub maptype: u64,
    /// `hmap.count`: live entries when the grow started.
    pub count: u64,
    /// `maptype.Key.Size_`: true key size in bytes.
    pub key_size: u64,
    /// `maptype.Elem.Size_`: true element size in bytes.
    pub elem_size: u64,
    /// `maptype.BucketSize`: bytes per bucket.
    pub bucket_size: u16,
    /// `hmap.B` before the grow (log2 of the bucket count).
    pub b: u8,
    /// `hmap.flags` before the grow.
    pub flags: u8,
    /// `hmap.noverflow` before the grow.
    pub noverflow: u16,
    /// Bit 0: a read of target memory failed and some fields are zero.
    pub read_error: u8,
    /// Explicit padding; always zero.
    pub _pad: u8,
    /// Where the grow was called from.
    pub stack: Stack,
}

const _: () = assert!(core::mem::size_of::<MapGrowEvent>() == 80 + 8 + 8 * MAX_STACK_FRAMES);

/// A Swiss-table resize, timed from the function's body to its return (Go 1.24+,
/// `internal/runtime/maps`). The header's `ts_ns` is when the resize started.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwissEvent {
    /// Common header; `kind` is `MapSmallToTable`, `MapTableGrow` or `MapTableSplit`.
    pub header: EventHeader,
    /// Address of the `maps.Map`.
    pub map: u64,
    /// Address of the map's type descriptor.
    pub maptype: u64,
    /// `Map.used`: entries in the whole map when the resize started.
    pub map_used: u64,
    /// Key size in bytes (`Key.Size_`).
    pub key_size: u64,
    /// Element size in bytes (`Elem.Size_`).
    pub elem_size: u64,
    /// Nanoseconds from the body probe to the return probe.
    pub duration_ns: u64,
    /// `Map.dirLen` before (0 for a small map).
    pub dir_len_before: u64,
    /// `Map.dirLen` after.
    pub dir_len_after: u64,
    /// `table.used` of the table being resized (0 for small → table).
    pub table_used: u16,
    /// `table.capacity` before (8 for a small map: one group).
    pub capacity_before: u16,
    /// Capacity after: twice `capacity_before` for a grow, of each half for a split, of the
    /// new table for small → table.
    pub capacity_after: u16,
    /// `table.localDepth` before.
    pub local_depth: u8,
    /// Bit 0: a read of target memory failed and some fields are zero.
    pub read_error: u8,
    /// Where the resize was called from (captured at the body probe).
    pub stack: Stack,
}

const _: () = assert!(core::mem::size_of::<SwissEvent>() == 104 + 8 + 8 * MAX_STACK_FRAMES);

/// `runtime.growslice` (opt-in `--slices`): timed from its body to its return, where the new
/// capacity is read from the returned slice.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceEvent {
    /// Common header, `kind == EventKind::SliceGrow`; `ts_ns` is when the call started.
    pub header: EventHeader,
    /// Element type descriptor address (`*_type`).
    pub elem_type: u64,
    /// Capacity before.
    pub old_cap: u64,
    /// Length asked for (Go 1.20+: `newLen`; 1.18/1.19: the `cap` argument).
    pub new_len: u64,
    /// Capacity of the returned slice.
    pub new_cap: u64,
    /// Element size in bytes.
    pub elem_size: u64,
    /// Nanoseconds from the body probe to the return probe.
    pub duration_ns: u64,
    /// Bit 0: a read of target memory failed.
    pub read_error: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 7],
    /// Where `append` was called from.
    pub stack: Stack,
}

const _: () = assert!(core::mem::size_of::<SliceEvent>() == 88 + 8 + 8 * MAX_STACK_FRAMES);

/// A classic map's incremental growth finished: the probe sits on the one block of
/// `runtime.advanceEvacuationMark` that runs when the last old bucket has been evacuated
/// (`h.oldbuckets = nil; …; h.flags &^= sameSizeGrow`), found per binary by decoding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapEvacuatedEvent {
    /// Common header, `kind == EventKind::MapEvacuated`; `goid` moved the last bucket.
    pub header: EventHeader,
    /// Address of the `runtime.hmap`.
    pub map: u64,
    /// `hmap.count` when the growth finished.
    pub count: u64,
    /// `hmap.B` (log2 of the new bucket count).
    pub b: u8,
    /// Bit 0: a read of target memory failed and some fields are zero.
    pub read_error: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<MapEvacuatedEvent>() == 56);

/// One `runtime.evacuate*(t, h, oldbucket)` call (opt-in `--evacuation`), timed from its body
/// to its return. The header's `ts_ns` is when it started.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvacuateStepEvent {
    /// Common header, `kind == EventKind::MapEvacuateStep`.
    pub header: EventHeader,
    /// Address of the `runtime.hmap`.
    pub map: u64,
    /// The old bucket moved (plus its overflow chain).
    pub old_bucket: u64,
    /// Nanoseconds from the body probe to the return probe.
    pub duration_ns: u64,
    /// Bit 0: a read of target memory failed.
    pub read_error: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 7],
}

const _: () = assert!(core::mem::size_of::<EvacuateStepEvent>() == 64);

/// Bytes of the fatal error's message a [`MapFatalEvent`] carries (the map messages are at most
/// 38).
pub const FATAL_MESSAGE_BYTES: usize = 64;
/// Registers a [`MapFatalEvent`] carries, in the eBPF side's `go_abi::reg` order (amd64: the 13
/// of [`crate::names::X86_64_REGS`], the rest zero; arm64: R0–R26).
pub const FATAL_REGS: usize = 27;
/// Bytes of the goroutine's stack a [`MapFatalEvent`] carries, from the stack pointer up: the
/// frames of the map function that called `fatal` and of its callers, where userspace looks
/// for the map the function was given.
pub const FATAL_WINDOW: usize = 2048;

/// `runtime.fatal(s string)` was entered (Go 1.19+; `runtime.throw` in 1.18): the runtime is
/// about to print `fatal error: <s>` and kill the process. Sent for every fatal error;
/// userspace reports the map misuse ones ("concurrent map writes", …).
///
/// Go keeps nothing in callee-saved registers and `fatal` is given only the message, so the
/// record carries what userspace needs to find the map itself: the registers and the stack
/// as the map function left them at its `CALL fatal`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapFatalEvent {
    /// Common header, `kind == EventKind::MapFatal`.
    pub header: EventHeader,
    /// Stack pointer at the probe (`fatal`'s entry: amd64 points at the return address).
    pub sp: u64,
    /// Frame pointer at the probe (RBP, X29): the calling function's.
    pub fp: u64,
    /// General registers at the probe (see [`FATAL_REGS`]).
    pub regs: [u64; FATAL_REGS],
    /// The message's length in bytes (may exceed [`FATAL_MESSAGE_BYTES`]).
    pub message_len: u64,
    /// Its first bytes.
    pub message: [u8; FATAL_MESSAGE_BYTES],
    /// Bytes of `window` read (0 when the stack could not be read).
    pub window_len: u32,
    /// Bit 0: a read of target memory failed.
    pub read_error: u32,
    /// The caller chain at the probe.
    pub stack: Stack,
    /// The stack from `sp` up.
    pub window: [u8; FATAL_WINDOW],
}

const _: () = assert!(
    core::mem::size_of::<MapFatalEvent>()
        == 32 + 16 + 216 + 8 + 64 + 8 + (8 + 8 * MAX_STACK_FRAMES) + 2048
);

impl Default for MapFatalEvent {
    fn default() -> Self {
        MapFatalEvent {
            header: EventHeader::default(),
            sp: 0,
            fp: 0,
            regs: [0; FATAL_REGS],
            message_len: 0,
            message: [0; FATAL_MESSAGE_BYTES],
            window_len: 0,
            read_error: 0,
            stack: Stack::default(),
            window: [0; FATAL_WINDOW],
        }
    }
}

/// Views a plain-data record as its bytes, e.g. to build ring-buffer records in tests.
pub fn as_bytes<T: WireRecord>(v: &T) -> &[u8] {
    // SAFETY: WireRecord is only implemented for repr(C) types without implicit padding, so every
    // byte of `*v` is initialized; the slice borrows `v` and has exactly its size.
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>()) }
}

/// Marker for records that are plain bytes (repr(C), explicit padding, no bool).
///
/// # Safety
/// Implement only for `#[repr(C)]` types whose every byte is initialized and for which every bit
/// pattern is a valid value.
pub unsafe trait WireRecord: Copy {}

// SAFETY: repr(C), integer fields only, padding explicit (checked by the size asserts above).
unsafe impl WireRecord for EventHeader {}
// SAFETY: as above.
unsafe impl WireRecord for MapGrowEvent {}
// SAFETY: as above.
unsafe impl WireRecord for SwissEvent {}
// SAFETY: as above.
unsafe impl WireRecord for Stack {}
// SAFETY: as above.
unsafe impl WireRecord for SliceEvent {}
// SAFETY: as above.
unsafe impl WireRecord for MapEvacuatedEvent {}
// SAFETY: as above.
unsafe impl WireRecord for EvacuateStepEvent {}
// SAFETY: as above.
unsafe impl WireRecord for MapFatalEvent {}

/// Key of the `DISCOVERED` table: a map header seen by a discovery probe, per process (two
/// processes of one non-PIE executable can have maps at the same addresses).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DiscoveredKey {
    /// Map header address.
    pub map: u64,
    /// Thread group id.
    pub tgid: u32,
    /// Zero.
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<DiscoveredKey>() == 16);

#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, explicit padding field.
unsafe impl aya::Pod for DiscoveredKey {}

/// What a discovery probe saw of a map at its first access in the window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Map type descriptor (the access function's first argument).
    pub maptype: u64,
    /// `bpf_ktime_get_ns()` at that access.
    pub ts_ns: u64,
    /// The callers of the access function.
    pub stack: Stack<DISCOVERY_FRAMES>,
}

const _: () = assert!(core::mem::size_of::<Discovered>() == 16 + 8 + 8 * DISCOVERY_FRAMES);

#[cfg(feature = "user")]
// SAFETY: repr(C), u64 only, no padding.
unsafe impl aya::Pod for Discovered {}
