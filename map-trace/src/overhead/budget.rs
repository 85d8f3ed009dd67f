//! The `--max-overhead` decisions, as pure logic fed cumulative figures: which families to
//! detach or shed ([`Budget`]), and the duty cycle of event probes that alone are over it
//! ([`DutyCycle`]). [`super::governor`] applies them to a traced process.

use super::Family;

/// The shortest window a cycled family is attached for: long enough for the target to use
/// measurable CPU, and for the attach's own cost (one registration per probe) to be small.
pub const MIN_ON_NS: u64 = 50_000_000;
/// One on+off cycle when the duty allows it (longer when the duty is below
/// `MIN_ON_NS / PERIOD_NS`).
pub const PERIOD_NS: u64 = 1_000_000_000;
/// The lowest duty: one 50 ms window every 5 s.
pub const MIN_DUTY: f64 = 0.01;
/// The duty aims at this fraction of the budget, leaving room for the estimate's error.
const HEADROOM: f64 = 0.8;

/// The duty cycle of a family that alone exceeds the budget (pure logic, clock passed in).
#[derive(Debug, Clone, PartialEq)]
pub struct DutyCycle {
    budget_percent: f64,
    duty: f64,
    on: bool,
    switch_at_ns: u64,
    on_since_ns: u64,
    /// Attached time so far, ns.
    pub attached_ns: u64,
    /// When cycling began (the caller's clock), ns.
    pub since_ns: u64,
}

impl DutyCycle {
    /// Starts at `now_ns` with the family just detached, after it took `share_percent` of
    /// the target's CPU while attached.
    pub fn start(budget_percent: f64, share_percent: f64, now_ns: u64) -> Self {
        let mut c = Self {
            budget_percent,
            duty: 1.0,
            on: false,
            switch_at_ns: now_ns,
            on_since_ns: now_ns,
            attached_ns: 0,
            since_ns: now_ns,
        };
        c.set_duty(share_percent);
        c.switch_at_ns = now_ns + c.off_ns();
        c
    }

    fn set_duty(&mut self, share_percent: f64) {
        self.duty = if share_percent <= 0.0 {
            1.0
        } else {
            (HEADROOM * self.budget_percent / share_percent).clamp(MIN_DUTY, 1.0)
        };
    }

    /// The current duty (share of the time attached).
    pub fn duty(&self) -> f64 {
        self.duty
    }

    /// Whether the family is attached now.
    pub fn is_on(&self) -> bool {
        self.on
    }

    fn on_ns(&self) -> u64 {
        ((self.duty * PERIOD_NS as f64) as u64).max(MIN_ON_NS)
    }

    fn off_ns(&self) -> u64 {
        (self.on_ns() as f64 * (1.0 - self.duty) / self.duty) as u64
    }

    /// When the next switch is due, ns.
    pub fn switch_at_ns(&self) -> u64 {
        self.switch_at_ns
    }

    /// Switches on at `now_ns` (the caller attaches the family).
    pub fn switch_on(&mut self, now_ns: u64) {
        self.on = true;
        self.on_since_ns = now_ns;
        self.switch_at_ns = now_ns + self.on_ns();
    }

    /// Switches off at `now_ns` (the caller detached the family), with the share of the
    /// target's CPU the family took while it was on (`None`: too little CPU to tell). Returns
    /// `false` when that share fits the budget with room to spare: cycling can end and the
    /// family stay attached.
    pub fn switch_off(&mut self, now_ns: u64, share_percent: Option<f64>) -> bool {
        if self.on {
            self.attached_ns += now_ns.saturating_sub(self.on_since_ns);
        }
        self.on = false;
        if let Some(share) = share_percent {
            self.set_duty(share);
        }
        self.switch_at_ns = now_ns + self.off_ns();
        self.duty < 1.0
    }

    /// Attached time until `now_ns`, counting a window still open.
    pub fn attached_until(&self, now_ns: u64) -> u64 {
        self.attached_ns
            + if self.on {
                now_ns.saturating_sub(self.on_since_ns)
            } else {
                0
            }
    }
}

/// A family `--max-overhead` detached.
#[derive(Clone, Debug, PartialEq)]
pub struct Detached {
    /// Unix ns.
    pub time_ns: u64,
    /// Which family.
    pub family: Family,
    /// Its estimated share of the target's CPU time in the deciding window, percent.
    pub share_percent: f64,
    /// The budget, percent.
    pub budget_percent: f64,
    /// Its hits until then.
    pub hits: u64,
    /// Not gone for good: duty-cycled at this duty (share of the time attached) from now on,
    /// because it alone was over budget (the map event probes only).
    pub sampled_duty: Option<f64>,
}

/// Less target CPU time than this in a window decides nothing (a mostly idle target: the window
/// is extended until it has used this much).
pub const MIN_WINDOW_CPU_NS: u64 = 20_000_000;

/// The `--max-overhead` decision, fed cumulative figures once per window (pure logic).
#[derive(Debug)]
pub struct Budget {
    percent: f64,
    /// Estimated ns per family at the start of the window.
    base_spent_ns: Vec<(Family, u64)>,
    base_cpu_ns: Option<u64>,
    warned_default: bool,
}

/// What one budget check decided.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    /// Families to detach, with their share (percent): opt-in families over budget on their
    /// own, then default families in [`Family::SHED_ORDER`] while the default ones together
    /// are over it.
    pub detach: Vec<(Family, f64)>,
    /// The plain event probes alone are over budget (reported once; they stay attached).
    pub default_over: Option<f64>,
}

impl Budget {
    /// A budget of `percent` of the target's CPU time.
    pub fn new(percent: f64) -> Self {
        Self {
            percent,
            base_spent_ns: vec![],
            base_cpu_ns: None,
            warned_default: false,
        }
    }

    /// The budget, percent.
    pub fn percent(&self) -> f64 {
        self.percent
    }

    /// Checks the window since the last decision: `spent_ns` are the cumulative estimated
    /// nanoseconds per attached family (see [`Family::estimate_ns`]), `cpu_ns` the target's
    /// cumulative CPU time.
    pub fn check(&mut self, spent_ns: &[(Family, u64)], cpu_ns: u64) -> Verdict {
        let Some(base_cpu) = self.base_cpu_ns else {
            self.base_cpu_ns = Some(cpu_ns);
            self.base_spent_ns = spent_ns.to_vec();
            return Verdict::default();
        };
        let window = cpu_ns.saturating_sub(base_cpu);
        if window < MIN_WINDOW_CPU_NS {
            return Verdict::default();
        }
        let mut v = Verdict::default();
        let mut default_share = 0.0;
        let mut defaults = vec![];
        for &(family, n) in spent_ns {
            let base = self
                .base_spent_ns
                .iter()
                .find(|(f, _)| *f == family)
                .map_or(0, |(_, b)| *b);
            let share = n.saturating_sub(base) as f64 / window as f64 * 100.0;
            match family.flag() {
                Some(_) if share > self.percent => v.detach.push((family, share)),
                Some(_) => {}
                None => {
                    default_share += share;
                    defaults.push((family, share));
                }
            }
        }
        for shed in Family::SHED_ORDER {
            if default_share <= self.percent {
                break;
            }
            // A family that cost nothing in the window saves nothing when shed.
            if let Some(&(f, share)) = defaults.iter().find(|(f, s)| *f == shed && *s > 0.0) {
                v.detach.push((f, share));
                default_share -= share;
            }
        }
        if default_share > self.percent && !self.warned_default {
            self.warned_default = true;
            v.default_over = Some(default_share);
        }
        self.base_cpu_ns = Some(cpu_ns);
        self.base_spent_ns = spent_ns.to_vec();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_budget_detaches_only_opt_in_families_over_budget() {
        // Inputs are estimated ns per family. Budget 5 %.
        let mut b = Budget::new(5.0);
        let v = b.check(&[(Family::Maps, 10), (Family::Slices, 0)], 1_000_000_000);
        assert_eq!(
            v,
            Verdict::default(),
            "the first call only sets the baseline"
        );
        // 1 s of target CPU: slices 980 ms (98 %), maps 0.3 ms.
        let v = b.check(
            &[(Family::Maps, 300_010), (Family::Slices, 980_000_000)],
            2_000_000_000,
        );
        assert_eq!(v.detach.len(), 1);
        assert_eq!(v.detach[0].0, Family::Slices);
        assert!((v.detach[0].1 - 98.0).abs() < 1e-9);
        assert_eq!(v.default_over, None);
        // Under budget: 42 ms in 1 s = 4.2 %.
        let v = b.check(
            &[(Family::Maps, 300_010), (Family::Slices, 1_022_000_000)],
            3_000_000_000,
        );
        assert!(v.detach.is_empty());
    }

    #[test]
    fn test_budget_sheds_timing_then_growth_ends_and_keeps_the_events() {
        let mut b = Budget::new(5.0);
        let zero = [
            (Family::Maps, 0),
            (Family::GrowthEnds, 0),
            (Family::TimedResizes, 0),
        ];
        b.check(&zero, 0);
        // 100 ms of target CPU: timing 4 ms, ends 2 ms, events 2 ms = 8 % > 5 %. Shedding the
        // timing brings it to 4 %: the growth ends stay.
        let v = b.check(
            &[
                (Family::Maps, 2_000_000),
                (Family::GrowthEnds, 2_000_000),
                (Family::TimedResizes, 4_000_000),
            ],
            100_000_000,
        );
        assert_eq!(v.detach.len(), 1);
        assert_eq!(v.detach[0].0, Family::TimedResizes);
        assert_eq!(v.default_over, None);
        // Next window, without the timing: events 3 %, ends 3 %: the ends go, the events stay.
        let v = b.check(
            &[(Family::Maps, 5_000_000), (Family::GrowthEnds, 5_000_000)],
            200_000_000,
        );
        assert_eq!(
            v.detach.iter().map(|d| d.0).collect::<Vec<_>>(),
            vec![Family::GrowthEnds]
        );
        assert_eq!(v.default_over, None);
        // Events alone at 10 %: nothing left to shed; said once.
        let mut idle = Budget::new(5.0);
        idle.check(&zero, 0);
        // A family that cost nothing (no table resize on Swiss) is not shed for nothing.
        let v = idle.check(
            &[
                (Family::Maps, 10_000_000),
                (Family::GrowthEnds, 0),
                (Family::TimedResizes, 0),
            ],
            100_000_000,
        );
        assert!(v.detach.is_empty());
        assert!(v.default_over.is_some());

        let v = b.check(&[(Family::Maps, 15_000_000)], 300_000_000);
        assert!(v.detach.is_empty());
        assert!((v.default_over.unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn test_budget_waits_for_enough_target_cpu_and_warns_once_for_defaults() {
        let mut b = Budget::new(1.0);
        b.check(&[(Family::Maps, 0)], 0);
        // 5 ms of CPU is too little to judge; the window grows.
        assert_eq!(
            b.check(&[(Family::Maps, 10_000_000)], 5_000_000),
            Verdict::default()
        );
        // 25 ms of CPU, 10 ms in probes = 40 %: the defaults stay, reported once.
        let v = b.check(&[(Family::Maps, 10_000_000)], 25_000_000);
        assert!(v.detach.is_empty());
        assert!((v.default_over.unwrap() - 40.0).abs() < 1e-9);
        let v = b.check(&[(Family::Maps, 20_000_000)], 50_000_000);
        assert_eq!(v.default_over, None);
    }

    #[test]
    fn test_duty_cycle_keeps_the_average_share_within_the_budget() {
        // 50 % of the target's CPU while attached, budget 5 %: attached 8 % of the time.
        let mut c = DutyCycle::start(5.0, 50.0, 0);
        assert!((c.duty() - 0.08).abs() < 1e-9);
        assert!(!c.is_on());
        let off = c.switch_at_ns();
        assert_eq!(off, 920_000_000);
        c.switch_on(off);
        assert_eq!(c.switch_at_ns(), off + 80_000_000);
        // The window measured 100 %: the duty halves, and stays above its floor.
        assert!(c.switch_off(off + 80_000_000, Some(100.0)));
        assert!((c.duty() - 0.04).abs() < 1e-9);
        assert_eq!(c.attached_ns, 80_000_000);
        // Very costly: one 50 ms window every 5 s at most.
        assert!(c.switch_off(off + 80_000_000, Some(10_000.0)));
        assert!((c.duty() - MIN_DUTY).abs() < 1e-9);
        let t = c.switch_at_ns();
        c.switch_on(t);
        assert_eq!(c.switch_at_ns() - t, MIN_ON_NS);
        assert_eq!(c.attached_until(t + 10), 80_000_010);
        // Cheap again (2 % < 80 % of 5 %): cycling may end.
        assert!(!c.switch_off(t + MIN_ON_NS, Some(2.0)));
        // The average share over a cycle is the duty times the share while on.
        let c = DutyCycle::start(5.0, 25.0, 0);
        let (on, off) = (c.on_ns() as f64, c.off_ns() as f64);
        assert!((25.0 * on / (on + off) - 4.0).abs() < 1e-6);
    }
}
