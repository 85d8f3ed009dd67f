//! `.gopclntab` parsing, name lookups and pc → source lookups (inlined frames too) with crafted
//! counts and offsets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use map_trace::symbols::pclntab::Pclntab;

fuzz_target!(|data: &[u8]| {
    for base in [None, Some(0x401000)] {
        if let Ok(t) = Pclntab::parse(data, base) {
            let _ = t.function("runtime.hashGrow");
            let _ = t.function("");
            // Return-address symbolization: function, pcfile and pcln tables, file names.
            for pc in [0x401000u64, 0x401001, 0x401100, 0x4fffff, u64::MAX] {
                let _ = t.source_pos(pc);
            }
            // Inlined frames: the same bytes as the funcdata (crafted tree indexes, parent pcs
            // and name offsets).
            let t = t.with_gofunc(data);
            for pc in [0x401000u64, 0x401001, 0x401100, 0x4fffff, u64::MAX] {
                let _ = t.frames(pc);
            }
        }
    }
});
