//! `map-trace`: trace Go map growth in a running process, or in a program it launches.
//!
//! Flow: cli → target discovery → symbol resolution → Go-version layout → probe attachment →
//! event decoding → timeline → outputs. `run` does the wiring; each step lives in its module.

use std::process::ExitCode;

use clap::Parser;
use map_trace::{cli, error, session};

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match session::run(args) {
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
