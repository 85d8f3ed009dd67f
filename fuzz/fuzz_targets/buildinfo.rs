//! `.go.buildinfo` and Go version strings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use map_trace::symbols::buildinfo::{parse, GoVersion};

fuzz_target!(|data: &[u8]| {
    if let Ok(bi) = parse(data) {
        let _ = GoVersion::parse(&bi.version, &bi.modinfo);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = GoVersion::parse(s, s);
    }
});
