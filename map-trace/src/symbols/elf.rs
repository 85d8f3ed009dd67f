//! ELF reading with the `object` crate: function symbols, sections, vaddr → file offset.

use object::{
    elf, read::elf::ElfFile64, read::elf::ProgramHeader as _, Endianness, Object, ObjectSection,
    ObjectSymbol, SymbolKind,
};

/// Errors reading an executable.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Not an ELF file at all (a script, a text file, …).
    #[error("not an ELF executable")]
    NotElf,
    /// An ELF we cannot parse (truncated, corrupted headers, 32-bit, …).
    #[error("malformed or unsupported ELF: {0}")]
    Malformed(String),
    /// An address outside every loadable segment.
    #[error("address {vaddr:#x} is not in any PT_LOAD segment")]
    Unmapped {
        /// The virtual address.
        vaddr: u64,
    },
}

/// A function: virtual address and size in bytes (0 if unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Virtual address of the first instruction.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
}

/// One section: address, file bytes, `SHF_WRITE`.
#[derive(Clone, Copy, Debug)]
pub struct SectionInfo<'data> {
    /// Virtual address.
    pub addr: u64,
    /// Contents (empty for `SHT_NOBITS`).
    pub data: &'data [u8],
    /// Writable at run time.
    pub writable: bool,
}

/// A parsed 64-bit ELF executable, borrowing its bytes.
pub struct Elf<'data> {
    file: ElfFile64<'data, Endianness>,
    data: &'data [u8],
}

/// Machine architecture of an executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86-64 (GOARCH=amd64).
    X86_64,
    /// AArch64 (GOARCH=arm64).
    Aarch64,
}

impl Arch {
    /// Every architecture, for parsing names.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The architecture map-trace itself was built for.
    pub fn host() -> Self {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// Go's name for it.
    pub fn goarch(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }
}

impl<'data> Elf<'data> {
    /// Parses `data` as a 64-bit little-endian ELF.
    pub fn parse(data: &'data [u8]) -> Result<Self, ElfError> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        let file =
            ElfFile64::<Endianness>::parse(data).map_err(|e| ElfError::Malformed(e.to_string()))?;
        if !file.is_little_endian() {
            return Err(ElfError::Malformed("big-endian ELF".into()));
        }
        Ok(Self { file, data })
    }

    /// The machine the executable runs on, if map-trace knows it.
    pub fn arch(&self) -> Option<Arch> {
        match self.file.elf_header().e_machine.get(self.file.endian()) {
            elf::EM_X86_64 => Some(Arch::X86_64),
            elf::EM_AARCH64 => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// Whether a `.symtab` with entries is present (not stripped with `-s`).
    pub fn has_symtab(&self) -> bool {
        self.file.symbols().next().is_some()
    }

    /// Looks up a function symbol by exact name in `.symtab`.
    pub fn function(&self, name: &str) -> Option<Function> {
        self.file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .find(|s| s.name_bytes().ok() == Some(name.as_bytes()))
            .map(|s| Function {
                addr: s.address(),
                size: s.size(),
            })
    }

    /// Looks up several function symbols in one pass over `.symtab` (Go binaries hold tens of
    /// thousands of symbols); the result is in the order of `names`.
    pub fn functions(&self, names: &[&str]) -> Vec<Option<Function>> {
        let mut found = vec![None; names.len()];
        for sym in self.file.symbols() {
            if sym.kind() != SymbolKind::Text || sym.address() == 0 {
                continue;
            }
            let Ok(name) = sym.name_bytes() else { continue };
            if let Some(i) = names.iter().position(|n| n.as_bytes() == name) {
                found[i].get_or_insert(Function {
                    addr: sym.address(),
                    size: sym.size(),
                });
            }
        }
        found
    }

    /// Contents of a section by name, if present and stored in the file.
    pub fn section(&self, name: &str) -> Option<(u64, &'data [u8])> {
        let s = self.file.section_by_name(name)?;
        let data = s.data().ok()?;
        Some((s.address(), data))
    }

    /// Converts a virtual address to a file offset through the PT_LOAD program headers
    /// (`off = vaddr - p_vaddr + p_offset`), which holds for PIE and non-PIE alike.
    pub fn file_offset(&self, vaddr: u64) -> Result<u64, ElfError> {
        let endian = self.file.endian();
        for ph in self.file.elf_program_headers() {
            if ph.p_type(endian) != elf::PT_LOAD {
                continue;
            }
            let start = ph.p_vaddr(endian);
            let filesz = ph.p_filesz(endian);
            if vaddr >= start && vaddr - start < filesz {
                return (vaddr - start)
                    .checked_add(ph.p_offset(endian))
                    .ok_or(ElfError::Unmapped { vaddr });
            }
        }
        Err(ElfError::Unmapped { vaddr })
    }

    /// The 8-byte pointer stored at `vaddr` as the program sees it after loading: the addend of
    /// a dynamic RELATIVE relocation there (a PIE's pointers are 0 in the file and filled in by
    /// the loader), else the file's bytes.
    pub fn pointer_at(&self, vaddr: u64) -> Option<u64> {
        if let Some(relocs) = self.file.dynamic_relocations() {
            for (off, r) in relocs {
                if off == vaddr && !r.has_implicit_addend() {
                    return u64::try_from(r.addend()).ok();
                }
            }
        }
        let b = self.bytes_at(vaddr, 8).ok()?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// The first of several section names present.
    pub fn section_any(&self, names: &[&str]) -> Option<(u64, &'data [u8])> {
        names.iter().find_map(|n| self.section(n))
    }

    /// Go's function table: `.gopclntab`, or `.data.rel.ro.gopclntab` in a PIE, and the text
    /// base its entry offsets count from (`runtime.text`): the moduledata's `text` field for
    /// Go 1.26+ (`.go.module`+176; the header's textStart is 0 there), else the header's
    /// textStart. Either is a relocated pointer in a PIE.
    pub fn go_pclntab(&self) -> Option<(&'data [u8], Option<u64>)> {
        let (vaddr, data) = self.section_any(&[".gopclntab", ".data.rel.ro.gopclntab"])?;
        // A damaged file's section address can sit at the end of the address space.
        let text_base = match self.section_any(&[".go.module", ".data.rel.ro.go.module"]) {
            Some((module, _)) => module.checked_add(176).and_then(|a| self.pointer_at(a)),
            None => vaddr.checked_add(24).and_then(|a| self.pointer_at(a)),
        }
        .filter(|&b| b != 0);
        Some((data, text_base))
    }

    /// Go's module data (`runtime.firstmoduledata`): the `.go.module` section (Go 1.26+), else
    /// the symbol, else (stripped) the word in `.noptrdata` that points at the pclntab (its
    /// first field, `pcHeader`), or in a PIE the RELATIVE relocation whose addend does.
    pub fn go_moduledata(&self) -> Option<u64> {
        if let Some((v, _)) = self.section_any(&[".go.module", ".data.rel.ro.go.module"]) {
            return Some(v);
        }
        if let Some(f) = self.function_symbol("runtime.firstmoduledata") {
            return Some(f);
        }
        let (pcln, _) = self.section_any(&[".gopclntab", ".data.rel.ro.gopclntab"])?;
        if let Some(relocs) = self.file.dynamic_relocations() {
            for (off, r) in relocs {
                if !r.has_implicit_addend() && u64::try_from(r.addend()).ok() == Some(pcln) {
                    return Some(off);
                }
            }
        }
        let (start, data) = self.section(".noptrdata")?;
        data.chunks_exact(8)
            .position(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")) == pcln)
            .map(|i| start + 8 * i as u64)
    }

    /// The funcdata of a Go 1.`go_minor` binary (inline trees, …): the file's bytes from
    /// `moduledata.gofunc` (the `go:func.*` symbol) to the end of the section holding them.
    /// `gofunc` is word 38 of the moduledata in 1.18–1.19, 40 from 1.20 (`covctrs`, `ecovctrs`
    /// before it), 43 from 1.27 (`typedesclen`, `itaboffset`, `itabsize`); without the
    /// moduledata, the symbol.
    pub fn go_func_data(&self, go_minor: u32) -> Option<&'data [u8]> {
        let word = match go_minor {
            ..=19 => 38,
            20..=26 => 40,
            _ => 43,
        };
        let gofunc = self
            .go_moduledata()
            .and_then(|md| self.pointer_at(md.checked_add(8 * word)?))
            .filter(|&a| a != 0)
            .or_else(|| {
                self.symbol_address("go:func.*")
                    .or_else(|| self.symbol_address("go.func.*"))
            })?;
        self.file.sections().find_map(|s| {
            let (start, size) = (s.address(), s.size());
            if !(start..start.checked_add(size)?).contains(&gofunc) {
                return None;
            }
            s.data().ok()?.get(usize::try_from(gofunc - start).ok()?..)
        })
    }

    /// The Go build ID (`.note.go.buildid`: an ELF note named `Go`, type 4, whose descriptor
    /// is the ID string), as `go tool buildid` prints it.
    pub fn go_build_id(&self) -> Option<String> {
        let (_, d) = self.section(".note.go.buildid")?;
        let word = |i: usize| {
            d.get(4 * i..4 * i + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        };
        let (namesz, descsz, kind) = (word(0)? as usize, word(1)? as usize, word(2)?);
        let name_end = 12usize.checked_add(namesz)?;
        if kind != 4 || d.get(12..name_end)? != b"Go\0\0"[..namesz.min(4)].as_ref() {
            return None;
        }
        let desc = name_end.checked_add(3)? & !3;
        let id = d.get(desc..desc.checked_add(descsz)?)?;
        std::str::from_utf8(id).ok().map(str::to_string)
    }

    /// A section's bytes, address and flags (`None` if absent or not stored in the file).
    pub fn section_info(&self, name: &str) -> Option<SectionInfo<'data>> {
        let s = self.file.section_by_name(name)?;
        let data = s.data().ok()?;
        let object::SectionFlags::Elf { sh_flags } = s.flags() else {
            return None;
        };
        Some(SectionInfo {
            addr: s.address(),
            data,
            writable: sh_flags & u64::from(elf::SHF_WRITE) != 0,
        })
    }

    /// Allocated, read-only, non-executable sections stored in the file (`.rodata`,
    /// `.gopclntab`, …): where a Go string's bytes live.
    pub fn read_only_sections(&self) -> Vec<(u64, &'data [u8])> {
        self.file
            .sections()
            .filter(|s| match s.flags() {
                object::SectionFlags::Elf { sh_flags } => {
                    let f = sh_flags as u32;
                    f & elf::SHF_ALLOC != 0 && f & (elf::SHF_WRITE | elf::SHF_EXECINSTR) == 0
                }
                _ => false,
            })
            .filter_map(|s| Some((s.address(), s.data().ok()?)))
            .filter(|(_, d)| !d.is_empty())
            .collect()
    }

    /// The dynamic RELATIVE relocations (`R_X86_64_RELATIVE`, `R_AARCH64_RELATIVE`) as
    /// target address → addend: in a PIE the loader writes `base + addend` there, and the
    /// file's bytes may be 0.
    pub fn relative_relocations(&self) -> std::collections::HashMap<u64, u64> {
        let Some(relocs) = self.file.dynamic_relocations() else {
            return Default::default();
        };
        relocs
            .filter(|(_, r)| {
                matches!(
                    r.flags(),
                    object::RelocationFlags::Elf { r_type }
                        if r_type == elf::R_X86_64_RELATIVE || r_type == elf::R_AARCH64_RELATIVE
                )
            })
            .filter(|(_, r)| !r.has_implicit_addend())
            .filter_map(|(off, r)| Some((off, u64::try_from(r.addend()).ok()?)))
            .collect()
    }

    /// Address of a data symbol (any kind) in `.symtab`.
    pub fn symbol_address(&self, name: &str) -> Option<u64> {
        self.function_symbol(name)
    }

    /// Address of a symbol of any kind in `.symtab`.
    fn function_symbol(&self, name: &str) -> Option<u64> {
        self.file
            .symbols()
            .find(|s| s.name_bytes().ok() == Some(name.as_bytes()))
            .map(|s| s.address())
            .filter(|&a| a != 0)
    }

    /// The PT_LOAD segments as `(p_vaddr, p_offset, p_filesz)`.
    pub fn loads(&self) -> Vec<(u64, u64, u64)> {
        let endian = self.file.endian();
        self.file
            .elf_program_headers()
            .iter()
            .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
            .map(|ph| (ph.p_vaddr(endian), ph.p_offset(endian), ph.p_filesz(endian)))
            .collect()
    }

    /// Whether the file is position-independent (ET_DYN): its addresses move per process.
    pub fn is_pie(&self) -> bool {
        self.file.elf_header().e_type.get(self.file.endian()) == elf::ET_DYN
    }

    /// The file bytes of `len` bytes at `vaddr` (shorter if the segment ends first).
    pub fn bytes_at(&self, vaddr: u64, len: u64) -> Result<&'data [u8], ElfError> {
        let off = self.file_offset(vaddr)? as usize;
        let end = off.saturating_add(len as usize).min(self.data.len());
        self.data.get(off..end).ok_or(ElfError::Unmapped { vaddr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_rejects_non_elf() {
        assert!(matches!(
            Elf::parse(b"#!/bin/sh\necho hi\n"),
            Err(ElfError::NotElf)
        ));
        assert!(matches!(Elf::parse(b""), Err(ElfError::NotElf)));
    }

    #[test]
    fn test_parse_rejects_truncated_elf() {
        let mut data = b"\x7fELF\x02\x01\x01".to_vec();
        data.resize(40, 0);
        assert!(matches!(Elf::parse(&data), Err(ElfError::Malformed(_))));
    }

    #[test]
    fn test_symbols_and_file_offsets_of_own_binary() {
        // The test binary itself is a real ELF with a symtab and PT_LOAD segments.
        let data = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let elf = Elf::parse(&data).unwrap();
        assert_eq!(elf.arch(), Some(Arch::host()));
        assert!(elf.has_symtab());
        let f = elf.function("main").expect("main symbol");
        let off = elf.file_offset(f.addr).unwrap();
        assert!(off < data.len() as u64);
        assert!(elf.file_offset(u64::MAX - 16).is_err());
    }
}
