//! `/proc/<pid>` readers.

use std::{io, path::PathBuf};

use anyhow::Result;

use super::TargetError;

/// A process's executable as seen through procfs.
pub struct ExeLink {
    /// `/proc/PID/exe`.
    pub path: PathBuf,
    /// What the link points at (may end in " (deleted)").
    pub display: String,
}

/// Resolves `/proc/PID/exe`, telling apart a missing process, a kernel thread and a permission
/// problem.
pub fn exe_link(pid: u32) -> Result<ExeLink> {
    if pid == 0 {
        return Err(TargetError::NoSuchProcess(0).into());
    }
    let dir = PathBuf::from(format!("/proc/{pid}"));
    if !dir.join("stat").exists() {
        return Err(TargetError::NoSuchProcess(pid).into());
    }
    let path = dir.join("exe");
    match std::fs::read_link(&path) {
        Ok(target) => Ok(ExeLink {
            path,
            display: target.display().to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if dir.join("stat").exists() {
                Err(TargetError::NoExecutable(pid).into())
            } else {
                Err(TargetError::Exited(pid).into())
            }
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(TargetError::ExeUnreadable(pid).into())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading /proc/{pid}/exe"))),
    }
}

/// Whether the process still exists (and is not a zombie we reaped).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_state(&stat).is_some_and(|s| s != 'Z' && s != 'X'),
        Err(_) => false,
    }
}

/// The state letter of a `/proc/PID/stat` line (the field after the parenthesized comm).
pub fn parse_state(stat: &str) -> Option<char> {
    let close = stat.rfind(')')?;
    stat[close + 1..].trim_start().chars().next()
}

/// CPU time (user + system, all threads) of a process, in nanoseconds; `None` once it is gone.
/// Probe handlers run in the traced thread's context, so their time is included (as system
/// time).
pub fn cpu_time_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|t| t.saturating_mul(1_000_000_000) / clock_ticks_per_second())
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let close = stat.rfind(')')?;
    // After ") ": field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
    let mut fields = stat[close + 1..].split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime))
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_state_with_parens_in_comm() {
        assert_eq!(parse_state("42 (a) b) S 1 2 3"), Some('S'));
        assert_eq!(parse_state("7 (go) Z 1"), Some('Z'));
        assert_eq!(parse_state("garbage"), None);
    }

    #[test]
    fn test_parse_cpu_ticks() {
        let line = "4242 (my (prog)) R 1 4242 4242 0 -1 4194560 120 0 0 0 37 5 0 0 20 0 3 0 9 1 2";
        assert_eq!(parse_cpu_ticks(line), Some(42));
        assert_eq!(parse_cpu_ticks("1 (x) S 1"), None);
        assert!(cpu_time_ns(std::process::id()).is_some());
    }

    #[test]
    fn test_exe_link_errors() {
        let e = exe_link(0).err().unwrap();
        assert_eq!(
            crate::error::classify(&e).code,
            crate::error::EXIT_BAD_TARGET
        );
        let e = exe_link(u32::MAX - 1).err().unwrap();
        assert!(e.to_string().contains("no such process"));
        assert!(alive(std::process::id()));
        let me = exe_link(std::process::id()).unwrap();
        assert!(me.path.ends_with("exe"));
    }
}
