//! The Go version without `.go.buildinfo`: the runtime's own `runtime.buildVersion`.
//!
//! Some release pipelines remove `.go.buildinfo` (`objcopy --remove-section`). The version
//! survives in the variable behind `runtime.Version()`: the linker sets it with `addstrdata`
//! (`cmd/link/internal/ld/main.go`, `data.go`), which turns the BSS variable into a `SDATA`
//! symbol (`.data`) holding a string header `{ptr, len}` whose `ptr` points at the bytes, a
//! `SRODATA` symbol (`.rodata`). The value is `buildcfg.Version`, plus `" X:exp,…"` (1.18–1.25)
//! or `"-X:exp,…"` (1.26+) when non-default experiments are on. In a PIE the pointer is a
//! dynamic `RELATIVE` relocation whose addend is the value (the file's word may be 0).
//!
//! With `.symtab` the symbol gives the header's address. Without it, every pointer-aligned
//! `{ptr, len}` pair in `.data` and `.noptrdata` whose `ptr` lands in a read-only section and
//! whose bytes are exactly a Go version string is a candidate; several distinct versions are
//! refused as ambiguous.

use std::collections::{BTreeSet, HashMap};

use super::elf::Elf;

/// Symbol set by the linker.
pub const SYMBOL: &str = "runtime.buildVersion";
/// Sections searched for the string header when there is no `.symtab`.
pub const DATA_SECTIONS: [&str; 2] = [".data", ".noptrdata"];

/// Errors finding `runtime.buildVersion`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildVersionError {
    /// No string header points at a Go version string.
    #[error("no runtime.buildVersion string found")]
    NotFound,
    /// Several distinct versions: no way to tell which one is the runtime's.
    #[error("ambiguous runtime.buildVersion: {}", .0.join(", "))]
    Ambiguous(Vec<String>),
    /// The symbol is there but its value is not a Go version string.
    #[error("runtime.buildVersion does not hold a Go version string")]
    BadSymbol,
}

/// The bytes the scanner sees: where string headers may be, where their bytes may be, and the
/// PIE relocations (target address → addend).
pub struct Image<'a> {
    /// `(address, bytes)` of the sections searched for headers.
    pub data: Vec<(u64, &'a [u8])>,
    /// `(address, bytes)` of the read-only sections a header may point into.
    pub read_only: Vec<(u64, &'a [u8])>,
    /// Dynamic RELATIVE relocations.
    pub relative: HashMap<u64, u64>,
}

/// Longest value accepted: `go1.NN.NN` plus a list of experiments.
const MAX_LEN: u64 = 256;

impl<'a> Image<'a> {
    /// The image of an ELF executable.
    pub fn of(elf: &Elf<'a>) -> Self {
        Self {
            data: DATA_SECTIONS
                .iter()
                .filter_map(|n| elf.section(n))
                .collect(),
            read_only: elf.read_only_sections(),
            relative: elf.relative_relocations(),
        }
    }

    /// The 8-byte word at `addr` as loaded: a relocation's addend, else the section's bytes.
    fn word(&self, addr: u64, section: (u64, &[u8])) -> Option<u64> {
        if let Some(&v) = self.relative.get(&addr) {
            return Some(v);
        }
        let off = usize::try_from(addr.checked_sub(section.0)?).ok()?;
        let b = section.1.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// `len` bytes at `ptr`, if wholly inside one read-only section.
    fn read_only_bytes(&self, ptr: u64, len: u64) -> Option<&'a [u8]> {
        self.read_only.iter().find_map(|&(start, d)| {
            let off = ptr.checked_sub(start)?;
            let end = off.checked_add(len)?;
            if end > d.len() as u64 {
                return None;
            }
            d.get(off as usize..end as usize)
        })
    }

    /// The Go version string of the header at `addr` in `section`, if it is one.
    fn version_at(&self, addr: u64, section: (u64, &[u8])) -> Option<&'a str> {
        let ptr = self.word(addr, section)?;
        let len = self.word(addr.checked_add(8)?, section)?;
        if len == 0 || len > MAX_LEN {
            return None;
        }
        let bytes = self.read_only_bytes(ptr, len)?;
        let s = std::str::from_utf8(bytes).ok()?;
        is_go_version(s).then_some(s)
    }

    /// Every distinct version string held by a pointer-aligned string header.
    pub fn candidates(&self) -> BTreeSet<&'a str> {
        let mut found = BTreeSet::new();
        for &(start, d) in &self.data {
            // A section placed at the top of the address space (a damaged file) has no room
            // for a string header.
            let (Some(first), Some(end)) = (
                start.checked_next_multiple_of(8),
                start.checked_add(d.len() as u64),
            ) else {
                continue;
            };
            let mut a = first;
            while a.checked_add(16).is_some_and(|e| e <= end) {
                if let Some(v) = self.version_at(a, (start, d)) {
                    found.insert(v);
                }
                a += 8;
            }
        }
        found
    }

    /// The one version string, or why there is none.
    pub fn scan(&self) -> Result<String, BuildVersionError> {
        let c = self.candidates();
        match c.len() {
            0 => Err(BuildVersionError::NotFound),
            1 => Ok(c.into_iter().next().expect("one").to_string()),
            _ => Err(BuildVersionError::Ambiguous(
                c.into_iter().map(str::to_string).collect(),
            )),
        }
    }
}

/// The version through the `runtime.buildVersion` symbol when `.symtab` has it, else by the
/// scan of [`Image::candidates`].
pub fn find(elf: &Elf<'_>) -> Result<String, BuildVersionError> {
    let image = Image::of(elf);
    if let Some(addr) = elf.symbol_address(SYMBOL) {
        let section = image
            .data
            .iter()
            .copied()
            .find(|&(s, d)| addr >= s && addr - s < d.len() as u64)
            .ok_or(BuildVersionError::BadSymbol)?;
        return image
            .version_at(addr, section)
            .map(str::to_string)
            .ok_or(BuildVersionError::BadSymbol);
    }
    image.scan()
}

/// `go1.N`, `go1.N.M`, optionally `rcK`/`betaK`, optionally `" X:a,b"` or `"-X:a,b"`: the
/// whole string (what `cmd/link` writes; `devel` toolchains are not recognized).
pub fn is_go_version(s: &str) -> bool {
    fn digits(s: &str) -> Option<&str> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (n > 0).then(|| &s[n..])
    }
    let Some(rest) = s.strip_prefix("go1.").and_then(digits) else {
        return false;
    };
    let rest = match rest.strip_prefix('.') {
        Some(r) => match digits(r) {
            Some(r) => r,
            None => return false,
        },
        None => rest,
    };
    let rest = match rest
        .strip_prefix("rc")
        .or_else(|| rest.strip_prefix("beta"))
    {
        Some(r) => match digits(r) {
            Some(r) => r,
            None => return false,
        },
        None => rest,
    };
    if rest.is_empty() {
        return true;
    }
    let Some(exps) = rest
        .strip_prefix(" X:")
        .or_else(|| rest.strip_prefix("-X:"))
    else {
        return false;
    };
    !exps.is_empty()
        && exps.split(',').all(|e| {
            !e.is_empty()
                && e.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// The Go releases a `.gopclntab` magic is written by (`internal/abi/symtab.go`, 1.26+;
/// `cmd/link/internal/ld/pcln.go` before): inclusive minor-version bounds.
pub fn pclntab_family(magic: u32) -> Option<(u32, u32)> {
    match magic {
        0xffff_fffb => Some((2, 15)),
        0xffff_fffa => Some((16, 17)),
        0xffff_fff0 => Some((18, 19)),
        0xffff_fff1 => Some((20, u32::MAX)),
        _ => None,
    }
}

/// Whether a `.gopclntab` with `magic` can have been written by Go `major.minor`.
pub fn layout_agrees(major: u32, minor: u32, magic: u32) -> bool {
    major == 1 && pclntab_family(magic).is_some_and(|(lo, hi)| (lo..=hi).contains(&minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RO: u64 = 0x4a_0000;
    const DATA: u64 = 0x52_0000;

    /// `.rodata` at RO holding `strings` back to back; returns it and each string's address.
    fn rodata(strings: &[&str]) -> (Vec<u8>, Vec<u64>) {
        let mut d = b"runtime: bad pointer\0".to_vec();
        let mut at = vec![];
        for s in strings {
            at.push(RO + d.len() as u64);
            d.extend_from_slice(s.as_bytes());
        }
        (d, at)
    }

    fn header(ptr: u64, len: u64) -> Vec<u8> {
        [ptr.to_le_bytes(), len.to_le_bytes()].concat()
    }

    /// `.data` at DATA: some unrelated words, then the headers at 8-aligned offsets.
    fn data(headers: &[(u64, u64)]) -> Vec<u8> {
        let mut d = vec![0xaa; 24];
        for &(p, l) in headers {
            d.extend(header(p, l));
        }
        d.extend([0u8; 8]);
        d
    }

    fn image<'a>(data: &'a [u8], ro: &'a [u8], relative: &[(u64, u64)]) -> Image<'a> {
        Image {
            data: vec![(DATA, data)],
            read_only: vec![(RO, ro)],
            relative: relative.iter().copied().collect(),
        }
    }

    #[test]
    fn test_version_string_forms() {
        for ok in [
            "go1.26.6",
            "go1.19",
            "go1.21rc2",
            "go1.24.11 X:noswissmap",
            "go1.26.6-X:nogreenteagc",
            "go1.25.5 X:noswissmap,nospinbitmutex",
        ] {
            assert!(is_go_version(ok), "{ok}");
        }
        for bad in [
            "go1.",
            "go1.26.",
            "go1.26.6 ",
            "go1.26.6 X:",
            "go1.26.6 X:a,,b",
            "go1.26.6\0",
            "xgo1.26.6",
            "go1.23.9 is required",
            "go2.0",
            "devel go1.25-abcdef",
            "go1.26.6 X:Upper",
        ] {
            assert!(!is_go_version(bad), "{bad:?}");
        }
    }

    /// A damaged file can place a section at the top of the address space (found by the
    /// `inspect` fuzz target: `next_multiple_of` overflowed).
    #[test]
    fn test_scan_survives_a_section_at_the_top_of_the_address_space() {
        let bytes = [0u8; 64];
        for start in [u64::MAX - 3, u64::MAX - 20, u64::MAX - 63] {
            let img = Image {
                data: vec![(start, &bytes[..])],
                read_only: vec![(start, &bytes[..])],
                relative: HashMap::new(),
            };
            assert_eq!(img.scan(), Err(BuildVersionError::NotFound));
        }
    }

    #[test]
    fn test_scan_finds_the_header() {
        let (ro, at) = rodata(&["hello", "go1.26.6-X:nogreenteagc", "world"]);
        let d = data(&[(at[0], 5), (at[1], 23), (at[2], 5)]);
        assert_eq!(
            image(&d, &ro, &[]).scan(),
            Ok("go1.26.6-X:nogreenteagc".into())
        );
    }

    #[test]
    fn test_scan_pie_relocation() {
        // PIE: the file's pointer word is 0; the RELATIVE relocation's addend is the value.
        let (ro, at) = rodata(&["go1.23.9"]);
        let d = data(&[(0, 8)]);
        let header_addr = DATA + 24;
        assert_eq!(image(&d, &ro, &[]).scan(), Err(BuildVersionError::NotFound));
        assert_eq!(
            image(&d, &ro, &[(header_addr, at[0])]).scan(),
            Ok("go1.23.9".into())
        );
        // A relocation replaces a non-zero file word too (the loader writes it).
        let d = data(&[(0xdead_beef, 8)]);
        assert_eq!(
            image(&d, &ro, &[(header_addr, at[0])]).scan(),
            Ok("go1.23.9".into())
        );
    }

    #[test]
    fn test_scan_negative_cases() {
        let (ro, at) = rodata(&["go1.23.9", "go1.27.3", "go1.23.9 is old"]);
        // Bytes in rodata with no header: nothing (no whole-file search).
        assert_eq!(
            image(&data(&[]), &ro, &[]).scan(),
            Err(BuildVersionError::NotFound)
        );
        // A header whose length takes a prefix or runs into the next string.
        let d = data(&[(at[0], 7), (at[2], 15), (at[0], 12)]);
        assert_eq!(image(&d, &ro, &[]).scan(), Err(BuildVersionError::NotFound));
        // A pointer outside the read-only sections (e.g. into .data itself).
        let mut d = data(&[(DATA + 40, 8)]);
        d.extend_from_slice(b"go1.23.9");
        assert_eq!(image(&d, &ro, &[]).scan(), Err(BuildVersionError::NotFound));
        // Absurd lengths are skipped, not read.
        let d = data(&[(at[0], u64::MAX), (u64::MAX - 2, 8)]);
        assert_eq!(image(&d, &ro, &[]).scan(), Err(BuildVersionError::NotFound));
        // A header at an unaligned offset is not one the linker writes.
        let mut d = vec![0u8; 28];
        d.extend(header(at[0], 8));
        assert_eq!(image(&d, &ro, &[]).scan(), Err(BuildVersionError::NotFound));
        // Two distinct versions: ambiguous. The same one twice: fine.
        let d = data(&[(at[0], 8), (at[1], 8)]);
        assert_eq!(
            image(&d, &ro, &[]).scan(),
            Err(BuildVersionError::Ambiguous(vec![
                "go1.23.9".into(),
                "go1.27.3".into()
            ]))
        );
        let d = data(&[(at[0], 8), (at[0], 8)]);
        assert_eq!(image(&d, &ro, &[]).scan(), Ok("go1.23.9".into()));
    }

    #[test]
    fn test_pclntab_families() {
        assert_eq!(pclntab_family(0xffff_fff0), Some((18, 19)));
        assert_eq!(pclntab_family(0xffff_fff1), Some((20, u32::MAX)));
        assert_eq!(pclntab_family(0xffff_fffa), Some((16, 17)));
        assert_eq!(pclntab_family(0x1234), None);
        assert!(layout_agrees(1, 19, 0xffff_fff0));
        assert!(layout_agrees(1, 27, 0xffff_fff1));
        assert!(!layout_agrees(1, 23, 0xffff_fff0), "1.23 writes 0xfffffff1");
        assert!(!layout_agrees(1, 18, 0xffff_fff1));
        assert!(!layout_agrees(1, 26, 0x1234));
        assert!(!layout_agrees(2, 0, 0xffff_fff1));
    }

    /// This test binary (a Rust ELF) has no Go version string header.
    #[test]
    fn test_scan_of_a_rust_binary_finds_nothing() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let elf = Elf::parse(&me).unwrap();
        assert_eq!(find(&elf), Err(BuildVersionError::NotFound));
    }
}
