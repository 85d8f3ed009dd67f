//! The one instruction of `runtime.advanceEvacuationMark` that runs once per finished growth.
//!
//! `advanceEvacuationMark(h, t, newbit)` runs once per evacuated bucket, but its last block,
//! `if h.nevacuate == newbit { h.oldbuckets = nil; …; h.flags &^= sameSizeGrow }`, runs once per
//! growth. The block ends with the only one-byte store to `h.flags` in the function
//! (`MOVB CL, 8(AX)` on amd64, `MOVB R1, 8(R0)` = `STRB W1, [X0, #8]` on arm64 in every release
//! checked, 1.19–1.25), after the 8-byte store of nil to `h.oldbuckets`. Both paths of the
//! `oldbuckets` write barrier join before it. The base register of that store holds `h`; which
//! register the compiler picked is decoded per binary, never assumed.

use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};

use super::elf::Arch;

/// Where to probe, and which register holds `*hmap` there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinishSite {
    /// Offset of the instruction from the function start.
    pub offset: u64,
    /// Index of the register in the eBPF side's `go_abi::reg` list.
    pub reg: usize,
}

/// Why the block was not found (the caller falls back to inferring ends).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FinishError {
    /// No one-byte store to `flags` paired with a nil store to `oldbuckets` on the same base.
    #[error("no store to h.flags after h.oldbuckets = nil")]
    NotFound,
    /// More than one candidate: the code is not the shape this decoder knows.
    #[error("{0} candidate stores to h.flags")]
    Ambiguous(usize),
    /// The base register is one no eBPF program reads.
    #[error("h is in a register map-trace does not read ({0})")]
    Register(String),
}

/// amd64 registers in `go_abi::reg` order.
const X86_REGS: [Register; 13] = [
    Register::RAX,
    Register::RBX,
    Register::RCX,
    Register::RDI,
    Register::RSI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::RDX,
    Register::R12,
    Register::R13,
    Register::R15,
];

/// Finds the finishing store in `code` (the whole function at `addr`). `flags` and
/// `oldbuckets` are the `hmap` field offsets.
pub fn finish_site(
    arch: Arch,
    code: &[u8],
    addr: u64,
    flags: u32,
    oldbuckets: u32,
) -> Result<FinishSite, FinishError> {
    match arch {
        Arch::X86_64 => finish_x86(code, addr, flags, oldbuckets),
        Arch::Aarch64 => finish_arm64(code, flags, oldbuckets),
    }
}

fn finish_x86(
    code: &[u8],
    addr: u64,
    flags: u32,
    oldbuckets: u32,
) -> Result<FinishSite, FinishError> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    // Bases that received `MOV qword [base+oldbuckets], 0`, in order.
    let mut nil_stores: Vec<Register> = vec![];
    let mut found: Vec<(u64, Register)> = vec![];
    while decoder.can_decode() {
        let insn = decoder.decode();
        if insn.is_invalid() || insn.op_count() == 0 || insn.op0_kind() != OpKind::Memory {
            continue;
        }
        if insn.memory_index() != Register::None
            || matches!(insn.mnemonic(), Mnemonic::Cmp | Mnemonic::Test)
        {
            continue;
        }
        let base = insn.memory_base();
        let disp = insn.memory_displacement64();
        let size = insn.memory_size().size();
        if insn.mnemonic() == Mnemonic::Mov
            && size == 8
            && disp == u64::from(oldbuckets)
            && insn.op_count() == 2
            && matches!(
                insn.op1_kind(),
                OpKind::Immediate32to64 | OpKind::Immediate32
            )
            && insn.immediate(1) == 0
        {
            nil_stores.push(base);
        } else if size == 1 && disp == u64::from(flags) && nil_stores.contains(&base) {
            found.push((insn.ip() - addr, base));
        }
    }
    match found[..] {
        [] => Err(FinishError::NotFound),
        [(offset, base)] => X86_REGS
            .iter()
            .position(|r| *r == base)
            .map(|reg| FinishSite { offset, reg })
            .ok_or_else(|| FinishError::Register(format!("{base:?}"))),
        _ => Err(FinishError::Ambiguous(found.len())),
    }
}

fn finish_arm64(code: &[u8], flags: u32, oldbuckets: u32) -> Result<FinishSite, FinishError> {
    let mut nil_stores: Vec<u32> = vec![];
    let mut found: Vec<(u64, u32)> = vec![];
    for (i, w) in code.chunks_exact(4).enumerate() {
        let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let rn = (w >> 5) & 31;
        let rt = w & 31;
        // STR Xt, [Xn, #imm12*8] (unsigned offset) with Xt = XZR: `MOVD ZR, off(Rn)`.
        if w & 0xFFC0_0000 == 0xF900_0000 && rt == 31 && ((w >> 10) & 0xFFF) * 8 == oldbuckets {
            nil_stores.push(rn);
            continue;
        }
        // STRB Wt, [Xn, #imm12] (unsigned offset) or STURB Wt, [Xn, #imm9].
        let strb = w & 0xFFC0_0000 == 0x3900_0000 && (w >> 10) & 0xFFF == flags;
        let sturb = w & 0xFFE0_0C00 == 0x3800_0000 && (w >> 12) & 0x1FF == flags;
        if (strb || sturb) && nil_stores.contains(&rn) {
            found.push((i as u64 * 4, rn));
        }
    }
    match found[..] {
        [] => Err(FinishError::NotFound),
        [(offset, rn)] if rn <= 26 => Ok(FinishSite {
            offset,
            reg: rn as usize,
        }),
        [(_, rn)] => Err(FinishError::Register(format!("R{rn}"))),
        _ => Err(FinishError::Ambiguous(found.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go 1.23.9 amd64 `advanceEvacuationMark` from `CMPL runtime.writeBarrier(SB), $0` on
    /// (`go tool objdump`), up to the RET.
    const X86_TAIL: &[u8] = &[
        0x83, 0x3d, 0x91, 0x25, 0x18, 0x00, 0x00, // CMPL writeBarrier, $0
        0x90, // NOPL
        0x74, 0x0c, // JE
        0x48, 0x8b, 0x48, 0x18, // MOVQ 0x18(AX), CX
        0xe8, 0xd5, 0xe8, 0x05, 0x00, // CALL gcWriteBarrier1
        0x49, 0x89, 0x0b, // MOVQ CX, 0(R11)
        0x48, 0xc7, 0x40, 0x18, 0x00, 0x00, 0x00, 0x00, // MOVQ $0, 0x18(AX)
        0x48, 0x8b, 0x48, 0x28, // MOVQ 0x28(AX), CX
        0x48, 0x85, 0xc9, // TESTQ CX, CX
        0x74, 0x1d, // JE
        0x48, 0xc7, 0x41, 0x08, 0x00, 0x00, 0x00,
        0x00, // MOVQ $0, 0x8(CX)  (extra.oldoverflow)
        0x0f, 0xb6, 0x48, 0x08, // MOVZX 0x8(AX), CX
        0x83, 0xe1, 0xf7, // ANDL $-9, CX
        0x88, 0x48, 0x08, // MOVB CL, 0x8(AX)
        0x5d, // POPQ BP
        0xc3, // RET
    ];

    #[test]
    fn test_finish_site_x86_go123() {
        let s = finish_site(Arch::X86_64, X86_TAIL, 0x1000, 8, 24).unwrap();
        assert_eq!(s, FinishSite { offset: 54, reg: 0 });
        assert_eq!(X86_TAIL[54..57], [0x88, 0x48, 0x08]);
    }

    #[test]
    fn test_finish_site_x86_needs_the_nil_store() {
        // Without `h.oldbuckets = nil` the flags store is not the finishing block.
        let code = [0x88, 0x48, 0x08, 0xc3];
        assert_eq!(
            finish_site(Arch::X86_64, &code, 0, 8, 24),
            Err(FinishError::NotFound)
        );
        // Twice: ambiguous.
        let mut two = X86_TAIL[..57].to_vec();
        two.extend_from_slice(&[0x88, 0x48, 0x08]);
        assert_eq!(
            finish_site(Arch::X86_64, &two, 0, 8, 24),
            Err(FinishError::Ambiguous(2))
        );
    }

    #[test]
    fn test_finish_site_x86_other_register() {
        // MOVQ $0, 0x18(BX); MOVB DL, 0x8(BX) → RBX is index 1.
        let code = [0x48, 0xc7, 0x43, 0x18, 0, 0, 0, 0, 0x88, 0x53, 0x08, 0xc3];
        assert_eq!(
            finish_site(Arch::X86_64, &code, 0, 8, 24),
            Ok(FinishSite { offset: 8, reg: 1 })
        );
    }

    #[test]
    fn test_finish_site_arm64_go123() {
        // Go 1.23.9 arm64: MOVD ZR, 24(R0); MOVD 40(R0), R1; MOVD ZR, 8(R1);
        // MOVBU 8(R0), R1; AND $-9, R1, R1; MOVB R1, 8(R0); RET
        let words: [u32; 7] = [
            0xf9000c1f, 0xf9401401, 0xf900043f, 0x39402001, 0x927cf821, 0x39002001, 0xd65f03c0,
        ];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(
            finish_site(Arch::Aarch64, &code, 0, 8, 24),
            Ok(FinishSite { offset: 20, reg: 0 })
        );
    }
}
