//! The recording's lines as serde types: the header, the records, the symbol-table entries,
//! the detach notices and the end. The file format is these types, nothing else.

use serde::{Deserialize, Serialize};

use crate::{output::Hex, pipeline::Settings, symbols::pclntab::SourcePos};

#[derive(Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) record_version: u64,
    pub(super) map_trace_version: String,
    pub(super) start: Start,
    pub(super) settings: Settings,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Start {
    pub(super) time_ns: u64,
    pub(super) pid: u32,
    pub(super) exe: String,
    pub(super) go_version: String,
    /// Absent in recordings made before map-trace read `runtime.buildVersion`: those versions
    /// all came from `.go.buildinfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) go_version_source: Option<String>,
    pub(super) map_impl: String,
    pub(super) arch: String,
    pub(super) launched: bool,
    pub(super) probes: Vec<Probe>,
    /// The executable's Go build ID (absent before map-trace wrote profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) build_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Probe {
    pub(super) program: String,
    pub(super) function: String,
    pub(super) vaddr: Hex,
    pub(super) offset_in_function: u64,
    pub(super) file_offset: Hex,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Line {
    Record(String),
    Stack(StackEntry),
    Type(TypeEntry),
    Detached(DetachedLine),
    Samples(SamplesLine),
    Sampling(SamplingStateLine),
    Discovered(DiscoveredLine),
    Fatal(FatalEntry),
    End(End),
}

/// Where the live run's decoder found the map of a fatal error (written before its record).
#[derive(Serialize, Deserialize)]
pub(super) struct FatalEntry {
    /// The record's thread and timestamp, which name it.
    pub(super) tid: u32,
    pub(super) ts_ns: u64,
    #[serde(flatten)]
    pub(super) map: crate::timeline::fatal::FatalMap,
}

/// The maps a `--discover` window added (their stacks and types are written first), and what
/// the window did.
#[derive(Serialize, Deserialize)]
pub(super) struct DiscoveredLine {
    pub(super) maps: Vec<FoundEntry>,
    pub(super) report: crate::timeline::health::DiscoveryReport,
}

#[derive(Serialize, Deserialize)]
pub(super) struct FoundEntry {
    pub(super) time_ns: u64,
    pub(super) map: Hex,
    pub(super) maptype: Hex,
    /// The callers of the access, innermost first.
    pub(super) pcs: Vec<Hex>,
    pub(super) swiss: bool,
}

/// One map-sampling round: each sampled map's outcome.
#[derive(Serialize, Deserialize)]
pub(super) struct SamplesLine {
    pub(super) time_ns: u64,
    pub(super) capped: bool,
    pub(super) maps: Vec<SampleEntry>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SampleEntry {
    /// The map's id in the timeline (the replay's timeline gives the same ids).
    pub(super) id: u64,
    pub(super) map: Hex,
    pub(super) maptype: Hex,
    /// `live`, `freed`, `not_heap` or `unreadable`.
    pub(super) outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// What a live sample found (the timeline's own type: the recording carries it as is,
    /// as the header carries `Settings`).
    pub(super) health: Option<crate::timeline::health::Health>,
}

/// Whether sampling ran, and why not.
#[derive(Serialize, Deserialize)]
pub(super) struct SamplingStateLine {
    pub(super) enabled: bool,
    pub(super) note: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct StackEntry {
    /// The valid return addresses, innermost first.
    pub(super) pcs: Vec<Hex>,
    /// `null`: not symbolized.
    pub(super) origin: Option<OriginEntry>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct OriginEntry {
    pub(super) frames: Vec<SourcePos>,
    pub(super) site: Option<usize>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct TypeEntry {
    pub(super) addr: Hex,
    pub(super) name: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct DetachedLine {
    pub(super) time_ns: u64,
    pub(super) family: String,
    pub(super) share_percent: f64,
    pub(super) budget_percent: f64,
    pub(super) hits: u64,
    /// Duty-cycled from then on (absent in recordings from before sampling existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sampled_duty: Option<f64>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct End {
    pub(super) time_ns: u64,
    pub(super) reason: String,
    pub(super) exit_status: Option<i32>,
    pub(super) lost: u64,
    pub(super) read_errors: u64,
    /// Informational (replay counts again).
    pub(super) undecodable: u64,
    /// Informational (replay counts again).
    pub(super) events: u64,
    pub(super) probe_hits: Vec<(String, u64)>,
    pub(super) overhead: OverheadLine,
}

#[derive(Serialize, Deserialize)]
pub(super) struct OverheadLine {
    pub(super) hit_cost: HitCostLine,
    pub(super) families: Vec<FamilyLine>,
    pub(super) estimated_ns: u64,
    pub(super) target_cpu_ns: Option<u64>,
    pub(super) budget_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sampling: Option<SamplingLine>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SamplingLine {
    pub(super) family: String,
    pub(super) since_ns: u64,
    pub(super) attached_ns: u64,
    pub(super) elapsed_ns: u64,
    pub(super) lost_before: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct HitCostLine {
    pub(super) body_ns: f64,
    pub(super) stepped_ns: f64,
    pub(super) calibrated: bool,
}

#[derive(Serialize, Deserialize)]
pub(super) struct FamilyLine {
    pub(super) family: String,
    pub(super) hits: u64,
    pub(super) estimated_ns: u64,
    /// Unix ns and share (percent) when `--max-overhead` detached it.
    pub(super) detached: Option<(u64, f64)>,
}
