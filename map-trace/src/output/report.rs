//! `--report FILE.html`: one self-contained HTML page about the run, written when tracing ends.
//!
//! - a header (executable, Go version, map implementation, pid, trace start and end, lost
//!   events, probe hits);
//! - the call sites ranked as in the text summary ([`crate::timeline::by_site`]), with the
//!   `make(T, N)` that presizes their maps;
//! - a chart per map (the [`MAX_CHARTS`] maps with the most events): storage size over time as
//!   a step line on a log2 scale (hash buckets, or a Swiss map's table slots), a marker per
//!   event, and a bar per growth span (hash buckets: grow → old buckets freed, [`crate::timeline::Evacuated`];
//!   Swiss: each resize, which is synchronous);
//! - the slice growths (`--slices`) by site.
//!
//! The charts draw each map's history as the timeline reconstructed it
//! ([`crate::timeline::history`], bounded there); the page says what was cut. The page needs no
//! network: inline CSS, inline SVG and a few lines of inline script (a filter), under a
//! Content-Security-Policy that forbids loading anything. Every text is escaped ([`esc`]).
//! It is written to `FILE.tmp` and renamed to `FILE` at the end.

use std::{
    borrow::Cow,
    fmt::Write as _,
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use rustc_hash::FxHashMap;

use super::{
    hex,
    text::{bytes, duration},
    EndInfo, Sink, StartInfo,
};
use crate::{
    symbols::pclntab::SourcePos,
    timeline::{
        by_site,
        history::{History, Mark, SpanEnd, MAX_POINTS_PER_MAP, MAX_POINTS_TOTAL},
        site_of, MapSummary, SliceGrow, SwissKind,
    },
};

/// Maps charted; the others are counted.
pub const MAX_CHARTS: usize = 30;
/// Distinct slice (site, type) pairs kept; further growths are counted together.
pub const MAX_SLICE_SITES: usize = 10_000;
/// Rows of the call-site table.
pub const MAX_SITE_ROWS: usize = 500;

/// Escapes text for HTML text and attribute values (double- or single-quoted).
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// CSS class of an event's marker.
fn mark_class(m: Mark) -> &'static str {
    match m {
        Mark::Doubling => "ev grow",
        Mark::SameSize => "ev same",
        Mark::Swiss(SwissKind::SmallAlloc) => "ev small",
        Mark::Swiss(SwissKind::SmallToTable) => "ev totable",
        Mark::Swiss(SwissKind::TableGrow) => "ev grow",
        Mark::Swiss(SwissKind::TableSplit) => "ev split",
    }
}

/// CSS class of a span.
fn span_class(e: SpanEnd) -> &'static str {
    match e {
        SpanEnd::Probe => "span done",
        SpanEnd::Inferred => "span inferred",
        SpanEnd::Unseen => "span unseen",
        SpanEnd::InProgress => "span open",
        SpanEnd::Resize => "span resize",
    }
}

/// What a span is, for its tooltip.
fn span_what(e: SpanEnd) -> &'static str {
    match e {
        SpanEnd::Probe => "growth: grow began → old buckets freed",
        SpanEnd::Inferred => "growth: grow began → next grow (end inferred, an upper bound)",
        SpanEnd::Unseen => "growth: grow began → next grow (its end was not seen)",
        SpanEnd::InProgress => "growth still in progress when tracing ended",
        SpanEnd::Resize => "resize (synchronous)",
    }
}

/// A slice growth's call site and element type.
type SliceKey = (Option<SourcePos>, Option<Arc<str>>);

/// Per (site, element type) slice growths.
#[derive(Debug, Default)]
struct SliceSite {
    growths: u64,
    bytes: u64,
    max_cap: u64,
    duration_ns: u64,
}

/// What was cut to bound memory (the charts' own caps are the timeline's, in
/// [`EndInfo::history_cuts`]).
#[derive(Debug, Default)]
struct Cuts {
    /// Slice growths counted under "other sites" ([`MAX_SLICE_SITES`]).
    slices_merged: u64,
}

/// Buffers the run and writes the HTML report at [`Sink::finish`].
pub struct ReportSink {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    start: Option<StartInfo>,
    cuts: Cuts,
    slices: FxHashMap<SliceKey, SliceSite>,
    slice_other: SliceSite,
    slice_total: SliceSite,
}

/// `path` + `.tmp`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

impl ReportSink {
    /// A sink that will write `path`; creates `path.tmp` now, so that an unwritable place fails
    /// before tracing starts.
    ///
    /// # Errors
    /// Creating the temporary file.
    pub fn create(path: &Path) -> io::Result<Self> {
        let tmp = tmp_path(path);
        let file = File::create(&tmp)?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
            start: None,
            cuts: Cuts::default(),
            slices: FxHashMap::default(),
            slice_other: SliceSite::default(),
            slice_total: SliceSite::default(),
        })
    }

    /// The page.
    fn render(&self, end: &EndInfo) -> String {
        let mut h = String::with_capacity(64 * 1024);
        let title = match &self.start {
            Some(s) => format!("map-trace report: {}", s.exe),
            None => "map-trace report".to_string(),
        };
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"map-trace {}\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
            env!("CARGO_PKG_VERSION"),
            esc(&title)
        );
        self.header(&mut h, end);
        self.notes(&mut h, end);
        sites_table(&mut h, end);
        self.charts(&mut h, end);
        self.slices_section(&mut h, end);
        let _ = write!(
            h,
            "<footer>Written by map-trace {} when tracing ended. Times are UTC; chart times are \
             from the start of tracing.</footer>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
            env!("CARGO_PKG_VERSION")
        );
        h
    }

    fn header(&self, h: &mut String, e: &EndInfo) {
        h.push_str("<header>\n<h1>map-trace report</h1>\n<dl class=\"info\">\n");
        let mut row = |k: &str, v: &str| {
            let _ = writeln!(h, "<dt>{}</dt><dd>{v}</dd>", esc(k));
        };
        let start_ns = self.start.as_ref().map_or(e.time_ns, |s| s.time_ns);
        if let Some(s) = &self.start {
            row("Executable", &format!("<code>{}</code>", esc(&s.exe)));
            row("Go version", &esc(&s.go_version));
            row(
                "Map implementation",
                match s.map_impl {
                    "swiss" => "swiss (Swiss tables)",
                    "classic" => "classic (hash buckets)",
                    other => other,
                },
            );
            row("Architecture", &esc(s.arch));
            row(
                "Process",
                &format!(
                    "pid <span id=\"pid\">{}</span>{}",
                    s.pid,
                    if s.launched {
                        " (launched by map-trace)"
                    } else {
                        " (attached)"
                    }
                ),
            );
        }
        row("Trace start", &utc(start_ns));
        row("Trace end", &utc(e.time_ns));
        row("Traced for", &duration(e.time_ns.saturating_sub(start_ns)));
        let reason = match e.reason {
            "target_exited" => "the target exited",
            "signal" => "a signal",
            "duration" => "--duration elapsed",
            other => other,
        };
        let stopped = match e.exit_status {
            Some(c) => format!("{reason} (exit status {c})"),
            None => reason.to_string(),
        };
        row("Stopped by", &esc(&stopped));
        row(
            "Map events",
            &format!("{} in {} maps", e.events, e.maps.len()),
        );
        row(
            "Lost events",
            &if e.lost > 0 {
                format!(
                    "<strong class=\"bad\">{} (ring buffer full; counts are incomplete)</strong>",
                    e.lost
                )
            } else {
                "0".to_string()
            },
        );
        if e.undecodable > 0 || e.read_errors > 0 {
            row(
                "Undecodable records / read errors",
                &format!("{} / {}", e.undecodable, e.read_errors),
            );
        }
        if e.runtime_events_hidden > 0 {
            row(
                "Runtime maps hidden",
                &format!(
                    "{} events of maps the Go runtime grew for itself (--runtime-maps shows them)",
                    e.runtime_events_hidden
                ),
            );
        }
        let hits = if e.probe_hits.is_empty() {
            "none".to_string()
        } else {
            e.probe_hits
                .iter()
                .map(|(f, n)| format!("<code>{}</code> {n}", esc(f)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        row("Probe hits", &hits);
        let o = &e.overhead;
        row(
            "Estimated probe overhead",
            &format!(
                "~{}{}",
                duration(o.estimated_ns),
                match o.target_cpu_ns.filter(|c| *c > 0) {
                    Some(cpu) => format!(
                        " ({:.2}% of the {} of CPU the target used while traced)",
                        o.estimated_ns as f64 * 100.0 / cpu as f64,
                        duration(cpu)
                    ),
                    None => String::new(),
                }
            ),
        );
        if let Some((shown, below)) = e.slices {
            row(
                "Slice growths",
                &format!("{shown} reported, {below} below --min-bytes not reported"),
            );
        }
        h.push_str("</dl>\n</header>\n");
    }

    fn notes(&self, h: &mut String, e: &EndInfo) {
        let mut notes = vec![];
        if e.lost > 0 {
            notes.push(format!(
                "{} events were lost (ring buffer full): counts, charts and the table are \
                 incomplete; try --ring-buffer-size.",
                e.lost
            ));
        }
        let start_ns = self.start.as_ref().map_or(e.time_ns, |s| s.time_ns);
        if let Some(sm) = &e.sampled {
            notes.push(format!(
                "SAMPLED: to stay within --max-overhead {}%, the {} probes were attached only \
                 {:.1}% of the time from {} on. {} events were seen ({} before that): about {} \
                 in all. The charts and the table show what was seen.",
                e.overhead.budget_percent.unwrap_or(0.0),
                sm.sampling.family.name(),
                sm.sampling.coverage() * 100.0,
                offset(sm.sampling.since_ns, start_ns),
                sm.events_before + sm.events_sampled,
                sm.events_before,
                sm.events_estimated()
            ));
        }
        for f in &e.overhead.families {
            if e.sampled.is_some_and(|s| s.sampling.family == f.family) {
                continue;
            }
            if let Some((t, share)) = f.detached {
                notes.push(format!(
                    "--max-overhead detached the {} probes at {} ({share:.0}% of the target's \
                     CPU > {}%): their events after that are missing.",
                    f.family.flag().unwrap_or(f.family.name()),
                    offset(t, start_ns),
                    e.overhead.budget_percent.unwrap_or(0.0)
                ));
            }
        }
        let c = &e.history_cuts;
        if c.dropped > 0 {
            let mut why = vec![];
            if c.maps_capped > 0 {
                why.push(format!(
                    "{} map(s) reached {MAX_POINTS_PER_MAP} points each",
                    c.maps_capped
                ));
            }
            if c.total_reached {
                why.push(format!("{MAX_POINTS_TOTAL} points were kept in all"));
            }
            notes.push(format!(
                "Cut: {} points and spans were not kept for the charts ({}); the table and \
                 counts include them.",
                c.dropped,
                why.join("; ")
            ));
        }
        let c = &self.cuts;
        if c.slices_merged > 0 {
            notes.push(format!(
                "Cut: more than {MAX_SLICE_SITES} slice sites; {} growths are counted under \
                 \"other sites\".",
                c.slices_merged
            ));
        }
        if notes.is_empty() {
            return;
        }
        h.push_str("<section id=\"notes\">\n<ul class=\"notes\">\n");
        for n in notes {
            let _ = writeln!(h, "<li>{}</li>", esc(&n));
        }
        h.push_str("</ul>\n</section>\n");
    }

    fn charts(&self, h: &mut String, e: &EndInfo) {
        h.push_str("<section id=\"maps\">\n<h2>Maps</h2>\n");
        if e.maps.is_empty() {
            h.push_str("<p>No map grew while traced.</p>\n</section>\n");
            return;
        }
        let start_ns = self.start.as_ref().map_or(e.time_ns, |s| s.time_ns);
        let shown = e.maps.len().min(MAX_CHARTS);
        let _ = writeln!(
            h,
            "<p>The {shown} map(s) with the most events{}: storage size (log2 scale) over time \
             since the start of tracing, zoomed to each map's events. {LEGEND}</p>\n\
             <p class=\"filter\"><label>Filter <input id=\"filter\" type=\"search\" \
             placeholder=\"type, site or address\"></label> <span id=\"shown\">{shown} charts</span></p>",
            if e.maps.len() > shown {
                format!(" of {}", e.maps.len())
            } else {
                String::new()
            }
        );
        for m in &e.maps[..shown] {
            chart(h, m, start_ns);
        }
        if e.maps.len() > shown {
            let more = &e.maps[shown..];
            let events: u64 = more.iter().map(|m| m.grows).sum();
            let _ = writeln!(
                h,
                "<p class=\"omitted\" id=\"omitted\">{} more map(s) not charted (fewer events: \
                 {events} in all); the table above counts them.</p>",
                more.len()
            );
        }
        h.push_str("</section>\n");
    }

    fn slices_section(&self, h: &mut String, e: &EndInfo) {
        if self.slice_total.growths == 0 {
            return;
        }
        let t = &self.slice_total;
        let _ = writeln!(
            h,
            "<section id=\"slices\">\n<h2>Slice growths</h2>\n<p>{} growths, {} of new \
             backing arrays, {} in <code>growslice</code>{}.</p>",
            t.growths,
            bytes(t.bytes),
            duration(t.duration_ns),
            match e.slices {
                Some((_, below)) if below > 0 => format!("; {below} below --min-bytes not counted"),
                _ => String::new(),
            }
        );
        let mut rows: Vec<(&SliceKey, &SliceSite)> = self.slices.iter().collect();
        rows.sort_by(|a, b| {
            b.1.bytes
                .cmp(&a.1.bytes)
                .then(b.1.growths.cmp(&a.1.growths))
        });
        h.push_str(
            "<table class=\"slices\">\n<thead><tr><th>Growths</th><th>Bytes</th>\
             <th>Largest cap</th><th>Time</th><th>Element</th><th>Site</th></tr></thead>\n<tbody>\n",
        );
        const TOP: usize = 20;
        for ((site, ty), s) in rows.iter().take(TOP) {
            let _ = writeln!(
                h,
                "<tr class=\"slice-site\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td><code>{}</code></td><td>{}</td></tr>",
                s.growths,
                bytes(s.bytes),
                s.max_cap,
                duration(s.duration_ns),
                esc(ty.as_deref().unwrap_or("?")),
                site_cell(site.as_ref()),
            );
        }
        h.push_str("</tbody>\n</table>\n");
        let rest = rows.len().saturating_sub(TOP);
        if rest > 0 || self.slice_other.growths > 0 {
            let _ = writeln!(
                h,
                "<p class=\"omitted\">{rest} more site(s) not shown{}.</p>",
                if self.slice_other.growths > 0 {
                    format!(
                        "; other sites: {} growths, {}",
                        self.slice_other.growths,
                        bytes(self.slice_other.bytes)
                    )
                } else {
                    String::new()
                }
            );
        }
        h.push_str("</section>\n");
    }
}

impl Drop for ReportSink {
    fn drop(&mut self) {
        // Not finished (an error ended the session): leave no half-written file behind.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Sink for ReportSink {
    fn start(&mut self, info: &StartInfo) -> io::Result<()> {
        self.start = Some(info.clone());
        Ok(())
    }

    // Maps are drawn from the timeline's histories in the summary.
    fn grow(&mut self, _g: &crate::timeline::Grow) -> io::Result<()> {
        Ok(())
    }

    fn swiss(&mut self, _r: &crate::timeline::SwissResize) -> io::Result<()> {
        Ok(())
    }

    fn slice(&mut self, s: &SliceGrow) -> io::Result<()> {
        let add = |t: &mut SliceSite| {
            t.growths += 1;
            t.bytes = t.bytes.saturating_add(s.bytes);
            t.max_cap = t.max_cap.max(s.cap_after);
            t.duration_ns = t.duration_ns.saturating_add(s.duration_ns);
        };
        add(&mut self.slice_total);
        let key = (site_of(&s.origin).cloned(), s.elem_type_name.clone());
        if let Some(t) = self.slices.get_mut(&key) {
            add(t);
        } else if self.slices.len() < MAX_SLICE_SITES {
            add(self.slices.entry(key).or_default());
        } else {
            self.cuts.slices_merged += 1;
            add(&mut self.slice_other);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self, end: &EndInfo) -> io::Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let page = self.render(end);
        let fail = |e: io::Error, what: &str, p: &Path| {
            let _ = std::fs::remove_file(&self.tmp);
            io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
        };
        let mut w = io::BufWriter::new(file);
        w.write_all(page.as_bytes())
            .and_then(|()| w.flush())
            .map_err(|e| fail(e, "writing", &self.tmp))?;
        drop(w);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| fail(e, "renaming to", &self.path))
    }
}

/// The call-site table: the text summary's "by call site", as HTML.
fn sites_table(h: &mut String, e: &EndInfo) {
    h.push_str("<section id=\"sites\">\n<h2>By call site</h2>\n");
    if e.maps.is_empty() {
        h.push_str("<p>No map grew while traced.</p>\n</section>\n");
        return;
    }
    let sites = by_site(&e.maps, e.load_factor_num);
    h.push_str(
        "<p>Where to act: the call sites whose maps grew, most events first, with the \
         <code>make</code> that builds their final storage at once.</p>\n\
         <table class=\"sites\">\n<thead><tr><th>Events</th><th>Maps</th><th>Allocated</th>\
         <th title=\"Swiss maps: time in resizes. Hash-bucket maps: time spent growing, from each grow \
         to its old buckets freed (writes paid for the move meanwhile).\">Resize / growing</th>\
         <th>Site</th><th>Presize</th></tr></thead>\n<tbody>\n",
    );
    for t in sites.iter().take(MAX_SITE_ROWS) {
        let hint = match t.presize_hint {
            Some(n) => format!(
                "<code>make({}, {n})</code>",
                esc(t.type_name.as_deref().unwrap_or("map[…]…"))
            ),
            None => "-".to_string(),
        };
        let _ = writeln!(
            h,
            "<tr class=\"site\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{hint}</td></tr>",
            t.events,
            t.maps,
            bytes(t.bytes_allocated),
            match (t.total_duration_ns, t.growth_span_ns) {
                (0, 0) => "-".to_string(),
                (0, g) => format!("growing {}", duration(g)),
                (r, _) => duration(r),
            },
            site_cell(t.site.as_ref()),
        );
    }
    h.push_str("</tbody>\n</table>\n");
    if sites.len() > MAX_SITE_ROWS {
        let _ = writeln!(
            h,
            "<p class=\"omitted\">{} more site(s) not shown.</p>",
            sites.len() - MAX_SITE_ROWS
        );
    }
    h.push_str("</section>\n");
}

/// `function (file.go:line)`, with the full file path as a tooltip.
fn site_cell(site: Option<&SourcePos>) -> String {
    match site {
        Some(p) => format!(
            "<span class=\"where\" title=\"{}\">{}</span>",
            esc(&p.file),
            esc(&p.to_string())
        ),
        None => "<span class=\"where unknown\">(stack not symbolized)</span>".to_string(),
    }
}

/// Chart geometry (SVG user units).
const W: f64 = 960.0;
const H: f64 = 250.0;
const X0: f64 = 70.0;
const X1: f64 = 940.0;
const Y0: f64 = 14.0;
const Y1: f64 = 178.0;
/// The lane of growth spans, below the plot.
const LANE_Y: f64 = 190.0;
const LANE_H: f64 = 10.0;
const TICK_Y: f64 = 222.0;

/// Maps times to x.
struct XScale {
    lo: f64,
    hi: f64,
}

impl XScale {
    fn x(&self, t: f64) -> f64 {
        X0 + (t - self.lo) / (self.hi - self.lo) * (X1 - X0)
    }
}

/// Maps sizes to y on a log2 scale.
struct YScale {
    kmin: u32,
    kmax: u32,
}

impl YScale {
    fn y(&self, size: u64) -> f64 {
        let k = (size.max(1) as f64).log2();
        Y1 - (k - f64::from(self.kmin)) / f64::from(self.kmax - self.kmin) * (Y1 - Y0)
    }
}

/// `1`, `512`, `16Ki`, `2Mi`.
fn pow2_label(k: u32) -> String {
    match k {
        0..=9 => format!("{}", 1u64 << k),
        10..=19 => format!("{}Ki", 1u64 << (k - 10)),
        20..=29 => format!("{}Mi", 1u64 << (k - 20)),
        30..=39 => format!("{}Gi", 1u64 << (k - 30)),
        _ => format!("2^{k}"),
    }
}

/// A tick step (ns) of 1, 2 or 5 × 10^n giving at most ~8 ticks over `range` ns.
fn tick_step(range: f64) -> f64 {
    let raw = (range / 8.0).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// A time offset from the start of tracing, in the unit of the tick step: `+12.5 ms`.
fn offset_label(ns: f64, step: f64) -> String {
    let (div, unit) = if step >= 1e8 {
        (1e9, "s")
    } else if step >= 1e5 {
        (1e6, "ms")
    } else if step >= 1e2 {
        (1e3, "µs")
    } else {
        (1.0, "ns")
    };
    let v = ns / div;
    let decimals = if (step / div).fract().abs() < 1e-9 {
        0
    } else {
        1
    };
    format!("{v:.decimals$} {unit}")
}

/// A signed offset from the start of tracing for tooltips: `+1.234 ms`, `-20 µs`.
fn offset(time_ns: u64, start_ns: u64) -> String {
    let d = time_ns as i128 - start_ns as i128;
    let sign = if d < 0 { "-" } else { "+" };
    format!("{sign}{}", duration(d.unsigned_abs() as u64))
}

/// One map's chart: a `<figure>` with its label and an inline SVG.
fn chart(h: &mut String, m: &MapSummary, start_ns: u64) {
    let s = &m.history;
    let type_name = m.type_name.as_deref().unwrap_or("map (type unknown)");
    let site = match site_of(&m.origin) {
        Some(p) => p.to_string(),
        None => "(stack not symbolized)".to_string(),
    };
    let addr = hex(m.map);
    let stats = match &m.swiss {
        None => format!(
            "{} grows ({} same-size), buckets {} → {}, {} entries at the last grow, {} allocated{}",
            m.grows,
            m.same_size_grows,
            m.buckets_first,
            m.buckets_last,
            m.entries_last,
            bytes(m.bytes_allocated),
            if m.evacuations > 0 {
                format!(
                    ", {} growths finished (longest {})",
                    m.evacuations,
                    duration(m.evacuation_max_ns)
                )
            } else {
                String::new()
            }
        ),
        Some(sw) => format!(
            "{} small→table, {} table grows, {} splits, directory {}, {} entries, {} in \
             resizes (longest {})",
            sw.small_to_table,
            sw.table_grows,
            sw.table_splits,
            sw.directory_len_last,
            m.entries_last,
            duration(sw.total_duration_ns),
            duration(sw.max_duration_ns)
        ),
    };
    let search = format!("{type_name} {site} {addr}").to_lowercase();
    let _ = writeln!(
        h,
        "<figure class=\"map\" data-map=\"{addr}\" data-first-ns=\"{}\" data-events=\"{}\" \
         data-search=\"{}\">\n<figcaption><code class=\"type\">{}</code> at \
         <span class=\"where\">{}</span> <code class=\"addr\">{addr}</code><br>\
         <span class=\"stats\">{}</span></figcaption>",
        m.first_time_ns,
        m.grows,
        esc(&search),
        esc(type_name),
        esc(&site),
        esc(&stats),
    );
    let unit = if m.swiss.is_some() {
        "slots"
    } else {
        "buckets"
    };
    let _ = write!(
        h,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" \
         role=\"img\" aria-label=\"{} at {}: {unit} over time\">",
        esc(type_name),
        esc(&site)
    );
    match s.points.is_empty() {
        false => plot(h, s, start_ns, unit),
        true => {
            let _ = write!(
                h,
                "<text class=\"empty\" x=\"{}\" y=\"{}\">no points kept for this map</text>",
                W / 2.0,
                H / 2.0
            );
        }
    }
    h.push_str("</svg>\n");
    if let Some(since) = s.end_unknown_since {
        let _ = writeln!(
            h,
            "<p class=\"cut\">The end of the last growth (from {}) is not known: this binary's \
             finishing block is not probed, so ends are inferred from the next grow.</p>",
            offset(since, start_ns)
        );
    }
    if s.dropped > 0 {
        let _ = writeln!(
            h,
            "<p class=\"cut\">Cut: {} of this map's points and spans were not kept (only the \
             first {MAX_POINTS_PER_MAP} are drawn).</p>",
            s.dropped
        );
    }
    h.push_str("</figure>\n");
}

/// The axes, step line, markers and spans of one series.
fn plot(h: &mut String, s: &History, start_ns: u64, unit: &str) {
    // Time domain: the map's events and spans, padded (a growth in progress at the end runs
    // off the right edge instead of stretching the chart to the end of tracing).
    let rel = |t: u64| (t as i128 - start_ns as i128) as f64;
    let mut lo = f64::MAX;
    let mut hi = f64::MIN;
    for t in s
        .points
        .iter()
        .map(|p| p.time_ns)
        .chain(s.spans().flat_map(|sp| {
            let end = if sp.end == SpanEnd::InProgress {
                sp.start_ns
            } else {
                sp.end_ns
            };
            [sp.start_ns, end]
        }))
    {
        lo = lo.min(rel(t));
        hi = hi.max(rel(t));
    }
    if hi - lo < 1000.0 {
        let mid = (hi + lo) / 2.0;
        lo = mid - 500.0;
        hi = mid + 500.0;
    }
    let pad = (hi - lo) * 0.03;
    let xs = XScale {
        lo: lo - pad,
        hi: hi + pad,
    };
    // Size domain: powers of two around every size seen.
    let sizes = s
        .points
        .iter()
        .flat_map(|p| [p.size_before, p.size_after])
        .filter(|&v| v > 0);
    let (mut kmin, mut kmax) = (u32::MAX, 0u32);
    for v in sizes {
        kmin = kmin.min(v.ilog2());
        kmax = kmax.max(v.next_power_of_two().ilog2());
    }
    if kmin == u32::MAX {
        kmin = 0;
    }
    if kmax <= kmin {
        kmax = kmin + 1;
    }
    let ys = YScale { kmin, kmax };

    // Grid and y labels.
    let every = (kmax - kmin).div_ceil(8).max(1);
    h.push_str("<g class=\"grid\">");
    // Labelled from the top down, so that the largest size always has one.
    for k in (kmin..=kmax).rev().step_by(every as usize) {
        let y = ys.y(1u64 << k.min(63));
        let _ = write!(
            h,
            "<line x1=\"{X0}\" x2=\"{X1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"ylab\" x=\"{}\" y=\"{:.1}\">{}</text>",
            X0 - 6.0,
            y + 4.0,
            pow2_label(k)
        );
    }
    let step = tick_step(xs.hi - xs.lo);
    let mut t = (xs.lo / step).ceil() * step;
    while t <= xs.hi {
        let x = xs.x(t);
        let _ = write!(
            h,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{Y0}\" y2=\"{}\"/>\
             <text class=\"xlab\" x=\"{x:.1}\" y=\"{TICK_Y}\">{}</text>",
            LANE_Y + LANE_H,
            offset_label(t, step)
        );
        t += step;
    }
    let _ = write!(
        h,
        "</g><text class=\"axis\" x=\"{X0}\" y=\"{}\">{unit} (log2)</text>\
         <text class=\"axis end\" x=\"{X1}\" y=\"{}\">time since trace start</text>\
         <rect class=\"frame\" x=\"{X0}\" y=\"{Y0}\" width=\"{}\" height=\"{}\"/>",
        Y0 - 4.0,
        TICK_Y + 18.0,
        X1 - X0,
        Y1 - Y0
    );

    // Growth spans, merged where they would overlap on screen.
    let _ = write!(
        h,
        "<text class=\"lane\" x=\"{}\" y=\"{}\">spans</text>",
        X0 - 6.0,
        LANE_Y + LANE_H - 1.0
    );
    let mut spans: Vec<crate::timeline::history::Span> = s.spans().collect();
    spans.sort_by_key(|sp| sp.start_ns);
    let mut i = 0;
    while i < spans.len() {
        let first = &spans[i];
        let x0 = xs.x(rel(first.start_ns));
        let mut x1 = xs.x(rel(first.end_ns)).min(X1);
        let mut j = i + 1;
        let mut total = first.end_ns.saturating_sub(first.start_ns);
        while j < spans.len() && spans[j].end == first.end && xs.x(rel(spans[j].end_ns)) < x1 + 1.0
        {
            x1 = x1.max(xs.x(rel(spans[j].end_ns)));
            total = total.saturating_add(spans[j].end_ns.saturating_sub(spans[j].start_ns));
            j += 1;
        }
        let n = j - i;
        let title = if n == 1 {
            format!(
                "{}: {} to {} ({})",
                span_what(first.end),
                offset(first.start_ns, start_ns),
                offset(first.end_ns, start_ns),
                duration(total)
            )
        } else {
            format!(
                "{n} × {}: from {}, {} in all",
                span_what(first.end),
                offset(first.start_ns, start_ns),
                duration(total)
            )
        };
        let _ = write!(
            h,
            "<rect class=\"{}\" x=\"{x0:.1}\" y=\"{LANE_Y}\" width=\"{:.1}\" height=\"{LANE_H}\"><title>{}</title></rect>",
            span_class(first.end),
            (x1 - x0).max(1.5),
            esc(&title),
        );
        i = j;
    }

    // The step line: the size before the first event, then after each.
    let first = &s.points[0];
    let y_first = ys.y(if first.size_before > 0 {
        first.size_before
    } else {
        first.size_after
    });
    let _ = write!(
        h,
        "<path class=\"size\" d=\"M{:.1} {y_first:.1}",
        xs.x(rel(first.time_ns))
    );
    for p in &s.points {
        let _ = write!(h, "H{:.1}V{:.1}", xs.x(rel(p.time_ns)), ys.y(p.size_after));
    }
    // …to the right edge: the size last seen.
    let _ = write!(h, "H{X1}\"/>");

    // A marker per event; events on the same pixel share one.
    let mut marks: Vec<(i64, i64, usize, usize)> = vec![]; // (px, py, first index, count)
    let mut at: FxHashMap<(i64, i64, &'static str), usize> = FxHashMap::default();
    for (idx, p) in s.points.iter().enumerate() {
        let px = xs.x(rel(p.time_ns)).round() as i64;
        let py = ys.y(p.size_after).round() as i64;
        let key = (px, py, mark_class(p.mark));
        match at.get(&key) {
            Some(&k) => marks[k].3 += 1,
            None => {
                at.insert(key, marks.len());
                marks.push((px, py, idx, 1));
            }
        }
    }
    for (px, py, idx, n) in marks {
        let p = &s.points[idx];
        let what = match p.mark {
            Mark::Doubling | Mark::SameSize => format!(
                "{} buckets {} → {}, {} entries, {} allocated",
                if p.mark == Mark::SameSize {
                    "same-size grow (overflow cleanup):"
                } else {
                    "grow:"
                },
                p.size_before,
                p.size_after,
                p.entries,
                bytes(p.bytes_allocated)
            ),
            Mark::Swiss(k) => format!(
                "{}: slots {} → {}, directory {}, {} entries, took {}",
                k.event_name().trim_start_matches("map_").replace('_', " "),
                p.size_before,
                p.size_after,
                p.directory_len,
                p.entries,
                duration(p.duration_ns)
            ),
        };
        let more = if n > 1 {
            format!(" (and {} more events here)", n - 1)
        } else {
            String::new()
        };
        let title = format!(
            "{} goroutine {}: {what}{more}",
            offset(p.time_ns, start_ns),
            p.goid
        );
        let _ = write!(
            h,
            "<circle class=\"{}\" cx=\"{px}\" cy=\"{py}\" r=\"{}\"><title>{}</title></circle>",
            mark_class(p.mark),
            if n > 1 { 4.5 } else { 3.5 },
            esc(&title)
        );
    }
}

/// `2025-01-31 13:45:07.123456 UTC` of a Unix-ns timestamp.
pub fn utc(time_ns: u64) -> String {
    let secs = time_ns / 1_000_000_000;
    let micros = (time_ns % 1_000_000_000) / 1000;
    let days = (secs / 86_400) as i64;
    let day = secs % 86_400;
    // Days since 1970-01-01 → civil date (proleptic Gregorian), after Howard Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06} UTC",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// Marker and span legend (inline SVG swatches).
const LEGEND: &str = "Markers: <svg class=\"sw\" viewBox=\"0 0 10 10\"><circle class=\"ev grow\" \
cx=\"5\" cy=\"5\" r=\"3.5\"/></svg> grow (doubling), <svg class=\"sw\" viewBox=\"0 0 10 10\">\
<circle class=\"ev same\" cx=\"5\" cy=\"5\" r=\"3.5\"/></svg> same-size grow, <svg class=\"sw\" \
viewBox=\"0 0 10 10\"><circle class=\"ev totable\" cx=\"5\" cy=\"5\" r=\"3.5\"/></svg> small map \
→ table, <svg class=\"sw\" viewBox=\"0 0 10 10\"><circle class=\"ev split\" cx=\"5\" cy=\"5\" \
r=\"3.5\"/></svg> table split. Spans: <svg class=\"sw\" viewBox=\"0 0 16 10\"><rect class=\"span \
done\" x=\"0\" y=\"2\" width=\"16\" height=\"6\"/></svg> growth (grow → old buckets freed), \
<svg class=\"sw\" viewBox=\"0 0 16 10\"><rect class=\"span inferred\" x=\"0\" y=\"2\" width=\"16\" \
height=\"6\"/></svg> end inferred or not seen, <svg class=\"sw\" viewBox=\"0 0 16 10\"><rect \
class=\"span open\" x=\"0\" y=\"2\" width=\"16\" height=\"6\"/></svg> in progress at the end, \
<svg class=\"sw\" viewBox=\"0 0 16 10\"><rect class=\"span resize\" x=\"0\" y=\"2\" width=\"16\" \
height=\"6\"/></svg> Swiss resize. Hover for details.";

const CSS: &str = "
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--accent:#2563eb;--warn:#b45309;--bad:#b91c1c}
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);margin:0 auto;max-width:1100px;padding:16px 24px}
h1{font-size:22px;margin:8px 0 12px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line)}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
dl.info{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dl.info dt{color:var(--muted)}dl.info dd{margin:0}
.bad{color:var(--bad)}ul.notes{background:#fff7ed;border:1px solid #fed7aa;padding:8px 8px 8px 28px;color:var(--warn)}
table{border-collapse:collapse;width:100%}th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:right;vertical-align:top}
th{color:var(--muted);font-weight:600}td:nth-child(n+5),th:nth-child(n+5){text-align:left}
table.slices td:nth-child(n+5),table.slices th:nth-child(n+5){text-align:left}
.where{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}.unknown{color:var(--muted)}
figure.map{margin:18px 0;border:1px solid var(--line);border-radius:6px;padding:8px 10px}
figcaption{margin-bottom:4px}.type{font-weight:600}.addr,.stats,.cut,.omitted{color:var(--muted)}
svg.chart{width:100%;height:auto;display:block}svg.sw{width:16px;height:10px;vertical-align:middle}
.grid line{stroke:#eef0f4}.frame{fill:none;stroke:var(--line)}
text{font:11px system-ui,sans-serif;fill:var(--muted)}.ylab,.lane{text-anchor:end}.xlab{text-anchor:middle}.axis.end{text-anchor:end}
.empty{text-anchor:middle}
path.size{fill:none;stroke:var(--accent);stroke-width:1.8}
.ev{stroke:#fff;stroke-width:1}.ev.grow{fill:var(--accent)}.ev.same{fill:#f59e0b}.ev.totable{fill:#10b981}.ev.split{fill:#8b5cf6}.ev.small{fill:#94a3b8}
.span{stroke-width:.8}.span.done{fill:#93c5fd;stroke:#2563eb}.span.inferred,.span.unseen{fill:#e5e7eb;stroke:#6b7280;stroke-dasharray:3 2}
.span.open{fill:#fecaca;stroke:var(--bad)}.span.before{fill:#e5e7eb;stroke:#2563eb;stroke-dasharray:1 2}.span.resize{fill:#c4b5fd;stroke:#7c3aed}
p.filter input{font:inherit;padding:2px 6px;width:260px}
footer{margin:32px 0 8px;color:var(--muted);font-size:12px}
";

/// The chart filter; also states how many charts are shown.
const SCRIPT: &str = "
(function () {
  var input = document.getElementById('filter');
  var shown = document.getElementById('shown');
  if (!input || !shown) return;
  var maps = document.querySelectorAll('figure.map');
  function apply() {
    var q = input.value.trim().toLowerCase(), n = 0;
    for (var i = 0; i < maps.length; i++) {
      var hit = maps[i].getAttribute('data-search').indexOf(q) >= 0;
      maps[i].hidden = !hit;
      if (hit) n++;
    }
    shown.textContent = n + ' of ' + maps.length + ' charts shown';
  }
  input.addEventListener('input', apply);
  apply();
})();
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        plan::ProbeSite,
        timeline::{Evacuated, EvacuationEnd, Grow, Origin, SwissResize, Timeline},
    };

    /// The timeline's summary when tracing stops, as the session builds `EndInfo`.
    fn end_of(t: Timeline, events: u64) -> EndInfo {
        let (maps, cuts) = t.finish(T0 + 2_000_000_000);
        let mut e = end_info(maps, events);
        e.history_cuts = cuts;
        e
    }

    const T0: u64 = 1_700_000_000_000_000_000;

    fn origin(function: &str, line: u32) -> Option<Arc<Origin>> {
        Some(Arc::new(Origin {
            stack: vec![
                SourcePos {
                    function: "runtime.mapassign".into(),
                    file: "/go/src/runtime/map.go".into(),
                    line: 1,
                },
                SourcePos {
                    function: function.into(),
                    file: "/src/app/main.go".into(),
                    line,
                },
            ],
            site: Some(1),
        }))
    }

    fn grow(map: u64, b: u32, at_us: u64, type_name: &str, line: u32) -> Grow {
        Grow {
            time_ns: T0 + at_us * 1000,
            pid: 42,
            tid: 42,
            goid: 7,
            map,
            maptype: 0x1000,
            buckets_before: 1 << b,
            buckets_after: 1 << (b + 1),
            entries: 13 << b,
            same_size: false,
            key_size: 8,
            elem_size: 8,
            bucket_size: 144,
            overflow_buckets: 0,
            bytes_allocated: 144 << (b + 1),
            partial: false,
            origin: origin("main.fill", line),
            type_name: Some(type_name.into()),
        }
    }

    fn evacuated(g: &Grow, after_us: u64, end: EvacuationEnd) -> Evacuated {
        Evacuated {
            time_ns: g.time_ns + after_us * 1000,
            pid: 42,
            tid: 42,
            goid: 7,
            map: g.map,
            buckets: g.buckets_after,
            entries: g.entries + 10,
            duration_ns: None,
            end,
            partial: false,
            origin: None,
            type_name: None,
        }
    }

    fn swiss(kind: SwissKind, map: u64, at_us: u64, cap: (u64, u64), dir: u64) -> SwissResize {
        SwissResize {
            kind,
            time_ns: T0 + at_us * 1000,
            pid: 42,
            tid: 42,
            goid: 9,
            map,
            maptype: 0x2000,
            entries: cap.0 * 7 / 8,
            key_size: 8,
            elem_size: 8,
            duration_ns: Some(20_000),
            table_entries: cap.0 * 7 / 8,
            capacity_before: cap.0,
            capacity_after: cap.1,
            local_depth_before: 0,
            directory_len_before: dir,
            directory_len_after: if kind == SwissKind::TableSplit {
                dir * 2
            } else {
                dir
            },
            partial: false,
            origin: origin("main.index", 30),
            type_name: Some("map[string]*main.T".into()),
        }
    }

    fn start_info(map_impl: &'static str, ends_probed: bool) -> StartInfo {
        StartInfo {
            time_ns: T0,
            pid: 42,
            exe: "/srv/app <prod> & \"x\"".into(),
            go_version: "go1.23.9".into(),
            go_version_source: "buildinfo",
            map_impl,
            arch: "amd64",
            probes: if ends_probed {
                vec![ProbeSite {
                    program: "hmap_evacuated_0",
                    function: "runtime.advanceEvacuationMark",
                    vaddr: 0x1000,
                    offset_in_function: 0x40,
                    file_offset: 0x1000,
                }]
            } else {
                vec![]
            },
            launched: true,
        }
    }

    fn end_info(maps: Vec<MapSummary>, events: u64) -> EndInfo {
        EndInfo {
            sampled: None,
            time_ns: T0 + 2_000_000_000,
            events,
            lost: 3,
            undecodable: 0,
            probe_hits: vec![("runtime.hashGrow".into(), events)],
            read_errors: 0,
            reason: "target_exited",
            exit_status: Some(0),
            runtime_events_hidden: 0,
            load_factor_num: 13,
            slices: None,
            maps,
            overhead: crate::overhead::Overhead::default(),
            history_cuts: Default::default(),
        }
    }

    fn out_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("map-trace-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// Feeds grows (with their ends) to a timeline and a report; returns the page.
    fn classic_page(name: &str, evs: &[(Grow, Option<Evacuated>)], probed: bool) -> String {
        let path = out_path(name);
        let mut sink = ReportSink::create(&path).unwrap();
        sink.start(&start_info("classic", probed)).unwrap();
        let mut t = Timeline::new();
        for (g, e) in evs {
            t.push(g);
            sink.grow(g).unwrap();
            if let Some(e) = e {
                let mut e = e.clone();
                t.push_evacuated(&mut e);
                sink.evacuated(&e).unwrap();
            }
        }
        let grows = t.grows();
        sink.finish(&end_of(t, grows)).unwrap();
        assert!(!tmp_path(&path).exists(), "the temporary file is renamed");
        std::fs::read_to_string(&path).unwrap()
    }

    /// Open/close tags nest properly (void elements and `/>` aside; `<style>` and `<script>`
    /// bodies skipped).
    fn check_nesting(html: &str) {
        const VOID: [&str; 4] = ["meta", "br", "input", "!doctype"];
        let mut stack: Vec<String> = vec![];
        let mut rest = html;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').expect("unclosed tag");
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().unwrap_or_default();
                assert_eq!(open, name, "</{name}> closes <{open}>");
                continue;
            }
            let name = tag
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap()
                .to_lowercase();
            if tag.ends_with('/') || VOID.contains(&name.as_str()) {
                continue;
            }
            if name == "style" || name == "script" {
                let close = format!("</{name}>");
                let j = rest.find(&close).expect("closed");
                rest = &rest[j + close.len()..];
                continue;
            }
            stack.push(name);
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    /// Occurrences of `needle` in the charts (after the legend).
    fn count(h: &str, needle: &str) -> usize {
        h[h.find("<figure").unwrap_or(h.len())..]
            .matches(needle)
            .count()
    }

    #[test]
    fn test_esc_go_type_names() {
        assert_eq!(esc("map[int]int"), "map[int]int");
        assert!(matches!(esc("map[int]int"), Cow::Borrowed(_)));
        assert_eq!(
            esc("map[string]<-chan *main.T"),
            "map[string]&lt;-chan *main.T"
        );
        assert_eq!(
            esc(r#"map[struct { A string "json:\"a\"" }]'x'&"#),
            "map[struct { A string &quot;json:\\&quot;a\\&quot;&quot; }]&#39;x&#39;&amp;"
        );
        assert_eq!(esc("a>b"), "a&gt;b");
    }

    #[test]
    fn test_report_classic_structure() {
        let nasty = "map[string]<-chan *main.T[\"q\"]";
        let a: Vec<Grow> = (0..4)
            .map(|b| grow(0xa0, b, 100 * u64::from(b), nasty, 10))
            .collect();
        let b: Vec<Grow> = (0..3)
            .map(|b| grow(0xb0, b, 50 + 100 * u64::from(b), "map[int]int", 20))
            .collect();
        let mut evs = vec![];
        // Map a: every growth ends (probe), but the last, still in progress at the end.
        for (i, g) in a.iter().enumerate() {
            evs.push((
                g.clone(),
                (i < 3).then(|| evacuated(g, 40, EvacuationEnd::Probe)),
            ));
        }
        for g in &b {
            evs.push((g.clone(), Some(evacuated(g, 30, EvacuationEnd::Probe))));
        }
        let h = classic_page("classic.html", &evs, true);
        check_nesting(&h);
        assert!(h.starts_with("<!DOCTYPE html>"));
        // Every text escaped: the raw type name never appears.
        assert!(!h.contains("<-chan"), "unescaped type");
        assert!(h.contains("map[string]&lt;-chan *main.T[&quot;q&quot;]"));
        assert!(h.contains("/srv/app &lt;prod&gt; &amp; &quot;x&quot;"));
        // Header.
        for s in [
            "go1.23.9",
            "classic (hash buckets)",
            "pid <span id=\"pid\">42</span>",
            "2023-11-14 22:13:20.000000 UTC",
            "3 (ring buffer full",
        ] {
            assert!(h.contains(s), "{s} missing");
        }
        // A row per site, a chart per map, most events first.
        assert_eq!(h.matches("<tr class=\"site\">").count(), 2);
        assert!(h.contains("main.fill (main.go:10)"));
        assert!(h.contains("<code>make(map[string]&lt;-chan *main.T[&quot;q&quot;], 104)</code>"));
        assert_eq!(count(&h, "<svg class=\"chart\""), 2);
        let first = h.find("data-map=\"0xa0\"").unwrap();
        assert!(first < h.find("data-map=\"0xb0\"").unwrap());
        // Markers and spans: 7 grows; 6 finished growths and 1 in progress.
        assert_eq!(count(&h, "<circle class=\"ev grow\""), 7);
        assert_eq!(count(&h, "<rect class=\"span done\""), 6);
        assert_eq!(count(&h, "<rect class=\"span open\""), 1);
        assert_eq!(count(&h, "<path class=\"size\""), 2);
        // Log2 axis from 1 to 16 buckets for map a.
        assert!(h.contains(">16</text>") && h.contains(">1</text>"));
        // Nothing to fetch: the only URL is the SVG namespace.
        let urls = h.matches("http://").count() + h.matches("https://").count();
        assert_eq!(urls, count(&h, "xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(!h.contains(" src=") && !h.contains(" href="));
    }

    #[test]
    fn test_report_inferred_and_unseen_ends() {
        let gs: Vec<Grow> = (0..3)
            .map(|b| grow(0xa0, b, 100 * u64::from(b), "map[int]int", 10))
            .collect();
        // No finishing probe: ends inferred from the next grow, the last unknown.
        let mut t = Timeline::inferring_ends();
        let path = out_path("inferred.html");
        let mut sink = ReportSink::create(&path).unwrap();
        sink.start(&start_info("classic", false)).unwrap();
        for g in &gs {
            if let Some(e) = t.push(g) {
                sink.evacuated(&e).unwrap();
            }
            sink.grow(g).unwrap();
        }
        sink.finish(&end_of(t, 3)).unwrap();
        let h = std::fs::read_to_string(&path).unwrap();
        check_nesting(&h);
        assert_eq!(count(&h, "<rect class=\"span inferred\""), 2);
        assert_eq!(count(&h, "<rect class=\"span open\""), 0);
        assert!(h.contains("The end of the last growth (from +200.0 µs) is not known"));

        // With the probe, a growth the next grow found unfinished ended unseen.
        let evs: Vec<_> = gs.iter().map(|g| (g.clone(), None)).collect();
        let h = classic_page("unseen.html", &evs, true);
        assert_eq!(count(&h, "<rect class=\"span unseen\""), 2);
        assert_eq!(count(&h, "<rect class=\"span open\""), 1);
    }

    #[test]
    fn test_report_swiss_structure() {
        let path = out_path("swiss.html");
        let mut sink = ReportSink::create(&path).unwrap();
        sink.start(&start_info("swiss", false)).unwrap();
        let mut t = Timeline::new();
        let mut evs = vec![swiss(SwissKind::SmallToTable, 0xc0, 0, (8, 16), 0)];
        for (i, cap) in [16u64, 32, 64, 128, 256, 512].into_iter().enumerate() {
            evs.push(swiss(
                SwissKind::TableGrow,
                0xc0,
                100 + 100 * i as u64,
                (cap, cap * 2),
                1,
            ));
        }
        evs.push(swiss(SwissKind::TableSplit, 0xc0, 1000, (1024, 1024), 1));
        evs.push(swiss(SwissKind::TableSplit, 0xc0, 1200, (1024, 1024), 2));
        for r in &evs {
            t.push_swiss(r);
            sink.swiss(r).unwrap();
        }
        let end = end_of(t, evs.len() as u64);
        // Its history: 16 → … → 1024 slots, then 2048, 3072.
        assert_eq!(end.maps[0].slots, 3072);
        sink.finish(&end).unwrap();
        let h = std::fs::read_to_string(&path).unwrap();
        check_nesting(&h);
        assert!(h.contains("swiss (Swiss tables)"));
        assert!(h.contains("map[string]*main.T"));
        assert_eq!(count(&h, "<svg class=\"chart\""), 1);
        assert_eq!(count(&h, "<circle class=\"ev totable\""), 1);
        assert_eq!(count(&h, "<circle class=\"ev grow\""), 6);
        assert_eq!(count(&h, "<circle class=\"ev split\""), 2);
        // A bar per resize (9 of 20 µs; none merged at this zoom).
        assert_eq!(count(&h, "<rect class=\"span resize\""), 9);
        assert!(h.contains("slots (log2)"));
        assert!(h.contains(">4Ki</text>"), "log2 axis up to 4Ki slots");
    }

    #[test]
    fn test_report_caps_and_omitted_maps() {
        let path = out_path("caps.html");
        let mut sink = ReportSink::create(&path).unwrap();
        sink.start(&start_info("classic", true)).unwrap();
        let mut t = Timeline::new();
        // MAX_CHARTS + 5 maps of one grow, and one map of many same-size grows.
        for i in 0..(MAX_CHARTS as u64 + 5) {
            let g = grow(0x1000 + i * 16, 0, i, "map[int]int", 10);
            t.push(&g);
            sink.grow(&g).unwrap();
        }
        let n = MAX_POINTS_PER_MAP as u64 + 10;
        for i in 0..n {
            let mut g = grow(0xf000, 3, 1000 + i, "map[int]int", 11);
            g.same_size = true;
            g.buckets_before = 8;
            g.buckets_after = 8;
            t.push(&g);
            sink.grow(&g).unwrap();
        }
        let grows = t.grows();
        sink.finish(&end_of(t, grows)).unwrap();
        let h = std::fs::read_to_string(&path).unwrap();
        check_nesting(&h);
        assert_eq!(count(&h, "<svg class=\"chart\""), MAX_CHARTS);
        assert!(
            h.contains("6 more map(s) not charted"),
            "36 maps, 30 charted"
        );
        assert!(h.contains("1 map(s) reached 10000 points each"));
        assert!(h.contains("<p class=\"cut\">Cut: "));
        // Same-size grows on one pixel share markers.
        assert!(count(&h, "<circle class=\"ev same\"") < 2000);
    }

    #[test]
    fn test_report_follows_timeline_map_identity() {
        // Address reuse: a smaller map, and a map from another site, at one address.
        let evs = [
            grow(0xa0, 0, 0, "map[int]int", 10),
            grow(0xa0, 1, 10, "map[int]int", 10),
            grow(0xa0, 0, 20, "map[int]int", 10),
            grow(0xa0, 1, 30, "map[int]int", 12),
        ];
        let evs: Vec<_> = evs.into_iter().map(|g| (g, None)).collect();
        let h = classic_page("identity.html", &evs, true);
        assert_eq!(count(&h, "<svg class=\"chart\""), 3);
        assert!(!h.contains("no points kept"));
    }

    #[test]
    fn test_report_slices_section() {
        let path = out_path("slices.html");
        let mut sink = ReportSink::create(&path).unwrap();
        sink.start(&start_info("classic", true)).unwrap();
        for cap in [1u64, 2, 4, 8] {
            sink.slice(&SliceGrow {
                time_ns: T0 + cap,
                pid: 42,
                tid: 42,
                goid: 1,
                cap_before: cap / 2,
                cap_after: cap,
                elem_size: 8,
                bytes: cap * 8,
                duration_ns: 100,
                elem_type: 0x10,
                partial: false,
                origin: origin("main.appendInts", 80),
                elem_type_name: Some("<-chan int".into()),
            })
            .unwrap();
        }
        let mut end = end_info(vec![], 0);
        end.slices = Some((4, 0));
        end.overhead.budget_percent = Some(5.0);
        end.overhead.families = vec![crate::overhead::FamilyCost {
            family: crate::overhead::Family::Slices,
            hits: 4,
            estimated_ns: 1000,
            detached: Some((T0 + 1_000_000, 12.0)),
        }];
        sink.finish(&end).unwrap();
        let h = std::fs::read_to_string(&path).unwrap();
        check_nesting(&h);
        assert!(h.contains("<section id=\"slices\">"));
        assert!(h.contains("4 growths, 120 B"));
        assert_eq!(h.matches("<tr class=\"slice-site\">").count(), 1);
        assert!(h.contains("<code>&lt;-chan int</code>"));
        assert!(h.contains("main.appendInts (main.go:80)"));
        assert!(h.contains("No map grew while traced."));
        assert!(h.contains("detached the --slices probes at +1.0 ms (12% of the target"));
    }

    #[test]
    fn test_report_file_handling() {
        assert!(ReportSink::create(Path::new("/nonexistent-dir/x/report.html")).is_err());
        // Dropped unfinished (the session failed): no file left behind.
        let path = out_path("dropped.html");
        let sink = ReportSink::create(&path).unwrap();
        assert!(tmp_path(&path).exists());
        drop(sink);
        assert!(!tmp_path(&path).exists() && !path.exists());
    }

    #[test]
    fn test_utc_and_ticks() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000000 UTC");
        assert_eq!(utc(T0 + 1500), "2023-11-14 22:13:20.000001 UTC");
        assert_eq!(
            utc(951_782_400_000_000_000),
            "2000-02-29 00:00:00.000000 UTC"
        );
        assert_eq!(tick_step(8_000_000.0), 1_000_000.0);
        assert_eq!(tick_step(12_000.0), 2_000.0);
        assert_eq!(offset_label(2_500_000.0, 500_000.0), "2.5 ms");
        assert_eq!(offset_label(3_000_000.0, 1_000_000.0), "3 ms");
        assert_eq!(offset(T0 - 20_000, T0), "-20.0 µs");
        assert_eq!(pow2_label(14), "16Ki");
    }
}
