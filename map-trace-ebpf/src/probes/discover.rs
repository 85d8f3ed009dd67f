//! The `--discover` window of a `--pid` attach: which maps the running program uses.
//!
//! Maps that finished growing before map-trace attached are never seen by the growth probes.
//! For a few seconds after attaching, a body probe on every map access function
//! (`map_trace_common::names::MAP_ACCESS_FUNCTIONS`) records each map header it sees once,
//! with its type and the caller, into the `DISCOVERED` table. No record goes through the ring
//! buffer: userspace reads the table when the window ends and detaches the probes.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::uprobe,
    programs::ProbeContext,
};
use map_trace_common::{
    config::Counter,
    event::{Discovered, DiscoveredKey, Stack},
};

use crate::{go_abi, maps};


/// Body of `runtime.mapaccess1(t *maptype, h *hmap, key unsafe.Pointer)` and of every other
/// function in the list: the map type and the header are the first two arguments.
/// <https://github.com/golang/go/blob/go1.23.9/src/runtime/map.go#L396>
/// <https://github.com/golang/go/blob/go1.24.11/src/internal/runtime/maps/runtime_swiss.go#L41>
#[uprobe]
pub fn map_access(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsDiscovery, map_access_handler)
}

fn map_access_handler(ctx: ProbeContext) -> u32 {
    maps::count(Counter::HitsMapAccess);
    let ip = go_abi::ip(&ctx);
    match maps::ACCESS_HITS.get_ptr_mut(&ip) {
        // SAFETY: a per-CPU value pointer from a successful lookup, written only by this CPU.
        Some(n) => unsafe { *n += 1 },
        None => {
            let _ = maps::ACCESS_HITS.insert(&ip, &1, 0);
        }
    }
    if maps::DISCOVERING.get(0).copied() != Some(1) {
        return 0;
    }
    let map = go_abi::arg(&ctx, 1);
    // A nil map (reads of a nil map are legal).
    if map == 0 {
        return 0;
    }
    // CLI only: the probes are attached for the traced process alone.
    let key = DiscoveredKey {
        map,
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        _pad: 0,
    };
    // SAFETY: only tests for presence; the value is not read. The lookup also marks the entry
    // used, so a map accessed all the time is the last one the LRU table evicts.
    if unsafe { maps::DISCOVERED.get(&key) }.is_some() {
        return 0;
    }
    let mut found = Discovered {
        maptype: go_abi::arg(&ctx, 0),
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        stack: Stack::default(),
    };
    // Only at a map's first access in the window: one 16-byte read per frame.
    super::fill_stack(&ctx, &mut found.stack);
    // Another CPU may have added it meanwhile (EEXIST): then it is not new.
    if maps::DISCOVERED
        .insert(&key, &found, u64::from(BPF_NOEXIST))
        .is_ok()
    {
        maps::count(Counter::DiscoveryNew);
    }
    0
}
