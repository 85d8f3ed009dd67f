//! Ring-buffer records as the eBPF side sends them, with plain defaults a test overrides with
//! struct-update syntax: `MapGrowEvent { count: 13, ..records::grow(MAP, 0, 1) }`.

use map_trace_common::event::{
    EvacuateStepEvent, EventHeader, EventKind, MapEvacuatedEvent, MapGrowEvent, SliceEvent,
    SwissEvent,
};

/// The process of records built here.
pub const PID: u32 = 1;
/// The goroutine of records built here.
pub const GOID: u64 = 7;
/// A classic `map[int]int` type descriptor.
pub const MAPTYPE_INT: u64 = 0x1000;
/// A Swiss `map[int]int` type descriptor.
pub const SWISS_MAPTYPE_INT: u64 = 0x2000;

/// A record header of `kind` from process `pid` (its main thread), goroutine `goid`, at
/// monotonic `ts_ns`.
pub fn header(kind: EventKind, pid: u32, goid: u64, ts_ns: u64) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tid: pid,
        pid,
        exe: 0,
        goid,
        ts_ns,
    }
}

/// A classic `map[int]int` grow of `map` with `count` entries in 2^`b` buckets, at `ts_ns`.
pub fn grow(map: u64, count: u64, b: u8, ts_ns: u64) -> MapGrowEvent {
    MapGrowEvent {
        header: header(EventKind::MapGrow, PID, GOID, ts_ns),
        map,
        maptype: MAPTYPE_INT,
        count,
        key_size: 8,
        elem_size: 8,
        bucket_size: 144,
        b,
        ..Default::default()
    }
}

/// A Swiss `map[int]int` resize of `kind` of `map`: one table of capacity `cap` (doubled for a
/// grow) holding 896 entries, the directory `dir_before` → `dir_after` long, taking 70 µs.
pub fn swiss(kind: EventKind, map: u64, cap: u16, dir_before: u64, dir_after: u64) -> SwissEvent {
    SwissEvent {
        header: header(kind, PID, GOID, 10),
        map,
        maptype: SWISS_MAPTYPE_INT,
        map_used: 896,
        key_size: 8,
        elem_size: 8,
        duration_ns: 70_000,
        dir_len_before: dir_before,
        dir_len_after: dir_after,
        table_used: 896,
        capacity_before: cap,
        capacity_after: if kind == EventKind::MapTableGrow {
            cap * 2
        } else {
            cap
        },
        ..Default::default()
    }
}

/// A slice growth to `new_cap` elements of `elem_size` bytes, at `ts_ns`.
pub fn slice(old_cap: u64, new_cap: u64, elem_size: u64, ts_ns: u64) -> SliceEvent {
    SliceEvent {
        header: header(EventKind::SliceGrow, PID, GOID, ts_ns),
        elem_type: 0x3000,
        old_cap,
        new_len: old_cap + 1,
        new_cap,
        elem_size,
        duration_ns: 1_000,
        ..Default::default()
    }
}

/// The end of a classic growth of `map` (the last old bucket moved), at `ts_ns`.
pub fn evacuated(map: u64, count: u64, b: u8, ts_ns: u64) -> MapEvacuatedEvent {
    MapEvacuatedEvent {
        header: header(EventKind::MapEvacuated, PID, GOID, ts_ns),
        map,
        count,
        b,
        ..Default::default()
    }
}

/// One `evacuate` call on `map` moving `old_bucket`, at `ts_ns`.
pub fn evacuate_step(map: u64, old_bucket: u64, ts_ns: u64) -> EvacuateStepEvent {
    EvacuateStepEvent {
        header: header(EventKind::MapEvacuateStep, PID, GOID, ts_ns),
        map,
        old_bucket,
        duration_ns: 500,
        ..Default::default()
    }
}
