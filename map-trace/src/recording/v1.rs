//! Recordings of format version 1 (map-trace before `--stack-depth`): their ring-buffer
//! records carried 8-address stacks laid out `pcs[8], depth, pad`. Each is rewritten into
//! the current layout (`depth, pad, pcs[64]`, records cut after their stack) before the
//! pipeline decodes it, so that old recordings still replay.

use map_trace_common::event::{
    stack_record_len, EventKind, MapFatalEvent, MapGrowEvent, SliceEvent, SwissEvent,
    MAX_STACK_FRAMES,
};

/// Return addresses a version 1 stack held.
const V1_FRAMES: usize = 8;
/// Bytes of a version 1 stack.
const V1_STACK: usize = 8 * V1_FRAMES + 8;

/// The record's bytes in the current layout (unchanged for kinds without a stack, and for
/// bytes too short or of an unknown kind: the decoder then reports them as it would have).
pub fn upgrade(bytes: &[u8]) -> Vec<u8> {
    let Some(kind) = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    else {
        return bytes.to_vec();
    };
    let Ok(kind) = EventKind::try_from(kind) else {
        return bytes.to_vec();
    };
    // Where the stack starts in each record: its fields before the stack are unchanged.
    let cut = |size: usize| stack_record_len(size, 0) - 8;
    let at = match kind {
        EventKind::MapGrow => cut(size_of::<MapGrowEvent>()),
        EventKind::MapSmallToTable
        | EventKind::MapTableGrow
        | EventKind::MapTableSplit
        | EventKind::MapSmallAlloc => cut(size_of::<SwissEvent>()),
        EventKind::SliceGrow => cut(size_of::<SliceEvent>()),
        EventKind::MapFatal => {
            return fatal(bytes);
        }
        _ => return bytes.to_vec(),
    };
    let Some(old) = bytes.get(at..at + V1_STACK) else {
        return bytes.to_vec();
    };
    let mut out = bytes[..at].to_vec();
    let depth = u32::from_le_bytes(old[64..68].try_into().unwrap()).min(V1_FRAMES as u32);
    out.extend_from_slice(&depth.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&old[..8 * depth as usize]);
    out
}

/// A fatal record: its stack sits between the message and the stack window.
fn fatal(bytes: &[u8]) -> Vec<u8> {
    // header 32, sp and fp 16, regs 216, message_len 8, message 64, window_len and
    // read_error 8: then the stack.
    let at = 32 + 16 + 216 + 8 + 64 + 8;
    let Some(old) = bytes.get(at..at + V1_STACK) else {
        return bytes.to_vec();
    };
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&old[64..72]);
    out.extend_from_slice(&old[..64]);
    out.extend_from_slice(&[0; 8 * (MAX_STACK_FRAMES - V1_FRAMES)]);
    out.extend_from_slice(&bytes[at + V1_STACK..]);
    debug_assert!(bytes.len() != at + V1_STACK + 2048 || out.len() == size_of::<MapFatalEvent>());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::decode::{decode, Event};
    use crate::testkit::records;

    /// A version 1 record: the fields, then `pcs[8], depth, pad`.
    fn v1(fields: &[u8], pcs: &[u64]) -> Vec<u8> {
        let mut b = fields.to_vec();
        for i in 0..V1_FRAMES {
            b.extend_from_slice(&pcs.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        b.extend_from_slice(&(pcs.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b
    }

    #[test]
    fn test_a_version_1_grow_decodes_with_its_stack() {
        let mut g = records::grow(0xc000, 13, 1, 5);
        g.stack = Default::default();
        g.stack.depth = 2;
        g.stack.pcs[..2].copy_from_slice(&[0x401000, 0x402000]);
        let whole = map_trace_common::event::as_bytes(&g);
        let fields = &whole[..80];
        let old = v1(fields, &[0x401000, 0x402000]);
        assert_eq!(old.len(), 152);
        assert_eq!(decode(&upgrade(&old)), Ok(Event::MapGrow(g)));
        // Records without a stack pass through.
        let short = [1u8, 0, 0, 0];
        assert_eq!(upgrade(&short), short);
    }
}
