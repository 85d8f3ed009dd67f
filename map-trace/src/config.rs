//! The resolved configuration: what a run needs, decided once from the parsed flags (ripgrep's
//! low-level arguments → high-level arguments). Modes take these and build nothing from flags
//! themselves; clap's types stay in [`crate::cli`].

use std::{path::PathBuf, time::Duration};

use crate::{
    cli,
    output::{
        open::{Format, Outputs},
        text::color_for_stdout,
    },
    plan,
    target::TargetError,
};

/// What to trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// `--pid PID`.
    Pid(u32),
    /// `-- COMMAND [ARGS]`: launched, and traced from its first instruction.
    Launch(Vec<String>),
}

/// One traced process (`map-trace --pid` or `map-trace -- COMMAND`).
#[derive(Clone, Debug)]
pub struct Trace {
    pub target: TargetSpec,
    /// Which probe families the plan includes.
    pub plan: plan::Options,
    /// The ring buffer, in bytes (a power of two pages).
    pub ring_bytes: u32,
    /// `--stack-depth`: return addresses read per event.
    pub stack_depth: u32,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// The overhead budget in percent; `None` when off.
    pub budget: Option<f64>,
    /// `--record FILE`.
    pub record: Option<PathBuf>,
    /// `--min-bytes`: the smallest slice growth reported.
    pub min_bytes: u64,
    /// `--runtime-maps`: also report the runtime's own maps.
    pub runtime_maps: bool,
    /// Map sampling; `None` with `--no-sampling`.
    pub sampling: Option<Sampling>,
    /// `--discover`'s window: `--pid` with sampling only, `None` when 0.
    pub discover: Option<Duration>,
    /// `--kept-ratio`, `--kept-min-bytes`, `--kept-samples`.
    pub kept: crate::timeline::health::KeptRule,
    pub outputs: Outputs,
}

/// How the tracked maps are sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// `--sample-interval` (at least 10 ms).
    pub interval: Duration,
    /// `--max-sampled-maps`.
    pub max_maps: usize,
}

/// `map-trace agent`.
#[derive(Clone, Debug)]
pub struct Agent {
    /// Where `/metrics` is served.
    pub metrics_addr: std::net::SocketAddr,
    /// `--events FILE` (`-`: standard output).
    pub events: Option<PathBuf>,
    /// Which processes may be traced.
    pub filters: crate::agent::discover::Filters,
    /// Most executables traced at once.
    pub max_executables: usize,
    /// Distinct site labels per executable.
    pub max_sites: usize,
    /// Between full /proc rescans (at least 1 s).
    pub rescan: Duration,
    /// The ring buffer, in bytes.
    pub ring_bytes: u32,
    /// `--stack-depth`.
    pub stack_depth: u32,
    /// `--profile-window`: what `/debug/pprof/mapgrowth` keeps.
    pub profile_window: Duration,
    /// `--max-profile-stacks` per executable in that window.
    pub max_profile_stacks: usize,
    /// The per-executable budget in percent; `None` when off.
    pub budget: Option<f64>,
    /// Map sampling (`max_maps` per executable); `None` with `--no-sampling`.
    pub sampling: Option<Sampling>,
}

impl Agent {
    /// Resolves the agent's flags.
    pub fn from_args(a: cli::AgentArgs) -> Self {
        Self {
            metrics_addr: a.metrics_addr,
            budget: a.budget(),
            ring_bytes: crate::probes::ring_buffer_bytes(a.ring_buffer_size),
            stack_depth: a.stack_depth,
            profile_window: a.profile_window.max(Duration::from_secs(1)),
            max_profile_stacks: a.max_profile_stacks,
            rescan: Duration::from_secs(a.rescan_interval.max(1)),
            max_executables: a.max_executables,
            max_sites: a.max_sites,
            events: a.events,
            sampling: (!a.no_sampling && a.max_sampled_maps > 0).then(|| Sampling {
                interval: a.sample_interval.max(Duration::from_millis(100)),
                max_maps: a.max_sampled_maps,
            }),
            filters: crate::agent::discover::Filters {
                include: a.include,
                exclude: a.exclude,
                cgroups: a.cgroup,
                exclude_cgroups: a.exclude_cgroup,
                containers: a.container,
            },
        }
    }
}

/// `map-trace replay FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// The recording; `-` is standard input.
    pub recording: PathBuf,
    pub outputs: Outputs,
}

impl Trace {
    /// Resolves the trace flags.
    ///
    /// # Errors
    /// [`TargetError::Nothing`] when neither `--pid` nor a command is given.
    pub fn from_args(a: cli::Args) -> Result<Self, TargetError> {
        let target = match (a.pid, a.command.is_empty()) {
            (Some(pid), _) => TargetSpec::Pid(pid),
            (None, false) => TargetSpec::Launch(a.command.clone()),
            (None, true) => return Err(TargetError::Nothing),
        };
        let discover =
            (a.pid.is_some() && !a.no_sampling && a.max_sampled_maps > 0 && !a.discover.is_zero())
                .then_some(a.discover);
        Ok(Self {
            target,
            plan: plan::Options {
                small_maps: a.small_maps,
                growth_ends: true,
                timed_resizes: true,
                evacuation: a.evacuation,
                slices: a.slices,
                discovery: discover.is_some(),
            },
            ring_bytes: crate::probes::ring_buffer_bytes(a.ring_buffer_size),
            stack_depth: a.stack_depth,
            duration: a.duration,
            budget: a.budget(),
            record: a.record.clone(),
            min_bytes: a.min_bytes,
            runtime_maps: a.runtime_maps,
            sampling: (!a.no_sampling && a.max_sampled_maps > 0).then(|| Sampling {
                interval: a.sample_interval.max(Duration::from_millis(10)),
                max_maps: a.max_sampled_maps,
            }),
            discover,
            kept: crate::timeline::health::KeptRule {
                ratio: a.kept_ratio.max(1),
                min_bytes: a.kept_min_bytes,
                samples: a.kept_samples,
            },
            outputs: outputs(&a.out),
        })
    }
}

impl Replay {
    /// Resolves the replay flags.
    pub fn from_args(a: cli::ReplayArgs) -> Self {
        Self {
            outputs: outputs(&a.out),
            recording: a.recording,
        }
    }
}

/// The outputs of `--format`, `--color`, `-o`, `--trace-out` and `--report`: colour is
/// decided here, from the flag, whether the output is a terminal, and `NO_COLOR`.
fn outputs(o: &cli::OutputArgs) -> Outputs {
    Outputs {
        format: match o.format {
            cli::Format::Text => Format::Text,
            cli::Format::Json => Format::Json,
        },
        color: color_for_stdout(color_when(o.color), o.output.is_none()),
        output: o.output.clone(),
        trace_out: o.trace_out.clone(),
        report: o.report.clone(),
        pprof: o.pprof.clone(),
    }
}

fn color_when(c: cli::Color) -> crate::output::text::ColorWhen {
    use crate::output::text::ColorWhen;
    match c {
        cli::Color::Auto => ColorWhen::Auto,
        cli::Color::Always => ColorWhen::Always,
        cli::Color::Never => ColorWhen::Never,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn trace(argv: &[&str]) -> Result<Trace, TargetError> {
        let cli =
            cli::Cli::try_parse_from(std::iter::once("map-trace").chain(argv.iter().copied()))
                .unwrap();
        Trace::from_args(cli.trace)
    }

    #[test]
    fn test_trace_config_from_flags() {
        let t = trace(&["--slices", "--min-bytes", "64", "-o", "x", "--", "./p", "a"]).unwrap();
        assert_eq!(t.target, TargetSpec::Launch(vec!["./p".into(), "a".into()]));
        assert!(t.plan.slices && t.plan.growth_ends && t.plan.timed_resizes);
        assert!(!t.plan.small_maps && !t.plan.evacuation);
        assert_eq!(t.min_bytes, 64);
        assert_eq!(t.budget, Some(5.0));
        // To a file, `auto` colour is off.
        assert!(!t.outputs.color);
        assert_eq!(t.outputs.output, Some(PathBuf::from("x")));
        assert_eq!(t.outputs.format, Format::Text);
        let t = trace(&["--pid", "9", "--color", "always", "--format", "json"]).unwrap();
        assert_eq!(t.target, TargetSpec::Pid(9));
        assert!(t.outputs.color);
        assert_eq!(t.outputs.format, Format::Json);
        assert!(matches!(trace(&[]), Err(TargetError::Nothing)));
    }
}
