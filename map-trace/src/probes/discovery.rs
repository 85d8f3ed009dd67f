//! The `--discover` window of a `--pid` attach: body probes on the map access functions find
//! the maps a running program uses, including those that finished growing before map-trace
//! attached (the growth probes never see them). The probes record each map once, in the
//! `DISCOVERED` table; when the window closes they are detached and the table is read.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Result;
use map_trace_common::{config::Counter, event::Discovered};

use super::{Links, Probes, Scope};
use crate::{overhead::Family, plan::ProbeSite};

/// An open window.
pub struct Window {
    opened: Instant,
    until: Instant,
    functions: u64,
    pid: u32,
    /// Where each probe is in the process (link-time address plus a PIE's load bias), in
    /// the order they were attached.
    at: Vec<u64>,
}

/// What the window found, read from the table when it closed.
pub struct Harvest {
    /// `(header, what the probe saw)`, in no order.
    pub found: Vec<(u64, Discovered)>,
    /// How long the probes were attached.
    pub window: Duration,
    /// Map access functions probed.
    pub functions: u64,
    /// Their hits.
    pub hits: u64,
    /// Distinct maps they recorded (some may have been evicted since).
    pub seen: u64,
    /// Why it closed: `window`, `budget` or `stopped`.
    pub ended: &'static str,
}

impl Window {
    /// Attaches the discovery probes `sites` to `exe` for `pid`, for `length`; their links join
    /// `links` (so the budget costs and may shed them).
    /// `pie_first_load`: a PIE's first load address (see `plan::HeapPlan`), to place the
    /// probes in the process.
    pub fn open(
        probes: &mut Probes,
        links: &mut Links,
        sites: &[ProbeSite],
        (exe, pie_first_load): (&Path, Option<u64>),
        pid: u32,
        length: Duration,
    ) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let bias = pie_first_load
            .and_then(|first| {
                let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
                let ino = std::fs::metadata(exe).ok()?.ino();
                crate::heap::locate::load_bias(&maps, ino, first)
            })
            .unwrap_or(0);
        probes.set_discovering(true)?;
        links.append(probes.attach_sites(sites, exe, Scope::Process(pid), || Ok(()))?);
        let opened = Instant::now();
        Ok(Self {
            opened,
            until: opened + length,
            functions: sites.len() as u64,
            pid,
            at: sites.iter().map(|s| s.vaddr.wrapping_add(bias)).collect(),
        })
    }

    /// Map access functions probed.
    pub fn functions(&self) -> u64 {
        self.functions
    }

    /// When it closes unless the budget closes it first.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// Closes it: detaches its probes (in the background: each uprobe's release waits in the
    /// kernel, and the session's loop must not), then reads and empties the process's table
    /// entries.
    pub fn close(self, probes: &mut Probes, links: &mut Links, ended: &'static str) -> Harvest {
        // First, so that the hits until the release is done cost only their traps.
        let _ = probes.set_discovering(false);
        // The busiest probes first: the kernel releases them one at a time (~130 ms each
        // here), and each keeps trapping until its turn.
        let hits: std::collections::HashMap<u64, u64> = probes.access_hits().into_iter().collect();
        let at = &self.at;
        let mine = links
            .take_family(Family::Discovery)
            .sorted_by_key(|i| std::cmp::Reverse(at.get(i).and_then(|a| hits.get(a)).copied()));
        probes.detach_in_background(mine);
        Harvest {
            found: probes.take_discovered(self.pid),
            window: self.opened.elapsed(),
            functions: self.functions,
            hits: probes.counter(Counter::HitsMapAccess),
            seen: probes.counter(Counter::DiscoveryNew),
            ended,
        }
    }
}
