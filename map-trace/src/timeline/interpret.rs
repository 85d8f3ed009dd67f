//! Wire → domain: turns the decoded ring-buffer records into the timeline's events, with Unix
//! times and sizes in the units the outputs use. One function per record kind; no state.

use map_trace_common::event::{
    EvacuateStepEvent, EventKind, MapEvacuatedEvent, MapGrowEvent, SliceEvent, SwissEvent,
};

use super::{EvacuateStep, Evacuated, EvacuationEnd, Grow, SliceGrow, SwissKind, SwissResize};
use crate::golayout::sizing::{allocated_buckets, bucket_count, is_same_size_grow};

/// Interprets a raw event: a doubling or a same-size grow, as `hashGrow` decides
/// ([`is_same_size_grow`]).
pub fn interpret(ev: &MapGrowEvent, load_factor_num: u64, mono_to_unix_ns: i128) -> Grow {
    let same_size = is_same_size_grow(ev.count, ev.b, load_factor_num);
    let b_before = u32::from(ev.b);
    let b_after = if same_size { b_before } else { b_before + 1 };
    let time_ns = to_unix_ns(ev.header.ts_ns, mono_to_unix_ns);
    Grow {
        time_ns,
        pid: ev.header.pid,
        tid: ev.header.tid,
        goid: ev.header.goid,
        map: ev.map,
        maptype: ev.maptype,
        buckets_before: bucket_count(b_before),
        buckets_after: bucket_count(b_after),
        entries: ev.count,
        same_size,
        key_size: ev.key_size,
        elem_size: ev.elem_size,
        bucket_size: u64::from(ev.bucket_size),
        overflow_buckets: u64::from(ev.noverflow),
        bytes_allocated: allocated_buckets(b_after).saturating_mul(u64::from(ev.bucket_size)),
        partial: ev.read_error != 0,
        origin: None,
        type_name: None,
    }
}

/// Monotonic kernel ns → Unix ns, clamped to the u64 range.
pub fn to_unix_ns(ts_ns: u64, mono_to_unix_ns: i128) -> u64 {
    (i128::from(ts_ns) + mono_to_unix_ns).clamp(0, u64::MAX as i128) as u64
}

/// Interprets a raw `map_evacuated` record (duration, origin and type are filled in by
/// [`Timeline::push_evacuated`](super::Timeline::push_evacuated)).
pub fn interpret_evacuated(ev: &MapEvacuatedEvent, mono_to_unix_ns: i128) -> Evacuated {
    Evacuated {
        time_ns: to_unix_ns(ev.header.ts_ns, mono_to_unix_ns),
        pid: ev.header.pid,
        tid: ev.header.tid,
        goid: ev.header.goid,
        map: ev.map,
        buckets: bucket_count(u32::from(ev.b)),
        entries: ev.count,
        duration_ns: None,
        end: EvacuationEnd::Probe,
        partial: ev.read_error != 0,
        origin: None,
        type_name: None,
    }
}

/// Interprets a raw `map_evacuate_step` record.
pub fn interpret_evacuate_step(ev: &EvacuateStepEvent, mono_to_unix_ns: i128) -> EvacuateStep {
    EvacuateStep {
        time_ns: to_unix_ns(ev.header.ts_ns, mono_to_unix_ns),
        pid: ev.header.pid,
        tid: ev.header.tid,
        goid: ev.header.goid,
        map: ev.map,
        old_bucket: ev.old_bucket,
        duration_ns: ev.duration_ns,
        partial: ev.read_error != 0,
    }
}

/// Interprets a slice record.
pub fn interpret_slice(ev: &SliceEvent, mono_to_unix_ns: i128) -> SliceGrow {
    let time_ns = to_unix_ns(ev.header.ts_ns, mono_to_unix_ns);
    SliceGrow {
        time_ns,
        pid: ev.header.pid,
        tid: ev.header.tid,
        goid: ev.header.goid,
        cap_before: ev.old_cap,
        cap_after: ev.new_cap,
        elem_size: ev.elem_size,
        bytes: ev.new_cap.saturating_mul(ev.elem_size),
        duration_ns: ev.duration_ns,
        elem_type: ev.elem_type,
        partial: ev.read_error != 0,
        origin: None,
        elem_type_name: None,
    }
}

/// Interprets a Swiss record.
pub fn interpret_swiss(ev: &SwissEvent, mono_to_unix_ns: i128) -> Option<SwissResize> {
    let kind = match EventKind::try_from(ev.header.kind).ok()? {
        EventKind::MapSmallToTable => SwissKind::SmallToTable,
        EventKind::MapTableGrow => SwissKind::TableGrow,
        EventKind::MapTableSplit => SwissKind::TableSplit,
        EventKind::MapSmallAlloc => SwissKind::SmallAlloc,
        EventKind::MapGrow
        | EventKind::Exec
        | EventKind::SliceGrow
        | EventKind::MapEvacuated
        | EventKind::MapEvacuateStep
        | EventKind::MapFatal => return None,
    };
    let time_ns = to_unix_ns(ev.header.ts_ns, mono_to_unix_ns);
    Some(SwissResize {
        kind,
        time_ns,
        pid: ev.header.pid,
        tid: ev.header.tid,
        goid: ev.header.goid,
        map: ev.map,
        maptype: ev.maptype,
        entries: ev.map_used,
        key_size: ev.key_size,
        elem_size: ev.elem_size,
        // The RET probe stamps at least 1; 0 is "not timed".
        duration_ns: (ev.duration_ns > 0).then_some(ev.duration_ns),
        table_entries: u64::from(ev.table_used),
        capacity_before: u64::from(ev.capacity_before),
        capacity_after: u64::from(ev.capacity_after),
        local_depth_before: u64::from(ev.local_depth),
        directory_len_before: ev.dir_len_before,
        directory_len_after: ev.dir_len_after,
        partial: ev.read_error != 0,
        origin: None,
        type_name: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::records;
    use crate::timeline::Timeline;

    #[test]
    fn test_same_size_grow_detected() {
        // 40 entries in 8 buckets (B=3) is under 6.5*8 = 52: a grow now is a same-size grow.
        let g = interpret(&records::grow(1, 40, 3, 0), 13, 0);
        assert!(g.same_size);
        assert_eq!((g.buckets_before, g.buckets_after), (8, 8));
        // With Go 1.21's 6.0 the threshold is 48; at 52 entries both double.
        assert!(!interpret(&records::grow(1, 52, 3, 0), 12, 0).same_size);
        assert!(!interpret(&records::grow(1, 52, 3, 0), 13, 0).same_size);
        assert!(interpret(&records::grow(1, 51, 3, 0), 13, 0).same_size);
        assert!(!interpret(&records::grow(1, 51, 3, 0), 12, 0).same_size);
    }

    #[test]
    fn test_bytes_allocated_includes_preallocated_overflow() {
        // B 3 → 4: 16 buckets + 1 overflow bucket of 144 bytes.
        let g = interpret(&records::grow(1, 52, 3, 0), 13, 0);
        assert_eq!(g.bytes_allocated, 17 * 144);
        // B 0 → 1: 2 buckets.
        assert_eq!(
            interpret(&records::grow(1, 8, 0, 0), 13, 0).bytes_allocated,
            2 * 144
        );
        // Garbage B does not overflow.
        let _ = interpret(&records::grow(1, u64::MAX, 200, 0), 13, 0);
    }

    #[test]
    fn test_interpret_swiss_untimed_when_the_duration_is_zero() {
        // The body probes send growToTable (always) and table resizes (once the budget shed
        // the timing) with duration 0; the RET probe stamps at least 1.
        let mut ev = records::swiss(EventKind::MapSmallToTable, 0xa, 8, 0, 1);
        ev.duration_ns = 0;
        assert_eq!(interpret_swiss(&ev, 0).unwrap().duration_ns, None);
        ev.duration_ns = 1;
        assert_eq!(interpret_swiss(&ev, 0).unwrap().duration_ns, Some(1));
        // An untimed resize adds nothing to the map's durations.
        let mut t = Timeline::new();
        let mut r =
            interpret_swiss(&records::swiss(EventKind::MapTableGrow, 0xb, 16, 1, 1), 0).unwrap();
        t.push_swiss(&r);
        r.duration_ns = None;
        r.capacity_before = 32;
        r.capacity_after = 64;
        t.push_swiss(&r);
        let (maps, _) = t.finish(100);
        let sw = maps[0].swiss.as_ref().unwrap();
        assert_eq!((sw.table_grows, sw.total_duration_ns), (2, 70_000));
    }
}
