//! Go type names (`map[string][]string`) from a binary's type descriptors, for presize hints.
//!
//! A map event carries the address of its map type descriptor (`abi.Type` first). Its `Str`
//! field (an `int32` at offset 40, Go 1.18+) is an offset from the module's `types` base
//! (`moduledata.types`) to an encoded name: one flag byte, a uvarint length, the bytes. With
//! `TFlagExtraStar` (tflag bit 1, offset 20) the stored name has a leading `*` to drop.

use super::elf::Elf;

/// Offset of `Str` in `abi.Type` / `runtime._type`.
const TYPE_STR: u64 = 40;
/// Offset of `TFlag`.
const TYPE_TFLAG: u64 = 20;
/// `abi.TFlagExtraStar`.
const TFLAG_EXTRA_STAR: u8 = 1 << 1;

/// Offset of `types` in `runtime.moduledata`: Go 1.20 added `covctrs`/`ecovctrs` before it.
pub fn moduledata_types_offset(go_minor: u32) -> u64 {
    if go_minor >= 20 {
        296
    } else {
        280
    }
}

/// The `types` base of a binary's module, if it can be found.
pub fn types_base(elf: &Elf<'_>, go_minor: u32) -> Option<u64> {
    let md = elf.go_moduledata()?;
    elf.pointer_at(md + moduledata_types_offset(go_minor))
        .filter(|&b| b != 0)
}

/// Decodes a Go name at `bytes`: flag byte, uvarint length, the name.
pub fn decode_name(bytes: &[u8]) -> Option<&str> {
    let mut len: usize = 0;
    let mut shift = 0;
    let mut i = 1;
    loop {
        let b = *bytes.get(i)?;
        i += 1;
        len |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    std::str::from_utf8(bytes.get(i..i.checked_add(len)?)?).ok()
}

/// The name of the type whose descriptor is at file virtual address `type_vaddr`.
pub fn type_name(elf: &Elf<'_>, types_base: u64, type_vaddr: u64) -> Option<String> {
    let str_off = elf.bytes_at(type_vaddr.checked_add(TYPE_STR)?, 4).ok()?;
    let str_off = i32::from_le_bytes(str_off.try_into().ok()?);
    let tflag = *elf
        .bytes_at(type_vaddr.checked_add(TYPE_TFLAG)?, 1)
        .ok()?
        .first()?;
    let at = types_base.checked_add_signed(i64::from(str_off))?;
    // Names are short; 4 KiB covers any map type a person would read.
    let name = decode_name(elf.bytes_at(at, 4096).ok()?)?;
    let name = if tflag & TFLAG_EXTRA_STAR != 0 {
        name.strip_prefix('*').unwrap_or(name)
    } else {
        name
    };
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_decode_name() {
        assert_eq!(decode_name(b"\x01\x0c*map[int]int"), Some("*map[int]int"));
        assert_eq!(decode_name(b"\x00\x03abcdef"), Some("abc"));
        // A two-byte length: 130.
        let mut long = vec![0u8, 0x82, 0x01];
        long.extend(std::iter::repeat_n(b'x', 130));
        assert_eq!(decode_name(&long).map(str::len), Some(130));
        assert_eq!(decode_name(b"\x00\x05ab"), None, "truncated");
        assert_eq!(decode_name(b""), None);
    }

    #[test]
    fn test_moduledata_offsets() {
        assert_eq!(moduledata_types_offset(19), 280);
        assert_eq!(moduledata_types_offset(20), 296);
        assert_eq!(moduledata_types_offset(27), 296);
    }
}
