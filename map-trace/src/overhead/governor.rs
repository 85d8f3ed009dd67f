//! The CLI's overhead budget, tick by tick: every 250 ms it compares the probes' estimated
//! cost with the target's CPU time, sheds opt-in families and the default mode's costlier
//! probes, and, when the event probes alone are over, duty-cycles them. The agent's
//! per-executable budget is `agent::budget`.

use std::{path::Path, time::Instant};

use anyhow::Result;
use map_trace_common::config::{Counter, MapLayout, LAYOUT_TIMED_RESIZES};

use super::{Budget, Detached, DutyCycle, Family, FamilyCost, HitCost, Overhead, Sampling};
use crate::{
    plan::{Plan, ProbeSite},
    probes::{Links, Probes, Scope},
    sys,
    target::procfs,
};

/// A family being duty-cycled: the cycle, and the estimate and CPU time when its current
/// window opened.
struct Cycling {
    cycle: DutyCycle,
    family: Family,
    since_unix_ns: u64,
    window_start: (u64, Option<u64>),
    lost_before: u64,
}

/// What one tick did that the outputs and the user are told: a family detached or sampled.
pub struct Notice {
    /// The line for stderr.
    pub line: String,
    /// The record for the outputs.
    pub detached: Detached,
}

/// One traced process's budget and what it has shed.
pub struct Governor {
    budget: Option<Budget>,
    pid: u32,
    /// The sites of the plan (a duty-cycled family is re-attached from them).
    sites: Vec<ProbeSite>,
    layout: MapLayout,
    growth_ends_stepped: bool,
    families: Vec<Family>,
    hit_cost: HitCost,
    /// Family, when (Unix ns), and its share (percent) when it was shed.
    detached: Vec<(Family, u64, f64)>,
    /// Links of a shed family detached at the next tick.
    retiring: Links,
    /// The event probes, duty-cycled once they alone are over budget.
    cycling: Option<Cycling>,
    clock: Instant,
}

impl Governor {
    /// A budget of `percent` (`None`: off) over the families of `links`, attached for `pid`.
    pub fn new(
        percent: Option<f64>,
        plan: &Plan,
        pid: u32,
        links: &Links,
        hit_cost: HitCost,
    ) -> Self {
        Self {
            budget: percent.map(Budget::new),
            pid,
            sites: plan.probes.clone(),
            layout: plan.layout.offsets,
            growth_ends_stepped: plan.growth_ends_stepped,
            families: links.families(),
            hit_cost,
            detached: vec![],
            retiring: Links::default(),
            cycling: None,
            clock: Instant::now(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// Cumulative hits and estimated nanoseconds of `families`.
    fn family_hits(&self, probes: &Probes, families: &[Family]) -> Vec<(Family, u64, u64)> {
        families
            .iter()
            .map(|&f| {
                let hits = f.counters().iter().map(|&c| probes.counter(c)).sum();
                let est = f.estimate_ns(
                    &self.hit_cost,
                    |c| probes.counter(c),
                    self.growth_ends_stepped,
                );
                (f, hits, est)
            })
            .collect()
    }

    /// Whether the budget shed `family`.
    pub fn has_shed(&self, family: Family) -> bool {
        self.detached.iter().any(|d| d.0 == family)
    }

    /// Remembers that `family` was shed (detached, or from now on sampled at `sampled_duty`)
    /// with `share` of the target's CPU time, and tells the outputs and the user.
    fn shed(
        &mut self,
        family: Family,
        share: f64,
        percent: f64,
        hits: u64,
        sampled_duty: Option<f64>,
        line: String,
    ) -> Notice {
        let detached = Detached {
            time_ns: sys::unix_now_ns(),
            family,
            share_percent: share,
            budget_percent: percent,
            hits,
            sampled_duty,
        };
        self.detached.push((family, detached.time_ns, share));
        Notice { line, detached }
    }

    /// When the duty cycle switches next, if one runs.
    pub fn switch_at(&self) -> Option<Instant> {
        self.cycling
            .as_ref()
            .map(|c| self.clock + std::time::Duration::from_nanos(c.cycle.switch_at_ns()))
    }

    /// One budget check against the target's cumulative CPU time `cpu_ns`.
    pub fn tick(
        &mut self,
        probes: &mut Probes,
        links: &mut Links,
        cpu_ns: Option<u64>,
    ) -> Result<Vec<Notice>> {
        let mut notices = vec![];
        let Some(cpu) = cpu_ns else {
            return Ok(notices);
        };
        if self.budget.is_none() {
            return Ok(notices);
        }
        let hits = self.family_hits(probes, &self.families);
        let spent: Vec<(Family, u64)> = hits.iter().map(|h| (h.0, h.2)).collect();
        // Timing shed at the last tick: the body probes have sent their events themselves
        // since then, so no call is left waiting for a RET probe. Shed for good: released in
        // the background.
        probes.detach_in_background(std::mem::take(&mut self.retiring));
        let b = self.budget.as_mut().expect("checked above");
        let verdict = b.check(&spent, cpu);
        let percent = b.percent();
        let hits_of = |family| hits.iter().find(|h| h.0 == family).map_or(0, |h| h.1);
        for (family, share) in verdict.detach {
            if self.has_shed(family) {
                continue;
            }
            if family == Family::TimedResizes {
                // Body probes first: from now on they send the events untimed; the RET
                // probes go at the next tick.
                let mut untimed = self.layout;
                untimed.flags &= !LAYOUT_TIMED_RESIZES;
                probes.set_layout(Scope::Process(self.pid), untimed)?;
                self.retiring.append(links.take_family(family));
            } else if family != Family::Discovery {
                // Shed for good (only the duty-cycled event probes come back, below).
                probes.detach_in_background(links.take_family(family));
            }
            // The discovery window's probes: the session closes the window, which releases
            // them busiest first.
            let keeps = match family {
                Family::TimedResizes => "; resizes are still reported, untimed",
                Family::GrowthEnds => {
                    "; growth ends are inferred from each map's next grow from now on"
                }
                _ => "",
            };
            let line = format!(
                "map-trace: detached {}: its probes took an estimated {share:.1}% of the target's CPU time (budget {percent}%){keeps}",
                family.flag().unwrap_or(family.name()),
            );
            notices.push(self.shed(family, share, percent, hits_of(family), None, line));
        }
        if let (Some(share), None) = (verdict.default_over, &self.cycling) {
            // Nothing left to shed: keep measuring within the budget by attaching the event
            // probes for a window at a time.
            let family = Family::Maps;
            probes.detach_family(links, family);
            let cycle = DutyCycle::start(percent, share, self.now_ns());
            let line = format!(
                "map-trace: sampling {}: its probes took an estimated {share:.1}% of the target's CPU time (budget {percent}%); from now on they are attached {:.1}% of the time, and counts are scaled",
                family.name(),
                cycle.duty() * 100.0
            );
            let notice = self.shed(
                family,
                share,
                percent,
                hits_of(family),
                Some(cycle.duty()),
                line,
            );
            let since_unix_ns = notice.detached.time_ns;
            notices.push(notice);
            self.cycling = Some(Cycling {
                cycle,
                family,
                since_unix_ns,
                window_start: (0, None),
                lost_before: probes.counter(Counter::Lost),
            });
        }
        Ok(notices)
    }

    /// The duty cycle's switch is due: close the window (detach, and measure its share), or
    /// open the next one (attach the family again to `exe`).
    pub fn switch(&mut self, probes: &mut Probes, links: &mut Links, exe: &Path) -> Result<()> {
        let now = self.now_ns();
        let pid = self.pid;
        let Some(family) = self.cycling.as_ref().map(|c| c.family) else {
            return Ok(());
        };
        let est =
            |g: &Self, probes: &Probes| g.family_hits(probes, &[family]).first().map_or(0, |h| h.2);
        if self.cycling.as_ref().is_some_and(|c| c.cycle.is_on()) {
            probes.detach_family(links, family);
            let cpu = procfs::cpu_time_ns(pid);
            let spent = est(self, probes);
            let c = self.cycling.as_mut().expect("cycling");
            let share = match (c.window_start.1, cpu) {
                (Some(a), Some(b)) if b.saturating_sub(a) >= 5_000_000 => {
                    Some(spent.saturating_sub(c.window_start.0) as f64 / (b - a) as f64 * 100.0)
                }
                _ => None,
            };
            // A duty back at 1 (cheap again) leaves no off time: the next window opens at
            // once.
            c.cycle.switch_off(now, share);
            return Ok(());
        }
        match probes.attach_family(&self.sites, family, exe, Scope::Process(pid)) {
            Ok(l) => {
                links.append(l);
                let cpu = procfs::cpu_time_ns(pid);
                let spent = est(self, probes);
                let now = self.now_ns();
                let c = self.cycling.as_mut().expect("cycling");
                c.window_start = (spent, cpu);
                // The window counts from when the probes are live, not from before attaching
                // them (coverage would be overstated).
                c.cycle.switch_on(now);
                Ok(())
            }
            // The target is exiting: the caller's exit notification sees it.
            Err(_) if !procfs::alive(pid) => {
                let c = self.cycling.as_mut().expect("cycling");
                c.cycle.switch_off(now, None);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Links shed at the last tick and not detached yet.
    pub fn take_retiring(&mut self) -> Links {
        std::mem::take(&mut self.retiring)
    }

    /// What the probes cost over the run, for the summary: `target_cpu_ns` is the target's CPU
    /// time while traced.
    pub fn report(&self, probes: &Probes, target_cpu_ns: Option<u64>) -> Overhead {
        let family_costs: Vec<FamilyCost> = self
            .family_hits(probes, &self.families)
            .into_iter()
            .map(|(family, hits, estimated_ns)| FamilyCost {
                family,
                hits,
                estimated_ns,
                detached: self
                    .detached
                    .iter()
                    .find(|d| d.0 == family)
                    .map(|d| (d.1, d.2)),
            })
            .collect();
        let now = self.now_ns();
        let sampling = self.cycling.as_ref().map(|c| Sampling {
            family: c.family,
            since_ns: c.since_unix_ns,
            attached_ns: c.cycle.attached_until(now),
            elapsed_ns: now.saturating_sub(c.cycle.since_ns),
            lost_before: c.lost_before,
        });
        Overhead {
            sampling,
            hit_cost: self.hit_cost,
            estimated_ns: family_costs.iter().map(|f| f.estimated_ns).sum(),
            families: family_costs,
            target_cpu_ns,
            budget_percent: self.budget.as_ref().map(Budget::percent),
        }
    }
}
