//! Collector throughput and memory, without the kernel: a recorded stream of ring-buffer
//! records goes through decode → interpret → timeline → JSON sink (to a sink that discards).
//!
//! `cargo bench -p map-trace --bench pipeline` (run by `cargo xtask bench`). Prints events/s
//! on one core and the process's peak RSS with 100k distinct maps tracked.

use std::{hint::black_box, io, time::Instant};

use map_trace::{
    events::decode::{decode, Event},
    output::{json::JsonSink, Sink},
    timeline::{interpret, interpret_swiss, Timeline},
};
use map_trace_common::event::{as_bytes, EventHeader, EventKind, MapGrowEvent, SwissEvent};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// Record `i` of a stream over `maps` distinct map addresses, half classic, half Swiss, as the
/// ring buffer delivers it (bytes).
fn record(i: usize, maps: u64, buf: &mut [u8; 128]) -> usize {
    {
        {
            // Even records are classic grows, odd ones Swiss splits; each kind cycles over
            // maps/2 addresses, and a classic map's B rises by one each time it comes round.
            let half = maps / 2;
            let map = 0x00c0_0000_0000 + ((i as u64 / 2) % half) * 0x30;
            let header = |kind: EventKind| EventHeader {
                kind: kind as u32,
                tid: 7,
                pid: 42,
                exe: 0,
                goid: (i % 64) as u64,
                ts_ns: 1_000_000 + i as u64 * 100,
            };
            if i.is_multiple_of(2) {
                let round = ((i as u64 / 2) / half) as u8;
                let ev = MapGrowEvent {
                    header: header(EventKind::MapGrow),
                    map,
                    maptype: 0x4a0000,
                    count: 13 << round.min(40),
                    key_size: 8,
                    elem_size: 8,
                    bucket_size: 144,
                    b: round.min(40) + 1,
                    ..Default::default()
                };
                let bytes = as_bytes(&ev);
                buf[..bytes.len()].copy_from_slice(bytes);
                bytes.len()
            } else {
                let ev = SwissEvent {
                    header: header(EventKind::MapTableSplit),
                    map: map + 8,
                    maptype: 0x4b0000,
                    map_used: 50_000,
                    key_size: 8,
                    elem_size: 8,
                    duration_ns: 70_000,
                    dir_len_before: 64,
                    dir_len_after: 64,
                    table_used: 896,
                    capacity_before: 1024,
                    capacity_after: 1024,
                    ..Default::default()
                };
                let bytes = as_bytes(&ev);
                buf[..bytes.len()].copy_from_slice(bytes);
                bytes.len()
            }
        }
    }
}

/// Which stages run.
#[derive(Clone, Copy, PartialEq)]
enum Stages {
    Decode,
    Timeline,
    All,
}

fn run(n: usize, maps: u64, stages: Stages) -> (f64, usize) {
    let mut timeline = Timeline::new();
    let mut sink = JsonSink::new(io::BufWriter::new(io::sink()));
    let start = Instant::now();
    for i in 0..n {
        // Built on the fly, as the ring buffer hands records over one by one (the cost of
        // building the bytes is counted, which makes the figure slightly pessimistic).
        let mut buf = [0u8; 128];
        let len = record(i, maps, &mut buf);
        match decode(&buf[..len]).expect("valid record") {
            Event::MapGrow(ev) if stages != Stages::Decode => {
                let g = interpret(&ev, 13, 0);
                timeline.push(&g);
                if stages == Stages::All {
                    sink.grow(&g).unwrap();
                }
            }
            Event::Swiss(ev) if stages != Stages::Decode => {
                let s = interpret_swiss(&ev, 0).unwrap();
                timeline.push_swiss(&s);
                if stages == Stages::All {
                    sink.swiss(&s).unwrap();
                }
            }
            e => {
                black_box(e);
            }
        }
    }
    sink.flush().unwrap();
    let maps = black_box(timeline.into_summary()).len();
    (n as f64 / start.elapsed().as_secs_f64(), maps)
}

fn main() {
    // 2M events over 100k distinct maps (50k classic maps growing, 50k Swiss maps splitting).
    let rss_before = peak_rss_kib();
    let (decode_rate, _) = run(2_000_000, 100_000, Stages::Decode);
    let (timeline_rate, _) = run(2_000_000, 100_000, Stages::Timeline);
    let (rate, maps) = run(2_000_000, 100_000, Stages::All);
    let rss_after = peak_rss_kib();
    println!(
        "pipeline stages: decode {:.2} M events/s; decode + timeline {:.2} M events/s",
        decode_rate / 1e6,
        timeline_rate / 1e6
    );
    println!(
        "pipeline: {:.2} M events/s on one core (decode + timeline + JSON to a discarding sink); \
         {maps} maps tracked; peak RSS {:.1} MiB ({:.1} MiB before the run)",
        rate / 1e6,
        rss_after as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
}
