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
//! - what the sampled maps hold now (`held.rs`): per site, and a chart of storage and live
//!   entries over time for the maps holding the most;
//! - the slice growths (`--slices`) by site.
//!
//! The charts draw each map's history as the timeline reconstructed it
//! ([`crate::timeline::history`], bounded there); the page says what was cut. The page needs no
//! network: inline CSS, inline SVG and a few lines of inline script (a filter), under a
//! Content-Security-Policy that forbids loading anything. Every text is escaped ([`esc`]).
//! It is written to `FILE.tmp` and renamed to `FILE` at the end.
//!
//! This file is the sink: its lifecycle (the temporary file, the rename, no half-written page
//! after an error) and what it gathers while tracing (slice growths by site). `page.rs` lays
//! out the page, `chart.rs` draws a map's history as SVG, and the page's stylesheet and
//! script are `report.css` and `report.js`, included at build time.

mod chart;
mod held;
mod page;

use std::{
    borrow::Cow,
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use rustc_hash::FxHashMap;

use super::{EndInfo, Sink, StartInfo};
use crate::{
    symbols::pclntab::SourcePos,
    timeline::{site_of, SliceGrow},
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
    /// Map samples, for the "What the maps hold now" section.
    held: held::Held,
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
            held: held::Held::default(),
        })
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

    fn map_sample(&mut self, s: &crate::timeline::health::MapSample) -> io::Result<()> {
        self.held.sample(s);
        Ok(())
    }

    fn map_freed(&mut self, f: &crate::timeline::health::MapFreed) -> io::Result<()> {
        self.held.freed(f.map);
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

#[cfg(test)]
mod tests;
