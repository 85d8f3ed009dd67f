//! Go's internal register ABI (ABIInternal), per architecture.
//!
//! amd64: integer arguments in RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11; the current `g` in R14.
//! arm64: integer arguments in R0–R15; the current `g` in R28.
//! (`cmd/compile/abi-internal.md` in the Go source tree.)

use aya_ebpf::programs::ProbeContext;

/// The `n`th integer argument (0-based) at a function's entry or body.
#[inline(always)]
pub fn arg(ctx: &ProbeContext, n: usize) -> u64 {
    // SAFETY: `ctx.regs` is the pt_regs pointer the kernel passes to every uprobe program; the
    // verifier allows direct loads from the context.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        match n {
            0 => regs.rax,
            1 => regs.rbx,
            2 => regs.rcx,
            3 => regs.rdi,
            4 => regs.rsi,
            5 => regs.r8,
            6 => regs.r9,
            7 => regs.r10,
            8 => regs.r11,
            _ => 0,
        }
    }
    #[cfg(bpf_target_arch = "aarch64")]
    {
        if n < 16 {
            regs.regs[n]
        } else {
            0
        }
    }
}

/// General register `N` of the list below, for a probe in the middle of a function where the
/// compiler chose the register (decoded per binary by userspace). `N` is a constant, so each
/// program loads one fixed context field.
/// amd64: RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11 (the argument registers, so `reg::<n>` is
/// `arg(n)` for n < 9), then RDX, R12, R13, R15: `map_trace_common::names::X86_64_REGS`, which
/// userspace decodes with, and xtask checks the built object has one program per register of.
/// arm64: R0–R26.
#[inline(always)]
pub fn reg<const N: usize>(ctx: &ProbeContext) -> u64 {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        match N {
            0..=8 => arg(ctx, N),
            9 => regs.rdx,
            10 => regs.r12,
            11 => regs.r13,
            12 => regs.r15,
            _ => 0,
        }
    }
    #[cfg(bpf_target_arch = "aarch64")]
    {
        if N <= 26 {
            regs.regs[N]
        } else {
            0
        }
    }
}

/// Like [`arg`], but the load is volatile, so it stays at its constant context offset even
/// when the caller then picks among several arguments by a runtime value.
#[inline(always)]
pub fn arg_fixed(ctx: &ProbeContext, n: usize) -> u64 {
    let v = arg(ctx, n);
    // SAFETY: reads a local copy; volatile only pins the preceding context load in place.
    unsafe { core::ptr::read_volatile(&v) }
}

/// The probed instruction's address (the uprobe's address in the process).
#[inline(always)]
pub fn ip(ctx: &ProbeContext) -> u64 {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        regs.rip
    }
    #[cfg(bpf_target_arch = "aarch64")]
    {
        regs.pc
    }
}

/// The current goroutine's `g` pointer.
#[inline(always)]
pub fn g(ctx: &ProbeContext) -> u64 {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        regs.r14
    }
    #[cfg(bpf_target_arch = "aarch64")]
    {
        regs.regs[28]
    }
}

/// At a function's entry or body (before its prologue saves anything): the return address into
/// the caller and the caller's frame pointer. amd64: `[RSP]` and RBP; arm64: LR (X30) and X29.
#[inline(always)]
pub fn return_and_fp(ctx: &ProbeContext) -> (u64, u64) {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        // SAFETY: bpf_probe_read_user fails cleanly on a bad address.
        let ret = unsafe { aya_ebpf::helpers::bpf_probe_read_user(regs.rsp as *const u64) };
        (ret.unwrap_or(0), regs.rbp)
    }
    #[cfg(bpf_target_arch = "aarch64")]
    {
        (regs.regs[30], regs.regs[29])
    }
}

/// The stack pointer at the probe (amd64 RSP, arm64 SP).
#[inline(always)]
pub fn sp(ctx: &ProbeContext) -> u64 {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        regs.rsp
    }
    #[cfg(bpf_target_arch = "aarch64")]
    {
        regs.sp
    }
}

/// The frame pointer at the probe (amd64 RBP, arm64 X29).
#[inline(always)]
pub fn fp(ctx: &ProbeContext) -> u64 {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        regs.rbp
    }
    #[cfg(bpf_target_arch = "aarch64")]
    {
        regs.regs[29]
    }
}

/// Every register of the [`reg`] list into `out` (zero past the list's end on amd64).
#[inline(always)]
pub fn all_regs(ctx: &ProbeContext, out: &mut [u64; map_trace_common::event::FATAL_REGS]) {
    // SAFETY: as in `arg`.
    let regs = unsafe { &*ctx.regs };
    #[cfg(bpf_target_arch = "x86_64")]
    {
        *out = [0; map_trace_common::event::FATAL_REGS];
        out[0] = regs.rax;
        out[1] = regs.rbx;
        out[2] = regs.rcx;
        out[3] = regs.rdi;
        out[4] = regs.rsi;
        out[5] = regs.r8;
        out[6] = regs.r9;
        out[7] = regs.r10;
        out[8] = regs.r11;
        out[9] = regs.rdx;
        out[10] = regs.r12;
        out[11] = regs.r13;
        out[12] = regs.r15;
    }
    #[cfg(bpf_target_arch = "aarch64")]
    {
        for (i, r) in out.iter_mut().enumerate() {
            *r = regs.regs[i];
        }
    }
}
