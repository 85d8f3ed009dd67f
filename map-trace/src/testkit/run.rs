//! What a run's start says, with plain defaults a test overrides with struct-update syntax.

use crate::{golayout::MapImpl, output::StartInfo, plan::VersionSource, symbols::elf::Arch};

/// A run of pid 7 of `/app`, Go 1.23.9 read from `.go.buildinfo`, on amd64, attached (not
/// launched), with no probes listed, at Unix ns 1000.
pub fn start_info(map_impl: MapImpl) -> StartInfo {
    StartInfo {
        time_ns: 1_000,
        pid: 7,
        exe: "/app".into(),
        go_version: "go1.23.9".into(),
        go_version_source: VersionSource::BuildInfo,
        map_impl,
        arch: Arch::X86_64,
        probes: vec![],
        launched: false,
        build_id: None,
    }
}
