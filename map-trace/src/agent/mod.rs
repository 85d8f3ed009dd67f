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
pub mod http;
pub mod metrics;

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
    cli::AgentArgs,
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
    probes::{self, Keying, Links, Probes, Scope},
    symbols::symbolize::{ProcessMap, Symbolizer},
    sys,
    target::procfs,
    timeline::{interpret, interpret_swiss, SwissKind},
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
    /// Stack → site label, so each distinct stack is symbolized once per process map.
    site_cache: FxHashMap<(u64, Stack), Arc<str>>,
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
}

/// Why an executable is not traced (logged once per file).
enum Skip {
    NotGo,
    Reported,
}

struct Agent {
    args: AgentArgs,
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
}

/// Runs the agent until SIGTERM/SIGINT; returns the exit code.
pub fn run(args: AgentArgs) -> Result<u8> {
    crate::kernel::preflight()?;
    if crate::kernel::release().is_some_and(|r| r < MIN_KERNEL) {
        return Err(crate::kernel::PreflightError::TooOld(format!(
            "map-trace agent needs Linux {}.{} or later (BPF attach cookies); the one-process \
             CLI (map-trace --pid) works from 5.8",
            MIN_KERNEL.0, MIN_KERNEL.1
        ))
        .into());
    }
    let mut probes = Probes::load(
        probes::ring_buffer_bytes(args.ring_buffer_size),
        Keying::Executable,
    )?;
    let ring = probes.take_ring()?;
    // The calibration's links stay until the agent exits (see `overhead::calibrate`).
    let (hit_cost, _calibration) = overhead::calibrate_or_fallback(&mut probes, "map-trace agent");
    let exec_method = probes.attach_exec()?;
    let events = match &args.events {
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
    let listener = std::net::TcpListener::bind(args.metrics_addr).map_err(|e| {
        Fail::bad_target(format!(
            "cannot serve metrics on {}: {e}",
            args.metrics_addr
        ))
    })?;
    let metrics = Arc::new(Metrics::new());
    // /metrics and /healthz answer from a thread of their own, whatever the event rate.
    http::spawn(listener, metrics.clone()).context("starting the metrics server")?;
    eprintln!("map-trace agent: exec notifications from the {exec_method}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let mut agent = Agent {
            filters: Filters {
                include: args.include.clone(),
                exclude: args.exclude.clone(),
                cgroups: args.cgroup.clone(),
                exclude_cgroups: args.exclude_cgroup.clone(),
                containers: args.container.clone(),
            },
            args,
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
            self.args.metrics_addr,
            self.procs.len(),
            self.attached()
        );
        let mut drain = tokio::time::interval(Duration::from_millis(100));
        let mut liveness = tokio::time::interval(Duration::from_secs(1));
        // The budget decides on windows of at least overhead::MIN_WINDOW_CPU_NS of an
        // executable's CPU, checked this often: a busy executable is brought within its budget
        // a fraction of a second after its load starts.
        let mut budget_tick = tokio::time::interval(Duration::from_millis(250));
        let mut rescan =
            tokio::time::interval(Duration::from_secs(self.args.rescan_interval.max(1)));
        rescan.tick().await;
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

    fn attached(&self) -> usize {
        self.exes.values().filter(|e| e.live).count()
    }

    /// Looks at every process in /proc.
    fn scan(&mut self) {
        for pid in discover::all_pids() {
            if !self.procs.contains_key(&pid) {
                self.consider(pid, None);
            }
        }
        if self.skipped.len() > 50_000 {
            self.skipped.clear();
        }
    }

    /// Starts tracing `pid` if it runs a Go executable that passes the filters.
    fn consider(&mut self, pid: u32, exec_ts_ns: Option<u64>) {
        if pid == self.self_pid {
            return;
        }
        let Some(info) = discover::process(pid) else {
            return;
        };
        if let Some(&id) = self.ids.get(&info.identity) {
            if self.exes.get(&id).is_some_and(|e| e.live) {
                if self.filters.allows(&info) {
                    self.add_proc(id, &info);
                } else {
                    self.excluded.insert(pid);
                }
                return;
            }
        }
        if self.skipped.contains_key(&info.identity) || !self.filters.allows(&info) {
            return;
        }
        // Open the file once and use that fd for everything: inspecting, attaching (the path
        // stays valid if the process exits meanwhile, and names the inode it runs, even in
        // another mount namespace) and symbolizing. If the process exec'd or its pid was reused
        // since `discover::process`, the fd is another file than `info` describes: leave it
        // (its exec is announced in turn).
        let file = match File::open(&info.exe_path) {
            Ok(f) => f,
            Err(_) => {
                self.count_skip("vanished");
                return;
            }
        };
        if discover::identity(&file).as_ref() != Some(&info.identity) {
            return;
        }
        let fd_path = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let plan = match plan::inspect(
            &fd_path,
            plan::Options {
                timed_resizes: true,
                ..plan::Options::default()
            },
        ) {
            Ok(p) => p,
            Err(e) => {
                let why = e.chain().find_map(|c| c.downcast_ref::<PlanError>());
                if matches!(why, Some(PlanError::NotGo(_) | PlanError::ForeignArch(_))) {
                    self.skipped.insert(info.identity, Skip::NotGo);
                } else {
                    eprintln!(
                        "map-trace agent: not tracing pid {pid} ({}): {}",
                        info.exe_display,
                        classify(&e).message
                    );
                    let reason = match why {
                        Some(PlanError::Unsupported(_)) => "unsupported",
                        _ => "malformed",
                    };
                    self.skip(&info, reason);
                }
                return;
            }
        };
        if self.attached() >= self.args.max_executables {
            // Not remembered as skipped: once a slot frees up, the next process running this
            // file is tried again.
            eprintln!(
                "map-trace agent: not tracing {} (pid {pid}): --max-executables {} reached",
                info.exe_display, self.args.max_executables
            );
            self.count_skip("limit");
            return;
        }
        let id = *self.ids.entry(info.identity).or_insert_with(|| {
            let id = self.next_id;
            self.next_id += 1;
            id
        });
        let started = Instant::now();
        let result = self
            .probes
            .set_layout(Scope::Executable(id), plan.layout.offsets)
            .and_then(|()| self.probes.add_exe_cost(id))
            .and_then(|()| {
                self.probes
                    .attach_sites(&plan.probes, &fd_path, Scope::Executable(id), || Ok(()))
            });
        let links = match result {
            Ok(links) => links,
            Err(e) => {
                self.probes.remove_layout(Scope::Executable(id));
                self.probes.remove_exe_cost(id);
                let vanished = !procfs::alive(pid);
                eprintln!(
                    "map-trace agent: not tracing pid {pid} ({}): {}",
                    info.exe_display,
                    if vanished {
                        "it exited while probes were attached".to_string()
                    } else {
                        classify(&e).message
                    }
                );
                if vanished {
                    // Not the file's fault: the next process running it is tried again.
                    self.count_skip("vanished");
                } else {
                    self.skip(&info, "attach_failed");
                }
                return;
            }
        };
        if let Some(ts) = exec_ts_ns {
            let now = sys::monotonic_ns();
            self.metrics
                .attach_delay
                .observe(now.saturating_sub(ts) as f64 / 1e9);
        }
        eprintln!(
            "map-trace agent: attached {} ({}, {} maps, {} probes) for pid {pid} in {} ms",
            info.exe_display,
            plan.go_version.raw,
            plan.layout.map_impl.name(),
            plan.probes.len(),
            started.elapsed().as_millis()
        );
        let symbolizer = Symbolizer::open(&fd_path, plan.go_version.minor);
        let exe = Exe {
            name: discover::exe_name(&info.exe_display),
            go_version: plan.go_version.raw.clone(),
            load_factor_num: plan.layout.load_factor_num,
            live: true,
            links,
            retiring: Links::default(),
            sites: plan.probes.clone(),
            layout: plan.layout.offsets,
            fd_path,
            budget: self.args.budget().map(ExeBudget::new),
            cpu: ExeCpu::default(),
            symbolizer,
            _file: Some(file),
            pids: FxHashSet::default(),
            site_labels: FxHashSet::default(),
            site_cache: FxHashMap::default(),
        };
        let families: Vec<Family> = budget::FAMILIES
            .into_iter()
            .filter(|f| exe.links.has(*f))
            .collect();
        // Keep the labels of an executable seen before (its series continue).
        let exe = match self.exes.get_mut(&id) {
            Some(old) => {
                let mut exe = exe;
                exe.name = std::mem::take(&mut old.name);
                exe.go_version = std::mem::take(&mut old.go_version);
                exe.pids = std::mem::take(&mut old.pids);
                exe.site_labels = std::mem::take(&mut old.site_labels);
                *old = exe;
                old
            }
            None => self.exes.entry(id).or_insert(exe),
        };
        for f in families {
            self.metrics
                .probe_duty
                .get_or_create(&family_labels(exe, f))
                .set(1.0);
        }
        self.add_proc(id, &info);
        self.metrics.executables.set(self.attached() as i64);
    }

    fn skip(&mut self, info: &ProcessInfo, reason: &str) {
        self.skipped.insert(info.identity, Skip::Reported);
        self.count_skip(reason);
    }

    fn count_skip(&mut self, reason: &str) {
        self.metrics
            .skipped
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    fn add_proc(&mut self, id: u32, info: &ProcessInfo) {
        let Some(exe) = self.exes.get_mut(&id) else {
            return;
        };
        let pie = exe
            .symbolizer
            .as_ref()
            .is_some_and(|s| s.needs_process_map());
        let map = if pie {
            ProcessMap::read(info.pid, info.identity.ino)
        } else {
            None
        };
        // Processes of a fixed-address executable share every address.
        let map_key = if map.is_some() {
            u64::from(info.pid)
        } else {
            0
        };
        exe.pids.insert(info.pid);
        if let Some(ns) = procfs::cpu_time_ns(info.pid) {
            exe.cpu.baseline(info.pid, ns);
        }
        if let Some(old) = self.procs.insert(
            info.pid,
            Proc {
                exe: id,
                container: Arc::new(info.container.clone()),
                map,
                map_key,
            },
        ) {
            if old.exe != id {
                self.forget_pid(old.exe, info.pid);
            }
        }
        self.metrics.processes.set(self.procs.len() as i64);
    }

    fn forget_pid(&mut self, exe_id: u32, pid: u32) {
        let Some(exe) = self.exes.get_mut(&exe_id) else {
            return;
        };
        exe.pids.remove(&pid);
        exe.site_cache.retain(|(k, _), _| *k != u64::from(pid));
        if exe.pids.is_empty() {
            self.detach(exe_id);
        }
    }

    fn detach(&mut self, id: u32) {
        let Some(exe) = self.exes.get_mut(&id) else {
            return;
        };
        if !exe.live {
            return;
        }
        exe.live = false;
        self.probes.detach_links(std::mem::take(&mut exe.links));
        self.probes.detach_links(std::mem::take(&mut exe.retiring));
        exe.symbolizer = None;
        exe._file = None;
        exe.site_cache = FxHashMap::default();
        exe.budget = None;
        for f in budget::FAMILIES {
            self.metrics.probe_duty.remove(&family_labels(exe, f));
        }
        self.metrics.probe_overhead.remove(&exe_labels(exe));
        self.probes.remove_layout(Scope::Executable(id));
        self.probes.remove_exe_cost(id);
        self.metrics.executables.set(self.attached() as i64);
    }

    /// Drops processes that exited, and detaches executables nobody runs any more. A process
    /// found dead is dropped at the next call (a second later), not at once: its last records
    /// may still wait in the ring behind a full batch, and they need its load address and
    /// container to be counted under the right labels.
    fn reap(&mut self) {
        let dead: FxHashSet<u32> = self
            .procs
            .keys()
            .copied()
            .filter(|pid| !procfs::alive(*pid))
            .collect();
        let gone: Vec<(u32, u32)> = dead
            .iter()
            .filter(|pid| self.dying.contains(pid))
            .filter_map(|pid| Some((*pid, self.procs.get(pid)?.exe)))
            .collect();
        self.dying = dead;
        for (pid, exe) in gone {
            self.dying.remove(&pid);
            self.procs.remove(&pid);
            self.forget_pid(exe, pid);
        }
        self.excluded.retain(|pid| procfs::alive(*pid));
        self.metrics.processes.set(self.procs.len() as i64);
    }

    /// Copies the kernel's counters into the metrics.
    fn update_counters(&mut self) {
        let families = [
            (Counter::HitsHashGrow, "hash_grow"),
            (Counter::HitsGrowToTable, "grow_to_table"),
            (Counter::HitsRehash, "rehash"),
            (Counter::HitsSwissRet, "swiss_return"),
            (Counter::HitsUnconfigured, "unconfigured"),
        ];
        for (c, probe) in families {
            let delta = self.counter_delta(c);
            if delta > 0 {
                self.metrics
                    .probe_hits
                    .get_or_create(&ProbeLabels {
                        probe: probe.into(),
                    })
                    .inc_by(delta);
            }
        }
        let lost = self.counter_delta(Counter::Lost) + self.counter_delta(Counter::LostExec);
        self.metrics.lost_events.inc_by(lost);
    }

    /// The budget check of every traced executable (every 250 ms).
    fn govern(&mut self) {
        let now = self.now_ns();
        let ids: Vec<u32> = self
            .exes
            .iter()
            .filter(|(_, e)| e.live && e.budget.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let cost = self.probes.exe_cost(id);
            let Some(exe) = self.exes.get_mut(&id) else {
                continue;
            };
            // Shed timing's RET probes: the body probes have sent resizes themselves since
            // the last tick, so no call waits for them.
            self.probes.detach_links(std::mem::take(&mut exe.retiring));
            let cpu = exe.read_cpu();
            let spent = ExeBudget::spent(&cost, &self.hit_cost);
            let Some(b) = exe.budget.as_mut() else {
                continue;
            };
            let actions = b.check(&spent, cpu, now);
            let share = b.last_share;
            let percent = self.args.max_overhead;
            if let Some(share) = share {
                self.metrics
                    .probe_overhead
                    .get_or_create(&exe_labels(exe))
                    .set(share / 100.0);
            }
            for a in actions {
                match a {
                    Action::ShedTiming(share) => {
                        // The body probes send resizes untimed from now on; the RET probes
                        // go at the next tick.
                        let mut untimed = exe.layout;
                        untimed.flags &= !LAYOUT_TIMED_RESIZES;
                        exe.layout = untimed;
                        if let Err(e) = self.probes.set_layout(Scope::Executable(id), untimed) {
                            eprintln!("map-trace agent: warning: {} : {e:#}", exe.name);
                            continue;
                        }
                        exe.retiring = exe.links.take_family(Family::TimedResizes);
                        eprintln!(
                            "map-trace agent: {}: shed timed_resizes: its probes took an estimated {share:.1}% of its CPU time (budget {percent}%); resizes are still counted, untimed",
                            exe.name
                        );
                        let l = family_labels(exe, Family::TimedResizes);
                        self.metrics.probe_duty.get_or_create(&l).set(0.0);
                        self.metrics.budget_sheds.get_or_create(&l).inc();
                    }
                    Action::StartCycling { share, duty } => {
                        self.probes.detach_family(&mut exe.links, Family::Maps);
                        eprintln!(
                            "map-trace agent: {}: sampling maps: its probes took an estimated {share:.1}% of its CPU time (budget {percent}%); attached {:.1}% of the time from now on, counts scaled",
                            exe.name,
                            duty * 100.0
                        );
                        let l = family_labels(exe, Family::Maps);
                        self.metrics.probe_duty.get_or_create(&l).set(duty);
                        self.metrics.budget_sheds.get_or_create(&l).inc();
                    }
                }
            }
        }
    }

    /// Switches every duty-cycled executable whose switch is due.
    fn switch_due(&mut self) {
        let now = self.now_ns();
        let due: Vec<u32> = self
            .exes
            .iter()
            .filter(|(_, e)| {
                e.live
                    && e.budget
                        .as_ref()
                        .and_then(ExeBudget::switch_at_ns)
                        .is_some_and(|t| t <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let cost = self.probes.exe_cost(id);
            let Some(exe) = self.exes.get_mut(&id) else {
                continue;
            };
            let est = ExeBudget::estimate(Family::Maps, &cost, &self.hit_cost);
            let cpu = exe.read_cpu();
            let Some(b) = exe.budget.as_mut() else {
                continue;
            };
            if b.maps_on() {
                self.probes.detach_family(&mut exe.links, Family::Maps);
                let keep_cycling = b.switched_off(now, est, cpu);
                let duty = b.duty();
                let l = family_labels(exe, Family::Maps);
                if keep_cycling {
                    self.metrics.probe_duty.get_or_create(&l).set(duty);
                    continue;
                }
                eprintln!(
                    "map-trace agent: {}: maps attached for good again: its probes now fit the budget",
                    exe.name
                );
                self.metrics.probe_duty.get_or_create(&l).set(1.0);
            }
            // Attach the event probes: for a window, or for good when cycling ended.
            let attached = self.probes.attach_family(
                &exe.sites,
                Family::Maps,
                &exe.fd_path,
                Scope::Executable(id),
            );
            if let Err(e) = attached.map(|l| exe.links.append(l)) {
                eprintln!(
                    "map-trace agent: {}: could not attach its probes again: {}",
                    exe.name,
                    classify(&e).message
                );
                self.detach(id);
                continue;
            }
            // The window counts from when the probes are live.
            let live_at = self.clock.elapsed().as_nanos() as u64;
            if let Some(b) = exe.budget.as_mut().filter(|b| !b.maps_on()) {
                b.switched_on(live_at, est, cpu);
            }
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    fn counter_delta(&mut self, c: Counter) -> u64 {
        let now = self.probes.counter(c);
        let last = self.last_counters.insert(c as u32, now).unwrap_or(0);
        now.saturating_sub(last)
    }

    /// Handles one ring-buffer record.
    fn record(&mut self, bytes: &[u8]) {
        match decode(bytes) {
            Ok(Event::Exec(h)) => {
                // The announcement precedes the process's own events in the ring, so its
                // container and load address are known before its first grow is counted.
                self.excluded.remove(&h.pid);
                if let Some(p) = self.procs.remove(&h.pid) {
                    self.forget_pid(p.exe, h.pid);
                }
                self.consider(h.pid, Some(h.ts_ns));
            }
            Ok(Event::MapGrow(ev)) => {
                let Some(exe) = self.exes.get(&ev.header.exe) else {
                    return;
                };
                let g = interpret(&ev, exe.load_factor_num, self.offset);
                let weight = exe.weight();
                let kind = if g.same_size { "same_size" } else { "double" };
                if let Some(labels) = self.labels(ev.header.exe, ev.header.pid, &ev.stack, kind) {
                    self.count(&labels, weight, g.bytes_allocated);
                    if let Some(sink) = self.events.as_mut() {
                        let _ = sink.grow(&g);
                    }
                }
            }
            Ok(Event::Swiss(ev)) => {
                let Some(r) = interpret_swiss(&ev, self.offset) else {
                    return;
                };
                let Some(weight) = self.exes.get(&ev.header.exe).map(Exe::weight) else {
                    return;
                };
                let kind = match r.kind {
                    SwissKind::SmallToTable => "small_to_table",
                    SwissKind::TableGrow => "table_grow",
                    SwissKind::TableSplit => "table_split",
                    SwissKind::SmallAlloc => return,
                };
                let Some(labels) = self.labels(ev.header.exe, ev.header.pid, &ev.stack, kind)
                else {
                    return;
                };
                // New slots: one table of capacity_after (two for a split), each slot a key,
                // an element and a control byte.
                let tables: u64 = if r.kind == SwissKind::TableSplit {
                    2
                } else {
                    1
                };
                let bytes = if r.partial {
                    0
                } else {
                    tables
                        .saturating_mul(r.capacity_after)
                        .saturating_mul(r.key_size.saturating_add(r.elem_size).saturating_add(1))
                };
                self.count(&labels, weight, bytes);
                if let Some(d) = r.duration_ns {
                    self.metrics
                        .grow_duration
                        .get_or_create(&ExeLabels {
                            executable: labels.executable.clone(),
                            go_version: labels.go_version.clone(),
                            kind: kind.into(),
                        })
                        .observe(d as f64 / 1e9);
                }
                if let Some(sink) = self.events.as_mut() {
                    let _ = sink.swiss(&r);
                }
            }
            // The agent does not attach the slice probes.
            Ok(Event::Slice(_) | Event::Evacuated(_) | Event::EvacuateStep(_)) | Err(_) => {}
        }
    }

    /// Counts one growth of `bytes` under `labels`, as `weight` growths when the event probes
    /// are duty-cycled.
    fn count(&mut self, labels: &SiteLabels, weight: f64, bytes: u64) {
        let n = self.scaler.add(labels, 1, weight);
        if n > 0 {
            self.metrics.grows.get_or_create(labels).inc_by(n);
        }
        self.metrics
            .grow_bytes
            .get_or_create(labels)
            .inc_by((bytes as f64 * weight).round() as u64);
    }

    /// Labels for an event from process `pid` of executable `exe_id`; `None` for a process the
    /// filters exclude (its file carries probes for another, allowed, process).
    fn labels(&mut self, exe_id: u32, pid: u32, stack: &Stack, kind: &str) -> Option<SiteLabels> {
        if self.excluded.contains(&pid) {
            return None;
        }
        if !self.procs.contains_key(&pid) {
            // Its exec announcement was lost or predates the agent: look now.
            // Gone already: it is counted below without container labels (and, for a PIE,
            // without a site) rather than not at all.
            if let Some(info) = discover::process(pid) {
                if self.ids.get(&info.identity) != Some(&exe_id) || !self.filters.allows(&info) {
                    self.excluded.insert(pid);
                    return None;
                }
                self.add_proc(exe_id, &info);
            }
        }
        let orphan = Proc {
            exe: exe_id,
            container: Arc::default(),
            map: None,
            map_key: if self
                .exes
                .get(&exe_id)
                .and_then(|e| e.symbolizer.as_ref())
                .is_some_and(Symbolizer::needs_process_map)
            {
                ORPHAN
            } else {
                0
            },
        };
        let proc = self.procs.get(&pid).unwrap_or(&orphan);
        let exe = self.exes.get_mut(&exe_id)?;
        let max_sites = self.args.max_sites;
        let site = match exe.site_cache.get(&(proc.map_key, *stack)) {
            Some(s) => s.clone(),
            None => {
                let label: Arc<str> = match exe.symbolizer.as_mut() {
                    Some(sym) => {
                        let (frames, site) = sym.stack(stack.frames(), proc.map.as_ref());
                        match site.map(|i| &frames[i]) {
                            Some(f) => f.to_string().into(),
                            None => "unknown".into(),
                        }
                    }
                    None => "unknown".into(),
                };
                let label = if exe.site_labels.contains(&label) {
                    label
                } else if exe.site_labels.len() < max_sites {
                    exe.site_labels.insert(label.clone());
                    label
                } else {
                    "other".into()
                };
                // An exited PIE process's stacks could not be symbolized: nothing to cache.
                if exe.site_cache.len() < 10_000 && proc.map_key != ORPHAN {
                    exe.site_cache.insert((proc.map_key, *stack), label.clone());
                }
                label
            }
        };
        Some(SiteLabels {
            executable: exe.name.clone(),
            go_version: exe.go_version.clone(),
            pod_uid: proc.container.pod_uid.clone(),
            container_id: proc.container.container_id.clone(),
            site: site.to_string(),
            kind: kind.into(),
        })
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
