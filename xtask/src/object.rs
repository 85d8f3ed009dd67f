//! Checks the compiled eBPF object against the names userspace uses: every program and map that
//! `map_trace_common::names` lists must be in it, and one `hmap_evacuated_N` per register of the
//! architecture, no more. A mismatch fails the build here instead of at attach time on a user's
//! host.

use std::{collections::BTreeSet, path::Path};

use anyhow::{bail, Context, Result};
use map_trace_common::names;
use object::{Object, ObjectSection, ObjectSymbol, SectionKind};

/// What an object defines: program names (functions in program sections) and map names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Contents {
    pub programs: BTreeSet<String>,
    pub maps: BTreeSet<String>,
}

/// Reads the programs and maps of an eBPF ELF object.
pub fn contents(data: &[u8]) -> Result<Contents> {
    let file = object::File::parse(data).context("not an ELF object")?;
    let mut c = Contents::default();
    for sym in file.symbols() {
        let (Ok(name), Some(index)) = (sym.name(), sym.section_index()) else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let section_name = section.name().unwrap_or_default();
        if section_name == "maps" || section_name == ".maps" {
            c.maps.insert(name.to_string());
        } else if sym.kind() == object::SymbolKind::Text
            && section.kind() == SectionKind::Text
            && section_name != ".text"
            && sym.is_global()
        {
            // aya names a program after its function symbol in a program section (`uprobe`,
            // `raw_tp`, …); `.text` holds the functions they call.
            c.programs.insert(name.to_string());
        }
    }
    Ok(c)
}

/// What is wrong with `c` for `arch`, one line per problem; empty when it matches.
pub fn problems(c: &Contents, arch: &str) -> Vec<String> {
    let mut out = vec![];
    let missing: Vec<&str> = names::programs_for(arch)
        .filter(|p| !c.programs.contains(*p))
        .collect();
    if !missing.is_empty() {
        out.push(format!("programs missing: {}", missing.join(", ")));
    }
    let extra: Vec<&str> = names::PROG_HMAP_EVACUATED[names::evac_regs(arch)..]
        .iter()
        .copied()
        .filter(|p| c.programs.contains(*p))
        .collect();
    if !extra.is_empty() {
        out.push(format!(
            "programs for registers {arch} does not have (names::evac_regs says {}): {}",
            names::evac_regs(arch),
            extra.join(", ")
        ));
    }
    let maps: Vec<&str> = names::MAPS
        .into_iter()
        .filter(|m| !c.maps.contains(*m))
        .collect();
    if !maps.is_empty() {
        out.push(format!("maps missing: {}", maps.join(", ")));
    }
    out
}

/// Fails unless the object at `path`, built for `arch`, holds every name userspace uses.
pub fn check(path: &Path, arch: &str) -> Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if data.is_empty() {
        bail!(
            "the eBPF object {} is empty: the eBPF build linked nothing (is bpf-linker built \
             against the nightly's LLVM?). A map-trace embedding an empty object (a plain \
             `cargo build`) refuses to trace and names `cargo xtask build`",
            path.display()
        );
    }
    let c = contents(&data).with_context(|| format!("reading {}", path.display()))?;
    if c.programs.is_empty() {
        bail!(
            "the eBPF object {} holds no programs: bpf-linker dropped them all (an object \
             built without `--btf` or with another LLVM than the nightly's?)",
            path.display()
        );
    }
    let problems = problems(&c, arch);
    if !problems.is_empty() {
        bail!(
            "the eBPF object {} does not match map_trace_common::names: {}",
            path.display(),
            problems.join("; ")
        );
    }
    eprintln!(
        "xtask: {} holds the {} programs and {} maps userspace uses",
        path.display(),
        names::programs_for(arch).count(),
        names::MAPS.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(arch: &str) -> Contents {
        Contents {
            programs: names::programs_for(arch).map(String::from).collect(),
            maps: names::MAPS.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn test_problems_name_what_is_missing_or_extra() {
        assert!(problems(&full("x86_64"), "x86_64").is_empty());
        assert!(problems(&full("aarch64"), "aarch64").is_empty());
        // An arm64 object has programs for registers amd64 does not have.
        assert_eq!(problems(&full("aarch64"), "x86_64").len(), 1);
        let mut c = full("x86_64");
        c.programs.remove(names::PROG_SWISS_REHASH_RET);
        c.maps.remove(names::EXE_COST_MAP);
        let p = problems(&c, "x86_64");
        assert_eq!(
            p,
            vec![
                format!("programs missing: {}", names::PROG_SWISS_REHASH_RET),
                format!("maps missing: {}", names::EXE_COST_MAP),
            ]
        );
        assert!(contents(b"not elf").is_err());
    }
}
