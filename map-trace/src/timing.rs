//! Start-up phase timings, for finding where the time to live probes goes.
//!
//! With `MAP_TRACE_TIMING=1` in the environment, [`mark`] prints one stderr line per phase:
//! `map-trace: timing: PHASE +DELTA ms (TOTAL ms)`, measured from the first mark. Off (and a
//! relaxed atomic load per call) otherwise: it is a diagnostic, not an output, and nothing
//! parses it.

use std::{
    sync::{Mutex, OnceLock},
    time::Instant,
};

/// Whether timing is on, read once.
fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MAP_TRACE_TIMING").is_some_and(|v| v == "1"))
}

/// The first mark and the last one.
static MARKS: Mutex<Option<(Instant, Instant)>> = Mutex::new(None);

/// Ends the phase `phase` now: prints how long it took since the previous mark. Pass
/// `format_args!` for a composed name: it is formatted only when timing is on.
pub fn mark(phase: impl std::fmt::Display) {
    if !enabled() {
        return;
    }
    let now = Instant::now();
    let mut marks = MARKS.lock().unwrap_or_else(|e| e.into_inner());
    let (first, last) = marks.get_or_insert((now, now));
    let line = format!(
        "map-trace: timing: {phase} +{:.1} ms ({:.1} ms)\n",
        (now - *last).as_secs_f64() * 1e3,
        (now - *first).as_secs_f64() * 1e3
    );
    *last = now;
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(line.as_bytes());
}
