//! Helpers for the privileged end-to-end tests in `tests/`: where the binaries are, running
//! processes with time limits, reading JSON-lines output and the fixture's own reports.
//!
//! `cargo xtask test` sets `MAP_TRACE_BIN`, `MAP_TRACE_FIXTURES` and `MAP_TRACE_GO_VERSIONS`.
//! The tests fail (never skip) when those are missing or when not run as root.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run these tests with `cargo xtask test`"))
}

/// The map-trace binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env("MAP_TRACE_BIN"))
}

/// Go versions the fixtures were built with.
pub fn versions() -> Vec<String> {
    env("MAP_TRACE_GO_VERSIONS")
        .split(',')
        .map(str::to_string)
        .collect()
}

/// Whether a test version uses Swiss-table maps (1.24+ unless built with noswissmap).
pub fn is_swiss(version: &str) -> bool {
    let minor: u32 = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    minor >= 24 && !version.ends_with("-noswiss")
}

/// Test versions with classic hash maps.
pub fn classic_versions() -> Vec<String> {
    versions().into_iter().filter(|v| !is_swiss(v)).collect()
}

/// Test versions with Swiss-table maps.
pub fn swiss_versions() -> Vec<String> {
    versions().into_iter().filter(|v| is_swiss(v)).collect()
}

/// What the binary's version string starts with: `go1.24.11` for `1.24.11-noswiss`.
pub fn go_prefix(version: &str) -> String {
    format!("go{}", version.trim_end_matches("-noswiss"))
}

/// The growth fixture built with Go `version`.
pub fn fixture(version: &str) -> PathBuf {
    fixture_variant(version, "")
}

/// A build variant of the growth fixture: `""`, `"-stripped"` or `"-pie"`.
pub fn fixture_variant(version: &str, suffix: &str) -> PathBuf {
    let p = PathBuf::from(env("MAP_TRACE_FIXTURES")).join(format!("go{version}/growth{suffix}"));
    assert!(p.is_file(), "missing fixture {}", p.display());
    p
}

/// Fails unless running as root (the tests attach real uprobes).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "end-to-end tests must run as root"
    );
}

/// Classic map load factor numerator for a Go version (12 in 1.21, 13 otherwise).
pub fn load_factor_num(version: &str) -> u64 {
    if version == "1.21" || version.starts_with("1.21.") {
        12
    } else {
        13
    }
}

/// Expected (B before, entries) of every grow for `n` sequential inserts into an empty map.
pub fn expected_sequential(n: u64, lfn: u64) -> Vec<(u32, u64)> {
    let mut b = 0u32;
    let mut out = vec![];
    for count in 0..n {
        let c = count + 1;
        if c > 8 && c > lfn * ((1u64 << b) >> 1) {
            out.push((b, count));
            b += 1;
        }
    }
    out
}

/// Debian's Prometheus server and promtool: `MAP_TRACE_PROMETHEUS_DIR` (set by `cargo xtask
/// test`).
pub fn prometheus_dir() -> PathBuf {
    std::env::var_os("MAP_TRACE_PROMETHEUS_DIR")
        .expect("MAP_TRACE_PROMETHEUS_DIR is not set: run with `cargo xtask test`")
        .into()
}

/// Large Go programs nobody here wrote: `MAP_TRACE_REAL_PROGRAMS` (set by `cargo xtask test`).
pub fn real_programs() -> Vec<PathBuf> {
    std::env::var("MAP_TRACE_REAL_PROGRAMS")
        .expect("MAP_TRACE_REAL_PROGRAMS is not set: run with `cargo xtask test`")
        .split(',')
        .map(PathBuf::from)
        .collect()
}

/// A temporary file path unique to this test process.
pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("map-trace-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Output of a finished process.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Waits for a child with a (generous) time limit, collecting its output.
pub fn wait(mut child: Child, limit: Duration) -> Finished {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Runs map-trace with `args` to completion.
pub fn map_trace(args: &[&str]) -> Finished {
    let mut c = cli();
    c.args(args);
    run_to_end(c)
}

/// Runs a map-trace command to completion (2 minutes at most), its output captured.
pub fn run_to_end(mut cmd: Command) -> Finished {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn map-trace");
    wait(child, Duration::from_secs(120))
}

/// The map-trace CLI with `--runtime-maps`: the tests that compare counts with the kernel's
/// own probes, or count every hit, need the runtime's own maps too. Tests of the default
/// (runtime maps hidden) use `Command::new(bin())`.
pub fn cli() -> Command {
    let mut c = Command::new(bin());
    // Exact counts: no overhead budget (the default, 5%, would shed and sample on the busier
    // fixtures); the budget's own tests pass `--max-overhead`, which overrides this.
    c.args(["--runtime-maps", "--max-overhead", "0"]);
    c
}

/// Starts the CLI (with `--runtime-maps`) with `args` and waits until its probes are live;
/// returns the child and its stderr lines.
pub fn spawn_attached(args: &[&str]) -> (Child, Lines) {
    let mut c = cli()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::new(c.stderr.take().unwrap());
    lines.wait_for("map-trace: attached", Duration::from_secs(60));
    (c, lines)
}

/// Attaches the CLI (see [`cli`]) to the running process `pid` with `args`, and waits until
/// its probes are live; returns the child and its stdout and stderr lines, read as they come
/// (a full pipe would stall its collector, and with it the map samples).
pub fn attach_to(pid: u32, args: &[&str]) -> (Child, Lines, Lines) {
    let pid = pid.to_string();
    let all: Vec<&str> = ["--pid", pid.as_str()]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    let (mut c, err) = spawn_attached(&all);
    let out = Lines::new(c.stdout.take().unwrap());
    (c, out, err)
}

/// Parses JSON lines.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// `(map pointer, goid)` pairs the fixture printed on stderr.
pub fn fixture_maps(stderr: &str) -> Vec<(String, u64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "mapptr").then_some(())?;
            let ptr = w.next()?.to_string();
            (w.next()? == "goid").then_some(())?;
            Some((ptr, w.next()?.parse().ok()?))
        })
        .collect()
}

/// The `map_grow` records for one map.
pub fn grows_of<'a>(events: &'a [Value], map: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == "map_grow" && of_fixture_map(e, map))
        .collect()
}

/// Whether event `e` belongs to the fixture's map at address `map`: the address, and a call
/// site in the fixture's own code. A map of the runtime or the standard library can hold the
/// same address earlier in the run (freed, then reused), and has another site.
pub fn of_fixture_map(e: &Value, map: &str) -> bool {
    e["map"] == map
        && e["site"]["function"]
            .as_str()
            .is_none_or(|f| f.starts_with("main."))
}

/// A line-reader over a child's stderr that can wait for a line with a prefix.
pub struct Lines {
    rx: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    /// Reads `r` on a thread.
    pub fn new(r: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { rx, seen: vec![] }
    }

    /// Waits until a line starting with `prefix` arrives.
    pub fn wait_for(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?} within {limit:?}; saw {:?}",
                    self.seen
                ),
            }
        }
    }

    /// The lines that arrived since the last call, without waiting (kept in `seen` too).
    pub fn arrived(&mut self) -> Vec<String> {
        let mut v = vec![];
        while let Ok(l) = self.rx.try_recv() {
            self.seen.push(l.clone());
            v.push(l);
        }
        v
    }

    /// The lines seen so far plus those already arrived, without waiting.
    pub fn now(&mut self) -> &[String] {
        while let Ok(l) = self.rx.try_recv() {
            self.seen.push(l);
        }
        &self.seen
    }

    /// Everything until the stream closes.
    pub fn rest(mut self) -> Vec<String> {
        while let Ok(l) = self.rx.recv_timeout(Duration::from_secs(60)) {
            self.seen.push(l);
        }
        self.seen
    }
}

/// A temporary file `PREFIX-N.EXT` no other call of this process gets (tests run in parallel).
pub fn temp_unique(prefix: &str, ext: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    temp(&format!(
        "{prefix}-{}.{ext}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// Runs `f` with a kernel uprobe (`uprobe_events`) defined by `probe` (`PATH:OFFSET FETCHARGS`)
/// enabled as `GROUP/NAME`, and returns `f`'s result and the lines the kernel traced for
/// process `pid_of(&result)`, each as its `name=value` fields.
pub fn with_kernel_probe<T>(
    group: &str,
    name: &str,
    probe: &str,
    f: impl FnOnce() -> T,
    pid_of: impl Fn(&T) -> u64,
) -> (T, Vec<std::collections::BTreeMap<String, u64>>) {
    use std::{fs, io::Write, os::unix::fs::OpenOptionsExt};
    // tracefs in a mount namespace of its own: nothing is mounted on the shared /sys.
    let ns = PrivateTracefs::new();
    let tracefs = ns.dir();
    let append = |text: &str| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_APPEND)
            .open(tracefs.join("uprobe_events"))
            .unwrap();
        f.write_all(text.as_bytes())
    };
    let enable = tracefs.join(format!("events/{group}/{name}/enable"));
    let _ = fs::write(&enable, "0");
    let _ = append(&format!("-:{group}/{name}\n"));
    fs::write(tracefs.join("trace"), "").unwrap();
    let opt = tracefs.join("options/record-tgid");
    let previous = fs::read_to_string(&opt).unwrap_or_else(|_| "0".into());
    fs::write(&opt, "1").unwrap();
    append(&format!("p:{group}/{name} {probe}\n")).expect("writing uprobe_events");
    fs::write(&enable, "1").unwrap();
    let result = f();
    fs::write(&enable, "0").unwrap();
    let trace = fs::read_to_string(tracefs.join("trace")).unwrap();
    append(&format!("-:{group}/{name}\n")).unwrap();
    fs::write(&opt, previous.trim()).unwrap();
    let pid = pid_of(&result);
    let marker = format!(" {name}: ");
    let lines = trace
        .lines()
        .filter(|l| l.contains(&marker))
        .filter(|l| {
            let open = l.find('(');
            let close = open.and_then(|o| l[o..].find(')').map(|c| o + c));
            matches!((open, close), (Some(o), Some(c)) if l[o + 1..c].trim().parse::<u64>().ok() == Some(pid))
        })
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .filter_map(|(k, v)| {
                    let n = match v.strip_prefix("0x") {
                        Some(h) => u64::from_str_radix(h, 16).ok()?,
                        None => v.parse().ok()?,
                    };
                    Some((k.to_string(), n))
                })
                .collect()
        })
        .collect();
    (result, lines)
}

/// Parses a `"0x…"` JSON string.
pub fn hex_field(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// Runs map-trace with `flags`, JSON to a temporary file, on `exe args` (launch mode); returns
/// the records and how map-trace finished.
pub fn trace_json(exe: &std::path::Path, flags: &[&str], args: &[&str]) -> (Vec<Value>, Finished) {
    let out = temp_unique("trace", "json");
    let mut argv: Vec<&str> = flags.to_vec();
    argv.extend([
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
        "--",
        exe.to_str().unwrap(),
    ]);
    argv.extend_from_slice(args);
    let f = map_trace(&argv);
    let events = json_lines(&std::fs::read_to_string(&out).unwrap_or_default());
    (events, f)
}

/// The file offset map-trace probes for the first probe of `function` (by name suffix) whose
/// offset in the function is below `max_offset` (the body probe, not a RET).
pub fn probe_offset(start: &Value, function: &str, max_offset: u64) -> String {
    start["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["function"].as_str().unwrap().ends_with(function)
                && p["offset"].as_u64().unwrap() < max_offset
        })
        .unwrap_or_else(|| panic!("no probe on {function}: {start}"))["file_offset"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A growth fixture started with `-wait -hold`: it has printed "ready" and waits for a line on
/// stdin before working, and another before exiting.
pub struct Waiting {
    child: Child,
    stdin: std::process::ChildStdin,
    stderr: Lines,
}

/// Starts `exe -wait -hold args` and waits until it is ready.
pub fn start_waiting(exe: &std::path::Path, args: &[&str]) -> Waiting {
    let mut cmd = Command::new(exe);
    cmd.args(["-wait", "-hold"]).args(args);
    start_waiting_cmd(cmd)
}

/// Starts `exe -wait MODE 64` (`race`, `iterrace`: it crashes once released) and waits until
/// it is ready.
pub fn start_crashing(exe: &std::path::Path, mode: &str) -> Waiting {
    let mut cmd = Command::new(exe);
    cmd.args(["-wait", mode, "64"]);
    start_waiting_cmd(cmd)
}

/// Starts a prepared command that ends up running a fixture with `-wait -hold`.
pub fn start_waiting_cmd(mut cmd: Command) -> Waiting {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut stderr = Lines::new(child.stderr.take().unwrap());
    stderr.wait_for("ready", Duration::from_secs(30));
    Waiting {
        child,
        stdin,
        stderr,
    }
}

/// A copy of the fixture of `version` whose build information claims Go `fake` (same
/// length), to exercise version checks.
pub fn fixture_with_version(version: &str, fake: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(format!("go{version}").len(), fake.len());
    let mut data = std::fs::read(fixture(version)).unwrap();
    let magic = b"\xff Go buildinf:";
    let at = data.windows(magic.len()).position(|w| w == magic).unwrap();
    let needle = format!("go{version}");
    let rel = data[at..]
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap();
    data[at + rel..at + rel + fake.len()].copy_from_slice(fake.as_bytes());
    let p = temp(&format!("fake-{fake}"));
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

impl Waiting {
    /// The fixture's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Lets it work and waits until it has (it then holds until [`Waiting::exit`]).
    pub fn work(&mut self) {
        use std::io::Write;
        writeln!(self.stdin, "go").unwrap();
        self.stderr.wait_for("done", Duration::from_secs(60));
    }

    /// Writes `line` to its stdin and waits for a stderr line starting with `prefix`.
    pub fn step(&mut self, line: &str, prefix: &str) -> String {
        use std::io::Write;
        writeln!(self.stdin, "{line}").unwrap();
        self.stderr.wait_for(prefix, Duration::from_secs(60))
    }

    /// The stderr lines it printed so far.
    pub fn stderr_seen(&self) -> &[String] {
        &self.stderr.seen
    }

    /// Lets a fixture that has worked exit.
    pub fn exit(mut self) -> Finished {
        use std::io::Write;
        writeln!(self.stdin, "exit").unwrap();
        wait(self.child, Duration::from_secs(60))
    }

    /// Writes `line` to its stdin, then waits for it to end on its own (a fixture that
    /// crashes); returns how it finished and every stderr line it printed.
    pub fn release_until_exit(mut self, line: &str) -> (Finished, Vec<String>) {
        use std::io::Write;
        writeln!(self.stdin, "{line}").unwrap();
        drop(self.stdin);
        let f = wait(self.child, Duration::from_secs(60));
        (f, self.stderr.rest())
    }

    /// Lets it work, then exit; returns how it finished and the maps it reported.
    pub fn finish(mut self) -> (Finished, Vec<(String, u64)>) {
        use std::io::Write;
        writeln!(self.stdin, "go").unwrap();
        self.stderr.wait_for("done", Duration::from_secs(60));
        writeln!(self.stdin, "exit").unwrap();
        let f = wait(self.child, Duration::from_secs(60));
        (f, fixture_maps(&self.stderr.seen.join("\n")))
    }
}

/// The summary record's entry for `map`.
pub fn summary_map<'a>(events: &'a [Value], map: &str) -> &'a Value {
    events
        .last()
        .and_then(|s| s["maps"].as_array())
        .and_then(|maps| maps.iter().find(|m| m["map"] == map))
        .unwrap_or_else(|| panic!("no summary entry for {map}"))
}

/// `GET path` from an HTTP server on 127.0.0.1:`port`; `None` if it does not answer 200.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the exposition sample `name{…}` whose labels include every `label="value"`
/// pair given (0 if absent).
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `map-trace agent` running on a free port, stopped with SIGTERM on drop.
pub struct Agent {
    /// The agent process.
    pub child: Option<Child>,
    /// Its metrics port.
    pub port: u16,
    /// Its stderr lines.
    pub stderr: Option<Lines>,
}

impl Agent {
    /// Starts the agent with `args` and waits until it serves metrics. It runs as on a fresh
    /// host: in a mount namespace without tracefs or debugfs, which it must not mount, and it
    /// must say it takes exec notifications from the raw tracepoint.
    pub fn start(args: &[&str]) -> Agent {
        Self::start_with_stdout(args, Stdio::null())
    }

    /// [`Agent::start`] with its stdout going to `stdout` (a pipe left in
    /// [`Agent::child`] is never read unless the test reads it).
    pub fn start_with_stdout(args: &[&str], stdout: Stdio) -> Agent {
        let port = free_port();
        let mut cmd = Command::new(bin());
        // Exact counts: no overhead budget (the default, 1% per executable, would sample the
        // busier fixtures); the budget's own tests pass `--max-overhead`, which overrides this.
        cmd.arg("agent")
            .args(["--max-overhead", "0"])
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .stdout(stdout)
            .stderr(Stdio::piped());
        without_tracefs(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let mut stderr = Lines::new(child.stderr.take().unwrap());
        stderr.wait_for("map-trace agent: serving", Duration::from_secs(30));
        assert!(http_get(port, "/healthz").is_some(), "agent not ready");
        assert!(
            stderr.seen.iter().any(|l| l
                == "map-trace agent: exec notifications from the raw tracepoint sched_process_exec (no tracefs needed)"),
            "the agent did not name its exec attach method: {:?}",
            stderr.seen
        );
        let mounts = trace_mounts_of(child.id());
        assert!(
            mounts.is_empty(),
            "tracefs or debugfs in the agent's mount namespace: {mounts:?}"
        );
        Agent {
            child: Some(child),
            port,
            stderr: Some(stderr),
        }
    }

    /// The current exposition.
    pub fn metrics(&self) -> String {
        http_get(self.port, "/metrics").expect("metrics endpoint")
    }

    /// Polls the metrics until `pred` holds (panics after `limit`); returns the time it took.
    pub fn wait_until(&self, limit: Duration, what: &str, pred: impl Fn(&str) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let m = self.metrics();
            if pred(&m) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}:\n{m}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits; returns how it finished and how long the exit took.
    pub fn stop(mut self) -> (Finished, Duration) {
        let child = self.child.take().unwrap();
        let start = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let mut f = wait(child, Duration::from_secs(30));
        let took = start.elapsed();
        if let Some(lines) = self.stderr.take() {
            f.stderr = lines.rest().join("\n");
        }
        (f, took)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Makes the child, between fork and exec, the only process of a new mount namespace (mounts
/// private, so nothing it mounts or unmounts reaches the host's) in which `unmount` are
/// unmounted and `tracefs` (if `Some`) has tracefs mounted; the child dies with the test.
fn in_private_mounts(cmd: &mut Command, unmount: &[&str], tracefs: Option<&str>) {
    use std::{ffi::CString, os::unix::process::CommandExt};
    let unmount: Vec<CString> = unmount.iter().map(|p| CString::new(*p).unwrap()).collect();
    let tracefs = tracefs.map(|p| CString::new(p).unwrap());
    let (root, fstype, none) = (
        CString::new("/").unwrap(),
        CString::new("tracefs").unwrap(),
        CString::new("none").unwrap(),
    );
    // SAFETY: the closure runs in the forked child before exec and makes only system calls
    // (async-signal-safe) on C strings allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::mount(
                none.as_ptr(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // Deepest first: /sys/kernel/debug/tracing before /sys/kernel/debug.
            for p in &unmount {
                while libc::umount2(p.as_ptr(), libc::MNT_DETACH) == 0 {}
            }
            if let Some(t) = &tracefs {
                if libc::mount(
                    none.as_ptr(),
                    t.as_ptr(),
                    fstype.as_ptr(),
                    0,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Where tracefs and debugfs are mounted on a usual host.
pub const TRACE_MOUNTS: [&str; 3] = [
    "/sys/kernel/debug/tracing",
    "/sys/kernel/tracing",
    "/sys/kernel/debug",
];

/// Makes `cmd` run in a mount namespace of its own without tracefs or debugfs, as on a fresh
/// or minimal host (or a container that sees only `/sys`).
pub fn without_tracefs(cmd: &mut Command) {
    in_private_mounts(cmd, &TRACE_MOUNTS, None);
}

/// The mount points of tracefs and debugfs that process `pid` sees (its `mountinfo`).
pub fn trace_mounts_of(pid: u32) -> Vec<String> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    info.lines()
        .filter(|l| {
            let fstype = l
                .split(" - ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next());
            matches!(fstype, Some("tracefs" | "debugfs"))
        })
        .map(str::to_string)
        .collect()
}

/// tracefs mounted in a private mount namespace, held by a sleeping process: its files are
/// reached through `/proc/PID/root`, and the mount is gone with the process (on drop, or when
/// the test dies). The shared `/sys` is never touched.
pub struct PrivateTracefs {
    holder: Child,
}

impl PrivateTracefs {
    /// Mounts it.
    pub fn new() -> Self {
        let mut cmd = Command::new("sleep");
        cmd.arg("3600").stdin(Stdio::null());
        in_private_mounts(&mut cmd, &[], Some("/sys/kernel/tracing"));
        let holder = cmd.spawn().expect("tracefs in a private mount namespace");
        let t = Self { holder };
        assert!(
            t.dir().join("uprobe_events").exists(),
            "tracefs not mounted in the private namespace"
        );
        t
    }

    /// The tracefs directory, as this process reaches it.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root/sys/kernel/tracing",
            self.holder.id()
        ))
    }
}

impl Default for PrivateTracefs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PrivateTracefs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The line of the growth fixture's `crash.go` that carries the marker comment
/// `// crash: WHAT` (`write`, `iterate`).
pub fn crash_line(what: &str) -> u32 {
    let src = include_str!("../../fixtures/go/growth/crash.go");
    let marker = format!("// crash: {what}");
    src.lines()
        .position(|l| l.trim_end().ends_with(&marker))
        .expect("the marker in crash.go") as u32
        + 1
}

/// The line of `m[i] = i` in the growth fixture's fillInt, where its map grows.
pub fn fill_int_line() -> u32 {
    let src = include_str!("../../fixtures/go/growth/main.go");
    let start = src.find("func fillInt(").expect("fillInt in the fixture");
    let line_in = src[start..]
        .find("m[i] = i")
        .expect("the insert in fillInt");
    src[..start + line_in].lines().count() as u32
}

// pprof profiles (`--pprof`, the agent's /debug/pprof/mapgrowth), as `go tool pprof` reads them.

/// Values in the profile's sample-type order.
pub type Values = [i64; 4];

/// (logical stack, innermost first, as `function` names; kind; map_type) → values.
pub type Samples = std::collections::BTreeMap<(Vec<String>, String, String), Values>;

/// The go command of the newest toolchain the tests have (its `go tool pprof`).
pub fn go_command() -> std::path::PathBuf {
    real_programs()
        .last()
        .expect("MAP_TRACE_REAL_PROGRAMS")
        .clone()
}

/// `go tool pprof -raw FILE`: the sample types, and the samples with their stacks expanded
/// from the locations (a location's lines, innermost first).
pub fn pprof_raw(file: &std::path::Path) -> (Vec<String>, Samples, String) {
    let out = Command::new(go_command())
        .args(["tool", "pprof", "-raw"])
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines().peekable();
    for l in lines.by_ref() {
        if l == "Samples:" {
            break;
        }
    }
    let types: Vec<String> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|t| t.trim_end_matches("[dflt]").to_string())
        .collect();
    // Samples: "  v v v v: loc loc …" then a labels line.
    let mut raw: Vec<(Values, Vec<u64>, String, String)> = vec![];
    while let Some(l) = lines.next() {
        if l.starts_with("Locations") {
            break;
        }
        let Some((values, locs)) = l.split_once(':') else {
            continue;
        };
        let v: Vec<i64> = values
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let locs: Vec<u64> = locs
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let labels = lines.next().unwrap().trim();
        // "kind:[K] map_type:[T]" (keys sorted; a type may hold brackets and spaces).
        let kind = labels
            .strip_prefix("kind:[")
            .and_then(|r| r.split_once(']'))
            .unwrap()
            .0
            .to_string();
        let t = labels
            .split_once(" map_type:[")
            .unwrap()
            .1
            .strip_suffix(']')
            .unwrap()
            .to_string();
        raw.push((v.try_into().unwrap(), locs, kind, t));
    }
    // Locations: "  N: 0x0 M=1 FUNCTION FILE:LINE:COL s=S", inlined lines continued below.
    let mut locations: std::collections::BTreeMap<u64, Vec<String>> =
        std::collections::BTreeMap::new();
    let mut current = 0;
    for l in lines.by_ref() {
        if l.starts_with("Mappings") {
            break;
        }
        let t = l.trim();
        let rest = match t.split_once(": 0x") {
            Some((id, rest)) if id.chars().all(|c| c.is_ascii_digit()) => {
                current = id.parse().unwrap();
                rest.split_once(' ').unwrap().1.split_once(' ').unwrap().1
            }
            _ => t,
        };
        // Drop " s=N", then the last word (FILE:LINE:COL): the rest is the function.
        let rest = rest.rsplit_once(" s=").map_or(rest, |r| r.0);
        let function = rest.rsplit_once(' ').unwrap().0;
        locations
            .entry(current)
            .or_default()
            .push(function.to_string());
    }
    let mapping: String = lines.collect::<Vec<_>>().join("\n");
    let mut samples = Samples::new();
    for (v, locs, kind, t) in raw {
        let stack: Vec<String> = locs.iter().flat_map(|id| locations[id].clone()).collect();
        let e = samples.entry((stack, kind, t)).or_insert([0; 4]);
        for (a, b) in e.iter_mut().zip(v) {
            *a += b;
        }
    }
    (types, samples, mapping)
}

/// The same sums from the run's JSON events.
pub fn from_json(events: &[Value]) -> Samples {
    let names = |e: &Value| -> Vec<String> {
        e["stack"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|f| f["function"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let ty = |e: &Value| e["type"].as_str().unwrap_or("unknown").to_string();
    let mut samples = Samples::new();
    let mut add = |key: (Vec<String>, String, String), v: Values| {
        let e = samples.entry(key).or_insert([0; 4]);
        for (a, b) in e.iter_mut().zip(v) {
            *a += b;
        }
    };
    // A hash-bucket growth's span goes to the stack of the grow that started it.
    let mut grow_of: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for e in events {
        let n = |k: &str| e[k].as_i64().unwrap_or(0);
        let kind = match e["event"].as_str().unwrap_or("") {
            "map_grow" => {
                grow_of.insert(e["map"].as_str().unwrap().into(), names(e));
                let k = if e["same_size"] == true {
                    "same_size"
                } else {
                    "double"
                };
                add((names(e), k.into(), ty(e)), [1, n("bytes_allocated"), 0, 0]);
                continue;
            }
            "map_evacuated" => {
                if let Some(d) = e["duration_ns"].as_i64() {
                    let stack = grow_of
                        .get(e["map"].as_str().unwrap())
                        .cloned()
                        .unwrap_or_default();
                    add((stack, "growth_end".into(), ty(e)), [0, 0, 0, d]);
                }
                continue;
            }
            "map_small_to_table" => "small_to_table",
            "map_table_grow" => "table_grow",
            "map_table_split" => "table_split",
            "map_small_alloc" => "small_alloc",
            _ => continue,
        };
        add(
            (names(e), kind.into(), ty(e)),
            [1, n("bytes_allocated"), n("duration_ns"), 0],
        );
    }
    samples
}

pub fn totals(s: &Samples) -> Values {
    s.values().fold([0; 4], |mut t, v| {
        for (a, b) in t.iter_mut().zip(v) {
            *a += b;
        }
        t
    })
}
