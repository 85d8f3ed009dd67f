//! Collector throughput and memory, without the kernel: a generated stream of ring-buffer
//! records goes through the collector's pipeline (decode → interpret → timeline → JSON sink,
//! to a writer that discards), as a live session feeds it.
//!
//! `cargo bench -p map-trace --bench pipeline` (run by `cargo xtask bench`). Prints events/s
//! on one core and the process's peak RSS with 100k distinct maps tracked.

use std::{hint::black_box, io, time::Instant};

use map_trace::{
    events::decode::decode,
    output::{json::JsonSink, Sink},
    pipeline::{NoSymbols, Pipeline, SessionEnd, Settings},
    testkit::{records, Discard},
};
use map_trace_common::event::{as_bytes, EventKind, MapGrowEvent, SwissEvent};

/// Records are built in a buffer this large (the largest record is 176 bytes).
const RECORD_MAX: usize = 256;

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
fn record(i: usize, maps: u64, buf: &mut [u8; RECORD_MAX]) -> usize {
    {
        {
            // Even records are classic grows, odd ones Swiss splits; each kind cycles over
            // maps/2 addresses, and a classic map's B rises by one each time it comes round.
            let half = maps / 2;
            let map = 0x00c0_0000_0000 + ((i as u64 / 2) % half) * 0x30;
            let header = |kind: EventKind| {
                records::header(kind, 42, (i % 64) as u64, 1_000_000 + i as u64 * 100)
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
    let sink: Box<dyn Sink> = match stages {
        Stages::All => Box::new(JsonSink::new(io::BufWriter::new(io::sink()))),
        _ => Box::new(Discard::default()),
    };
    let settings = Settings {
        pid: 42,
        load_factor_num: 13,
        mono_to_unix_ns: 0,
        infer_growth_ends: false,
        slices: false,
        min_bytes: 0,
        runtime_maps: true,
        kept: Default::default(),
    };
    let mut p = Pipeline::new(settings, NoSymbols, sink);
    let start = Instant::now();
    for i in 0..n {
        // Built on the fly, as the ring buffer hands records over one by one (the cost of
        // building the bytes is counted, which makes the figure slightly pessimistic).
        let mut buf = [0u8; RECORD_MAX];
        let len = record(i, maps, &mut buf);
        if stages == Stages::Decode {
            black_box(decode(&buf[..len]).expect("valid record"));
        } else {
            p.record(&buf[..len]);
        }
    }
    let events = p.events();
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let summary = Instant::now();
    p.finish(SessionEnd {
        time_ns: u64::MAX / 2,
        lost: 0,
        probe_hits: vec![],
        read_errors: 0,
        reason: map_trace::output::StopReason::Signal,
        exit_status: None,
        overhead: Default::default(),
    })
    .unwrap();
    black_box(events);
    (rate, summary.elapsed().as_millis() as usize)
}

fn main() {
    // 2M events over 100k distinct maps (50k classic maps growing, 50k Swiss maps splitting).
    let rss_before = peak_rss_kib();
    let (decode_rate, _) = run(2_000_000, 100_000, Stages::Decode);
    let (timeline_rate, _) = run(2_000_000, 100_000, Stages::Timeline);
    let rss_timeline = peak_rss_kib();
    let (rate, summary_ms) = run(2_000_000, 100_000, Stages::All);
    let maps = 100_000;
    let rss_after = peak_rss_kib();
    println!(
        "pipeline stages: decode {:.2} M events/s; decode + timeline {:.2} M events/s \
         (peak RSS {:.1} MiB)",
        decode_rate / 1e6,
        timeline_rate / 1e6,
        rss_timeline as f64 / 1024.0
    );
    println!(
        "pipeline: {:.2} M events/s on one core (decode + timeline + JSON to a discarding sink); \
         {maps} maps tracked; summary of them written in {summary_ms} ms; peak RSS {:.1} MiB \
         ({:.1} MiB before the run)",
        rate / 1e6,
        rss_after as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
}
