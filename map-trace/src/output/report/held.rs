//! The report's "What the maps hold now" section: per site, the live entries, storage and
//! retained bytes of the sampled maps at their last samples, and for the maps holding the most,
//! a chart of storage and live entries over time.

use std::{fmt::Write as _, sync::Arc};

use rustc_hash::FxHashMap;

use super::esc;
use crate::{
    output::{format::bytes, EndInfo},
    symbols::pclntab::SourcePos,
    timeline::{by_site, health::MapSample, site_of},
};

/// Maps whose samples are kept for charts (the first seen); points per map (halved when full).
const MAX_SERIES: usize = 2000;
const MAX_POINTS: usize = 256;
/// Charts drawn: the maps holding the most storage at their last sample.
pub const MAX_HELD_CHARTS: usize = 10;

/// One map's samples over time.
#[derive(Debug)]
pub struct Series {
    type_name: Option<Arc<str>>,
    site: Option<SourcePos>,
    points: Vec<Point>,
    /// Keep every `stride`-th sample (doubles each time the points are halved).
    stride: u64,
    seen: u64,
    kept_after_deletes: bool,
    /// Found by `--discover`: `site` is where it was used.
    discovered: bool,
}

/// One point: (Unix ns, entries, storage bytes, retained bytes).
type Point = (u64, u64, u64, u64);

/// The samples the report draws, bounded.
#[derive(Debug, Default)]
pub struct Held {
    series: FxHashMap<u64, Series>,
}

impl Held {
    /// One live map's sample.
    pub fn sample(&mut self, s: &MapSample) {
        if !self.series.contains_key(&s.map) && self.series.len() >= MAX_SERIES {
            return;
        }
        let e = self.series.entry(s.map).or_insert_with(|| Series {
            type_name: s.type_name.clone(),
            site: site_of(&s.origin).cloned(),
            points: Vec::new(),
            stride: 1,
            seen: 0,
            kept_after_deletes: false,
            discovered: s.discovered,
        });
        e.kept_after_deletes |= s.kept_raised;
        let h = &s.health;
        if e.seen.is_multiple_of(e.stride) {
            e.points
                .push((s.time_ns, h.entries, h.storage_bytes, h.retained_bytes));
            if e.points.len() >= MAX_POINTS {
                // Keep every other point: the series stays bounded and still spans the run.
                let mut i = 0;
                e.points.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                e.stride *= 2;
            }
        }
        e.seen += 1;
    }

    /// A map the GC freed: its chart would show a map that no longer exists.
    pub fn freed(&mut self, map: u64) {
        self.series.remove(&map);
    }

    /// The section (nothing when no map was sampled).
    pub fn section(&self, h: &mut String, e: &EndInfo, start_ns: u64) {
        let sites: Vec<_> = by_site(&e.maps, e.load_factor_num)
            .into_iter()
            .filter_map(|t| t.live.map(|l| (l, t)))
            .collect();
        if sites.is_empty() && self.series.is_empty() {
            return;
        }
        h.push_str(
            "<section id=\"held\">\n<h2>What the maps hold now</h2>\n<p>Map samples \
             (every <code>--sample-interval</code>): the live entries and the heap storage of \
             the maps seen growing (and those <code>--discover</code> found: \
             \"used at\" the code that used them), at their last samples; <em>retained</em> \
             is storage beyond \
             what <code>make(map[K]V, len)</code> would hold. Go never shrinks a map.</p>\n",
        );
        let mut sites = sites;
        sites.sort_by_key(|(l, _)| std::cmp::Reverse(l.retained_bytes));
        h.push_str(
            "<table class=\"sites held\">\n<thead><tr><th>Live entries</th><th>Storage</th>\
             <th>Retained</th><th>Maps</th><th>Kept after deletes</th><th>Site</th></tr></thead>\n<tbody>\n",
        );
        for (l, t) in sites.iter().take(super::MAX_SITE_ROWS) {
            let _ = writeln!(
                h,
                "<tr class=\"held-site\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
                l.entries,
                bytes(l.storage_bytes),
                bytes(l.retained_bytes),
                l.maps,
                l.kept,
                if t.discovered { "used at " } else { "" },
                super::page::site_cell(t.site.as_ref()),
            );
        }
        h.push_str("</tbody>\n</table>\n");
        let mut top: Vec<(&u64, &Series)> = self.series.iter().collect();
        top.sort_by(|a, b| {
            let last = |s: &Series| s.points.last().map_or(0, |p| p.2);
            last(b.1).cmp(&last(a.1)).then(a.0.cmp(b.0))
        });
        for (map, s) in top.into_iter().take(MAX_HELD_CHARTS) {
            chart(h, *map, s, start_ns);
        }
        h.push_str("</section>\n");
    }
}

const W: f64 = 720.0;
const H: f64 = 120.0;

/// Storage (solid) and live entries (dashed) over time, each on its own linear scale.
fn chart(h: &mut String, map: u64, s: &Series, start_ns: u64) {
    let (Some(first), Some(last)) = (s.points.first(), s.points.last()) else {
        return;
    };
    let t0 = first.0.min(start_ns.max(first.0));
    let span = (last.0.saturating_sub(t0)).max(1) as f64;
    let max_storage = s.points.iter().map(|p| p.2).max().unwrap_or(1).max(1) as f64;
    let max_entries = s.points.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64;
    let line = |f: &dyn Fn(&Point) -> f64, max: f64| -> String {
        s.points
            .iter()
            .map(|p| {
                let x = (p.0 - t0) as f64 / span * (W - 10.0) + 5.0;
                let y = H - 5.0 - f(p) / max * (H - 10.0);
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let type_name = s.type_name.as_deref().unwrap_or("map (type unknown)");
    let site = s
        .site
        .as_ref()
        .map_or("(stack not symbolized)".to_string(), |p| p.to_string());
    let _ = writeln!(
        h,
        "<figure class=\"held-map\" data-map=\"{}\">\n<figcaption><code class=\"type\">{}</code> {} \
         <span class=\"where\">{}</span> <code class=\"addr\">{}</code><br><span class=\"stats\">\
         last sample: {} entries, {} held, {} retained{}; storage peak {}, entries peak {}</span>\
         </figcaption>\n<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" \
         role=\"img\" aria-label=\"{}: storage and live entries over time\">\
         <polyline class=\"held-storage\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\" points=\"{}\"/>\
         <polyline class=\"held-entries\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1\" \
         stroke-dasharray=\"4 3\" points=\"{}\"/></svg>\n<p class=\"legend\">Solid: storage (0 to {}). \
         Dashed: live entries (0 to {}). {} samples shown.</p>\n</figure>",
        crate::output::format::hex(map),
        esc(type_name),
        if s.discovered { "used at" } else { "at" },
        esc(&site),
        crate::output::format::hex(map),
        last.1,
        bytes(last.2),
        bytes(last.3),
        if s.kept_after_deletes {
            ", kept after deletes"
        } else {
            ""
        },
        bytes(max_storage as u64),
        max_entries as u64,
        esc(type_name),
        line(&|p| p.2 as f64, max_storage),
        line(&|p| p.1 as f64, max_entries),
        bytes(max_storage as u64),
        max_entries as u64,
        s.points.len(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::health::Health;

    fn sample(map: u64, t: u64, entries: u64, storage: u64) -> MapSample {
        MapSample {
            time_ns: t,
            pid: 1,
            map,
            type_name: Some("map[int]int".into()),
            origin: None,
            swiss: true,
            health: Health {
                entries,
                storage_bytes: storage,
                retained_bytes: storage / 2,
                ..Health::default()
            },
            peak_entries: entries,
            kept_raised: false,
            discovered: false,
        }
    }

    #[test]
    fn test_series_stay_bounded_and_span_the_run() {
        let mut held = Held::default();
        for i in 0..10_000u64 {
            held.sample(&sample(0xa0, i, i, 1000 + i));
        }
        let s = &held.series[&0xa0];
        assert!(s.points.len() < MAX_POINTS, "{}", s.points.len());
        assert_eq!(s.points[0].0, 0);
        assert!(s.points.last().unwrap().0 > 9_000);
        held.freed(0xa0);
        assert!(held.series.is_empty());
    }

    #[test]
    fn test_chart_escapes_and_draws_both_lines() {
        let mut held = Held::default();
        let mut s = sample(0xb0, 10, 5, 100);
        s.type_name = Some("map[string]<T>".into());
        held.sample(&s);
        held.sample(&sample(0xb0, 20, 1, 100));
        let mut h = String::new();
        chart(&mut h, 0xb0, &held.series[&0xb0], 0);
        assert!(h.contains("map[string]&lt;T&gt;"), "{h}");
        assert!(h.contains("class=\"held-storage\"") && h.contains("class=\"held-entries\""));
        assert!(!h.contains("NaN"));
    }
}
