//! Return addresses → Go source positions, for call sites.
//!
//! A [`Symbolizer`] owns a read-only mapping of one executable and reads its `.gopclntab`
//! (present in stripped binaries too). Addresses from a process are first turned into the
//! file's virtual addresses: unchanged for a fixed-address executable, moved by the process's
//! load address for a PIE (read from `/proc/PID/maps` by [`ProcessMap`]).

use std::{path::Path, sync::Arc};

use rustc_hash::FxHashMap;

use super::{
    elf::Elf,
    pclntab::{Pclntab, SourcePos},
};

/// A symbolized stack: its logical frames, innermost first (inlined ones expanded), and which
/// frame is the call site ([`super::packages::site`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallStack {
    /// Frames, innermost first (addresses that did not resolve are left out).
    pub frames: Vec<SourcePos>,
    /// Index into `frames` of the call site.
    pub site: Option<usize>,
}

/// Where one process mapped an executable file: `(start, end, file offset)` per mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessMap {
    ranges: Vec<(u64, u64, u64)>,
}

impl ProcessMap {
    /// The mappings of the file with inode `ino` in a `/proc/PID/maps` text.
    pub fn parse(maps: &str, ino: u64) -> Self {
        let mut ranges = vec![];
        for line in maps.lines() {
            let mut f = line.split_ascii_whitespace();
            let (Some(range), Some(_perms), Some(off), Some(_dev), Some(inode)) =
                (f.next(), f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            if inode.parse::<u64>().ok() != Some(ino) {
                continue;
            }
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            if let (Ok(a), Ok(b), Ok(off)) = (
                u64::from_str_radix(a, 16),
                u64::from_str_radix(b, 16),
                u64::from_str_radix(off, 16),
            ) {
                ranges.push((a, b, off));
            }
        }
        Self { ranges }
    }

    /// Reads `/proc/PID/maps` for the mappings of inode `ino`.
    pub fn read(pid: u32, ino: u64) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        let m = Self::parse(&text, ino);
        (!m.ranges.is_empty()).then_some(m)
    }

    /// File offset of process address `pc`.
    fn file_offset(&self, pc: u64) -> Option<u64> {
        self.ranges
            .iter()
            .find(|(a, b, _)| (*a..*b).contains(&pc))
            .and_then(|(a, _, off)| (pc - a).checked_add(*off))
    }
}

/// Symbolizes addresses of one executable; caches every answer.
pub struct Symbolizer {
    data: memmap2::Mmap,
    table: (usize, usize),
    /// Where `moduledata.gofunc`'s bytes are in `data` (inline trees).
    gofunc: Option<(usize, usize)>,
    go_minor: u32,
    text_base: Option<u64>,
    loads: Vec<(u64, u64, u64)>,
    pie: bool,
    cache: FxHashMap<u64, Arc<[SourcePos]>>,
    types_base: Option<u64>,
    type_names: FxHashMap<u64, Option<Arc<str>>>,
}

impl Symbolizer {
    /// Opens `path` (e.g. `/proc/PID/exe`) of a binary built with Go 1.`go_minor`; `None` if it
    /// has no readable `.gopclntab`.
    pub fn open(path: &Path, go_minor: u32) -> Option<Self> {
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: private read-only mapping of an executable; see plan.rs on the (small) risk of
        // a file truncated in place while mapped.
        let data = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let (table, gofunc, text_base, loads, pie, types_base) = {
            let elf = Elf::parse(&data).ok()?;
            let (tab, text_base) = elf.go_pclntab()?;
            let range = |b: &[u8]| {
                let start = b.as_ptr() as usize - data.as_ptr() as usize;
                (start, start + b.len())
            };
            (
                range(tab),
                elf.go_func_data(go_minor).map(range),
                text_base,
                elf.loads(),
                elf.is_pie(),
                super::typename::types_base(&elf, go_minor),
            )
        };
        let s = Self {
            data,
            table,
            gofunc,
            go_minor,
            text_base,
            loads,
            pie,
            cache: FxHashMap::default(),
            types_base,
            type_names: FxHashMap::default(),
        };
        s.pclntab()?;
        Some(s)
    }

    fn pclntab(&self) -> Option<Pclntab<'_>> {
        let t = Pclntab::parse(&self.data[self.table.0..self.table.1], self.text_base).ok()?;
        Some(match self.gofunc {
            Some((a, b)) => t.with_gofunc(&self.data[a..b]),
            None => t,
        })
    }

    /// The Go release the executable was built with (1.`go_minor`).
    pub fn go_minor(&self) -> u32 {
        self.go_minor
    }

    /// Whether addresses need a [`ProcessMap`] (PIE).
    pub fn needs_process_map(&self) -> bool {
        self.pie
    }

    /// The file's virtual address for process address `pc`.
    fn vaddr(&self, pc: u64, map: Option<&ProcessMap>) -> Option<u64> {
        if !self.pie {
            return Some(pc);
        }
        let off = map?.file_offset(pc)?;
        self.loads
            .iter()
            .find(|(_, o, sz)| off >= *o && off - o < *sz)
            .map(|(v, o, _)| v + (off - o))
    }

    /// The Go name of the type whose descriptor is at process address `addr`
    /// (e.g. `map[string]int`).
    pub fn type_name(&mut self, addr: u64, map: Option<&ProcessMap>) -> Option<Arc<str>> {
        if let Some(hit) = self.type_names.get(&addr) {
            return hit.clone();
        }
        let base = self.types_base?;
        let vaddr = self.vaddr(addr, map)?;
        let name = Elf::parse(&self.data)
            .ok()
            .and_then(|elf| super::typename::type_name(&elf, base, vaddr))
            .map(Arc::<str>::from);
        if self.type_names.len() < 100_000 {
            self.type_names.insert(addr, name.clone());
        }
        name
    }

    /// The logical frames of the call that return address `pc` returns from, innermost first:
    /// the functions inlined at the call, then the function that made it (empty if `pc` is
    /// not in the executable's code).
    pub fn return_address(&mut self, pc: u64, map: Option<&ProcessMap>) -> Arc<[SourcePos]> {
        let Some(vaddr) = self.vaddr(pc, map) else {
            return Arc::from([]);
        };
        if let Some(hit) = self.cache.get(&vaddr) {
            return hit.clone();
        }
        let frames: Arc<[SourcePos]> = match (self.pclntab(), vaddr.checked_sub(1)) {
            (Some(t), Some(call)) => t.frames(call).into(),
            _ => Arc::from([]),
        };
        // Bounded: one entry per distinct return address, at most a few thousand in practice.
        if self.cache.len() < 100_000 {
            self.cache.insert(vaddr, frames.clone());
        }
        frames
    }

    /// The stack symbolized: its logical frames, innermost first, and its call site.
    pub fn call_stack(&mut self, pcs: &[u64], map: Option<&ProcessMap>) -> CallStack {
        let mut frames = vec![];
        for &pc in pcs {
            frames.extend(self.return_address(pc, map).iter().cloned());
        }
        let site = super::packages::site(&frames, self.go_minor);
        CallStack { frames, site }
    }
}

/// The executable's code as the fatal-error decoder reads it, in process addresses.
struct ProcessCode<'s> {
    sym: &'s Symbolizer,
    map: Option<&'s ProcessMap>,
    /// Addresses are the file's own (no process): a survey of the executable.
    link: bool,
}

impl ProcessCode<'_> {
    fn vaddr(&self, pc: u64) -> Option<u64> {
        if self.link {
            Some(pc)
        } else {
            self.sym.vaddr(pc, self.map)
        }
    }
}

impl super::fatal::Code for ProcessCode<'_> {
    fn function_at(&mut self, pc: u64) -> Option<(String, super::elf::Function)> {
        let v = self.vaddr(pc)?;
        let (name, f) = self.sym.pclntab()?.function_at(v)?;
        // Back to process addresses: a PIE's functions moved with the load address.
        let addr = f.addr.checked_add(pc.wrapping_sub(v))?;
        Some((name, super::elf::Function { addr, size: f.size }))
    }

    fn bytes(&mut self, f: super::elf::Function) -> Option<Vec<u8>> {
        let v = self.vaddr(f.addr)?;
        let elf = Elf::parse(&self.sym.data).ok()?;
        elf.bytes_at(v, f.size).ok().map(<[u8]>::to_vec)
    }

    fn sp_delta(&mut self, pc: u64) -> Option<u64> {
        let v = self.vaddr(pc)?;
        self.sym.pclntab()?.sp_delta(v)
    }
}

impl Symbolizer {
    /// The map of a fatal error of a process running this executable (see
    /// [`super::fatal::locate`]).
    pub fn locate_fatal(
        &self,
        ev: &map_trace_common::event::MapFatalEvent,
        map: Option<&ProcessMap>,
    ) -> super::fatal::Located {
        let arch = Elf::parse(&self.data)
            .ok()
            .and_then(|e| e.arch())
            .unwrap_or_else(super::elf::Arch::host);
        super::fatal::locate(
            arch,
            &mut ProcessCode {
                sym: self,
                map,
                link: false,
            },
            ev,
        )
    }

    /// Every call of `runtime.fatal` in this executable's map functions, and where each leaves
    /// the map (see [`super::fatal::survey`]); empty without `runtime.fatal`.
    pub fn survey_fatal(&self) -> Vec<super::fatal::SiteShape> {
        let Some(elf) = Elf::parse(&self.data).ok() else {
            return vec![];
        };
        let arch = elf.arch().unwrap_or_else(super::elf::Arch::host);
        let Some(t) = self.pclntab() else {
            return vec![];
        };
        let functions = t.functions_where(|n| {
            n.starts_with(b"runtime.map") || n.starts_with(b"internal/runtime/maps.")
        });
        let [fatal, wrapper] = t.functions(&["runtime.fatal", super::fatal::MAPS_FATAL])[..] else {
            return vec![];
        };
        let Some(fatal) = fatal else {
            return vec![];
        };
        super::fatal::survey(
            arch,
            &mut ProcessCode {
                sym: self,
                map: None,
                link: true,
            },
            &functions,
            fatal.addr,
            wrapper,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_process_map_parse() {
        let maps = "\
55d4a0000000-55d4a0100000 r--p 00000000 fd:01 1234 /app/server
55d4a0100000-55d4a0400000 r-xp 00100000 fd:01 1234 /app/server
55d4a0400000-55d4a0500000 rw-p 00400000 fd:01 999 /lib/other.so
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
";
        let m = ProcessMap::parse(maps, 1234);
        assert_eq!(m.ranges.len(), 2);
        assert_eq!(m.file_offset(0x55d4a0100010), Some(0x100010));
        assert_eq!(m.file_offset(0x55d4a0400010), None);
    }
}
