//! `map-trace`: trace Go map growth in a running process, or in a program it launches.
//!
//! Flow: cli → target discovery → symbol resolution → Go-version layout → probe attachment →
//! event decoding → timeline → outputs. `main` parses, picks the mode, and turns its error
//! into an exit code; each step lives in its module.

use std::process::ExitCode;

use clap::Parser;
use map_trace::{
    agent,
    cli::{Cli, Mode},
    config, error, replay, session,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.mode {
        Some(Mode::Agent(a)) => agent::run(config::Agent::from_args(a)),
        Some(Mode::Replay(r)) => replay::run(config::Replay::from_args(r)),
        None => config::Trace::from_args(cli.trace)
            .map_err(Into::into)
            .and_then(session::run),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let fail = error::classify(&err);
            if !fail.quiet {
                eprintln!("map-trace: error: {}", fail.message);
            }
            ExitCode::from(fail.code)
        }
    }
}
