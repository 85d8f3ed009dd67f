//! `map-trace`: trace Go map growth in a running process, or in a program it launches.
//!
//! Flow: cli → target discovery → symbol resolution → Go-version layout → probe attachment →
//! event decoding → timeline → outputs. `run` does the wiring; each step lives in its module.

use std::process::ExitCode;

use clap::Parser;
use map_trace::{agent, cli, error, replay, session};

fn main() -> ExitCode {
    // `map-trace agent …` is the fleet mode, `map-trace replay …` replays a recording;
    // everything else is the one-process CLI.
    let sub = std::env::args_os().nth(1);
    let result = if sub.as_ref().is_some_and(|a| a == "agent") {
        agent::run(cli::AgentArgs::parse_from(std::env::args_os().skip(1)))
    } else if sub.as_ref().is_some_and(|a| a == "replay") {
        replay::run(cli::ReplayArgs::parse_from(std::env::args_os().skip(1)))
    } else {
        session::run(cli::Args::parse())
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
