//! The summary after the trace: totals and probe hits, then the call sites ranked by events
//! with the `make` that presizes their maps.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{
    clock,
    live::{bytes_style, site_text},
    style::{width, Line, Style, WIDTH},
};
use crate::{
    output::EndInfo,
    overhead::Overhead,
    symbols::pclntab::SourcePos,
    timeline::{by_site, Origin},
};

/// Sites listed; the JSON summary has them all.
pub const MAX_SITES: usize = 20;

/// Where the SITE column starts.
const SITE_COL: usize = 35;

/// `prefix` then `items` joined by `sep`, broken into lines of at most [`WIDTH`] columns
/// (continuation lines start `#   `).
pub fn wrap(prefix: &str, items: &[String], sep: &str, style: Style) -> Vec<Line> {
    let mut texts = vec![];
    let mut cur = prefix.to_string();
    let mut fresh = true;
    for item in items {
        if fresh {
            cur.push_str(item);
            fresh = false;
        } else if width(&cur) + width(sep) + width(item) > WIDTH {
            cur.push_str(sep.trim_end());
            texts.push(std::mem::replace(&mut cur, format!("#   {item}")));
        } else {
            cur.push_str(sep);
            cur.push_str(item);
        }
    }
    texts.push(cur);
    texts
        .into_iter()
        .map(|t| {
            let mut l = Line::new();
            l.push(style, &t);
            l.truncate(WIDTH);
            l
        })
        .collect()
}

/// The totals: events, maps, losses, probe hits, what was not shown.
pub fn totals(e: &EndInfo) -> Vec<Line> {
    let mut out = vec![];
    let found = e.maps.iter().filter(|m| m.discovered).count();
    let mut items = vec![
        if found > 0 {
            format!(
                "{} resize events in {} maps (and {found} found by --discover)",
                e.events,
                e.maps.len() - found
            )
        } else {
            format!("{} resize events in {} maps", e.events, e.maps.len())
        },
        format!("lost events: {}", e.lost),
    ];
    if let Some(s) = e.exit_status {
        items.push(format!("target exit status {s}"));
    }
    out.extend(wrap("# summary: ", &items, "; ", Style::Plain));
    let hits: Vec<String> = if e.probe_hits.is_empty() {
        vec!["none".into()]
    } else {
        e.probe_hits
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect()
    };
    out.extend(wrap("# probe hits: ", &hits, ", ", Style::Plain));
    out.extend(overhead(&e.overhead));
    if let Some(sm) = &e.sampled {
        out.extend(wrap(
            "# SAMPLED: ",
            &[
                format!(
                    "the {} probes were attached {:.1}% of the time from {} on, to stay within the budget",
                    sm.sampling.family.name(),
                    sm.sampling.coverage() * 100.0,
                    clock(sm.sampling.since_ns)
                ),
                format!(
                    "{} events seen ({} before, {} while sampled): ~{} estimated",
                    sm.events_before + sm.events_sampled,
                    sm.events_before,
                    sm.events_sampled,
                    sm.events_estimated()
                ),
                "the per-map and per-site counts below are what was seen".into(),
            ],
            "; ",
            Style::Warn,
        ));
    }
    if let Some((shown, below)) = e.slices {
        out.extend(wrap(
            "# slices: ",
            &[
                format!("{shown} growths reported"),
                format!("{below} below --min-bytes not shown"),
            ],
            ", ",
            Style::Plain,
        ));
    }
    let h = &e.health;
    if h.enabled {
        out.extend(wrap(
            "# map samples: ",
            &[
                format!("{} rounds", h.rounds),
                format!("{} map samples", h.samples),
                if h.rounds_capped > 0 {
                    format!("{} rounds capped by --max-sampled-maps", h.rounds_capped)
                } else {
                    "every tracked map sampled".into()
                },
            ],
            ", ",
            Style::Plain,
        ));
    }
    if let Some(d) = &h.discovery {
        out.extend(wrap(
            "# discovery: ",
            &discovery_parts(d),
            ", ",
            Style::Plain,
        ));
    }
    if let Some(note) = h
        .note
        .as_deref()
        .filter(|n| *n != crate::timeline::health::OFF_BY_FLAG)
    {
        out.extend(wrap(
            "# no map sampling: ",
            &note.split(' ').map(str::to_string).collect::<Vec<_>>(),
            " ",
            Style::Warn,
        ));
    }
    if e.runtime_events_hidden > 0 {
        out.extend(wrap(
            "# ",
            &[
                format!(
                    "{} events of the Go runtime's own maps not shown",
                    e.runtime_events_hidden
                ),
                "(--runtime-maps shows them)".into(),
            ],
            " ",
            Style::Plain,
        ));
    }
    if e.lost > 0 {
        out.extend(wrap(
            "# WARNING: ",
            &[
                format!("{} events were lost (ring buffer full)", e.lost),
                "counts below are incomplete".into(),
            ],
            "; ",
            Style::Alert,
        ));
    }
    if e.maps.is_empty() {
        let mut l = Line::new();
        l.plain("# no map grew while traced");
        out.push(l);
    }
    out
}

/// The overhead summary (see [`Overhead`]): the cost of a hit and the estimated time added,
/// broken after the `;` when wider than [`WIDTH`]; the share of the target's CPU; a line per
/// probe family. A family `--max-overhead` detached is yellow, and its `detached at …` goes
/// on a line of its own when the whole is wider.
fn overhead(o: &Overhead) -> Vec<Line> {
    let ms = |ns: u64| format!("{:.1} ms", ns as f64 / 1e6);
    let mut out = wrap(
        "",
        &[
            format!(
                "# overhead: a probe hit costs {:.1} µs, {:.1} single-stepped ({})",
                o.hit_cost.body_ns / 1000.0,
                o.hit_cost.stepped_ns / 1000.0,
                if o.hit_cost.calibrated {
                    "measured"
                } else {
                    "not measured"
                },
            ),
            format!("added ~{}", ms(o.estimated_ns)),
        ],
        "; ",
        Style::Plain,
    );
    if let Some(cpu) = o.target_cpu_ns.filter(|c| *c > 0) {
        out.extend(wrap(
            "",
            &[format!(
                "#   = {:.2}% of the {:.2} s of CPU the target used while traced",
                o.estimated_ns as f64 * 100.0 / cpu as f64,
                cpu as f64 / 1e9
            )],
            "; ",
            Style::Plain,
        ));
    }
    for f in &o.families {
        let main = format!(
            "#   {:<12} {:>10} hits  ~{}",
            f.family.flag().unwrap_or(f.family.name()),
            f.hits,
            ms(f.estimated_ns)
        );
        let Some((t, share)) = f.detached else {
            out.extend(wrap("", &[main], "; ", Style::Plain));
            continue;
        };
        let detached = match o.sampling.filter(|s| s.family == f.family) {
            Some(sm) => format!(
                "sampled from {} ({share:.0}% > {}%; attached {:.1}% since)",
                clock(t),
                o.budget_percent.unwrap_or(0.0),
                sm.coverage() * 100.0
            ),
            None => format!(
                "detached at {} ({share:.0}% > {}%)",
                clock(t),
                o.budget_percent.unwrap_or(0.0)
            ),
        };
        let whole = format!("{main}  {detached}");
        if width(&whole) <= WIDTH {
            let mut l = Line::new();
            l.push(Style::Warn, &whole);
            out.push(l);
        } else {
            let mut first = Line::new();
            first.push(Style::Warn, &main);
            first.truncate(WIDTH);
            let mut second = Line::new();
            second.plain("#     ").push(Style::Warn, &detached);
            second.truncate(WIDTH);
            out.extend([first, second]);
        }
    }
    out
}

/// `presize: make(T, N)` under its site: at the SITE column when it fits, else at column 2,
/// else broken over lines (never cut: it is the thing to paste).
pub fn hint_lines(hint: &str) -> Vec<Line> {
    let line = |indent: usize, text: &str| {
        let mut l = Line::new();
        l.plain(&" ".repeat(indent)).push(Style::Hint, text);
        l
    };
    let w = width(hint);
    if SITE_COL + w <= WIDTH {
        return vec![line(SITE_COL, hint)];
    }
    if 2 + w <= WIDTH {
        return vec![line(2, hint)];
    }
    // Greedy, preferring to break after `,`, `]`, `)`, `;` or a space in the last 24 columns.
    let mut out = vec![];
    let mut rest: Vec<char> = hint.chars().collect();
    let mut indent = 2;
    while !rest.is_empty() {
        let room = WIDTH - indent;
        let mut cols = 0;
        let mut cut = rest.len();
        let mut best = None;
        for (i, c) in rest.iter().enumerate() {
            cols += super::style::char_width(*c);
            if cols > room {
                cut = i;
                break;
            }
            if matches!(c, ',' | ']' | ')' | ';' | ' ') && cols + 24 > room {
                best = Some(i + 1);
            }
        }
        if cut < rest.len() {
            cut = best.unwrap_or(cut).max(1);
        }
        let chunk: String = rest.drain(..cut).collect();
        out.push(line(indent, &chunk));
        indent = 4;
    }
    out
}

/// The SITE column of a site row: the site fitted to the room left on `l`.
fn site_column(l: &Line, site: Option<&SourcePos>) -> String {
    match site {
        Some(p) => site_text(p, l.room()).unwrap_or_default(),
        None => "(stack not symbolized)".to_string(),
    }
}

/// Pads `s` on the left to `w` columns, as a plain segment before the styled value.
fn right(l: &mut Line, w: usize, s: &str, style: Style) {
    l.plain(&" ".repeat(w.saturating_sub(width(s))))
        .push(style, s);
}

/// What the sampled maps hold now, per call site, most retained first: LIVE entries, STORAGE
/// and RETAINED bytes at their last samples (maps found freed are left out), then a line per
/// map found kept after deletes.
pub fn live(e: &EndInfo) -> Vec<Line> {
    let mut sites: Vec<_> = by_site(&e.maps, e.load_factor_num)
        .into_iter()
        .filter_map(|t| t.live.map(|l| (l, t)))
        .collect();
    if sites.is_empty() {
        return vec![];
    }
    sites.sort_by(|a, b| {
        b.0.retained_bytes
            .cmp(&a.0.retained_bytes)
            .then(b.0.storage_bytes.cmp(&a.0.storage_bytes))
    });
    let mut out = vec![Line::new()];
    let mut l = Line::new();
    l.plain("# what the maps hold now (last samples; most retained first)");
    out.push(l);
    let mut l = Line::new();
    l.push(
        Style::Bold,
        &format!(
            "{:>9} {:>10} {:>10} {:>5}  SITE",
            "LIVE", "STORAGE", "RETAINED", "MAPS"
        ),
    );
    out.push(l);
    for (lv, t) in sites.iter().take(MAX_SITES) {
        let mut l = Line::new();
        l.plain(&format!("{:>9} ", lv.entries));
        right(
            &mut l,
            10,
            &super::bytes(lv.storage_bytes),
            bytes_style(lv.storage_bytes),
        );
        l.plain(" ");
        right(
            &mut l,
            10,
            &super::bytes(lv.retained_bytes),
            bytes_style(lv.retained_bytes),
        );
        l.plain(&format!(" {:>5}  ", lv.maps));
        if t.discovered {
            // Grew before map-trace attached: where it was used, not where it grew.
            l.plain("used at ");
        }
        l.plain(&site_column(&l, t.site.as_ref()));
        l.truncate(WIDTH);
        out.push(l);
    }
    let kept: Vec<_> = e
        .maps
        .iter()
        .filter(|m| {
            m.health
                .as_ref()
                .is_some_and(|h| h.kept_since_ns.is_some() && h.freed_ns.is_none())
        })
        .collect();
    for m in kept.iter().take(MAX_SITES) {
        let h = m.health.as_ref().expect("filtered");
        out.extend(kept_lines(&crate::output::format::kept_advice(
            m.type_name.as_deref(),
            &m.origin,
            &h.last,
            h.peak_entries,
            m.discovered,
        )));
    }
    out
}

/// The summary's `# discovery:` parts: what the `--discover` window saw and kept.
fn discovery_parts(d: &crate::timeline::health::DiscoveryReport) -> Vec<String> {
    let mut v = vec![
        format!(
            "{} on {} map functions ({})",
            super::super::format::duration(d.window_ms * 1_000_000),
            d.functions,
            match d.ended.as_str() {
                "budget" => "ended early by --max-overhead",
                "stopped" => "cut short: tracing stopped",
                _ => "the whole window",
            }
        ),
        format!("{} accesses", d.hits),
        format!("{} maps seen", d.seen),
        format!("{} already tracked", d.already_tracked),
        format!("{} not live heap maps", d.not_live),
        format!("{} now tracked", d.added),
    ];
    if d.over_cap > 0 {
        v.push(format!(
            "{} smaller ones over --max-sampled-maps",
            d.over_cap
        ));
    }
    if d.evicted > 0 {
        v.push(format!("{} forgotten (table full)", d.evicted));
    }
    v
}

/// The "kept after deletes" finding (its [`kept_advice`](crate::output::format::kept_advice)),
/// wrapped to the width.
pub fn kept_lines(advice: &str) -> Vec<Line> {
    let words: Vec<String> = advice.split(' ').map(str::to_string).collect();
    wrap("! kept after deletes: ", &words, " ", Style::Alert)
}

/// The call sites ranked by events (at most [`MAX_SITES`]), each with its presize hint on the
/// next line. TIME is the time spent moving entries: Swiss resizes, and with `--evacuation` the
/// `evacuate` calls of hash-bucket maps.
pub fn sites(e: &EndInfo) -> Vec<Line> {
    let mut out = vec![];
    let sites = by_site(&e.maps, e.load_factor_num);
    if sites.iter().all(|t| t.discovered) {
        return out;
    }
    type Key = (Option<SourcePos>, Option<Arc<str>>);
    let mut moves: FxHashMap<Key, u64> = FxHashMap::default();
    for m in e.maps.iter().filter(|m| m.evacuate_steps_ns > 0) {
        let key = (
            m.origin.as_deref().and_then(Origin::site).cloned(),
            m.type_name.clone(),
        );
        let v = moves.entry(key).or_default();
        *v = v.saturating_add(m.evacuate_steps_ns);
    }
    let mut l = Line::new();
    l.plain("# by call site (most events first)");
    out.push(l);
    let mut l = Line::new();
    l.push(
        Style::Bold,
        &format!(
            "{:>6} {:>5} {:>10} {:>9}  SITE",
            "EVENTS", "MAPS", "ALLOCATED", "TIME"
        ),
    );
    out.push(l);
    // Discovered maps were not seen growing: they are in the table of what maps hold.
    for t in sites.iter().filter(|t| !t.discovered).take(MAX_SITES) {
        let time = t.total_duration_ns.saturating_add(
            moves
                .get(&(t.site.clone(), t.type_name.clone()))
                .copied()
                .unwrap_or(0),
        );
        let mut l = Line::new();
        l.plain(&format!("{:>6} {:>5} ", t.events, t.maps));
        if t.bytes_allocated == 0 {
            right(&mut l, 10, "-", Style::Plain);
        } else {
            right(
                &mut l,
                10,
                &super::bytes(t.bytes_allocated),
                bytes_style(t.bytes_allocated),
            );
        }
        l.plain(&format!(
            " {:>9}  ",
            if time == 0 {
                "-".to_string()
            } else {
                super::duration(time)
            }
        ));
        l.plain(&site_column(&l, t.site.as_ref()));
        l.truncate(WIDTH);
        out.push(l);
        if let Some(h) = t.presize_hint {
            out.extend(hint_lines(&format!(
                "presize: make({}, {h})",
                t.type_name.as_deref().unwrap_or("map[…]…")
            )));
        }
    }
    if sites.len() > MAX_SITES {
        let mut l = Line::new();
        l.plain(&format!(
            "# … {} more sites (--format json lists them all)",
            sites.len() - MAX_SITES
        ));
        out.push(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_wrap_breaks_at_items() {
        let items: Vec<String> = (0..12)
            .map(|i| format!("maps.(*Map).probe{i} 1234"))
            .collect();
        let lines = wrap("# probe hits: ", &items, ", ", Style::Plain);
        assert!(lines.len() > 1);
        let text: Vec<String> = lines.iter().map(|l| l.render(false)).collect();
        assert!(text[0].starts_with("# probe hits: maps.(*Map).probe0 1234, "));
        assert!(text[0].ends_with(','));
        assert!(text[1].starts_with("#   maps."));
        for t in &text {
            assert!(width(t) <= WIDTH, "{t}");
        }
        assert_eq!(text.join("\n").matches(" 1234").count(), 12);
    }

    #[test]
    fn test_hint_lines_placement() {
        let short = hint_lines("presize: make(map[int]int, 106496)");
        assert_eq!(short.len(), 1);
        assert_eq!(
            short[0].render(false),
            format!("{}presize: make(map[int]int, 106496)", " ".repeat(SITE_COL))
        );
        let mid = format!("presize: make(map[string]*{}.Thing, 26)", "a".repeat(40));
        let l = hint_lines(&mid);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].render(false), format!("  {mid}"));
        let long = format!(
            "presize: make(map[struct {{ A {0}; B {0} }}]map[string]int, 26)",
            "github.com/acme/very/long/package/path.Type"
        );
        let l = hint_lines(&long);
        assert!(l.len() >= 2);
        let joined: String = l
            .iter()
            .map(|x| x.render(false).trim_start().to_string())
            .collect();
        assert_eq!(joined, long, "complete, only broken");
        for x in &l {
            assert!(x.width() <= WIDTH);
        }
    }
}
