//! map-trace as a library: the pieces of the `map-trace` binary, exposed so that benchmarks
//! and fuzz targets can drive the parsers and the event pipeline directly.
//!
//! Flow: cli → target discovery → symbol resolution → Go-version layout → probe attachment →
//! event decoding → timeline → outputs. [`session::run`] does the wiring; [`pipeline`] is its
//! pure half (records in, sink calls out), which [`recording`] records and replays.

pub mod agent;
pub mod cli;
pub mod collector;
pub mod config;
pub mod error;
pub mod events;
pub mod golayout;
pub mod heap;
pub mod kernel;
pub mod launch;
pub mod output;
pub mod overhead;
pub mod pipeline;
pub mod plan;
pub mod probes;
pub mod recording;
pub mod replay;
pub mod session;
pub mod symbols;
pub mod sys;
pub mod target;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod timeline;
pub mod timing;
