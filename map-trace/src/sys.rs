//! The remaining direct OS calls: capabilities, clocks, rlimits, pidfds, signals.

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd},
};

/// `CAP_SYS_ADMIN`.
const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_PERFMON` (Linux 5.8+).
const CAP_PERFMON: u32 = 38;
/// `CAP_BPF` (Linux 5.8+).
const CAP_BPF: u32 = 39;

/// Parses the `CapEff:` hex mask from `/proc/self/status` text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// Which needed capabilities are missing (empty when tracing is allowed).
pub fn missing_capabilities(cap_eff: u64) -> Vec<&'static str> {
    let has = |c: u32| cap_eff & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) {
        return vec![];
    }
    let mut missing = vec![];
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    missing
}

/// Checks this process may load BPF programs and attach uprobes.
pub fn check_privileges() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(eff) = parse_cap_eff(&status) else {
        return Ok(());
    };
    let missing = missing_capabilities(eff);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing privileges: need {} (or CAP_SYS_ADMIN) to load eBPF programs and attach \
             uprobes; run as root, e.g. with sudo",
            missing.join(" and ")
        ))
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Nanoseconds to add to `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) to get Unix time.
pub fn monotonic_to_unix_offset() -> i128 {
    let real = clock_ns(libc::CLOCK_REALTIME);
    let mono = clock_ns(libc::CLOCK_MONOTONIC);
    real - mono
}

/// CLOCK_MONOTONIC now in nanoseconds (the clock of `bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC).max(0) as u64
}

/// Unix time now in nanoseconds.
pub fn unix_now_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME).max(0) as u64
}

/// Lifts RLIMIT_MEMLOCK for kernels that still charge BPF maps to it (before 5.11; from 5.11
/// maps are charged to the memory cgroup). Returns false if the limit could not be raised
/// (no CAP_SYS_RESOURCE).
pub fn raise_memlock_rlimit() -> bool {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) == 0 }
}

/// `pidfd_open(pid)`: a descriptor that becomes readable when the process exits (Linux 5.3+).
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with integer arguments; on success it returns a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly opened descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `sig` to `pid`; errors (process already gone) are ignored.
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Waits up to `limit` for `fd` to become readable (`poll(2)`); `false` on timeout or error.
pub fn poll_readable(fd: std::os::fd::RawFd, limit: std::time::Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `p` is one valid pollfd for the duration of the call; an invalid fd is reported
    // in `revents`, not undefined behaviour.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0 && p.revents & libc::POLLIN != 0
}

/// Hands every open file of this process to a child that closes them once this process has
/// exited, so that closing them costs this process nothing: map-trace's uprobe links, whose
/// release waits in the kernel (an RCU grace period per uprobe, ~100 ms each on Linux 6.18,
/// one after another), are released by the child after map-trace is gone. The child holds a
/// reference to every file until then, so the ones this process closes meanwhile are
/// released at once. Only for probes that can no longer fire (their target process is gone):
/// until the child is done they stay registered. Returns `false` when no child could be
/// started (the caller then pays for the release itself).
pub fn release_files_in_background() -> bool {
    let mut gate = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(gate.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return false;
    }
    // SAFETY: fork in a multithreaded process: the child runs only async-signal-safe system
    // calls (close, read, close_range, _exit) before it ends, touching no lock or allocator.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: plain system calls on the child's own descriptor table.
            unsafe {
                // Its own process group, so a Ctrl-C meant for the terminal's next command is
                // not for it; and no stdio, so whoever reads map-trace's output sees its end
                // when map-trace exits.
                libc::setpgid(0, 0);
                for fd in [0, 1, 2, gate[1]] {
                    libc::close(fd);
                }
                // Until map-trace exits (its end of the pipe closes): had the child closed
                // first, map-trace would hold the last references and wait for them itself.
                let mut b = 0u8;
                while libc::read(gate[0], (&raw mut b).cast(), 1) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
                if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
                    for fd in 3..65_536 {
                        libc::close(fd);
                    }
                }
                libc::_exit(0)
            }
        }
        -1 => {
            // SAFETY: closing the pipe just made.
            unsafe {
                libc::close(gate[0]);
                libc::close(gate[1]);
            }
            false
        }
        _ => {
            // The write end stays open, on purpose, until this process exits.
            // SAFETY: closing this process's copy of the read end.
            unsafe { libc::close(gate[0]) };
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_capabilities() {
        let root = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        assert_eq!(
            missing_capabilities(parse_cap_eff(root).unwrap()),
            Vec::<&str>::new()
        );
        let none = "CapEff:\t0000000000000000\n";
        assert_eq!(
            missing_capabilities(parse_cap_eff(none).unwrap()),
            vec!["CAP_BPF", "CAP_PERFMON"]
        );
        let bpf_perfmon = (1u64 << 39) | (1u64 << 38);
        assert!(missing_capabilities(bpf_perfmon).is_empty());
        assert_eq!(missing_capabilities(1u64 << 39), vec!["CAP_PERFMON"]);
    }

    #[test]
    fn test_clock_offset_is_sane() {
        let off = monotonic_to_unix_offset();
        // Unix time minus uptime: after 2020 by any measure.
        assert!(off > 0);
        assert!(unix_now_ns() > 1_577_836_800 * 1_000_000_000);
    }
}
