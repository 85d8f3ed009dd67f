//! Probe families. Each program is attached by userspace at a file offset it computed.

pub mod hmap;
