//! Attached probes, grouped by family: what a budget sheds, duty-cycles and re-attaches. The
//! CLI keeps one set per traced process, the agent one per executable.

use std::path::Path;

use anyhow::Result;
use aya::programs::uprobe::UProbeLinkId;

use super::{Probes, Scope};
use crate::{overhead::Family, plan::ProbeSite};

/// One attached probe: its program and family, and aya's handle for detaching it.
pub struct Link {
    family: Family,
    program: &'static str,
    id: UProbeLinkId,
}

/// The attached probes of one target.
#[derive(Default)]
pub struct Links(Vec<Link>);

impl Links {
    /// The families attached, in report order.
    pub fn families(&self) -> Vec<Family> {
        let mut f: Vec<Family> = self.0.iter().map(|l| l.family).collect();
        f.sort();
        f.dedup();
        f
    }

    /// Removes one family's links and returns them.
    pub fn take_family(&mut self, family: Family) -> Links {
        let (gone, kept) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|l| l.family == family);
        self.0 = kept;
        Links(gone)
    }

    /// Moves every link of `other` into these.
    pub fn append(&mut self, mut other: Links) {
        self.0.append(&mut other.0);
    }

    /// Whether a link of `family` is attached.
    pub fn has(&self, family: Family) -> bool {
        self.0.iter().any(|l| l.family == family)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorts by `key` (stable), for [`Probes::detach_in_background`].
    pub fn sorted_by_key<K: Ord>(mut self, mut key: impl FnMut(usize) -> K) -> Links {
        let mut idx: Vec<(K, Link)> = self
            .0
            .drain(..)
            .enumerate()
            .map(|(i, l)| (key(i), l))
            .collect();
        idx.sort_by(|a, b| a.0.cmp(&b.0));
        Links(idx.into_iter().map(|(_, l)| l).collect())
    }

    /// Takes every link out of its program ([`Probes::take_link`]): each stays attached until
    /// dropped, which may then happen on another thread.
    pub fn take_all(self, probes: &mut Probes) -> Vec<super::TakenLink> {
        self.0
            .into_iter()
            .filter_map(|l| probes.take_link(l.program, l.id))
            .collect()
    }
}

impl Probes {
    /// Attaches `sites` to `exe` for `scope`, all or none: `before_each` runs before every
    /// attach and stops it with its error (a target that exited meanwhile), and on any error
    /// what was attached until then is detached again.
    pub fn attach_sites<'a>(
        &mut self,
        sites: impl IntoIterator<Item = &'a ProbeSite>,
        exe: &Path,
        scope: Scope,
        mut before_each: impl FnMut() -> Result<()>,
    ) -> Result<Links> {
        let mut links = Links::default();
        for site in sites {
            let attached = before_each().and_then(|()| self.attach(site, exe, scope));
            match attached {
                Ok(id) => links.0.push(Link {
                    family: Family::of(site.program),
                    program: site.program,
                    id,
                }),
                Err(e) => {
                    self.detach_links(links);
                    return Err(e);
                }
            }
        }
        Ok(links)
    }

    /// Attaches the sites of one `family` of `sites` (a shed family again, or a duty-cycled
    /// family's next window).
    pub fn attach_family(
        &mut self,
        sites: &[ProbeSite],
        family: Family,
        exe: &Path,
        scope: Scope,
    ) -> Result<Links> {
        self.attach_sites(
            sites.iter().filter(|s| Family::of(s.program) == family),
            exe,
            scope,
            || Ok(()),
        )
    }

    /// Detaches `links`.
    pub fn detach_links(&mut self, links: Links) {
        for l in links.0 {
            self.detach(l.program, l.id);
        }
    }

    /// Detaches `links` for good without waiting for it, in their order, on one thread of its
    /// own. Each uprobe's release waits in the kernel (~130 ms each here, and the kernel does
    /// them one at a time, so a thread per probe is no faster), which would stall the caller's
    /// loop for seconds with a family of many probes; the order says which stop trapping
    /// first. Only for probes never attached again at the same places (a new probe beside one
    /// still being released would count hits twice).
    pub fn detach_in_background(&mut self, links: Links) {
        let taken = links.take_all(self);
        // A thread that cannot be started drops them here, waiting.
        let _ = std::thread::Builder::new()
            .name("detach".into())
            // A Vec drops its elements first to last.
            .spawn(move || drop(taken));
    }

    /// Detaches one family of `links`.
    pub fn detach_family(&mut self, links: &mut Links, family: Family) {
        self.detach_links(links.take_family(family));
    }
}
