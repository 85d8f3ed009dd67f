//! Executable → probe plan: which Go version, which layout, which probes at which file offsets.
//!
//! Pure inspection of the file's bytes (no aya, no privileges), so it is unit-testable and every
//! "bad target" error is raised before anything is loaded into the kernel.

use std::path::Path;

use anyhow::{Context, Result};

use crate::{
    golayout::{self, Layout, LayoutError, MapImpl},
    symbols::{
        buildinfo::{self, BuildInfoError, GoVersion},
        buildversion::{self, BuildVersionError},
        elf::{Arch, Elf, ElfError, Function},
        finish,
        pclntab::{Pclntab, PclntabError},
        prologue, ret,
    },
};
use map_trace_common::names;

/// Why an executable cannot be traced. Each kind is a class of failure, not a message: the
/// exit code is decided from it at the edge (`error::classify`), and the agent decides from it
/// whether to remember a file as "not Go". The text is the one line users see.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Not a Go program (not ELF, no Go tables, an architecture map-trace does not know).
    #[error("{0}")]
    NotGo(String),
    /// A Go program built for another architecture than this host's.
    #[error("{0}")]
    ForeignArch(String),
    /// A Go program whose tables are damaged or do not fit together.
    #[error("{0}")]
    Malformed(String),
    /// A Go version, or a runtime layout, map-trace does not support.
    #[error("{0}")]
    Unsupported(String),
    /// The file cannot be read for lack of permission.
    #[error("{0}")]
    Unreadable(String),
    /// No such file.
    #[error("{0}")]
    Missing(String),
}

/// One uprobe to attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSite {
    /// eBPF program name.
    pub program: &'static str,
    /// Go function probed.
    pub function: &'static str,
    /// Virtual address of the probed instruction.
    pub vaddr: u64,
    /// Offset of that instruction from the function start.
    pub offset_in_function: u64,
    /// File offset handed to the kernel.
    pub file_offset: u64,
}

/// What map-trace will do to one executable.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Go version as recorded in the binary.
    pub go_version: GoVersion,
    /// Where the version was read.
    pub go_version_source: VersionSource,
    /// Machine architecture.
    pub arch: Arch,
    /// Layout handed to the eBPF side, plus the load factor for decoding.
    pub layout: Layout,
    /// Probes to attach.
    pub probes: Vec<ProbeSite>,
    /// Things a person should know (a probe point missing from this build, …).
    pub warnings: Vec<String>,
    /// Classic maps: no finishing block was probed, so growth ends are inferred from each map's
    /// next grow (or the probe was not asked for).
    pub infer_growth_ends: bool,
    /// Classic maps: the growth-end probe sits on the finishing store, which the kernel
    /// single-steps, because no emulated instruction equivalent to it was found.
    pub growth_ends_stepped: bool,
    /// What map sampling needs of this binary, or why it cannot sample.
    pub heap: Result<HeapPlan, String>,
    /// The `--discover` window's probes: the body of each map access function this binary
    /// has ([`names::MAP_ACCESS_FUNCTIONS`]); attached only for a `--pid` attach.
    pub discovery: Vec<ProbeSite>,
    /// The Go build ID (`.note.go.buildid`), for profiles' mappings.
    pub build_id: Option<String>,
}

/// Where the runtime's heap metadata is, and its layout, for map sampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapPlan {
    /// Link-time address of `runtime.mheap_` (add the load bias of a PIE).
    pub mheap_vaddr: u64,
    /// How it was found.
    pub mheap_source: crate::heap::locate::Source,
    /// The release's heap metadata offsets.
    pub layout: crate::golayout::heap::HeapLayout,
    /// The map header's.
    pub header: crate::golayout::heap::HeaderLayout,
    /// A PIE: the link-time address of its first PT_LOAD segment (file offset 0), to compute
    /// the load bias from `/proc/PID/maps`. `None`: not position-independent.
    pub pie_first_load: Option<u64>,
}

/// What sampling needs: the layouts of `version`, and `mheap_`.
fn heap_plan(
    elf: &Elf<'_>,
    symbols: &Symbols<'_>,
    version: &GoVersion,
    arch: Arch,
    map_impl: MapImpl,
) -> Result<HeapPlan, String> {
    let layout = crate::golayout::heap::heap_layout(version.minor, arch).ok_or_else(|| {
        format!(
            "Go {}'s heap metadata could not be verified for this build: no map sampling (live entries, storage)",
            version.raw
        )
    })?;
    let lookup = |name: &str| {
        let names = [match name {
            crate::heap::locate::MALLOCINIT => crate::heap::locate::MALLOCINIT,
            _ => crate::heap::locate::MHEAP_INIT,
        }];
        symbols.functions(&names).pop().flatten()
    };
    let (mheap_vaddr, mheap_source) = crate::heap::locate::mheap_vaddr(elf, arch, lookup)
        .ok_or_else(|| {
            "runtime.mheap_ was not found (no .symtab, and runtime.mallocinit does not show it): no map sampling".to_string()
        })?;
    let pie_first_load = elf
        .is_pie()
        .then(|| {
            elf.loads()
                .iter()
                .find(|(_, off, _)| *off == 0)
                .map(|l| l.0)
        })
        .flatten();
    Ok(HeapPlan {
        mheap_vaddr,
        mheap_source,
        layout,
        header: crate::golayout::heap::header_layout(version.minor, map_impl),
        pie_first_load,
    })
}

/// Where the Go version came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSource {
    /// `.go.buildinfo` (every Go 1.18+ build, unless a pipeline removed the section).
    BuildInfo,
    /// The runtime's `runtime.buildVersion` string (the section was removed).
    RuntimeBuildVersion,
}

impl VersionSource {
    /// Every source, for parsing names.
    pub const ALL: [VersionSource; 2] =
        [VersionSource::BuildInfo, VersionSource::RuntimeBuildVersion];

    /// The name in the JSON `start` record's `go_version_source`.
    pub fn name(self) -> &'static str {
        match self {
            VersionSource::BuildInfo => "buildinfo",
            VersionSource::RuntimeBuildVersion => "runtime.buildVersion",
        }
    }
}

/// Probe families beyond the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// `--small-maps`: probe `growToSmall` (Swiss).
    pub small_maps: bool,
    /// `--slices`: probe `growslice` (body and RETs).
    pub slices: bool,
    /// Classic maps: probe the block of `advanceEvacuationMark` that finishes a growth (one hit
    /// per growth; the CLI's default).
    pub growth_ends: bool,
    /// `--evacuation`: probe every `evacuate*` call (body and RETs).
    pub evacuation: bool,
    /// Swiss maps: time each table resize with probes on `rehash`'s RETs (single-stepped; the
    /// `timed_resizes` family a budget sheds first).
    pub timed_resizes: bool,
    /// `--discover` (a `--pid` attach): find the map access functions' probe sites.
    pub discovery: bool,
}

/// Reads and inspects an executable.
pub fn inspect(path: &Path, opts: Options) -> Result<Plan> {
    let data = map_file(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => anyhow::Error::new(PlanError::Unreadable(format!(
            "cannot read {}: permission denied",
            path.display()
        ))),
        std::io::ErrorKind::NotFound => anyhow::Error::new(PlanError::Missing(format!(
            "{}: no such file",
            path.display()
        ))),
        _ => anyhow::Error::new(e).context(format!("reading {}", path.display())),
    })?;
    crate::timing::mark("plan: mmap");
    inspect_bytes(&data, opts).with_context(|| path.display().to_string())
}

/// Maps the executable read-only instead of reading it: Go binaries are tens of MB and only
/// the symbol table, a few sections and a few functions are looked at.
fn map_file(path: &Path) -> std::io::Result<memmap2::Mmap> {
    let file = std::fs::File::open(path)?;
    // SAFETY: the mapping is private and read-only. Another process truncating the file while
    // it is mapped would make reads fault (SIGBUS); executables that are running cannot be
    // written (ETXTBSY) and replacing one by rename leaves this mapping on the old inode, so
    // the remaining risk is a file truncated in place during launch-mode start-up.
    unsafe { memmap2::Mmap::map(&file) }
}

/// Where function addresses come from: `.symtab`, or `.gopclntab` when stripped.
enum Symbols<'a> {
    Symtab(&'a Elf<'a>),
    Pclntab(Pclntab<'a>),
}

impl Symbols<'_> {
    /// Every name in one pass; `None` for the ones the binary lacks.
    fn functions(&self, names: &[&'static str]) -> Vec<Option<Function>> {
        match self {
            Symbols::Symtab(elf) => elf.functions(names),
            Symbols::Pclntab(t) => t.functions(names),
        }
    }
}

const HASH_GROW: &str = "runtime.hashGrow";
const GROW_TO_SMALL: &str = "internal/runtime/maps.(*Map).growToSmall";
const GROW_TO_TABLE: &str = "internal/runtime/maps.(*Map).growToTable";
const REHASH: &str = "internal/runtime/maps.(*table).rehash";
const TABLE_GROW: &str = "internal/runtime/maps.(*table).grow";
const TABLE_SPLIT: &str = "internal/runtime/maps.(*table).split";
const GROWSLICE: &str = "runtime.growslice";
/// Where the runtime kills a process for a map misuse (Go 1.19+) …
const FATAL: &str = "runtime.fatal";
/// … and, before `fatal` existed (Go 1.18), for any runtime error.
const THROW: &str = "runtime.throw";
/// … called through this wrapper by the Swiss maps (Go 1.24+).
const MAPS_FATAL: &str = crate::symbols::fatal::MAPS_FATAL;
const ADVANCE_EVACUATION_MARK: &str = "runtime.advanceEvacuationMark";
const EVACUATE: [&str; 4] = [
    "runtime.evacuate",
    "runtime.evacuate_fast32",
    "runtime.evacuate_fast64",
    "runtime.evacuate_faststr",
];

/// Inspects an executable's bytes.
pub fn inspect_bytes(data: &[u8], opts: Options) -> Result<Plan> {
    let elf = Elf::parse(data).map_err(|e| match e {
        ElfError::NotElf => PlanError::NotGo("not a Go binary (not an ELF executable)".into()),
        other => PlanError::NotGo(format!("not a Go binary: {other}")),
    })?;
    let arch = elf
        .arch()
        .ok_or_else(|| PlanError::NotGo("not a Go binary for x86-64 or arm64".into()))?;
    if arch != Arch::host() {
        return Err(PlanError::ForeignArch(format!(
            "{} binary cannot be traced on this {} host",
            arch.goarch(),
            Arch::host().goarch()
        ))
        .into());
    }
    crate::timing::mark("plan: elf parse");
    let (go_version, go_version_source) = read_go_version(&elf)?;
    crate::timing::mark("plan: go version");
    // Versions outside the known range are refused before their tables are interpreted.
    golayout::check_range(&go_version).map_err(|e| PlanError::Unsupported(e.to_string()))?;
    let symbols = if elf.has_symtab() {
        Symbols::Symtab(&elf)
    } else {
        // Stripped (-ldflags=-s): the runtime's own function table still names everything.
        let (table, text_base) = elf.go_pclntab().ok_or_else(|| {
            PlanError::NotGo("not a Go binary (stripped, and no .gopclntab)".into())
        })?;
        Symbols::Pclntab(Pclntab::parse(table, text_base).map_err(|e| match e {
            // Every supported release (checked above) writes a known magic and a text base:
            // anything else is a damaged file.
            PclntabError::Corrupt(_) | PclntabError::Magic(_) | PclntabError::NoTextBase => {
                PlanError::Malformed(format!("malformed Go binary: {e}"))
            }
        })?)
    };
    let [hash_grow, rehash, table_grow, table_split, grow_to_small, grow_to_table, growslice, advance_mark, ev0, ev32, ev64, evstr, fatal, maps_fatal, throw] =
        symbols.functions(&[
            HASH_GROW,
            REHASH,
            TABLE_GROW,
            TABLE_SPLIT,
            GROW_TO_SMALL,
            GROW_TO_TABLE,
            GROWSLICE,
            ADVANCE_EVACUATION_MARK,
            EVACUATE[0],
            EVACUATE[1],
            EVACUATE[2],
            EVACUATE[3],
            FATAL,
            MAPS_FATAL,
            THROW,
        ])[..]
    else {
        unreachable!("one result per name")
    };
    crate::timing::mark("plan: symbols");
    let has_swiss = rehash.is_some() || table_grow.is_some();
    let layout =
        golayout::layout(&go_version, hash_grow.is_some(), has_swiss).map_err(|e| match e {
            LayoutError::NoMapCode { .. } => PlanError::Malformed(e.to_string()),
            _ => PlanError::Unsupported(e.to_string()),
        })?;

    let mut layout = layout;
    if opts.timed_resizes && layout.map_impl == MapImpl::Swiss {
        layout.offsets.flags |= map_trace_common::config::LAYOUT_TIMED_RESIZES;
    }
    let mut probes = vec![];
    let mut warnings = vec![];
    let mut infer_growth_ends = false;
    let mut growth_ends_stepped = false;
    match layout.map_impl {
        MapImpl::Classic => {
            let f = hash_grow.expect("classic layout implies hashGrow");
            probes.push(body_site(
                &elf,
                arch,
                names::PROG_HMAP_HASH_GROW,
                HASH_GROW,
                f,
            )?);
            if opts.growth_ends {
                match advance_mark.map(|f| finish_site(&elf, arch, &layout, f)) {
                    Some(Ok((site, emulated))) => {
                        if !emulated {
                            growth_ends_stepped = true;
                            warnings.push(format!(
                                "{ADVANCE_EVACUATION_MARK}: no instruction the kernel emulates runs once per growth end: the probe sits on the finishing store, which it single-steps (~10× the cost of a body probe)"
                            ));
                        }
                        probes.push(site);
                    }
                    Some(Err(why)) => {
                        infer_growth_ends = true;
                        warnings.push(format!(
                            "{ADVANCE_EVACUATION_MARK}: {why}: growth ends are inferred from each map's next grow"
                        ));
                    }
                    None => {
                        infer_growth_ends = true;
                        warnings.push(format!(
                            "{ADVANCE_EVACUATION_MARK} is not in this binary (inlined?): growth ends are inferred from each map's next grow"
                        ));
                    }
                }
            }
            if opts.evacuation {
                for (name, f) in EVACUATE.iter().zip([ev0, ev32, ev64, evstr]) {
                    // A variant the program never uses can be left out by the linker.
                    let Some(f) = f else { continue };
                    probes.push(body_site(&elf, arch, names::PROG_HMAP_EVACUATE, name, f)?);
                    probes.extend(ret_sites(
                        &elf,
                        arch,
                        names::PROG_HMAP_EVACUATE_RET,
                        name,
                        f,
                    )?);
                }
            }
        }
        MapImpl::Swiss => {
            if opts.small_maps {
                match grow_to_small {
                    Some(f) => probes.push(body_site(
                        &elf,
                        arch,
                        names::PROG_SWISS_GROW_TO_SMALL,
                        GROW_TO_SMALL,
                        f,
                    )?),
                    None => warnings.push(format!(
                        "{GROW_TO_SMALL} is not in this binary (inlined?): --small-maps reports nothing"
                    )),
                }
            }
            match grow_to_table {
                // Reported from the body alone: timing an 8-entry copy would cost a
                // single-stepped RET per small map.
                Some(f) => probes.push(body_site(
                    &elf,
                    arch,
                    names::PROG_SWISS_GROW_TO_TABLE,
                    GROW_TO_TABLE,
                    f,
                )?),
                None => warnings.push(format!(
                    "{GROW_TO_TABLE} is not in this binary (inlined?): small-to-table conversions are not reported"
                )),
            }
            // rehash decides grow vs split; if the compiler inlined it, probe grow and split
            // themselves (same first three arguments, same decision by capacity).
            let targets: Vec<(&'static str, Function)> = match rehash {
                Some(f) => vec![(REHASH, f)],
                None => [(TABLE_GROW, table_grow), (TABLE_SPLIT, table_split)]
                    .into_iter()
                    .filter_map(|(n, f)| f.map(|f| (n, f)))
                    .collect(),
            };
            for (name, f) in targets {
                probes.push(body_site(&elf, arch, names::PROG_SWISS_REHASH, name, f)?);
                if opts.timed_resizes {
                    probes.extend(ret_sites(
                        &elf,
                        arch,
                        names::PROG_SWISS_REHASH_RET,
                        name,
                        f,
                    )?);
                }
            }
        }
    }
    // The crash path: costs nothing until a map misuse kills the process.
    // Swiss builds' map functions call it through a wrapper that has a stack check, probed at
    // its entry (see `names::PROG_MAP_FATAL_ENTRY`); `fatal` and `throw` have none.
    let maps_fatal = maps_fatal.filter(|_| layout.map_impl == MapImpl::Swiss);
    match (maps_fatal, fatal, throw) {
        (Some(f), _, _) => probes.push(site(
            &elf,
            names::PROG_MAP_FATAL_ENTRY,
            MAPS_FATAL,
            f.addr,
            0,
        )?),
        (None, Some(f), _) => {
            probes.push(body_site(&elf, arch, names::PROG_MAP_FATAL, FATAL, f)?)
        }
        (None, None, Some(f)) => {
            probes.push(body_site(&elf, arch, names::PROG_MAP_FATAL, THROW, f)?)
        }
        (None, None, None) => warnings.push(format!(
            "neither {FATAL} nor {THROW} is in this binary: a concurrent map misuse that kills the process is not reported"
        )),
    }
    if opts.slices {
        match growslice {
            Some(f) => {
                probes.push(body_site(&elf, arch, names::PROG_SLICE_GROW, GROWSLICE, f)?);
                probes.extend(ret_sites(
                    &elf,
                    arch,
                    names::PROG_SLICE_GROW_RET,
                    GROWSLICE,
                    f,
                )?);
            }
            None => warnings.push(format!(
                "{GROWSLICE} is not in this binary: --slices reports nothing"
            )),
        }
    }
    let heap = heap_plan(&elf, &symbols, &go_version, arch, layout.map_impl);
    // Another pass over the symbols, so only when a window will use them.
    let discovery = if opts.discovery {
        symbols
            .functions(&names::MAP_ACCESS_FUNCTIONS)
            .into_iter()
            .zip(names::MAP_ACCESS_FUNCTIONS)
            .filter_map(|(f, name)| body_site(&elf, arch, names::PROG_MAP_ACCESS, name, f?).ok())
            .collect()
    } else {
        vec![]
    };
    Ok(Plan {
        go_version,
        go_version_source,
        arch,
        layout,
        probes,
        warnings,
        infer_growth_ends,
        growth_ends_stepped,
        heap,
        discovery,
        build_id: elf.go_build_id(),
    })
}

/// The Go version: from `.go.buildinfo`, or when a release pipeline removed that section, from
/// the runtime's `runtime.buildVersion` string, cross-checked against the `.gopclntab` layout.
fn read_go_version(elf: &Elf<'_>) -> Result<(GoVersion, VersionSource)> {
    // Like Go's own debug/buildinfo for ELF: only the section counts (a scan of the whole file
    // would find the magic in any program that merely mentions it, this one included).
    let bi_bytes = elf.section(".go.buildinfo").map(|(_, d)| d).unwrap_or(&[]);
    let bi = match buildinfo::parse(bi_bytes) {
        Ok(bi) => bi,
        Err(BuildInfoError::Missing) => return runtime_build_version(elf),
        Err(BuildInfoError::PreGo118) => {
            return Err(PlanError::Unsupported(format!(
                "unsupported Go version (older than Go 1.18): map-trace supports {}",
                golayout::SUPPORTED
            ))
            .into())
        }
        Err(BuildInfoError::Corrupt(why)) => {
            return Err(PlanError::Malformed(format!("malformed Go binary: {why}")).into())
        }
    };
    let v = GoVersion::parse(&bi.version, &bi.modinfo).ok_or_else(|| {
        PlanError::Unsupported(format!("unrecognized Go version {:?}", bi.version))
    })?;
    Ok((v, VersionSource::BuildInfo))
}

/// No `.go.buildinfo`: the version the linker stored in `runtime.buildVersion` (see
/// `symbols::buildversion`).
///
/// No whole-file scan for a `go1.N` string is done, on purpose: any program may carry such
/// bytes (a C tool printing "requires go1.23.9", this very binary's messages), and a version
/// taken from them would have map-trace probe a non-Go process with a layout picked at random.
/// Only a Go string header (`{ptr, len}` in `.data`/`.noptrdata`, or the symbol itself)
/// pointing at exactly a version string counts, and only in a file with a Go function table
/// whose format (the `.gopclntab` magic) was written by that version's linker.
fn runtime_build_version(elf: &Elf<'_>) -> Result<(GoVersion, VersionSource)> {
    let no_buildinfo = "not a Go binary (no Go build information)";
    let (table, _) = elf
        .go_pclntab()
        .ok_or_else(|| PlanError::NotGo(format!("{no_buildinfo} and no .gopclntab")))?;
    let raw = buildversion::find(elf).map_err(|e| match e {
        BuildVersionError::NotFound => PlanError::NotGo(format!(
            "{no_buildinfo}: .go.buildinfo is missing and no runtime.buildVersion string was found"
        )),
        e => PlanError::Malformed(format!(
            "malformed Go binary: .go.buildinfo is missing and {e}"
        )),
    })?;
    let v = GoVersion::parse(&raw, "")
        .ok_or_else(|| PlanError::Unsupported(format!("unrecognized Go version {raw:?}")))?;
    let magic = table
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .unwrap_or(0);
    if !buildversion::layout_agrees(v.major, v.minor, magic) {
        return Err(PlanError::Malformed(format!(
            "malformed Go binary: .go.buildinfo is missing, and runtime.buildVersion says {raw} but the .gopclntab magic {magic:#x} is not that release's"
        ))
        .into());
    }
    Ok((v, VersionSource::RuntimeBuildVersion))
}

/// The finishing block of `advanceEvacuationMark` (see `symbols::finish`), with the program
/// that reads `h` from the register the compiler chose there, and whether the kernel emulates
/// the probed instruction.
fn finish_site(
    elf: &Elf<'_>,
    arch: Arch,
    layout: &Layout,
    f: Function,
) -> Result<(ProbeSite, bool), String> {
    if f.size == 0 || f.size > 1 << 16 {
        return Err(format!("implausible function size {}", f.size));
    }
    let code = elf.bytes_at(f.addr, f.size).map_err(|e| e.to_string())?;
    let found = finish::finish_site(
        arch,
        code,
        f.addr,
        layout.offsets.hmap_flags,
        HMAP_OLDBUCKETS,
    )
    .map_err(|e| e.to_string())?;
    let program = names::PROG_HMAP_EVACUATED
        .get(found.reg)
        .ok_or_else(|| format!("no program for register {}", found.reg))?;
    site(elf, program, ADVANCE_EVACUATION_MARK, f.addr, found.offset)
        .map(|s| (s, found.emulated))
        .map_err(|e| format!("{e:#}"))
}

/// `hmap.oldbuckets`: count (int), flags, B, noverflow, hash0 (16 bytes), then buckets at 16 and
/// oldbuckets at 24 on 64-bit targets, in every classic release (1.18–1.25).
const HMAP_OLDBUCKETS: u32 = 24;

fn malformed(function: &str, e: impl std::fmt::Display) -> PlanError {
    PlanError::Malformed(format!("malformed Go binary: {function}: {e}"))
}

fn body_site(
    elf: &Elf<'_>,
    arch: Arch,
    program: &'static str,
    function: &'static str,
    f: Function,
) -> Result<ProbeSite> {
    let code = elf
        .bytes_at(f.addr, 64)
        .map_err(|e| malformed(function, e))?;
    // 0 when there is no stack check: such a function cannot restart through morestack.
    let off = prologue::body_offset(arch, code, f.addr);
    site(elf, program, function, f.addr, off)
}

fn ret_sites(
    elf: &Elf<'_>,
    arch: Arch,
    program: &'static str,
    function: &'static str,
    f: Function,
) -> Result<Vec<ProbeSite>> {
    if f.size == 0 || f.size > 1 << 20 {
        return Err(malformed(function, format!("implausible function size {}", f.size)).into());
    }
    let code = elf
        .bytes_at(f.addr, f.size)
        .map_err(|e| malformed(function, e))?;
    let offsets = ret::ret_offsets(arch, code, f.addr);
    if offsets.is_empty() {
        return Err(malformed(function, "no return instruction").into());
    }
    offsets
        .into_iter()
        .map(|off| site(elf, program, function, f.addr, off))
        .collect()
}

fn site(
    elf: &Elf<'_>,
    program: &'static str,
    function: &'static str,
    addr: u64,
    off: u64,
) -> Result<ProbeSite> {
    let vaddr = addr
        .checked_add(off)
        .ok_or_else(|| malformed(function, format!("address {addr:#x} + {off:#x} overflows")))?;
    let file_offset = elf.file_offset(vaddr).map_err(|e| malformed(function, e))?;
    Ok(ProbeSite {
        program,
        function,
        vaddr,
        offset_in_function: off,
        file_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{classify, EXIT_BAD_TARGET};

    #[test]
    fn test_a_function_table_at_the_top_of_the_address_space_is_refused_not_a_panic() {
        // Found by the inspect fuzz target: .gopclntab's address + 24 overflowed.
        let data = include_bytes!("symbols/testdata/fuzz-inspect-pclntab-at-top.elf");
        assert!(inspect_bytes(data, Options::default()).is_err());
    }

    #[test]
    fn test_inspect_rejects_non_go() {
        let e = inspect_bytes(b"#!/bin/sh\n", Options::default()).unwrap_err();
        assert_eq!(classify(&e).code, EXIT_BAD_TARGET);
        // A Rust ELF (this test binary) has no Go build information.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // It carries Go version strings (these tests' literals), but no Go string header and
        // no .gopclntab: the runtime.buildVersion fallback must not take them.
        assert!(me.windows(8).any(|w| w == b"go1.23.9"));
        let e = inspect_bytes(&me, Options::default()).unwrap_err();
        assert_eq!(classify(&e).code, EXIT_BAD_TARGET);
        assert!(format!("{e:#}").contains("not a Go binary"), "{e:#}");
    }
}
