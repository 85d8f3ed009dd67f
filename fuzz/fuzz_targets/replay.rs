//! Any bytes as a recording (`--record`) → `map-trace replay`'s pipeline → text, JSON and
//! Perfetto sinks: an error or a summary, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use map_trace::output::{json::JsonSink, perfetto::PerfettoSink, text::TextSink, Sink, Tee};

fuzz_target!(|data: &[u8]| {
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(TextSink::new(std::io::sink())),
        Box::new(JsonSink::new(std::io::sink())),
        Box::new(PerfettoSink::new(std::io::sink())),
    ];
    let _ = map_trace::recording::replay(data, Box::new(Tee(sinks)));
});
