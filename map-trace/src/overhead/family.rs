//! Probe families: the groups of probes that are attached, costed and detached together, and
//! what each one's hits are estimated to cost.

use map_trace_common::{config::Counter, names};

use super::HitCost;

/// A group of probes that is attached, costed and detached together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// The default map probes: `hashGrow`, or the Swiss `growToTable`/`rehash` bodies.
    Maps,
    /// The default probe on the block that ends a classic growth.
    GrowthEnds,
    /// The default probes on the RETs of Swiss `rehash` (or `grow`/`split`), which time each
    /// table resize; single-stepped.
    TimedResizes,
    /// `--evacuation`: every `evacuate*` call, body and RETs.
    Evacuation,
    /// `--slices`: every `growslice` call, body and RETs.
    Slices,
    /// `--small-maps`: every Swiss map's first group.
    SmallMaps,
    /// `--discover`: the map access functions, for a few seconds after a `--pid` attach.
    Discovery,
    /// The runtime's fatal-error path (`runtime.fatal`): hit once or twice when a map misuse
    /// kills the process, never otherwise; never shed or duty-cycled.
    Fatal,
}

impl Family {
    /// Every family, in report order.
    pub const ALL: [Family; 8] = [
        Family::Maps,
        Family::GrowthEnds,
        Family::TimedResizes,
        Family::Evacuation,
        Family::Slices,
        Family::SmallMaps,
        Family::Discovery,
        Family::Fatal,
    ];

    /// The family an eBPF program belongs to.
    pub fn of(program: &str) -> Family {
        match program {
            names::PROG_HMAP_EVACUATE | names::PROG_HMAP_EVACUATE_RET => Family::Evacuation,
            names::PROG_SLICE_GROW | names::PROG_SLICE_GROW_RET => Family::Slices,
            names::PROG_SWISS_GROW_TO_SMALL => Family::SmallMaps,
            names::PROG_SWISS_REHASH_RET => Family::TimedResizes,
            names::PROG_MAP_ACCESS => Family::Discovery,
            names::PROG_MAP_FATAL | names::PROG_MAP_FATAL_ENTRY => Family::Fatal,
            p if names::PROG_HMAP_EVACUATED.contains(&p) => Family::GrowthEnds,
            _ => Family::Maps,
        }
    }

    /// Name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Family::Maps => "maps",
            Family::GrowthEnds => "growth_ends",
            Family::TimedResizes => "timed_resizes",
            Family::Evacuation => "evacuation",
            Family::Slices => "slices",
            Family::SmallMaps => "small_maps",
            Family::Discovery => "discovery",
            Family::Fatal => "fatal",
        }
    }

    /// The flag that enables an opt-in family; `None` for the default ones.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Family::Evacuation => Some("--evacuation"),
            Family::Slices => Some("--slices"),
            Family::SmallMaps => Some("--small-maps"),
            // On by default for `--pid`, but shed on its own like an opt-in family.
            Family::Discovery => Some("--discover"),
            Family::Maps | Family::GrowthEnds | Family::TimedResizes | Family::Fatal => None,
        }
    }

    /// The default families a budget may shed, costliest first: what each one's loss costs the
    /// user (a duration; an exact end) is smaller than the next one's (the events).
    pub const SHED_ORDER: [Family; 2] = [Family::TimedResizes, Family::GrowthEnds];

    /// Estimated nanoseconds its probes added: each hit's trap at the calibrated cost (from
    /// their counters' hits, `hits_of`), plus the time its handlers took, which the eBPF side
    /// measures (the calibration probe's handler is empty; the real ones read target memory
    /// and walk the stack). `stepped_growth_ends`: the growth-end probe sits on the
    /// single-stepped store fallback.
    pub fn estimate_ns(
        self,
        cost: &HitCost,
        hits_of: impl Fn(Counter) -> u64,
        stepped_growth_ends: bool,
    ) -> u64 {
        let traps: f64 = self
            .counters()
            .iter()
            .map(|&c| {
                let hits = hits_of(c);
                if c == Counter::HitsEvacuated && stepped_growth_ends {
                    hits as f64 * cost.stepped_ns
                } else {
                    cost.estimate(c, hits)
                }
            })
            .sum();
        traps as u64 + hits_of(self.handler_counter())
    }

    /// Estimated nanoseconds from a family's own totals, as the agent's per-executable
    /// [`map_trace_common::config::ExeCost`] has them: `hits` program runs at the trap cost
    /// of its kind of probe, plus `handler_ns`. Body and RET hits of the families that have
    /// both are equally many, so they are priced at the mean of the two.
    pub fn estimate_from(
        self,
        cost: &HitCost,
        hits: u64,
        handler_ns: u64,
        stepped_growth_ends: bool,
    ) -> u64 {
        let per = match self {
            Family::Maps | Family::SmallMaps | Family::Discovery => cost.body_ns,
            Family::GrowthEnds if stepped_growth_ends => cost.stepped_ns,
            Family::GrowthEnds => cost.body_ns,
            // As in `HitCost::estimate`.
            Family::TimedResizes | Family::Fatal => cost.stepped_ns,
            Family::Evacuation | Family::Slices => (cost.body_ns + cost.stepped_ns) / 2.0,
        };
        (hits as f64 * per) as u64 + handler_ns
    }

    /// Its slot in [`map_trace_common::config::ExeCost`] (the order of the `Ns*` counters).
    pub fn cost_slot(self) -> usize {
        (self.handler_counter() as u32 - Counter::NsMaps as u32) as usize
    }

    /// The counter of nanoseconds its handlers took.
    pub fn handler_counter(self) -> Counter {
        match self {
            Family::Maps => Counter::NsMaps,
            Family::GrowthEnds => Counter::NsGrowthEnds,
            Family::TimedResizes => Counter::NsTimedResizes,
            Family::Evacuation => Counter::NsEvacuation,
            Family::Slices => Counter::NsSlices,
            Family::SmallMaps => Counter::NsSmallMaps,
            Family::Discovery => Counter::NsDiscovery,
            Family::Fatal => Counter::NsFatal,
        }
    }

    /// The hit counters of its programs.
    pub fn counters(self) -> &'static [Counter] {
        match self {
            Family::Maps => &[
                Counter::HitsHashGrow,
                Counter::HitsGrowToTable,
                Counter::HitsRehash,
            ],
            Family::GrowthEnds => &[Counter::HitsEvacuated],
            Family::TimedResizes => &[Counter::HitsSwissRet],
            Family::Evacuation => &[Counter::HitsEvacuate, Counter::HitsEvacuateRet],
            Family::Slices => &[Counter::HitsGrowslice, Counter::HitsGrowsliceRet],
            Family::SmallMaps => &[Counter::HitsGrowToSmall],
            Family::Discovery => &[Counter::HitsMapAccess],
            Family::Fatal => &[Counter::HitsFatal],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_family_of_programs() {
        assert_eq!(Family::of(names::PROG_SLICE_GROW_RET), Family::Slices);
        assert_eq!(
            Family::of(names::PROG_HMAP_EVACUATED[3]),
            Family::GrowthEnds
        );
        assert_eq!(Family::of(names::PROG_HMAP_EVACUATE), Family::Evacuation);
        assert_eq!(Family::of(names::PROG_HMAP_HASH_GROW), Family::Maps);
        assert_eq!(
            Family::of(names::PROG_SWISS_GROW_TO_SMALL),
            Family::SmallMaps
        );
        assert!(Family::Maps.flag().is_none() && Family::GrowthEnds.flag().is_none());
        assert_eq!(
            Family::of(names::PROG_SWISS_REHASH_RET),
            Family::TimedResizes
        );
        assert_eq!(Family::of(names::PROG_SWISS_REHASH), Family::Maps);
    }

    #[test]
    fn test_estimate_from_totals_prices_each_kind_of_hit() {
        let c = HitCost {
            body_ns: 1_000.0,
            stepped_ns: 12_000.0,
            calibrated: true,
        };
        assert_eq!(Family::Maps.estimate_from(&c, 10, 500, false), 10_500);
        assert_eq!(
            Family::TimedResizes.estimate_from(&c, 10, 0, false),
            120_000
        );
        assert_eq!(Family::GrowthEnds.estimate_from(&c, 1, 0, true), 12_000);
        assert_eq!(Family::Slices.estimate_from(&c, 2, 0, false), 13_000);
        // Slots follow the Ns counters.
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(f.cost_slot(), i, "{f:?}");
        }
    }
}
