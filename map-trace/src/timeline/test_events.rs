//! Raw ring-buffer records for the timeline's unit tests, as the eBPF side would send them.

use map_trace_common::event::{EventHeader, EventKind, MapGrowEvent, SwissEvent};

use crate::{golayout::sizing::over_load_factor, symbols::pclntab::SourcePos};

/// A classic grow record of `map` with `count` entries in 2^`b` buckets, at monotonic `ts`.
pub fn grow_record(map: u64, count: u64, b: u8, ts: u64) -> MapGrowEvent {
    MapGrowEvent {
        header: EventHeader {
            kind: EventKind::MapGrow as u32,
            tid: 2,
            pid: 1,
            exe: 0,
            goid: 7,
            ts_ns: ts,
        },
        map,
        maptype: 0x1000,
        count,
        key_size: 8,
        elem_size: 8,
        bucket_size: 144,
        b,
        flags: 0,
        noverflow: 0,
        read_error: 0,
        _pad: 0,
        stack: Default::default(),
    }
}

/// Replays the grows of N sequential inserts into make(map[int]int): a grow happens on the
/// insert that would make count+1 exceed the load factor.
pub fn sequential_inserts(n: u64, lfn: u64) -> Vec<MapGrowEvent> {
    let mut b = 0u8;
    let mut out = vec![];
    for count in 0..n {
        if over_load_factor(count + 1, b, lfn) {
            out.push(grow_record(0xc000, count, b, count));
            b += 1;
        }
    }
    out
}

/// A source position in `x.go`.
pub fn pos(function: &str, line: u32) -> SourcePos {
    SourcePos {
        function: function.into(),
        file: "x.go".into(),
        line,
    }
}

/// A Swiss resize record of `map`: table capacity `cap` (doubled for a grow), directory
/// length before and after.
pub fn swiss_record(
    kind: EventKind,
    map: u64,
    cap: u16,
    dir_before: u64,
    dir_after: u64,
) -> SwissEvent {
    SwissEvent {
        header: EventHeader {
            kind: kind as u32,
            tid: 2,
            pid: 1,
            exe: 0,
            goid: 5,
            ts_ns: 10,
        },
        map,
        maptype: 0x2000,
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
        local_depth: 0,
        read_error: 0,
        stack: Default::default(),
    }
}
