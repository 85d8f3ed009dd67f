//! Writing a recording while tracing: [`RecordWriter`] formats the lines, and [`Recorder`], a
//! resolver around the live one, writes each record and, the first time it is resolved, its
//! stack or type.

use std::{
    io::{self, Write},
    sync::Arc,
};

use map_trace_common::event::Stack;
use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::{
    output::{Hex, StartInfo},
    overhead::Detached,
    pipeline::{Resolve, SessionEnd, Settings},
    timeline::{
        health::{DiscoveryReport, Found, Outcome},
        Origin, SampleTarget,
    },
};

use super::format::*;
use super::RECORD_VERSION;

/// Writes a recording.
pub struct RecordWriter<W: Write> {
    out: W,
    hex: String,
}

impl<W: Write> RecordWriter<W> {
    /// A writer to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            hex: String::new(),
        }
    }

    fn line<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")
    }

    /// The first line.
    ///
    /// # Errors
    /// Writing.
    pub fn header(&mut self, start: &StartInfo, settings: &Settings) -> io::Result<()> {
        self.line(&Header {
            record_version: RECORD_VERSION,
            map_trace_version: env!("CARGO_PKG_VERSION").to_string(),
            start: Start {
                time_ns: start.time_ns,
                pid: start.pid,
                exe: start.exe.clone(),
                go_version: start.go_version.clone(),
                go_version_source: Some(start.go_version_source.name().to_string()),
                map_impl: start.map_impl.name().to_string(),
                arch: start.arch.goarch().to_string(),
                launched: start.launched,
                build_id: start.build_id.clone(),
                probes: start
                    .probes
                    .iter()
                    .map(|p| Probe {
                        program: p.program.to_string(),
                        function: p.function.to_string(),
                        vaddr: Hex(p.vaddr),
                        offset_in_function: p.offset_in_function,
                        file_offset: Hex(p.file_offset),
                    })
                    .collect(),
            },
            settings: settings.clone(),
        })
    }

    /// One ring-buffer record, as received.
    ///
    /// # Errors
    /// Writing.
    pub fn record(&mut self, bytes: &[u8]) -> io::Result<()> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.hex.clear();
        for b in bytes {
            self.hex.push(DIGITS[usize::from(b >> 4)] as char);
            self.hex.push(DIGITS[usize::from(b & 0xf)] as char);
        }
        self.out.write_all(b"{\"record\":\"")?;
        self.out.write_all(self.hex.as_bytes())?;
        self.out.write_all(b"\"}\n")
    }

    /// What a stack symbolized to.
    ///
    /// # Errors
    /// Writing.
    pub fn stack(&mut self, stack: &Stack, origin: Option<&Origin>) -> io::Result<()> {
        self.line(&Line::Stack(StackEntry {
            pcs: stack.frames().iter().map(|&p| Hex(p)).collect(),
            origin: origin.map(|o| OriginEntry {
                frames: o.stack.clone(),
                site: o.site,
            }),
        }))
    }

    /// Where the map of a fatal error was.
    ///
    /// # Errors
    /// Writing.
    pub fn fatal(
        &mut self,
        tid: u32,
        ts_ns: u64,
        map: &crate::timeline::fatal::FatalMap,
    ) -> io::Result<()> {
        self.line(&Line::Fatal(FatalEntry {
            tid,
            ts_ns,
            map: map.clone(),
        }))
    }

    /// The name of the type descriptor at `addr`.
    ///
    /// # Errors
    /// Writing.
    pub fn type_name(&mut self, addr: u64, name: Option<&str>) -> io::Result<()> {
        self.line(&Line::Type(TypeEntry {
            addr: Hex(addr),
            name: name.map(str::to_string),
        }))
    }

    /// `--max-overhead` detached a family.
    ///
    /// # Errors
    /// Writing.
    pub fn detached(&mut self, d: &Detached) -> io::Result<()> {
        self.line(&Line::Detached(DetachedLine {
            time_ns: d.time_ns,
            family: d.family.name().to_string(),
            share_percent: d.share_percent,
            budget_percent: d.budget_percent,
            hits: d.hits,
            sampled_duty: d.sampled_duty,
        }))
    }

    /// One sampling round.
    ///
    /// # Errors
    /// Writing.
    pub fn samples(
        &mut self,
        time_ns: u64,
        results: &[(SampleTarget, Outcome)],
        capped: bool,
    ) -> io::Result<()> {
        let maps = results
            .iter()
            .map(|&(t, o)| {
                let (outcome, health) = match o {
                    Outcome::Live(h) => ("live", Some(h)),
                    Outcome::Freed => ("freed", None),
                    Outcome::NotHeap => ("not_heap", None),
                    Outcome::Unreadable => ("unreadable", None),
                };
                SampleEntry {
                    id: t.id,
                    map: Hex(t.map),
                    maptype: Hex(t.maptype),
                    outcome: outcome.to_string(),
                    health,
                }
            })
            .collect();
        self.line(&Line::Samples(SamplesLine {
            time_ns,
            capped,
            maps,
        }))
    }

    /// The maps a `--discover` window added, and what it did.
    ///
    /// # Errors
    /// Writing.
    pub fn discovered(&mut self, found: &[Found], report: &DiscoveryReport) -> io::Result<()> {
        self.line(&Line::Discovered(DiscoveredLine {
            maps: found
                .iter()
                .map(|f| FoundEntry {
                    time_ns: f.time_ns,
                    map: Hex(f.map),
                    maptype: Hex(f.maptype),
                    pcs: f.stack.frames().iter().map(|&p| Hex(p)).collect(),
                    swiss: f.swiss,
                })
                .collect(),
            report: report.clone(),
        }))
    }

    /// Whether sampling runs.
    ///
    /// # Errors
    /// Writing.
    pub fn sampling_state(&mut self, enabled: bool, note: Option<&str>) -> io::Result<()> {
        self.line(&Line::Sampling(SamplingStateLine {
            enabled,
            note: note.map(str::to_string),
        }))
    }

    /// The last line. `undecodable` and `events` are the pipeline's counts (for people).
    ///
    /// # Errors
    /// Writing.
    pub fn end(&mut self, e: &SessionEnd, undecodable: u64, events: u64) -> io::Result<()> {
        let o = &e.overhead;
        self.line(&Line::End(End {
            time_ns: e.time_ns,
            reason: e.reason.name().to_string(),
            exit_status: e.exit_status,
            lost: e.lost,
            read_errors: e.read_errors,
            undecodable,
            events,
            probe_hits: e.probe_hits.clone(),
            overhead: OverheadLine {
                hit_cost: HitCostLine {
                    body_ns: o.hit_cost.body_ns,
                    stepped_ns: o.hit_cost.stepped_ns,
                    calibrated: o.hit_cost.calibrated,
                },
                families: o
                    .families
                    .iter()
                    .map(|f| FamilyLine {
                        family: f.family.name().to_string(),
                        hits: f.hits,
                        estimated_ns: f.estimated_ns,
                        detached: f.detached,
                    })
                    .collect(),
                estimated_ns: o.estimated_ns,
                target_cpu_ns: o.target_cpu_ns,
                budget_percent: o.budget_percent,
                sampling: o.sampling.map(|s| SamplingLine {
                    family: s.family.name().to_string(),
                    since_ns: s.since_ns,
                    attached_ns: s.attached_ns,
                    elapsed_ns: s.elapsed_ns,
                    lost_before: s.lost_before,
                }),
            },
        }))
    }

    /// # Errors
    /// Writing.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Most stacks and type addresses remembered as written; past it the set starts again (an
/// entry may then be written twice, which a replay accepts).
const MAX_SEEN: usize = 100_000;

/// A [`Resolve`] that also writes a recording (when it has a writer): every record and, the
/// first time a stack or type is resolved, what it resolved to. The first write error is kept
/// ([`Recorder::take_error`]) and ends the session, as an output error does.
pub struct Recorder<R, W: Write> {
    inner: R,
    pub(super) out: Option<RecordWriter<W>>,
    stacks: FxHashSet<Stack>,
    types: FxHashSet<u64>,
    err: Option<io::Error>,
}

impl<R: Resolve, W: Write> Recorder<R, W> {
    /// Resolves through `inner`; records to `out` if given.
    pub fn new(inner: R, out: Option<RecordWriter<W>>) -> Self {
        Self {
            inner,
            out,
            stacks: FxHashSet::default(),
            types: FxHashSet::default(),
            err: None,
        }
    }

    /// The resolver recorded.
    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn write(&mut self, f: impl FnOnce(&mut RecordWriter<W>) -> io::Result<()>) {
        if let (Some(out), None) = (self.out.as_mut(), &self.err) {
            if let Err(e) = f(out) {
                self.err = Some(e);
            }
        }
    }

    /// The header (see [`RecordWriter::header`]).
    pub fn header(&mut self, start: &StartInfo, settings: &Settings) {
        self.write(|w| w.header(start, settings));
    }

    /// A ring-buffer record, after the pipeline took it (its symbols are written first).
    pub fn record(&mut self, bytes: &[u8]) {
        self.write(|w| w.record(bytes));
    }

    /// `--max-overhead` detached a family.
    pub fn detached(&mut self, d: &Detached) {
        self.write(|w| w.detached(d));
    }

    /// A sampling round.
    pub fn samples(&mut self, time_ns: u64, results: &[(SampleTarget, Outcome)], capped: bool) {
        self.write(|w| w.samples(time_ns, results, capped));
    }

    /// The maps a `--discover` window added.
    pub fn discovered(&mut self, found: &[Found], report: &DiscoveryReport) {
        self.write(|w| w.discovered(found, report));
    }

    /// Whether sampling runs.
    pub fn sampling_state(&mut self, enabled: bool, note: Option<&str>) {
        self.write(|w| w.sampling_state(enabled, note));
    }

    /// The end line (see [`RecordWriter::end`]).
    pub fn end(&mut self, e: &SessionEnd, undecodable: u64, events: u64) {
        self.write(|w| w.end(e, undecodable, events));
    }

    /// Pushes buffered lines out.
    pub fn flush(&mut self) {
        self.write(RecordWriter::flush);
    }

    /// The first write error since the last call.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.err.take()
    }
}

impl<R: Resolve, W: Write> Resolve for Recorder<R, W> {
    fn origin(&mut self, pid: u32, stack: &Stack) -> Option<Arc<Origin>> {
        let o = self.inner.origin(pid, stack);
        if self.out.is_some() && !self.stacks.contains(stack) {
            if self.stacks.len() >= MAX_SEEN {
                self.stacks.clear();
            }
            self.stacks.insert(*stack);
            self.write(|w| w.stack(stack, o.as_deref()));
        }
        o
    }

    fn locate_fatal(
        &mut self,
        pid: u32,
        ev: &map_trace_common::event::MapFatalEvent,
    ) -> crate::timeline::fatal::FatalMap {
        let m = self.inner.locate_fatal(pid, ev);
        self.write(|w| w.fatal(ev.header.tid, ev.header.ts_ns, &m));
        m
    }

    fn type_name(&mut self, addr: u64) -> Option<Arc<str>> {
        let n = self.inner.type_name(addr);
        if self.out.is_some() && !self.types.contains(&addr) {
            if self.types.len() >= MAX_SEEN {
                self.types.clear();
            }
            self.types.insert(addr);
            self.write(|w| w.type_name(addr, n.as_deref()));
        }
        n
    }
}
