//! Fleet mode (`map-trace agent`): every Go process on the host, one set of probes per
//! executable file, Prometheus metrics.
//!
//! Flow: `discover` finds processes (a /proc scan at start and every `--rescan-interval`, and
//! the `sched_process_exec` tracepoint in between) → `plan::inspect` decides whether and how to
//! trace an executable → `probes` attaches its uprobes for every process (layouts keyed by the
//! attach cookie, so one loaded object serves every Go version) → events are attributed to the
//! executable (cookie), the process's container (tgid) and the call site (stack) → `metrics`.

pub mod budget;
pub mod discover;
mod events;
mod govern;
mod health;
pub mod http;
pub mod metrics;
pub mod profiles;
mod registry;

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    os::fd::AsRawFd,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use map_trace_common::{
    config::{Counter, MapLayout, LAYOUT_TIMED_RESIZES},
    event::Stack,
};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    config,
    error::{classify, Fail},
    events::{
        decode::{decode, Event},
        reader::Reader,
    },
    output::{
        json::JsonSink,
        queue::{QueuedWriter, QUEUE_BYTES},
        Sink,
    },
    overhead::{self, Family, HitCost},
    plan::{self, PlanError, ProbeSite},
    probes::{Keying, Links, Probes, Scope},
    symbols::symbolize::{ProcessMap, Symbolizer},
    sys,
    target::procfs,
    timeline::{interpret, interpret_swiss},
};
use budget::{Action, ExeBudget, ExeCpu, Scaler};
use discover::{Container, ExeIdentity, Filters, ProcessInfo};
use metrics::{
    ExeLabels, ExeOnlyLabels, FamilyLabels, Metrics, ProbeLabels, ReasonLabels, SiteLabels,
};

/// Site-cache key of an exited PIE process the agent never knew (no load address).
const ORPHAN: u64 = u64::MAX;

/// Linux release that gives BPF programs their attach cookie (`bpf_get_attach_cookie`).
const MIN_KERNEL: (u32, u32) = (5, 15);

/// One executable file the agent has seen as a Go program.
/// A stack's site label and logical stack.
type SiteOf = (Arc<str>, Option<Arc<crate::timeline::Origin>>);

struct Exe {
    name: String,
    go_version: String,
    load_factor_num: u64,
    /// Its probes are live (some may be shed or off in a duty cycle); false once detached.
    live: bool,
    /// Attached probes.
    links: Links,
    /// Links of shed resize timing, detached at the next budget tick (after the body probes
    /// stopped leaving resizes to them).
    retiring: Links,
    /// Every probe of the plan, to attach a duty-cycled family again.
    sites: Vec<ProbeSite>,
    /// The layout it was attached with.
    layout: MapLayout,
    /// `/proc/self/fd/N` of the held file.
    fd_path: std::path::PathBuf,
    /// `--max-overhead`; `None` when off.
    budget: Option<ExeBudget>,
    /// CPU time its processes used while traced.
    cpu: ExeCpu,
    symbolizer: Option<Symbolizer>,
    /// The executable, held open while attached (probes were attached through its fd).
    _file: Option<File>,
    pids: FxHashSet<u32>,
    /// Site label values handed out so far (at most `--max-sites`).
    site_labels: FxHashSet<Arc<str>>,
    /// Stack → site label and logical stack, so each distinct stack is symbolized once per
    /// process map.
    site_cache: FxHashMap<(u64, Stack), SiteOf>,
    /// Where its heap metadata is, for map sampling (`None`: no sampling for it).
    heap: Option<plan::HeapPlan>,
    /// The file's inode, to find a PIE's mapping in /proc/PID/maps.
    ino: u64,
    /// Its path as found, and its Go build ID: the profile's mapping.
    path: String,
    build_id: Option<String>,
}

impl Exe {
    /// What one event seen counts for: `1 / duty` while the event probes are duty-cycled.
    fn weight(&self) -> f64 {
        self.budget.as_ref().map_or(1.0, ExeBudget::weight)
    }

    /// Reads its processes' CPU time; returns the total used while traced.
    fn read_cpu(&mut self) -> u64 {
        self.cpu.update(
            self.pids
                .iter()
                .filter_map(|&p| Some((p, procfs::cpu_time_ns(p)?))),
        )
    }
}

/// One traced process.
struct Proc {
    exe: u32,
    container: Arc<Container>,
    /// Where a PIE is loaded in this process (None for fixed-address executables).
    map: Option<ProcessMap>,
    /// A key unique to the process's address layout, for the site cache.
    map_key: u64,
    /// The maps it grew, for sampling.
    maps: health::ProcMaps,
}

/// Why an executable is not traced (logged once per file).
enum Skip {
    NotGo,
    Reported,
}

struct Agent {
    cfg: config::Agent,
    filters: Filters,
    probes: Probes,
    metrics: Arc<Metrics>,
    /// `--events`, written by a thread of its own through a bounded queue.
    events: Option<JsonSink<QueuedWriter>>,
    /// Its dropped lines already added to the metric.
    events_dropped_seen: u64,
    ids: FxHashMap<ExeIdentity, u32>,
    exes: FxHashMap<u32, Exe>,
    procs: FxHashMap<u32, Proc>,
    skipped: FxHashMap<ExeIdentity, Skip>,
    /// Processes the filters exclude whose file carries probes for others: their events are
    /// dropped without looking at /proc again. Forgotten on exec and when they exit.
    excluded: FxHashSet<u32>,
    /// Traced processes found dead at the last reap: dropped at the next.
    dying: FxHashSet<u32>,
    offset: i128,
    next_id: u32,
    self_pid: u32,
    last_counters: FxHashMap<u32, u64>,
    /// What one probe hit costs on this host (measured at start-up).
    hit_cost: HitCost,
    /// Scaled counts of duty-cycled executables.
    scaler: Scaler<SiteLabels>,
    /// The agent's monotonic clock, for duty cycles.
    clock: Instant,
    /// `/debug/pprof/mapgrowth`'s window, shared with the HTTP thread.
    profiles: profiles::Shared,
    /// The logical stack of the event [`Self::labels`] labelled last, for its profile.
    last_origin: Option<Arc<crate::timeline::Origin>>,
}

/// Runs the agent until SIGTERM/SIGINT; returns the exit code.
pub fn run(cfg: config::Agent) -> Result<u8> {
    crate::kernel::preflight()?;
    if crate::kernel::release().is_some_and(|r| r < MIN_KERNEL) {
        return Err(crate::kernel::PreflightError::TooOld(format!(
            "map-trace agent needs Linux {}.{} or later (BPF attach cookies); the one-process \
             CLI (map-trace --pid) works from 5.8",
            MIN_KERNEL.0, MIN_KERNEL.1
        ))
        .into());
    }
    let mut probes = Probes::load(cfg.ring_bytes, cfg.stack_depth, Keying::Executable)?;
    let ring = probes.take_ring()?;
    // The calibration's links stay until the agent exits (see `overhead::calibrate`).
    let (hit_cost, _calibration) = overhead::calibrate_or_fallback(&mut probes, "map-trace agent");
    let exec_method = probes.attach_exec()?;
    let events = match &cfg.events {
        None => None,
        Some(p) => {
            let out: Box<dyn Write + Send> = if p.as_os_str() == "-" {
                Box::new(BufWriter::new(io::stdout()))
            } else {
                Box::new(BufWriter::new(
                    File::create(p).with_context(|| format!("creating {}", p.display()))?,
                ))
            };
            Some(JsonSink::new(
                QueuedWriter::spawn(out, QUEUE_BYTES).context("starting the --events writer")?,
            ))
        }
    };
    let listener = std::net::TcpListener::bind(cfg.metrics_addr).map_err(|e| {
        Fail::bad_target(format!("cannot serve metrics on {}: {e}", cfg.metrics_addr))
    })?;
    let metrics = Arc::new(Metrics::new());
    let profiles: profiles::Shared = Arc::new(std::sync::Mutex::new(profiles::Profiles::new(
        cfg.profile_window.as_secs(),
        cfg.max_profile_stacks,
    )));
    // /metrics, /healthz and the profiles answer from a thread of their own, whatever the
    // event rate.
    http::spawn(listener, metrics.clone(), profiles.clone())
        .context("starting the metrics server")?;
    eprintln!("map-trace agent: exec notifications from the {exec_method}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let mut agent = Agent {
            filters: cfg.filters.clone(),
            cfg,
            probes,
            metrics,
            events,
            events_dropped_seen: 0,
            ids: FxHashMap::default(),
            exes: FxHashMap::default(),
            procs: FxHashMap::default(),
            skipped: FxHashMap::default(),
            excluded: FxHashSet::default(),
            dying: FxHashSet::default(),
            offset: sys::monotonic_to_unix_offset(),
            next_id: 1,
            self_pid: std::process::id(),
            last_counters: FxHashMap::default(),
            hit_cost,
            scaler: Scaler::default(),
            clock: Instant::now(),
            profiles,
            last_origin: None,
        };
        agent.loop_until_signal(ring).await
    })
}

impl Agent {
    async fn loop_until_signal(&mut self, ring: crate::events::reader::Ring) -> Result<u8> {
        let mut reader = Reader::new(ring)?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        // The exec tracepoint is live: every process started from now on is announced, so a
        // scan now misses nothing.
        self.scan();
        eprintln!(
            "map-trace agent: serving http://{}/metrics; tracing {} processes of {} executables",
            self.cfg.metrics_addr,
            self.procs.len(),
            self.attached()
        );
        let mut drain = tokio::time::interval(Duration::from_millis(100));
        let mut liveness = tokio::time::interval(Duration::from_secs(1));
        // The budget decides on windows of at least overhead::MIN_WINDOW_CPU_NS of an
        // executable's CPU, checked this often: a busy executable is brought within its budget
        // a fraction of a second after its load starts.
        let mut budget_tick = tokio::time::interval(Duration::from_millis(250));
        let mut rescan = tokio::time::interval(self.cfg.rescan);
        rescan.tick().await;
        let mut sample_tick = tokio::time::interval(
            self.cfg
                .sampling
                .map_or(Duration::from_secs(3600), |s| s.interval),
        );
        sample_tick.tick().await;
        let mut batch: Vec<Vec<u8>> = vec![];
        loop {
            let mut reap = false;
            // The next duty-cycle switch of any executable.
            let next_switch = self
                .exes
                .values()
                .filter(|e| e.live)
                .filter_map(|e| e.budget.as_ref()?.switch_at_ns())
                .min();
            let clock = self.clock;
            let switch = async move {
                match next_switch {
                    Some(at) => {
                        let at = clock + Duration::from_nanos(at);
                        tokio::time::sleep_until(at.into()).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // At most reader::BATCH records per turn: under a flood the timers and
                // signals below still get theirs.
                r = reader.readable(|b| batch.push(b.to_vec())) => { r?; }
                _ = drain.tick() => { reader.drain(|b| batch.push(b.to_vec())); }
                // Events of a process that just exited are still queued: count them before
                // its state is dropped.
                _ = liveness.tick() => { reader.drain(|b| batch.push(b.to_vec())); reap = true; }
                _ = rescan.tick() => self.scan(),
                _ = switch => self.switch_due(),
                _ = budget_tick.tick() => self.govern(),
                _ = sample_tick.tick() => self.sample_maps(),
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
            for rec in batch.drain(..) {
                self.record(&rec);
            }
            if reap {
                self.reap();
                self.update_counters();
            }
            self.flush_events();
        }
        let started = Instant::now();
        let n = self.attached();
        // Detaching is the kernel unregistering each uprobe; the traced processes keep running.
        for id in self.exes.keys().copied().collect::<Vec<_>>() {
            self.detach(id);
        }
        // No probe fires any more: what is queued is all there is.
        let mut rest = vec![];
        reader.drain_all(|b| rest.push(b.to_vec()));
        for rec in rest {
            self.record(&rec);
        }
        self.update_counters();
        self.flush_events();
        if let Some(sink) = self.events.as_mut() {
            if !sink.get_mut().close(Duration::from_secs(2)) {
                eprintln!(
                    "map-trace agent: warning: the --events output did not take the last {} bytes within 2 s; they are dropped",
                    sink.get_mut().queued_bytes()
                );
            }
        }
        self.flush_events();
        if self.events_dropped_seen > 0 {
            eprintln!(
                "map-trace agent: warning: {} --events lines dropped: the output did not keep up",
                self.events_dropped_seen
            );
        }
        eprintln!(
            "map-trace agent: stopped; detached {n} executables in {} ms",
            started.elapsed().as_millis()
        );
        Ok(0)
    }

    /// Hands `--events` lines to their writer, and counts what it dropped.
    fn flush_events(&mut self) {
        let Some(sink) = self.events.as_mut() else {
            return;
        };
        let _ = sink.flush();
        let dropped = sink
            .get_mut()
            .dropped_lines()
            .load(std::sync::atomic::Ordering::Relaxed);
        if dropped > self.events_dropped_seen {
            self.metrics
                .events_dropped
                .inc_by(dropped - self.events_dropped_seen);
            self.events_dropped_seen = dropped;
        }
    }

    /// Copies the kernel's counters into the metrics.
    fn update_counters(&mut self) {
        // The probes the agent attaches (it takes no opt-in family), named by
        // `Counter::hit_name`.
        let counted = [
            Counter::HitsHashGrow,
            Counter::HitsGrowToTable,
            Counter::HitsRehash,
            Counter::HitsSwissRet,
            Counter::HitsUnconfigured,
            Counter::HitsFatal,
        ];
        for c in counted {
            let delta = self.counter_delta(c);
            if let (true, Some(name)) = (delta > 0, c.hit_name()) {
                self.metrics
                    .probe_hits
                    .get_or_create(&ProbeLabels {
                        probe: name.label.into(),
                    })
                    .inc_by(delta);
            }
        }
        let lost_execs = self.counter_delta(Counter::LostExec);
        let lost = self.counter_delta(Counter::Lost) + lost_execs;
        self.metrics.lost_events.inc_by(lost);
        self.metrics.lost_execs.inc_by(lost_execs);
    }

    fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    fn counter_delta(&mut self, c: Counter) -> u64 {
        let now = self.probes.counter(c);
        let last = self.last_counters.insert(c as u32, now).unwrap_or(0);
        now.saturating_sub(last)
    }
}

fn exe_labels(exe: &Exe) -> ExeOnlyLabels {
    ExeOnlyLabels {
        executable: exe.name.clone(),
        go_version: exe.go_version.clone(),
    }
}

fn family_labels(exe: &Exe, family: Family) -> FamilyLabels {
    FamilyLabels {
        executable: exe.name.clone(),
        go_version: exe.go_version.clone(),
        family: family.name().into(),
    }
}
