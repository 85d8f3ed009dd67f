//! Per-map timelines for the summary: when along the trace each map grew, and how long its
//! growths lasted, as one [`WIDTH`]-column strip per map under a shared time axis:
//!
//! ```text
//! 0xc00008cf08 map[string]int64 14 grows 1→16384 6.9MiB grew 288ms (main.go:30)
//! *|||===|=======.................................................................
//! |0                  |408ms              |817ms              |1.23s        1.63s|
//! ```
//!
//! Drawn from each map's history ([`History`]), which the timeline keeps bounded (per map and
//! in total); the section says when those caps cut something.

use super::{
    live::{bytes_short, bytes_style, clock_ms, duration_short, duration_style, with_site},
    style::{fit_right, Line, Style, WIDTH},
    table::wrap,
};
use crate::{
    output::{hex, EndInfo},
    timeline::{
        history::{History, SpanEnd},
        site_of, MapSummary,
    },
};

/// Maps shown in the summary.
pub const TOP_MAPS: usize = 8;

/// The column of time `t` on a strip of `width` columns from `start` to `end`.
pub fn column(t: u64, start: u64, end: u64, width: usize) -> usize {
    let span = u128::from(end.saturating_sub(start).max(1));
    let off = u128::from(t.saturating_sub(start));
    ((off * width as u128 / span) as usize).min(width - 1)
}

/// What one column of a strip shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Nothing happened: `.`.
    Idle,
    /// This many events started here: `|` for one, `2`–`9`, `*` for ten or more.
    Mark(u32),
    /// The map was growing (classic) or resizing (Swiss): `=`.
    Growing,
    /// Growing, as far as known: the end is an upper bound: `-`.
    Inferred,
    /// Still growing when tracing stopped: `>` in the last column.
    StillGrowing,
}

impl Cell {
    /// The character shown.
    pub fn char(self) -> char {
        match self {
            Cell::Idle => '.',
            Cell::Mark(1) => '|',
            Cell::Mark(n @ 2..=9) => char::from_digit(n, 10).unwrap_or('*'),
            Cell::Mark(_) => '*',
            Cell::Growing => '=',
            Cell::Inferred => '-',
            Cell::StillGrowing => '>',
        }
    }

    fn style(self) -> Style {
        match self {
            Cell::Idle => Style::Dim,
            Cell::Mark(_) => Style::Bold,
            Cell::Growing | Cell::StillGrowing => Style::Warn,
            Cell::Inferred => Style::Note,
        }
    }
}

/// The cells of one map's strip: spans first (measured `=`, upper bounds `-`), then a mark
/// where events started; a growth in progress at the end runs to the last column, which shows
/// `>` unless an event is marked there.
pub fn cells(h: &History, start: u64, end: u64, width: usize) -> Vec<Cell> {
    let mut out = vec![Cell::Idle; width];
    let col = |t| column(t, start, end, width);
    let mut in_progress = false;
    for s in h.spans() {
        let fill = match s.end {
            SpanEnd::Probe | SpanEnd::Resize => Cell::Growing,
            SpanEnd::InProgress => {
                in_progress = true;
                Cell::Growing
            }
            SpanEnd::Inferred | SpanEnd::Unseen => Cell::Inferred,
        };
        for c in &mut out[col(s.start_ns)..=col(s.end_ns.max(s.start_ns))] {
            if *c != Cell::Growing {
                *c = fill;
            }
        }
    }
    if in_progress {
        out[width - 1] = Cell::StillGrowing;
    }
    for p in &h.points {
        let c = &mut out[col(p.time_ns)];
        *c = match *c {
            Cell::Mark(n) => Cell::Mark(n.saturating_add(1)),
            _ => Cell::Mark(1),
        };
    }
    out
}

/// A strip as a line: runs of equal cells share a segment.
pub fn strip_line(cells: &[Cell]) -> Line {
    let mut l = Line::new();
    let mut run = String::new();
    let mut style = None;
    for c in cells {
        if style.is_some_and(|s| s != c.style()) {
            l.push(style.unwrap_or(Style::Plain), &run);
            run.clear();
        }
        style = Some(c.style());
        run.push(c.char());
    }
    l.push(style.unwrap_or(Style::Plain), &run);
    l
}

/// The time axis under the strips: a tick every quarter with the time since the start, and the
/// whole span at the right edge: `|0                   |83.2ms … 333ms|`.
pub fn axis(span_ns: u64, width: usize) -> Line {
    let mut chars = vec![' '; width];
    let quarter = width / 4;
    for q in 0..4 {
        let c = q * quarter;
        chars[c] = '|';
        let label = if q == 0 {
            "0".to_string()
        } else {
            duration_short((u128::from(span_ns) * c as u128 / width as u128) as u64)
        };
        for (i, ch) in label.chars().enumerate() {
            if let Some(slot) = chars.get_mut(c + 1 + i).filter(|_| i + 1 < quarter) {
                *slot = ch;
            }
        }
    }
    let end: Vec<char> = duration_short(span_ns).chars().collect();
    chars[width - 1] = '|';
    let from = (width - 1)
        .saturating_sub(end.len())
        .max(3 * quarter + quarter / 2);
    for (i, ch) in end.into_iter().enumerate() {
        if from + i < width - 1 {
            chars[from + i] = ch;
        }
    }
    let mut l = Line::new();
    l.push(Style::Dim, &chars.into_iter().collect::<String>());
    l
}

/// The header line of one map: address, type, how it grew, what it cost, the call site.
/// `upper_bound`: some growth ends were inferred, so the growth time is at most that.
pub fn map_header(m: &MapSummary, still_growing: bool, upper_bound: bool) -> Line {
    let mut l = Line::new();
    l.plain(&hex(m.map)).plain(" ");
    if let Some(t) = m.type_name.as_deref() {
        l.plain(&fit_right(t, 24)).plain(" ");
    }
    match &m.swiss {
        None => {
            l.plain(&format!(
                "{} grow{} ",
                m.grows,
                if m.grows == 1 { "" } else { "s" }
            ));
            if m.same_size_grows > 0 {
                l.plain(&format!("({} same-size) ", m.same_size_grows));
            }
            l.push(
                Style::Bold,
                &format!("{}→{}", m.buckets_first, m.buckets_last),
            )
            .plain(" ")
            .push(
                bytes_style(m.bytes_allocated),
                &bytes_short(m.bytes_allocated),
            );
            if m.evacuations > 0 && m.evacuation_total_ns > 0 {
                l.plain(&format!(
                    " grew {}{}",
                    if upper_bound { "≤" } else { "" },
                    duration_short(m.evacuation_total_ns)
                ));
            }
            if still_growing {
                l.push(Style::Warn, " still growing");
            }
        }
        Some(s) => {
            // Slots in all tables, from before the first resize seen to after the last.
            let first = m.history.points.first().map_or(0, |p| p.size_before);
            l.plain(&format!(
                "{} resize{} ",
                m.grows,
                if m.grows == 1 { "" } else { "s" }
            ))
            .push(Style::Bold, &format!("{first}→{}", m.slots))
            .plain(" slots");
            l.plain(" ").push(
                duration_style(s.max_duration_ns),
                &duration_short(s.total_duration_ns),
            );
        }
    }
    with_site(l, site_of(&m.origin))
}

/// The timeline section: the [`TOP_MAPS`] maps with the most events, each a header and a strip,
/// then the axis.
pub fn section(e: &EndInfo, start_ns: u64) -> Vec<Line> {
    let mut out = vec![];
    if e.maps.is_empty() {
        return out;
    }
    // A discovered map has no events to draw.
    let mut order: Vec<&MapSummary> = e.maps.iter().filter(|m| !m.discovered).collect();
    if order.is_empty() {
        return out;
    }
    order.sort_by(|a, b| {
        b.grows
            .cmp(&a.grows)
            .then(a.first_time_ns.cmp(&b.first_time_ns))
    });
    order.truncate(TOP_MAPS);
    // Zoomed to these maps' events and the growths that ended (a process's start-up and exit
    // would otherwise squeeze them into a few columns); a growth still running at the end
    // runs off the right edge.
    let times = order.iter().flat_map(|m| {
        let h = &m.history;
        h.points.iter().map(|p| p.time_ns).chain(
            h.spans()
                .filter(|s| s.end != SpanEnd::InProgress)
                .flat_map(|s| [s.start_ns, s.end_ns]),
        )
    });
    let (lo, hi) = times.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let (start_ns, end_ns) = if lo <= hi {
        (lo, hi.max(lo.saturating_add(1000)))
    } else {
        (start_ns, e.time_ns.max(start_ns.saturating_add(1)))
    };
    let mut rows = vec![];
    let mut seen = [false; 4];
    for m in &order {
        let h = &m.history;
        let still = h.spans().any(|s| s.end == SpanEnd::InProgress);
        let bound = h
            .spans()
            .any(|s| matches!(s.end, SpanEnd::Inferred | SpanEnd::Unseen));
        rows.push(map_header(m, still, bound));
        let cells = cells(h, start_ns, end_ns, WIDTH);
        for c in &cells {
            match c {
                Cell::Mark(n) if *n > 1 => seen[0] = true,
                Cell::Growing => seen[1] = true,
                Cell::Inferred => seen[2] = true,
                Cell::StillGrowing => seen[3] = true,
                _ => {}
            }
        }
        rows.push(strip_line(&cells));
    }
    let mut title = Line::new();
    title.push(
        Style::Bold,
        &format!(
            "# timeline: top {} of {} maps by events, {} to {} ({})",
            order.len(),
            e.maps.len(),
            clock_ms(start_ns),
            clock_ms(end_ns),
            duration_short(end_ns - start_ns)
        ),
    );
    title.truncate(WIDTH);
    out.push(title);
    let mut items = vec!["| an event".to_string()];
    for (on, text) in seen.iter().zip([
        "2-9 or * (10+) in one column",
        "= growing",
        "- growing, end not seen (inferred or lost)",
        "> still growing at the end",
    ]) {
        if *on {
            items.push(text.to_string());
        }
    }
    out.extend(wrap("# strips: ", &items, ", ", Style::Plain));
    out.extend(rows);
    out.push(axis(end_ns - start_ns, WIDTH));
    let cut: u64 = order.iter().map(|m| m.history.dropped).sum();
    if cut > 0 {
        out.extend(wrap(
            "# ",
            &[
                format!("{cut} events of these maps not drawn"),
                "(the per-map and total caps on kept events)".to_string(),
            ],
            " ",
            Style::Warn,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::history::{Mark, Point, Span};

    fn render(cells: &[Cell]) -> String {
        cells.iter().map(|c| c.char()).collect()
    }

    #[test]
    fn test_column_bounds() {
        assert_eq!(column(0, 100, 900, 80), 0);
        assert_eq!(column(100, 100, 900, 80), 0);
        assert_eq!(column(109, 100, 900, 80), 0);
        assert_eq!(column(110, 100, 900, 80), 1);
        assert_eq!(column(500, 100, 900, 80), 40);
        assert_eq!(column(899, 100, 900, 80), 79);
        assert_eq!(column(900, 100, 900, 80), 79);
        assert_eq!(column(u64::MAX, 100, 900, 80), 79);
        assert_eq!(
            column(5, 100, 100, 80),
            0,
            "an empty span does not divide by zero"
        );
    }

    fn point(t: u64) -> Point {
        Point {
            time_ns: t,
            mark: Mark::Doubling,
            size_before: 1,
            size_after: 2,
            entries: 8,
            goid: 1,
            bytes_allocated: 288,
            directory_len: 0,
            duration_ns: 0,
            end: None,
        }
    }

    fn span(start_ns: u64, end_ns: u64, end: SpanEnd) -> Span {
        Span {
            start_ns,
            end_ns,
            end,
        }
    }

    /// Points at `points`; each span is carried by the point at its start (one is added when
    /// there is none), as the timeline records it.
    fn history(points: &[u64], spans: Vec<Span>) -> History {
        let mut pts: Vec<Point> = points.iter().map(|&t| point(t)).collect();
        for s in spans {
            let i = match pts.iter().position(|p| p.time_ns == s.start_ns) {
                Some(i) => i,
                None => {
                    pts.push(point(s.start_ns));
                    pts.len() - 1
                }
            };
            pts[i].duration_ns = s.end_ns - s.start_ns;
            pts[i].end = Some(s.end);
        }
        pts.sort_by_key(|p| p.time_ns);
        History {
            points: pts,
            ..History::default()
        }
    }

    #[test]
    fn test_strip_marks_at_columns() {
        // 800 ns over 80 columns: 10 ns a column.
        let h = history(&[1_000, 1_055, 1_059, 1_400, 1_799], vec![]);
        let c = cells(&h, 1_000, 1_800, 80);
        let text = render(&c);
        assert_eq!(text.len(), 80);
        assert_eq!(c[0], Cell::Mark(1));
        assert_eq!(c[5], Cell::Mark(2), "two events in column 5");
        assert_eq!(c[40], Cell::Mark(1));
        assert_eq!(c[79], Cell::Mark(1));
        assert_eq!(text.matches('.').count(), 76);
        assert_eq!(&text[..7], "|....2.");
    }

    #[test]
    fn test_strip_growth_spans_and_still_growing() {
        let h = history(
            &[100, 300, 600],
            vec![
                span(100, 250, SpanEnd::Probe),
                span(300, 400, SpanEnd::Inferred),
                span(600, 800, SpanEnd::InProgress),
            ],
        );
        let text = render(&cells(&h, 0, 800, 80));
        assert_eq!(&text[..10], "..........");
        assert_eq!(&text[10..26], "|===============");
        assert_eq!(&text[26..30], "....");
        assert_eq!(&text[30..41], "|----------");
        assert_eq!(&text[41..60], "...................");
        assert_eq!(&text[60..], "|==================>");
        // An unseen end is an upper bound too; a Swiss resize is measured.
        let h = history(
            &[],
            vec![
                span(0, 95, SpanEnd::Unseen),
                span(400, 430, SpanEnd::Resize),
            ],
        );
        let text = render(&cells(&h, 0, 800, 80));
        assert_eq!(&text[..11], "|---------.");
        assert_eq!(&text[39..45], ".|===.");
    }

    #[test]
    fn test_strip_counts_many() {
        let h = history(
            &[500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 509, 509],
            vec![],
        );
        let c = cells(&h, 0, 800, 80);
        assert_eq!(c[50], Cell::Mark(12));
        assert_eq!(c[50].char(), '*');
        assert_eq!(c[49], Cell::Idle);
        assert_eq!(c[51], Cell::Idle);
    }

    #[test]
    fn test_axis_labels_at_quarters() {
        let a = axis(800_000_000, 80).render(false);
        assert_eq!(a.chars().count(), 80);
        let ticks: Vec<usize> = a
            .char_indices()
            .filter(|(_, c)| *c == '|')
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ticks, vec![0, 20, 40, 60, 79]);
        assert!(a.starts_with("|0 "));
        assert_eq!(&a[20..27], "|200ms ");
        assert!(a.ends_with(" 800ms|"), "{a}");
    }
}
