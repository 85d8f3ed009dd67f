//! Per-map timelines for the summary: when along the trace each map grew, and how long its
//! growths lasted, as one [`WIDTH`]-column strip per map under a shared time axis:
//!
//! ```text
//! 0xc000078f08 map[string]int64 14 grows 1→16384 6.9MiB main.main (main.go:30)
//! ..*2|.|.........................................................................
//! |0                  |73.7ms             |147ms              |221ms        295ms|
//! ```
//!
//! The sink buffers each map's events as they arrive ([`Book`]), bounded twice: at most
//! [`MAX_MAPS`] maps (when full, the one ranked last as the summary ranks them, fewest events
//! then latest, makes room, and the summary says so), and at most [`MAX_POINTS`] points per map
//! (when full, events closer together than 1/[`MERGE_DIV`] of the map's span so far are merged:
//! at most a fifth of a column of the final strip, which spans at least as much).

use rustc_hash::FxHashMap;

use super::{
    live::{
        bytes_short, bytes_style, clock_ms, duration_short, duration_style, site_of, with_site,
    },
    style::{fit_right, Line, Style, WIDTH},
    table::wrap,
};
use crate::{
    output::{hex, EndInfo},
    timeline::MapSummary,
};

/// Points kept per map before merging.
pub const MAX_POINTS: usize = 1024;
/// Merging joins events within 1/MERGE_DIV of the time traced so far.
pub const MERGE_DIV: u64 = 400;
/// Maps whose events are kept.
pub const MAX_MAPS: usize = 256;
/// Maps shown in the summary.
pub const TOP_MAPS: usize = 8;

/// One event of a map, or several merged that were close in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    /// Unix ns of the first event.
    pub t: u64,
    /// Unix ns of the last event merged in.
    pub last: u64,
    /// Events.
    pub count: u32,
    /// When the growth (classic) or the resize (Swiss) it started ended; `None` while open or
    /// unknown.
    pub end: Option<u64>,
    /// The end is an upper bound (inferred from the next grow).
    pub inferred: bool,
}

impl Point {
    /// One event at `t`.
    pub fn at(t: u64, end: Option<u64>) -> Self {
        Self {
            t,
            last: t,
            count: 1,
            end,
            inferred: false,
        }
    }
}

#[derive(Debug)]
struct Track {
    points: Vec<Point>,
    events: u64,
    /// Unix ns of its first event.
    first_t: u64,
}

/// The events of the maps being traced, by map address (maps that reuse an address share a
/// track; [`Book::points_of`] splits them by time).
#[derive(Debug, Default)]
pub struct Book {
    tracks: FxHashMap<u64, Track>,
    /// The map whose track was added last.
    newest: Option<u64>,
    /// Maps whose events were dropped to make room.
    pub dropped_maps: u64,
    /// Some points were merged.
    pub merged: bool,
}

impl Book {
    /// Records an event of `map` at `t` (with its end, when known already).
    pub fn event(&mut self, map: u64, t: u64, end: Option<u64>) {
        if !self.tracks.contains_key(&map) && self.tracks.len() >= MAX_MAPS {
            // The last in the summary's order (most events, then first seen): the same maps
            // are kept as are shown.
            // A flood of maps that grow once (`--small-maps`) replaces the newest of them, found
            // without a scan: one event and the latest first event rank last.
            let victim = self
                .newest
                .filter(|a| self.tracks.get(a).is_some_and(|k| k.events == 1))
                .or_else(|| {
                    self.tracks
                        .iter()
                        .min_by_key(|(_, k)| (k.events, std::cmp::Reverse(k.first_t)))
                        .map(|(&a, _)| a)
                });
            if let Some(a) = victim {
                self.tracks.remove(&a);
                self.dropped_maps += 1;
            }
        }
        if !self.tracks.contains_key(&map) {
            self.newest = Some(map);
        }
        let k = self.tracks.entry(map).or_insert_with(|| Track {
            points: vec![],
            events: 0,
            first_t: t,
        });
        k.events += 1;
        if k.points.len() >= MAX_POINTS {
            // Groups this narrow stay within a fifth of a column of the final strip, and there
            // are at most MERGE_DIV + 1 of them.
            let threshold = t.saturating_sub(k.points[0].t) / MERGE_DIV;
            k.points = merge(&k.points, threshold);
            self.merged = true;
        }
        k.points.push(Point::at(t, end));
    }

    /// The open growth of `map` ended at `t` (an upper bound when `inferred`).
    pub fn ended(&mut self, map: u64, t: u64, inferred: bool) {
        // Growths of one map do not overlap: an end belongs to the map's latest grow.
        if let Some(p) = self
            .tracks
            .get_mut(&map)
            .and_then(|k| k.points.last_mut())
            .filter(|p| p.end.is_none() && p.t <= t)
        {
            p.end = Some(t);
            p.inferred = inferred;
        }
    }

    /// The points of `m`: those of its address from its first event on, up to the first event
    /// of a later map at the same address (`maps` is every map). `None` when not kept.
    pub fn points_of(&self, m: &MapSummary, maps: &[MapSummary]) -> Option<Vec<Point>> {
        let k = self.tracks.get(&m.map)?;
        let next = maps
            .iter()
            .filter(|o| o.map == m.map && o.first_time_ns > m.first_time_ns)
            .map(|o| o.first_time_ns)
            .min()
            .unwrap_or(u64::MAX);
        let v: Vec<Point> = k
            .points
            .iter()
            .filter(|p| p.t >= m.first_time_ns && p.t < next)
            .copied()
            .collect();
        (!v.is_empty()).then_some(v)
    }
}

/// Joins consecutive points whose events all lie within `threshold` ns of the group's first.
pub fn merge(points: &[Point], threshold: u64) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::with_capacity(points.len() / 2);
    for p in points {
        match out.last_mut() {
            Some(g) if p.last.saturating_sub(g.t) <= threshold => {
                g.last = p.last;
                g.count = g.count.saturating_add(p.count);
                g.end = match (g.end, p.end) {
                    (_, None) => None,
                    (None, e) => e,
                    (Some(a), Some(b)) => Some(a.max(b)),
                };
                g.inferred |= p.inferred;
            }
            _ => out.push(*p),
        }
    }
    out
}

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

/// The cells of one map's strip: spans first, then a mark where events started; a growth still
/// open (`growing_since`) runs to the last column, which shows `>`.
pub fn cells(
    points: &[Point],
    start: u64,
    end: u64,
    width: usize,
    growing_since: Option<u64>,
) -> Vec<Cell> {
    let mut out = vec![Cell::Idle; width];
    let col = |t| column(t, start, end, width);
    for p in points {
        if let Some(e) = p.end {
            let fill = if p.inferred {
                Cell::Inferred
            } else {
                Cell::Growing
            };
            for c in &mut out[col(p.t)..=col(e.max(p.t))] {
                if *c != Cell::Growing {
                    *c = fill;
                }
            }
        }
    }
    if let Some(since) = growing_since {
        for c in &mut out[col(since)..] {
            *c = Cell::Growing;
        }
        out[width - 1] = Cell::StillGrowing;
    }
    for p in points {
        let c = &mut out[col(p.t)];
        *c = match *c {
            Cell::Mark(n) => Cell::Mark(n.saturating_add(p.count)),
            _ => Cell::Mark(p.count),
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
            l.plain(&format!(
                "{} resize{} len ",
                m.grows,
                if m.grows == 1 { "" } else { "s" }
            ))
            .push(Style::Bold, &m.entries_last.to_string());
            if s.directory_len_last > 1 {
                l.plain(" dir ")
                    .push(Style::Bold, &s.directory_len_last.to_string());
            }
            l.plain(" ").push(
                duration_style(s.max_duration_ns),
                &duration_short(s.total_duration_ns),
            );
        }
    }
    with_site(l, site_of(&m.origin))
}

/// The timeline section: the [`TOP_MAPS`] maps with the most events, each a header and a strip,
/// then the axis. `ends_known`: the finishing probe reported growth ends, so a growth still open
/// at the end is still growing (without it nothing is known of the last growth's end).
pub fn section(book: &Book, e: &EndInfo, start_ns: u64, ends_known: bool) -> Vec<Line> {
    let mut out = vec![];
    if e.maps.is_empty() {
        return out;
    }
    let mut order: Vec<&MapSummary> = e.maps.iter().collect();
    order.sort_by(|a, b| {
        b.grows
            .cmp(&a.grows)
            .then(a.first_time_ns.cmp(&b.first_time_ns))
    });
    order.truncate(TOP_MAPS);
    let end_ns = e.time_ns.max(start_ns + 1);
    let mut rows = vec![];
    let mut seen = [false; 4];
    for m in &order {
        let since = m
            .growing_since_ns
            .filter(|_| ends_known && m.swiss.is_none());
        let points = book.points_of(m, &e.maps);
        let inferred = points.iter().flatten().any(|p| p.inferred);
        let header = map_header(m, since.is_some(), inferred);
        let strip = match points {
            Some(points) => {
                let cells = cells(&points, start_ns, end_ns, WIDTH, since);
                for c in &cells {
                    match c {
                        Cell::Mark(n) if *n > 1 => seen[0] = true,
                        Cell::Growing => seen[1] = true,
                        Cell::Inferred => seen[2] = true,
                        Cell::StillGrowing => seen[3] = true,
                        _ => {}
                    }
                }
                strip_line(&cells)
            }
            None => {
                let mut l = Line::new();
                l.push(
                    Style::Dim,
                    &format!("  (events not kept: over {MAX_MAPS} maps grew)"),
                );
                l
            }
        };
        rows.push(header);
        rows.push(strip);
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
        "- growing (end inferred)",
        "> still growing at the end",
    ]) {
        if *on {
            items.push(text.to_string());
        }
    }
    out.extend(wrap("# strips: ", &items, ", ", Style::Plain));
    out.extend(rows);
    out.push(axis(end_ns - start_ns, WIDTH));
    if book.dropped_maps > 0 {
        let mut l = Line::new();
        l.push(
            Style::Warn,
            &format!(
                "# events of {} maps dropped to bound memory (kept: {MAX_MAPS} maps with most)",
                book.dropped_maps
            ),
        );
        l.truncate(WIDTH);
        out.push(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn test_strip_marks_at_columns() {
        // 800 ns over 80 columns: 10 ns a column.
        let (s, e) = (1_000, 1_800);
        let points = [
            Point::at(1_000, None),
            Point::at(1_055, None),
            Point::at(1_059, None),
            Point::at(1_400, None),
            Point::at(1_799, None),
        ];
        let c = cells(&points, s, e, 80, None);
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
        let (s, e) = (0, 800);
        let mut grown = Point::at(100, Some(250));
        let mut inferred = Point::at(300, Some(400));
        inferred.inferred = true;
        grown.count = 1;
        let open = Point::at(600, None);
        let c = cells(&[grown, inferred, open], s, e, 80, Some(600));
        let text = render(&c);
        assert_eq!(&text[10..26], "|===============");
        assert_eq!(&text[26..30], "....");
        assert_eq!(&text[30..41], "|----------");
        assert_eq!(&text[60..], "|==================>");
        assert_eq!(&text[..10], "..........");
    }

    #[test]
    fn test_strip_counts_many() {
        let points: Vec<Point> = (0..12).map(|i| Point::at(500 + i % 5, None)).collect();
        let c = cells(&points, 0, 800, 80, None);
        assert_eq!(c[50], Cell::Mark(12));
        assert_eq!(c[50].char(), '*');
    }

    #[test]
    fn test_book_merges_close_points_and_keeps_counts() {
        let mut b = Book::default();
        // 2000 events, 1 µs apart, then one far later.
        for i in 0..2000u64 {
            b.event(0xa, 1_000_000 + i * 1_000, None);
        }
        b.event(0xa, 1_000_000_000, None);
        let k = &b.tracks[&0xa];
        assert!(k.points.len() <= MAX_POINTS, "{}", k.points.len());
        assert!(b.merged);
        let total: u32 = k.points.iter().map(|p| p.count).sum();
        assert_eq!(total, 2001);
        // Merged groups stay narrow: within 1/MERGE_DIV of the time traced when merged.
        for p in &k.points {
            assert!(p.last - p.t <= 3_000_000 / MERGE_DIV + 1_000, "{p:?}");
        }
        assert_eq!(k.points.last().unwrap().t, 1_000_000_000);
    }

    #[test]
    fn test_book_bounds_maps_evicting_fewest_events() {
        let mut b = Book::default();
        for a in 1..(MAX_MAPS as u64 + 10) {
            for i in 0..3 {
                b.event(a, a * 10 + i, None);
            }
        }
        b.event(7, 1, None);
        assert_eq!(b.tracks.len(), MAX_MAPS);
        // Ties on events keep the first seen, as the summary ranks them.
        assert!((1..MAX_MAPS as u64).all(|a| b.tracks.contains_key(&a)));
        assert!(
            b.tracks.contains_key(&(MAX_MAPS as u64 + 9)),
            "the newest is in"
        );
        assert_eq!(b.dropped_maps, 9);
        // A busier newcomer stays; the latest of the least busy goes.
        for _ in 0..5 {
            b.event(9999, 5_000, None);
        }
        assert!(b.tracks.contains_key(&9999));
        assert!(!b.tracks.contains_key(&(MAX_MAPS as u64 + 9)));
        // A flood of one-event maps takes one slot (the last ranked map's) in turns.
        for a in 20_000..30_000u64 {
            b.event(a, 6_000 + a, None);
        }
        assert_eq!(b.tracks.len(), MAX_MAPS);
        assert!(b.tracks.contains_key(&29_999) && b.tracks.contains_key(&9999));
        assert!((1..MAX_MAPS as u64 - 1).all(|a| b.tracks.contains_key(&a)));
        assert_eq!(b.dropped_maps, 9 + 1 + 10_000);
    }

    #[test]
    fn test_book_ended_closes_last_open_growth() {
        let mut b = Book::default();
        b.event(1, 10, None);
        b.event(1, 20, None);
        b.ended(1, 30, false);
        b.ended(1, 40, true); // already closed: ignored
        let k = &b.tracks[&1];
        assert_eq!(k.points[1].end, Some(30));
        assert!(!k.points[1].inferred);
        assert_eq!(k.points[0].end, None);
        b.event(1, 50, None);
        b.ended(1, 45, false); // before the grow: ignored
        assert_eq!(b.tracks[&1].points[2].end, None);
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
