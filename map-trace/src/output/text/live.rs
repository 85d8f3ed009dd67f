//! The live lines: one per event, as it arrives, each within [`WIDTH`] columns.
//!
//! Layout: `TIME gGOROUTINE MAP EVENT SIZES len ENTRIES COST SITE`, e.g.
//! `17:08:56.853 g9 0xc00047c000 grow 2048→4096 len 13312 612KiB …func1 (main.go:43)`.
//! The time is UTC to the millisecond (the JSON output has nanoseconds); sizes are the new size
//! and what it was (buckets for hash-bucket maps, slots for Swiss tables, capacity for slices);
//! the cost is the bytes allocated (hash-bucket maps, slices) or the time the resize took
//! (Swiss tables, slices). The call site comes last and gets the columns that are left: its
//! package path goes first, then the start of the function name, so `(file.go:line)` stays.

use rustc_hash::FxHashMap;

use super::style::{fit_left, fit_right, sanitize, width, Line, Style, WIDTH};
use crate::{
    output::hex,
    symbols::pclntab::SourcePos,
    timeline::{
        site_of, EvacuateStep, Evacuated, EvacuationEnd, Grow, SliceGrow, SwissKind, SwissResize,
    },
};

/// `HH:MM:SS.mmm` (UTC) of a Unix-ns timestamp.
pub fn clock_ms(time_ns: u64) -> String {
    let secs = time_ns / 1_000_000_000;
    let millis = (time_ns % 1_000_000_000) / 1_000_000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{millis:03}",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// Bytes in at most 6 columns: `304B`, `1.1KiB`, `612KiB`, `4.8MiB`.
pub fn bytes_short(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 9.95 {
        format!("{v:.1}{}", UNITS[unit])
    } else {
        format!("{v:.0}{}", UNITS[unit])
    }
}

/// A duration in three significant digits, without spaces: `830ns`, `74.1µs`, `268µs`,
/// `12.3ms`, `1.23s`.
pub fn duration_short(ns: u64) -> String {
    let unit = |v: f64, u: &str| {
        if v < 99.95 {
            format!("{v:.1}{u}")
        } else {
            format!("{v:.0}{u}")
        }
    };
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_499 => unit(ns as f64 / 1e3, "µs"),
        999_500..=999_499_999 => unit(ns as f64 / 1e6, "ms"),
        _ => {
            let s = ns as f64 / 1e9;
            if s < 9.995 {
                format!("{s:.2}s")
            } else {
                unit(s, "s")
            }
        }
    }
}

/// Yellow from 1 MiB, red from 64 MiB.
pub fn bytes_style(n: u64) -> Style {
    match n {
        0..=0xFFFFF => Style::Plain,
        0x100000..=0x3FFFFFF => Style::Warn,
        _ => Style::Alert,
    }
}

/// Yellow from 1 ms, red from 10 ms: for work done in one piece (a Swiss resize, a slice copy,
/// the bucket moves of a growth), not for spans of wall time.
pub fn duration_style(ns: u64) -> Style {
    match ns {
        0..=999_999 => Style::Plain,
        1_000_000..=9_999_999 => Style::Warn,
        _ => Style::Alert,
    }
}

/// `function (file.go:line)` in at most `max` columns: whole if it fits; else with the
/// function's package path cut from the left (`…/pkg.F`), then whole parts of the name
/// (`…(*T).M`, `…M`), then characters (`…g.M`), and last the location's start. `None` when
/// fewer than 10 columns are left.
pub fn site_text(p: &SourcePos, max: usize) -> Option<String> {
    let func = sanitize(&p.function);
    let file = p.file.rsplit('/').next().unwrap_or(&p.file);
    let loc = format!("({}:{})", sanitize(file), p.line);
    let full = format!("{func} {loc}");
    if width(&full) <= max {
        return Some(full);
    }
    // The package path ends at the last '/' before any receiver or type argument list.
    let head = func.find(['(', '[']).unwrap_or(func.len());
    let slashes: Vec<usize> = func[..head].match_indices('/').map(|(i, _)| i).collect();
    for &i in &slashes {
        let cand = format!("…{} {loc}", &func[i..]);
        if width(&cand) <= max {
            return Some(cand);
        }
    }
    // A name cut below 6 columns (`…t`) says nothing: then only the location.
    let avail = max.saturating_sub(width(&loc) + 1);
    if avail >= 6 {
        let tail = match slashes.last() {
            Some(&i) => &func[i + 1..],
            None => &func[..],
        };
        // Whole name parts first: `…(*Store).Put`, `…Put`; then characters.
        let whole = (!slashes.is_empty()).then(|| format!("…{tail}"));
        let name = whole
            .into_iter()
            .chain(
                dots_outside_brackets(tail)
                    .into_iter()
                    .map(|i| format!("…{}", &tail[i + 1..])),
            )
            .find(|c| width(c) <= avail)
            .unwrap_or_else(|| fit_left(tail, avail));
        return Some(format!("{name} {loc}"));
    }
    (max >= 10).then(|| fit_left(&loc, max))
}

/// Byte offsets of the dots in `f` outside parentheses and brackets (where a Go function name
/// can be cut: `cache.(*Store).Put` → 5, 14).
fn dots_outside_brackets(f: &str) -> Vec<usize> {
    let mut depth = 0i32;
    let mut out = vec![];
    for (i, c) in f.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '.' if depth == 0 => out.push(i),
            _ => {}
        }
    }
    out
}

/// Ends a live line: the call site in the columns left, then a hard cut at [`WIDTH`] (only
/// absurdly large numbers reach it).
pub fn with_site(mut l: Line, site: Option<&SourcePos>) -> Line {
    if let Some(p) = site {
        if let Some(s) = site_text(p, l.room().saturating_sub(1)) {
            l.plain(" ").plain(&s);
        }
    }
    l.truncate(WIDTH);
    l
}

/// `HH:MM:SS.mmm gN ` (`g-` when no goroutine is known).
fn head(time_ns: u64, goid: Option<u64>) -> Line {
    let mut l = Line::new();
    l.push(Style::Dim, &clock_ms(time_ns));
    match goid {
        Some(g) => l.plain(&format!(" g{g} ")),
        None => l.plain(" g- "),
    };
    l
}

fn partial(l: &mut Line, partial: bool) {
    if partial {
        l.plain(" ").push(Style::Warn, "partial");
    }
}

/// A classic grow: `grow 2048→4096 len 13312 612KiB`, or `same-size 2048 …`.
pub fn grow(g: &Grow) -> Line {
    let mut l = head(g.time_ns, Some(g.goid));
    l.plain(&hex(g.map));
    if g.same_size {
        l.plain(" same-size ")
            .push(Style::Bold, &g.buckets_after.to_string());
    } else {
        l.plain(" grow ").push(
            Style::Bold,
            &format!("{}→{}", g.buckets_before, g.buckets_after),
        );
    }
    l.plain(&format!(" len {} ", g.entries)).push(
        bytes_style(g.bytes_allocated),
        &bytes_short(g.bytes_allocated),
    );
    partial(&mut l, g.partial);
    with_site(l, site_of(&g.origin))
}

/// A Swiss-table resize: `table 8→16`, `grow 512→1024`, `split [dir 64→128]`, `new 8`,
/// then `len N` and the time it took.
pub fn swiss(r: &SwissResize) -> Line {
    let mut l = head(r.time_ns, Some(r.goid));
    l.plain(&hex(r.map));
    match r.kind {
        SwissKind::SmallToTable => l.plain(" table ").push(
            Style::Bold,
            &format!("{}→{}", r.capacity_before, r.capacity_after),
        ),
        SwissKind::SmallAlloc => l
            .plain(" new ")
            .push(Style::Bold, &r.capacity_after.max(8).to_string()),
        SwissKind::TableGrow => l.plain(" grow ").push(
            Style::Bold,
            &format!("{}→{}", r.capacity_before, r.capacity_after),
        ),
        SwissKind::TableSplit => {
            // Only full tables (1024 slots) split: the size says nothing.
            l.plain(" split");
            if r.directory_len_after > r.directory_len_before {
                l.plain(" dir ").push(
                    Style::Bold,
                    &format!("{}→{}", r.directory_len_before, r.directory_len_after),
                );
            }
            &mut l
        }
    };
    l.plain(&format!(" len {}", r.entries));
    if let Some(d) = r.duration_ns {
        l.plain(" ").push(duration_style(d), &duration_short(d));
    }
    partial(&mut l, r.partial);
    with_site(l, site_of(&r.origin))
}

/// A slice growth: `append []T 1024→1280 10KiB 2.1µs`.
pub fn slice(s: &SliceGrow) -> Line {
    let mut l = head(s.time_ns, Some(s.goid));
    l.plain("append ");
    if let Some(t) = s.elem_type_name.as_deref() {
        l.plain(&fit_right(&format!("[]{t}"), 24)).plain(" ");
    }
    l.push(Style::Bold, &format!("{}→{}", s.cap_before, s.cap_after))
        .plain(" ")
        .push(bytes_style(s.bytes), &bytes_short(s.bytes))
        .plain(" ")
        .push(
            duration_style(s.duration_ns),
            &duration_short(s.duration_ns),
        );
    partial(&mut l, s.partial);
    with_site(l, site_of(&s.origin))
}

/// `evacuate` calls (`--evacuation`) of one growth, added up until it finishes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MoveTally {
    /// Calls.
    pub steps: u64,
    /// Time in them.
    pub ns: u64,
    /// Distinct goroutines that made them (up to [`MoveTally::GOIDS`]).
    goids: Vec<u64>,
    /// More distinct goroutines than kept.
    more: bool,
}

impl MoveTally {
    /// Goroutine ids kept per growth.
    pub const GOIDS: usize = 8;

    fn add(&mut self, s: &EvacuateStep) {
        self.steps += 1;
        self.ns = self.ns.saturating_add(s.duration_ns);
        if !self.goids.contains(&s.goid) {
            if self.goids.len() < Self::GOIDS {
                self.goids.push(s.goid);
            } else {
                self.more = true;
            }
        }
    }

    /// `3` goroutines, or `8+`.
    pub fn goroutines(&self) -> String {
        format!("{}{}", self.goids.len(), if self.more { "+" } else { "" })
    }
}

/// `evacuate` calls waiting for their growth to finish, per map. Printing every call would
/// flood the terminal (a growth to 2^B buckets makes up to 2^(B-1) of them); the `done` line of
/// the growth sums them up instead, and the JSON output keeps every call.
#[derive(Debug, Default)]
pub struct Moves {
    pending: FxHashMap<u64, MoveTally>,
    /// Calls not counted: too many maps were growing at once.
    pub dropped: u64,
}

impl Moves {
    /// Maps tallied at once.
    pub const MAX_MAPS: usize = 4096;

    /// Counts one call.
    pub fn step(&mut self, s: &EvacuateStep) {
        if !self.pending.contains_key(&s.map) && self.pending.len() >= Self::MAX_MAPS {
            self.dropped += 1;
            return;
        }
        self.pending.entry(s.map).or_default().add(s);
    }

    /// The calls of `map`'s growth that just finished.
    pub fn take(&mut self, map: u64) -> Option<MoveTally> {
        self.pending.remove(&map)
    }
}

/// A classic growth finished: `done 4096 in 12.3ms` (buckets now, time since its grow),
/// `in ≤12.3ms (by next grow)`
/// when inferred, `(grew before trace)` when its start was not seen; then the bucket moves when
/// `--evacuation` counted them: `, 2048 moves 1.1ms by 3g`.
pub fn evacuated(e: &Evacuated, moves: Option<&MoveTally>) -> Line {
    let goid = (e.end == EvacuationEnd::Probe).then_some(e.goid);
    let mut l = head(e.time_ns, goid);
    l.plain(&hex(e.map))
        .plain(" done ")
        .push(Style::Bold, &e.buckets.to_string());
    match (e.duration_ns, e.end) {
        (Some(d), EvacuationEnd::Probe) => l.plain(&format!(" in {}", duration_short(d))),
        (Some(d), EvacuationEnd::NextGrow) => l.plain(" in ").push(
            Style::Note,
            &format!("≤{} (by next grow)", duration_short(d)),
        ),
        (None, _) => l.plain(" (grew before trace)"),
    };
    if let Some(m) = moves.filter(|m| m.steps > 0) {
        l.plain(&format!(", {} moves ", m.steps))
            .push(duration_style(m.ns), &duration_short(m.ns))
            .plain(&format!(" by {}g", m.goroutines()));
    }
    partial(&mut l, e.partial);
    with_site(l, site_of(&e.origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_short_formats() {
        assert_eq!(clock_ms(3_723_004_999_999), "01:02:03.004");
        assert_eq!(bytes_short(304), "304B");
        assert_eq!(bytes_short(1130), "1.1KiB");
        assert_eq!(bytes_short(626_688), "612KiB");
        assert_eq!(bytes_short(5_033_165), "4.8MiB");
        assert_eq!(bytes_short(u64::MAX), "16384PiB");
        assert_eq!(duration_short(830), "830ns");
        assert_eq!(duration_short(74_100), "74.1µs");
        assert_eq!(duration_short(12_300_000), "12.3ms");
        assert_eq!(duration_short(268_400), "268µs");
        assert_eq!(duration_short(999_999), "1.0ms");
        assert_eq!(duration_short(1_234_000_000), "1.23s");
        assert_eq!(duration_short(86_400_000_000_000), "86400s");
    }

    fn pos(function: &str, file: &str, line: u32) -> SourcePos {
        SourcePos {
            function: function.into(),
            file: file.into(),
            line,
            inlined: false,
        }
    }

    #[test]
    fn test_site_text_cuts_package_path_then_function() {
        let p = pos(
            "github.com/acme/orders/internal/cache.(*Store).Put",
            "/src/internal/cache/store.go",
            123,
        );
        assert_eq!(
            site_text(&p, 80).unwrap(),
            "github.com/acme/orders/internal/cache.(*Store).Put (store.go:123)"
        );
        assert_eq!(
            site_text(&p, 50).unwrap(),
            "…/internal/cache.(*Store).Put (store.go:123)"
        );
        assert_eq!(
            site_text(&p, 34).unwrap(),
            "…cache.(*Store).Put (store.go:123)"
        );
        assert_eq!(site_text(&p, 30).unwrap(), "…(*Store).Put (store.go:123)");
        assert_eq!(site_text(&p, 25).unwrap(), "…Put (store.go:123)");
        assert_eq!(site_text(&p, 21).unwrap(), "…Put (store.go:123)");
        assert_eq!(site_text(&p, 20).unwrap(), "(store.go:123)");
        assert_eq!(site_text(&p, 10).unwrap(), "…e.go:123)");
        assert_eq!(site_text(&p, 9), None);
        // Slashes inside type arguments are not the package path.
        let g = pos("main.F[go.shape.struct { a/b }]", "main.go", 9);
        assert_eq!(site_text(&g, 24).unwrap(), "…ct { a/b }] (main.go:9)");
        let m = pos("main.main.func1", "main.go", 43);
        assert_eq!(site_text(&m, 20).unwrap(), "…func1 (main.go:43)");
    }
}
