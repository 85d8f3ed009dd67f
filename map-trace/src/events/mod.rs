//! Events from the kernel: decoding records (`decode`) and draining the ring buffer (`reader`).

pub mod decode;
pub mod reader;
