//! The pure half of a session: ring-buffer records → decode → interpret → timeline → sink calls.
//!
//! Input: record bytes in arrival order, plus the few settings of the run ([`Settings`]: the
//! traced pid, the load factor, the monotonic → Unix offset, `--min-bytes`, `--runtime-maps`,
//! whether growth ends are inferred). Call sites and type names come from a [`Resolve`]: the live
//! session's symbolizer, or the symbol table of a recording. Output: [`Sink`] calls. No aya, no
//! `/proc`, no clocks: a recording replayed through it gives what the live run gave.

use std::{io, sync::Arc};

use map_trace_common::event::{MapFatalEvent, Stack};
use rustc_hash::FxHashSet;

use crate::{
    events::decode::{decode, Event},
    output::{EndInfo, Sink, StartInfo},
    overhead::{Detached, Overhead},
    timeline::{
        fatal::{ConcurrentWrite, FatalMap, Misuse},
        health::{DiscoveryReport, Found, Outcome, SamplingReport},
        interpret, interpret_evacuate_step, interpret_evacuated, interpret_slice, interpret_swiss,
        Origin, SampleNews, SampleTarget, Timeline,
    },
};

/// Call sites and type names of one traced process.
pub trait Resolve {
    /// The symbolized stack of an event of process `pid` (`None`: not symbolized).
    fn origin(&mut self, pid: u32, stack: &Stack) -> Option<Arc<Origin>>;
    /// The Go type name of the type descriptor at `addr` (e.g. `map[int]int`).
    fn type_name(&mut self, addr: u64) -> Option<Arc<str>>;
    /// Where the map of a fatal error of process `pid` was (see `symbols::fatal`).
    fn locate_fatal(&mut self, _pid: u32, _ev: &MapFatalEvent) -> FatalMap {
        FatalMap {
            function: None,
            map: None,
            found: "no executable to decode".into(),
            maptype: None,
        }
    }
}

/// A resolver with no symbols: every stack unsymbolized, every type unnamed (benchmarks and
/// fuzzing feed the pipeline without an executable).
pub struct NoSymbols;

impl Resolve for NoSymbols {
    fn origin(&mut self, _pid: u32, _stack: &Stack) -> Option<Arc<Origin>> {
        None
    }
    fn type_name(&mut self, _addr: u64) -> Option<Arc<str>> {
        None
    }
}

/// What the pipeline needs to know about the run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// The traced process; records of other processes are ignored.
    pub pid: u32,
    /// Twice the hash-bucket load factor of the target's Go version.
    pub load_factor_num: u64,
    /// Added to kernel monotonic timestamps to get Unix ns.
    pub mono_to_unix_ns: i128,
    /// Classic maps: a growth's end is inferred from the map's next grow (no finishing probe).
    pub infer_growth_ends: bool,
    /// `--slices` was given (the summary reports slice counts).
    pub slices: bool,
    /// `--min-bytes`: smaller slice growths are counted, not reported.
    pub min_bytes: u64,
    /// `--runtime-maps`: report maps the Go runtime grows for itself.
    pub runtime_maps: bool,
    /// When a sampled map is "kept after deletes" (absent in recordings from before sampling,
    /// and when it is the default).
    #[serde(
        default,
        skip_serializing_if = "crate::timeline::health::KeptRule::is_default"
    )]
    pub kept: crate::timeline::health::KeptRule,
}

/// What the session knows when tracing stops (when, why, what the kernel lost, the probes' hits
/// and cost): the pipeline adds its own counts and summaries to it and hands the sinks an
/// [`EndInfo`].
#[derive(Clone, Debug)]
pub struct SessionEnd {
    /// Unix ns at detach.
    pub time_ns: u64,
    /// Events the kernel side could not queue.
    pub lost: u64,
    /// Probe hits per probed function.
    pub probe_hits: Vec<(String, u64)>,
    /// Failed reads of target memory.
    pub read_errors: u64,
    /// `target_exited`, `signal` or `duration`.
    pub reason: crate::output::StopReason,
    /// The launched child's exit code, or its signal as 128+N.
    pub exit_status: Option<i32>,
    /// What the probes cost.
    pub overhead: Overhead,
}

/// Most maps remembered as hidden: a long session forgets old runtime maps rather than grow.
const MAX_HIDDEN_MAPS: usize = 1 << 16;

/// Most fatal errors kept for the summary (a crash has one or two).
const MAX_FATAL: usize = 64;

/// A fatal-error record's message (its first bytes).
pub fn fatal_message(ev: &MapFatalEvent) -> String {
    let n = (ev.message_len as usize).min(ev.message.len());
    String::from_utf8_lossy(&ev.message[..n]).into_owned()
}

/// Decodes records and feeds the timeline and the sink.
pub struct Pipeline<R> {
    settings: Settings,
    timeline: Timeline,
    resolver: R,
    sink: Box<dyn Sink>,
    /// The first output error; later output calls are skipped (the session ends with it).
    write_err: Option<io::Error>,
    undecodable: u64,
    /// Events of runtime maps not reported.
    hidden: u64,
    /// Maps whose grows were hidden (runtime maps without `--runtime-maps`): their growth ends
    /// are hidden too.
    hidden_maps: FxHashSet<u64>,
    /// Grows and resizes received before the event probes began to be duty-cycled.
    events_before_sampling: Option<u64>,
    /// Slice growths reported / below `--min-bytes`.
    slices_shown: u64,
    slices_below: u64,
    /// What map sampling did.
    sampling: SamplingReport,
    /// Map misuse the runtime killed the process for.
    fatal: Vec<ConcurrentWrite>,
}

impl<R: Resolve> Pipeline<R> {
    /// A pipeline feeding `sink`.
    pub fn new(settings: Settings, resolver: R, sink: Box<dyn Sink>) -> Self {
        let settings_rule = settings.kept;
        Self {
            timeline: if settings.infer_growth_ends {
                Timeline::inferring_ends()
            } else {
                Timeline::new()
            },
            settings,
            resolver,
            sink,
            write_err: None,
            undecodable: 0,
            hidden: 0,
            hidden_maps: FxHashSet::default(),
            slices_shown: 0,
            slices_below: 0,
            events_before_sampling: None,
            sampling: SamplingReport {
                rule: settings_rule,
                ..SamplingReport::default()
            },
            fatal: vec![],
        }
    }

    /// The run's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The resolver (the session primes it, and writes its recording through it).
    pub fn resolver_mut(&mut self) -> &mut R {
        &mut self.resolver
    }

    /// Tracing started.
    ///
    /// # Errors
    /// The sink's.
    pub fn start(&mut self, info: &StartInfo) -> io::Result<()> {
        self.sink.start(info)
    }

    /// The first output error since the last call, if any.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.write_err.take()
    }

    /// Records that could not be decoded so far.
    pub fn undecodable(&self) -> u64 {
        self.undecodable
    }

    /// Grows and resizes pushed to the timeline so far.
    pub fn events(&self) -> u64 {
        self.timeline.grows()
    }

    /// Pushes buffered output out (after each batch of records).
    pub fn flush(&mut self) {
        if self.write_err.is_none() {
            if let Err(e) = self.sink.flush() {
                self.write_err = Some(e);
            }
        }
    }

    /// Feeds one output call to the sink unless an earlier write failed (the error is kept and
    /// ends the session).
    fn emit(&mut self, f: impl FnOnce(&mut dyn Sink) -> io::Result<()>) {
        if self.write_err.is_none() {
            if let Err(e) = f(self.sink.as_mut()) {
                self.write_err = Some(e);
            }
        }
    }

    /// `--max-overhead` detached a probe family.
    pub fn detached(&mut self, d: &Detached) {
        if d.sampled_duty.is_some() && self.events_before_sampling.is_none() {
            self.events_before_sampling = Some(self.timeline.grows());
        }
        if d.family == crate::overhead::Family::GrowthEnds {
            // No end probe from here on: a growth still open ends at the map's next grow.
            self.timeline.infer_ends_from_now();
        }
        self.emit(|s| s.detached(d));
    }

    /// Whether an event with this origin is shown (runtime maps are hidden without
    /// `--runtime-maps`; they are counted).
    fn shown(&mut self, origin: &Option<Arc<Origin>>) -> bool {
        if !self.settings.runtime_maps && origin.as_deref().is_some_and(Origin::is_runtime) {
            self.hidden += 1;
            return false;
        }
        true
    }

    /// Whether map sampling runs, and why not (in the summary).
    pub fn sampling_state(&mut self, enabled: bool, note: Option<String>) {
        self.sampling.enabled = enabled;
        if note.is_some() {
            self.sampling.note = note;
        }
    }

    /// The maps the next sampling round reads: `(header, map type)`, largest first, at most
    /// `max`; and whether more were tracked than that.
    pub fn sample_candidates(&self, max: usize) -> (Vec<SampleTarget>, bool) {
        let mut v = self.timeline.sample_candidates(max.saturating_add(1));
        let capped = v.len() > max;
        v.truncate(max);
        (v, capped)
    }

    /// Whether a map at `map` is tracked now (seen growing, or discovered).
    pub fn tracks(&self, map: u64) -> bool {
        self.timeline.tracks(map)
    }

    /// Maps the `--discover` window found, as the collector chose them (live heap maps,
    /// largest first): each is resolved (where it was accessed, its type) and tracked from now
    /// on. Returns what to sample each one as: `None` for a map tracked already, or one the
    /// Go runtime accessed for itself (hidden without `--runtime-maps`).
    pub fn discovered(&mut self, found: &[Found]) -> Vec<Option<SampleTarget>> {
        let pid = self.settings.pid;
        found
            .iter()
            .map(|f| {
                let origin = self.resolver.origin(pid, &f.stack);
                if !self.shown(&origin) {
                    return None;
                }
                let type_name = self.resolver.type_name(f.maptype);
                self.timeline.push_discovered(f, origin, type_name)
            })
            .collect()
    }

    /// What the `--discover` window did (in the summary).
    pub fn discovery_report(&mut self, r: DiscoveryReport) {
        self.sampling.discovery = Some(r);
    }

    /// One sampling round's results, at Unix ns `time_ns`.
    pub fn samples(&mut self, time_ns: u64, results: &[(SampleTarget, Outcome)], capped: bool) {
        self.sampling.rounds += 1;
        self.sampling.samples += results.len() as u64;
        self.sampling.rounds_capped += u64::from(capped);
        for (_, o) in results {
            match o {
                Outcome::Live(_) => {}
                Outcome::Freed => self.sampling.freed += 1,
                Outcome::NotHeap => self.sampling.not_heap += 1,
                Outcome::Unreadable => self.sampling.unreadable += 1,
            }
        }
        let (pid, rule) = (self.settings.pid, self.settings.kept);
        for &(target, outcome) in results {
            match self
                .timeline
                .push_sample(time_ns, pid, target, outcome, &rule)
            {
                Some(SampleNews::Live(s)) => self.emit(|k| k.map_sample(&s)),
                Some(SampleNews::Freed(f)) => self.emit(|k| k.map_freed(&f)),
                None => {}
            }
        }
    }

    /// One ring-buffer record.
    pub fn record(&mut self, bytes: &[u8]) {
        let pid = self.settings.pid;
        let offset = self.settings.mono_to_unix_ns;
        match decode(bytes) {
            Ok(Event::MapGrow(ev)) => {
                if ev.header.pid != pid {
                    return;
                }
                let mut g = interpret(&ev, self.settings.load_factor_num, offset);
                g.origin = self.resolver.origin(pid, &ev.stack);
                g.type_name = self.resolver.type_name(ev.maptype);
                if !self.shown(&g.origin) {
                    if self.hidden_maps.len() >= MAX_HIDDEN_MAPS {
                        self.hidden_maps.clear();
                    }
                    self.hidden_maps.insert(g.map);
                    return;
                }
                if let Some(end) = self.timeline.push(&g) {
                    self.emit(|s| s.evacuated(&end));
                }
                self.emit(|s| s.grow(&g));
            }
            Ok(Event::Evacuated(ev)) => {
                if ev.header.pid != pid {
                    return;
                }
                let mut e = interpret_evacuated(&ev, offset);
                // A map whose grow was not seen: it began before tracing (shown), or it is a
                // runtime map whose grow was hidden (hidden too).
                if !self.timeline.push_evacuated(&mut e) && self.hidden_maps.contains(&e.map) {
                    return;
                }
                self.emit(|s| s.evacuated(&e));
            }
            Ok(Event::EvacuateStep(ev)) => {
                if ev.header.pid != pid {
                    return;
                }
                let st = interpret_evacuate_step(&ev, offset);
                if !self.timeline.push_evacuate_step(&st) && self.hidden_maps.contains(&st.map) {
                    return;
                }
                self.emit(|s| s.evacuate_step(&st));
            }
            Ok(Event::Swiss(ev)) => {
                if ev.header.pid != pid {
                    return;
                }
                let Some(mut r) = interpret_swiss(&ev, offset) else {
                    self.undecodable += 1;
                    return;
                };
                r.origin = self.resolver.origin(pid, &ev.stack);
                r.type_name = self.resolver.type_name(ev.maptype);
                if !self.shown(&r.origin) {
                    return;
                }
                self.timeline.push_swiss(&r);
                self.emit(|s| s.swiss(&r));
            }
            Ok(Event::Slice(ev)) => {
                if ev.header.pid != pid {
                    return;
                }
                let mut s = interpret_slice(&ev, offset);
                if s.bytes < self.settings.min_bytes {
                    self.slices_below += 1;
                    return;
                }
                self.slices_shown += 1;
                s.origin = self.resolver.origin(pid, &ev.stack);
                s.elem_type_name = self.resolver.type_name(ev.elem_type);
                self.emit(|k| k.slice(&s));
            }
            Ok(Event::Fatal(ev)) => {
                if ev.header.pid != pid {
                    return;
                }
                if let Some(c) = self.concurrent_write(&ev) {
                    if self.fatal.len() < MAX_FATAL {
                        self.fatal.push(c.clone());
                    }
                    self.emit(|s| s.concurrent_write(&c));
                    // The process is dying: the user sees this now, not at the next batch.
                    self.flush();
                }
            }
            // Only the agent attaches the exec tracepoint.
            Ok(Event::Exec(_)) => {}
            Err(_) => self.undecodable += 1,
        }
    }

    /// A fatal-error record as reported, or `None` for a fatal error that is not a map misuse.
    fn concurrent_write(&mut self, ev: &MapFatalEvent) -> Option<ConcurrentWrite> {
        let kind = Misuse::of(&fatal_message(ev))?;
        let pid = ev.header.pid;
        let located = self.resolver.locate_fatal(pid, ev);
        let origin = self.resolver.origin(pid, &ev.stack);
        let known = located.map.and_then(|m| self.timeline.known(m));
        let known_origin = known.and_then(|k| k.origin.clone());
        let known_type = known.and_then(|k| k.type_name.clone());
        let type_name = located
            .maptype
            .and_then(|t| self.resolver.type_name(t))
            .or(known_type);
        Some(ConcurrentWrite {
            time_ns: crate::timeline::to_unix_ns(ev.header.ts_ns, self.settings.mono_to_unix_ns),
            pid,
            tid: ev.header.tid,
            goid: ev.header.goid,
            kind,
            function: located.function,
            origin,
            map: located.map,
            found: located.found,
            type_name,
            known_origin,
        })
    }

    /// Tracing ended: the summary goes to the sink.
    ///
    /// # Errors
    /// The first output error of the run, or the sink's.
    pub fn finish(&mut self, ending: SessionEnd) -> io::Result<()> {
        if let Some(e) = self.write_err.take() {
            return Err(e);
        }
        let events = self.timeline.grows();
        let (maps, history_cuts) = std::mem::take(&mut self.timeline).finish(ending.time_ns);
        let end = EndInfo {
            time_ns: ending.time_ns,
            events,
            lost: ending.lost,
            undecodable: self.undecodable,
            probe_hits: ending.probe_hits,
            read_errors: ending.read_errors,
            reason: ending.reason,
            exit_status: ending.exit_status,
            runtime_events_hidden: self.hidden,
            load_factor_num: self.settings.load_factor_num,
            slices: self
                .settings
                .slices
                .then_some((self.slices_shown, self.slices_below)),
            maps,
            sampled: ending.overhead.sampling.map(|sampling| {
                let before = self.events_before_sampling.unwrap_or(0).min(events);
                crate::output::Sampled {
                    sampling,
                    events_before: before,
                    events_sampled: events - before,
                    lost_sampled: ending.lost.saturating_sub(sampling.lost_before),
                }
            }),
            overhead: ending.overhead,
            history_cuts,
            health: std::mem::take(&mut self.sampling),
            fatal: std::mem::take(&mut self.fatal),
        };
        self.sink.finish(&end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{records, Calls, Discard, FakeResolver};
    use map_trace_common::event::{
        as_bytes, EventKind, MapEvacuatedEvent, MapGrowEvent, SliceEvent,
    };

    /// Stacks whose first pc is 1 are the runtime's own; others are `main.f`.
    fn resolver() -> FakeResolver {
        FakeResolver::default().frames(
            1,
            &[
                ("runtime.mapassign", "x.go", 1),
                ("runtime.main", "x.go", 1),
            ],
        )
    }

    /// A grow of `map` by process `pid`, at a site of the runtime's own or of the program.
    fn grow(map: u64, runtime: bool, pid: u32) -> MapGrowEvent {
        let mut ev = MapGrowEvent {
            header: records::header(EventKind::MapGrow, pid, 1, 10),
            count: 8,
            b: 0,
            ..records::grow(map, 8, 0, 10)
        };
        ev.stack.pcs[0] = if runtime { 1 } else { 2 };
        ev.stack.depth = 1;
        ev
    }

    fn evacuated(map: u64) -> MapEvacuatedEvent {
        MapEvacuatedEvent {
            header: records::header(EventKind::MapEvacuated, 7, 1, 30),
            ..records::evacuated(map, 0, 1, 30)
        }
    }

    fn settings() -> Settings {
        Settings {
            pid: 7,
            load_factor_num: 13,
            mono_to_unix_ns: 0,
            infer_growth_ends: false,
            slices: true,
            min_bytes: 100,
            runtime_maps: false,
            kept: Default::default(),
        }
    }

    fn run(settings: Settings, records: &[&[u8]]) -> Vec<String> {
        let calls = Calls::default();
        let mut p = Pipeline::new(settings, resolver(), Box::new(calls.clone()));
        for r in records {
            p.record(r);
        }
        p.finish(SessionEnd {
            time_ns: 0,
            lost: 0,
            probe_hits: vec![],
            read_errors: 0,
            reason: crate::output::StopReason::TargetExited,
            exit_status: None,
            overhead: Overhead::default(),
        })
        .unwrap();
        calls.lines()
    }

    #[test]
    fn test_pipeline_hides_runtime_maps_and_their_growth_ends() {
        let slice = |cap| SliceEvent {
            header: records::header(EventKind::SliceGrow, 7, 1, 40),
            ..records::slice(0, cap, 8, 40)
        };
        let records: Vec<Vec<u8>> = vec![
            as_bytes(&grow(0xa0, true, 7)).to_vec(),
            as_bytes(&grow(0xb0, false, 7)).to_vec(),
            as_bytes(&grow(0xc0, false, 8)).to_vec(), // another process
            as_bytes(&evacuated(0xa0)).to_vec(),      // hidden map: hidden
            as_bytes(&evacuated(0xb0)).to_vec(),
            as_bytes(&evacuated(0xd0)).to_vec(), // began before tracing: shown
            as_bytes(&slice(4)).to_vec(),        // 32 B < --min-bytes
            as_bytes(&slice(16)).to_vec(),
            vec![1, 2, 3],
        ];
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        assert_eq!(
            run(settings(), &refs),
            [
                "grow 0xb0",
                "evacuated 0xb0 Some(20)",
                "evacuated 0xd0 None",
                "slice 128",
                "end events 1 hidden 1 undecodable 1 slices Some((1, 1))",
            ]
        );
        let all = run(
            Settings {
                runtime_maps: true,
                ..settings()
            },
            &refs[..4],
        );
        assert_eq!(
            all,
            [
                "grow 0xa0",
                "grow 0xb0",
                "evacuated 0xa0 Some(20)",
                "end events 2 hidden 0 undecodable 0 slices Some((0, 0))",
            ]
        );
    }

    #[test]
    fn test_pipeline_keeps_the_first_output_error() {
        let failing = Discard {
            fail_grow: Some("disk full"),
        };
        let mut p = Pipeline::new(settings(), resolver(), Box::new(failing));
        p.record(as_bytes(&grow(0xb0, false, 7)));
        assert_eq!(p.take_error().unwrap().to_string(), "disk full");
        assert!(p.take_error().is_none());
    }
}
