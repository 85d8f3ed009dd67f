//! Probe families. Each program is attached by userspace at a file offset it computed.

pub mod calibrate;
pub mod discover;
pub mod exec;
pub mod fatal;
pub mod hmap;
pub mod slices;
pub mod swiss;

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user},
    programs::ProbeContext,
};
use map_trace_common::event::{EventHeader, EventKind, Stack};

use crate::{go_abi, maps::Hit};

/// The header of a record of `kind`, stamped now.
#[inline(always)]
pub fn header(kind: EventKind, hit: &Hit, goid: u64) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tid: hit.tid,
        pid: hit.tgid,
        exe: hit.exe,
        goid,
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
    }
}

/// `hmap.count`, `flags`, `B` and `noverflow` from one 16-byte read at `h` (the fields lie
/// within 16 bytes of `count` in every version; golayout checks it): each user-memory read
/// costs the traced program time.
#[inline(always)]
pub fn hmap_head(
    h: u64,
    l: &map_trace_common::config::MapLayout,
    err: &mut u8,
) -> (u64, u8, u8, u16) {
    let head: [u8; 16] = read(h + l.hmap_count as u64, err);
    let at = |off: u32| head[(off.wrapping_sub(l.hmap_count) & 15) as usize];
    let count = u64::from_le_bytes([
        head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
    ]);
    let noverflow = u16::from_le_bytes([at(l.hmap_noverflow), at(l.hmap_noverflow + 1)]);
    (count, at(l.hmap_flags), at(l.hmap_b), noverflow)
}

/// The caller chain at a body probe (before the probed function pushed its frame): the return
/// address, then Go's frame-pointer chain, `[fp]` = next fp and `[fp+8]` = return address on
/// both amd64 and arm64. Stops at `--stack-depth` addresses, or at a zero or unreadable frame
/// (a garbage frame pointer of cgo or assembly code ends the walk: every read is checked, the
/// loop bounded); one 16-byte read per frame. Written in place (`s` may be map memory): a
/// returned `Stack` would cost BPF stack space. Returns the depth.
#[inline(always)]
pub fn fill_stack<const N: usize>(ctx: &ProbeContext, s: &mut Stack<N>) -> u32 {
    s.depth = 0;
    let (ret, mut fp) = go_abi::return_and_fp(ctx);
    if ret == 0 {
        return 0;
    }
    let limit = crate::maps::stack_depth() as usize;
    s.pcs[0] = ret;
    s.depth = 1;
    for i in 1..N {
        if fp == 0 || i >= limit {
            break;
        }
        // SAFETY: bpf_probe_read_user copies from target memory and fails cleanly.
        let Ok(frame) = (unsafe { bpf_probe_read_user(fp as *const [u64; 2]) }) else {
            break;
        };
        if frame[1] == 0 {
            break;
        }
        s.pcs[i] = frame[1];
        s.depth = i as u32 + 1;
        fp = frame[0];
    }
    s.depth
}

/// Reads a `T` from target memory; on failure sets `*err` and returns the default.
#[inline(always)]
pub fn read<T: Copy + Default>(addr: u64, err: &mut u8) -> T {
    // SAFETY: bpf_probe_read_user copies from target memory and fails cleanly on a bad address.
    match unsafe { bpf_probe_read_user(addr as *const T) } {
        Ok(v) => v,
        Err(_) => {
            *err = 1;
            T::default()
        }
    }
}
