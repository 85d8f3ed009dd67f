//! map-trace eBPF programs: uprobes on the Go runtime's map growth functions.
//!
//! One object, one ring buffer (`EVENTS`) shared by every program. Go arguments are read from the
//! Go register ABI (`go_abi`), never from the C calling convention. Per-process struct offsets come
//! from the `LAYOUTS` map, so one loaded object serves every Go version.
#![no_std]
#![no_main]

mod go_abi;
mod maps;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
