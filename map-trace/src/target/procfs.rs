//! `/proc/<pid>` readers.

use std::{io, path::PathBuf};

use anyhow::Result;

use crate::error::Fail;

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
        return Err(Fail::bad_target("no such process: pid 0").into());
    }
    let dir = PathBuf::from(format!("/proc/{pid}"));
    if !dir.join("stat").exists() {
        return Err(Fail::bad_target(format!("no such process: pid {pid}")).into());
    }
    let path = dir.join("exe");
    match std::fs::read_link(&path) {
        Ok(target) => Ok(ExeLink {
            path,
            display: target.display().to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if dir.join("stat").exists() {
                Err(Fail::bad_target(format!(
                    "pid {pid} has no executable (a kernel thread or a zombie): not a Go process"
                ))
                .into())
            } else {
                Err(Fail::bad_target(format!("no such process: pid {pid} (it exited)")).into())
            }
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(Fail::privileges(format!(
            "cannot read /proc/{pid}/exe: permission denied (run as root, or grant CAP_SYS_PTRACE)"
        ))
        .into()),
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
