//! Classic hash maps (`runtime/map.go`, Go 1.18–1.23; `map_noswiss.go` under
//! `GOEXPERIMENT=noswissmap` in 1.24/1.25).

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::uprobe, programs::ProbeContext};
use map_trace_common::{
    config::Counter,
    event::{EventHeader, EventKind, MapGrowEvent, Stack},
};

use crate::{
    go_abi, maps,
    probes::{fill_stack, read},
};

/// `func hashGrow(t *maptype, h *hmap)`, attached at the first instruction after the prologue's
/// stack check, so a detour through `morestack` (which restarts the function) fires it once.
/// <https://github.com/golang/go/blob/go1.23.9/src/runtime/map.go#L1133>
#[uprobe]
pub fn hmap_hash_grow(ctx: ProbeContext) -> u32 {
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
    // One read for the hmap header (count, flags, B, noverflow lie within 16 bytes of count in
    // every version; golayout checks it) and one for the key/elem type pointers (adjacent):
    // each user-memory read costs the traced program time.
    let head: [u8; 16] = read(h + layout.hmap_count as u64, &mut err);
    let at = |off: u32| head[(off.wrapping_sub(layout.hmap_count) & 15) as usize];
    let count = u64::from_le_bytes([
        head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
    ]);
    let flags = at(layout.hmap_flags);
    let b = at(layout.hmap_b);
    let noverflow = u16::from_le_bytes([at(layout.hmap_noverflow), at(layout.hmap_noverflow + 1)]);
    let types: [u64; 2] = read(t + layout.maptype_key as u64, &mut err);
    let (key_type, elem_type) = (types[0], types[1]);
    let bucket_size: u16 = read(t + layout.maptype_bucket_size as u64, &mut err);
    let key_size: u64 = read(key_type + layout.type_size as u64, &mut err);
    let elem_size: u64 = read(elem_type + layout.type_size as u64, &mut err);
    if err != 0 {
        maps::count(Counter::ReadErrors);
    }

    let Some(mut entry) = maps::EVENTS.reserve::<MapGrowEvent>(0) else {
        maps::count(Counter::Lost);
        return;
    };
    let ev = entry.write(MapGrowEvent {
        header: EventHeader {
            kind: EventKind::MapGrow as u32,
            tid: hit.tid,
            pid: hit.tgid,
            exe: hit.exe,
            goid,
            // SAFETY: helper without preconditions.
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        map: h,
        maptype: t,
        count,
        key_size,
        elem_size,
        bucket_size,
        b,
        flags,
        noverflow,
        read_error: err,
        _pad: 0,
        stack: Stack::default(),
    });
    fill_stack(ctx, &mut ev.stack);
    entry.submit(maps::submit_flags());
}
