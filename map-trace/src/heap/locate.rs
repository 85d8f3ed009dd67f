//! Where `runtime.mheap_` is: from `.symtab`, or, in a stripped binary, from the code of
//! `runtime.mallocinit`, which calls `mheap_.init()`: the receiver `&mheap_` is the first
//! register argument (RAX on amd64, R0 on arm64), loaded PC-relatively just before the call
//! to `runtime.(*mheap).init`. That holds in every release since the register ABI (1.17).

use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};

use crate::symbols::elf::{Arch, Elf, Function};

/// The symbol, and the two functions the fallback decodes.
pub const MHEAP: &str = "runtime.mheap_";
/// Calls `mheap_.init()`.
pub const MALLOCINIT: &str = "runtime.mallocinit";
/// The call's target.
pub const MHEAP_INIT: &str = "runtime.(*mheap).init";

/// How `runtime.mheap_` was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Its `.symtab` entry.
    Symtab,
    /// Decoded from `runtime.mallocinit`'s call of `(*mheap).init` (stripped binaries).
    MallocInit,
}

/// The link-time address of `runtime.mheap_`. `function` looks functions up (in `.symtab` or
/// `.gopclntab`).
pub fn mheap_vaddr(
    elf: &Elf<'_>,
    arch: Arch,
    function: impl Fn(&str) -> Option<Function>,
) -> Option<(u64, Source)> {
    if let Some(a) = elf.symbol_address(MHEAP) {
        return Some((a, Source::Symtab));
    }
    let (init, init_fn) = (function(MALLOCINIT)?, function(MHEAP_INIT)?);
    let code = elf.bytes_at(init.addr, init.size).ok()?;
    let found = match arch {
        Arch::X86_64 => amd64_receiver(code, init.addr, init_fn.addr),
        Arch::Aarch64 => arm64_receiver(code, init.addr, init_fn.addr),
    }?;
    Some((found, Source::MallocInit))
}

/// A PIE's load bias in process `pid`: where its mapping at file offset 0 starts, minus the
/// link-time address of that segment (`first_load`). `maps` is `/proc/PID/maps`' text and
/// `ino` the executable's inode.
pub fn load_bias(maps: &str, ino: u64, first_load: u64) -> Option<u64> {
    maps.lines().find_map(|line| {
        let mut f = line.split_ascii_whitespace();
        let (range, _perms, off, _dev, inode) =
            (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        if inode.parse::<u64>().ok()? != ino || u64::from_str_radix(off, 16).ok()? != 0 {
            return None;
        }
        let start = u64::from_str_radix(range.split_once('-')?.0, 16).ok()?;
        Some(start.wrapping_sub(first_load & !0xfff))
    })
}

/// amd64: the target of the last `LEA RAX, [RIP+disp]` before `CALL callee`, with nothing
/// writing RAX in between.
pub fn amd64_receiver(code: &[u8], addr: u64, callee: u64) -> Option<u64> {
    let mut dec = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut rax: Option<u64> = None;
    while dec.can_decode() {
        let i = dec.decode();
        if i.mnemonic() == Mnemonic::Call {
            if i.op0_kind() == OpKind::NearBranch64 && i.near_branch64() == callee {
                if let Some(a) = rax {
                    return Some(a);
                }
            }
            rax = None;
            continue;
        }
        let writes_rax = i.op_count() > 0
            && i.op0_kind() == OpKind::Register
            && matches!(
                i.op0_register(),
                Register::RAX | Register::EAX | Register::AX | Register::AL
            );
        if writes_rax {
            rax = (i.mnemonic() == Mnemonic::Lea && i.is_ip_rel_memory_operand())
                .then(|| i.ip_rel_memory_address());
        }
    }
    None
}

/// arm64: `ADRP X0, page` + `ADD X0, X0, #off` before `BL callee`.
pub fn arm64_receiver(code: &[u8], addr: u64, callee: u64) -> Option<u64> {
    let mut x0: Option<u64> = None;
    for (i, b) in code.chunks_exact(4).enumerate() {
        let pc = addr.wrapping_add(i as u64 * 4);
        let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let rd = w & 31;
        if w & 0xFC00_0000 == 0x9400_0000 {
            // BL
            let off = (((w & 0x03FF_FFFF) << 6) as i32 >> 6) as i64 * 4;
            if pc.wrapping_add_signed(off) == callee {
                if let Some(a) = x0 {
                    return Some(a);
                }
            }
            x0 = None;
        } else if w & 0x9F00_0000 == 0x9000_0000 && rd == 0 {
            // ADRP X0
            let imm = ((w >> 29) & 3) | (((w >> 5) & 0x7_FFFF) << 2);
            let off = ((imm << 11) as i32 >> 11) as i64 * 4096;
            x0 = Some((pc & !0xFFF).wrapping_add_signed(off));
        } else if w & 0xFF80_03FF == 0x9100_0000 {
            // ADD X0, X0, #imm12 (no shift)
            x0 = x0.map(|p| p.wrapping_add(u64::from((w >> 10) & 0xFFF)));
        } else if rd == 0 && w & 0x1F00_0000 != 0x1000_0000 {
            // Anything else naming X0 as its destination field may overwrite it (stores do
            // not, but nothing between the ADRP/ADD and the BL stores from X0 in practice).
            if w & 0x3B00_0000 != 0x3900_0000 {
                x0 = None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_load_bias_from_the_mapping_at_offset_zero() {
        let maps = "555555554000-555555556000 r--p 00000000 fe:01 77 /x\n\
                    555555556000-555555600000 r-xp 00002000 fe:01 77 /x\n\
                    7f0000000000-7f0000001000 r--p 00000000 fe:01 78 /lib\n";
        assert_eq!(load_bias(maps, 77, 0), Some(0x5555_5555_4000));
        assert_eq!(load_bias(maps, 79, 0), None);
    }

    #[test]
    fn test_amd64_lea_before_call() {
        // lea rax, [rip+0x100]; mov ecx, 1; call rel32 → 0x2000
        let mut code = vec![0x48, 0x8d, 0x05, 0x00, 0x01, 0x00, 0x00];
        code.extend([0xb9, 1, 0, 0, 0]);
        let call_at = 0x1000 + code.len() as u64;
        let rel = (0x2000i64 - (call_at as i64 + 5)) as i32;
        code.push(0xe8);
        code.extend(rel.to_le_bytes());
        assert_eq!(amd64_receiver(&code, 0x1000, 0x2000), Some(0x1007 + 0x100));
        // Another callee: nothing.
        assert_eq!(amd64_receiver(&code, 0x1000, 0x3000), None);
        // RAX overwritten in between (mov eax, 1).
        let mut clobbered = code[..7].to_vec();
        clobbered.extend([0xb8, 1, 0, 0, 0]);
        let call_at = 0x1000 + clobbered.len() as u64;
        clobbered.push(0xe8);
        clobbered.extend(((0x2000i64 - (call_at as i64 + 5)) as i32).to_le_bytes());
        assert_eq!(amd64_receiver(&clobbered, 0x1000, 0x2000), None);
    }

    #[test]
    fn test_arm64_adrp_add_before_bl() {
        // At 0x10000: adrp x0, #+0x5000 (page); add x0, x0, #0x120; bl +0x100
        let adrp = 0x9000_0000u32 | ((5 & 3) << 29) | ((5 >> 2) << 5);
        let add = 0x9100_0000u32 | (0x120 << 10);
        let bl = 0x9400_0000u32 | ((0x100 - 8) / 4);
        let code: Vec<u8> = [adrp, add, bl]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(arm64_receiver(&code, 0x10000, 0x10100), Some(0x15120));
        assert_eq!(arm64_receiver(&code, 0x10000, 0x10200), None);
    }
}
