//! `--format text` (default): a line per grow as it happens, then a per-map table.

use std::io::{self, Write};

use super::{hex, EndInfo, Sink, StartInfo};
use crate::timeline::{Grow, SwissKind, SwissResize};

/// Human-readable output.
pub struct TextSink<W: Write> {
    out: W,
}

impl<W: Write> TextSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

/// `HH:MM:SS.micro` (UTC) of a Unix-ns timestamp.
pub fn clock(time_ns: u64) -> String {
    let secs = time_ns / 1_000_000_000;
    let micros = (time_ns % 1_000_000_000) / 1000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// Bytes with a binary unit: `288 B`, `2.3 KiB`, `4.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// ` at function (file.go:line)`, or nothing when the call site is unknown.
pub fn at_site(o: &Option<std::sync::Arc<crate::timeline::Origin>>) -> String {
    match o.as_deref().and_then(crate::timeline::Origin::site) {
        Some(p) => format!(" at {p}"),
        None => String::new(),
    }
}

/// `; presize: make(map[int]int, 106496)` for a summary row, or nothing without grows.
pub fn presize(m: &crate::timeline::MapSummary, load_factor_num: u64) -> String {
    match m.presize_hint(load_factor_num) {
        Some(h) => format!(
            "; presize: make({}, {h})",
            m.type_name.as_deref().unwrap_or("map[…]…")
        ),
        None => String::new(),
    }
}

/// The live line for one grow.
pub fn grow_line(g: &Grow) -> String {
    let kind = if g.same_size {
        "same-size grow (overflow cleanup)"
    } else {
        "doubling"
    };
    format!(
        "{} g{:<5} map {} buckets {} -> {} {kind}, {} entries, key {} B, elem {} B, alloc {}{}{}",
        clock(g.time_ns),
        g.goid,
        hex(g.map),
        g.buckets_before,
        g.buckets_after,
        g.entries,
        g.key_size,
        g.elem_size,
        bytes(g.bytes_allocated),
        if g.partial {
            " (partial: target memory unreadable)"
        } else {
            ""
        },
        at_site(&g.origin),
    )
}

/// A duration: `830 ns`, `74.1 µs`, `12.3 ms`.
pub fn duration(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// The live line for one Swiss-table resize.
pub fn swiss_line(r: &SwissResize) -> String {
    let what = match r.kind {
        SwissKind::SmallToTable => {
            format!("small map -> table of {} slots", r.capacity_after)
        }
        SwissKind::SmallAlloc => "new map: first 8-slot group".to_string(),
        SwissKind::TableGrow => format!(
            "table grow {} -> {} slots ({} in table)",
            r.capacity_before, r.capacity_after, r.table_entries
        ),
        SwissKind::TableSplit => {
            let dir = if r.directory_len_after > r.directory_len_before {
                format!(
                    ", directory {} -> {}",
                    r.directory_len_before, r.directory_len_after
                )
            } else {
                String::new()
            };
            format!(
                "table split {} slots ({} in table) -> 2 tables{dir}",
                r.capacity_before, r.table_entries
            )
        }
    };
    format!(
        "{} g{:<5} map {} {what}, {} entries, key {} B, elem {} B, took {}{}{}",
        clock(r.time_ns),
        r.goid,
        hex(r.map),
        r.entries,
        r.key_size,
        r.elem_size,
        duration(r.duration_ns),
        if r.partial {
            " (partial: target memory unreadable)"
        } else {
            ""
        },
        at_site(&r.origin),
    )
}

impl<W: Write> Sink for TextSink<W> {
    fn start(&mut self, s: &StartInfo) -> io::Result<()> {
        writeln!(
            self.out,
            "# tracing pid {} {} ({}, {} maps, {})",
            s.pid, s.exe, s.go_version, s.map_impl, s.arch
        )?;
        self.out.flush()
    }

    fn grow(&mut self, g: &Grow) -> io::Result<()> {
        writeln!(self.out, "{}", grow_line(g))
    }

    fn swiss(&mut self, r: &SwissResize) -> io::Result<()> {
        writeln!(self.out, "{}", swiss_line(r))
    }

    fn slice(&mut self, s: &crate::timeline::SliceGrow) -> io::Result<()> {
        writeln!(
            self.out,
            "{} g{:<5} slice grow cap {} -> {} ({} × {} B = {}), took {}{}",
            clock(s.time_ns),
            s.goid,
            s.cap_before,
            s.cap_after,
            s.elem_type_name.as_deref().unwrap_or("elements"),
            s.elem_size,
            bytes(s.bytes),
            duration(s.duration_ns),
            at_site(&s.origin),
        )
    }

    fn detached(&mut self, d: &crate::overhead::Detached) -> io::Result<()> {
        writeln!(
            self.out,
            "{} detached {}: ~{:.0}% of the target's CPU > budget {}%",
            clock(d.time_ns),
            d.family.flag().unwrap_or(d.family.name()),
            d.share_percent,
            d.budget_percent
        )
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, e: &EndInfo) -> io::Result<()> {
        let o = &mut self.out;
        let hits: Vec<String> = e
            .probe_hits
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect();
        writeln!(o)?;
        writeln!(
            o,
            "# summary: {} resize events in {} maps; lost events: {}; probe hits: {}{}",
            e.events,
            e.maps.len(),
            e.lost,
            if hits.is_empty() {
                "none".to_string()
            } else {
                hits.join(", ")
            },
            match e.exit_status {
                Some(s) => format!("; target exit status {s}"),
                None => String::new(),
            }
        )?;
        for line in super::overhead_lines(&e.overhead) {
            writeln!(o, "{line}")?;
        }
        if let Some((shown, below)) = e.slices {
            writeln!(
                o,
                "# slices: {shown} growths reported, {below} below --min-bytes not shown"
            )?;
        }
        if e.runtime_events_hidden > 0 {
            writeln!(
                o,
                "# {} events of maps the Go runtime grew for itself not shown (--runtime-maps shows them)",
                e.runtime_events_hidden
            )?;
        }
        if e.lost > 0 {
            writeln!(
                o,
                "# WARNING: {} events were lost (ring buffer full); counts below are incomplete",
                e.lost
            )?;
        }
        if e.maps.is_empty() {
            writeln!(o, "# no map grew while traced")?;
            return o.flush();
        }
        // Where to act: call sites ranked by events, with the presize that covers their maps.
        let sites = crate::timeline::by_site(&e.maps, e.load_factor_num);
        writeln!(o, "# by call site (most events first)")?;
        writeln!(
            o,
            "{:>6} {:>5} {:>10} {:>10}  SITE",
            "EVENTS", "MAPS", "ALLOCATED", "TIME"
        )?;
        for t in &sites {
            let site = match &t.site {
                Some(p) => p.to_string(),
                None => "(stack not symbolized)".to_string(),
            };
            let hint = match t.presize_hint {
                Some(h) => format!(
                    "; presize: make({}, {h})",
                    t.type_name.as_deref().unwrap_or("map[…]…")
                ),
                None => String::new(),
            };
            writeln!(
                o,
                "{:>6} {:>5} {:>10} {:>10}  {site}{hint}",
                t.events,
                t.maps,
                bytes(t.bytes_allocated),
                if t.total_duration_ns == 0 {
                    "-".to_string()
                } else {
                    duration(t.total_duration_ns)
                },
            )?;
        }
        let classic: Vec<_> = e.maps.iter().filter(|m| m.swiss.is_none()).collect();
        let swiss: Vec<_> = e.maps.iter().filter(|m| m.swiss.is_some()).collect();
        let goroutines = |m: &crate::timeline::MapSummary| {
            let g: Vec<String> = m
                .goroutines
                .ids()
                .iter()
                .take(4)
                .map(|g| g.to_string())
                .collect();
            format!(
                "{}{}",
                g.join(","),
                if m.goroutines.ids().len() > 4 {
                    ",…"
                } else {
                    ""
                }
            )
        };
        if !classic.is_empty() {
            writeln!(
                o,
                "# hash-bucket maps (grows double the bucket array; SAME = same-size grows)"
            )?;
            writeln!(
                o,
                "{:<16} {:>5} {:>4} {:>17} {:>9} {:>10} {:>7} GOROUTINES SITE",
                "MAP", "GROWS", "SAME", "BUCKETS", "ENTRIES", "ALLOCATED", "K/E"
            )?;
            for m in classic {
                writeln!(
                    o,
                    "{:<16} {:>5} {:>4} {:>17} {:>9} {:>10} {:>7} {}{}{}",
                    hex(m.map),
                    m.grows,
                    m.same_size_grows,
                    format!("{} -> {}", m.buckets_first, m.buckets_last),
                    m.entries_last,
                    bytes(m.bytes_allocated),
                    format!("{}/{}", m.key_size, m.elem_size),
                    goroutines(m),
                    at_site(&m.origin),
                    presize(m, e.load_factor_num),
                )?;
            }
        }
        if !swiss.is_empty() {
            writeln!(o, "# Swiss-table maps (TABLE = small map became a table; GROW = a table doubled; SPLIT = a full 1024-slot table split in two; DIR = tables in the directory)")?;
            writeln!(
                o,
                "{:<16} {:>5} {:>5} {:>5} {:>5} {:>9} {:>10} {:>10} {:>7} GOROUTINES SITE",
                "MAP", "TABLE", "GROW", "SPLIT", "DIR", "ENTRIES", "TIME", "LONGEST", "K/E"
            )?;
            for m in swiss {
                let s = m.swiss.as_ref().expect("filtered");
                writeln!(
                    o,
                    "{:<16} {:>5} {:>5} {:>5} {:>5} {:>9} {:>10} {:>10} {:>7} {}{}{}",
                    hex(m.map),
                    s.small_to_table,
                    s.table_grows,
                    s.table_splits,
                    s.directory_len_last,
                    m.entries_last,
                    duration(s.total_duration_ns),
                    duration(s.max_duration_ns),
                    format!("{}/{}", m.key_size, m.elem_size),
                    goroutines(m),
                    at_site(&m.origin),
                    presize(m, e.load_factor_num),
                )?;
            }
        }
        o.flush()
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
