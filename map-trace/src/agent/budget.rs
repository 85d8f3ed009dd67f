//! The agent's overhead budget, per executable (`map-trace agent --max-overhead`, default 1%).
//!
//! Every 250 ms the agent prices what each executable's probes cost (its hits at the
//! calibrated trap cost, plus the handler time the eBPF side measures, both from the
//! executable's own `EXE_COST` entry) against the CPU time its processes used, and decides as
//! the CLI does ([`overhead::Budget`]): the single-stepped resize timing is shed first (resizes
//! are still counted, untimed); when the event probes alone are over budget they are
//! duty-cycled ([`overhead::DutyCycle`]), and every event seen while cycling counts for
//! `1 / duty` of them ([`Scaler`]). This module holds the per-executable state and the
//! arithmetic; the agent does the attaching.

use std::hash::Hash;

use map_trace_common::config::ExeCost;
use rustc_hash::FxHashMap;

use crate::overhead::{self, Budget, DutyCycle, Family, HitCost, Verdict};

/// Families the agent attaches and prices.
pub const FAMILIES: [Family; 2] = [Family::Maps, Family::TimedResizes];

/// The CPU time an executable's processes used while traced, summed over processes that come
/// and go: each process contributes what it used between readings.
#[derive(Debug, Default)]
pub struct ExeCpu {
    last: FxHashMap<u32, u64>,
    total_ns: u64,
}

impl ExeCpu {
    /// Records the readings of the processes alive now (pid, cumulative CPU ns); a process
    /// read for the first time sets its baseline. Returns the total so far.
    pub fn update(&mut self, readings: impl IntoIterator<Item = (u32, u64)>) -> u64 {
        let mut seen = FxHashMap::default();
        for (pid, ns) in readings {
            if let Some(&before) = self.last.get(&pid) {
                self.total_ns += ns.saturating_sub(before);
            }
            seen.insert(pid, ns);
        }
        self.last = seen;
        self.total_ns
    }

    /// Starts counting a new process from `ns` (its CPU time when its probes went live).
    pub fn baseline(&mut self, pid: u32, ns: u64) {
        self.last.insert(pid, ns);
    }

    /// The total so far.
    pub fn total_ns(&self) -> u64 {
        self.total_ns
    }
}

/// What the budget wants done to one executable's probes.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Shed the resize timing: clear the layout's timing flag now, detach its RET probes at
    /// the next tick. With the share it took, percent.
    ShedTiming(f64),
    /// Detach the event probes and cycle them at this duty. With the share they took.
    StartCycling { share: f64, duty: f64 },
}

/// The budget state of one executable.
#[derive(Debug)]
pub struct ExeBudget {
    budget: Budget,
    /// The resize timing was shed.
    pub timing_shed: bool,
    /// The event probes are duty-cycled.
    pub cycle: Option<Cycle>,
    /// Estimated share of the executable's CPU its probes took in the last decided window.
    pub last_share: Option<f64>,
    base: Option<(u64, u64)>,
}

/// A duty cycle and the estimate and CPU time when its current window opened.
#[derive(Debug)]
pub struct Cycle {
    /// The cycle.
    pub cycle: DutyCycle,
    window_start: (u64, u64),
    /// When the probes were last detached (or cycling began), ns.
    off_since_ns: u64,
    /// What each event seen in the current window counts for: the time from the previous
    /// window's end to this one's planned end, over this one's length. Measured rather than
    /// taken from the duty, so attach and detach time, and timer lateness, are accounted for.
    weight: f64,
}

impl ExeBudget {
    /// A budget of `percent` of the executable's CPU time.
    pub fn new(percent: f64) -> Self {
        Self {
            budget: Budget::new(percent),
            timing_shed: false,
            cycle: None,
            last_share: None,
            base: None,
        }
    }

    /// Estimated ns per family from the executable's cost counters.
    pub fn spent(cost: &ExeCost, hit_cost: &HitCost) -> Vec<(Family, u64)> {
        FAMILIES
            .iter()
            .map(|&f| (f, Self::estimate(f, cost, hit_cost)))
            .collect()
    }

    /// Estimated ns of one family from the executable's cost counters.
    pub fn estimate(family: Family, cost: &ExeCost, hit_cost: &HitCost) -> u64 {
        let i = family.cost_slot();
        family.estimate_from(hit_cost, cost.hits[i], cost.ns[i], false)
    }

    /// A periodic check, with cumulative estimates and CPU time.
    pub fn check(&mut self, spent: &[(Family, u64)], cpu_ns: u64, now_ns: u64) -> Vec<Action> {
        let total: u64 = spent.iter().map(|s| s.1).sum();
        match self.base {
            Some((s, c)) if cpu_ns.saturating_sub(c) >= overhead::MIN_WINDOW_CPU_NS => {
                self.last_share =
                    Some(total.saturating_sub(s) as f64 / (cpu_ns - c) as f64 * 100.0);
                self.base = Some((total, cpu_ns));
            }
            Some(_) => {}
            None => self.base = Some((total, cpu_ns)),
        }
        let Verdict {
            detach,
            default_over,
        } = self.budget.check(spent, cpu_ns);
        let mut actions = vec![];
        for (family, share) in detach {
            if family == Family::TimedResizes && !self.timing_shed {
                self.timing_shed = true;
                actions.push(Action::ShedTiming(share));
            }
        }
        if let (Some(share), None) = (default_over, &self.cycle) {
            let cycle = DutyCycle::start(self.budget.percent(), share, now_ns);
            actions.push(Action::StartCycling {
                share,
                duty: cycle.duty(),
            });
            self.cycle = Some(Cycle {
                cycle,
                window_start: (0, 0),
                off_since_ns: now_ns,
                weight: 1.0,
            });
        }
        actions
    }

    /// When the cycled probes are due to switch, ns (`None` when not cycling).
    pub fn switch_at_ns(&self) -> Option<u64> {
        self.cycle.as_ref().map(|c| c.cycle.switch_at_ns())
    }

    /// The cycled probes are live since `now_ns` (after attaching), with the event probes'
    /// estimate and the executable's CPU time then.
    pub fn switched_on(&mut self, now_ns: u64, maps_est: u64, cpu_ns: u64) {
        if let Some(c) = self.cycle.as_mut() {
            c.cycle.switch_on(now_ns);
            c.window_start = (maps_est, cpu_ns);
            let on = c.cycle.switch_at_ns().saturating_sub(now_ns).max(1);
            let off = now_ns.saturating_sub(c.off_since_ns);
            c.weight = (off + on) as f64 / on as f64;
        }
    }

    /// The cycled probes are detached from `now_ns` (before detaching). Returns `false` when the window they were
    /// on for fit the budget with room to spare: cycling ends, and the caller attaches them
    /// for good.
    pub fn switched_off(&mut self, now_ns: u64, maps_est: u64, cpu_ns: u64) -> bool {
        let Some(c) = self.cycle.as_mut() else {
            return false;
        };
        let (e0, c0) = c.window_start;
        // Less CPU than this in a window says nothing about the share.
        let share = (cpu_ns.saturating_sub(c0) >= 5_000_000)
            .then(|| maps_est.saturating_sub(e0) as f64 / (cpu_ns - c0) as f64 * 100.0);
        c.off_since_ns = now_ns;
        if c.cycle.switch_off(now_ns, share) {
            return true;
        }
        // Cheap again: measure everything, and let the budget decide afresh.
        self.cycle = None;
        self.budget = Budget::new(self.budget.percent());
        self.base = None;
        false
    }

    /// The share of time the event probes are attached: 1 unless cycling.
    pub fn duty(&self) -> f64 {
        self.cycle.as_ref().map_or(1.0, |c| c.cycle.duty())
    }

    /// What one event seen now counts for: 1 unless cycling (see `Cycle::weight`).
    pub fn weight(&self) -> f64 {
        self.cycle.as_ref().map_or(1.0, |c| c.weight)
    }

    /// Whether the cycled probes are attached now (`true` when not cycling).
    pub fn maps_on(&self) -> bool {
        self.cycle.as_ref().is_none_or(|c| c.cycle.is_on())
    }
}

/// Integer counters scaled by a weight (`1 / duty`): each series keeps the fraction it has not
/// counted yet, so its total stays within one of the scaled sum however the weight varies.
#[derive(Debug)]
pub struct Scaler<K> {
    rest: FxHashMap<K, f64>,
}

impl<K> Default for Scaler<K> {
    fn default() -> Self {
        Self {
            rest: FxHashMap::default(),
        }
    }
}

/// Series whose remainders are kept at most (past it they start from zero again: each loses
/// less than one count).
const SCALER_SERIES: usize = 100_000;

impl<K: Hash + Eq + Clone> Scaler<K> {
    /// How much to add to `key`'s counter for `n` events of weight `weight`.
    pub fn add(&mut self, key: &K, n: u64, weight: f64) -> u64 {
        if weight == 1.0 {
            return n;
        }
        if self.rest.len() >= SCALER_SERIES && !self.rest.contains_key(key) {
            self.rest.clear();
        }
        let r = self.rest.entry(key.clone()).or_insert(0.0);
        let want = *r + n as f64 * weight;
        let whole = want.floor();
        *r = want - whole;
        whole as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COST: HitCost = HitCost {
        body_ns: 1_000.0,
        stepped_ns: 12_000.0,
        calibrated: true,
    };

    fn cost(maps_hits: u64, timing_hits: u64) -> ExeCost {
        let mut c = ExeCost::default();
        c.hits[Family::Maps.cost_slot()] = maps_hits;
        c.ns[Family::Maps.cost_slot()] = maps_hits * 500;
        c.hits[Family::TimedResizes.cost_slot()] = timing_hits;
        c
    }

    #[test]
    fn test_exe_cpu_sums_processes_that_come_and_go() {
        let mut c = ExeCpu::default();
        c.baseline(1, 100);
        assert_eq!(c.update([(1, 150), (2, 1_000)]), 50);
        // Process 1 exited; 2 counts from its first reading.
        assert_eq!(c.update([(2, 1_300)]), 350);
        // A pid that went away and came back is a new process: it starts from a baseline.
        assert_eq!(c.update([(1, 10)]), 350);
        assert_eq!(c.update([(1, 30)]), 370);
    }

    #[test]
    fn test_timing_first_then_the_events_are_cycled_then_released() {
        let mut b = ExeBudget::new(1.0);
        let s = ExeBudget::spent(&cost(0, 0), &COST);
        assert!(b.check(&s, 0, 0).is_empty());
        // 1 s of CPU: events 1.5 ms (1000 hits × 1.5 µs), timing 12 ms: 1.35 %. Shedding the
        // timing leaves 0.15 %.
        let s = ExeBudget::spent(&cost(1_000, 1_000), &COST);
        let a = b.check(&s, 1_000_000_000, 1);
        assert_eq!(a.len(), 1);
        assert!(matches!(a[0], Action::ShedTiming(x) if (x - 1.2).abs() < 1e-9));
        assert!(b.timing_shed && b.cycle.is_none());
        assert!((b.last_share.unwrap() - 1.35).abs() < 1e-9);
        // Next second, events 3 %: cycled at 0.8 × 1 / 3.
        let s = ExeBudget::spent(&cost(21_000, 1_000), &COST);
        let a = b.check(&s, 2_000_000_000, 2);
        assert_eq!(a.len(), 1);
        let Action::StartCycling { share, duty } = a[0] else {
            panic!("{a:?}")
        };
        assert!((share - 3.0).abs() < 1e-9);
        assert!((duty - 0.8 / 3.0).abs() < 1e-9);
        assert!(!b.maps_on());
        assert!((b.duty() - duty).abs() < 1e-12);
        // Said once.
        let s = ExeBudget::spent(&cost(41_000, 1_000), &COST);
        assert!(b.check(&s, 3_000_000_000, 3).is_empty());
        // A window on: 100 ms of CPU, 3 ms of probes = 3 %: keeps cycling. It opened 10 ms
        // late (attaching took that long): its events stand for the whole time since cycling
        // began.
        let t = b.switch_at_ns().unwrap();
        b.switched_on(t + 10_000_000, 0, 0);
        assert!(b.maps_on());
        let on = (b.switch_at_ns().unwrap() - t - 10_000_000) as f64;
        assert!((b.weight() - (t as f64 - 2.0 + 10e6 + on) / on).abs() < 1e-9);
        assert!(b.switched_off(t + 50_000_000, 3_000_000, 100_000_000));
        // The load dropped: 0.1 % in a window ends cycling.
        let t = b.switch_at_ns().unwrap();
        b.switched_on(t, 0, 0);
        assert!(!b.switched_off(t + 50_000_000, 100_000, 100_000_000));
        assert!(b.cycle.is_none() && b.maps_on() && b.duty() == 1.0 && b.weight() == 1.0);
    }

    #[test]
    fn test_scaler_keeps_each_series_within_one_of_the_scaled_sum() {
        let mut s = Scaler::default();
        let mut a = 0;
        let mut b = 0;
        for i in 0..1_000 {
            a += s.add(&"a", 1, 1.0 / 0.3);
            if i % 10 == 0 {
                b += s.add(&"b", 1, 4.0);
            }
        }
        assert!((a as f64 - 1_000.0 / 0.3).abs() < 1.0, "{a}");
        assert_eq!(b, 400);
        assert_eq!(s.add(&"c", 7, 1.0), 7);
    }
}
