//! Launch mode: start a program held before `exec` until the probes are attached, so it is
//! traced from its first instruction.
//!
//! The child forks, reports its pid through a pipe and blocks reading a second pipe ("the
//! gate"). map-trace attaches the uprobes for that pid, then opens the gate and the child execs.
//! The child keeps map-trace's stdin/stdout/stderr and process group, so a terminal's Ctrl-C
//! reaches it directly.

use std::{
    io::{Read, Write},
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    process::{Child, Command},
    thread::JoinHandle,
};

use anyhow::{Context, Result};

/// A forked child waiting at the gate.
pub struct Held {
    /// The child's pid.
    pub pid: u32,
    gate: std::fs::File,
    spawner: JoinHandle<std::io::Result<Child>>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    use std::os::fd::FromRawFd;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Forks `program args`, holding it before exec.
pub fn spawn_held(program: &std::path::Path, argv0: &str, args: &[String]) -> Result<Held> {
    let (pid_r, pid_w) = pipe()?;
    let (gate_r, gate_w) = pipe()?;
    let mut cmd = Command::new(program);
    cmd.arg0(argv0).args(args);
    let (pid_w_raw, gate_r_raw) = (pid_w.as_raw_fd(), gate_r.as_raw_fd());
    // SAFETY: the closure runs in the forked child before exec and only calls async-signal-safe
    // functions (getpid, write, read, _exit) on descriptors that stay open until exec (O_CLOEXEC).
    unsafe {
        cmd.pre_exec(move || {
            let pid = libc::getpid().to_ne_bytes();
            libc::write(pid_w_raw, pid.as_ptr().cast(), pid.len());
            let mut b = [0u8; 1];
            loop {
                let n = libc::read(gate_r_raw, b.as_mut_ptr().cast(), 1);
                if n == 1 {
                    return Ok(());
                }
                if n == 0 {
                    // map-trace gave up (attach failed or it died): never run untraced.
                    libc::_exit(127);
                }
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    libc::_exit(127);
                }
            }
        });
    }
    // Command::spawn returns only after exec, which waits for the gate: spawn on a thread.
    let spawner = std::thread::spawn(move || {
        let r = cmd.spawn();
        drop((pid_w, gate_r));
        r
    });
    let mut pid_r = std::fs::File::from(pid_r);
    let mut buf = [0u8; 4];
    if pid_r.read_exact(&mut buf).is_err() {
        let err = spawner
            .join()
            .map_err(|_| anyhow::anyhow!("spawner thread panicked"))?;
        return Err(match err {
            Err(e) => anyhow::Error::new(e),
            Ok(_) => anyhow::anyhow!("child did not report its pid"),
        })
        .with_context(|| format!("starting {}", program.display()));
    }
    let pid = i32::from_ne_bytes(buf) as u32;
    Ok(Held {
        pid,
        gate: std::fs::File::from(gate_w),
        spawner,
    })
}

impl Held {
    /// Lets the child exec; returns it once the exec succeeded.
    pub fn release(mut self) -> Result<Child> {
        self.gate.write_all(b"g").context("releasing the child")?;
        drop(self.gate);
        let child = self
            .spawner
            .join()
            .map_err(|_| anyhow::anyhow!("spawner thread panicked"))?
            .context("exec failed")?;
        Ok(child)
    }

    /// Kills the held child (it never ran the program) and reaps it.
    pub fn abort(self) {
        crate::sys::kill(self.pid, libc::SIGKILL);
        drop(self.gate);
        if let Ok(Ok(mut child)) = self.spawner.join() {
            let _ = child.wait();
        }
    }
}
