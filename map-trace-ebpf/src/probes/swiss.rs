//! Swiss-table maps (`internal/runtime/maps`, Go 1.24+). A table resize (`rehash`) is
//! synchronous: while its timing is on (`LAYOUT_TIMED_RESIZES`), the body probe records the state
//! before, keyed by the goroutine's `g` (goroutines move between threads, a thread id would
//! mismatch), and a probe on each RET instruction emits the event with its duration. Otherwise,
//! and always for `growToTable` (an 8-entry copy), the body probe emits the event itself: one
//! emulated trap, where a RET is single-stepped. Never uretprobes: they corrupt Go stacks.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::uprobe, programs::ProbeContext};
use map_trace_common::{
    config::{Counter, MapLayout, LAYOUT_TIMED_RESIZES},
    event::{EventKind, SwissEvent},
};

use crate::{
    go_abi,
    maps::{self, Hit, PendingKey},
    probes::{fill_stack, header, read},
};

/// Capacity above which `rehash` splits instead of growing (`maxTableCapacity`).
const MAX_TABLE_CAPACITY: u16 = 1024;

fn pending_key(g: u64, hit: &Hit) -> PendingKey {
    [g, u64::from(hit.tgid)]
}

/// Map-wide fields common to every Swiss event.
fn map_fields(ev: &mut SwissEvent, l: &MapLayout, m: u64, typ: u64) {
    let mut err = 0u8;
    ev.map = m;
    ev.maptype = typ;
    ev.map_used = read(m + l.swiss_map_used as u64, &mut err);
    ev.dir_len_before = read(m + l.swiss_map_dir_len as u64, &mut err);
    let key: u64 = read(typ + l.maptype_key as u64, &mut err);
    let elem: u64 = read(typ + l.maptype_elem as u64, &mut err);
    ev.key_size = read(key + l.type_size as u64, &mut err);
    ev.elem_size = read(elem + l.type_size as u64, &mut err);
    ev.read_error |= err;
}

/// Fills `ev` for a `(*Map)` method `(m *Map, typ *abi.SwissMapType)` at its body probe;
/// returns the goroutine's `g`.
fn map_method_event(ctx: &ProbeContext, ev: &mut SwissEvent, kind: EventKind, hit: &Hit) -> u64 {
    let l = &hit.layout;
    let m = go_abi::arg(ctx, 0);
    let typ = go_abi::arg(ctx, 1);
    let g = go_abi::g(ctx);
    let mut err = 0u8;
    let goid: u64 = read(g + l.g_goid as u64, &mut err);
    ev.header = header(kind, hit, goid);
    ev.read_error = err;
    fill_stack(ctx, &mut ev.stack);
    map_fields(ev, l, m, typ);
    g
}

/// `func (m *Map) growToTable(typ *abi.SwissMapType)`: a small map's single group becomes a
/// table of capacity 16, the directory's only entry (`newTable(typ, 2*MapGroupSlots, 0, 0)` and
/// `m.dirLen = 1` in every Swiss release, 1.24–1.27). Reported from the body, untimed.
/// <https://github.com/golang/go/blob/go1.24.11/src/internal/runtime/maps/map.go#L600>
#[uprobe]
pub fn swiss_grow_to_table(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsMaps, swiss_grow_to_table_handler)
}

fn swiss_grow_to_table_handler(ctx: ProbeContext) -> u32 {
    let Some(hit) = maps::hit(&ctx) else { return 0 };
    maps::count(Counter::HitsGrowToTable);
    let Some(ev) = maps::scratch() else { return 0 };
    map_method_event(&ctx, ev, EventKind::MapSmallToTable, &hit);
    ev.capacity_before = 8;
    ev.capacity_after = 16;
    ev.dir_len_after = 1;
    ev.duration_ns = 0;
    emit(ev);
    0
}

/// `func (m *Map) growToSmall(typ *abi.SwissMapType)`: a map's first insert allocates its
/// first group. Very frequent in some programs (every new map), hence opt-in (`--small-maps`);
/// not timed (one allocation).
/// <https://github.com/golang/go/blob/go1.24.11/src/internal/runtime/maps/map.go#L500>
#[uprobe]
pub fn swiss_grow_to_small(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsSmallMaps, swiss_grow_to_small_handler)
}

fn swiss_grow_to_small_handler(ctx: ProbeContext) -> u32 {
    let Some(hit) = maps::hit(&ctx) else { return 0 };
    maps::count(Counter::HitsGrowToSmall);
    let Some(ev) = maps::scratch() else { return 0 };
    map_method_event(&ctx, ev, EventKind::MapSmallAlloc, &hit);
    ev.capacity_after = 8;
    emit(ev);
    0
}

/// `func (t *table) rehash(typ *abi.SwissMapType, m *Map)`: grows the table to twice its
/// capacity, or splits it in two when that would exceed 1024 slots. Also attached to
/// `(*table).grow` and `(*table).split` (same first three arguments) when `rehash` is inlined.
/// <https://github.com/golang/go/blob/go1.24.11/src/internal/runtime/maps/table.go#L1019>
#[uprobe]
pub fn swiss_rehash(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsMaps, swiss_rehash_handler)
}

fn swiss_rehash_handler(ctx: ProbeContext) -> u32 {
    let Some(hit) = maps::hit(&ctx) else { return 0 };
    let l = hit.layout;
    maps::count(Counter::HitsRehash);
    let t = go_abi::arg(&ctx, 0);
    let typ = go_abi::arg(&ctx, 1);
    let m = go_abi::arg(&ctx, 2);
    let g = go_abi::g(&ctx);
    let mut err = 0u8;
    let goid: u64 = read(g + l.g_goid as u64, &mut err);
    let capacity: u16 = read(t + l.swiss_table_capacity as u64, &mut err);
    let doubled = capacity.saturating_mul(2);
    let (kind, capacity_after) = if doubled <= MAX_TABLE_CAPACITY {
        (EventKind::MapTableGrow, doubled)
    } else {
        (EventKind::MapTableSplit, capacity)
    };
    let Some(ev) = maps::scratch() else { return 0 };
    ev.header = header(kind, &hit, goid);
    ev.capacity_before = capacity;
    ev.capacity_after = capacity_after;
    ev.table_used = read(t + l.swiss_table_used as u64, &mut err);
    ev.local_depth = read(t + l.swiss_table_local_depth as u64, &mut err);
    ev.read_error = err;
    fill_stack(&ctx, &mut ev.stack);
    map_fields(ev, &l, m, typ);
    if l.flags & LAYOUT_TIMED_RESIZES != 0 {
        let _ = maps::PENDING_REHASH.insert(&pending_key(g, &hit), &*ev, 0);
    } else {
        // Untimed: the directory after a split is not known yet.
        ev.dir_len_after = ev.dir_len_before;
        ev.duration_ns = 0;
        emit(ev);
    }
    0
}

/// RET of `rehash` (or `grow`/`split`): the new table(s) are installed.
#[uprobe]
pub fn swiss_rehash_ret(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsTimedResizes, swiss_rehash_ret_handler)
}

fn swiss_rehash_ret_handler(ctx: ProbeContext) -> u32 {
    let Some(hit) = maps::hit(&ctx) else { return 0 };
    let l = hit.layout;
    maps::count(Counter::HitsSwissRet);
    let key = pending_key(go_abi::g(&ctx), &hit);
    let Some(ev) = maps::scratch() else { return 0 };
    if !maps::take_pending(&maps::PENDING_REHASH, &key, ev) {
        return 0;
    }
    let mut err = 0u8;
    ev.dir_len_after = read(ev.map + l.swiss_map_dir_len as u64, &mut err);
    ev.read_error |= err;
    finish(ev);
    0
}

fn finish(ev: &mut SwissEvent) {
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // At least 1: 0 means untimed.
    ev.duration_ns = now.saturating_sub(ev.header.ts_ns).max(1);
    emit(ev);
}

fn emit(ev: &SwissEvent) {
    maps::output_with_stack(ev, ev.stack.depth);
}
