//! A map's chart: its storage size over time as a step line on a log2 scale, a marker per
//! event and a bar per growth span, as inline SVG.

use std::fmt::Write as _;

use rustc_hash::FxHashMap;

use super::esc;
use crate::{
    output::format::{bytes, duration, hex},
    timeline::{
        history::{History, Mark, SpanEnd, MAX_POINTS_PER_MAP},
        site_of, MapSummary, SwissKind,
    },
};

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
pub(super) fn offset(time_ns: u64, start_ns: u64) -> String {
    let d = time_ns as i128 - start_ns as i128;
    let sign = if d < 0 { "-" } else { "+" };
    format!("{sign}{}", duration(d.unsigned_abs() as u64))
}

/// One map's chart: a `<figure>` with its label and an inline SVG.
pub(super) fn chart(h: &mut String, m: &MapSummary, start_ns: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ticks_and_labels() {
        const T0: u64 = 1_700_000_000_000_000_000;
        assert_eq!(tick_step(8_000_000.0), 1_000_000.0);
        assert_eq!(tick_step(12_000.0), 2_000.0);
        assert_eq!(offset_label(2_500_000.0, 500_000.0), "2.5 ms");
        assert_eq!(offset_label(3_000_000.0, 1_000_000.0), "3 ms");
        assert_eq!(offset(T0 - 20_000, T0), "-20.0 µs");
        assert_eq!(pow2_label(14), "16Ki");
    }
}
