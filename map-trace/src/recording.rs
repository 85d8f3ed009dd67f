//! `--record FILE` and `map-trace replay FILE`: a traced run's raw stream, self-contained.
//!
//! A recording is JSON lines (format version [`RECORD_VERSION`]):
//!
//! 1. a header: `{"record_version":1,"map_trace_version":…,"start":{…},"settings":{…}}`, what the
//!    outputs' start record shows ([`StartInfo`]) and what the [`Pipeline`] needs ([`Settings`]);
//! 2. in arrival order, one `{"record":"<hex>"}` per ring-buffer record (its bytes, verbatim,
//!    whatever their pid or kind), `{"detached":{…}}` when `--max-overhead` detached a family,
//!    and symbol-table entries written the first time the run resolved a stack or a type
//!    address, before the record that needed them: `{"stack":{"pcs":["0x…",…],"origin":…}}`,
//!    `{"type":{"addr":"0x…","name":…}}`, so that a replay needs no executable;
//! 3. an end line: `{"end":{…}}`, what the summary adds to the pipeline's own counts ([`Ending`];
//!    `undecodable` and `events` are written for people and ignored on replay, which counts
//!    them again).
//!
//! [`replay`] feeds a recording through the same pipeline into any [`Sink`]: the outputs are
//! those of the live run, times included (they come from the recording).

use std::{
    collections::BTreeSet,
    io::{self, BufRead, Write},
    sync::{Arc, Mutex},
};

use map_trace_common::event::{Stack, STACK_FRAMES};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::{
    output::{Hex, Sink, StartInfo},
    overhead::{Detached, Family, FamilyCost, HitCost, Overhead, Sampling},
    pipeline::{Ending, Pipeline, Resolve, Settings},
    plan::ProbeSite,
    symbols::pclntab::SourcePos,
    timeline::Origin,
};

/// Version of the recording format.
pub const RECORD_VERSION: u64 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    record_version: u64,
    map_trace_version: String,
    start: Start,
    settings: Settings,
}

#[derive(Serialize, Deserialize)]
struct Start {
    time_ns: u64,
    pid: u32,
    exe: String,
    go_version: String,
    /// Absent in recordings made before map-trace read `runtime.buildVersion`: those versions
    /// all came from `.go.buildinfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    go_version_source: Option<String>,
    map_impl: String,
    arch: String,
    launched: bool,
    probes: Vec<Probe>,
}

#[derive(Serialize, Deserialize)]
struct Probe {
    program: String,
    function: String,
    vaddr: Hex,
    offset_in_function: u64,
    file_offset: Hex,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Record(String),
    Stack(StackEntry),
    Type(TypeEntry),
    Detached(DetachedLine),
    End(End),
}

#[derive(Serialize, Deserialize)]
struct StackEntry {
    /// The valid return addresses, innermost first.
    pcs: Vec<Hex>,
    /// `null`: not symbolized.
    origin: Option<OriginEntry>,
}

#[derive(Serialize, Deserialize)]
struct OriginEntry {
    frames: Vec<SourcePos>,
    site: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct TypeEntry {
    addr: Hex,
    name: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DetachedLine {
    time_ns: u64,
    family: String,
    share_percent: f64,
    budget_percent: f64,
    hits: u64,
    /// Duty-cycled from then on (absent in recordings from before sampling existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sampled_duty: Option<f64>,
}

#[derive(Serialize, Deserialize)]
struct End {
    time_ns: u64,
    reason: String,
    exit_status: Option<i32>,
    lost: u64,
    read_errors: u64,
    /// Informational (replay counts again).
    undecodable: u64,
    /// Informational (replay counts again).
    events: u64,
    probe_hits: Vec<(String, u64)>,
    overhead: OverheadLine,
}

#[derive(Serialize, Deserialize)]
struct OverheadLine {
    hit_cost: HitCostLine,
    families: Vec<FamilyLine>,
    estimated_ns: u64,
    target_cpu_ns: Option<u64>,
    budget_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sampling: Option<SamplingLine>,
}

#[derive(Serialize, Deserialize)]
struct SamplingLine {
    family: String,
    since_ns: u64,
    attached_ns: u64,
    elapsed_ns: u64,
    lost_before: u64,
}

#[derive(Serialize, Deserialize)]
struct HitCostLine {
    body_ns: f64,
    stepped_ns: f64,
    calibrated: bool,
}

#[derive(Serialize, Deserialize)]
struct FamilyLine {
    family: String,
    hits: u64,
    estimated_ns: u64,
    /// Unix ns and share (percent) when `--max-overhead` detached it.
    detached: Option<(u64, f64)>,
}

/// Writes a recording.
pub struct RecordWriter<W: Write> {
    out: W,
    hex: String,
}

impl<W: Write> RecordWriter<W> {
    /// A writer to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            hex: String::new(),
        }
    }

    fn line<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")
    }

    /// The first line.
    ///
    /// # Errors
    /// Writing.
    pub fn header(&mut self, start: &StartInfo, settings: &Settings) -> io::Result<()> {
        self.line(&Header {
            record_version: RECORD_VERSION,
            map_trace_version: env!("CARGO_PKG_VERSION").to_string(),
            start: Start {
                time_ns: start.time_ns,
                pid: start.pid,
                exe: start.exe.clone(),
                go_version: start.go_version.clone(),
                go_version_source: Some(start.go_version_source.to_string()),
                map_impl: start.map_impl.to_string(),
                arch: start.arch.to_string(),
                launched: start.launched,
                probes: start
                    .probes
                    .iter()
                    .map(|p| Probe {
                        program: p.program.to_string(),
                        function: p.function.to_string(),
                        vaddr: Hex(p.vaddr),
                        offset_in_function: p.offset_in_function,
                        file_offset: Hex(p.file_offset),
                    })
                    .collect(),
            },
            settings: settings.clone(),
        })
    }

    /// One ring-buffer record, as received.
    ///
    /// # Errors
    /// Writing.
    pub fn record(&mut self, bytes: &[u8]) -> io::Result<()> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.hex.clear();
        for b in bytes {
            self.hex.push(DIGITS[usize::from(b >> 4)] as char);
            self.hex.push(DIGITS[usize::from(b & 0xf)] as char);
        }
        self.out.write_all(b"{\"record\":\"")?;
        self.out.write_all(self.hex.as_bytes())?;
        self.out.write_all(b"\"}\n")
    }

    /// What a stack symbolized to.
    ///
    /// # Errors
    /// Writing.
    pub fn stack(&mut self, stack: &Stack, origin: Option<&Origin>) -> io::Result<()> {
        self.line(&Line::Stack(StackEntry {
            pcs: stack.frames().iter().map(|&p| Hex(p)).collect(),
            origin: origin.map(|o| OriginEntry {
                frames: o.stack.clone(),
                site: o.site,
            }),
        }))
    }

    /// The name of the type descriptor at `addr`.
    ///
    /// # Errors
    /// Writing.
    pub fn type_name(&mut self, addr: u64, name: Option<&str>) -> io::Result<()> {
        self.line(&Line::Type(TypeEntry {
            addr: Hex(addr),
            name: name.map(str::to_string),
        }))
    }

    /// `--max-overhead` detached a family.
    ///
    /// # Errors
    /// Writing.
    pub fn detached(&mut self, d: &Detached) -> io::Result<()> {
        self.line(&Line::Detached(DetachedLine {
            time_ns: d.time_ns,
            family: d.family.name().to_string(),
            share_percent: d.share_percent,
            budget_percent: d.budget_percent,
            hits: d.hits,
            sampled_duty: d.sampled_duty,
        }))
    }

    /// The last line. `undecodable` and `events` are the pipeline's counts (for people).
    ///
    /// # Errors
    /// Writing.
    pub fn end(&mut self, e: &Ending, undecodable: u64, events: u64) -> io::Result<()> {
        let o = &e.overhead;
        self.line(&Line::End(End {
            time_ns: e.time_ns,
            reason: e.reason.to_string(),
            exit_status: e.exit_status,
            lost: e.lost,
            read_errors: e.read_errors,
            undecodable,
            events,
            probe_hits: e.probe_hits.clone(),
            overhead: OverheadLine {
                hit_cost: HitCostLine {
                    body_ns: o.hit_cost.body_ns,
                    stepped_ns: o.hit_cost.stepped_ns,
                    calibrated: o.hit_cost.calibrated,
                },
                families: o
                    .families
                    .iter()
                    .map(|f| FamilyLine {
                        family: f.family.name().to_string(),
                        hits: f.hits,
                        estimated_ns: f.estimated_ns,
                        detached: f.detached,
                    })
                    .collect(),
                estimated_ns: o.estimated_ns,
                target_cpu_ns: o.target_cpu_ns,
                budget_percent: o.budget_percent,
                sampling: o.sampling.map(|s| SamplingLine {
                    family: s.family.name().to_string(),
                    since_ns: s.since_ns,
                    attached_ns: s.attached_ns,
                    elapsed_ns: s.elapsed_ns,
                    lost_before: s.lost_before,
                }),
            },
        }))
    }

    /// # Errors
    /// Writing.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Most stacks and type addresses remembered as written; past it the set starts again (an
/// entry may then be written twice, which a replay accepts).
const MAX_SEEN: usize = 100_000;

/// A [`Resolve`] that also writes a recording (when it has a writer): every record and, the
/// first time a stack or type is resolved, what it resolved to. The first write error is kept
/// ([`Recorder::take_error`]) and ends the session, as an output error does.
pub struct Recorder<R, W: Write> {
    inner: R,
    out: Option<RecordWriter<W>>,
    stacks: FxHashSet<Stack>,
    types: FxHashSet<u64>,
    err: Option<io::Error>,
}

impl<R: Resolve, W: Write> Recorder<R, W> {
    /// Resolves through `inner`; records to `out` if given.
    pub fn new(inner: R, out: Option<RecordWriter<W>>) -> Self {
        Self {
            inner,
            out,
            stacks: FxHashSet::default(),
            types: FxHashSet::default(),
            err: None,
        }
    }

    /// The resolver recorded.
    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn write(&mut self, f: impl FnOnce(&mut RecordWriter<W>) -> io::Result<()>) {
        if let (Some(out), None) = (self.out.as_mut(), &self.err) {
            if let Err(e) = f(out) {
                self.err = Some(e);
            }
        }
    }

    /// The header (see [`RecordWriter::header`]).
    pub fn header(&mut self, start: &StartInfo, settings: &Settings) {
        self.write(|w| w.header(start, settings));
    }

    /// A ring-buffer record, after the pipeline took it (its symbols are written first).
    pub fn record(&mut self, bytes: &[u8]) {
        self.write(|w| w.record(bytes));
    }

    /// `--max-overhead` detached a family.
    pub fn detached(&mut self, d: &Detached) {
        self.write(|w| w.detached(d));
    }

    /// The end line (see [`RecordWriter::end`]).
    pub fn end(&mut self, e: &Ending, undecodable: u64, events: u64) {
        self.write(|w| w.end(e, undecodable, events));
    }

    /// Pushes buffered lines out.
    pub fn flush(&mut self) {
        self.write(RecordWriter::flush);
    }

    /// The first write error since the last call.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.err.take()
    }
}

impl<R: Resolve, W: Write> Resolve for Recorder<R, W> {
    fn origin(&mut self, pid: u32, stack: &Stack) -> Option<Arc<Origin>> {
        let o = self.inner.origin(pid, stack);
        if self.out.is_some() && !self.stacks.contains(stack) {
            if self.stacks.len() >= MAX_SEEN {
                self.stacks.clear();
            }
            self.stacks.insert(*stack);
            self.write(|w| w.stack(stack, o.as_deref()));
        }
        o
    }

    fn type_name(&mut self, addr: u64) -> Option<Arc<str>> {
        let n = self.inner.type_name(addr);
        if self.out.is_some() && !self.types.contains(&addr) {
            if self.types.len() >= MAX_SEEN {
                self.types.clear();
            }
            self.types.insert(addr);
            self.write(|w| w.type_name(addr, n.as_deref()));
        }
        n
    }
}

/// The symbol table of a recording: what the live run resolved.
#[derive(Debug, Default)]
pub struct SymbolTable {
    stacks: FxHashMap<Vec<u64>, Option<Arc<Origin>>>,
    types: FxHashMap<u64, Option<Arc<str>>>,
}

impl Resolve for SymbolTable {
    /// A stack the recording has no entry for is not symbolized.
    fn origin(&mut self, _pid: u32, stack: &Stack) -> Option<Arc<Origin>> {
        self.stacks.get(stack.frames()).cloned().flatten()
    }

    fn type_name(&mut self, addr: u64) -> Option<Arc<str>> {
        self.types.get(&addr).cloned().flatten()
    }
}

/// Why a recording could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The input could not be read.
    #[error("reading the recording: {source}")]
    Read {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A line is not what the format allows there.
    #[error("line {line}: {message}")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The input ended before the end line.
    #[error("the recording ends after line {lines} without its end line (cut short?)")]
    Truncated {
        /// Lines read.
        lines: u64,
    },
    /// An output could not be written.
    #[error("writing output: {source}")]
    Output {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl ReplayError {
    /// Whether the recording is at fault (rather than an output).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ReplayError::Output { .. })
    }
}

/// The `'static` string equal to `s`: the outputs' start and summary types hold `&'static str`
/// (names that are literals in a live run). Each distinct string is leaked once.
fn intern(s: &str) -> &'static str {
    static TABLE: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut t = TABLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(&k) = t.get(s) {
        return k;
    }
    let k: &'static str = Box::leak(s.to_string().into_boxed_str());
    t.insert(k);
    k
}

fn one_of(what: &str, v: &str, allowed: &[&'static str]) -> Result<&'static str, String> {
    allowed
        .iter()
        .find(|a| **a == v)
        .copied()
        .ok_or_else(|| format!("{what} {v:?} is not one of {}", allowed.join(", ")))
}

fn family(name: &str) -> Result<Family, String> {
    Family::ALL
        .into_iter()
        .find(|f| f.name() == name)
        .ok_or_else(|| format!("unknown probe family {name:?}"))
}

fn parse_hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("record of {} hex digits (odd)", s.len()));
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| "record is not hex".to_string())
        })
        .collect()
}

fn start_info(s: Start) -> Result<StartInfo, String> {
    Ok(StartInfo {
        time_ns: s.time_ns,
        pid: s.pid,
        exe: s.exe,
        go_version: s.go_version,
        go_version_source: one_of(
            "go_version_source",
            s.go_version_source.as_deref().unwrap_or("buildinfo"),
            &["buildinfo", "runtime.buildVersion"],
        )?,
        map_impl: one_of("map_impl", &s.map_impl, &["classic", "swiss"])?,
        arch: one_of("arch", &s.arch, &["amd64", "arm64"])?,
        probes: s
            .probes
            .into_iter()
            .map(|p| ProbeSite {
                program: intern(&p.program),
                function: intern(&p.function),
                vaddr: p.vaddr.0,
                offset_in_function: p.offset_in_function,
                file_offset: p.file_offset.0,
            })
            .collect(),
        launched: s.launched,
    })
}

fn ending(e: End) -> Result<Ending, String> {
    let o = e.overhead;
    Ok(Ending {
        time_ns: e.time_ns,
        lost: e.lost,
        probe_hits: e.probe_hits,
        read_errors: e.read_errors,
        reason: one_of(
            "reason",
            &e.reason,
            &["target_exited", "signal", "duration"],
        )?,
        exit_status: e.exit_status,
        overhead: Overhead {
            hit_cost: HitCost {
                body_ns: o.hit_cost.body_ns,
                stepped_ns: o.hit_cost.stepped_ns,
                calibrated: o.hit_cost.calibrated,
            },
            families: o
                .families
                .into_iter()
                .map(|f| {
                    Ok(FamilyCost {
                        family: family(&f.family)?,
                        hits: f.hits,
                        estimated_ns: f.estimated_ns,
                        detached: f.detached,
                    })
                })
                .collect::<Result<_, String>>()?,
            estimated_ns: o.estimated_ns,
            target_cpu_ns: o.target_cpu_ns,
            budget_percent: o.budget_percent,
            sampling: o
                .sampling
                .map(|s| {
                    Ok::<_, String>(Sampling {
                        family: family(&s.family)?,
                        since_ns: s.since_ns,
                        attached_ns: s.attached_ns,
                        elapsed_ns: s.elapsed_ns,
                        lost_before: s.lost_before,
                    })
                })
                .transpose()?,
        },
    })
}

/// Reads the header line.
fn header(text: &str) -> Result<Header, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not a map-trace recording: {e}"))?;
    match v.get("record_version").and_then(serde_json::Value::as_u64) {
        Some(RECORD_VERSION) => {}
        Some(n) => {
            return Err(format!(
                "recording format version {n}; this map-trace reads version {RECORD_VERSION}"
            ))
        }
        None => return Err("not a map-trace recording (no record_version)".into()),
    }
    serde_json::from_value(v).map_err(|e| format!("bad header: {e}"))
}

/// Numbered, non-blank lines of a recording.
struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    /// The next non-blank line, without its line end.
    fn next(&mut self) -> Result<Option<&str>, ReplayError> {
        loop {
            self.buf.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| ReplayError::Read { source })?;
            if n == 0 {
                return Ok(None);
            }
            self.number += 1;
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                break;
            }
        }
        match std::str::from_utf8(&self.buf) {
            Ok(t) => Ok(Some(t.trim_end_matches(['\n', '\r']))),
            Err(_) => Err(self.bad("not UTF-8 text".into())),
        }
    }

    fn bad(&self, message: String) -> ReplayError {
        ReplayError::Malformed {
            line: self.number,
            message,
        }
    }
}

/// Replays a recording into `sink`: the same sink calls the live run made.
///
/// # Errors
/// [`ReplayError`]: unreadable or malformed input, or an output that could not be written.
/// Outputs may be partly written when the input turns out malformed past its start.
pub fn replay(input: impl BufRead, sink: Box<dyn Sink>) -> Result<(), ReplayError> {
    let mut lines = Lines {
        input,
        buf: Vec::new(),
        number: 0,
    };
    let output = |source| ReplayError::Output { source };
    let Some(text) = lines.next()? else {
        return Err(ReplayError::Malformed {
            line: 1,
            message: "empty: not a map-trace recording".into(),
        });
    };
    let h = header(text).map_err(|m| lines.bad(m))?;
    let start = start_info(h.start).map_err(|m| lines.bad(m))?;
    let mut p = Pipeline::new(h.settings, SymbolTable::default(), sink);
    p.start(&start).map_err(output)?;
    let mut ended = false;
    while let Some(text) = lines.next()? {
        if ended {
            return Err(lines.bad("a line after the end line".into()));
        }
        let l: Line = serde_json::from_str(text).map_err(|e| lines.bad(e.to_string()))?;
        let bad = |message: String| ReplayError::Malformed {
            line: lines.number,
            message,
        };
        match l {
            Line::Record(hex) => p.record(&parse_hex_bytes(&hex).map_err(bad)?),
            Line::Stack(s) => {
                if s.pcs.len() > STACK_FRAMES {
                    return Err(bad(format!(
                        "a stack of {} frames (at most {STACK_FRAMES})",
                        s.pcs.len()
                    )));
                }
                let origin = match s.origin {
                    Some(o) if o.site.is_some_and(|i| i >= o.frames.len()) => {
                        return Err(bad("a call site past the stack's frames".into()));
                    }
                    Some(o) => Some(Arc::new(Origin {
                        stack: o.frames,
                        site: o.site,
                    })),
                    None => None,
                };
                let pcs = s.pcs.into_iter().map(|h| h.0).collect();
                p.resolver_mut().stacks.insert(pcs, origin);
            }
            Line::Type(t) => {
                p.resolver_mut()
                    .types
                    .insert(t.addr.0, t.name.map(Arc::<str>::from));
            }
            Line::Detached(d) => p.detached(&Detached {
                time_ns: d.time_ns,
                family: family(&d.family).map_err(bad)?,
                share_percent: d.share_percent,
                budget_percent: d.budget_percent,
                hits: d.hits,
                sampled_duty: d.sampled_duty,
            }),
            Line::End(e) => {
                p.finish(ending(e).map_err(bad)?).map_err(output)?;
                ended = true;
            }
        }
        if let Some(source) = p.take_error() {
            return Err(output(source));
        }
    }
    if ended {
        Ok(())
    } else {
        Err(ReplayError::Truncated {
            lines: lines.number,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::json::JsonSink;
    use map_trace_common::event::{as_bytes, EventHeader, EventKind, MapGrowEvent};

    /// A writer whose bytes stay readable after it is boxed into a sink.
    #[derive(Clone, Default)]
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Symbolizes every stack to `main.f` at the stack's first pc as its line.
    struct Fake;

    impl Resolve for Fake {
        fn origin(&mut self, _pid: u32, stack: &Stack) -> Option<Arc<Origin>> {
            (stack.depth > 0).then(|| {
                Arc::new(Origin {
                    stack: vec![SourcePos {
                        function: "main.f".into(),
                        file: "/src/main.go".into(),
                        line: stack.pcs[0] as u32,
                    }],
                    site: Some(0),
                })
            })
        }
        fn type_name(&mut self, addr: u64) -> Option<Arc<str>> {
            (addr != 0).then(|| Arc::from("map[int]int"))
        }
    }

    fn start() -> StartInfo {
        StartInfo {
            time_ns: 1_000,
            pid: 7,
            exe: "/app".into(),
            go_version: "go1.23.9".into(),
            go_version_source: "runtime.buildVersion",
            map_impl: "classic",
            arch: "amd64",
            probes: vec![ProbeSite {
                program: "hmap_hash_grow",
                function: "runtime.hashGrow",
                vaddr: 0x40dc0a,
                offset_in_function: 10,
                file_offset: 0xdc0a,
            }],
            launched: false,
        }
    }

    fn settings() -> Settings {
        Settings {
            pid: 7,
            load_factor_num: 13,
            mono_to_unix_ns: 1_700_000_000_000_000_000,
            infer_growth_ends: true,
            slices: false,
            min_bytes: 0,
            runtime_maps: false,
        }
    }

    fn ending() -> Ending {
        Ending {
            time_ns: 1_700_000_000_000_900_000,
            lost: 2,
            probe_hits: vec![("runtime.hashGrow".into(), 5)],
            read_errors: 1,
            reason: "signal",
            exit_status: None,
            overhead: Overhead {
                sampling: Some(Sampling {
                    family: Family::Maps,
                    since_ns: 1_700_000_000_000_600_000,
                    attached_ns: 12_345,
                    elapsed_ns: 300_000,
                    lost_before: 1,
                }),
                hit_cost: HitCost {
                    body_ns: 561.8875,
                    stepped_ns: 0.1 + 0.2,
                    calibrated: true,
                },
                families: vec![FamilyCost {
                    family: Family::Slices,
                    hits: 5,
                    estimated_ns: 2809,
                    detached: Some((1_700_000_000_000_500_000, 12.345_678_9)),
                }],
                estimated_ns: 2809,
                target_cpu_ns: Some(10_000_000),
                budget_percent: Some(5.0),
            },
        }
    }

    fn grow(map: u64, b: u8, line: u64, ts: u64) -> MapGrowEvent {
        let mut ev = MapGrowEvent {
            header: EventHeader {
                kind: EventKind::MapGrow as u32,
                tid: 7,
                pid: 7,
                exe: 0,
                goid: 3,
                ts_ns: ts,
            },
            map,
            maptype: 0x4a0000,
            count: 13 << b >> 1,
            key_size: 8,
            elem_size: 8,
            bucket_size: 144,
            b,
            ..Default::default()
        };
        ev.stack.pcs = [line, 0xdead, 0, 0, 0, 0, 0, 0];
        ev.stack.depth = 1;
        ev
    }

    /// A live-style run: the pipeline with a recorder around its resolver. Returns the JSON
    /// output and the recording.
    fn live(records: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        let out = Shared::default();
        let mut p = Pipeline::new(
            settings(),
            Recorder::new(Fake, Some(RecordWriter::new(Vec::new()))),
            Box::new(JsonSink::new(out.clone())),
        );
        p.resolver_mut().header(&start(), &settings());
        p.start(&start()).unwrap();
        for (i, r) in records.iter().enumerate() {
            p.record(r);
            p.resolver_mut().record(r);
            if i == 1 {
                let d = Detached {
                    sampled_duty: None,
                    time_ns: 1_700_000_000_000_500_000,
                    family: Family::Slices,
                    share_percent: 12.345_678_9,
                    budget_percent: 5.0,
                    hits: 5,
                };
                p.detached(&d);
                p.resolver_mut().detached(&d);
                // The event probes duty-cycled from here on.
                let d = Detached {
                    sampled_duty: Some(0.08),
                    time_ns: 1_700_000_000_000_600_000,
                    family: Family::Maps,
                    share_percent: 50.0,
                    budget_percent: 5.0,
                    hits: 9,
                };
                p.detached(&d);
                p.resolver_mut().detached(&d);
            }
        }
        let (u, ev) = (p.undecodable(), p.events());
        p.resolver_mut().end(&ending(), u, ev);
        assert!(p.resolver_mut().take_error().is_none());
        p.finish(ending()).unwrap();
        let rec = p.resolver_mut().out.take().unwrap().into_inner();
        let json = std::mem::take(&mut *out.0.lock().unwrap());
        (json, rec)
    }

    fn replayed(rec: &[u8]) -> Result<Vec<u8>, ReplayError> {
        let out = Shared::default();
        replay(rec, Box::new(JsonSink::new(out.clone())))?;
        let v = std::mem::take(&mut *out.0.lock().unwrap());
        Ok(v)
    }

    fn records() -> Vec<Vec<u8>> {
        vec![
            as_bytes(&grow(0xc000, 0, 10, 100)).to_vec(),
            as_bytes(&grow(0xc000, 1, 10, 200)).to_vec(),
            vec![0xff; 3],
            as_bytes(&grow(0xd000, 0, 20, 300)).to_vec(),
            as_bytes(&grow(0xc000, 2, 10, 400)).to_vec(),
        ]
    }

    #[test]
    fn test_replay_gives_the_live_output() {
        let (json, rec) = live(&records());
        assert_eq!(
            String::from_utf8(replayed(&rec).unwrap()).unwrap(),
            String::from_utf8(json).unwrap()
        );
        let text = String::from_utf8(rec).unwrap();
        // Symbols once each, before the first record that needs them.
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("{\"record_version\":1,"));
        assert!(
            lines[1].starts_with("{\"stack\":{\"pcs\":[\"0xa\"],"),
            "{}",
            lines[1]
        );
        assert_eq!(
            lines[2],
            "{\"type\":{\"addr\":\"0x4a0000\",\"name\":\"map[int]int\"}}"
        );
        assert!(
            lines[3].starts_with("{\"record\":\"0100000007000000"),
            "{}",
            lines[3]
        );
        assert_eq!(text.matches("\"stack\":").count(), 2);
        assert_eq!(text.matches("\"type\":").count(), 1);
        assert_eq!(text.matches("{\"record\":").count(), 5);
        assert!(lines.last().unwrap().starts_with("{\"end\":"));
    }

    /// Recordings made before `go_version_source` existed replay as `buildinfo` (their only
    /// source then); a value this build does not know is refused.
    #[test]
    fn test_go_version_source_in_recordings() {
        let (json, rec) = live(&records());
        let text = String::from_utf8(rec).unwrap();
        assert!(text.contains(r#""go_version_source":"runtime.buildVersion""#));
        assert!(String::from_utf8(json)
            .unwrap()
            .contains(r#""go_version_source":"runtime.buildVersion""#));
        let old = text.replace(r#""go_version_source":"runtime.buildVersion","#, "");
        assert!(!old.contains("go_version_source"));
        let out = String::from_utf8(replayed(old.as_bytes()).unwrap()).unwrap();
        assert!(out.contains(r#""go_version_source":"buildinfo""#), "{out}");
        let odd = text.replace(
            r#""go_version_source":"runtime.buildVersion""#,
            r#""go_version_source":"guess""#,
        );
        assert!(replayed(odd.as_bytes()).is_err());
    }

    #[test]
    fn test_recorded_floats_round_trip() {
        let (_, rec) = live(&records());
        let text = String::from_utf8(rec).unwrap();
        let end = text.lines().last().unwrap();
        let Line::End(e) = serde_json::from_str(end).unwrap() else {
            panic!("not an end line: {end}");
        };
        let e = ending_of(e);
        assert_eq!(e.overhead, ending().overhead);
        assert_eq!(e.probe_hits, ending().probe_hits);
    }

    fn ending_of(e: End) -> Ending {
        super::ending(e).unwrap()
    }

    #[test]
    fn test_replay_rejects_malformed_input_with_its_line() {
        let (_, rec) = live(&records());
        let text = String::from_utf8(rec).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let with = |i: usize, l: &str| {
            let mut v = lines.clone();
            v[i] = l;
            v.join("\n")
        };
        let err = |input: &str| replayed(input.as_bytes()).unwrap_err().to_string();
        assert_eq!(err(""), "line 1: empty: not a map-trace recording");
        assert_eq!(err("\n\n"), "line 1: empty: not a map-trace recording");
        assert!(err("hello").starts_with("line 1: not a map-trace recording: "));
        assert_eq!(
            err(&with(0, "{\"record_version\":2}")),
            "line 1: recording format version 2; this map-trace reads version 1"
        );
        assert_eq!(
            err("{\"record\":\"00\"}"),
            "line 1: not a map-trace recording (no record_version)"
        );
        assert!(err(&with(0, "{\"record_version\":1}"))
            .starts_with("line 1: bad header: missing field"));
        let h = lines[0].replace("\"classic\"", "\"hashmap\"");
        assert_eq!(
            err(&with(0, &h)),
            "line 1: map_impl \"hashmap\" is not one of classic, swiss"
        );
        assert_eq!(
            err(&with(3, "{\"record\":\"abc\"}")),
            "line 4: record of 3 hex digits (odd)"
        );
        assert_eq!(
            err(&with(3, "{\"record\":\"zz\"}")),
            "line 4: record is not hex"
        );
        assert!(err(&with(3, "{\"nonsense\":1}")).starts_with("line 4: unknown variant `nonsense`"));
        assert!(err(&with(3, "[1,2")).starts_with("line 4: "));
        assert!(
            err(&with(1, "{\"stack\":{\"pcs\":[\"12\"],\"origin\":null}}"))
                .starts_with("line 2: \"12\" is not an address")
        );
        let deep = format!(
            "{{\"stack\":{{\"pcs\":[{}],\"origin\":null}}}}",
            ["1"; 9].join(",")
        );
        assert_eq!(
            err(&with(1, &deep)),
            "line 2: a stack of 9 frames (at most 8)"
        );
        assert_eq!(
            err(&with(
                1,
                "{\"stack\":{\"pcs\":[1],\"origin\":{\"frames\":[],\"site\":0}}}"
            )),
            "line 2: a call site past the stack's frames"
        );
        let d = lines
            .iter()
            .position(|l| l.starts_with("{\"detached\""))
            .unwrap();
        let bad_family = lines[d].replace("\"slices\"", "\"nope\"");
        assert_eq!(
            err(&with(d, &bad_family)),
            format!("line {}: unknown probe family \"nope\"", d + 1)
        );
        let n = lines.len();
        let bad_reason = lines[n - 1].replace("\"signal\"", "\"crash\"");
        assert_eq!(
            err(&with(n - 1, &bad_reason)),
            format!("line {n}: reason \"crash\" is not one of target_exited, signal, duration")
        );
        assert_eq!(
            err(&lines[..n - 1].join("\n")),
            format!(
                "the recording ends after line {} without its end line (cut short?)",
                n - 1
            )
        );
        assert_eq!(
            err(&format!("{text}{{\"record\":\"00\"}}\n")),
            format!("line {}: a line after the end line", n + 1)
        );
        let mut bytes = lines[..2].join("\n").into_bytes();
        bytes.extend_from_slice(b"\n\xff\xfe\n");
        assert_eq!(
            replayed(&bytes).unwrap_err().to_string(),
            "line 3: not UTF-8 text"
        );
        assert!(replayed(&bytes).unwrap_err().is_bad_input());
    }

    #[test]
    fn test_replay_without_symbols_reports_no_site() {
        // A hand-made recording may leave stacks out: their events are not symbolized.
        let (_, rec) = live(&records());
        let text: String = String::from_utf8(rec)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("{\"stack\"") && !l.starts_with("{\"type\""))
            .map(|l| format!("{l}\r\n"))
            .collect();
        let json = String::from_utf8(replayed(text.as_bytes()).unwrap()).unwrap();
        assert!(json.contains("\"site\":null"));
        assert!(!json.contains("main.f"));
    }

    #[test]
    fn test_recorder_keeps_the_first_write_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("no space"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut r = Recorder::new(Fake, Some(RecordWriter::new(Full)));
        r.record(&[1]);
        r.record(&[2]);
        assert_eq!(r.take_error().unwrap().to_string(), "no space");
        assert!(r.take_error().is_none());
        // Without a writer it only resolves.
        let mut r: Recorder<_, Full> = Recorder::new(Fake, None);
        r.record(&[1]);
        assert!(r.type_name(1).is_some());
        assert!(r.take_error().is_none());
    }
}
