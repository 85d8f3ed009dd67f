//! One tracing session: resolve the target, plan, attach, stream, summarize.

use std::{
    fs::File,
    io::{self, BufWriter},
    os::unix::process::ExitStatusExt,
    time::Duration,
};

use anyhow::{Context, Result};
use map_trace_common::config::Counter;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
};

use crate::{
    collector::{self, Collector, Control, ProcessSites},
    config::{self, TargetSpec},
    events::reader::BlockingReader,
    golayout::MapImpl,
    launch,
    output::{self, Sink, StartInfo, StopReason},
    overhead::{self, governor::Governor, HitCost},
    pipeline::{Pipeline, SessionEnd, Settings},
    plan::{self, Plan},
    probes::{self, Links, Probes},
    recording::{RecordWriter, Recorder},
    sys,
    target::{procfs, Target, TargetError},
    timing,
};

/// Runs a session; returns the process exit code.
pub fn run(cfg: config::Trace) -> Result<u8> {
    timing::mark("start");
    let (target, launch_cmd) = match &cfg.target {
        TargetSpec::Pid(pid) => (Target::from_pid(*pid)?, None),
        TargetSpec::Launch(argv) => (Target::from_command(&argv[0])?, Some(argv.clone())),
    };
    timing::mark("target");
    // The eBPF object loads on a thread of its own while the executable is inspected: most of
    // that load is aya parsing the kernel's BTF (~20 ms here), which needs nothing from the
    // plan. Its result is looked at only after the plan and the preflight checks, so a bad
    // target or missing privileges are reported as before.
    let (ring_bytes, stack_depth) = (cfg.ring_bytes, cfg.stack_depth);
    let loading = std::thread::Builder::new()
        .name("ebpf-load".into())
        .spawn(move || Probes::load(ring_bytes, stack_depth, probes::Keying::Process))
        .context("starting the eBPF loader thread")?;
    let plan = plan::inspect(&target.exe, cfg.plan)?;
    timing::mark("plan");
    crate::kernel::preflight()?;
    timing::mark("preflight");

    let sink = output::open::open(&cfg.outputs)?;
    let record = match &cfg.record {
        Some(path) => Some(RecordWriter::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ))),
        None => None,
    };

    // Opened now, before the target can exit, and while the object loads.
    let sites = ProcessSites::new(&target.exe, plan.go_version.minor);
    timing::mark("sinks, sites");
    let mut probes = loading
        .join()
        .map_err(|_| anyhow::anyhow!("the eBPF loader thread panicked"))??;
    timing::mark("ebpf load joined");

    let (pid, child, links) = match launch_cmd {
        None => {
            let pid = target.pid.expect("pid mode");
            // Failure-drill hook (tests only): widen the window between discovery and attach
            // so a test can make the target exit inside it.
            if let Some(ms) = std::env::var("MAP_TRACE_TEST_PAUSE_BEFORE_ATTACH_MS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            {
                std::thread::sleep(Duration::from_millis(ms));
            }
            let links = attach_all(&mut probes, &plan, &target, pid)?;
            (pid, None, links)
        }
        Some(argv) => {
            let held = launch::spawn_held(&target.exe, &argv[0], &argv[1..])?;
            let pid = held.pid;
            timing::mark("spawn held");
            let links = match attach_all(&mut probes, &plan, &target, pid) {
                Ok(l) => l,
                Err(e) => {
                    held.abort();
                    return Err(e);
                }
            };
            (pid, Some(held), links)
        }
    };

    timing::mark("attach all");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(stream(
        cfg,
        plan,
        target,
        Attached { probes, links },
        pid,
        child,
        Outputs {
            sink,
            record,
            sites,
        },
    ))
}

/// Where a session writes: its sinks, and `--record`'s file.
struct Outputs {
    sink: Box<dyn Sink>,
    record: Option<RecordWriter<BufWriter<File>>>,
    /// Call sites, for every output.
    sites: ProcessSites,
}

use crate::output::lines::eprint_line as eprint_line_whole;

/// Map sampling for this run, or why there is none (`--no-sampling` gives no note).
fn sampling(
    cfg: &config::Trace,
    plan: &Plan,
    target: &Target,
    pid: u32,
) -> (Option<collector::Sampling>, Option<String>) {
    use std::os::unix::fs::MetadataExt;
    let Some(want) = cfg.sampling else {
        return (None, Some(crate::timeline::health::OFF_BY_FLAG.into()));
    };
    let heap = match &plan.heap {
        Ok(h) => *h,
        Err(why) => return (None, Some(why.clone())),
    };
    let ino = std::fs::metadata(&target.exe).map(|m| m.ino()).unwrap_or(0);
    (
        Some(collector::Sampling::new(
            pid,
            ino,
            heap,
            plan.layout.load_factor_num,
            want.interval,
            want.max_maps,
        )),
        None,
    )
}

/// Sets the target's layout and attaches every probe of the plan; a running target that
/// exits meanwhile is an error.
fn attach_all(probes: &mut Probes, plan: &Plan, target: &Target, pid: u32) -> Result<Links> {
    probes.set_layout(probes::Scope::Process(pid), plan.layout.offsets)?;
    probes.attach_sites(
        &plan.probes,
        &target.exe,
        probes::Scope::Process(pid),
        || {
            if target.pid.is_some() && !procfs::alive(pid) {
                return Err(TargetError::Exited(pid).into());
            }
            Ok(())
        },
    )
}

enum Stop {
    TargetExited(Option<i32>),
    Signal,
    Duration,
}

/// The loaded object and what is attached.
struct Attached {
    probes: Probes,
    links: Links,
}

/// What a probe hit costs here (see [`overhead::calibrate`]), and the calibration's links.
/// Measured after the target's probes are attached, so that its first attach does not pay
/// the kernel's one-time wait, and before `attached` is announced, so that the loop after it
/// (signals, exit) runs as soon as the target does. Its links are dropped last: their
/// detaches (a kernel grace period each, ~100 ms here) used to be most of the time from start
/// to live probes, which launch mode's held child waited for.
fn calibrate(probes: &mut Probes) -> (HitCost, Vec<probes::TakenLink>) {
    overhead::calibrate_or_fallback(probes, "map-trace")
}

async fn stream(
    cfg: config::Trace,
    plan: Plan,
    target: Target,
    attached: Attached,
    pid: u32,
    held: Option<launch::Held>,
    outputs: Outputs,
) -> Result<u8> {
    let Attached {
        mut probes,
        mut links,
    } = attached;
    let (hit_cost, calibration_links) = calibrate(&mut probes);
    timing::mark("calibrate");
    // `--discover`: before the budget is set up, so that it costs the window's probes too.
    let mut discovery = match cfg.discover {
        Some(length) if !plan.discovery.is_empty() && plan.heap.is_ok() => {
            match probes::discovery::Window::open(
                &mut probes,
                &mut links,
                &plan.discovery,
                (
                    &target.exe,
                    plan.heap.as_ref().ok().and_then(|h| h.pie_first_load),
                ),
                pid,
                length,
            ) {
                Ok(w) => Some(w),
                Err(e) => {
                    eprintln!("map-trace: warning: no --discover window: {e:#}");
                    None
                }
            }
        }
        _ => None,
    };
    timing::mark("discovery");
    let mut governor = Governor::new(cfg.budget, &plan, pid, &links, hit_cost);
    let cpu_at_start = procfs::cpu_time_ns(pid);
    let mut cpu_last = cpu_at_start;
    let mut budget_tick = tokio::time::interval(Duration::from_millis(250));
    let ring = BlockingReader::new(probes.take_ring()?);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigquit = signal(SignalKind::quit())?;
    let launched = held.is_some();

    // Exit notification: a pidfd (Linux 5.3+), or polling /proc on older kernels.
    // SAFETY: the OwnedFd stays open and unchanged for as long as the AsyncFd owns it.
    let pidfd = sys::pidfd_open(pid)
        .ok()
        .and_then(|fd| unsafe { AsyncFd::register(fd) }.ok());
    if pidfd.is_none() && target.pid.is_some() && !procfs::alive(pid) {
        return Err(TargetError::Exited(pid).into());
    }

    timing::mark("stream setup");
    let offset = sys::monotonic_to_unix_offset();
    let start = StartInfo {
        time_ns: sys::unix_now_ns(),
        pid,
        exe: target.display.clone(),
        go_version: plan.go_version.raw.clone(),
        go_version_source: plan.go_version_source,
        map_impl: plan.layout.map_impl,
        arch: plan.arch,
        probes: plan.probes.clone(),
        launched,
        build_id: plan.build_id.clone(),
    };
    let settings = Settings {
        pid,
        load_factor_num: plan.layout.load_factor_num,
        mono_to_unix_ns: offset,
        infer_growth_ends: plan.infer_growth_ends,
        slices: cfg.plan.slices,
        min_bytes: cfg.min_bytes,
        runtime_maps: cfg.runtime_maps,
        kept: cfg.kept,
    };
    let (sampling, sampling_note) = sampling(&cfg, &plan, &target, pid);
    let sampling_on = sampling.is_some();
    let mut collector = Collector::new(
        Pipeline::new(
            settings,
            Recorder::new(outputs.sites, outputs.record),
            outputs.sink,
        ),
        sampling,
    );
    timing::mark("collector new");
    collector.start(&start)?;
    collector.sampling_state(sampling_on, sampling_note.clone());
    timing::mark("start record");
    if let Some(note) = sampling_note.filter(|_| cfg.sampling.is_some()) {
        eprintln!("map-trace: note: {note}");
    }
    for w in &plan.warnings {
        eprintln!("map-trace: warning: {w}");
    }
    eprintln!(
        "map-trace: attached to pid {pid} ({}, {}, {} maps): {} probe{}",
        target.display,
        plan.go_version.raw,
        plan.layout.map_impl.name(),
        plan.probes.len(),
        if plan.probes.len() == 1 { "" } else { "s" }
    );
    if let (Some(w), Some(length)) = (&discovery, cfg.discover) {
        eprintln!(
            "map-trace: discovering the maps in use for {}: probes on {} map access functions",
            output::format::duration(length.as_nanos() as u64),
            w.functions()
        );
    }
    timing::mark("attached line");
    // Launch mode: the probes are live; let the child exec now.
    let mut child = match held {
        Some(h) => Some(h.release()?),
        None => None,
    };
    timing::mark("release");

    // A PIE's load address, for call sites: read now, while the target surely runs (a launched
    // program may be done before its first events are read).
    collector.prime(pid, Duration::from_secs(1));
    // From here on the collector thread reads the ring and writes every output; this thread
    // keeps the clock (signals, exit, duration, budget) and never waits for output.
    timing::mark("prime");
    let mut collecting = collector::Handle::spawn(collector, ring)?;
    timing::mark("collector spawn");

    let deadline = cfg.duration.map(|d| tokio::time::Instant::now() + d);
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    let stop = loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let discover_until = discovery.as_ref().map(|w| w.until());
        let discover_end = async {
            match discover_until {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let switch_at = governor.switch_at();
        let switch = async {
            match switch_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let exited = async {
            match &pidfd {
                Some(fd) => {
                    let _ = fd.readable().await;
                }
                None => loop {
                    poll.tick().await;
                    if !procfs::alive(pid) {
                        break;
                    }
                },
            }
        };
        tokio::select! {
            r = collecting.done() => return Err(collector_stopped(r).into()),
            _ = budget_tick.tick() => {
                // A window already over closes as such, before the budget looks at it.
                if discovery.as_ref().is_some_and(|w| w.until() <= std::time::Instant::now()) {
                    if let Some(w) = discovery.take() {
                        collecting.send(Control::Discovered(w.close(&mut probes, &mut links, "window")));
                    }
                }
                cpu_last = procfs::cpu_time_ns(pid).or(cpu_last);
                for notice in governor.tick(&mut probes, &mut links, cpu_last)? {
                    eprint_line_whole(&notice.line);
                    collecting.send(Control::Detached(notice.detached));
                }
                // The budget shed the discovery probes: the window closes now.
                if discovery.is_some() && governor.has_shed(overhead::Family::Discovery) {
                    if let Some(w) = discovery.take() {
                        collecting.send(Control::Discovered(w.close(&mut probes, &mut links, "budget")));
                    }
                }
            }
            _ = discover_end => {
                if let Some(w) = discovery.take() {
                    collecting.send(Control::Discovered(w.close(&mut probes, &mut links, "window")));
                }
            }
            _ = switch => governor.switch(&mut probes, &mut links, &target.exe)?,
            _ = exited => break Stop::TargetExited(None),
            _ = sleep => break Stop::Duration,
            _ = sigint.recv() => if !launched { break Stop::Signal },
            _ = sigquit.recv() => if !launched { break Stop::Signal },
            _ = sigterm.recv() => if launched { sys::kill(pid, libc::SIGTERM) } else { break Stop::Signal },
            _ = sighup.recv() => if launched { sys::kill(pid, libc::SIGHUP) } else { break Stop::Signal },
        }
    };

    timing::mark("stopped");
    // Tracing ended inside the window: what it found so far is still tracked and sampled.
    if let Some(w) = discovery.take() {
        collecting.send(Control::Discovered(w.close(
            &mut probes,
            &mut links,
            "stopped",
        )));
    }
    // The target's CPU time while traced, read before a launched child is waited for: until
    // then an exited child is a zombie whose CPU time is still readable.
    if let Some(cpu) = procfs::cpu_time_ns(pid) {
        cpu_last = Some(cpu);
    }

    // Launch mode: a duration or signal stop detaches but leaves the child running; we wait
    // for it only when it exited.
    let mut stop = stop;
    if let (Some(c), Stop::TargetExited(_)) = (child.as_mut(), &stop) {
        let status = c.wait().context("waiting for the child")?;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        stop = Stop::TargetExited(Some(code));
    }
    timing::mark("wait child");
    // Once no probe can fire, the counters below are final and the collector's last drain sees
    // every record that was not lost. The target still runs: detach first. It exited: its
    // probes cannot fire any more (they are attached for its pid only), and their release,
    // which waits in the kernel per uprobe, is left to after the summary, in the background.
    let target_gone = matches!(stop, Stop::TargetExited(_));
    let mut retiring = governor.take_retiring();
    if !target_gone {
        probes.detach_links(std::mem::take(&mut links));
        probes.detach_links(std::mem::take(&mut retiring));
    }
    timing::mark("detach");
    let lost = probes.counter(Counter::Lost);
    let overhead = governor.report(
        &probes,
        cpu_at_start.zip(cpu_last).map(|(a, b)| b.saturating_sub(a)),
    );
    let probe_hits = probe_hits(&probes, &plan, &cfg.plan);
    let read_errors = probes.counter(Counter::ReadErrors);
    // The target runs on: detach before writing the summary.
    let gone_probes = if target_gone {
        Some((probes, links, retiring))
    } else {
        drop(probes);
        None
    };
    timing::mark("drop probes");
    let (reason, exit_status) = match stop {
        Stop::TargetExited(code) => (StopReason::TargetExited, code),
        Stop::Signal => (StopReason::Signal, None),
        Stop::Duration => (StopReason::Duration, None),
    };
    if lost > 0 {
        eprintln!(
            "map-trace: warning: {lost} events lost (ring buffer full); try --ring-buffer-size"
        );
    }
    collecting.send(Control::Finish(SessionEnd {
        time_ns: sys::unix_now_ns(),
        lost,
        probe_hits,
        read_errors,
        reason,
        exit_status,
        overhead,
    }));
    // The collector writes what is queued and the summary. If the output is stalled (a pipe
    // whose reader stopped) that waits for it; a second signal gives up on the summary.
    tokio::select! {
        r = collecting.done() => {
            match r {
                Ok(Ok(())) => {}
                other => return Err(collector_stopped(other).into()),
            }
        }
        _ = sigint.recv() => return Err(output_stalled()),
        _ = sigterm.recv() => return Err(output_stalled()),
    }
    collecting.join();
    timing::mark("summary written");
    // Only now: their detach waits in the kernel, and nothing depends on it (the calibration
    // function is never called again; an exited target's probes cannot fire). A child holding
    // them releases them after we exit, so a short program's run does not end ~100 ms per
    // probe late; where no child can be made, they are released here.
    if gone_probes.is_some() || !calibration_links.is_empty() {
        sys::release_files_in_background();
    }
    drop(gone_probes);
    drop(calibration_links);
    timing::mark("calibration detached");
    Ok(match exit_status {
        Some(code) => code.clamp(0, 255) as u8,
        None => 0,
    })
}

/// The collector thread stopped before it was told to: an output or recording error.
fn collector_stopped(
    r: Result<io::Result<()>, tokio::sync::oneshot::error::RecvError>,
) -> io::Error {
    match r {
        Ok(Err(e)) => e,
        Ok(Ok(())) => io::Error::other("the collector stopped early"),
        Err(_) => io::Error::other("the collector thread panicked"),
    }
}

/// A signal while the summary waits for a stalled output.
fn output_stalled() -> anyhow::Error {
    anyhow::anyhow!("stopped while the output was stalled: the rest of the events and the summary were not written")
}

/// Hits per probe, as shown in summaries (named by [`Counter::hit_name`]).
fn probe_hits(probes: &Probes, plan: &Plan, opts: &plan::Options) -> Vec<(String, u64)> {
    let map_impl = plan.layout.map_impl;
    let mut counters = match map_impl {
        MapImpl::Classic => vec![Counter::HitsHashGrow],
        MapImpl::Swiss => vec![
            Counter::HitsGrowToSmall,
            Counter::HitsGrowToTable,
            Counter::HitsRehash,
            Counter::HitsSwissRet,
        ],
    };
    if plan
        .probes
        .iter()
        .any(|p| p.function == "runtime.advanceEvacuationMark")
    {
        counters.push(Counter::HitsEvacuated);
    }
    if plan
        .probes
        .iter()
        .any(|p| overhead::Family::of(p.program) == overhead::Family::Fatal)
    {
        counters.push(Counter::HitsFatal);
    }
    if opts.evacuation && map_impl == MapImpl::Classic {
        counters.extend([Counter::HitsEvacuate, Counter::HitsEvacuateRet]);
    }
    if opts.slices {
        counters.extend([Counter::HitsGrowslice, Counter::HitsGrowsliceRet]);
    }
    counters
        .into_iter()
        .filter_map(|c| Some((c.hit_name()?.summary.to_string(), probes.counter(c))))
        .collect()
}
