//! The session's collector: a thread of its own that reads the ring buffer, runs the pipeline
//! (timeline, sinks) and the `--record` recorder, and does every blocking write.
//!
//! The session's control loop (signals, the target's exit, `--duration`, the `--max-overhead`
//! budget) runs on the main thread and never waits for output: when stdout is a pipe whose
//! reader stopped, only this thread blocks. Records then wait in the ring buffer, and what the
//! ring cannot hold the kernel counts as lost, so drops stay exact and nothing is dropped in
//! userspace. The control loop talks to the collector with [`Control`] messages.

use std::{
    fs::File,
    io::{self, BufWriter},
    path::Path,
    sync::{mpsc, Arc},
    thread,
    time::{Duration, Instant},
};

use map_trace_common::event::Stack;
use rustc_hash::FxHashMap;

use crate::{
    events::reader::{BlockingReader, BATCH},
    golayout::heap::HeaderLayout,
    heap::{
        memory::{ProcessMemory, ReadError},
        sampler::{self, Sampler},
    },
    output::StartInfo,
    overhead::Detached,
    pipeline::{Pipeline, Resolve, SessionEnd},
    plan::HeapPlan,
    probes::discovery::Harvest,
    recording::Recorder,
    symbols::symbolize::{ProcessMap, Symbolizer},
    target::procfs,
    timeline::{
        fatal::FatalMap,
        health::{DiscoveryReport, Found, Outcome},
        to_unix_ns, Origin, SampleTarget,
    },
};

/// How long the collector waits for a ring-buffer wakeup before it drains anyway: records
/// below the wakeup threshold are not signalled, and control messages are read this often.
const DRAIN_EVERY: Duration = Duration::from_millis(50);

/// What the control loop tells the collector.
pub enum Control {
    /// `--max-overhead` detached a family: say so in every output.
    Detached(Detached),
    /// The `--discover` window closed: track what it found.
    Discovered(Harvest),
    /// The probes are detached: drain what is queued, write the summary and stop.
    Finish(SessionEnd),
}

/// The running collector thread.
pub struct Handle {
    tx: mpsc::Sender<Control>,
    /// The thread's result: `Err` at its first output or recording error.
    done: tokio::sync::oneshot::Receiver<io::Result<()>>,
    thread: thread::JoinHandle<()>,
}

impl Handle {
    /// Starts the collector on `ring`.
    pub fn spawn(mut col: Collector, mut ring: BlockingReader) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let thread = thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                let _ = done_tx.send(col.run(&mut ring, &rx));
            })?;
        Ok(Self { tx, done, thread })
    }

    /// Sends a message (ignored once the collector stopped at an error, which `done` reports).
    pub fn send(&self, msg: Control) {
        let _ = self.tx.send(msg);
    }

    /// Resolves when the collector stopped: at an output error while tracing, or after
    /// [`Control::Finish`].
    pub fn done(&mut self) -> &mut tokio::sync::oneshot::Receiver<io::Result<()>> {
        &mut self.done
    }

    /// Waits for the thread to exit (after `done` resolved).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// The pipeline, fed ring-buffer records, with `--record`'s recorder around its resolver.
pub struct Collector {
    pipeline: Pipeline<Recorder<ProcessSites, BufWriter<File>>>,
    sampling: Option<Sampling>,
}

/// Map sampling, on the collector thread: between batches of records, every interval, the
/// pipeline's largest tracked maps are read from the target's memory.
pub struct Sampling {
    pid: u32,
    ino: u64,
    plan: HeapPlan,
    load_factor_num: u64,
    every: Duration,
    max: usize,
    next: Instant,
    /// Built at the first round that has maps to read: by then a launched program has exec'd,
    /// so a PIE's load address is known.
    sampler: Option<Sampler<ProcessMemory>>,
}

impl Sampling {
    /// Sampling of process `pid` (its executable's inode `ino`) every `every`, at most `max`
    /// maps a round.
    pub fn new(
        pid: u32,
        ino: u64,
        plan: HeapPlan,
        load_factor_num: u64,
        every: Duration,
        max: usize,
    ) -> Self {
        Self {
            pid,
            ino,
            plan,
            load_factor_num,
            every,
            max,
            next: Instant::now() + every,
            sampler: None,
        }
    }

    fn sampler(&mut self) -> Option<&mut Sampler<ProcessMemory>> {
        if self.sampler.is_none() {
            self.sampler =
                sampler::for_process(self.pid, self.ino, &self.plan, self.load_factor_num);
        }
        self.sampler.as_mut()
    }
}

impl Collector {
    /// A collector writing through `pipeline`, sampling maps if `sampling` is given.
    pub fn new(
        pipeline: Pipeline<Recorder<ProcessSites, BufWriter<File>>>,
        sampling: Option<Sampling>,
    ) -> Self {
        Self { pipeline, sampling }
    }

    /// Whether sampling runs, and why not: told to the outputs and the recording.
    pub fn sampling_state(&mut self, enabled: bool, note: Option<String>) {
        self.pipeline
            .resolver_mut()
            .sampling_state(enabled, note.as_deref());
        self.pipeline.sampling_state(enabled, note);
    }

    /// A sampling round, when one is due.
    fn sample(&mut self, force: bool) {
        let Some(s) = self.sampling.as_mut() else {
            return;
        };
        let now = Instant::now();
        if !force && now < s.next {
            return;
        }
        s.next = now + s.every;
        let (targets, capped) = self.pipeline.sample_candidates(s.max);
        if targets.is_empty() {
            return;
        }
        let Some(sampler) = s.sampler() else {
            return;
        };
        // Stamped when the round begins: every map in it was read at or after that time (a
        // round of 1,000 maps takes tens of ms).
        let t = crate::sys::unix_now_ns();
        match sampler.sample(&targets) {
            Ok(results) => {
                self.pipeline.samples(t, &results, capped);
                self.pipeline.resolver_mut().samples(t, &results, capped);
            }
            Err(ReadError::Refused) => {
                let note = format!(
                    "reading pid {}'s memory was refused (EPERM; ptrace access, Yama's ptrace_scope): no map sampling, tracing goes on",
                    s.pid
                );
                crate::output::lines::eprint_line(&format!("map-trace: warning: {note}"));
                self.sampling = None;
                self.sampling_state(false, Some(note));
            }
            // The target exited: the last samples stand.
            Err(ReadError::Gone) => self.sampling = None,
            // mheap_ itself unreadable: not this process's heap after all.
            Err(ReadError::Unmapped(a)) => {
                let note =
                    format!("the runtime's heap metadata at {a:#x} is not mapped: no map sampling");
                crate::output::lines::eprint_line(&format!("map-trace: warning: {note}"));
                self.sampling = None;
                self.sampling_state(false, Some(note));
            }
        }
    }

    /// The `--discover` window's maps: each new one is read once; the live heap maps among
    /// them, largest storage first and at most `--max-sampled-maps`, are tracked from now on,
    /// with that read as their first sample.
    fn discovered(&mut self, h: Harvest) {
        let mut report = DiscoveryReport {
            window_ms: h.window.as_millis() as u64,
            functions: h.functions,
            hits: h.hits,
            seen: h.seen.max(h.found.len() as u64),
            evicted: h.seen.saturating_sub(h.found.len() as u64),
            ended: h.ended.to_string(),
            ..DiscoveryReport::default()
        };
        let offset = self.pipeline.settings().mono_to_unix_ns;
        // When the maps' first reads begin (see `sample`).
        let read_at = crate::sys::unix_now_ns();
        let mut kept = vec![];
        let mut first = vec![];
        if let Some(s) = self.sampling.as_mut() {
            let swiss = matches!(s.plan.header, HeaderLayout::Swiss);
            let mut fresh: Vec<Found> = vec![];
            for (map, d) in h.found {
                if self.pipeline.tracks(map) {
                    report.already_tracked += 1;
                    continue;
                }
                fresh.push(Found {
                    time_ns: to_unix_ns(d.ts_ns, offset),
                    map,
                    maptype: d.maptype,
                    stack: d.stack.widen(),
                    swiss,
                });
            }
            // The order the probes saw them in, so the ids and the choice are reproducible.
            fresh.sort_unstable_by_key(|f| (f.time_ns, f.map));
            let candidates: Vec<SampleTarget> = fresh
                .iter()
                .enumerate()
                .map(|(i, f)| SampleTarget {
                    id: sampler::FOUND_IDS + i as u64,
                    map: f.map,
                    maptype: f.maptype,
                    min_geometry: 0,
                })
                .collect();
            let max = s.max;
            if let Some(results) = s.sampler().and_then(|sm| sm.sample_found(&candidates).ok()) {
                let mut live: Vec<(u64, usize, Outcome)> = results
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, o))| match o {
                        Outcome::Live(h) => Some((h.storage_bytes, i, *o)),
                        _ => None,
                    })
                    .collect();
                report.not_live = (fresh.len() - live.len()) as u64;
                live.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                report.over_cap = live.len().saturating_sub(max) as u64;
                live.truncate(max);
                kept = live.iter().map(|&(_, i, _)| fresh[i]).collect();
                let targets = self.pipeline.discovered(&kept);
                let mut adopted = vec![];
                for (&(_, i, o), t) in live.iter().zip(&targets) {
                    if let Some(t) = t {
                        adopted.push((sampler::FOUND_IDS + i as u64, t.id));
                        first.push((*t, o));
                    }
                }
                if let Some(sm) = s.sampler() {
                    sm.adopt(&adopted);
                }
                report.added = first.len() as u64;
            }
        }
        self.pipeline.resolver_mut().discovered(&kept, &report);
        self.pipeline.discovery_report(report);
        if !first.is_empty() {
            self.pipeline.samples(read_at, &first, false);
            self.pipeline.resolver_mut().samples(read_at, &first, false);
        }
    }

    /// Writes the start record (on the caller's thread, before [`Handle::spawn`]).
    pub fn start(&mut self, start: &StartInfo) -> io::Result<()> {
        let settings = self.pipeline.settings().clone();
        let rec = self.pipeline.resolver_mut();
        rec.header(start, &settings);
        if let Some(e) = rec.take_error() {
            return Err(e);
        }
        self.pipeline.start(start)
    }

    /// One record: through the pipeline (which writes the symbols it resolved first to the
    /// recording), then to the recording.
    pub fn record(&mut self, bytes: &[u8]) {
        self.pipeline.record(bytes);
        self.pipeline.resolver_mut().record(bytes);
    }

    fn detached(&mut self, d: &Detached) {
        self.pipeline.detached(d);
        self.pipeline.resolver_mut().detached(d);
    }

    fn flush(&mut self) {
        self.pipeline.flush();
        self.pipeline.resolver_mut().flush();
    }

    /// Reads where a PIE is loaded (see [`ProcessSites::prime`]).
    pub fn prime(&mut self, pid: u32, limit: Duration) {
        self.pipeline.resolver_mut().inner_mut().prime(pid, limit);
    }

    /// The thread's loop: bounded batches from the ring, control messages between them.
    fn run(&mut self, ring: &mut BlockingReader, rx: &mpsc::Receiver<Control>) -> io::Result<()> {
        loop {
            loop {
                match rx.try_recv() {
                    Ok(Control::Detached(d)) => self.detached(&d),
                    Ok(Control::Discovered(h)) => self.discovered(h),
                    Ok(Control::Finish(ending)) => {
                        ring.drain_all(|b| self.record(b));
                        // The state at the end, when the target still runs.
                        if ending.reason != crate::output::StopReason::TargetExited {
                            self.sample(true);
                        }
                        if let Some(e) = self.take_error() {
                            return Err(e);
                        }
                        return self.finish(ending);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    // The session is gone (an error on its side): nothing left to write.
                    Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
                }
            }
            let n = ring.drain(|b| self.record(b));
            self.sample(false);
            self.flush();
            if let Some(e) = self.take_error() {
                return Err(e);
            }
            if n < BATCH {
                ring.wait(DRAIN_EVERY);
            }
        }
    }

    /// The first output or recording error.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.pipeline
            .take_error()
            .or_else(|| self.pipeline.resolver_mut().take_error())
    }

    fn finish(&mut self, ending: SessionEnd) -> io::Result<()> {
        let (undecodable, events) = (self.pipeline.undecodable(), self.pipeline.events());
        let rec = self.pipeline.resolver_mut();
        rec.end(&ending, undecodable, events);
        rec.flush();
        if let Some(e) = rec.take_error() {
            return Err(e);
        }
        self.pipeline.finish(ending)
    }
}

/// Call sites for one traced process: its executable's symbolizer, where a PIE is loaded, and
/// every distinct stack already symbolized.
pub struct ProcessSites {
    symbolizer: Option<Symbolizer>,
    /// Inode of the executable, to find its mappings in /proc/PID/maps.
    ino: u64,
    map: Option<ProcessMap>,
    map_tried: bool,
    origins: FxHashMap<Stack, Option<Arc<Origin>>>,
}

impl ProcessSites {
    pub fn new(exe: &Path, go_minor: u32) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            symbolizer: Symbolizer::open(exe, go_minor),
            ino: std::fs::metadata(exe).map(|m| m.ino()).unwrap_or(0),
            map: None,
            map_tried: false,
            origins: FxHashMap::default(),
        }
    }

    /// Reads where process `pid` mapped a PIE, waiting up to `limit` for it to appear (a
    /// launched program has just been released to exec).
    pub fn prime(&mut self, pid: u32, limit: Duration) {
        if !self
            .symbolizer
            .as_ref()
            .is_some_and(Symbolizer::needs_process_map)
        {
            return;
        }
        let start = std::time::Instant::now();
        loop {
            self.map = ProcessMap::read(pid, self.ino);
            if self.map.is_some() || start.elapsed() >= limit || !procfs::alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.map_tried = true;
    }
}

impl ProcessSites {
    /// A PIE's mappings, read once, at the first event that needs them: in launch mode the
    /// program has exec'd by then.
    fn read_map_once(&mut self, pid: u32) {
        if self.map_tried
            || !self
                .symbolizer
                .as_ref()
                .is_some_and(Symbolizer::needs_process_map)
        {
            return;
        }
        self.map_tried = true;
        self.map = ProcessMap::read(pid, self.ino);
    }
}

impl Resolve for ProcessSites {
    /// The symbolized stack of an event of process `pid`.
    fn origin(&mut self, pid: u32, stack: &Stack) -> Option<Arc<Origin>> {
        if let Some(o) = self.origins.get(stack) {
            return o.clone();
        }
        self.read_map_once(pid);
        let pie = self
            .symbolizer
            .as_ref()
            .is_some_and(Symbolizer::needs_process_map);
        let sym = self.symbolizer.as_mut()?;
        let mut o: Origin = sym.call_stack(stack.frames(), self.map.as_ref()).into();
        if o.stack.is_empty() && pie && !stack.frames().is_empty() {
            // A PIE's mappings read while its exec was still mapping the file (the text not
            // yet there): read them again, once per unresolved stack.
            if let Some(m) = ProcessMap::read(pid, self.ino) {
                self.map = Some(m);
                o = sym.call_stack(stack.frames(), self.map.as_ref()).into();
            }
        }
        let o = (!o.stack.is_empty()).then(|| Arc::new(o));
        // Bounded: one entry per distinct stack.
        if self.origins.len() < 100_000 {
            self.origins.insert(*stack, o.clone());
        }
        o
    }

    /// The Go type name of a map type descriptor at `addr`.
    fn type_name(&mut self, addr: u64) -> Option<Arc<str>> {
        self.symbolizer.as_mut()?.type_name(addr, self.map.as_ref())
    }

    fn locate_fatal(&mut self, pid: u32, ev: &map_trace_common::event::MapFatalEvent) -> FatalMap {
        self.read_map_once(pid);
        let Some(sym) = self.symbolizer.as_ref() else {
            return FatalMap {
                function: None,
                map: None,
                found: "the executable could not be read".into(),
                maptype: None,
            };
        };
        sym.locate_fatal(ev, self.map.as_ref()).into()
    }
}
