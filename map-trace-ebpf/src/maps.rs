//! BPF maps shared by every probe family.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::ProbeContext,
    EbpfContext,
};
use map_trace_common::{
    config::{Counter, ExeCost, MapLayout, COUNTER_SLOTS, TIMED_FAMILIES},
    event::{
        stack_record_len, Discovered, DiscoveredKey, EvacuateStepEvent, MapGrowEvent, SliceEvent,
        SwissEvent, DEFAULT_STACK_DEPTH,
    },
};

/// Event records to userspace. Userspace resizes it at load time (`--ring-buffer-size`).
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Struct offsets per traced process (tgid) or per traced executable (attach cookie).
#[map(name = "LAYOUTS")]
pub static LAYOUTS: HashMap<u64, MapLayout> = HashMap::with_max_entries(4096, 0);

/// 1: look layouts up by the probe's attach cookie (agent: probes on every process running an
/// executable); 0: by tgid (CLI: probes for one process). Set by userspace at load time; with 0
/// the verifier prunes the cookie helper, so the object still loads on kernels before 5.15.
#[unsafe(no_mangle)]
static KEY_BY_COOKIE: u8 = 0;

/// Who hit a probe and with which offsets.
#[derive(Clone, Copy)]
pub struct Hit {
    /// Thread group id.
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
    /// Executable id (cookie minus `COOKIE_BASE`), 0 in CLI mode.
    pub exe: u32,
    /// The process's struct offsets.
    pub layout: MapLayout,
}

/// Identifies the hitting process and finds its layout; counts and returns `None` for a process
/// nobody configured.
#[inline(always)]
pub fn hit(ctx: &ProbeContext) -> Option<Hit> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: a read-only global userspace sets before load; volatile so it is not folded.
    let by_cookie = unsafe { core::ptr::read_volatile(&KEY_BY_COOKIE) } != 0;
    let key = if by_cookie {
        // SAFETY: the helper only reads the attach cookie of the running program's link.
        unsafe { bpf_get_attach_cookie(ctx.as_ptr()) }
    } else {
        u64::from(tgid)
    };
    // SAFETY: userspace writes a layout before attaching and never removes it while attached;
    // the value is copied out at once.
    match unsafe { LAYOUTS.get(key) } {
        Some(l) => Some(Hit {
            tgid,
            tid: pid_tgid as u32,
            exe: if by_cookie { key as u32 } else { 0 },
            layout: *l,
        }),
        None => {
            count(Counter::HitsUnconfigured);
            None
        }
    }
}

/// Hit, loss and error counters; userspace sums the per-CPU values.
#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Bytes of queued records at which a submit wakes the reader; below it records are queued
/// silently and the reader drains them on its own timer (a wakeup per record costs the traced
/// program several µs per probe hit). 0 = wake on every record. Set by userspace at load time.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = 0;

/// Return addresses a stack read takes (`--stack-depth`, 1–64). Set by userspace at load time.
#[unsafe(no_mangle)]
static STACK_DEPTH: u32 = DEFAULT_STACK_DEPTH;

/// `--stack-depth`.
#[inline(always)]
pub fn stack_depth() -> u32 {
    // SAFETY: a read-only global that userspace sets before load; volatile so the compiler does
    // not fold the default value in.
    unsafe { core::ptr::read_volatile(&STACK_DEPTH) }
}

/// Sends `ev`, a record whose last field is a `Stack` holding `depth` return addresses, cut
/// after them (the ring holds only what was read); counts a full ring as lost.
#[inline(always)]
pub fn output_with_stack<T>(ev: &T, depth: u32) {
    let len = stack_record_len(core::mem::size_of::<T>(), depth);
    // SAFETY: `ev` is a valid `T`, every byte initialized (plain-data records), and `len` is at
    // most its size.
    let bytes = unsafe { core::slice::from_raw_parts((ev as *const T).cast::<u8>(), len) };
    if EVENTS.output::<[u8]>(bytes, submit_flags()).is_err() {
        count(Counter::Lost);
    }
}

/// Flags for `bpf_ringbuf_submit`/`output`: wake the reader only when enough is queued.
#[inline(always)]
pub fn submit_flags() -> u64 {
    // SAFETY: a read-only global that userspace sets before load; volatile so the compiler does
    // not fold the default value in.
    let threshold = unsafe { core::ptr::read_volatile(&WAKEUP_BYTES) };
    if threshold == 0 {
        return 0;
    }
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// What each traced executable's probes cost (agent mode), keyed by attach cookie. Userspace
/// inserts an empty entry before attaching an executable's probes and removes it after
/// detaching them; a hit whose cookie has no entry is not costed here (it still is globally).
#[map(name = "EXE_COST")]
pub static EXE_COST: PerCpuHashMap<u64, ExeCost> = PerCpuHashMap::with_max_entries(4096, 0);

/// Runs a probe's handler and adds the nanoseconds it took to `counter` on this CPU (one of
/// the `Ns*` counters), and in agent mode one hit and those nanoseconds to the executable's
/// [`EXE_COST`] entry.
#[inline(always)]
pub fn timed(ctx: ProbeContext, counter: Counter, f: impl FnOnce(ProbeContext) -> u32) -> u32 {
    // SAFETY: a read-only global userspace sets before load; volatile so it is not folded.
    let by_cookie = unsafe { core::ptr::read_volatile(&KEY_BY_COOKIE) } != 0;
    let cookie = if by_cookie {
        // SAFETY: the helper only reads the attach cookie of the running program's link.
        unsafe { bpf_get_attach_cookie(ctx.as_ptr()) }
    } else {
        0
    };
    // SAFETY: helper without preconditions.
    let t0 = unsafe { bpf_ktime_get_ns() };
    let r = f(ctx);
    // SAFETY: as above.
    let dt = unsafe { bpf_ktime_get_ns() }.wrapping_sub(t0);
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: as in `count`.
        unsafe { *slot += dt };
    }
    let family = (counter as u32).wrapping_sub(Counter::NsMaps as u32) as usize;
    if by_cookie && family < TIMED_FAMILIES {
        if let Some(cost) = EXE_COST.get_ptr_mut(&cookie) {
            // SAFETY: a per-CPU map value pointer from a successful lookup; nothing else
            // writes this CPU's value while the program runs (as in `count`). Userspace may
            // delete the entry meanwhile: the value stays valid until this program ends (RCU).
            unsafe {
                (*cost).hits[family] += 1;
                (*cost).ns[family] += dt;
            }
        }
    }
    r
}

/// Adds one to a counter on this CPU.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: the pointer comes from a successful per-CPU map lookup; a BPF program is not
        // preempted on its CPU, so nothing else writes this slot concurrently.
        unsafe { *slot += 1 };
    }
}

/// One per-CPU slot where Swiss events are assembled: a `SwissEvent` (176 bytes) and its copies
/// on the BPF stack would exceed the 512-byte limit across calls. A program runs to completion
/// on its CPU, so the slot is never shared.
#[map(name = "SCRATCH")]
pub static SCRATCH: PerCpuArray<SwissEvent> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch event, zeroed.
#[inline(always)]
pub fn scratch() -> Option<&'static mut SwissEvent> {
    let p = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: a valid per-CPU map value pointer; no other program uses this CPU's slot while
    // this one runs (BPF programs are not preempted on their CPU).
    let ev = unsafe { &mut *p };
    *ev = SwissEvent::default();
    Some(ev)
}

/// Per-CPU slot where `hashGrow` events are assembled (as `SCRATCH` for Swiss events).
#[map(name = "GROW_SCRATCH")]
pub static GROW_SCRATCH: PerCpuArray<MapGrowEvent> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch grow event, as the last grow left it: the caller sets every field it
/// sends.
#[inline(always)]
pub fn grow_scratch() -> Option<&'static mut MapGrowEvent> {
    let p = GROW_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: as in `scratch`.
    Some(unsafe { &mut *p })
}

/// Per-CPU slot where slice events are assembled (as `SCRATCH` for Swiss events).
#[map(name = "SLICE_SCRATCH")]
pub static SLICE_SCRATCH: PerCpuArray<SliceEvent> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch slice event, zeroed.
#[inline(always)]
pub fn slice_scratch() -> Option<&'static mut SliceEvent> {
    let p = SLICE_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: as in `scratch`.
    let ev = unsafe { &mut *p };
    *ev = SliceEvent::default();
    Some(ev)
}

/// `growslice` calls in progress.
#[map(name = "PENDING_SLICE")]
pub static PENDING_SLICE: LruHashMap<PendingKey, SliceEvent> =
    LruHashMap::with_max_entries(16384, 0);

/// A return probe takes its call's state: copies it into `dst` (map memory or the stack) and
/// removes the entry. Counts and returns false for a return without an entry (the probes were
/// attached while the call was running).
#[inline(always)]
pub fn take_pending<T: Copy>(
    map: &LruHashMap<PendingKey, T>,
    key: &PendingKey,
    dst: &mut T,
) -> bool {
    // SAFETY: the value is copied out before the entry is removed.
    match unsafe { map.get(key) } {
        Some(p) => *dst = *p,
        None => {
            count(Counter::UnmatchedRet);
            return false;
        }
    }
    let _ = map.remove(key);
    true
}

/// Key of a call in progress: `[g pointer, tgid]`. `g` alone would collide between two
/// processes of one non-PIE executable, whose heaps can sit at the same addresses.
pub type PendingKey = [u64; 2];

/// Goroutines whose entry into the Swiss `fatal` wrapper was recorded: `[return address into
/// the map function, ktime]`, to tell a restart through `morestack` from a first entry.
#[map(name = "FATAL_ENTERED")]
pub static FATAL_ENTERED: LruHashMap<PendingKey, [u64; 2]> = LruHashMap::with_max_entries(1024, 0);

/// Swiss `rehash` calls in progress.
#[map(name = "PENDING_REHASH")]
pub static PENDING_REHASH: LruHashMap<PendingKey, SwissEvent> =
    LruHashMap::with_max_entries(16384, 0);

/// `evacuate*` calls in progress (`--evacuation`).
#[map(name = "PENDING_EVACUATE")]
pub static PENDING_EVACUATE: LruHashMap<PendingKey, EvacuateStepEvent> =
    LruHashMap::with_max_entries(16384, 0);

/// 1 while the `--discover` window is open. Userspace clears it when the window closes: the
/// probes' release then takes seconds (the kernel releases one uprobe at a time), and until
/// it is done each hit costs only its trap.
#[map(name = "DISCOVERING")]
pub static DISCOVERING: Array<u32> = Array::with_max_entries(1, 0);

/// Hits per discovery probe, by probed address: userspace releases the busiest first (the
/// kernel releases uprobes one at a time, and the others keep trapping until their turn).
#[map(name = "ACCESS_HITS")]
pub static ACCESS_HITS: PerCpuHashMap<u64, u64> = PerCpuHashMap::with_max_entries(64, 0);

/// Maps the discovery probes saw (`--discover`): an LRU table, so a program that makes maps
/// faster than userspace reads them loses its short-lived ones first, not the maps it keeps
/// using. Userspace reads and deletes a process's entries when its window ends.
#[map(name = "DISCOVERED")]
pub static DISCOVERED: LruHashMap<DiscoveredKey, Discovered> =
    LruHashMap::with_max_entries(32768, 0);
