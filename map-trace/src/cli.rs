//! Command-line arguments (clap). Validation only; no I/O.

use std::{path::PathBuf, time::Duration};

#[cfg(test)]
use clap::CommandFactory;
use clap::{Parser, ValueEnum};

/// Output format for events and the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per event (80 columns), then the summary: call sites with presize hints, and a timeline of the busiest maps.
    Text,
    /// JSON lines: a `start` record, one record per event, a `summary` record.
    Json,
}

/// When the text output uses colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// When standard output is a terminal and `NO_COLOR` is unset or empty.
    Auto,
    /// Always (also into `--output` files and pipes).
    Always,
    /// Never.
    Never,
}

/// Trace Go map growth with eBPF uprobes.
///
/// Attach to a running Go process with `--pid`, or launch one after `--` and trace it from its
/// first instruction. `map-trace agent` traces every Go process on the host and exports
/// Prometheus metrics; `map-trace replay FILE` replays a recording. Exit codes: 0 success
/// (launch mode: the child's status), 1 internal error, 2 bad target or usage, 3 unsupported Go
/// version or kernel feature, 4 missing privileges.
#[derive(Debug, Parser)]
#[command(name = "map-trace", version, about, long_about = None)]
// A flag given twice takes its last value (`--max-overhead 0` after a wrapper's default).
#[command(args_override_self = true)]
// `map-trace --pid 1 agent` is a usage error, not a trace of pid 1; after `--` every word is
// the command to launch, so `map-trace -- agent` launches a program named `agent`.
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
#[command(propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok (launch mode: the child's exit status), 1 internal \
error, 2 bad target or usage, 3 unsupported (Go version, kernel feature), 4 missing privileges."
)]
pub struct Cli {
    /// A mode other than tracing one process.
    #[command(subcommand)]
    pub mode: Option<Mode>,

    /// Tracing one process (no subcommand).
    #[command(flatten)]
    pub trace: Args,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Mode {
    /// Trace every Go process on this host and export Prometheus metrics.
    Agent(AgentArgs),
    /// Feed a recording (`--record FILE`) through the outputs again.
    Replay(ReplayArgs),
}

/// `map-trace [--pid PID | -- COMMAND]`: trace one process.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trace this running process.
    #[arg(short, long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,

    /// Where and how the events and the summary are written.
    #[command(flatten)]
    pub out: OutputArgs,

    /// Also record the raw stream to FILE as it is traced (JSON lines: the run's settings, every
    /// ring-buffer record in arrival order, the call sites and types it resolved, the end), for
    /// `map-trace replay FILE` on any machine, without the traced executable.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Stop tracing after this long: `30s`, `2m`, `1h`, `500ms` or plain seconds.
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Size of the BPF ring buffer in KiB (rounded up to a power of two pages). The default
    /// holds ~33,000 map events of full default-depth stacks: bursts of resizes from
    /// thousands of goroutines fit while the reader symbolizes call sites.
    #[arg(long, value_name = "KIB", default_value_t = 8192)]
    pub ring_buffer_size: u32,

    /// Return addresses read per event (1–64): each frame is one 16-byte read of the
    /// goroutine's stack at the probe, and 8 bytes of the event's record.
    #[arg(long, value_name = "N", default_value_t = map_trace_common::event::DEFAULT_STACK_DEPTH,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub stack_depth: u32,

    /// Also report every new Swiss map's first allocation (`growToSmall`). Costs one probe hit
    /// (~14 µs on the reference VM, ~1 µs on bare metal) per map that receives its first key,
    /// which can be hundreds of thousands per second in some programs. Swiss maps only.
    #[arg(long)]
    pub small_maps: bool,

    /// Also trace slice growth (`runtime.growslice`, the runtime half of `append`). Every call
    /// traps twice (entry and return: ~2 µs on bare metal, ~12 µs on the reference VM), so an
    /// append-heavy program slows down noticeably; see the README's overhead table.
    #[arg(long)]
    pub slices: bool,

    /// With --slices: report only growths whose new backing array is at least BYTES. Only trims
    /// the output: every growslice call still traps.
    #[arg(long, value_name = "BYTES", default_value_t = 0, requires = "slices")]
    pub min_bytes: u64,

    /// Also report every step of classic-map growth: each `runtime.evacuate` call (which
    /// goroutine moved which old bucket, and how long it took) as `map_evacuate_step`. Every call
    /// traps twice; a map growing to N entries makes about N/3 such calls in total (~360,000 for
    /// 1M inserts). Classic maps only (Go ≤ 1.23, or 1.24/1.25 built with noswissmap).
    #[arg(long)]
    pub evacuation: bool,

    /// Keep the probes' estimated cost within PERCENT of the target's CPU time, checked every
    /// 250 ms: detach an opt-in family (--slices, --evacuation, --small-maps) over it; when the
    /// default probes alone are over, shed the Swiss resize timing, then the growth-end probe
    /// (the events keep coming, untimed or with inferred ends), then sample the map event
    /// probes (attached for a window at a time; counts are scaled and marked as sampled). The
    /// cost of one probe hit is measured at start-up. Every output says what was detached and
    /// when. 0 turns the budget off: every event, whatever it costs.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value = "5",
        value_parser = parse_budget
    )]
    pub max_overhead: f64,

    /// Also report maps the Go runtime grows for itself (no stack frame outside the runtime).
    /// Hidden by default; the summary counts what was hidden.
    #[arg(long)]
    pub runtime_maps: bool,

    /// How often the tracked maps are sampled: their live entries, storage and retained bytes,
    /// read from the target's memory (process_vm_readv; the target is never stopped), and only
    /// while the runtime's heap metadata says each header is a live object.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub sample_interval: Duration,

    /// Most maps sampled per interval, largest storage first.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_sampled_maps: usize,

    /// Do not sample the tracked maps (no map_sample records, no LIVE/STORAGE/RETAINED).
    #[arg(long)]
    pub no_sampling: bool,

    /// With --pid: for this long after attaching, probe the map access functions (reads,
    /// writes, deletes, iteration, clear) to find the maps the program uses that grew before
    /// map-trace attached, and sample them too. Each access costs one probe hit; the
    /// --max-overhead budget ends the window early when that is too much. 0 turns it off.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration_or_off)]
    pub discover: Duration,

    /// "Kept after deletes": a map's storage is at least RATIO times what its entries need…
    #[arg(long, value_name = "RATIO", default_value_t = 4)]
    pub kept_ratio: u64,

    /// …and at least BYTES…
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub kept_min_bytes: u64,

    /// …for N samples in a row.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub kept_samples: u32,

    /// Program to launch and trace, with its arguments (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `map-trace agent`: trace every Go process on this host and export Prometheus metrics.
///
/// Finds Go processes in /proc (containers included, through /proc/PID/root and
/// /proc/PID/exe), attaches one set of probes per executable file, notices new processes by an
/// exec tracepoint, and serves metrics at http://ADDR/metrics. Runs until SIGTERM or SIGINT,
/// then detaches everything and exits 0. Needs Linux 5.15 (BPF attach cookies).
#[derive(Debug, clap::Args)]
#[command(about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 stopped by a signal, 1 internal error, 2 bad usage (e.g. the metrics address cannot be bound), 3 unsupported kernel, 4 missing privileges."
)]
pub struct AgentArgs {
    /// Address for the Prometheus endpoint. The default is loopback only; binding to all
    /// interfaces (0.0.0.0:9464) is an explicit choice.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: std::net::SocketAddr,

    /// Also write every event as a JSON line (the CLI's schema) to FILE, or `-` for stdout.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,

    /// Trace only executables whose file name matches this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,

    /// Never trace executables whose file name matches this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,

    /// Trace only processes whose cgroup path contains this string (repeatable).
    #[arg(long, value_name = "SUBSTRING")]
    pub cgroup: Vec<String>,

    /// Never trace processes whose cgroup path contains this string (repeatable).
    #[arg(long, value_name = "SUBSTRING")]
    pub exclude_cgroup: Vec<String>,

    /// Trace only processes in containers whose id starts with this prefix (repeatable).
    #[arg(long, value_name = "ID")]
    pub container: Vec<String>,

    /// Most executable files traced at once; further ones are logged and counted.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_executables: usize,

    /// Distinct call-site label values per executable; later sites count as `site="other"`.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_sites: usize,

    /// Seconds between full /proc rescans (a safety net; new processes are found by the exec
    /// tracepoint within milliseconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub rescan_interval: u64,

    /// Size of the BPF ring buffer in KiB.
    #[arg(long, value_name = "KIB", default_value_t = 4096)]
    pub ring_buffer_size: u32,

    /// Return addresses read per event (1–64); the sites need the first user frame only.
    #[arg(long, value_name = "N", default_value_t = map_trace_common::event::AGENT_STACK_DEPTH,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub stack_depth: u32,

    /// How far back `GET /debug/pprof/mapgrowth?seconds=N` can look (N at most this).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub profile_window: Duration,

    /// Distinct stacks per executable that window keeps; the events of more are dropped and
    /// counted (`map_trace_profile_samples_dropped_total`).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub max_profile_stacks: usize,

    /// Most of each executable's CPU time, in percent, its probes may take: over it the
    /// resize timing is shed first, then the event probes are duty-cycled and their counts
    /// scaled (`map_trace_probe_duty_ratio` says so). 0 turns the budget off.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 1.0,
        overrides_with = "max_overhead"
    )]
    pub max_overhead: f64,

    /// How often the maps each traced process grew are sampled (live entries, storage and
    /// retained bytes, read with process_vm_readv; the targets are never stopped), for the
    /// map_trace_map_entries, map_trace_map_storage_bytes and map_trace_map_retained_bytes
    /// gauges.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub sample_interval: Duration,

    /// Most maps sampled per executable and interval, largest storage first.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub max_sampled_maps: usize,

    /// Do not sample maps (no map_trace_map_entries, _storage_bytes, _retained_bytes).
    #[arg(long)]
    pub no_sampling: bool,
}

impl AgentArgs {
    /// The per-executable budget in percent, `None` when off.
    pub fn budget(&self) -> Option<f64> {
        (self.max_overhead > 0.0).then_some(self.max_overhead)
    }
}

/// `map-trace replay`: feed a recording (`--record FILE`) through the outputs again.
///
/// Produces what the live run produced (text or JSON, `--trace-out`, `--report`), with its
/// times and counts: everything comes from the recording, nothing from this machine.
#[derive(Debug, clap::Args)]
#[command(about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 ok, 1 internal error (e.g. an output cannot be written), 2 bad \
usage or a recording that cannot be read (one line says where)."
)]
pub struct ReplayArgs {
    /// A recording written by `map-trace --record FILE`, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub recording: PathBuf,

    /// Where and how the events and the summary are written (as in a live run).
    #[command(flatten)]
    pub out: OutputArgs,
}

/// The outputs a live run and a replay share.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Colour the text output: `auto` colours only a terminal, and honours `NO_COLOR`.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Color::Auto)]
    pub color: Color,

    /// Write events and the summary to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write a Perfetto/Chrome trace (trace-event JSON: a track per goroutine, resize
    /// slices, map-size counters) to FILE; open it in ui.perfetto.dev.
    #[arg(long, value_name = "FILE")]
    pub trace_out: Option<PathBuf>,

    /// Also write a self-contained HTML report (call sites, a chart per map, slices) to FILE
    /// when tracing ends; it opens in any browser without network access.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Also write the map events as a pprof profile (gzipped profile.proto: resizes, bytes,
    /// resize time, growth span, by stack, map type and kind) to FILE when tracing ends; read
    /// it with `go tool pprof`.
    #[arg(long, value_name = "FILE")]
    pub pprof: Option<PathBuf>,
}

/// Parses `30s`, `2m`, `1h`, `250ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 2m or 10"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration where 0 means "off" (`--discover 0`).
fn parse_duration_or_off(s: &str) -> Result<Duration, String> {
    match s.trim().trim_end_matches(['s', 'm', 'h']) {
        "0" | "0.0" => Ok(Duration::ZERO),
        _ => parse_duration(s),
    }
}

/// A percentage, 0 (no budget) to 100.
fn parse_budget(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} must be from 0 (no budget) to 100"))
    }
}

impl Args {
    /// The overhead budget in percent, `None` when turned off (`--max-overhead 0`).
    pub fn budget(&self) -> Option<f64> {
        (self.max_overhead > 0.0).then_some(self.max_overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("map-trace").chain(argv.iter().copied()))
    }

    fn trace(argv: &[&str]) -> Result<Args, clap::Error> {
        let cli = parse(argv)?;
        assert!(cli.mode.is_none(), "{argv:?} parsed as a subcommand");
        Ok(cli.trace)
    }

    fn agent(argv: &[&str]) -> Result<AgentArgs, clap::Error> {
        match parse(argv)?.mode {
            Some(Mode::Agent(a)) => Ok(a),
            other => panic!("{argv:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn test_subcommands_and_the_command_after_double_dash() {
        // A program named like a subcommand is launched when it follows `--`.
        let a = trace(&["--", "agent", "--metrics-addr", "x"]).unwrap();
        assert_eq!(a.command, vec!["agent", "--metrics-addr", "x"]);
        let a = trace(&["--format", "json", "--", "replay"]).unwrap();
        assert_eq!(a.command, vec!["replay"]);
        assert!(matches!(
            parse(&["agent"]).unwrap().mode,
            Some(Mode::Agent(_))
        ));
        // Flags of one mode are usage errors (exit 2) in another.
        for bad in [
            &["--pid", "1", "agent"][..],
            &["agent", "--pid", "1"],
            &["replay", "r", "--slices"],
            &["--metrics-addr", "127.0.0.1:1"],
            &["--no-such-flag"],
            &["--pid", "x"],
        ] {
            let e = parse(bad).expect_err(&format!("{bad:?} accepted"));
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
        // Help lists the modes; each has its own.
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("agent") && help.contains("replay"), "{help}");
        let mut cmd = Cli::command();
        let agent = cmd.find_subcommand_mut("agent").unwrap();
        assert!(agent.render_help().to_string().contains("--metrics-addr"));
    }

    #[test]
    fn test_parse_duration_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
    }

    #[test]
    fn test_parse_duration_rejects_garbage() {
        for bad in ["", "s", "10x", "-3s", "0", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        // --discover 0 (or 0s) turns the window off; the rest parse as durations.
        assert_eq!(parse_duration_or_off("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_off("0s"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration_or_off("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert!(parse_duration_or_off("-1").is_err());
    }

    #[test]
    fn test_agent_args_defaults() {
        let a = agent(&["agent"]).unwrap();
        assert_eq!(a.metrics_addr.to_string(), "127.0.0.1:9464");
        assert_eq!(a.max_sites, 20);
        let a = agent(&[
            "agent",
            "--metrics-addr",
            "0.0.0.0:9000",
            "--include",
            "api*",
            "--include",
            "web",
        ])
        .unwrap();
        assert_eq!(a.include, vec!["api*", "web"]);
        assert!(agent(&["agent", "--metrics-addr", "nope"]).is_err());
    }

    #[test]
    fn test_replay_args() {
        let Some(Mode::Replay(a)) = parse(&["replay", "run.rec", "--format", "json", "-o", "x"])
            .unwrap()
            .mode
        else {
            panic!("not replay")
        };
        assert_eq!(a.recording, PathBuf::from("run.rec"));
        assert_eq!(a.out.format, Format::Json);
        assert!(parse(&["replay"]).is_err());
        let a = trace(&["--record", "r", "--", "./p"]).unwrap();
        assert_eq!(a.record, Some(PathBuf::from("r")));
    }

    #[test]
    fn test_cli_budget_defaults_to_5_percent_and_0_turns_it_off() {
        let a = trace(&["--", "./p"]).unwrap();
        assert_eq!(a.budget(), Some(5.0));
        let a = trace(&["--max-overhead", "0", "--", "./p"]).unwrap();
        assert_eq!(a.budget(), None);
        // The last one given wins (a wrapper's default, then the user's).
        let a = trace(&["--max-overhead", "0", "--max-overhead", "2.5%", "--", "./p"]).unwrap();
        assert_eq!(a.budget(), Some(2.5));
        for bad in ["-1", "101", "x", "nan"] {
            assert!(
                trace(&["--max-overhead", bad, "--", "./p"]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn test_cli_pid_and_command_conflict() {
        assert!(trace(&["--pid", "1", "--", "ls"]).is_err());
        let a = trace(&["--format", "json", "--", "./p", "-x"]).unwrap();
        assert_eq!(a.command, vec!["./p", "-x"]);
        assert_eq!(a.out.format, Format::Json);
    }
}
