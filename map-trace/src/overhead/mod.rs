//! What the probes cost the traced program, and the `--max-overhead` budget.
//!
//! A probe hit is a trap into the kernel on the traced thread: ~0.3–1 µs on bare metal, ~14 µs on
//! some VMs. map-trace measures it at start-up by probing one of its own functions
//! ([`calibrate`]), multiplies it by the hits each probe family took, and compares that with the
//! CPU time the target used over the same window. Opt-in families whose share exceeds the budget
//! are detached. When the default families alone exceed it, the costliest of them are shed
//! first, keeping the events: the single-stepped Swiss resize timing (`timed_resizes`; the
//! events then come untimed from the body probes), then the growth-end probe (`growth_ends`;
//! ends are then inferred from each map's next grow). The plain event probes (`maps`) stay.

mod budget;
mod calibrate;
mod family;
pub mod governor;

pub use budget::{
    Budget, Detached, DutyCycle, Verdict, MIN_DUTY, MIN_ON_NS, MIN_WINDOW_CPU_NS, PERIOD_NS,
};
pub use calibrate::{calibrate, calibrate_or_fallback, HitCost};
pub use family::Family;

/// Per-family cost so far, for outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyCost {
    /// The family.
    pub family: Family,
    /// Probe hits (every process the probes saw).
    pub hits: u64,
    /// `hits × cost`.
    pub estimated_ns: u64,
    /// When `--max-overhead` detached it (Unix ns), and the share of the target's CPU time it
    /// took in the window that decided it (percent).
    pub detached: Option<(u64, f64)>,
}

/// Everything the outputs say about overhead.
#[derive(Clone, Debug, PartialEq)]
pub struct Overhead {
    /// Cost of one hit.
    pub hit_cost: HitCost,
    /// Families attached at start, with their hits.
    pub families: Vec<FamilyCost>,
    /// Sum of the estimates.
    pub estimated_ns: u64,
    /// CPU time the target used while traced (from /proc; `None` when it exited first).
    pub target_cpu_ns: Option<u64>,
    /// `--max-overhead`, percent.
    pub budget_percent: Option<f64>,
    /// The event probes were duty-cycled to stay within the budget.
    pub sampling: Option<Sampling>,
}

impl Default for Overhead {
    fn default() -> Self {
        Self {
            hit_cost: HitCost::FALLBACK,
            families: vec![],
            estimated_ns: 0,
            target_cpu_ns: None,
            budget_percent: None,
            sampling: None,
        }
    }
}

/// A family the budget kept measuring by duty-cycling it (attached for a window, detached,
/// again) once it alone was over budget: what was seen from then on is a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// The family (the map event probes).
    pub family: Family,
    /// When cycling began, Unix ns.
    pub since_ns: u64,
    /// Time its probes were attached since then, ns.
    pub attached_ns: u64,
    /// Time elapsed since then until tracing stopped, ns.
    pub elapsed_ns: u64,
    /// Records the ring buffer had lost before cycling began (those lost after it are events
    /// of the sample too).
    pub lost_before: u64,
}

impl Sampling {
    /// The share of the time since cycling began that the probes were attached (0–1].
    ///
    /// Scaling by it is right for a target whose work comes at its own pace (a service
    /// answering requests): the probes add CPU time but do not change how many events happen
    /// per second. A target that is CPU-bound (a batch job) does less work per second while its
    /// probes trap, so the scaled count is then a lower bound.
    pub fn coverage(&self) -> f64 {
        if self.elapsed_ns == 0 {
            1.0
        } else {
            (self.attached_ns as f64 / self.elapsed_ns as f64).clamp(1e-6, 1.0)
        }
    }

    /// Events seen while sampling, scaled to the whole time: `seen / coverage`.
    pub fn scale(&self, seen: u64) -> u64 {
        (seen as f64 / self.coverage()).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_sampling_scales_what_was_seen() {
        let s = Sampling {
            family: Family::Maps,
            since_ns: 0,
            attached_ns: 250,
            elapsed_ns: 1000,
            lost_before: 0,
        };
        assert!((s.coverage() - 0.25).abs() < 1e-12);
        assert_eq!(s.scale(1000), 4000);
    }
}
