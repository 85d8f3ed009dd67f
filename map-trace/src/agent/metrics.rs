//! The agent's Prometheus metrics (prometheus-client; OpenMetrics text exposition).
//!
//! Label cardinality is bounded: `executable` and `go_version` by the executables traced
//! (`--max-executables`), `pod_uid`/`container_id` by the pods on the node, `site` by
//! `--max-sites` per executable (later sites are counted under `site="other"`), `kind` and
//! `probe` by fixed sets. Durations carry no site or pod label (a histogram per site would
//! multiply series by the bucket count).

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::{Registry, Unit},
};

/// Labels of per-site series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabels {
    /// Executable file name.
    pub executable: String,
    /// Go version the executable was built with.
    pub go_version: String,
    /// Kubernetes pod UID ("" outside Kubernetes).
    pub pod_uid: String,
    /// Container id ("" outside containers).
    pub container_id: String,
    /// The call site (first user frame, see `symbols::packages`): `function (file.go:line)`,
    /// `other` past the cap,
    /// `unknown` when the stack could not be read.
    pub site: String,
    /// `double`, `same_size` (classic); `small_to_table`, `table_grow`, `table_split` (Swiss).
    pub kind: String,
}

/// Labels of the gauges of what maps hold now: per site, without a kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HeldLabels {
    /// Executable file name.
    pub executable: String,
    /// Go version.
    pub go_version: String,
    /// Kubernetes pod UID ("" outside Kubernetes).
    pub pod_uid: String,
    /// Container id ("" outside containers).
    pub container_id: String,
    /// The site of the maps' grows, as in [`SiteLabels::site`].
    pub site: String,
}

/// Labels of per-executable series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExeLabels {
    /// Executable file name.
    pub executable: String,
    /// Go version.
    pub go_version: String,
    /// Resize kind, as in [`SiteLabels::kind`].
    pub kind: String,
}

/// Labels of per-executable, per-probe-family series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FamilyLabels {
    /// Executable file name.
    pub executable: String,
    /// Go version.
    pub go_version: String,
    /// Probe family: `maps` (the event probes), `timed_resizes` (Swiss resize timing).
    pub family: String,
}

/// Labels of per-executable series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExeOnlyLabels {
    /// Executable file name.
    pub executable: String,
    /// Go version.
    pub go_version: String,
}

/// One label naming a probe or a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// The probe family.
    pub probe: String,
}

/// Why an executable is not traced.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `unsupported`, `vanished`, `attach_failed`, `limit`.
    pub reason: String,
}

/// Every metric the agent exports.
pub struct Metrics {
    /// The registry the HTTP endpoint encodes.
    pub registry: Registry,
    /// Map growths started (classic `hashGrow`; Swiss small→table and table grows).
    pub grows: Family<SiteLabels, Counter>,
    /// Bytes allocated for new map storage by those growths (and splits).
    pub grow_bytes: Family<SiteLabels, Counter>,
    /// Time spent in Swiss resizes (classic grows are incremental and not timed).
    pub grow_duration: Family<ExeLabels, Histogram>,
    /// Records the kernel dropped because the ring buffer was full.
    pub lost_events: Counter,
    /// Of them, exec notifications.
    pub lost_execs: Counter,
    /// `--events` lines dropped because their output did not keep up (or was gone).
    pub events_dropped: Counter,
    /// Probe hits per probe family.
    pub probe_hits: Family<ProbeLabels, Counter>,
    /// Go processes currently traced.
    pub processes: Gauge,
    /// Executable files currently carrying probes.
    pub executables: Gauge,
    /// Go executables that could not be traced, by reason.
    pub skipped: Family<ReasonLabels, Counter>,
    /// From a new executable's exec to its probes being live.
    pub attach_delay: Histogram,
    /// Share of the time each family's probes are attached: 1, the duty when duty-cycled, 0
    /// when shed.
    pub probe_duty: Family<FamilyLabels, Gauge<f64, AtomicU64>>,
    /// Times the budget shed a family or began duty-cycling it.
    pub budget_sheds: Family<FamilyLabels, Counter>,
    /// Estimated share of an executable's CPU time its probes took in the last second.
    pub probe_overhead: Family<ExeOnlyLabels, Gauge<f64, AtomicU64>>,
    /// Live entries of the sampled maps, at the last sampling round.
    pub map_entries: Family<HeldLabels, Gauge>,
    /// Heap bytes the sampled maps hold.
    pub map_storage: Family<HeldLabels, Gauge>,
    /// Of those, the bytes beyond what `make(map[K]V, len)` would hold.
    pub map_retained: Family<HeldLabels, Gauge>,
    /// Goroutines the runtime killed their process for a map misuse (`kind`: writes,
    /// read_write, iteration_write), by the call site that misused the map.
    pub concurrent_map_fatal: Family<SiteLabels, Counter>,
    /// Samples `/debug/pprof/mapgrowth` could not keep: a new stack over
    /// `--max-profile-stacks`.
    pub profile_samples_dropped: Family<ExeOnlyLabels, Counter>,
}

impl Metrics {
    /// Registers every metric under the `map_trace_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("map_trace");
        let grows = Family::<SiteLabels, Counter>::default();
        registry.register(
            "map_grows",
            "Go map growths started: classic hashGrow (kind double or same_size), Swiss small-to-table and table grows, Swiss table splits",
            grows.clone(),
        );
        let grow_bytes = Family::<SiteLabels, Counter>::default();
        registry.register_with_unit(
            "map_grow",
            "Bytes requested for new map storage by growths (before malloc rounding; Swiss: slots times key+elem size plus control bytes)",
            Unit::Bytes,
            grow_bytes.clone(),
        );
        let grow_duration = Family::<ExeLabels, Histogram>::new_with_constructor(|| {
            // 1 µs … ~0.5 s.
            Histogram::new(exponential_buckets(1e-6, 4.0, 10))
        });
        registry.register_with_unit(
            "map_grow_duration",
            "Time spent in one Swiss-table resize, from the function body to its return",
            Unit::Seconds,
            grow_duration.clone(),
        );
        let lost_events = Counter::default();
        registry.register(
            "lost_events",
            "Event records dropped by the kernel because the ring buffer was full",
            lost_events.clone(),
        );
        let lost_execs = Counter::default();
        registry.register(
            "lost_exec_notifications",
            "Of map_trace_lost_events_total, exec notifications: new processes found only at the next /proc rescan",
            lost_execs.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "--events lines dropped because their output did not keep up (8 MiB queued at most) or was closed",
            events_dropped.clone(),
        );
        let probe_hits = Family::<ProbeLabels, Counter>::default();
        registry.register(
            "probe_hits",
            "Uprobe hits per probe family in traced processes",
            probe_hits.clone(),
        );
        let processes = Gauge::default();
        registry.register(
            "attached_processes",
            "Go processes currently traced",
            processes.clone(),
        );
        let executables = Gauge::default();
        registry.register(
            "attached_executables",
            "Executable files currently carrying probes (one set of probes serves every process running the file)",
            executables.clone(),
        );
        let skipped = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "skipped_executables",
            "Go executables found but not traced, by reason",
            skipped.clone(),
        );
        let attach_delay = Histogram::new(exponential_buckets(0.001, 2.0, 13));
        registry.register_with_unit(
            "attach_delay",
            "From a new executable's exec to its probes being live",
            Unit::Seconds,
            attach_delay.clone(),
        );
        let probe_duty = Family::<FamilyLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "probe_duty",
            "Share of the time a probe family is attached to an executable: 1 normally; below 1 while the overhead budget duty-cycles it, when map_grows and map_grow_bytes count each event seen as 1/duty events (an estimate); 0 once shed",
            Unit::Other("ratio".into()),
            probe_duty.clone(),
        );
        let budget_sheds = Family::<FamilyLabels, Counter>::default();
        registry.register(
            "budget_sheds",
            "Times the overhead budget shed a probe family of an executable (timed_resizes: resizes still counted, untimed) or began duty-cycling it (maps)",
            budget_sheds.clone(),
        );
        let probe_overhead = Family::<ExeOnlyLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "probe_overhead",
            "Estimated share of an executable's CPU time its probes took in the last window (probe hits at the measured trap cost plus handler time, over its processes' CPU time)",
            Unit::Other("ratio".into()),
            probe_overhead.clone(),
        );
        let map_entries = Family::<HeldLabels, Gauge>::default();
        registry.register(
            "map_entries",
            "Live entries of the sampled maps (those seen growing), per site, at the last sampling round",
            map_entries.clone(),
        );
        let map_storage = Family::<HeldLabels, Gauge>::default();
        registry.register_with_unit(
            "map_storage",
            "Heap bytes the sampled maps hold now (header, buckets or directory and tables, rounded to malloc size classes)",
            Unit::Bytes,
            map_storage.clone(),
        );
        let map_retained = Family::<HeldLabels, Gauge>::default();
        registry.register_with_unit(
            "map_retained",
            "Bytes the sampled maps hold beyond what make(map[K]V, len) would: memory kept after deletes (Go never shrinks a map)",
            Unit::Bytes,
            map_retained.clone(),
        );
        let concurrent_map_fatal = Family::<SiteLabels, Counter>::default();
        registry.register(
            "concurrent_map_fatal",
            "Goroutines that reached the Go runtime's fatal error for a map misuse (kind writes: concurrent map writes; read_write: concurrent map read and map write; iteration_write: concurrent map iteration and map write), one or two per crash, by the call site",
            concurrent_map_fatal.clone(),
        );
        let profile_samples_dropped = Family::<ExeOnlyLabels, Counter>::default();
        registry.register(
            "profile_samples_dropped",
            "Map events /debug/pprof/mapgrowth left out of its window: their stack would have gone past --max-profile-stacks distinct stacks of the executable",
            profile_samples_dropped.clone(),
        );
        Self {
            registry,
            concurrent_map_fatal,
            profile_samples_dropped,
            map_entries,
            map_storage,
            map_retained,
            probe_duty,
            budget_sheds,
            probe_overhead,
            grows,
            grow_bytes,
            grow_duration,
            lost_events,
            lost_execs,
            events_dropped,
            probe_hits,
            processes,
            executables,
            skipped,
            attach_delay,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_exposition_names_and_labels() {
        let m = Metrics::new();
        let l = SiteLabels {
            executable: "server".into(),
            go_version: "go1.23.9".into(),
            pod_uid: "".into(),
            container_id: "".into(),
            site: "main.fill (growth.go:42)".into(),
            kind: "double".into(),
        };
        m.grows.get_or_create(&l).inc_by(14);
        m.grow_bytes.get_or_create(&l).inc_by(1000);
        m.grow_duration
            .get_or_create(&ExeLabels {
                executable: "server".into(),
                go_version: "go1.23.9".into(),
                kind: "table_split".into(),
            })
            .observe(70e-6);
        let text = m.encode();
        assert!(
            text.contains(r#"map_trace_map_grows_total{executable="server",go_version="go1.23.9",pod_uid="",container_id="",site="main.fill (growth.go:42)",kind="double"} 14"#),
            "{text}"
        );
        assert!(text.contains("map_trace_map_grow_bytes_total{"), "{text}");
        assert!(
            text.contains("map_trace_map_grow_duration_seconds_bucket{"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE map_trace_attached_processes gauge"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
