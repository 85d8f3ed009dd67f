//! Function addresses from `.gopclntab`, for stripped binaries (no `.symtab`).
//!
//! Layout (`runtime.pcHeader`, Go 1.18+; `runtime/symtab.go`): u32 magic (0xfffffff0 in
//! 1.18–1.19, 0xfffffff1 from 1.20), two pad bytes, minLC, ptrSize, then ptrSize words
//! `nfunc, nfiles, textStart, funcnameOffset, cuOffset, filetabOffset, pctabOffset, pclnOffset`.
//! At `pclnOffset`: `nfunc+1` pairs `{u32 entryoff, u32 funcoff}`; at `pclnOffset+funcoff` a
//! `_func` whose first two fields are `u32 entryOff, i32 nameOff` (a C string at
//! `funcnameOffset+nameOff`). A function's address is `textStart + entryoff`. From Go 1.26 the
//! header's textStart is 0 and the base is `runtime.text` from the module data instead.
//!
//! Inlined calls (`runtime/symtabinl.go`): a function's `PCDATA_InlTreeIndex` (pcdata 2) table
//! gives, at each pc, an index into its inline tree (`FUNCDATA_InlTree`, funcdata 3, at
//! `moduledata.gofunc + offset`), or -1 outside any inlined body. Each tree entry names the
//! inlined function and the `parentPc` whose source position is the call in its caller; its
//! index there gives the next level out. 1.18–1.19 entries are 20 bytes (`parent i16, funcID,
//! _, file i32, line i32, func_ i32, parentPc i32`), 1.20+ 16 (`funcID, _ [3], nameOff i32,
//! parentPc i32, startLine i32`).

use super::elf::Function;

/// Errors reading `.gopclntab`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PclntabError {
    /// Magic of a release this build does not read (before 1.18, or unknown).
    #[error("unsupported .gopclntab magic {0:#x}")]
    Magic(u32),
    /// Offsets or counts pointing outside the section.
    #[error("corrupted .gopclntab: {0}")]
    Corrupt(&'static str),
    /// The header has no text base (Go 1.26+) and none was supplied.
    #[error(".gopclntab has no text base (Go 1.26+ needs runtime.text from .go.module)")]
    NoTextBase,
}

/// A parsed function table.
pub struct Pclntab<'a> {
    data: &'a [u8],
    nfunc: usize,
    text_start: u64,
    funcname: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    pcln: usize,
    quantum: u64,
    /// Go 1.20+ layouts (`_func.startLine`, 16-byte inline tree entries).
    go120: bool,
    /// `moduledata.gofunc` and the file's bytes from there to the end of its section: where
    /// the funcdata (inline trees) are; without it inlined frames are not expanded.
    gofunc: Option<&'a [u8]>,
}

/// Where one function's inline tree is.
struct InlineTree {
    /// Its `PCDATA_InlTreeIndex` table (offset in the pc tables).
    index_table: u32,
    /// Its first entry (offset in `gofunc`).
    tree: usize,
}

/// Bounds a corrupted inline tree's chain (real ones are a few levels deep).
const MAX_INLINE_DEPTH: usize = 64;

/// Where a program counter is: function, source file and line.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SourcePos {
    /// Go's full function name, e.g. `main.fill` or `orders.(*Aggregator).Add`.
    pub function: String,
    /// Source file path as recorded at build time (empty if unknown).
    pub file: String,
    /// Line number (0 if unknown).
    pub line: u32,
    /// The compiler inlined this function into the frame after it (its caller): no call
    /// instruction of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inlined: bool,
}

impl std::fmt::Display for SourcePos {
    /// `function (file.go:line)`, with the file's base name: how sites are shown to people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.rsplit('/').next().unwrap_or(&self.file);
        write!(f, "{} ({file}:{})", self.function, self.line)
    }
}

/// Reads a pcvalue table's unsigned LEB128 varint.
fn uvarint(d: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    let mut shift = 0;
    loop {
        let b = *d.get(*pos)?;
        *pos += 1;
        v |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    d.get(off..off.checked_add(4)?)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
}

fn u64_at(d: &[u8], off: usize) -> Option<u64> {
    d.get(off..off.checked_add(8)?)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
}

impl<'a> Pclntab<'a> {
    /// Parses the section's bytes. `text_base` replaces a zero `textStart` (Go 1.26+, and every
    /// PIE, whose header field is filled in by a relocation).
    pub fn parse(data: &'a [u8], text_base: Option<u64>) -> Result<Self, PclntabError> {
        let magic = u32_at(data, 0).ok_or(PclntabError::Corrupt("header truncated"))?;
        if magic != 0xffff_fff0 && magic != 0xffff_fff1 {
            return Err(PclntabError::Magic(magic));
        }
        if data.get(7) != Some(&8) {
            return Err(PclntabError::Corrupt("pointer size is not 8"));
        }
        let word =
            |i: usize| u64_at(data, 8 + 8 * i).ok_or(PclntabError::Corrupt("header truncated"));
        let nfunc = word(0)?;
        let text_start = match (word(2)?, text_base) {
            (0, Some(b)) => b,
            (0, None) => return Err(PclntabError::NoTextBase),
            (t, _) => t,
        };
        let funcname = word(3)?;
        let cutab = word(4)?;
        let filetab = word(5)?;
        let pctab = word(6)?;
        let pcln = word(7)?;
        let len = data.len() as u64;
        if funcname >= len || pcln >= len || cutab > len || filetab > len || pctab > len {
            return Err(PclntabError::Corrupt("table offset outside the section"));
        }
        // (nfunc + 1) entries of 8 bytes must fit: bounds the count before any allocation.
        if nfunc
            .checked_add(1)
            .and_then(|n| n.checked_mul(8))
            .is_none_or(|b| b > len - pcln)
        {
            return Err(PclntabError::Corrupt("function count exceeds the section"));
        }
        Ok(Self {
            data,
            nfunc: nfunc as usize,
            text_start,
            funcname: funcname as usize,
            cutab: cutab as usize,
            filetab: filetab as usize,
            pctab: pctab as usize,
            pcln: pcln as usize,
            // minLC, the instruction size quantum: 1 on amd64, 4 on arm64.
            quantum: u64::from(data[6].max(1)),
            go120: magic == 0xffff_fff1,
            gofunc: None,
        })
    }

    /// The same table, reading inline trees from `gofunc`: the bytes at `moduledata.gofunc`
    /// to the end of the section holding them.
    pub fn with_gofunc(self, gofunc: &'a [u8]) -> Self {
        Self {
            gofunc: Some(gofunc),
            ..self
        }
    }

    /// The logical frames at the instruction at `pc`, innermost first: the functions inlined
    /// there (each `inlined`, at its own line), then the physical function at the line of the
    /// outermost inlined call (as `runtime.CallersFrames` gives them). For a return address
    /// pass `pc - 1`. Without inline data, just [`Self::source_pos`].
    pub fn frames(&self, pc: u64) -> Vec<SourcePos> {
        let Some((funcoff, mut target)) = self.locate(pc) else {
            return vec![];
        };
        let Some(name) = self.name(funcoff) else {
            return vec![];
        };
        let mut frames = vec![];
        if let Some(tree) = self.inline_tree(funcoff) {
            let mut ix = self.pcvalue(tree.index_table, target).unwrap_or(-1);
            while ix >= 0 && frames.len() < MAX_INLINE_DEPTH {
                let Some((name_off, parent_pc)) = self.inline_entry(tree.tree, ix as usize) else {
                    break;
                };
                let Some(inlined) = self.name_at(name_off) else {
                    break;
                };
                let (file, line) = self.file_line(funcoff, target);
                frames.push(SourcePos {
                    function: String::from_utf8_lossy(inlined).into_owned(),
                    file,
                    line,
                    inlined: true,
                });
                let Ok(parent) = u64::try_from(parent_pc) else {
                    break;
                };
                target = parent;
                ix = self.pcvalue(tree.index_table, target).unwrap_or(-1);
            }
        }
        let (file, line) = self.file_line(funcoff, target);
        frames.push(SourcePos {
            function: String::from_utf8_lossy(name).into_owned(),
            file,
            line,
            inlined: false,
        });
        frames
    }

    /// The `_func` offset of the function containing `pc`, and `pc`'s offset in it.
    fn locate(&self, pc: u64) -> Option<(usize, u64)> {
        let off = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        let (_, entry, funcoff) = self.func_index(pc)?;
        Some((funcoff, u64::from(off - entry)))
    }

    /// A function's inline tree: its pcdata index table and where its entries start in
    /// `gofunc`.
    fn inline_tree(&self, funcoff: usize) -> Option<InlineTree> {
        let gofunc = self.gofunc?;
        let f = self.pcln.checked_add(funcoff)?;
        let npcdata = u32_at(self.data, f.checked_add(28)?)? as usize;
        let (nfuncdata_at, arrays) = if self.go120 { (43, 44) } else { (39, 40) };
        let nfuncdata = *self.data.get(f.checked_add(nfuncdata_at)?)? as usize;
        const PCDATA_INL_TREE_INDEX: usize = 2;
        const FUNCDATA_INL_TREE: usize = 3;
        if npcdata <= PCDATA_INL_TREE_INDEX || nfuncdata <= FUNCDATA_INL_TREE {
            return None;
        }
        let pcdata = f.checked_add(arrays)?;
        let index_table = u32_at(self.data, pcdata.checked_add(4 * PCDATA_INL_TREE_INDEX)?)?;
        let funcdata = pcdata.checked_add(npcdata.checked_mul(4)?)?;
        let tree = u32_at(self.data, funcdata.checked_add(4 * FUNCDATA_INL_TREE)?)?;
        if index_table == 0 || tree == u32::MAX {
            return None;
        }
        gofunc.get(tree as usize..)?;
        Some(InlineTree {
            index_table,
            tree: tree as usize,
        })
    }

    /// Entry `ix` of the inline tree at `tree` in `gofunc`: its function name's offset in the
    /// name table and its `parentPc`.
    fn inline_entry(&self, tree: usize, ix: usize) -> Option<(i32, i32)> {
        let gofunc = self.gofunc?;
        let (size, name, parent) = if self.go120 { (16, 4, 8) } else { (20, 12, 16) };
        let e = tree.checked_add(ix.checked_mul(size)?)?;
        let at = |o: usize| u32_at(gofunc, e.checked_add(o)?).map(|v| v as i32);
        Some((at(name)?, at(parent)?))
    }

    /// File and line of the instruction `target` bytes into the function at `funcoff`.
    fn file_line(&self, funcoff: usize, target: u64) -> (String, u32) {
        let field = |i: usize| {
            let f = self.pcln.checked_add(funcoff)?;
            u32_at(self.data, f.checked_add(4 * i)?)
        };
        let (pcfile, pcln, cu) = (field(5), field(6), field(8));
        let file = pcfile
            .and_then(|t| self.pcvalue(t, target))
            .and_then(|fileno| self.file_name(cu?, fileno))
            .unwrap_or_default();
        let line = pcln
            .and_then(|t| self.pcvalue(t, target))
            .and_then(|l| u32::try_from(l).ok())
            .unwrap_or(0);
        (file, line)
    }

    /// The function containing `pc` and the source position of the instruction there.
    /// For a return address pass `pc - 1` to get the call's line.
    pub fn source_pos(&self, pc: u64) -> Option<SourcePos> {
        let (funcoff, target) = self.locate(pc)?;
        let function = String::from_utf8_lossy(self.name(funcoff)?).into_owned();
        // _func (runtime/runtime2.go, Go 1.18+): entryOff u32, nameOff i32, args i32,
        // deferreturn u32, pcsp u32, pcfile u32, pcln u32, npcdata u32, cuOffset u32, ...
        let (file, line) = self.file_line(funcoff, target);
        Some(SourcePos {
            function,
            file,
            line,
            inlined: false,
        })
    }

    /// The function containing `pc`: its name, where it starts and its size.
    pub fn function_at(&self, pc: u64) -> Option<(String, Function)> {
        let (i, entry, funcoff) = self.func_index(pc)?;
        let next = u32_at(self.data, self.pcln + 8 * (i + 1))?;
        let name = String::from_utf8_lossy(self.name(funcoff)?).into_owned();
        Some((
            name,
            Function {
                addr: self.text_start.checked_add(u64::from(entry))?,
                size: u64::from(next.saturating_sub(entry)),
            },
        ))
    }

    /// How far the stack pointer is below its value at the function's entry while the
    /// instruction at `pc` runs (the `pcsp` table: bytes the function pushed or allocated; the
    /// return address a CALL pushed on amd64 is not counted).
    pub fn sp_delta(&self, pc: u64) -> Option<u64> {
        let (funcoff, target) = self.locate(pc)?;
        let f = self.pcln.checked_add(funcoff)?;
        let pcsp = u32_at(self.data, f.checked_add(16)?)?;
        u64::try_from(self.pcvalue(pcsp, target)?).ok()
    }

    /// The index, entry offset and `_func` offset of the function containing `pc`.
    fn func_index(&self, pc: u64) -> Option<(usize, u32, usize)> {
        let off = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        // Binary search the sorted entry offsets: the last entry <= off, before the end marker.
        let entry_at = |i: usize| u32_at(self.data, self.pcln + 8 * i);
        let end = entry_at(self.nfunc)?;
        if self.nfunc == 0 || off >= end || off < entry_at(0)? {
            return None;
        }
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if entry_at(mid)? <= off {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let funcoff = u32_at(self.data, self.pcln + 8 * lo + 4)? as usize;
        Some((lo, entry_at(lo)?, funcoff))
    }

    /// Value of a pcvalue table at `target` bytes past the function entry
    /// (runtime/symtab.go `pcvalue`: zigzag value deltas, pc deltas in quanta).
    fn pcvalue(&self, table: u32, target: u64) -> Option<i64> {
        if table == 0 {
            return None;
        }
        let mut pos = self.pctab.checked_add(table as usize)?;
        let (mut val, mut pc) = (-1i64, 0u64);
        let mut first = true;
        // A real table ends well before this; the bound keeps corrupted input finite.
        for _ in 0..1_000_000 {
            let uv = uvarint(self.data, &mut pos)?;
            if uv == 0 && !first {
                return None;
            }
            first = false;
            let delta = if uv & 1 != 0 {
                -((uv >> 1) as i64) - 1
            } else {
                (uv >> 1) as i64
            };
            val = val.checked_add(delta)?;
            pc = pc.checked_add(u64::from(uvarint(self.data, &mut pos)?) * self.quantum)?;
            if target < pc {
                return Some(val);
            }
        }
        None
    }

    /// File name for a function's compilation-unit-relative file number.
    fn file_name(&self, cu: u32, fileno: i64) -> Option<String> {
        let idx = (cu as usize).checked_add(usize::try_from(fileno).ok()?)?;
        let off = u32_at(self.data, self.cutab.checked_add(idx.checked_mul(4)?)?)?;
        if off == u32::MAX {
            return None;
        }
        let rest = self.data.get(self.filetab.checked_add(off as usize)?..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn name(&self, funcoff: usize) -> Option<&'a [u8]> {
        let f = self.pcln.checked_add(funcoff)?;
        self.name_at(u32_at(self.data, f.checked_add(4)?)? as i32)
    }

    /// The name at offset `name_off` of the function name table.
    fn name_at(&self, name_off: i32) -> Option<&'a [u8]> {
        let start = self.funcname.checked_add(usize::try_from(name_off).ok()?)?;
        let rest = self.data.get(start..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..end])
    }

    /// Looks up several functions in one pass over the table, in the order of `names`.
    pub fn functions(&self, names: &[&str]) -> Vec<Option<Function>> {
        let mut found = vec![None; names.len()];
        for (name, f) in self.entries() {
            if let Some(k) = names.iter().position(|n| n.as_bytes() == name) {
                found[k].get_or_insert(f);
            }
        }
        found
    }

    /// Every function whose name satisfies `keep`, with its address and size.
    pub fn functions_where(&self, keep: impl Fn(&[u8]) -> bool) -> Vec<(String, Function)> {
        self.entries()
            .filter(|(name, _)| keep(name))
            .map(|(name, f)| (String::from_utf8_lossy(name).into_owned(), f))
            .collect()
    }

    /// Every function of the table with a readable name, in address order (the walk stops
    /// at a damaged entry).
    fn entries(&self) -> impl Iterator<Item = (&'a [u8], Function)> + '_ {
        (0..self.nfunc)
            .map_while(move |i| {
                let e = self.pcln + 8 * i;
                Some((
                    u32_at(self.data, e)?,
                    u32_at(self.data, e + 4)?,
                    u32_at(self.data, e + 8)?,
                ))
            })
            .filter_map(move |(entry, funcoff, next)| {
                let name = self.name(funcoff as usize)?;
                let addr = self.text_start.checked_add(u64::from(entry))?;
                Some((
                    name,
                    Function {
                        addr,
                        size: u64::from(next.saturating_sub(entry)),
                    },
                ))
            })
    }

    /// Looks up a function by exact name.
    pub fn function(&self, name: &str) -> Option<Function> {
        for i in 0..self.nfunc {
            let e = self.pcln + 8 * i;
            let entry = u32_at(self.data, e)?;
            let funcoff = u32_at(self.data, e + 4)? as usize;
            if self.name(funcoff) == Some(name.as_bytes()) {
                let next = u32_at(self.data, e + 8)?;
                return Some(Function {
                    // A crafted text base can push the address past u64 (found by fuzzing).
                    addr: self.text_start.checked_add(u64::from(entry))?,
                    size: u64::from(next.saturating_sub(entry)),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a pclntab with the given (entryoff, name) functions, end offset `end`.
    fn build(magic: u32, text_start: u64, funcs: &[(u32, &str)], end: u32) -> Vec<u8> {
        let header = 8 + 8 * 8;
        let mut names = vec![];
        let mut name_offs = vec![];
        for (_, n) in funcs {
            name_offs.push(names.len() as u32);
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        let funcname = header;
        let pcln = funcname + names.len();
        let functab_len = 8 * (funcs.len() + 1);
        let mut d = vec![];
        d.extend_from_slice(&magic.to_le_bytes());
        d.extend_from_slice(&[0, 0, 1, 8]);
        for w in [
            funcs.len() as u64,
            0,
            text_start,
            funcname as u64,
            0,
            0,
            0,
            pcln as u64,
        ] {
            d.extend_from_slice(&w.to_le_bytes());
        }
        d.extend_from_slice(&names);
        for (i, (entry, _)) in funcs.iter().enumerate() {
            d.extend_from_slice(&entry.to_le_bytes());
            d.extend_from_slice(&((functab_len + 8 * i) as u32).to_le_bytes());
        }
        d.extend_from_slice(&end.to_le_bytes());
        d.extend_from_slice(&0u32.to_le_bytes());
        for (i, (entry, _)) in funcs.iter().enumerate() {
            d.extend_from_slice(&entry.to_le_bytes());
            d.extend_from_slice(&name_offs[i].to_le_bytes());
        }
        d
    }

    #[test]
    fn test_pclntab_lookup() {
        let d = build(
            0xffff_fff1,
            0x401000,
            &[
                (0, "runtime.text"),
                (0x100, "runtime.hashGrow"),
                (0x300, "main.main"),
            ],
            0x400,
        );
        let t = Pclntab::parse(&d, None).unwrap();
        assert_eq!(
            t.function("runtime.hashGrow"),
            Some(Function {
                addr: 0x401100,
                size: 0x200
            })
        );
        assert_eq!(
            t.function("main.main"),
            Some(Function {
                addr: 0x401300,
                size: 0x100
            })
        );
        assert_eq!(t.function("runtime.hash"), None);
        assert_eq!(
            t.functions(&["main.main", "nope", "runtime.hashGrow"]),
            vec![
                Some(Function {
                    addr: 0x401300,
                    size: 0x100
                }),
                None,
                Some(Function {
                    addr: 0x401100,
                    size: 0x200
                })
            ]
        );
        // Go 1.18/1.19 magic reads the same way.
        let d = build(0xffff_fff0, 0x401000, &[(0x10, "runtime.hashGrow")], 0x20);
        assert_eq!(
            Pclntab::parse(&d, None)
                .unwrap()
                .function("runtime.hashGrow")
                .unwrap()
                .addr,
            0x401010
        );
    }

    /// One function `main.f` at textStart+0 of 0x20 bytes in `/src/main.go`: line 10 for its
    /// first 0x10 bytes, 12 after; laid out as the Go 1.20+ linker does.
    fn with_lines() -> Vec<u8> {
        let mut d = vec![0u8; 72];
        d[..4].copy_from_slice(&0xffff_fff1u32.to_le_bytes());
        d[6] = 1; // minLC (amd64)
        d[7] = 8;
        let (funcname, cutab, filetab, pctab, pcln) = (72u64, 80u64, 84u64, 100u64, 112u64);
        for (i, w) in [1, 1, 0x401000, funcname, cutab, filetab, pctab, pcln]
            .iter()
            .enumerate()
        {
            d[8 + 8 * i..16 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        d.extend_from_slice(b"main.f\0\0"); // 72..80
        d.extend_from_slice(&0u32.to_le_bytes()); // cutab: file 0 → filetab offset 0
        d.extend_from_slice(b"/src/main.go\0\0\0\0"); // 84..100
                                                      // pctab: a pad byte (offset 0 means "no table"), pcfile at 1, pcln at 4.
                                                      // Values are zigzag deltas from -1, pc deltas in minLC quanta, 0 ends a table.
        d.extend_from_slice(&[0, 2, 0x20, 0, 22, 0x10, 4, 0x10, 0, 0, 0, 0]); // 100..112
                                                                              // functab: {entry 0, funcoff 16}, end marker {0x20, 0}; then the _func.
        for w in [0u32, 16, 0x20, 0] {
            d.extend_from_slice(&w.to_le_bytes());
        }
        for w in [0u32, 0, 0, 0, 0, 1, 4, 0, 0, 10, 0] {
            d.extend_from_slice(&w.to_le_bytes());
        }
        d
    }

    /// [`with_lines`] with `main.g` inlined into `main.f` over [0x10, 0x20): npcdata 3 (pcdata 2,
    /// the inline tree index: -1 then 0), nfuncdata 4 (funcdata 3: the tree at gofunc 0), and
    /// the tree's one entry (16 bytes from 1.20, 20 before) whose parentPc 4 is at line 10.
    fn with_inlined(go120: bool) -> (Vec<u8>, Vec<u8>) {
        let mut d = with_lines();
        if !go120 {
            d[..4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        }
        let func = 112 + 16;
        // 1.18/1.19 have no startLine: the _func is a word shorter, nfuncdata at byte 39.
        let fixed = if go120 { 44 } else { 40 };
        d.truncate(func + fixed);
        let npcdata = 3u32;
        d[func + 28..func + 32].copy_from_slice(&npcdata.to_le_bytes());
        // nfuncdata.
        d[func + fixed - 1] = 4;
        // The index table goes after the arrays; its offset counts from pctab (100).
        let arrays = func + fixed;
        let table = arrays + 4 * 3 + 4 * 4;
        for w in [0u32, 0, (table - 100) as u32] {
            d.extend_from_slice(&w.to_le_bytes());
        }
        for w in [u32::MAX, u32::MAX, u32::MAX, 0] {
            d.extend_from_slice(&w.to_le_bytes());
        }
        // -1 for 16 bytes, then 0 for 16: zigzag deltas from -1.
        d.extend_from_slice(&[0, 0x10, 2, 0x10, 0]);
        // "main.g" in the name table's space (offsets count from funcname, 72).
        let name_off = (d.len() - 72) as u32;
        d.extend_from_slice(b"main.g\0");
        let mut tree = vec![];
        if go120 {
            tree.extend_from_slice(&[0u8; 4]); // funcID, padding
            tree.extend_from_slice(&name_off.to_le_bytes());
            tree.extend_from_slice(&4u32.to_le_bytes()); // parentPc
            tree.extend_from_slice(&20u32.to_le_bytes()); // startLine
        } else {
            tree.extend_from_slice(&[0xff, 0xff, 0, 0]); // parent -1, funcID, padding
            tree.extend_from_slice(&0u32.to_le_bytes()); // file
            tree.extend_from_slice(&10u32.to_le_bytes()); // line
            tree.extend_from_slice(&name_off.to_le_bytes()); // func_
            tree.extend_from_slice(&4u32.to_le_bytes()); // parentPc
        }
        (d, tree)
    }

    #[test]
    fn test_frames_expand_an_inlined_call_in_both_layouts() {
        for go120 in [true, false] {
            let (d, tree) = with_inlined(go120);
            let t = Pclntab::parse(&d, None).unwrap().with_gofunc(&tree);
            let pos = |function: &str, line, inlined| SourcePos {
                function: function.into(),
                file: "/src/main.go".into(),
                line,
                inlined,
            };
            // Inside the inlined body: main.g at its own line, then main.f at the call.
            assert_eq!(
                t.frames(0x401014),
                vec![pos("main.g", 12, true), pos("main.f", 10, false)],
                "go120 {go120}"
            );
            // Outside it: main.f alone.
            assert_eq!(t.frames(0x401004), vec![pos("main.f", 10, false)]);
            // Without the funcdata: the physical frame, with the inner line.
            let plain = Pclntab::parse(&d, None).unwrap();
            assert_eq!(plain.frames(0x401014), vec![pos("main.f", 12, false)]);
            // A tree cut short: the walk stops, as without the funcdata.
            let cut = Pclntab::parse(&d, None).unwrap().with_gofunc(&tree[..6]);
            assert_eq!(cut.frames(0x401014), vec![pos("main.f", 12, false)]);
        }
    }

    #[test]
    fn test_source_pos_reads_file_and_line_tables() {
        let d = with_lines();
        let t = Pclntab::parse(&d, None).unwrap();
        let at = |pc| t.source_pos(pc);
        let pos = |line| {
            Some(SourcePos {
                function: "main.f".into(),
                file: "/src/main.go".into(),
                line,
                inlined: false,
            })
        };
        assert_eq!(at(0x401000), pos(10));
        assert_eq!(at(0x40100f), pos(10));
        assert_eq!(at(0x401010), pos(12));
        assert_eq!(at(0x40101f), pos(12));
        assert_eq!(at(0x401020), None, "past the last function");
        assert_eq!(at(0x400fff), None, "before the text");
        // A _func cut short: the name is still known, file and line are not.
        let mut cut = d.clone();
        cut.truncate(d.len() - 20);
        let t = Pclntab::parse(&cut, None).unwrap();
        assert_eq!(
            t.source_pos(0x401000),
            Some(SourcePos {
                function: "main.f".into(),
                file: String::new(),
                line: 0,
                inlined: false,
            })
        );
    }

    /// fuzz/artifacts/pclntab/crash-d2e40d6a…: textStart near u64::MAX overflowed the address.
    #[test]
    fn test_pclntab_text_base_overflow_is_no_match() {
        let d = build(
            0xffff_fff1,
            u64::MAX - 0x10,
            &[(0x100, "runtime.hashGrow")],
            0x200,
        );
        let t = Pclntab::parse(&d, None).unwrap();
        assert_eq!(t.function("runtime.hashGrow"), None);
    }

    #[test]
    fn test_pclntab_text_base_go126() {
        let d = build(0xffff_fff1, 0, &[(0x10, "f")], 0x20);
        assert_eq!(
            Pclntab::parse(&d, None).err(),
            Some(PclntabError::NoTextBase)
        );
        assert_eq!(
            Pclntab::parse(&d, Some(0x402400))
                .unwrap()
                .function("f")
                .unwrap()
                .addr,
            0x402410
        );
    }

    #[test]
    fn test_pclntab_rejects_corruption() {
        assert!(matches!(
            Pclntab::parse(b"", None),
            Err(PclntabError::Corrupt(_))
        ));
        assert!(matches!(
            Pclntab::parse(&0xfffffffbu32.to_le_bytes(), None),
            Err(PclntabError::Magic(_))
        ));
        let mut d = build(0xffff_fff1, 0x401000, &[(0x10, "f")], 0x20);
        d[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // nfunc
        assert!(matches!(
            Pclntab::parse(&d, None),
            Err(PclntabError::Corrupt(_))
        ));
        let mut d = build(0xffff_fff1, 0x401000, &[(0x10, "f")], 0x20);
        d[64..72].copy_from_slice(&(1u64 << 40).to_le_bytes()); // pclnOffset
        assert!(matches!(
            Pclntab::parse(&d, None),
            Err(PclntabError::Corrupt(_))
        ));
        // A name offset pointing past the end yields no match, not a panic.
        let mut d = build(0xffff_fff1, 0x401000, &[(0x10, "f")], 0x20);
        let n = d.len();
        d[n - 4..].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        assert_eq!(Pclntab::parse(&d, None).unwrap().function("f"), None);
    }
}
