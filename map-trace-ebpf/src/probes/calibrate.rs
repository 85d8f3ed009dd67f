//! Start-up calibration: userspace probes one of its own functions with this program and times
//! a loop of calls with and without it, to learn what one probe hit costs on this host. Does
//! what every map-trace program does first (identify the process, count the hit).

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::uprobe, programs::ProbeContext};
use map_trace_common::config::Counter;

use crate::maps;

/// Counts one hit.
#[uprobe]
pub fn calibrate(_ctx: ProbeContext) -> u32 {
    let _ = bpf_get_current_pid_tgid();
    maps::count(Counter::Calibration);
    0
}
