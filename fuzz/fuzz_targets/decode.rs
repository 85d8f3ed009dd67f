//! Ring-buffer records → events → timeline → both sinks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use map_trace::{
    events::decode::{decode, Event},
    output::{json::JsonSink, text::TextSink, Sink},
    timeline::{interpret, interpret_swiss, Timeline},
};

fuzz_target!(|data: &[u8]| {
    let mut timeline = Timeline::new();
    let mut json = JsonSink::new(std::io::sink());
    let mut text = TextSink::new(std::io::sink());
    // Several records per input: slots of the largest record's size.
    for chunk in data.chunks(size_of::<map_trace_common::event::SwissEvent>()) {
        match decode(chunk) {
            Ok(Event::MapGrow(ev)) => {
                for lfn in [12, 13] {
                    let g = interpret(&ev, lfn, i128::from(i64::MAX));
                    timeline.push(&g);
                    let _ = json.grow(&g);
                    let _ = text.grow(&g);
                }
            }
            Ok(Event::Swiss(ev)) => {
                if let Some(s) = interpret_swiss(&ev, -1) {
                    timeline.push_swiss(&s);
                    let _ = json.swiss(&s);
                    let _ = text.swiss(&s);
                }
            }
            Ok(Event::Slice(ev)) => {
                let s = map_trace::timeline::interpret_slice(&ev, -1);
                let _ = json.slice(&s);
                let _ = text.slice(&s);
            }
            Ok(Event::Exec(_)) | Err(_) => {}
        }
    }
    let _ = timeline.into_summary();
});
