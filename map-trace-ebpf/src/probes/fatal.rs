//! The runtime's fatal-error path: where Go kills a process that misused a map.
//!
//! `runtime.fatal(s string)` prints `fatal error: <s>` and ends the process; the map functions
//! call it on `concurrent map writes`, `concurrent map read and map write` and `concurrent map
//! iteration and map write` (directly, or through `internal/runtime/maps.fatal` in Swiss
//! builds). Go 1.18's map functions call `runtime.throw(s string)` instead, which has the same
//! signature. The probe never fires in a healthy process, so it costs nothing until it does.
//!
//! `fatal` is given only the message and Go keeps nothing in callee-saved registers, so the
//! record also carries the registers and the top of the goroutine's stack as the map function
//! left them at its call: userspace decodes that function per binary to find the map there.
//! <https://github.com/golang/go/blob/go1.23.9/src/runtime/panic.go#L1085>

use aya_ebpf::{
    bindings::BPF_RB_FORCE_WAKEUP,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated::bpf_probe_read_user},
    macros::uprobe,
    programs::ProbeContext,
};
use map_trace_common::{
    config::Counter,
    event::{EventKind, MapFatalEvent, FATAL_MESSAGE_BYTES, FATAL_WINDOW},
};

use crate::{
    go_abi,
    maps::{self, PendingKey},
    probes::{fill_stack, header, read},
};

/// Smaller stack read tried when the full window crosses the end of a mapping.
const SHORT_WINDOW: usize = 256;

/// Body of `runtime.fatal(s string)` (or `runtime.throw`): the string's pointer and length are
/// the first two integer arguments.
#[uprobe]
pub fn map_fatal(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsFatal, map_fatal_handler)
}

fn map_fatal_handler(ctx: ProbeContext) -> u32 {
    try_map_fatal(&ctx);
    0
}

/// Entry of `internal/runtime/maps.fatal(s string)`, the Swiss maps' wrapper (Go 1.24+), before
/// its stack check. A check that fails (the goroutine asked to stop, or short of stack) sends
/// it through `morestack_noctxt`, which keeps only the arguments (DX zeroed, CX left at the
/// stack's base) and restarts the wrapper at its entry: a probe past the check would see the
/// map function's registers overwritten. So the record is taken at the first entry and a
/// restart is skipped.
#[uprobe]
pub fn map_fatal_entry(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsFatal, map_fatal_entry_handler)
}

fn map_fatal_entry_handler(ctx: ProbeContext) -> u32 {
    if !restarted(&ctx) {
        try_map_fatal(&ctx);
    }
    0
}

/// Whether this entry is the restart of one already recorded: the same goroutine (`g`) back
/// at the wrapper's entry for the same caller, soon after (the stack pointer moved if the
/// stack grew). `fatal` never returns, so a goroutine enters the wrapper once, and again only
/// through `morestack`. The check cannot be told in advance: the goroutine that dies first
/// asks every other one to stop (`freezetheworld`), which may land between this probe and
/// the check. Entries are kept (a restart may restart again, a preemption then a growth) and
/// age out: one older than [`RESTART_WINDOW_NS`] is another process's that had this tgid.
#[inline(always)]
fn restarted(ctx: &ProbeContext) -> bool {
    let tgid = bpf_get_current_pid_tgid() >> 32;
    let key: PendingKey = [go_abi::g(ctx), tgid];
    let (ret, _) = go_abi::return_and_fp(ctx);
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the value is copied out at once.
    if let Some(&[r, t]) = unsafe { maps::FATAL_ENTERED.get(&key) } {
        if r == ret && now.wrapping_sub(t) < RESTART_WINDOW_NS {
            return true;
        }
    }
    let _ = maps::FATAL_ENTERED.insert(&key, &[ret, now], 0);
    false
}

/// How long after a recorded entry a restart can come: the process is dying, and a restart
/// follows within milliseconds or never.
const RESTART_WINDOW_NS: u64 = 10_000_000_000;

/// Copies `len` bytes of target memory at `src` to `dst` (ring buffer memory); false when the
/// read failed (the kernel zeroes `dst` then).
#[inline(always)]
fn copy_user(dst: *mut u8, len: u32, src: u64) -> bool {
    // SAFETY: `dst` points at `len` writable bytes of a reserved ring buffer record; the
    // helper copies from target memory and fails cleanly on a bad address.
    unsafe { bpf_probe_read_user(dst.cast(), len, src as *const _) == 0 }
}

fn try_map_fatal(ctx: &ProbeContext) {
    let Some(hit) = maps::hit(ctx) else { return };
    maps::count(Counter::HitsFatal);
    let mut err = 0u8;
    let goid: u64 = read(go_abi::g(ctx) + hit.layout.g_goid as u64, &mut err);
    let (msg_ptr, msg_len) = (go_abi::arg(ctx, 0), go_abi::arg(ctx, 1));
    let sp = go_abi::sp(ctx);

    let Some(mut entry) = maps::EVENTS.reserve::<MapFatalEvent>(0) else {
        maps::count(Counter::Lost);
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned record of the right size; every
    // field is written below before the record is submitted (the arrays by the read helper,
    // which zeroes its destination on failure).
    unsafe {
        (*ev).header = header(EventKind::MapFatal, &hit, goid);
        (*ev).sp = sp;
        (*ev).fp = go_abi::fp(ctx);
        go_abi::all_regs(ctx, &mut (*ev).regs);
        (*ev).message_len = msg_len;
        // A bounded length the verifier can check: the messages wanted are 21–38 bytes.
        let n = if msg_len < FATAL_MESSAGE_BYTES as u64 {
            msg_len as u32
        } else {
            FATAL_MESSAGE_BYTES as u32
        };
        (*ev).message = [0; FATAL_MESSAGE_BYTES];
        if n > 0 && !copy_user((*ev).message.as_mut_ptr(), n, msg_ptr) {
            err = 1;
        }
        let window = (*ev).window.as_mut_ptr();
        (*ev).window_len = if copy_user(window, FATAL_WINDOW as u32, sp) {
            FATAL_WINDOW as u32
        } else if copy_user(window, SHORT_WINDOW as u32, sp) {
            SHORT_WINDOW as u32
        } else {
            err = 1;
            0
        };
        fill_stack(ctx, &mut (*ev).stack);
        (*ev).read_error = u32::from(err);
    }
    if err != 0 {
        maps::count(Counter::ReadErrors);
    }
    // The process is about to die: wake the reader now, whatever the batching threshold.
    entry.submit(BPF_RB_FORCE_WAKEUP as u64);
}
