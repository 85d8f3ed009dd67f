//! `--format text` (default): a line per event as it happens, then a summary: totals, the
//! call sites ranked with their presize hints, and a timeline strip of the busiest maps.
//!
//! Every line fits in 80 columns ([`WIDTH`]); the call site, last on a live line, is
//! shortened with `…` to fit (its `(file.go:line)` kept). Colour (ANSI SGR) is added only when
//! asked ([`TextSink::color`], `--color`); without it the bytes are the same wherever the
//! output goes.

mod live;
mod strip;
mod style;
mod table;

use std::io::{self, Write};

pub use super::format::{bytes, clock, duration};
pub use live::{bytes_short, clock_ms, duration_short, site_text};
pub use style::{color_for_stdout, use_color, ColorWhen, WIDTH};

use super::{EndInfo, Sink, StartInfo};
use crate::timeline::{EvacuateStep, Evacuated, Grow, SliceGrow, SwissResize};
use style::{fit_left, Line, Style};

/// Human-readable output.
pub struct TextSink<W: Write> {
    out: W,
    color: bool,
    /// When tracing started (Unix ns), for the timeline strips.
    start_ns: Option<u64>,
    /// `evacuate` calls per growing map, summed into its `done` line.
    moves: live::Moves,
}

impl<W: Write> TextSink<W> {
    /// A sink writing to `out`, without colour.
    pub fn new(out: W) -> Self {
        Self {
            out,
            color: false,
            start_ns: None,
            moves: live::Moves::default(),
        }
    }

    /// Colours the output with ANSI SGR codes when `on`.
    pub fn color(mut self, on: bool) -> Self {
        self.color = on;
        self
    }

    fn line(&mut self, l: &Line) -> io::Result<()> {
        writeln!(self.out, "{}", l.render(self.color))
    }

    fn lines(&mut self, ls: &[Line]) -> io::Result<()> {
        ls.iter().try_for_each(|l| self.line(l))
    }
}

/// The live lines of a fatal map misuse: the message and goroutine, where the program did it,
/// and the map when it was found.
fn fatal_lines(c: &crate::timeline::fatal::ConcurrentWrite) -> Vec<Line> {
    let mut first = Line::new();
    first.push(Style::Dim, &clock_ms(c.time_ns));
    first.push(
        Style::Alert,
        &format!(
            " !! fatal error: {}, goroutine {}",
            c.kind.message(),
            c.goid
        ),
    );
    first.truncate(WIDTH);
    let mut at = Line::new();
    let site = c
        .origin
        .as_deref()
        .and_then(|o| o.site())
        .and_then(|p| site_text(p, WIDTH - 6));
    at.plain(&format!(
        "   at {}",
        site.as_deref().unwrap_or("an unknown site")
    ));
    at.truncate(WIDTH);
    let mut map = Line::new();
    match c.map {
        Some(m) => map.plain(&format!(
            "   map {} {} (from {})",
            crate::output::hex(m),
            c.type_name.as_deref().unwrap_or("of unknown type"),
            c.found
        )),
        None => map.plain(&format!("   map not found: {}", c.found)),
    };
    map.truncate(WIDTH);
    let mut out = vec![first, at, map];
    if let Some(p) = c.known_origin.as_deref().and_then(|o| o.site()) {
        let mut seen = Line::new();
        seen.plain(&format!(
            "   the map was seen at {}",
            site_text(p, WIDTH - 23).unwrap_or_default()
        ));
        seen.truncate(WIDTH);
        out.push(seen);
    }
    out
}

/// The first line: what is traced, and a legend of the live lines' columns.
fn start_lines(s: &StartInfo) -> Vec<Line> {
    let tail = format!(
        " ({}, {} maps, {})",
        s.go_version,
        s.map_impl.name(),
        s.arch.goarch()
    );
    let head = format!("# tracing pid {} ", s.pid);
    let room = WIDTH.saturating_sub(style::width(&head) + style::width(&tail));
    let mut first = Line::new();
    first
        .plain(&head)
        .plain(&fit_left(&s.exe, room))
        .plain(&tail);
    first.truncate(WIDTH);
    let mut legend = Line::new();
    legend.push(
        Style::Dim,
        if s.map_impl == crate::golayout::MapImpl::Swiss {
            "# TIME(UTC) gGOROUTINE MAP table|grow|split|new SLOTS len ENTRIES TOOK SITE"
        } else {
            "# TIME(UTC) gGOROUTINE MAP grow|same-size BUCKETS len ENTRIES ALLOC SITE"
        },
    );
    vec![first, legend]
}

impl<W: Write + Send> Sink for TextSink<W> {
    fn start(&mut self, s: &StartInfo) -> io::Result<()> {
        self.start_ns = Some(s.time_ns);
        self.lines(&start_lines(s))?;
        self.out.flush()
    }

    fn grow(&mut self, g: &Grow) -> io::Result<()> {
        self.line(&live::grow(g))
    }

    fn swiss(&mut self, r: &SwissResize) -> io::Result<()> {
        self.line(&live::swiss(r))
    }

    fn slice(&mut self, s: &SliceGrow) -> io::Result<()> {
        self.line(&live::slice(s))
    }

    fn evacuated(&mut self, e: &Evacuated) -> io::Result<()> {
        let moves = self.moves.take(e.map);
        self.line(&live::evacuated(e, moves.as_ref()))
    }

    fn evacuate_step(&mut self, s: &EvacuateStep) -> io::Result<()> {
        self.moves.step(s);
        Ok(())
    }

    fn detached(&mut self, d: &crate::overhead::Detached) -> io::Result<()> {
        let mut l = Line::new();
        l.push(Style::Dim, &clock_ms(d.time_ns))
            .plain(" ")
            .push(
                Style::Alert,
                if d.sampled_duty.is_some() {
                    "sampling"
                } else {
                    "detached"
                },
            )
            .plain(&format!(
                " {}: ~{:.0}% of the target's CPU > budget {}%",
                d.family.flag().unwrap_or(d.family.name()),
                d.share_percent,
                d.budget_percent
            ));
        if let Some(duty) = d.sampled_duty {
            l.plain(&format!(
                "; attached {:.1}% of the time from now on",
                duty * 100.0
            ));
        }
        l.truncate(WIDTH);
        self.line(&l)
    }

    fn map_sample(&mut self, m: &crate::timeline::health::MapSample) -> io::Result<()> {
        if m.kept_raised {
            let mut l = Line::new();
            l.push(Style::Dim, &clock_ms(m.time_ns));
            self.line(&l)?;
            self.lines(&table::kept_lines(&crate::output::format::sample_advice(m)))?;
        }
        Ok(())
    }

    fn concurrent_write(&mut self, c: &crate::timeline::fatal::ConcurrentWrite) -> io::Result<()> {
        self.lines(&fatal_lines(c))?;
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, e: &EndInfo) -> io::Result<()> {
        writeln!(self.out)?;
        self.lines(&table::totals(e))?;
        for c in &e.fatal {
            let mut l = Line::new();
            let head = format!("# g{} fatal error: {} at ", c.goid, c.kind.message());
            let at = c
                .origin
                .as_deref()
                .and_then(|o| o.site())
                .and_then(|p| site_text(p, WIDTH.saturating_sub(head.len())))
                .unwrap_or_else(|| "an unknown site".into());
            l.push(Style::Alert, &format!("{head}{at}"));
            l.truncate(WIDTH);
            self.line(&l)?;
        }
        if self.moves.dropped > 0 {
            let mut l = Line::new();
            l.plain(&format!(
                "# {} evacuate calls not summed on done lines (over {} maps growing at once)",
                self.moves.dropped,
                live::Moves::MAX_MAPS
            ));
            l.truncate(WIDTH);
            self.line(&l)?;
        }
        if !e.maps.is_empty() {
            self.lines(&table::sites(e))?;
            self.lines(&table::live(e))?;
            let start = self
                .start_ns
                .or_else(|| e.maps.iter().map(|m| m.first_time_ns).min())
                .unwrap_or(e.time_ns);
            writeln!(self.out)?;
            let section = strip::section(e, start);
            self.lines(&section)?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_and_bytes_format() {
        assert_eq!(clock(3_723_000_004_000), "01:02:03.000004");
        assert_eq!(bytes(288), "288 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(duration(830), "830 ns");
        assert_eq!(duration(74_100), "74.1 µs");
        assert_eq!(duration(12_300_000), "12.3 ms");
    }
}

#[cfg(test)]
mod sink_tests;
