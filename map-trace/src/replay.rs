//! `map-trace replay FILE`: a recording (`--record`) through the outputs of a live run.
//!
//! Opens the recording and the outputs, and hands both to [`recording::replay`]. A recording
//! that cannot be read is a bad-input error (exit code 2) with one line saying where.

use std::{
    fs::File,
    io::{self, BufReader},
};

use anyhow::Result;

use crate::{config, error::Fail, output, recording};

/// Runs `map-trace replay`; returns the process exit code.
pub fn run(args: config::Replay) -> Result<u8> {
    let name = args.recording.display().to_string();
    let input: Box<dyn io::BufRead> = if name == "-" {
        Box::new(io::stdin().lock())
    } else {
        match File::open(&args.recording) {
            Ok(f) => Box::new(BufReader::new(f)),
            Err(e) => return Err(Fail::bad_target(format!("cannot open {name}: {e}")).into()),
        }
    };
    let sink = output::open::open(&args.outputs)?;
    match recording::replay(input, sink) {
        Ok(()) => Ok(0),
        Err(e) if e.is_bad_input() => Err(Fail::bad_target(format!("{name}: {e}")).into()),
        Err(e) => Err(e.into()),
    }
}
