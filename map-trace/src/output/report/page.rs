//! The report's page: the document around the sections, the header, the notes, the call-site
//! table, the charts section and the slices table.

use std::fmt::Write as _;

use super::{
    chart::{chart, offset},
    esc, ReportSink, SliceKey, SliceSite, MAX_CHARTS, MAX_SITE_ROWS, MAX_SLICE_SITES,
};
use crate::{
    golayout::MapImpl,
    output::{
        format::{bytes, duration, utc},
        EndInfo, StopReason,
    },
    symbols::pclntab::SourcePos,
    timeline::{
        by_site,
        history::{MAX_POINTS_PER_MAP, MAX_POINTS_TOTAL},
    },
};

/// The page's stylesheet.
const CSS: &str = include_str!("report.css");
/// The chart filter; also states how many charts are shown.
const SCRIPT: &str = include_str!("report.js");

impl ReportSink {
    /// The page.
    pub(super) fn render(&self, end: &EndInfo) -> String {
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
             <meta name=\"generator\" content=\"map-trace {}\">\n<title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
            env!("CARGO_PKG_VERSION"),
            esc(&title)
        );
        self.header(&mut h, end);
        fatal_section(&mut h, end);
        self.notes(&mut h, end);
        sites_table(&mut h, end);
        let start_ns = self.start.as_ref().map_or(end.time_ns, |s| s.time_ns);
        self.held.section(&mut h, end, start_ns);
        self.charts(&mut h, end);
        self.slices_section(&mut h, end);
        let _ = write!(
            h,
            "<footer>Written by map-trace {} when tracing ended. Times are UTC; chart times are \
             from the start of tracing.</footer>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n",
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
                    MapImpl::Swiss => "swiss (Swiss tables)",
                    MapImpl::Classic => "classic (hash buckets)",
                },
            );
            row("Architecture", &esc(s.arch.goarch()));
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
            StopReason::TargetExited => "the target exited",
            StopReason::Signal => "a signal",
            StopReason::Duration => "--duration elapsed",
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

/// The call-site table: the text summary's "by call site", as HTML.
/// The map misuse the runtime killed the process for, first on the page when there was one.
fn fatal_section(h: &mut String, e: &EndInfo) {
    if e.fatal.is_empty() {
        return;
    }
    h.push_str(
        "<section id=\"fatal\">\n<h2>Killed by the Go runtime: concurrent map misuse</h2>\n\
         <p>Two goroutines used one map at once and at least one of them wrote it. Each \
         goroutine that reached the runtime's fatal error is a row: guard the map with a \
         <code>sync.Mutex</code> or <code>sync.RWMutex</code>, or use <code>sync.Map</code>.</p>\n\
         <table class=\"sites\">\n<thead><tr><th>Goroutine</th><th>Fatal error</th><th>Site</th>\
         <th>Map</th><th>Found</th></tr></thead>\n<tbody>\n",
    );
    for c in &e.fatal {
        let map = match c.map {
            Some(m) => format!(
                "<code>{}</code> {}",
                crate::output::hex(m),
                esc(c.type_name.as_deref().unwrap_or(""))
            ),
            None => "-".to_string(),
        };
        let _ = writeln!(
            h,
            "<tr class=\"fatal\"><td>{}</td><td>{}</td><td>{}</td><td>{map}</td><td>{}</td></tr>",
            c.goid,
            esc(c.kind.message()),
            site_cell(c.origin.as_deref().and_then(|o| o.site())),
            esc(&c.found)
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

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
pub(super) fn site_cell(site: Option<&SourcePos>) -> String {
    match site {
        Some(p) => format!(
            "<span class=\"where\" title=\"{}\">{}</span>",
            esc(&p.file),
            esc(&p.to_string())
        ),
        None => "<span class=\"where unknown\">(stack not symbolized)</span>".to_string(),
    }
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
