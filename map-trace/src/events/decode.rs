//! Ring-buffer record bytes → typed events. The userspace `unsafe` for reading records lives
//! here (unaligned reads of plain-data structs whose size was checked first).

use map_trace_common::event::{
    EvacuateStepEvent, EventHeader, EventKind, MapEvacuatedEvent, MapFatalEvent, MapGrowEvent,
    SliceEvent, SwissEvent, UnknownKind, WireRecord,
};

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `runtime.hashGrow` entered.
    MapGrow(MapGrowEvent),
    /// A Swiss-table resize finished (kind in the header).
    Swiss(SwissEvent),
    /// A process called `execve` (agent mode).
    Exec(EventHeader),
    /// `runtime.growslice` returned (`--slices`).
    Slice(SliceEvent),
    /// A classic map's growth finished.
    Evacuated(MapEvacuatedEvent),
    /// One `evacuate*` call returned (`--evacuation`).
    EvacuateStep(EvacuateStepEvent),
    /// A goroutine entered the runtime's fatal-error path (boxed: it carries a stack window).
    Fatal(Box<MapFatalEvent>),
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its header or its kind's payload.
    #[error("record of {len} bytes is too short for {what}")]
    Short {
        /// Bytes received.
        len: usize,
        /// What was expected.
        what: &'static str,
    },
    /// A kind this build does not know (an eBPF object from another version?).
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
}

impl From<UnknownKind> for DecodeError {
    fn from(k: UnknownKind) -> Self {
        DecodeError::UnknownKind(k.0)
    }
}

fn read<T: WireRecord>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            len: bytes.len(),
            what,
        });
    }
    // SAFETY: the length was checked above, T is plain data (WireRecord: repr(C), every bit
    // pattern valid) and read_unaligned makes no alignment assumption.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: EventHeader = read(bytes, "an event header")?;
    match EventKind::try_from(header.kind)? {
        EventKind::MapGrow => Ok(Event::MapGrow(read(bytes, "a map_grow record")?)),
        EventKind::MapSmallToTable
        | EventKind::MapTableGrow
        | EventKind::MapTableSplit
        | EventKind::MapSmallAlloc => Ok(Event::Swiss(read(bytes, "a Swiss-table record")?)),
        EventKind::Exec => Ok(Event::Exec(header)),
        EventKind::SliceGrow => Ok(Event::Slice(read(bytes, "a slice_grow record")?)),
        EventKind::MapEvacuated => Ok(Event::Evacuated(read(bytes, "a map_evacuated record")?)),
        EventKind::MapEvacuateStep => Ok(Event::EvacuateStep(read(
            bytes,
            "a map_evacuate_step record",
        )?)),
        EventKind::MapFatal => Ok(Event::Fatal(Box::new(read(bytes, "a map_fatal record")?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::records;
    use map_trace_common::event::as_bytes;

    fn grow() -> MapGrowEvent {
        records::grow(0xc000010000, 13, 1, 123)
    }

    #[test]
    fn test_decode_map_grow_roundtrip() {
        let g = grow();
        assert_eq!(decode(as_bytes(&g)), Ok(Event::MapGrow(g)));
        // Unaligned input decodes too.
        let mut buf = vec![0u8];
        buf.extend_from_slice(as_bytes(&g));
        assert_eq!(decode(&buf[1..]), Ok(Event::MapGrow(g)));
    }

    #[test]
    fn test_decode_swiss_record() {
        let ev = SwissEvent {
            header: EventHeader {
                kind: EventKind::MapTableSplit as u32,
                pid: 3,
                ..Default::default()
            },
            map: 0xc0001,
            capacity_before: 1024,
            capacity_after: 1024,
            duration_ns: 70_000,
            ..Default::default()
        };
        assert_eq!(decode(as_bytes(&ev)), Ok(Event::Swiss(ev)));
        assert!(matches!(
            decode(&as_bytes(&ev)[..150]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn test_decode_rejects_short_and_unknown() {
        let g = grow();
        let bytes = as_bytes(&g);
        assert!(matches!(
            decode(&bytes[..16]),
            Err(DecodeError::Short { .. })
        ));
        assert!(matches!(
            decode(&bytes[..40]),
            Err(DecodeError::Short { .. })
        ));
        let mut bad = g;
        bad.header.kind = 99;
        assert_eq!(decode(as_bytes(&bad)), Err(DecodeError::UnknownKind(99)));
    }
}
