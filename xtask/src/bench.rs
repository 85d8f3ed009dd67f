//! `cargo xtask bench`: what tracing costs the traced program, measured side by side in one run.
//!
//! The fixture times its own work (`fill_ns` on stderr), so map-trace's start-up and attach
//! time are not counted: the numbers are what the traced program itself pays. Runs are
//! interleaved (untraced, traced, kernel probe, …) so machine noise hits all alike; medians
//! are compared. Prints numbers; asserts nothing (this machine is noisy).
//!
//! 1. Default mode on N sequential inserts: slowdown, and the added time against
//!    (resize events × the bare cost of one uprobe hit).
//! 2. Cost per probe hit: map-trace's entry (+ RET) probes against the kernel's own
//!    `uprobe_events` probe with no arguments at the same instructions — the physical floor.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{build, go};

const ROUNDS: usize = 5;
const TRACEFS: &str = "/sys/kernel/tracing";

fn fill_ns(stderr: &[u8]) -> Result<u64> {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .find_map(|l| l.strip_prefix("fill_ns "))
        .context("fixture printed no fill_ns")?
        .trim()
        .parse()
        .context("parsing fill_ns")
}

fn median(mut v: Vec<u64>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// `min–max` of a sample in ms, for the spread column.
fn spread_ms(v: &[u64]) -> String {
    let (lo, hi) = (
        v.iter().min().copied().unwrap_or(0),
        v.iter().max().copied().unwrap_or(0),
    );
    format!("{:.1}–{:.1}", lo as f64 / 1e6, hi as f64 / 1e6)
}

/// Spawns `cmd`; returns the ns until a line starting with `marker` appears on the chosen
/// stream, and the process's peak RSS (VmHWM, KiB) read at that moment. The process is then
/// sent SIGINT and reaped. (Peak RSS from wait4 would be wrong here: a forked child's maximum
/// includes the parent's memory at the fork.)
fn attach_run(cmd: &mut Command, marker: &str, on_stderr: bool) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // The previous run's probes may still be unregistering in the kernel (an RCU grace period
    // per uprobe, serialized with new registrations): start from a quiet kernel, as a user
    // attaching during an incident does.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let t0 = std::time::Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stream: Box<dyn std::io::Read + Send> = if on_stderr {
        Box::new(child.stderr.take().context("stderr")?)
    } else {
        Box::new(child.stdout.take().context("stdout")?)
    };
    let mut lines = BufReader::new(stream).lines();
    let mut found = None;
    for line in lines.by_ref() {
        if line?.starts_with(marker) {
            let ns = t0.elapsed().as_nanos() as u64;
            let status =
                fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0);
            found = Some((ns, hwm));
            break;
        }
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    std::thread::spawn(move || lines.for_each(drop));
    // bpftrace 0.17 can miss a SIGINT while it waits for events (it checks its flag only when
    // its epoll wait returns, and nothing fires here): give it 5 s, then SIGKILL, which also
    // releases its probes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            child.wait()?;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    found.context(format!("no {marker:?} line"))
}

fn run_once(cmd: &mut Command) -> Result<u64> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    fill_ns(&out.stderr)
}

/// map-trace's JSON output for a run: (start record, summary record).
fn traced_json(bin: &Path, fx: &Path, args: &[&str]) -> Result<(Value, Value)> {
    traced_json_flags(bin, fx, &[], args)
}

/// [`traced_json`] with map-trace flags.
fn traced_json_flags(
    bin: &Path,
    fx: &Path,
    flags: &[&str],
    args: &[&str],
) -> Result<(Value, Value)> {
    let out = unbudgeted(bin)
        .args(flags)
        .args(["--format", "json", "--"])
        .arg(fx)
        .args(args)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let start = lines.first().context("no start record")?.clone();
    let summary = lines.last().context("no summary")?.clone();
    Ok((start, summary))
}

fn append(tracefs: &Path, file: &str, text: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_APPEND)
        .open(tracefs.join(file))
        .with_context(|| format!("opening {}/{file}", tracefs.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {text:?}"))?;
    Ok(())
}

/// tracefs mounted in a mount namespace of its own, held by a sleeping child and reached
/// through `/proc/PID/root`: the shared `/sys` is never touched, and the mount is gone with
/// the child (on drop, or when xtask dies).
struct PrivateTracefs(std::process::Child);

impl PrivateTracefs {
    fn new() -> Result<Self> {
        use std::{ffi::CString, os::unix::process::CommandExt};
        let (none, root, target, fstype) = (
            CString::new("none")?,
            CString::new("/")?,
            CString::new(TRACEFS)?,
            CString::new("tracefs")?,
        );
        let mut cmd = Command::new("sleep");
        cmd.arg("3600");
        // SAFETY: runs in the forked child before exec, making only system calls on C strings
        // allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                let private = libc::MS_REC | libc::MS_PRIVATE;
                if libc::unshare(libc::CLONE_NEWNS) != 0
                    || libc::mount(
                        none.as_ptr(),
                        root.as_ptr(),
                        std::ptr::null(),
                        private,
                        std::ptr::null(),
                    ) != 0
                    || libc::mount(
                        none.as_ptr(),
                        target.as_ptr(),
                        fstype.as_ptr(),
                        0,
                        std::ptr::null(),
                    ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .context("mounting tracefs in a private mount namespace")?;
        Ok(Self(child))
    }

    fn dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{TRACEFS}", self.0.id()))
    }
}

impl Drop for PrivateTracefs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Bare kernel uprobes (no fetch args) at `offsets` of `fx`, enabled while `f` runs.
fn with_bare_probes<T>(fx: &Path, offsets: &[String], f: impl FnOnce() -> Result<T>) -> Result<T> {
    let ns = PrivateTracefs::new()?;
    let tracefs = ns.dir();
    let names: Vec<String> = (0..offsets.len())
        .map(|i| format!("maptrace_bench/p{i}"))
        .collect();
    for (n, off) in names.iter().zip(offsets) {
        let _ = append(&tracefs, "uprobe_events", &format!("-:{n}\n"));
        append(
            &tracefs,
            "uprobe_events",
            &format!("p:{n} {}:{off}\n", fx.display()),
        )?;
        fs::write(tracefs.join(format!("events/{n}/enable")), "1")?;
    }
    let r = f();
    for n in &names {
        let _ = fs::write(tracefs.join(format!("events/{n}/enable")), "0");
        let _ = append(&tracefs, "uprobe_events", &format!("-:{n}\n"));
    }
    r
}

/// map-trace with its overhead budget off: the benchmarks measure what every event costs
/// (section 8 also runs the default budget, as its own row).
fn unbudgeted(bin: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args(["--max-overhead", "0"]);
    c
}

fn fixture(dir: &Path, v: &str) -> PathBuf {
    dir.join(format!("go{v}/growth"))
}

/// Runs every benchmark, prints the tables and writes target/bench/results.json.
pub fn bench(only: Option<&str>) -> Result<()> {
    let want = |name: &str| only.is_none_or(|o| o == name);
    let bin = build::build(true)?;
    let fixtures = go::fixtures()?;
    let mut results: Vec<Value> = vec![];

    if want("slowdown") {
        println!("## 1. Default mode: sequential inserts into make(map[int]int) (median of {ROUNDS} interleaved runs)");
        println!(
            "{:<8} {:>9} {:>8} {:>6} {:>12} {:>12} {:>7} {:>11}",
            "go", "inserts", "events", "hits", "untraced ms", "traced ms", "ratio", "added ms"
        );
        for v in ["1.23.9", "1.26.6"] {
            let fx = fixture(&fixtures, v);
            for n in ["1000000", "10000000"] {
                let (mut plain, mut traced) = (vec![], vec![]);
                for _ in 0..ROUNDS {
                    plain.push(run_once(Command::new(&fx).args(["int", n]))?);
                    traced.push(run_once(
                        unbudgeted(&bin)
                            .args(["-o", "/dev/null", "--"])
                            .arg(&fx)
                            .args(["int", n]),
                    )?);
                }
                let (_, summary) = traced_json(&bin, &fx, &["int", n])?;
                let events = summary["events"].as_u64().unwrap_or(0);
                let hits: u64 = summary["probe_hits"]
                    .as_object()
                    .map(|o| o.values().filter_map(Value::as_u64).sum())
                    .unwrap_or(0);
                let (sp, st) = (spread_ms(&plain), spread_ms(&traced));
                let (p, t) = (median(plain), median(traced));
                println!(
                    "{v:<8} {n:>9} {events:>8} {hits:>6} {:>12.2} {:>12.2} {:>7.3} {:>11.2} {sp:>15} {st:>15}",
                    p / 1e6,
                    t / 1e6,
                    t / p,
                    (t - p) / 1e6
                );
                results.push(serde_json::json!({
                    "bench": "slowdown", "go": v, "inserts": n, "events": events, "hits": hits,
                    "untraced_ms": p / 1e6, "traced_ms": t / 1e6, "ratio": t / p,
                    "untraced_range_ms": sp, "traced_range_ms": st,
                }));
            }
        }
    }
    if want("per-hit") {
        println!();
        println!(
            "## 2. Cost per probe hit: map-trace vs a bare kernel uprobe at the same instructions"
        );
        println!("(`maps 20000 9`: 20000 maps of 9 keys; each makes one classic hashGrow, or one Swiss growToTable)");
        println!(
            "{:<8} {:<34} {:>6} {:>12} {:>10} {:>10}",
            "go", "probes", "hits", "median ms", "µs/hit", "vs bare"
        );
        let n = 20000u64;
        let args = ["maps", "20000", "9"];
        for v in ["1.23.9", "1.26.6"] {
            let fx = fixture(&fixtures, v);
            let (start, _) = traced_json(&bin, &fx, &["maps", "1", "9"])?;
            let probes = start["probes"].as_array().context("probes")?.clone();
            let swiss = start["map_impl"] == "swiss";
            let fname = if swiss { "growToTable" } else { "hashGrow" };
            let sites: Vec<(String, u64)> = probes
                .iter()
                .filter(|p| p["function"].as_str().unwrap_or("").ends_with(fname))
                .map(|p| {
                    (
                        p["file_offset"].as_str().unwrap_or("").to_string(),
                        p["offset"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            let entry: Vec<String> = sites.iter().take(1).map(|s| s.0.clone()).collect();
            let all: Vec<String> = sites.iter().map(|s| s.0.clone()).collect();
            let hits_per_call = all.len() as u64;
            let (mut plain, mut traced, mut bare_entry, mut bare_all) =
                (vec![], vec![], vec![], vec![]);
            for _ in 0..ROUNDS {
                plain.push(run_once(Command::new(&fx).args(args))?);
                traced.push(run_once(
                    unbudgeted(&bin)
                        .args(["-o", "/dev/null", "--"])
                        .arg(&fx)
                        .args(args),
                )?);
                bare_entry.push(with_bare_probes(&fx, &entry, || {
                    run_once(Command::new(&fx).args(args))
                })?);
                if swiss {
                    bare_all.push(with_bare_probes(&fx, &all, || {
                        run_once(Command::new(&fx).args(args))
                    })?);
                }
            }
            let p = median(plain);
            let per_hit = |t: f64, hits: u64| (t - p) / hits as f64 / 1e3;
            let be = median(bare_entry);
            let bare_hit = per_hit(be, n);
            println!(
                "{v:<8} {:<34} {:>6} {:>12.2} {:>10} {:>10}",
                "none (untraced)",
                0,
                p / 1e6,
                "-",
                "-"
            );
            println!(
                "{v:<8} {:<34} {:>6} {:>12.2} {:>10.2} {:>10}",
                format!("kernel uprobe_events: {fname} body"),
                n,
                be / 1e6,
                bare_hit,
                "1.00"
            );
            if swiss {
                let ba = median(bare_all);
                let h = per_hit(ba, n * hits_per_call);
                println!(
                    "{v:<8} {:<34} {:>6} {:>12.2} {:>10.2} {:>10.2}",
                    "kernel uprobe_events: body + RET",
                    n * hits_per_call,
                    ba / 1e6,
                    h,
                    h / bare_hit
                );
            }
            let t = median(traced);
            let h = per_hit(t, n * hits_per_call);
            let what = if swiss {
                "map-trace: body + RET (timed)"
            } else {
                "map-trace: hashGrow body"
            };
            println!(
                "{v:<8} {what:<34} {:>6} {:>12.2} {:>10.2} {:>10.2}",
                n * hits_per_call,
                t / 1e6,
                h,
                h / bare_hit
            );
            results.push(serde_json::json!({
                "bench": "per_hit", "go": v, "function": fname, "bare_entry_us_per_hit": bare_hit,
                "map_trace_us_per_hit": h, "hits_per_call": hits_per_call,
            }));
        }
    }
    if want("stack-depth") {
        println!();
        println!(
            "## Stack depth: cost per probe hit by --stack-depth (a frame is one 16-byte read)"
        );
        println!("(`deepmaps 20000 70`: 20000 maps of 9 keys, each grown 70 calls deep: one hashGrow or growToTable each)");
        println!(
            "{:<8} {:>6} {:>12} {:>10} {:>14}",
            "go", "depth", "median ms", "µs/hit", "ns/frame vs 1"
        );
        let n = 20000u64;
        let args = ["deepmaps", "20000", "70"];
        for v in ["1.23.9", "1.26.6"] {
            let fx = fixture(&fixtures, v);
            let depths = ["1", "8", "16", "32", "64"];
            let mut plain = vec![];
            let mut traced: Vec<Vec<u64>> = vec![vec![]; depths.len()];
            for _ in 0..ROUNDS {
                plain.push(run_once(Command::new(&fx).args(args))?);
                for (i, d) in depths.iter().enumerate() {
                    traced[i].push(run_once(
                        unbudgeted(&bin)
                            .args(["-o", "/dev/null", "--stack-depth", d, "--"])
                            .arg(&fx)
                            .args(args),
                    )?);
                }
            }
            let p = median(plain);
            let per_hit: Vec<f64> = traced
                .into_iter()
                .map(|t| (median(t) - p) / n as f64 / 1e3)
                .collect();
            for (i, d) in depths.iter().enumerate() {
                let frames: f64 = d.parse::<f64>().unwrap() - 1.0;
                let per_frame = if frames > 0.0 {
                    format!("{:.1}", (per_hit[i] - per_hit[0]) * 1e3 / frames)
                } else {
                    "-".into()
                };
                println!(
                    "{v:<8} {d:>6} {:>12.2} {:>10.2} {per_frame:>14}",
                    (p + per_hit[i] * 1e3 * n as f64) / 1e6,
                    per_hit[i]
                );
            }
            results.push(serde_json::json!({
                "bench": "stack_depth", "go": v, "depths": depths,
                "us_per_hit": per_hit, "untraced_ms": p / 1e6,
                "ns_per_frame": (per_hit[depths.len() - 1] - per_hit[0]) * 1e3 / 63.0,
            }));
        }
    }
    if want("attach") {
        println!();
        println!("## 3. Attach: time to live probes and peak RSS on the Go 1.26 compiler (25 MB), vs bpftrace");
        let compile = go::ensure("1.26.6")?
            .parent()
            .and_then(|b| b.parent())
            .context("GOROOT")?
            .join("pkg/tool/linux_amd64/compile");
        let mut mt = (vec![], vec![]);
        let mut bt = (vec![], vec![]);
        let bpftrace = which_bpftrace()?;
        for _ in 0..ROUNDS {
            let (ns, rss) = attach_run(
                unbudgeted(&bin)
                    .args(["-o", "/dev/null", "--"])
                    .arg(&compile)
                    .arg("-V"),
                "map-trace: attached",
                true,
            )?;
            mt.0.push(ns);
            mt.1.push(rss);
            let script = format!(
                "uprobe:{c}:\"internal/runtime/maps.(*table).rehash\" {{}} \
                 uprobe:{c}:\"internal/runtime/maps.(*Map).growToTable\" {{}} \
                 BEGIN {{ printf(\"attached\\n\"); }}",
                c = compile.display()
            );
            // Unbuffered: into a pipe, bpftrace 0.17 holds its BEGIN line until it exits.
            let (ns, rss) = attach_run(
                Command::new(&bpftrace)
                    .args(["-B", "none", "-e"])
                    .arg(script),
                "attached",
                false,
            )?;
            bt.0.push(ns);
            bt.1.push(rss);
        }
        let (mt_ns, bt_ns) = (median(mt.0), median(bt.0));
        let (mt_rss, bt_rss) = (median(mt.1), median(bt.1));
        println!("{:<36} {:>12} {:>14}", "", "attach ms", "peak RSS MiB");
        println!(
            "{:<36} {:>12.1} {:>14.1}",
            "map-trace (2 entry + 2 RET probes)",
            mt_ns / 1e6,
            mt_rss / 1024.0
        );
        println!(
            "{:<36} {:>12.1} {:>14.1}",
            "bpftrace (2 entry probes)",
            bt_ns / 1e6,
            bt_rss / 1024.0
        );
        println!(
            "{:<36} {:>12.2} {:>14.2}",
            "ratio map-trace / bpftrace",
            mt_ns / bt_ns,
            mt_rss / bt_rss
        );
        results.push(serde_json::json!({
            "bench": "attach", "map_trace_ms": mt_ns / 1e6, "map_trace_rss_mib": mt_rss / 1024.0,
            "bpftrace_ms": bt_ns / 1e6, "bpftrace_rss_mib": bt_rss / 1024.0,
        }));
    }
    if want("pipeline") {
        println!();
        println!("## 4-5. Collector throughput and memory (recorded stream, no kernel)");
        let out = crate::cache::output(
            crate::build::clean_cmd("cargo")
                .args([
                    "bench",
                    "--quiet",
                    "--package",
                    "map-trace",
                    "--bench",
                    "pipeline",
                ])
                // Keep the rebuilt release binary functional (it shares the target dir).
                .env(
                    "MAP_TRACE_EBPF_OBJECT",
                    crate::cache::target_dir()
                        .join("bpf")
                        .join(format!("map-trace-{}.bpf.o", build::bpf_arch())),
                )
                .current_dir(crate::cache::root()),
        )?;
        print!("{out}");
        results.push(serde_json::json!({ "bench": "pipeline", "output": out.trim() }));
    }
    if want("agent") {
        let r = agent_bench(&bin, &fixtures)?;
        results.push(r);
    }
    if want("modes") {
        results.extend(modes_bench(&bin, &fixtures)?);
    }
    if want("sampling") {
        results.extend(sampling_bench(&bin, &fixtures)?);
    }
    if want("small-maps") {
        results.extend(small_maps_bench(&bin, &fixtures)?);
    }
    if want("discovery") {
        results.extend(discovery_bench(&bin, &fixtures)?);
    }
    let dir = crate::cache::target_dir().join("bench");
    fs::create_dir_all(&dir)?;
    fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    println!("\nwritten: {}", dir.join("results.json").display());
    Ok(())
}

/// bpftrace for the attach comparison: installed from Debian's packages when missing (the
/// bench needs root anyway; tests never use it).
fn which_bpftrace() -> Result<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("bpftrace"))
            .find(|p| p.is_file())
    });
    if let Some(p) = found {
        return Ok(p);
    }
    crate::cache::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "bpftrace"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(PathBuf::from("/usr/bin/bpftrace"))
}

/// (VmRSS KiB, VmHWM KiB, CPU seconds) of a process.
fn usage(pid: u32) -> Result<(u64, u64, f64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .context("stat")?
        .1
        .split(' ')
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok((kib("VmRSS:"), kib("VmHWM:"), ticks / 100.0))
}

/// GET /metrics from the agent.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    Some(s)
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Section 6: the agent's own cost (RSS, CPU) idle and while fixtures of both map
/// implementations run under it.
fn agent_bench(bin: &Path, fixtures: &Path) -> Result<Value> {
    use std::io::{BufRead, BufReader};
    println!("\n## 6. Agent: its own memory and CPU, idle and while tracing fixtures");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut agent = Command::new(bin)
        .args(["agent", "--metrics-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = agent.id();
    let start = Instant::now();
    while scrape(port).is_none() {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "agent did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let idle_secs = 10.0;
    let (rss_idle, _, cpu0) = usage(pid)?;
    std::thread::sleep(Duration::from_secs_f64(idle_secs));
    let (_, _, cpu1) = usage(pid)?;
    let runs = 2 * ROUNDS;
    let t0 = Instant::now();
    for i in 0..runs {
        let v = if i % 2 == 0 { "1.23.9" } else { "1.26.6" };
        let mut child = Command::new(fixture(fixtures, v))
            .args(["-wait", "int", "1000000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut err = BufReader::new(child.stderr.take().context("stderr")?);
        let mut line = String::new();
        err.read_line(&mut line)?;
        // Released once the agent has attached to it.
        let t = Instant::now();
        while scrape(port).is_none_or(|m| metric_sum(&m, "map_trace_attached_processes") < 1.0) {
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(10),
                "agent did not attach"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        writeln!(child.stdin.take().context("stdin")?, "go")?;
        std::io::copy(&mut err, &mut std::io::sink())?;
        child.wait()?;
    }
    let wall = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let (rss_busy, hwm, cpu2) = usage(pid)?;
    let m = scrape(port).unwrap_or_default();
    let events = metric_sum(&m, "map_trace_map_grows_total");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    agent.wait()?;
    let idle_pct = 100.0 * (cpu1 - cpu0) / idle_secs;
    let busy_cpu = cpu2 - cpu1;
    println!(
        "idle: RSS {:.1} MiB, CPU {idle_pct:.2}% over {idle_secs} s",
        rss_idle as f64 / 1024.0
    );
    println!(
        "tracing {runs} fixture processes (Go 1.23.9 and 1.26.6, 1M inserts each) for {wall:.1} s: \
         {events} events; agent CPU {busy_cpu:.2} s ({:.1}% of one core), {:.0} µs per event \
         (including attach, symbolization, metrics); RSS {:.1} MiB, peak {:.1} MiB",
        100.0 * busy_cpu / wall,
        1e6 * busy_cpu / events.max(1.0),
        rss_busy as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(serde_json::json!({
        "bench": "agent",
        "idle_rss_kib": rss_idle, "idle_cpu_percent": idle_pct,
        "runs": runs, "wall_s": wall, "events": events, "busy_cpu_s": busy_cpu,
        "busy_rss_kib": rss_busy, "peak_rss_kib": hwm,
    }))
}

/// Runs `cmd` to its end; returns (its `fill_ns`, its own CPU seconds, user + system).
fn run_with_cpu(cmd: &mut Command) -> Result<(u64, f64)> {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.context("stderr")?;
    let reader = std::thread::spawn(move || {
        let mut b = vec![];
        let _ = std::io::Read::read_to_end(&mut stderr, &mut b);
        b
    });
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills; the pid is our own child, reaped here
    // (the Child handle is not waited on again).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{cmd:?} failed (status {status})");
    }
    let err = reader
        .join()
        .map_err(|_| anyhow::anyhow!("stderr reader"))?;
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((fill_ns(&err)?, tv(ru.ru_utime) + tv(ru.ru_stime)))
}

/// One `--pid` run for the discovery bench: the fixture started with `-wait`, map-trace
/// attached with `flags` (none: untraced), then the fixture let go. Returns its fill_ns and
/// the summary's `sampling.discovery` (null when untraced or off).
fn pid_run(bin: &Path, fx: &Path, flags: Option<&[&str]>, args: &[&str]) -> Result<(u64, Value)> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let mut child = Command::new(fx)
        .arg("-wait")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut err = BufReader::new(child.stderr.take().context("fixture stderr")?);
    let mut line = String::new();
    while err.read_line(&mut line)? > 0 && !line.starts_with("ready") {
        line.clear();
    }
    let out = crate::cache::target_dir()
        .join("bench")
        .join("discovery.json");
    let mut mt = match flags {
        Some(flags) => {
            fs::create_dir_all(out.parent().context("bench dir")?)?;
            let mut c = Command::new(bin)
                .args(flags)
                .args(["--format", "json", "-o"])
                .arg(&out)
                .args(["--pid", &child.id().to_string()])
                .stderr(Stdio::piped())
                .spawn()?;
            let mut e = BufReader::new(c.stderr.take().context("map-trace stderr")?);
            let mut l = String::new();
            while e.read_line(&mut l)? > 0 && !l.starts_with("map-trace: attached") {
                l.clear();
            }
            // Keep draining its stderr.
            std::thread::spawn(move || std::io::copy(&mut e, &mut std::io::sink()));
            Some(c)
        }
        None => None,
    };
    writeln!(child.stdin.as_mut().context("fixture stdin")?, "go")?;
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut err, &mut rest)?;
    let status = child.wait()?;
    if !status.success() {
        bail!("{fx:?} {args:?} failed: {status}");
    }
    let ns = fill_ns(&rest)?;
    // Only the summary's discovery object is kept: a whole summary of this workload (every map
    // it grew) is hundreds of MB parsed, and the runs are kept until the table is printed.
    let discovery = match mt.as_mut() {
        Some(c) => {
            c.wait()?;
            let text = fs::read_to_string(&out)?;
            let mut summary: Value = serde_json::from_str(text.lines().last().unwrap_or("null"))?;
            summary["sampling"]["discovery"].take()
        }
        None => Value::Null,
    };
    Ok((ns, discovery))
}

/// Section 10: the `--discover` window's cost to a busy program attached by pid: the JSON API
/// in miniature (a decoded map and a 10-entry header map per request, every access a probe
/// hit while the window is open), untraced, without the window, with the default window under
/// the default budget, and with the whole window unbudgeted.
fn discovery_bench(bin: &Path, fixtures: &Path) -> Result<Vec<Value>> {
    println!();
    println!(
        "## 10. The --discover window on a busy --pid target (median of {ROUNDS} interleaved runs)"
    );
    println!(
        "{:<8} {:<34} {:>10} {:>7} {:>11} {:>9} {:>8}",
        "go", "mode", "target ms", "ratio", "hits", "window", "ended"
    );
    let args = ["requests", "400000"];
    let mut out = vec![];
    for v in ["1.23.9", "1.27.3"] {
        let fx = fixture(fixtures, v);
        let modes: [(&str, Option<&[&str]>); 4] = [
            ("untraced", None),
            ("--discover 0", Some(&["--discover", "0"])),
            (
                "--discover 2s (default, budget 5%)",
                Some(&["--discover", "2s"]),
            ),
            (
                "--discover 2s --max-overhead 0",
                Some(&["--discover", "2s", "--max-overhead", "0"]),
            ),
        ];
        let mut runs: Vec<Vec<(u64, Value)>> = vec![vec![]; modes.len()];
        for _ in 0..ROUNDS {
            for (i, (_, flags)) in modes.iter().enumerate() {
                runs[i].push(pid_run(bin, &fx, *flags, &args)?);
            }
        }
        let base = median(runs[0].iter().map(|r| r.0).collect());
        for (i, (name, _)) in modes.iter().enumerate() {
            let t = median(runs[i].iter().map(|r| r.0).collect());
            let d = runs[i].last().map(|r| r.1.clone()).unwrap_or(Value::Null);
            let hits = d["hits"].as_u64();
            println!(
                "{v:<8} {name:<34} {:>10.1} {:>7.3} {:>11} {:>9} {:>8}",
                t / 1e6,
                t / base,
                hits.map_or("-".into(), |h| h.to_string()),
                d["window_ms"]
                    .as_u64()
                    .map_or("-".into(), |w| format!("{w} ms")),
                d["ended"].as_str().unwrap_or("-"),
            );
            out.push(serde_json::json!({
                "bench": "discovery", "go": v, "mode": name, "untraced_ms": base / 1e6,
                "traced_ms": t / 1e6, "ratio": t / base, "discovery": d,
            }));
        }
    }
    println!("(ratio: the requests' time over the untraced run's; hits, window, ended: the last");
    println!(" run's summary.sampling.discovery)");
    Ok(out)
}

/// Section 9: map sampling. 10,000 live maps (every one grew, so every one is tracked) read
/// every 100 ms (10× the default rate) and every 1 s (the default) while the target reads
/// every key of every map; against untraced and --no-sampling runs. map-trace's own CPU (its
/// rusage, children included) over the map samples its summary counts.
fn sampling_bench(bin: &Path, fixtures: &Path) -> Result<Vec<Value>> {
    println!();
    println!("## 9. Map sampling: 10,000 live maps (median of {ROUNDS} interleaved runs)");
    println!(
        "{:<8} {:<22} {:>11} {:>8} {:>12} {:>10} {:>16}",
        "go", "mode", "target ms", "ratio", "samples", "mt cpu s", "µs per 1000 maps"
    );
    let mut out = vec![];
    let args = ["sampled", "10000", "20", "200"];
    for v in ["1.23.9", "1.27.3"] {
        let fx = fixture(fixtures, v);
        let modes: [(&str, &[&str]); 3] = [
            ("--no-sampling", &["--no-sampling"]),
            (
                "sample every 1 s",
                &["--sample-interval", "1s", "--max-sampled-maps", "10000"],
            ),
            (
                "sample every 100 ms",
                &["--sample-interval", "100ms", "--max-sampled-maps", "10000"],
            ),
        ];
        let mut plain = vec![];
        let mut traced: Vec<Vec<(u64, f64)>> = vec![vec![]; modes.len()];
        for _ in 0..ROUNDS {
            plain.push(run_once(Command::new(&fx).args(args))?);
            for (i, (_, flags)) in modes.iter().enumerate() {
                traced[i].push(run_with_cpu(
                    unbudgeted(bin)
                        .args(*flags)
                        .args(["-o", "/dev/null", "--"])
                        .arg(&fx)
                        .args(args),
                )?);
            }
        }
        let p = median(plain);
        println!("{v:<8} {:<22} {:>11.1}", "untraced", p / 1e6);
        let mut floor_cpu = 0.0;
        for (i, (name, flags)) in modes.iter().enumerate() {
            let (_, summary) = traced_json_flags(bin, &fx, flags, &args)?;
            let samples = summary["sampling"]["samples"].as_u64().unwrap_or(0);
            let t = median(traced[i].iter().map(|r| r.0).collect());
            let cpu: Vec<u64> = traced[i].iter().map(|r| (r.1 * 1e6) as u64).collect();
            let cpu_s = median(cpu) / 1e6;
            if i == 0 {
                floor_cpu = cpu_s;
            }
            // Over the --no-sampling run's CPU: what the samples added.
            let per_1000 = if samples > 0 {
                format!(
                    "{:.0}",
                    (cpu_s - floor_cpu).max(0.0) * 1e6 / (samples as f64 / 1000.0)
                )
            } else {
                "-".into()
            };
            println!(
                "{v:<8} {name:<22} {:>11.1} {:>8.3} {samples:>12} {cpu_s:>10.2} {per_1000:>16}",
                t / 1e6,
                t / p
            );
            out.push(serde_json::json!({
                "bench": "sampling", "go": v, "mode": name, "untraced_ms": p / 1e6,
                "traced_ms": t / 1e6, "ratio": t / p, "samples": samples,
                "map_trace_cpu_s": cpu_s,
            }));
        }
    }
    println!("(mt cpu s: map-trace's user+system CPU for the whole run, start-up and the event");
    println!(
        " probes' records included, which the --no-sampling row is; µs per 1000 maps: the CPU"
    );
    println!(" over that row, divided by the map samples the summary counts)");
    Ok(out)
}

/// Section 7: what each probe mode costs the target, and how close map-trace's own estimate
/// (its summary's `overhead.estimated_ns`, from the calibrated per-hit cost) comes to the
/// measured added time. Medians of interleaved runs.
fn modes_bench(bin: &Path, fixtures: &Path) -> Result<Vec<Value>> {
    println!();
    println!("## 7. Cost per mode (median of 3 interleaved runs; est. = map-trace's own estimate)");
    println!(
        "{:<8} {:<18} {:<34} {:>9} {:>11} {:>9} {:>10} {:>10}",
        "go", "workload", "mode", "hits", "target ms", "ratio", "added ms", "est. ms"
    );
    let mut out = vec![];
    // (Go version, fixture arguments, map-trace flags of each mode)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a [&'a str]]);
    let cases: [Case; 2] = [
        (
            "1.23.9",
            &["int", "1000000"],
            &[
                &[],
                &["--evacuation"],
                &["--evacuation", "--max-overhead", "5"],
            ],
        ),
        (
            "1.23.9",
            &["slices", "100000", "9"],
            &[&[], &["--slices"], &["--slices", "--max-overhead", "5"]],
        ),
    ];
    for (v, args, modes) in cases {
        let fx = fixture(fixtures, v);
        let mut plain = vec![];
        let mut traced: Vec<Vec<u64>> = vec![vec![]; modes.len()];
        let mut summaries: Vec<Value> = vec![Value::Null; modes.len()];
        for _ in 0..3 {
            plain.push(run_once(Command::new(&fx).args(args))?);
            for (i, flags) in modes.iter().enumerate() {
                let json = std::env::temp_dir().join("map-trace-bench-modes.json");
                traced[i].push(run_once(
                    unbudgeted(bin)
                        .args(*flags)
                        .args(["--format", "json", "-o"])
                        .arg(&json)
                        .arg("--")
                        .arg(&fx)
                        .args(args),
                )?);
                let text = fs::read_to_string(&json)?;
                summaries[i] = serde_json::from_str(text.lines().last().context("no summary")?)?;
            }
        }
        let p = median(plain);
        println!(
            "{v:<8} {:<18} {:<34} {:>9} {:>11.1} {:>9} {:>10} {:>10}",
            args.join(" "),
            "untraced",
            "-",
            p / 1e6,
            "1.00",
            "-",
            "-"
        );
        for (i, flags) in modes.iter().enumerate() {
            let t = median(traced[i].clone());
            let s = &summaries[i];
            let hits: u64 = s["probe_hits"]
                .as_object()
                .map(|o| o.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            let est = s["overhead"]["estimated_ns"].as_u64().unwrap_or(0) as f64;
            let mode = if flags.is_empty() {
                "default".to_string()
            } else {
                flags.join(" ")
            };
            println!(
                "{v:<8} {:<18} {mode:<34} {hits:>9} {:>11.1} {:>9.2} {:>10.1} {:>10.1}",
                args.join(" "),
                t / 1e6,
                t / p,
                (t - p) / 1e6,
                est / 1e6
            );
            out.push(serde_json::json!({
                "bench": "modes", "go": v, "workload": args.join(" "), "mode": mode,
                "hits": hits, "untraced_ms": p / 1e6, "traced_ms": t / 1e6, "ratio": t / p,
                "estimated_ms": est / 1e6, "body_hit_cost_ns": s["overhead"]["body_hit_cost_ns"],
                "stepped_hit_cost_ns": s["overhead"]["stepped_hit_cost_ns"],
            }));
        }
    }
    Ok(out)
}

/// Section 8: a JSON API in miniature (`requests N`: each request decodes a 12-field object
/// into `map[string]any` and builds a 10-entry header map, so two small maps grow once each),
/// in µs per request: untraced; the kernel's own empty probe on the grow function's body; its
/// empty probes at exactly the instructions map-trace's default mode probes; what a user would
/// pick instead (a bpftrace one-liner counting the grow function); and map-trace's default
/// mode. Ratios compare like with like: the instructions (bare at map-trace's sites ÷ one bare
/// body probe, added time) and the handler (map-trace ÷ bare at its sites).
fn small_maps_bench(bin: &Path, fixtures: &Path) -> Result<Vec<Value>> {
    let n: u64 = 100_000;
    let args = ["requests", "100000"];
    println!();
    println!("## 8. Small maps: a JSON API in miniature ({n} requests; µs per request, median of {ROUNDS} interleaved runs)");
    println!(
        "{:<8} {:<48} {:>10} {:>10} {:>9}",
        "go", "", "µs/req", "added µs", "ratio"
    );
    let bpftrace = which_bpftrace()?;
    let mut out = vec![];
    for v in ["1.23.9", "1.26.6"] {
        let fx = fixture(fixtures, v);
        let (start, _) = traced_json(bin, &fx, &["requests", "1"])?;
        let swiss = start["map_impl"] == "swiss";
        let (grow_fn, grow_sym) = if swiss {
            ("growToTable", "internal/runtime/maps.(*Map).growToTable")
        } else {
            ("hashGrow", "runtime.hashGrow")
        };
        let probes = start["probes"].as_array().context("probes")?.clone();
        let all: Vec<String> = probes
            .iter()
            .filter_map(|p| p["file_offset"].as_str().map(str::to_string))
            .collect();
        let body: Vec<String> = probes
            .iter()
            .filter(|p| p["function"].as_str().unwrap_or("").ends_with(grow_fn))
            .filter_map(|p| p["file_offset"].as_str().map(str::to_string))
            .take(1)
            .collect();
        let script = format!(
            "uprobe:{}:\"{grow_sym}\" {{ @grows = count(); }}",
            fx.display()
        );
        let mut rows: [Vec<u64>; 6] = Default::default();
        for _ in 0..ROUNDS {
            rows[0].push(run_once(Command::new(&fx).args(args))?);
            rows[1].push(with_bare_probes(&fx, &body, || {
                run_once(Command::new(&fx).args(args))
            })?);
            rows[2].push(with_bare_probes(&fx, &all, || {
                run_once(Command::new(&fx).args(args))
            })?);
            rows[3].push(run_once(
                Command::new(&bpftrace)
                    .arg("-e")
                    .arg(&script)
                    .arg("-c")
                    .arg(format!("{} {}", fx.display(), args.join(" "))),
            )?);
            rows[4].push(run_once(
                unbudgeted(bin)
                    .args(["-o", "/dev/null", "--"])
                    .arg(&fx)
                    .args(args),
            )?);
            rows[5].push(run_once(
                Command::new(bin)
                    .args(["-o", "/dev/null", "--"])
                    .arg(&fx)
                    .args(args),
            )?);
        }
        let us: Vec<f64> = rows
            .iter()
            .map(|r| median(r.clone()) / n as f64 / 1e3)
            .collect();
        let added = |i: usize| us[i] - us[0];
        let names = [
            "untraced".to_string(),
            format!("kernel: empty probe on {grow_fn}'s body"),
            format!("kernel: empty probes at map-trace's {} sites", all.len()),
            format!("bpftrace: count {grow_fn} (its entry)"),
            "map-trace, every event (--max-overhead 0)".to_string(),
            "map-trace default (5% budget: sheds, samples)".to_string(),
        ];
        for (i, name) in names.iter().enumerate() {
            let ratio = match i {
                2 => format!("{:.2}", added(2) / added(1)),
                4 => format!("{:.2}", added(4) / added(2)),
                _ => "-".into(),
            };
            println!(
                "{v:<8} {name:<48} {:>10.2} {:>10.2} {ratio:>9}",
                us[i],
                added(i)
            );
        }
        println!(
            "{v:<8} (ratios: sites ÷ one body probe, target ≤ {}; map-trace ÷ its sites, target ≤ 1.3)",
            if swiss { "1.5" } else { "2.5" }
        );
        out.push(serde_json::json!({
            "bench": "small_maps", "go": v, "map_impl": start["map_impl"],
            "untraced_us": us[0], "bare_body_us": us[1], "bare_sites_us": us[2],
            "bpftrace_us": us[3], "map_trace_us": us[4], "map_trace_budgeted_us": us[5],
            "sites": all.len(),
            "sites_vs_body": added(2) / added(1), "map_trace_vs_sites": added(4) / added(2),
        }));
    }
    Ok(out)
}
