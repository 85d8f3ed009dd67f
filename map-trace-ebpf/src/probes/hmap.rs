//! Classic hash maps (`runtime/map.go`, Go 1.18–1.23; `map_noswiss.go` under
//! `GOEXPERIMENT=noswissmap` in 1.24/1.25).

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::uprobe, programs::ProbeContext};
use map_trace_common::{
    config::Counter,
    event::{EvacuateStepEvent, EventKind, MapEvacuatedEvent},
};

use crate::{
    go_abi,
    maps::{self, PendingKey},
    probes::{fill_stack, header, hmap_head, read},
};

/// `func hashGrow(t *maptype, h *hmap)`, attached at the first instruction after the prologue's
/// stack check, so a detour through `morestack` (which restarts the function) fires it once.
/// <https://github.com/golang/go/blob/go1.23.9/src/runtime/map.go#L1133>
#[uprobe]
pub fn hmap_hash_grow(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsMaps, hmap_hash_grow_handler)
}

fn hmap_hash_grow_handler(ctx: ProbeContext) -> u32 {
    try_hmap_hash_grow(&ctx);
    0
}

fn try_hmap_hash_grow(ctx: &ProbeContext) {
    let Some(hit) = maps::hit(ctx) else { return };
    let layout = hit.layout;
    maps::count(Counter::HitsHashGrow);

    let t = go_abi::arg(ctx, 0);
    let h = go_abi::arg(ctx, 1);
    let g = go_abi::g(ctx);
    let mut err = 0u8;

    let goid: u64 = read(g + layout.g_goid as u64, &mut err);
    // One read for the hmap header and one for the key/elem type pointers (adjacent).
    let (count, flags, b, noverflow) = hmap_head(h, &layout, &mut err);
    let types: [u64; 2] = read(t + layout.maptype_key as u64, &mut err);
    let (key_type, elem_type) = (types[0], types[1]);
    let bucket_size: u16 = read(t + layout.maptype_bucket_size as u64, &mut err);
    let key_size: u64 = read(key_type + layout.type_size as u64, &mut err);
    let elem_size: u64 = read(elem_type + layout.type_size as u64, &mut err);
    if err != 0 {
        maps::count(Counter::ReadErrors);
    }

    let Some(ev) = maps::grow_scratch() else {
        return;
    };
    // Field by field: the record is sent cut after its stack's addresses, so the slot's
    // addresses past them (a former event's) are never read, and need no zeroing.
    ev.header = header(EventKind::MapGrow, &hit, goid);
    ev.map = h;
    ev.maptype = t;
    ev.count = count;
    ev.key_size = key_size;
    ev.elem_size = elem_size;
    ev.bucket_size = bucket_size;
    ev.b = b;
    ev.flags = flags;
    ev.noverflow = noverflow;
    ev.read_error = err;
    ev._pad = 0;
    ev.stack._pad = 0;
    let depth = fill_stack(ctx, &mut ev.stack);
    maps::output_with_stack(ev, depth);
}

/// The block of `advanceEvacuationMark(h *hmap, t *maptype, newbit uintptr)` that runs once per
/// growth, when the last old bucket has been moved:
/// `if h.nevacuate == newbit { h.oldbuckets = nil; …; h.flags &^= sameSizeGrow }`.
/// Userspace attaches the program on the store to `h.flags` there, choosing the program whose
/// register holds `h` at that instruction (decoded per binary).
/// <https://github.com/golang/go/blob/go1.23.9/src/runtime/map.go#L1369>
#[inline(always)]
fn hmap_evacuated<const R: usize>(ctx: &ProbeContext) {
    let Some(hit) = maps::hit(ctx) else { return };
    let layout = hit.layout;
    maps::count(Counter::HitsEvacuated);
    let h = go_abi::reg::<R>(ctx);
    let g = go_abi::g(ctx);
    let mut err = 0u8;
    let goid: u64 = read(g + layout.g_goid as u64, &mut err);
    let (count, _, b, _) = hmap_head(h, &layout, &mut err);
    if err != 0 {
        maps::count(Counter::ReadErrors);
    }
    let ev = MapEvacuatedEvent {
        header: header(EventKind::MapEvacuated, &hit, goid),
        map: h,
        count,
        b,
        read_error: err,
        _pad: [0; 6],
    };
    if maps::EVENTS
        .output::<MapEvacuatedEvent>(&ev, maps::submit_flags())
        .is_err()
    {
        maps::count(Counter::Lost);
    }
}

macro_rules! evacuated_programs {
    ($($name:ident = $r:literal),* $(,)?) => {$(
        #[doc = concat!("[`hmap_evacuated`] with `h` in register ", stringify!($r), " of `go_abi::reg`.")]
        #[uprobe]
        pub fn $name(ctx: ProbeContext) -> u32 {
            maps::timed(ctx, Counter::NsGrowthEnds, |ctx| {
                hmap_evacuated::<$r>(&ctx);
                0
            })
        }
    )*};
}

evacuated_programs!(
    hmap_evacuated_0 = 0,
    hmap_evacuated_1 = 1,
    hmap_evacuated_2 = 2,
    hmap_evacuated_3 = 3,
    hmap_evacuated_4 = 4,
    hmap_evacuated_5 = 5,
    hmap_evacuated_6 = 6,
    hmap_evacuated_7 = 7,
    hmap_evacuated_8 = 8,
    hmap_evacuated_9 = 9,
    hmap_evacuated_10 = 10,
    hmap_evacuated_11 = 11,
    hmap_evacuated_12 = 12,
);

#[cfg(bpf_target_arch = "aarch64")]
evacuated_programs!(
    hmap_evacuated_13 = 13,
    hmap_evacuated_14 = 14,
    hmap_evacuated_15 = 15,
    hmap_evacuated_16 = 16,
    hmap_evacuated_17 = 17,
    hmap_evacuated_18 = 18,
    hmap_evacuated_19 = 19,
    hmap_evacuated_20 = 20,
    hmap_evacuated_21 = 21,
    hmap_evacuated_22 = 22,
    hmap_evacuated_23 = 23,
    hmap_evacuated_24 = 24,
    hmap_evacuated_25 = 25,
    hmap_evacuated_26 = 26,
);

/// `evacuate*(t *maptype, h *hmap, oldbucket uintptr)` entered (opt-in `--evacuation`, body
/// probe): moves one old bucket and its overflow chain. Keyed by goroutine for the return probe.
/// <https://github.com/golang/go/blob/go1.23.9/src/runtime/map.go#L1251>
#[uprobe]
pub fn hmap_evacuate(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsEvacuation, hmap_evacuate_handler)
}

fn hmap_evacuate_handler(ctx: ProbeContext) -> u32 {
    let Some(hit) = maps::hit(&ctx) else { return 0 };
    maps::count(Counter::HitsEvacuate);
    let g = go_abi::g(&ctx);
    let mut err = 0u8;
    let goid: u64 = read(g + hit.layout.g_goid as u64, &mut err);
    let ev = EvacuateStepEvent {
        header: header(EventKind::MapEvacuateStep, &hit, goid),
        map: go_abi::arg(&ctx, 1),
        old_bucket: go_abi::arg(&ctx, 2),
        duration_ns: 0,
        read_error: err,
        _pad: [0; 7],
    };
    let key: PendingKey = [g, u64::from(hit.tgid)];
    let _ = maps::PENDING_EVACUATE.insert(&key, &ev, 0);
    0
}

/// RET of `evacuate*`: times the call started by [`hmap_evacuate`].
#[uprobe]
pub fn hmap_evacuate_ret(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsEvacuation, hmap_evacuate_ret_handler)
}

fn hmap_evacuate_ret_handler(ctx: ProbeContext) -> u32 {
    let Some(hit) = maps::hit(&ctx) else { return 0 };
    maps::count(Counter::HitsEvacuateRet);
    let key: PendingKey = [go_abi::g(&ctx), u64::from(hit.tgid)];
    let mut ev = EvacuateStepEvent::default();
    if !maps::take_pending(&maps::PENDING_EVACUATE, &key, &mut ev) {
        return 0;
    }
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    ev.duration_ns = now.saturating_sub(ev.header.ts_ns);
    if maps::EVENTS
        .output::<EvacuateStepEvent>(&ev, maps::submit_flags())
        .is_err()
    {
        maps::count(Counter::Lost);
    }
    0
}
