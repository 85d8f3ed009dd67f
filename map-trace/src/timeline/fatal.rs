//! The runtime killed the process for misusing a map: what the user is told.

use std::sync::Arc;

use super::Origin;

/// Which misuse the runtime reported (the message of its `fatal error:` line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Misuse {
    /// `concurrent map writes`.
    Writes,
    /// `concurrent map read and map write`.
    ReadWrite,
    /// `concurrent map iteration and map write`.
    IterationWrite,
}

impl Misuse {
    /// Every kind, in report order.
    pub const ALL: [Misuse; 3] = [Misuse::Writes, Misuse::ReadWrite, Misuse::IterationWrite];

    /// The kind of a fatal error's message; `None` for the runtime's other fatal errors
    /// (deadlock, …), which map-trace does not report.
    pub fn of(message: &str) -> Option<Misuse> {
        Misuse::ALL.into_iter().find(|m| m.message() == message)
    }

    /// The runtime's message.
    pub fn message(self) -> &'static str {
        match self {
            Misuse::Writes => "concurrent map writes",
            Misuse::ReadWrite => "concurrent map read and map write",
            Misuse::IterationWrite => "concurrent map iteration and map write",
        }
    }

    /// The name in JSON (`kind`) and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Misuse::Writes => "writes",
            Misuse::ReadWrite => "read_write",
            Misuse::IterationWrite => "iteration_write",
        }
    }
}

/// One goroutine reached the runtime's fatal error for a map misuse (one or two per crash:
/// both goroutines of a race can).
#[derive(Clone, Debug, PartialEq)]
pub struct ConcurrentWrite {
    /// Unix epoch nanoseconds.
    pub time_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Goroutine id.
    pub goid: u64,
    /// What the runtime reported.
    pub kind: Misuse,
    /// The runtime map function that called `fatal`, when its frame was decoded.
    pub function: Option<String>,
    /// Where in the program: the call stack and its call site (first user frame).
    pub origin: Option<Arc<Origin>>,
    /// The map header's address, and where it was found; or why it was not.
    pub map: Option<u64>,
    /// Where the map was found (`register rdx`, …), or why it was not.
    pub found: String,
    /// Its type's name, when the type was found (at the call, or from what map-trace saw of
    /// the map before).
    pub type_name: Option<Arc<str>>,
    /// map-trace had seen this map before (grow, resize, `--discover`): where it was made or
    /// grown.
    pub known_origin: Option<Arc<Origin>>,
}

/// Where the map of a fatal error was found in the calling function's frame (what the
/// decoder said, in words, so a recording carries it as the live run had it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FatalMap {
    /// The runtime map function that called `fatal`.
    pub function: Option<String>,
    /// The map header's address.
    pub map: Option<u64>,
    /// Where it was (`register rdx`, …), or why it was not found.
    pub found: String,
    /// The map type descriptor's address.
    pub maptype: Option<u64>,
}

impl From<crate::symbols::fatal::Located> for FatalMap {
    fn from(l: crate::symbols::fatal::Located) -> Self {
        let (map, found) = match l.map {
            Ok((m, how)) => (Some(m), how.describe()),
            Err(why) => (None, why),
        };
        FatalMap {
            function: l.function,
            map,
            found,
            maptype: l.maptype,
        }
    }
}
