//! Slices (opt-in `--slices`): `runtime.growslice`, the runtime half of `append` when the
//! backing array is full. Every call traps twice (body and return), so this family costs
//! far more than the map probes on append-heavy code; `--min-bytes` only trims the output.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::uprobe, programs::ProbeContext};
use map_trace_common::{
    config::Counter,
    event::EventKind,
};

use crate::{
    go_abi,
    maps::{self, PendingKey},
    probes::{fill_stack, header, read},
};

/// `growslice` entered (body probe): the arguments, keyed by goroutine for the return probe.
/// Go 1.20+: `growslice(oldPtr unsafe.Pointer, newLen, oldCap, num int, et *_type) slice`;
/// Go 1.18/1.19: `growslice(et *_type, old slice, cap int) slice`.
/// <https://github.com/golang/go/blob/go1.23.9/src/runtime/slice.go#L177>
#[uprobe]
pub fn slice_grow(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsSlices, slice_grow_handler)
}

fn slice_grow_handler(ctx: ProbeContext) -> u32 {
    let Some(hit) = maps::hit(&ctx) else { return 0 };
    let l = hit.layout;
    maps::count(Counter::HitsGrowslice);
    let Some(ev) = maps::slice_scratch() else {
        return 0;
    };
    // Every register is loaded at its fixed context offset first: choosing the offset by
    // version would make the compiler compute a context pointer, which the verifier refuses.
    let a: [u64; 5] = [
        go_abi::arg_fixed(&ctx, 0),
        go_abi::arg_fixed(&ctx, 1),
        go_abi::arg_fixed(&ctx, 2),
        go_abi::arg_fixed(&ctx, 3),
        go_abi::arg_fixed(&ctx, 4),
    ];
    let (et, old_cap, new_len) = if l.growslice_abi == 1 {
        (a[0], a[3], a[4])
    } else {
        (a[4], a[2], a[1])
    };
    let g = go_abi::g(&ctx);
    let mut err = 0u8;
    let goid: u64 = read(g + l.g_goid as u64, &mut err);
    ev.header = header(EventKind::SliceGrow, &hit, goid);
    ev.elem_type = et;
    ev.old_cap = old_cap;
    ev.new_len = new_len;
    ev.elem_size = read(et + l.type_size as u64, &mut err);
    ev.read_error = err;
    fill_stack(&ctx, &mut ev.stack);
    let key: PendingKey = [g, u64::from(hit.tgid)];
    let _ = maps::PENDING_SLICE.insert(&key, &*ev, 0);
    0
}

/// RET of `growslice`: the new slice is in the result registers (ptr, len, cap).
#[uprobe]
pub fn slice_grow_ret(ctx: ProbeContext) -> u32 {
    maps::timed(ctx, Counter::NsSlices, slice_grow_ret_handler)
}

fn slice_grow_ret_handler(ctx: ProbeContext) -> u32 {
    let Some(hit) = maps::hit(&ctx) else { return 0 };
    maps::count(Counter::HitsGrowsliceRet);
    let key: PendingKey = [go_abi::g(&ctx), u64::from(hit.tgid)];
    let Some(ev) = maps::slice_scratch() else {
        return 0;
    };
    if !maps::take_pending(&maps::PENDING_SLICE, &key, ev) {
        return 0;
    }
    ev.new_cap = go_abi::arg(&ctx, 2);
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    ev.duration_ns = now.saturating_sub(ev.header.ts_ns);
    maps::output_with_stack(ev, ev.stack.depth);
    0
}
