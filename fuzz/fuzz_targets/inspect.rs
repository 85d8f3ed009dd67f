//! Whole-executable inspection: ELF headers, sections, program headers, buildinfo, pclntab,
//! prologue and RET decoding, all from attacker-controlled bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = map_trace::plan::inspect_bytes(
        data,
        map_trace::plan::Options {
            small_maps: true,
            slices: true,
            growth_ends: true,
            evacuation: true,
            timed_resizes: true,
            discovery: true,
        },
    );
});
