//! What a run writes (resolved from the flags), and opening it: the sinks of `--format`,
//! `--color`, `-o`, `--trace-out`, `--report` and `--pprof`, their files created.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::PathBuf,
};

use anyhow::{Context, Result};

use super::{
    json::JsonSink, perfetto::PerfettoSink, report::ReportSink, text::TextSink, Sink, Tee,
};

/// The events-and-summary format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The outputs of a live run or a replay, resolved: colour is decided, paths are given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outputs {
    pub format: Format,
    /// Whether the text output is coloured (decided from `--color`, the terminal and
    /// `NO_COLOR`).
    pub color: bool,
    /// `-o FILE`; standard output when `None`.
    pub output: Option<PathBuf>,
    /// `--trace-out FILE`.
    pub trace_out: Option<PathBuf>,
    /// `--report FILE`.
    pub report: Option<PathBuf>,
    /// `--pprof FILE`.
    pub pprof: Option<PathBuf>,
}

fn create(path: &std::path::Path) -> Result<BufWriter<File>> {
    Ok(BufWriter::new(
        File::create(path).with_context(|| format!("creating {}", path.display()))?,
    ))
}

/// Opens the sinks of `o`.
///
/// # Errors
/// A file that cannot be created.
pub fn open(o: &Outputs) -> Result<Box<dyn Sink>> {
    let out: Box<dyn Write + Send> = match &o.output {
        Some(path) => Box::new(create(path)?),
        // A launched program shares standard output: whole lines only, so that its writes
        // cannot cut one of ours.
        None => Box::new(super::lines::WholeLines::new(io::stdout())),
    };
    let mut sink: Box<dyn Sink> = match o.format {
        Format::Text => Box::new(TextSink::new(out).color(o.color)),
        Format::Json => Box::new(JsonSink::new(out)),
    };
    if let Some(path) = &o.trace_out {
        sink = Box::new(Tee(vec![sink, Box::new(PerfettoSink::new(create(path)?))]));
    }
    if let Some(path) = &o.report {
        let report =
            ReportSink::create(path).with_context(|| format!("creating {}", path.display()))?;
        sink = Box::new(Tee(vec![sink, Box::new(report)]));
    }
    if let Some(path) = &o.pprof {
        // Created now, so that a path that cannot be written fails before tracing starts.
        create(path)?;
        let pprof = super::pprof::PprofSink::new(path.clone());
        sink = Box::new(Tee(vec![sink, Box::new(pprof)]));
    }
    Ok(sink)
}
