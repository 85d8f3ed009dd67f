//! BPF maps shared by every probe family.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use map_trace_common::{
    config::{Counter, MapLayout, COUNTER_SLOTS},
    event::SwissEvent,
};

/// Event records to userspace. Userspace resizes it at load time (`--ring-buffer-size`).
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Struct offsets per traced process (tgid).
#[map(name = "LAYOUTS")]
pub static LAYOUTS: HashMap<u32, MapLayout> = HashMap::with_max_entries(4096, 0);

/// Hit, loss and error counters; userspace sums the per-CPU values.
#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Bytes of queued records at which a submit wakes the reader; below it records are queued
/// silently and the reader drains them on its own timer (a wakeup per record costs the traced
/// program several µs per probe hit). 0 = wake on every record. Set by userspace at load time.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = 0;

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

/// Adds one to a counter on this CPU.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: the pointer comes from a successful per-CPU map lookup; a BPF program is not
        // preempted on its CPU, so nothing else writes this slot concurrently.
        unsafe { *slot += 1 };
    }
}

/// Swiss `growToTable` calls in progress, keyed by the goroutine's `g` pointer.
#[map(name = "PENDING_TO_TABLE")]
pub static PENDING_TO_TABLE: LruHashMap<u64, SwissEvent> = LruHashMap::with_max_entries(16384, 0);

/// Swiss `rehash` calls in progress, keyed by the goroutine's `g` pointer.
#[map(name = "PENDING_REHASH")]
pub static PENDING_REHASH: LruHashMap<u64, SwissEvent> = LruHashMap::with_max_entries(16384, 0);
