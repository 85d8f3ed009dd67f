//! Target discovery: the process (or program) to trace and the executable behind it.

pub mod procfs;

use std::path::{Path, PathBuf};

use anyhow::Result;

/// Why a process or program cannot be the target; the exit code is decided from it at the
/// edge (`error::classify`). The text is the one line users see.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// No process with this pid.
    #[error("no such process: pid {0}")]
    NoSuchProcess(u32),
    /// The process existed and has exited since.
    #[error("no such process: pid {0} (it exited)")]
    Exited(u32),
    /// A kernel thread or a zombie: no executable to read.
    #[error("pid {0} has no executable (a kernel thread or a zombie): not a Go process")]
    NoExecutable(u32),
    /// `/proc/PID/exe` cannot be read.
    #[error("cannot read /proc/{0}/exe: permission denied (run as root, or grant CAP_SYS_PTRACE)")]
    ExeUnreadable(u32),
    /// A program file without execute permission.
    #[error("{}: not executable", .0.display())]
    NotExecutable(PathBuf),
    /// No such file, and no such command on `$PATH`.
    #[error("{0}: no such file or command")]
    NoSuchCommand(String),
    /// Neither `--pid` nor a command.
    #[error("nothing to trace: give --pid PID or -- COMMAND [ARGS]")]
    Nothing,
}

/// The executable to trace.
#[derive(Clone, Debug)]
pub struct Target {
    /// Process id, when tracing a running process.
    pub pid: Option<u32>,
    /// Path used to read and to attach: `/proc/PID/exe` for a running process (works even if
    /// the file was replaced or deleted), the resolved program path in launch mode.
    pub exe: PathBuf,
    /// Path shown to people (the `/proc/PID/exe` link target).
    pub display: String,
}

impl Target {
    /// A running process.
    pub fn from_pid(pid: u32) -> Result<Self> {
        let exe = procfs::exe_link(pid)?;
        Ok(Self {
            pid: Some(pid),
            display: exe.display,
            exe: exe.path,
        })
    }

    /// A program to launch, found like `execvp` does.
    pub fn from_command(program: &str) -> Result<Self> {
        let path = resolve_program(program)?;
        let display = path.display().to_string();
        Ok(Self {
            pid: None,
            exe: path,
            display,
        })
    }
}

/// Resolves a command name through `$PATH` (names with a `/` are taken as they are).
fn resolve_program(program: &str) -> Result<PathBuf> {
    let found = if program.contains('/') {
        Some(PathBuf::from(program)).filter(|p| p.is_file())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| is_executable(p))
        })
    };
    match found {
        Some(p) if is_executable(&p) => Ok(p),
        Some(p) => Err(TargetError::NotExecutable(p).into()),
        None => Err(TargetError::NoSuchCommand(program.to_string()).into()),
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
