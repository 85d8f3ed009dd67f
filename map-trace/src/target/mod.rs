//! Target discovery: the process (or program) to trace and the executable behind it.

pub mod procfs;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::Fail;

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
        Some(p) => Err(Fail::bad_target(format!("{}: not executable", p.display())).into()),
        None => Err(Fail::bad_target(format!("{program}: no such file or command")).into()),
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
