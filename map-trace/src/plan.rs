//! Executable → probe plan: which Go version, which layout, which probes at which file offsets.
//!
//! Pure inspection of the file's bytes (no aya, no privileges), so it is unit-testable and every
//! "bad target" error is raised before anything is loaded into the kernel.

use std::path::Path;

use anyhow::{Context, Result};

use crate::{
    error::Fail,
    golayout::{self, ClassicLayout},
    symbols::{
        buildinfo::{self, BuildInfoError, GoVersion},
        elf::{Arch, Elf, ElfError},
        pclntab::{Pclntab, PclntabError},
        prologue,
    },
};
use map_trace_common::names;

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
    /// Machine architecture.
    pub arch: Arch,
    /// Layout handed to the eBPF side, plus the load factor for decoding.
    pub layout: ClassicLayout,
    /// Probes to attach.
    pub probes: Vec<ProbeSite>,
}

/// Reads and inspects an executable.
pub fn inspect(path: &Path) -> Result<Plan> {
    let data = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => anyhow::Error::new(Fail::privileges(format!(
            "cannot read {}: permission denied",
            path.display()
        ))),
        std::io::ErrorKind::NotFound => anyhow::Error::new(Fail::bad_target(format!(
            "{}: no such file",
            path.display()
        ))),
        _ => anyhow::Error::new(e).context(format!("reading {}", path.display())),
    })?;
    inspect_bytes(&data).with_context(|| path.display().to_string())
}

/// Inspects an executable's bytes.
pub fn inspect_bytes(data: &[u8]) -> Result<Plan> {
    let elf = Elf::parse(data).map_err(|e| match e {
        ElfError::NotElf => Fail::bad_target("not a Go binary (not an ELF executable)"),
        other => Fail::bad_target(format!("not a Go binary: {other}")),
    })?;
    let arch = elf
        .arch()
        .ok_or_else(|| Fail::bad_target("not a Go binary for x86-64 or arm64"))?;
    if arch != Arch::host() {
        return Err(Fail::bad_target(format!(
            "{} binary cannot be traced on this {} host",
            arch.goarch(),
            Arch::host().goarch()
        ))
        .into());
    }
    // Like Go's own debug/buildinfo for ELF: only the section counts (a scan of the whole file
    // would find the magic in any program that merely mentions it, this one included).
    let bi_bytes = elf.section(".go.buildinfo").map(|(_, d)| d).unwrap_or(&[]);
    let bi = buildinfo::parse(bi_bytes).map_err(|e| match e {
        BuildInfoError::Missing => Fail::bad_target("not a Go binary (no Go build information)"),
        BuildInfoError::PreGo118 => Fail::unsupported(format!(
            "unsupported Go version (older than Go 1.18): map-trace supports {}",
            golayout::SUPPORTED
        )),
        BuildInfoError::Corrupt(why) => Fail::bad_target(format!("malformed Go binary: {why}")),
    })?;
    let go_version = GoVersion::parse(&bi.version, &bi.modinfo)
        .ok_or_else(|| Fail::unsupported(format!("unrecognized Go version {:?}", bi.version)))?;
    let hash_grow = if elf.has_symtab() {
        elf.function("runtime.hashGrow")
    } else {
        // Stripped (-ldflags=-s): the runtime's own function table still names everything.
        let (_, data) = elf
            .section(".gopclntab")
            .ok_or_else(|| Fail::bad_target("not a Go binary (stripped, and no .gopclntab)"))?;
        let table = Pclntab::parse(data, None).map_err(|e| match e {
            PclntabError::Corrupt(_) => Fail::bad_target(format!("malformed Go binary: {e}")),
            other => Fail::unsupported(format!("{}: {other}", go_version.raw)),
        })?;
        table.function("runtime.hashGrow")
    };
    let layout = golayout::classic(&go_version, hash_grow.is_some())
        .map_err(|e| Fail::unsupported(e.to_string()))?;
    let hash_grow = hash_grow.ok_or_else(|| {
        Fail::bad_target(format!(
            "{}: no runtime.hashGrow symbol (no map code?)",
            go_version.raw
        ))
    })?;
    let site = body_site(
        &elf,
        arch,
        names::PROG_HMAP_HASH_GROW,
        "runtime.hashGrow",
        hash_grow.addr,
    )?;
    Ok(Plan {
        go_version,
        arch,
        layout,
        probes: vec![site],
    })
}

fn body_site(
    elf: &Elf<'_>,
    arch: Arch,
    program: &'static str,
    function: &'static str,
    addr: u64,
) -> Result<ProbeSite> {
    let code = elf
        .bytes_at(addr, 64)
        .map_err(|e| Fail::bad_target(format!("malformed Go binary: {function}: {e}")))?;
    let off = prologue::body_offset(arch, code, addr);
    if off == 0 {
        // No stack check: the function cannot re-enter through morestack, offset 0 is exact.
        // (Never seen for these functions; kept correct rather than failing.)
    }
    let vaddr = addr + off;
    let file_offset = elf
        .file_offset(vaddr)
        .map_err(|e| Fail::bad_target(format!("malformed Go binary: {function}: {e}")))?;
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
    fn test_inspect_rejects_non_go() {
        let e = inspect_bytes(b"#!/bin/sh\n").unwrap_err();
        assert_eq!(classify(&e).code, EXIT_BAD_TARGET);
        // A Rust ELF (this test binary) has no Go build information.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let e = inspect_bytes(&me).unwrap_err();
        assert_eq!(classify(&e).code, EXIT_BAD_TARGET);
        assert!(format!("{e:#}").contains("not a Go binary"), "{e:#}");
    }
}
