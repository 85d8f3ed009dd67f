//! Failure classes and their exit codes.
//!
//! Modules return their own error enums; anything that should map to a specific exit code is
//! wrapped in a [`Fail`] at the point where the class is known. `classify` turns whatever
//! reached `main` into one line and a code.

use std::fmt;

use crate::plan::PlanError;

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

/// Finds the exit code for an error chain; the message is the whole chain on one line.
pub fn classify(err: &anyhow::Error) -> Fail {
    let message = format!("{err:#}").replace('\n', " ");
    for cause in err.chain() {
        if let Some(p) = cause.downcast_ref::<PlanError>() {
            return Fail {
                code: plan_code(p),
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
