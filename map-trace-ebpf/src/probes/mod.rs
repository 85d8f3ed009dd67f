//! Probe families. Each program is attached by userspace at a file offset it computed.

pub mod hmap;
pub mod swiss;

use aya_ebpf::helpers::bpf_probe_read_user;

/// Reads a `T` from target memory; on failure sets `*err` and returns the default.
#[inline(always)]
pub fn read<T: Copy + Default>(addr: u64, err: &mut u8) -> T {
    // SAFETY: bpf_probe_read_user copies from target memory and fails cleanly on a bad address.
    match unsafe { bpf_probe_read_user(addr as *const T) } {
        Ok(v) => v,
        Err(_) => {
            *err = 1;
            T::default()
        }
    }
}
