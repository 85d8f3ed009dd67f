//! Ring-buffer records → the collector's pipeline (decode → timeline → sinks), as a live
//! session feeds it: any bytes, cut into record-sized slots, in both growth-end modes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use map_trace::{
    output::{json::JsonSink, perfetto::PerfettoSink, text::TextSink, Sink, Tee},
    pipeline::{SessionEnd, NoSymbols, Pipeline, Settings},
};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(TextSink::new(std::io::sink())),
        Box::new(JsonSink::new(std::io::sink())),
        Box::new(PerfettoSink::new(std::io::sink())),
    ];
    let settings = Settings {
        // Records carry pid 0 unless the input says otherwise; both are exercised.
        pid: u32::from(flags & 1),
        load_factor_num: if flags & 2 != 0 { 12 } else { 13 },
        mono_to_unix_ns: if flags & 4 != 0 {
            i128::from(i64::MAX)
        } else {
            -1
        },
        infer_growth_ends: flags & 8 != 0,
        slices: flags & 16 != 0,
        min_bytes: u64::from(flags >> 5) << 10,
        runtime_maps: true,
        kept: Default::default(),
    };
    let mut p = Pipeline::new(settings, NoSymbols, Box::new(Tee(sinks)));
    // Several records per input: slots of the largest record's size.
    for chunk in data.chunks(size_of::<map_trace_common::event::SwissEvent>()) {
        p.record(chunk);
    }
    // And the whole input as one record: the fatal-error record is larger than the slots.
    p.record(data);
    let _ = p.finish(SessionEnd {
        time_ns: u64::MAX,
        lost: 1,
        probe_hits: vec![],
        read_errors: 0,
        reason: map_trace::output::StopReason::Signal,
        exit_status: None,
        overhead: Default::default(),
    });
});
