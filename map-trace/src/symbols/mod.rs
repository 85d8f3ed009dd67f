//! Symbol resolution: what a Go executable contains and where.
//!
//! `elf` reads the ELF (symbols, sections, program headers), `buildinfo` the Go version (`buildversion` when
//! `.go.buildinfo` was removed),
//! `pclntab` the function table (lines, inlined calls), `packages` whose code a frame is (the
//! call-site rule), `symbolize` turns stacks into frames,
//! `prologue` finds the first instruction after a Go function's stack check, `ret` its return
//! instructions. Nothing here touches aya or needs privileges.

pub mod buildinfo;
pub mod buildversion;
pub mod elf;
pub mod fatal;
pub mod finish;
pub mod flow;
pub mod packages;
pub mod pclntab;
pub mod prologue;
pub mod ret;
pub mod symbolize;
pub mod typename;
