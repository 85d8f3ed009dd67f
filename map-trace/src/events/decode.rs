//! Ring-buffer record bytes → typed events. The userspace `unsafe` for reading records lives
//! here (unaligned reads of plain-data structs whose size was checked first).

use map_trace_common::event::{
    stack_record_len, EvacuateStepEvent, EventHeader, EventKind, MapEvacuatedEvent, MapFatalEvent,
    MapGrowEvent, SliceEvent, Stack, SwissEvent, UnknownKind, WireRecord,
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

/// A record whose last field is a [`Stack`], sent cut after its stack's `depth` return
/// addresses (`stack_record_len`): the missing addresses read as zero. Shorter than its
/// stack's depth says is an error.
fn read_cut<T: WireRecord>(
    bytes: &[u8],
    what: &'static str,
    stack: fn(&T) -> &Stack,
) -> Result<T, DecodeError> {
    let size = size_of::<T>();
    let least = stack_record_len(size, 0);
    if bytes.len() < least {
        return Err(DecodeError::Short {
            len: bytes.len(),
            what,
        });
    }
    let mut full = vec![0u8; size];
    let n = bytes.len().min(size);
    full[..n].copy_from_slice(&bytes[..n]);
    let v: T = read(&full, what)?;
    if bytes.len() < stack_record_len(size, stack(&v).depth) {
        return Err(DecodeError::Short {
            len: bytes.len(),
            what,
        });
    }
    Ok(v)
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: EventHeader = read(bytes, "an event header")?;
    match EventKind::try_from(header.kind)? {
        EventKind::MapGrow => Ok(Event::MapGrow(read_cut(
            bytes,
            "a map_grow record",
            |e: &MapGrowEvent| &e.stack,
        )?)),
        EventKind::MapSmallToTable
        | EventKind::MapTableGrow
        | EventKind::MapTableSplit
        | EventKind::MapSmallAlloc => Ok(Event::Swiss(read_cut(
            bytes,
            "a Swiss-table record",
            |e: &SwissEvent| &e.stack,
        )?)),
        EventKind::Exec => Ok(Event::Exec(header)),
        EventKind::SliceGrow => Ok(Event::Slice(read_cut(
            bytes,
            "a slice_grow record",
            |e: &SliceEvent| &e.stack,
        )?)),
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
            decode(&as_bytes(&ev)[..100]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn test_decode_reads_records_cut_after_their_stack() {
        let mut g = grow();
        g.stack.depth = 3;
        g.stack.pcs[..3].copy_from_slice(&[0x401000, 0x402000, 0x403000]);
        let bytes = as_bytes(&g);
        let cut = stack_record_len(bytes.len(), 3);
        assert_eq!(cut, 80 + 8 + 24);
        assert_eq!(decode(&bytes[..cut]), Ok(Event::MapGrow(g)));
        // Shorter than its depth says: an error, not a stack of zeroes.
        assert!(matches!(
            decode(&bytes[..cut - 8]),
            Err(DecodeError::Short { .. })
        ));
        // The whole record decodes too.
        assert_eq!(decode(bytes), Ok(Event::MapGrow(g)));
    }

    /// The sizes the README's events-per-MiB table is computed from.
    #[test]
    fn test_record_sizes_per_stack_depth() {
        let swiss = size_of::<SwissEvent>();
        let sizes: Vec<usize> = [8, 12, 16, 32, 64]
            .iter()
            .map(|&d| stack_record_len(swiss, d))
            .collect();
        assert_eq!(sizes, [176, 208, 240, 368, 624]);
        let per_mib: Vec<usize> = sizes.iter().map(|s| (1 << 20) / (s + 8)).collect();
        assert_eq!(per_mib, [5698, 4854, 4228, 2788, 1659]);
        // Hash-map grows are 24 bytes smaller, slices 16.
        assert_eq!(stack_record_len(size_of::<MapGrowEvent>(), 16), 216);
        assert_eq!(stack_record_len(size_of::<SliceEvent>(), 16), 224);
        // The default ring keeps at least 27,000 events of the default depth.
        assert!((8 << 20) / (sizes[2] + 8) >= 27_000);
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
