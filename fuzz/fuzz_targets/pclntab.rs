//! `.gopclntab` parsing and lookups with crafted counts and offsets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use map_trace::symbols::pclntab::Pclntab;

fuzz_target!(|data: &[u8]| {
    for base in [None, Some(0x401000)] {
        if let Ok(t) = Pclntab::parse(data, base) {
            let _ = t.function("runtime.hashGrow");
            let _ = t.function("");
        }
    }
});
