//! Return instructions of a function, for exit probes (never uretprobes on Go).
//!
//! x86-64 is decoded instruction by instruction: a byte scan for `C3` finds operands and
//! padding too (`growslice` holds 8–11 such bytes but 2 RETs). arm64 instructions are fixed
//! 4-byte words; RET (to X30) is `0xd65f03c0`.

use iced_x86::{Decoder, DecoderOptions, Mnemonic};

use super::elf::Arch;

/// Offsets (from the function start) of every return instruction in `code`.
pub fn ret_offsets(arch: Arch, code: &[u8], addr: u64) -> Vec<u64> {
    match arch {
        Arch::X86_64 => {
            let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
            let mut out = vec![];
            while decoder.can_decode() {
                let insn = decoder.decode();
                if insn.mnemonic() == Mnemonic::Ret {
                    out.push(insn.ip() - addr);
                }
            }
            out
        }
        Arch::Aarch64 => code
            .chunks_exact(4)
            .enumerate()
            .filter(|(_, w)| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) == 0xd65f_03c0)
            .map(|(i, _)| i as u64 * 4)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ret_offsets_x86_ignores_c3_operands() {
        // MOV EAX, 0xC3C3C3C3; RET; INT3 padding
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xcc, 0xcc];
        assert_eq!(ret_offsets(Arch::X86_64, &code, 0x1000), vec![5]);
        // ADD RSP, 0x58; POP RBP; RET; ... RET imm16
        let code = [0x48, 0x83, 0xc4, 0x58, 0x5d, 0xc3, 0x90, 0xc2, 0x08, 0x00];
        assert_eq!(ret_offsets(Arch::X86_64, &code, 0x1000), vec![5, 7]);
    }

    #[test]
    fn test_ret_offsets_arm64_words() {
        let words: [u32; 4] = [0xd65f_03c0, 0xaa0003e1, 0xc0035fd6, 0xd65f_03c0];
        let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(ret_offsets(Arch::Aarch64, &code, 0), vec![0, 12]);
    }
}
