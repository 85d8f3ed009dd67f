//! Kernel feature checks at start-up: each missing feature is one clear error naming it and the
//! minimum kernel, before anything is loaded.
//!
//! BTF is not needed (map-trace reads user registers and user memory only), so it is not
//! checked. Probes run against the kernel itself rather than its version number, since
//! distributions backport features.

use std::path::Path;

/// `BPF_MAP_TYPE_RINGBUF`.
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
/// `BPF_MAP_CREATE`.
const BPF_MAP_CREATE: i32 = 0;

/// The leading fields of `union bpf_attr` for `BPF_MAP_CREATE`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    _rest: [u32; 27],
}

/// What a feature probe found.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    /// A feature the kernel lacks: (what, minimum kernel).
    Feature(&'static str, &'static str),
    /// The probe was refused for lack of privileges.
    Privileges,
}

/// Why this host cannot trace, as [`preflight`] finds it; the exit code is decided from it at
/// the edge (`error::classify`). The text is the one line users see.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// This process lacks capabilities (from its effective set).
    #[error("{0}")]
    Capabilities(String),
    /// The kernel refused the feature probe for lack of privileges.
    #[error("the kernel refused to create a BPF map: need CAP_BPF (or CAP_SYS_ADMIN)")]
    Refused,
    /// The kernel lacks a feature.
    #[error("kernel {release} lacks {what}: map-trace needs Linux {min} or later")]
    Feature {
        release: String,
        what: &'static str,
        min: &'static str,
    },
    /// A mode's own minimum kernel (the agent's attach cookies).
    #[error("{0}")]
    TooOld(String),
}

/// Privileges and kernel features every mode needs, as one-line errors.
pub fn preflight() -> Result<(), PreflightError> {
    crate::sys::check_privileges().map_err(PreflightError::Capabilities)?;
    // Before Linux 5.11 BPF maps count against RLIMIT_MEMLOCK, charged to the user: maps
    // other processes hold (another tracer, or an earlier map-trace's probes still being
    // released in the background) can leave too little for the probe map below, which would
    // read as a missing privilege. Raised here for the whole run (the load raises it too).
    crate::sys::raise_memlock_rlimit();
    match check() {
        Ok(()) => Ok(()),
        Err(Missing::Feature(what, min)) => {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            Err(PreflightError::Feature {
                release: release.trim().to_string(),
                what,
                min,
            })
        }
        Err(Missing::Privileges) => Err(PreflightError::Refused),
    }
}

/// Checks BPF ring buffers and uprobe perf events.
pub fn check() -> Result<(), Missing> {
    if !Path::new("/sys/bus/event_source/devices/uprobe/type").exists() {
        return Err(Missing::Feature(
            "uprobe perf events (CONFIG_UPROBE_EVENTS; /sys/bus/event_source/devices/uprobe)",
            "4.17",
        ));
    }
    ring_buffer()
}

fn ring_buffer() -> Result<(), Missing> {
    let attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_RINGBUF,
        max_entries: 4096,
        ..Default::default()
    };
    // SAFETY: bpf(BPF_MAP_CREATE) reads `size_of::<MapCreateAttr>()` bytes from the attr we
    // pass and returns a new descriptor (closed below) or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            &attr as *const MapCreateAttr,
            std::mem::size_of::<MapCreateAttr>() as u32,
        )
    };
    if fd >= 0 {
        // SAFETY: fd is the descriptor the kernel just returned to us.
        unsafe { libc::close(fd as i32) };
        return Ok(());
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Err(Missing::Privileges),
        Some(libc::ENOSYS) => Err(Missing::Feature(
            "the bpf() system call (CONFIG_BPF_SYSCALL)",
            "5.8",
        )),
        // EINVAL: the map type is unknown to this kernel.
        _ => Err(Missing::Feature(
            "BPF ring buffers (BPF_MAP_TYPE_RINGBUF)",
            "5.8",
        )),
    }
}

/// `major.minor` of a kernel release string such as `5.10.0-32-arm64`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The running kernel's `major.minor`.
pub fn release() -> Option<(u32, u32)> {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    parse_release(r.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_release() {
        assert_eq!(parse_release("5.10.0-32-arm64"), Some((5, 10)));
        assert_eq!(parse_release("6.18.44-fc-v509"), Some((6, 18)));
        assert_eq!(parse_release("4.18.0-553.el8_10.x86_64"), Some((4, 18)));
        assert_eq!(parse_release("garbage"), None);
    }
}
