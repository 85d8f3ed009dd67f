//! Outputs: each format is a [`Sink`] fed the same start info, grows and summary.

pub mod format;
pub mod json;
pub mod lines;
pub mod open;
pub mod perfetto;
pub mod pprof;
pub mod queue;
pub mod report;
pub mod text;

use std::io;

pub use format::hex;

use crate::overhead::{Detached, Overhead};
use crate::timeline::{
    health::{MapFreed, MapSample},
    EvacuateStep, Evacuated, Grow, MapSummary, SliceGrow, SwissResize,
};

/// Why tracing stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The traced process exited.
    TargetExited,
    /// map-trace got SIGINT, SIGTERM, SIGHUP or SIGQUIT.
    Signal,
    /// `--duration` ran out.
    Duration,
}

impl StopReason {
    /// Every reason, for parsing names.
    pub const ALL: [StopReason; 3] = [
        StopReason::TargetExited,
        StopReason::Signal,
        StopReason::Duration,
    ];

    /// The name in outputs and recordings.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::TargetExited => "target_exited",
            StopReason::Signal => "signal",
            StopReason::Duration => "duration",
        }
    }
}

/// What is known when tracing starts.
#[derive(Clone, Debug)]
pub struct StartInfo {
    /// Unix ns when the probes went live.
    pub time_ns: u64,
    /// Process id (launch mode: the child's).
    pub pid: u32,
    /// Executable path.
    pub exe: String,
    /// Go version string from the binary.
    pub go_version: String,
    /// Where it was read: `.go.buildinfo`, or `runtime.buildVersion` when the section was
    /// removed.
    pub go_version_source: crate::plan::VersionSource,
    /// Hash buckets or Swiss tables.
    pub map_impl: crate::golayout::MapImpl,
    /// The executable's architecture.
    pub arch: crate::symbols::elf::Arch,
    /// The probes attached.
    pub probes: Vec<crate::plan::ProbeSite>,
    /// Launched by map-trace (`-- COMMAND`) rather than attached by pid.
    pub launched: bool,
    /// The executable's Go build ID (`.note.go.buildid`), if it has one.
    pub build_id: Option<String>,
}

/// What the sinks get when tracing ends: the session's [`crate::pipeline::SessionEnd`] with the
/// pipeline's counts and the summaries.
#[derive(Clone, Debug)]
pub struct EndInfo {
    /// Unix ns at detach.
    pub time_ns: u64,
    /// Events received.
    pub events: u64,
    /// Events the kernel side could not queue (ring buffer full).
    pub lost: u64,
    /// Records that could not be decoded.
    pub undecodable: u64,
    /// Probe hits per probed function.
    pub probe_hits: Vec<(String, u64)>,
    /// Failed reads of target memory (events with partial fields).
    pub read_errors: u64,
    /// Why tracing stopped.
    pub reason: StopReason,
    /// The launched child's exit code, or its signal as 128+N.
    pub exit_status: Option<i32>,
    /// Events of maps the Go runtime grew itself, not reported (no `--runtime-maps`).
    pub runtime_events_hidden: u64,
    /// Twice the hash-bucket load factor of the target's Go version (for presize hints).
    pub load_factor_num: u64,
    /// `--slices`: growths reported, and growths below `--min-bytes` not reported.
    pub slices: Option<(u64, u64)>,
    /// Per-map summaries.
    pub maps: Vec<MapSummary>,
    /// Cost of a probe hit, hits and estimated time per probe family, what was detached.
    pub overhead: Overhead,
    /// What the caps on the per-map histories (`MapSummary::history`) cut.
    pub history_cuts: crate::timeline::history::HistoryCaps,
    /// The event probes were duty-cycled (`--max-overhead`): counts are a sample.
    pub sampled: Option<Sampled>,
    /// Map sampling (`--sample-interval`): what it covered, or why it did not run.
    pub health: crate::timeline::health::SamplingReport,
    /// The map misuse the runtime killed the process for (one or two per crash).
    pub fatal: Vec<crate::timeline::fatal::ConcurrentWrite>,
}

/// What a duty-cycled run saw, and what that scales to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampled {
    /// The cycle: when it began, how long the probes were attached since.
    pub sampling: crate::overhead::Sampling,
    /// Events received before it began (every one was seen).
    pub events_before: u64,
    /// Events received while cycling.
    pub events_sampled: u64,
    /// Records lost (ring buffer full) while cycling: seen by the probes, so part of the
    /// sample.
    pub lost_sampled: u64,
}

impl Sampled {
    /// The events the whole run would have shown: those before, plus those while cycling
    /// scaled by the coverage.
    pub fn events_estimated(&self) -> u64 {
        self.events_before + self.sampling.scale(self.events_sampled + self.lost_sampled)
    }
}

/// An output format.
pub trait Sink: Send {
    /// Tracing started.
    fn start(&mut self, info: &StartInfo) -> io::Result<()>;
    /// One classic grow, as it arrives.
    fn grow(&mut self, g: &Grow) -> io::Result<()>;
    /// One Swiss-table resize, as it arrives (when it finished).
    fn swiss(&mut self, r: &SwissResize) -> io::Result<()>;
    /// One slice growth (`--slices`), as it arrives (when it finished).
    fn slice(&mut self, s: &SliceGrow) -> io::Result<()>;
    /// A classic map's growth finished, as it arrives.
    fn evacuated(&mut self, _e: &Evacuated) -> io::Result<()> {
        Ok(())
    }
    /// One `evacuate` call (`--evacuation`), as it arrives.
    fn evacuate_step(&mut self, _s: &EvacuateStep) -> io::Result<()> {
        Ok(())
    }
    /// `--max-overhead` detached a probe family.
    fn detached(&mut self, _d: &Detached) -> io::Result<()> {
        Ok(())
    }
    /// One live map's sample (every `--sample-interval`).
    fn map_sample(&mut self, _s: &MapSample) -> io::Result<()> {
        Ok(())
    }
    /// A sampled map was found freed by the GC.
    fn map_freed(&mut self, _f: &MapFreed) -> io::Result<()> {
        Ok(())
    }
    /// A goroutine reached the runtime's fatal error for a map misuse (the process is about
    /// to die): written at once.
    fn concurrent_write(&mut self, _c: &crate::timeline::fatal::ConcurrentWrite) -> io::Result<()> {
        Ok(())
    }
    /// Pushes buffered output out (called after each batch of events, so output stays live
    /// without a write per event).
    fn flush(&mut self) -> io::Result<()>;
    /// Tracing ended.
    fn finish(&mut self, end: &EndInfo) -> io::Result<()>;
}

/// An address, written `"0x…"` as Go prints pointers (in JSON records and recordings; a
/// plain number is read too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex(pub u64);

impl serde::Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Hand-rolled: the formatting machinery costs more than the rest of a record.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 18];
        let mut i = buf.len();
        let mut v = self.0;
        loop {
            i -= 1;
            buf[i] = DIGITS[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        buf[i - 2] = b'0';
        buf[i - 1] = b'x';
        s.serialize_str(std::str::from_utf8(&buf[i - 2..]).expect("ASCII"))
    }
}

impl<'de> serde::Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Hex;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an address as \"0x…\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Hex, E> {
                Ok(Hex(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Hex, E> {
                v.strip_prefix("0x")
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .map(Hex)
                    .ok_or_else(|| E::custom(format_args!("{v:?} is not an address as \"0x…\"")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Several sinks fed the same stream.
pub struct Tee(pub Vec<Box<dyn Sink>>);

impl Sink for Tee {
    fn start(&mut self, s: &StartInfo) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.start(s))
    }
    fn grow(&mut self, g: &Grow) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.grow(g))
    }
    fn swiss(&mut self, r: &SwissResize) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.swiss(r))
    }
    fn slice(&mut self, s: &SliceGrow) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.slice(s))
    }
    fn evacuated(&mut self, e: &Evacuated) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.evacuated(e))
    }
    fn evacuate_step(&mut self, s: &EvacuateStep) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.evacuate_step(s))
    }
    fn detached(&mut self, d: &Detached) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.detached(d))
    }
    fn map_sample(&mut self, s: &MapSample) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.map_sample(s))
    }
    fn map_freed(&mut self, f: &MapFreed) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.map_freed(f))
    }
    fn concurrent_write(&mut self, c: &crate::timeline::fatal::ConcurrentWrite) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.concurrent_write(c))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.flush())
    }
    fn finish(&mut self, e: &EndInfo) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|k| k.finish(e))
    }
}
