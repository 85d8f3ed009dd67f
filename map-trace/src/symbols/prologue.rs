//! Finds where a Go function's body starts: the first instruction after the prologue's stack
//! check.
//!
//! Go functions begin `CMPQ SP, 16(R14); JBE morestack` (amd64; larger frames compare
//! `LEAQ -N(SP), R12` instead) or `MOVD 16(R28), R16; CMP …; BLS` (arm64). When the check fails
//! (stack growth or a preemption request) the function calls `morestack` and jumps back to its
//! first instruction, so a probe at offset 0 fires twice for one call. A probe on the body
//! instruction fires exactly once. Computed per binary by decoding; never hard-coded.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Mnemonic, OpKind, Register};

use super::elf::Arch;

/// Offset of the body from the function's start, or 0 when the function has no stack check
/// (`NOSPLIT` functions cannot detour through `morestack`).
pub fn body_offset(arch: Arch, code: &[u8], addr: u64) -> u64 {
    match arch {
        Arch::X86_64 => body_offset_x86(code, addr),
        Arch::Aarch64 => body_offset_arm64(code),
    }
}

fn body_offset_x86(code: &[u8], addr: u64) -> u64 {
    let code = &code[..code.len().min(64)];
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut saw_guard_cmp = false;
    for _ in 0..4 {
        if !decoder.can_decode() {
            break;
        }
        let insn = decoder.decode();
        if insn.is_invalid() {
            break;
        }
        if insn.mnemonic() == Mnemonic::Cmp
            && (0..insn.op_count()).any(|i| insn.op_kind(i) == OpKind::Memory)
            && insn.memory_base() == Register::R14
            && insn.memory_displacement64() == 16
        {
            saw_guard_cmp = true;
            continue;
        }
        if saw_guard_cmp {
            if insn.flow_control() == FlowControl::ConditionalBranch {
                return insn.next_ip() - addr;
            }
            break;
        }
    }
    0
}

fn body_offset_arm64(code: &[u8]) -> u64 {
    // MOVD 16(R28), R16 == LDR X16, [X28, #16]
    const LDR_X16_G_STACKGUARD0: u32 = 0xF940_0B90;
    let words: Vec<u32> = code
        .chunks_exact(4)
        .take(6)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    if words.first() != Some(&LDR_X16_G_STACKGUARD0) {
        return 0;
    }
    for (i, w) in words.iter().enumerate().skip(1) {
        // B.cond: 0101 0100 imm19 0 cond
        if w & 0xFF00_0010 == 0x5400_0000 {
            return (i as u64 + 1) * 4;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_body_offset_x86_small_frame_rel32() {
        // CMPQ SP, 0x10(R14); JBE rel32; PUSHQ BP
        let code = [
            0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x10, 0x01, 0x00, 0x00, 0x55,
        ];
        assert_eq!(body_offset(Arch::X86_64, &code, 0x401000), 0xa);
    }

    #[test]
    fn test_body_offset_x86_small_frame_rel8() {
        // CMPQ SP, 0x10(R14); JBE rel8; PUSHQ BP
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0x55];
        assert_eq!(body_offset(Arch::X86_64, &code, 0x401000), 0x6);
    }

    #[test]
    fn test_body_offset_x86_large_frame() {
        // LEAQ -0x88(SP), R12; CMPQ R12, 0x10(R14); JBE rel32; PUSHQ BP
        let code = [
            0x4c, 0x8d, 0xa4, 0x24, 0x78, 0xff, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86,
            0x00, 0x01, 0x00, 0x00, 0x55,
        ];
        assert_eq!(body_offset(Arch::X86_64, &code, 0x401000), 0x12);
    }

    #[test]
    fn test_body_offset_x86_nosplit_is_zero() {
        // PUSHQ BP; MOVQ SP, BP; ...
        let code = [0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10];
        assert_eq!(body_offset(Arch::X86_64, &code, 0x401000), 0);
        assert_eq!(body_offset(Arch::X86_64, &[], 0x401000), 0);
    }

    #[test]
    fn test_body_offset_arm64() {
        let words: [u32; 4] = [0xF940_0B90, 0xEB3063FF, 0x5400_0869, 0xF81B0FFE];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(body_offset(Arch::Aarch64, &code, 0x11000), 0xc);
        let words: [u32; 5] = [0xF940_0B90, 0xD1020FF1, 0xEB10023F, 0x5400_0869, 0xF81B0FFE];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(body_offset(Arch::Aarch64, &code, 0x11000), 0x10);
        assert_eq!(body_offset(Arch::Aarch64, &[0; 16], 0x11000), 0);
    }
}
