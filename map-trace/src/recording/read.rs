//! Reading a recording back: its symbol table, the checks on each line, and [`replay`], which
//! feeds it through the same pipeline into any sink.

use std::{
    collections::BTreeSet,
    io::{self, BufRead},
    sync::{Arc, Mutex},
};

use map_trace_common::event::{Stack, MAX_STACK_FRAMES as STACK_FRAMES};
use rustc_hash::FxHashMap;

use crate::{
    golayout::MapImpl,
    output::{Sink, StartInfo, StopReason},
    overhead::{Detached, Family, FamilyCost, HitCost, Overhead, Sampling},
    pipeline::{Pipeline, Resolve, SessionEnd},
    plan::ProbeSite,
    plan::VersionSource,
    symbols::elf::Arch,
    timeline::{
        health::{Found, Health, Outcome},
        Origin, SampleTarget,
    },
};

use super::format::*;
use super::RECORD_VERSION;

/// The symbol table of a recording: what the live run resolved.
#[derive(Debug, Default)]
pub struct SymbolTable {
    stacks: FxHashMap<Vec<u64>, Option<Arc<Origin>>>,
    types: FxHashMap<u64, Option<Arc<str>>>,
    fatal: FxHashMap<(u32, u64), crate::timeline::fatal::FatalMap>,
}

impl Resolve for SymbolTable {
    /// A stack the recording has no entry for is not symbolized.
    fn origin(&mut self, _pid: u32, stack: &Stack) -> Option<Arc<Origin>> {
        self.stacks.get(stack.frames()).cloned().flatten()
    }

    fn type_name(&mut self, addr: u64) -> Option<Arc<str>> {
        self.types.get(&addr).cloned().flatten()
    }

    fn locate_fatal(
        &mut self,
        _pid: u32,
        ev: &map_trace_common::event::MapFatalEvent,
    ) -> crate::timeline::fatal::FatalMap {
        self.fatal
            .get(&(ev.header.tid, ev.header.ts_ns))
            .cloned()
            .unwrap_or_else(|| crate::timeline::fatal::FatalMap {
                function: None,
                map: None,
                found: "not in the recording".into(),
                maptype: None,
            })
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

/// The `'static` string equal to `s`, for a recorded probe's program and function names
/// (`plan::ProbeSite` holds the literals a live run plans with). Each distinct string is leaked
/// once.
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

/// The value of `all` whose name is `v`, or a line saying which names are allowed.
fn one_of<T: Copy>(
    what: &str,
    v: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, String> {
    all.iter().copied().find(|a| name(*a) == v).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|a| name(*a)).collect();
        format!("{what} {v:?} is not one of {}", names.join(", "))
    })
}

fn outcome(name: &str, h: Option<Health>) -> Result<Outcome, String> {
    Ok(match (name, h) {
        ("live", Some(h)) => Outcome::Live(h),
        ("freed", _) => Outcome::Freed,
        ("not_heap", _) => Outcome::NotHeap,
        ("unreadable", _) => Outcome::Unreadable,
        (other, _) => return Err(format!("unknown sample outcome {other:?}")),
    })
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
            &VersionSource::ALL,
            VersionSource::name,
        )?,
        map_impl: one_of("map_impl", &s.map_impl, &MapImpl::ALL, MapImpl::name)?,
        arch: one_of("arch", &s.arch, &Arch::ALL, Arch::goarch)?,
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
        build_id: s.build_id,
    })
}

pub(super) fn ending(e: End) -> Result<SessionEnd, String> {
    let o = e.overhead;
    Ok(SessionEnd {
        time_ns: e.time_ns,
        lost: e.lost,
        probe_hits: e.probe_hits,
        read_errors: e.read_errors,
        reason: one_of("reason", &e.reason, &StopReason::ALL, StopReason::name)?,
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
        Some(1 | RECORD_VERSION) => {}
        Some(n) => {
            return Err(format!(
                "recording format version {n}; this map-trace reads versions 1 and \
                 {RECORD_VERSION}"
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
            Line::Record(hex) => {
                let bytes = parse_hex_bytes(&hex).map_err(bad)?;
                if h.record_version == 1 {
                    p.record(&super::v1::upgrade(&bytes))
                } else {
                    p.record(&bytes)
                }
            }
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
            Line::Fatal(f) => {
                p.resolver_mut().fatal.insert((f.tid, f.ts_ns), f.map);
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
            Line::Samples(r) => {
                let results = r
                    .maps
                    .into_iter()
                    .map(|e| {
                        let t = SampleTarget {
                            id: e.id,
                            map: e.map.0,
                            maptype: e.maptype.0,
                            min_geometry: 0,
                        };
                        Ok((t, outcome(&e.outcome, e.health)?))
                    })
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(bad)?;
                p.samples(r.time_ns, &results, r.capped);
            }
            Line::Sampling(st) => p.sampling_state(st.enabled, st.note),
            Line::Discovered(d) => {
                let found = d
                    .maps
                    .into_iter()
                    .map(|e| {
                        if e.pcs.len() > STACK_FRAMES {
                            return Err(bad("a discovered map with too many frames".into()));
                        }
                        let mut stack = Stack::default();
                        for (i, pc) in e.pcs.iter().enumerate() {
                            stack.pcs[i] = pc.0;
                        }
                        stack.depth = e.pcs.len() as u32;
                        Ok(Found {
                            time_ns: e.time_ns,
                            map: e.map.0,
                            maptype: e.maptype.0,
                            stack,
                            swiss: e.swiss,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                p.discovered(&found);
                p.discovery_report(d.report);
            }
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
