//! Failure classes and their exit codes.
//!
//! Modules return their own error enums (`plan::PlanError`, `target::TargetError`,
//! `kernel::PreflightError`, `probes::KernelError`); this module alone maps them to exit codes.
//! A mode that finds a failure class of its own at its edge (a replay's unreadable recording,
//! an agent's metrics address) wraps it in a [`Fail`]. `classify` turns whatever reached `main`
//! into one line and a code.

use std::fmt;

use crate::{kernel::PreflightError, plan::PlanError, probes::KernelError, target::TargetError};

/// Exit code: bad target or usage (no such pid, not a Go binary, no map symbols).
pub const EXIT_BAD_TARGET: u8 = 2;
/// Exit code: unsupported Go version or missing kernel feature.
pub const EXIT_UNSUPPORTED: u8 = 3;
/// Exit code: missing privileges.
pub const EXIT_PRIVILEGES: u8 = 4;
/// Exit code: anything else.
pub const EXIT_INTERNAL: u8 = 1;

/// An error with a known exit code.
#[derive(Debug)]
pub struct Fail {
    /// Process exit code.
    pub code: u8,
    /// One-line message (no "error:" prefix).
    pub message: String,
    /// Already reported (nothing more to print).
    pub quiet: bool,
}

impl Fail {
    pub fn bad_target(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_BAD_TARGET,
            message: message.into(),
            quiet: false,
        }
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_UNSUPPORTED,
            message: message.into(),
            quiet: false,
        }
    }
    pub fn privileges(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_PRIVILEGES,
            message: message.into(),
            quiet: false,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// The exit code of a reason an executable cannot be traced.
fn plan_code(e: &PlanError) -> u8 {
    match e {
        PlanError::NotGo(_)
        | PlanError::ForeignArch(_)
        | PlanError::Malformed(_)
        | PlanError::Missing(_) => EXIT_BAD_TARGET,
        PlanError::Unsupported(_) => EXIT_UNSUPPORTED,
        PlanError::Unreadable(_) => EXIT_PRIVILEGES,
    }
}

/// The exit code of a reason the target cannot be found.
fn target_code(e: &TargetError) -> u8 {
    match e {
        TargetError::ExeUnreadable(_) => EXIT_PRIVILEGES,
        TargetError::NoSuchProcess(_)
        | TargetError::Exited(_)
        | TargetError::NoExecutable(_)
        | TargetError::NotExecutable(_)
        | TargetError::NoSuchCommand(_)
        | TargetError::Nothing => EXIT_BAD_TARGET,
    }
}

/// The exit code of a host that cannot trace.
fn preflight_code(e: &PreflightError) -> u8 {
    match e {
        PreflightError::Capabilities(_) | PreflightError::Refused => EXIT_PRIVILEGES,
        PreflightError::Feature { .. } | PreflightError::TooOld(_) => EXIT_UNSUPPORTED,
    }
}

/// The exit code of a kernel refusal.
fn kernel_code(e: &KernelError) -> u8 {
    match e {
        KernelError::Privileges { .. } => EXIT_PRIVILEGES,
        KernelError::Rejected { .. } | KernelError::Refused { .. } => EXIT_UNSUPPORTED,
        KernelError::Exited { .. } => EXIT_BAD_TARGET,
    }
}

/// The exit code a typed error of a module decides, if it is one.
fn typed_code(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if let Some(e) = cause.downcast_ref::<PlanError>() {
        return Some(plan_code(e));
    }
    if let Some(e) = cause.downcast_ref::<TargetError>() {
        return Some(target_code(e));
    }
    if let Some(e) = cause.downcast_ref::<PreflightError>() {
        return Some(preflight_code(e));
    }
    cause.downcast_ref::<KernelError>().map(kernel_code)
}

/// Finds the exit code for an error chain; the message is the whole chain on one line.
pub fn classify(err: &anyhow::Error) -> Fail {
    let message = format!("{err:#}").replace('\n', " ");
    for cause in err.chain() {
        if let Some(code) = typed_code(cause) {
            return Fail {
                code,
                message,
                quiet: false,
            };
        }
        if let Some(f) = cause.downcast_ref::<Fail>() {
            return Fail {
                code: f.code,
                message,
                quiet: f.quiet,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::BrokenPipe {
                return Fail {
                    code: 0,
                    message,
                    quiet: true,
                };
            }
        }
    }
    Fail {
        code: EXIT_INTERNAL,
        message,
        quiet: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_line(e: impl Into<anyhow::Error>) -> (u8, String) {
        let f = classify(&e.into());
        (f.code, f.message)
    }

    #[test]
    fn test_typed_errors_map_to_exit_codes_and_keep_their_line() {
        assert_eq!(
            code_and_line(TargetError::NoSuchProcess(7)),
            (EXIT_BAD_TARGET, "no such process: pid 7".into())
        );
        assert_eq!(
            code_and_line(TargetError::ExeUnreadable(7)).0,
            EXIT_PRIVILEGES
        );
        assert_eq!(code_and_line(TargetError::Nothing).0, EXIT_BAD_TARGET);
        assert_eq!(
            code_and_line(PreflightError::Capabilities("missing privileges".into())).0,
            EXIT_PRIVILEGES
        );
        let (code, line) = code_and_line(PreflightError::Feature {
            release: "4.19.0".into(),
            what: "BPF ring buffers",
            min: "5.8",
        });
        assert_eq!(code, EXIT_UNSUPPORTED);
        assert_eq!(
            line,
            "kernel 4.19.0 lacks BPF ring buffers: map-trace needs Linux 5.8 or later"
        );
        // A typed error under context keeps its code; the line is the whole chain.
        let e = anyhow::Error::new(PlanError::Unsupported("go1.17".into())).context("inspecting x");
        assert_eq!(
            code_and_line(e),
            (EXIT_UNSUPPORTED, "inspecting x: go1.17".into())
        );
        assert_eq!(code_and_line(anyhow::anyhow!("other")).0, EXIT_INTERNAL);
    }
}
