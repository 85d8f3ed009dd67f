//! The instruction of `runtime.advanceEvacuationMark` that runs once per finished growth.
//!
//! `advanceEvacuationMark(h, t, newbit)` runs once per evacuated bucket, but its last block,
//! `if h.nevacuate == newbit { h.oldbuckets = nil; …; h.flags &^= sameSizeGrow }`, runs once per
//! growth. The block ends with the only one-byte store to `h.flags` in the function
//! (`MOVB CL, 8(AX)` on amd64, `MOVB R1, 8(R0)` = `STRB W1, [X0, #8]` on arm64 in every release
//! checked, 1.19–1.25), after the 8-byte store of nil to `h.oldbuckets`. Both paths of the
//! `oldbuckets` write barrier join before it. The base register of that store holds `h`; which
//! register the compiler picked is decoded per binary, never assumed.
//!
//! A store is single-stepped by the kernel (~11–14 µs per hit on a VM). So the probe goes, when
//! one exists, on an instruction the kernel emulates that runs exactly as often as the store
//! with `h` still in the same register (see [`flow::Cfg::equivalent_before`]): in every release
//! checked, the `Jcc` of `if h.extra != nil` on amd64 and the `CBZ` of the same test on arm64.
//! The store stays the fallback.

use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};

use super::{
    elf::Arch,
    flow::{self, X86_REGS},
};

/// Where to probe, and which register holds `*hmap` there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinishSite {
    /// Offset of the instruction from the function start.
    pub offset: u64,
    /// Index of the register in the eBPF side's `go_abi::reg` list.
    pub reg: usize,
    /// The kernel emulates the instruction (one trap per hit); `false` for the store fallback,
    /// which it single-steps.
    pub emulated: bool,
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

/// Finds where to probe the finishing block in `code` (the whole function at `addr`): an
/// emulated instruction equivalent to the finishing store, or the store itself. `flags` and
/// `oldbuckets` are the `hmap` field offsets.
pub fn finish_site(
    arch: Arch,
    code: &[u8],
    addr: u64,
    flags: u32,
    oldbuckets: u32,
) -> Result<FinishSite, FinishError> {
    let store = finish_store(arch, code, addr, flags, oldbuckets)?;
    Ok(emulated_equivalent(arch, code, addr, store).unwrap_or(store))
}

/// The finishing store itself.
pub fn finish_store(
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

/// The last emulated instruction that runs exactly once per run of the store, with `h` in the
/// same register.
fn emulated_equivalent(
    arch: Arch,
    code: &[u8],
    addr: u64,
    store: FinishSite,
) -> Option<FinishSite> {
    let cfg = flow::decode(arch, code, addr)?;
    let at = cfg.insn_at(store.offset)?;
    cfg.equivalent_before(at, store.reg as u32)
        .into_iter()
        .rev()
        .find(|&i| cfg.insns[i].emulated)
        .map(|i| FinishSite {
            offset: cfg.insns[i].offset,
            reg: store.reg,
            emulated: true,
        })
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
            .map(|reg| FinishSite {
                offset,
                reg,
                emulated: false,
            })
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
            emulated: false,
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
        let s = finish_store(Arch::X86_64, X86_TAIL, 0x1000, 8, 24).unwrap();
        assert_eq!(
            s,
            FinishSite {
                offset: 54,
                reg: 0,
                emulated: false
            }
        );
        assert_eq!(X86_TAIL[54..57], [0x88, 0x48, 0x08]);
    }

    #[test]
    fn test_finish_site_x86_needs_the_nil_store() {
        // Without `h.oldbuckets = nil` the flags store is not the finishing block.
        let code = [0x88, 0x48, 0x08, 0xc3];
        assert_eq!(
            finish_store(Arch::X86_64, &code, 0, 8, 24),
            Err(FinishError::NotFound)
        );
        // Twice: ambiguous.
        let mut two = X86_TAIL[..57].to_vec();
        two.extend_from_slice(&[0x88, 0x48, 0x08]);
        assert_eq!(
            finish_store(Arch::X86_64, &two, 0, 8, 24),
            Err(FinishError::Ambiguous(2))
        );
    }

    #[test]
    fn test_finish_site_x86_other_register() {
        // MOVQ $0, 0x18(BX); MOVB DL, 0x8(BX) → RBX is index 1.
        let code = [0x48, 0xc7, 0x43, 0x18, 0, 0, 0, 0, 0x88, 0x53, 0x08, 0xc3];
        assert_eq!(
            finish_store(Arch::X86_64, &code, 0, 8, 24),
            Ok(FinishSite {
                offset: 8,
                reg: 1,
                emulated: false
            })
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
            finish_store(Arch::Aarch64, &code, 0, 8, 24),
            Ok(FinishSite {
                offset: 20,
                reg: 0,
                emulated: false
            })
        );
    }

    /// `runtime.advanceEvacuationMark` as the linker wrote it in each classic release (bytes
    /// from the ELF, `testdata/advanceEvacuationMark-go*.hex`), with the offsets `go tool
    /// objdump` shows for the finishing store and for the test of `if h.extra != nil` (`JE`
    /// after `TESTQ` on amd64, `CBZ R1` on arm64) that the probe now sits on.
    const RELEASES: [(&str, Arch, u64, u64); 12] = [
        ("go1.19-amd64", Arch::X86_64, 183, 144),
        ("go1.21.13-amd64", Arch::X86_64, 163, 125),
        ("go1.22.10-amd64", Arch::X86_64, 163, 125),
        ("go1.23.9-amd64", Arch::X86_64, 163, 125),
        ("go1.24.11-amd64", Arch::X86_64, 163, 125),
        ("go1.25.5-amd64", Arch::X86_64, 163, 125),
        ("go1.19-arm64", Arch::Aarch64, 204, 156),
        ("go1.21.13-arm64", Arch::Aarch64, 188, 148),
        ("go1.22.10-arm64", Arch::Aarch64, 188, 148),
        ("go1.23.9-arm64", Arch::Aarch64, 188, 148),
        ("go1.24.11-arm64", Arch::Aarch64, 188, 148),
        ("go1.25.5-arm64", Arch::Aarch64, 188, 148),
    ];

    fn release_code(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/src/symbols/testdata/advanceEvacuationMark-{name}.hex",
            env!("CARGO_MANIFEST_DIR")
        );
        let hex: String = std::fs::read_to_string(&path)
            .unwrap()
            .split_whitespace()
            .collect();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn test_finish_site_is_emulated_in_every_release() {
        for (name, arch, store, emulated) in RELEASES {
            let code = release_code(name);
            // hmap: flags at 8, oldbuckets at 24 in every classic release.
            let s = finish_store(arch, &code, 0x40_0000, 8, 24).unwrap();
            assert_eq!((s.offset, s.reg), (store, 0), "{name}: the store");
            let site = finish_site(arch, &code, 0x40_0000, 8, 24).unwrap();
            assert_eq!(
                site,
                FinishSite {
                    offset: emulated,
                    reg: 0,
                    emulated: true
                },
                "{name}"
            );
            let at = emulated as usize;
            match arch {
                // JE rel8
                Arch::X86_64 => assert_eq!(code[at], 0x74, "{name}"),
                // CBZ X1
                Arch::Aarch64 => {
                    let w = u32::from_le_bytes(code[at..at + 4].try_into().unwrap());
                    assert_eq!(w & 0xFF00_001F, 0xB400_0001, "{name}: {w:#x}");
                }
            }
        }
    }

    #[test]
    fn test_finish_site_refuses_an_instruction_after_h_is_overwritten() {
        // Go 1.23.9 amd64 with `MOVZX 0x8(AX), CX` (loading h.flags) turned into
        // `MOVZX 0x8(AX), EAX`: AX is overwritten between every emulated candidate and the
        // store, so the store is the only site left.
        let mut code = release_code("go1.23.9-amd64");
        let at = 156;
        assert_eq!(code[at..at + 4], [0x0f, 0xb6, 0x48, 0x08]);
        code[at + 2] = 0x40; // ModRM: reg = EAX
        let site = finish_site(Arch::X86_64, &code, 0, 8, 24);
        assert_eq!(
            site,
            Ok(FinishSite {
                offset: 163,
                reg: 0,
                emulated: false
            })
        );
    }

    #[test]
    fn test_finish_site_skips_instructions_that_run_on_one_path_only() {
        // Go 1.19 amd64: the `JMP` after `MOVQ $0, 0x18(AX)` runs only when the write barrier
        // is off, and the loop's `JB` runs once per bucket scanned: neither is chosen, and no
        // instruction inside `if h.extra != nil { … }` is either.
        let code = release_code("go1.19-amd64");
        let cfg = flow::decode(Arch::X86_64, &code, 0).unwrap();
        let store = cfg.insn_at(183).unwrap();
        let eq: Vec<u64> = cfg
            .equivalent_before(store, 0)
            .into_iter()
            .map(|i| cfg.insns[i].offset)
            .collect();
        // The finishing block's first instructions (CMPL writeBarrier; JNE), the extra test
        // (MOVQ 0x28(AX), DI; TESTQ; JE) and the store's own block before it (MOVZX; ANDL).
        assert_eq!(eq, vec![107, 114, 137, 141, 144, 176, 180], "{eq:?}");
    }
}
