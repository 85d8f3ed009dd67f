//! Agent mode: tell userspace about every `execve`, so a new Go process is found in
//! milliseconds instead of at the next /proc scan.

use aya_ebpf::{
    bindings::BPF_RB_FORCE_WAKEUP,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use map_trace_common::{
    config::Counter,
    event::{EventHeader, EventKind},
};

use crate::maps;

/// The raw tracepoint `sched_process_exec` (attached with `BPF_RAW_TRACEPOINT_OPEN`, Linux 4.17+:
/// it needs neither tracefs nor BTF): the calling process now runs a new image. Only the tgid is sent;
/// userspace reads the rest from /proc, which it must do before a short-lived process is gone:
/// so this record always wakes the reader (probe records queue silently and would otherwise
/// leave the ring non-empty, which makes the kernel's adaptive wakeup skip this one too).
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_exec(_ctx: RawTracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let ev = EventHeader {
        kind: EventKind::Exec as u32,
        tid: pid_tgid as u32,
        pid: (pid_tgid >> 32) as u32,
        exe: 0,
        goid: 0,
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
    };
    if maps::EVENTS
        .output::<EventHeader>(&ev, BPF_RB_FORCE_WAKEUP as u64)
        .is_err()
    {
        maps::count(Counter::LostExec);
    }
    0
}
