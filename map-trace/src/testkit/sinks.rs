//! Sinks for tests and benches: one that discards, one that lists the calls it got, and a
//! writer whose bytes a test reads back.

use std::{
    io::{self, Write},
    sync::{Arc, Mutex},
};

use crate::{
    output::{EndInfo, Sink, StartInfo},
    overhead::Detached,
    timeline::{EvacuateStep, Evacuated, Grow, SliceGrow, SwissResize},
};

/// A sink that writes nothing (the pipeline's own cost, in benches); with `fail_grow`, every
/// grow fails with that error message (an output that broke: a full disk, a closed pipe).
#[derive(Default)]
pub struct Discard {
    pub fail_grow: Option<&'static str>,
}

impl Sink for Discard {
    fn start(&mut self, _: &StartInfo) -> io::Result<()> {
        Ok(())
    }
    fn grow(&mut self, _: &Grow) -> io::Result<()> {
        match self.fail_grow {
            Some(why) => Err(io::Error::other(why)),
            None => Ok(()),
        }
    }
    fn swiss(&mut self, _: &SwissResize) -> io::Result<()> {
        Ok(())
    }
    fn slice(&mut self, _: &SliceGrow) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, e: &EndInfo) -> io::Result<()> {
        std::hint::black_box(e.maps.len());
        Ok(())
    }
}

/// Lists the sink calls it gets, one line each, for a test to compare; clones share the list.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    /// The calls so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn push(&self, line: String) -> io::Result<()> {
        self.0.lock().unwrap().push(line);
        Ok(())
    }
}

impl Sink for Calls {
    fn start(&mut self, s: &StartInfo) -> io::Result<()> {
        self.push(format!("start pid {}", s.pid))
    }
    fn grow(&mut self, g: &Grow) -> io::Result<()> {
        self.push(format!("grow {:#x}", g.map))
    }
    fn swiss(&mut self, r: &SwissResize) -> io::Result<()> {
        self.push(format!("swiss {:#x}", r.map))
    }
    fn slice(&mut self, s: &SliceGrow) -> io::Result<()> {
        self.push(format!("slice {}", s.bytes))
    }
    fn evacuated(&mut self, e: &Evacuated) -> io::Result<()> {
        self.push(format!("evacuated {:#x} {:?}", e.map, e.duration_ns))
    }
    fn evacuate_step(&mut self, s: &EvacuateStep) -> io::Result<()> {
        self.push(format!("evacuate_step {:#x}", s.map))
    }
    fn detached(&mut self, d: &Detached) -> io::Result<()> {
        self.push(format!("detached {}", d.family.name()))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, e: &EndInfo) -> io::Result<()> {
        self.push(format!(
            "end events {} hidden {} undecodable {} slices {:?}",
            e.events, e.runtime_events_hidden, e.undecodable, e.slices
        ))
    }
}

/// A writer that keeps what it is given; clones share the bytes (a sink owns one, the test
/// reads the other).
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("UTF-8 output")
    }

    /// Everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
