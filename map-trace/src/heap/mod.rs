//! Map health from outside: what the tracked maps hold now, read from the running target's
//! memory with `process_vm_readv` (never stopping it), and only while the runtime's own heap
//! metadata says each header is a live object.
//!
//! [`memory`] reads the target; [`spans`] answers "is this slot allocated?" from `mheap_`;
//! [`header`] reads a map header and the storage it owns; [`sampler`] decides, per map and
//! interval, live (with its [`sampler::Health`]), freed, or not a heap map. [`locate`] finds
//! `runtime.mheap_` in the executable. Offsets are data in [`crate::golayout::heap`].

pub mod header;
pub mod locate;
pub mod memory;
pub mod sampler;
pub mod spans;
