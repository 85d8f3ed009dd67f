//! Streams for the timeline's unit tests, built from the test kit's records.

use map_trace_common::event::MapGrowEvent;

use crate::{golayout::sizing::over_load_factor, symbols::pclntab::SourcePos, testkit::records};

/// Replays the grows of N sequential inserts into make(map[int]int): a grow happens on the
/// insert that would make count+1 exceed the load factor.
pub fn sequential_inserts(n: u64, lfn: u64) -> Vec<MapGrowEvent> {
    let mut b = 0u8;
    let mut out = vec![];
    for count in 0..n {
        if over_load_factor(count + 1, b, lfn) {
            out.push(records::grow(0xc000, count, b, count));
            b += 1;
        }
    }
    out
}

/// A source position in `x.go`.
pub fn pos(function: &str, line: u32) -> SourcePos {
    SourcePos {
        function: function.into(),
        file: "x.go".into(),
        line,
        inlined: false,
    }
}
