//! Types shared by `map-trace-ebpf` (kernel side) and `map-trace` (userspace).
//!
//! Everything here is `#[repr(C)]`, has explicit padding and no `bool`, so that both sides agree on
//! every byte. Event structs are defined once, here; userspace decodes them in
//! `map-trace/src/events/decode.rs`, tests encode them with [`event::as_bytes`].
#![no_std]
#![deny(missing_docs)]

pub mod config;
pub mod event;
pub mod names;
