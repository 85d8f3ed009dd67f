//! A writer that never blocks its caller: lines go to a thread of their own through a queue
//! bounded in bytes, and what does not fit is dropped and counted.
//!
//! The agent writes `--events` through it, so a stalled reader of its stdout (or a slow disk)
//! costs event lines, counted in `map_trace_events_dropped_total`, and never the agent's loop:
//! discovery, attaching and `/metrics` go on.

use std::{
    io::{self, Write},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc, Arc,
    },
    thread,
    time::{Duration, Instant},
};

/// Bytes queued for the writer thread at most (the agent's memory limit is 256 MiB).
pub const QUEUE_BYTES: usize = 8 << 20;

/// The caller's half: collects bytes until `flush`, then hands them to the writer thread.
pub struct QueuedWriter {
    pending: Vec<u8>,
    tx: Option<mpsc::Sender<Vec<u8>>>,
    queued: Arc<AtomicUsize>,
    dropped_lines: Arc<AtomicU64>,
    cap: usize,
    thread: Option<thread::JoinHandle<()>>,
}

impl QueuedWriter {
    /// Starts the writer thread on `out`, with at most `cap` bytes queued.
    pub fn spawn(mut out: Box<dyn Write + Send>, cap: usize) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let dropped_lines = Arc::new(AtomicU64::new(0));
        let (q, d) = (queued.clone(), dropped_lines.clone());
        let thread = thread::Builder::new()
            .name("events-out".into())
            .spawn(move || {
                let mut failed = false;
                for buf in rx {
                    if !failed && (out.write_all(&buf).is_err() || out.flush().is_err()) {
                        // The output is gone (a closed pipe): what is left is dropped, counted.
                        failed = true;
                    }
                    if failed {
                        d.fetch_add(lines(&buf), Ordering::Relaxed);
                    }
                    q.fetch_sub(buf.len(), Ordering::Relaxed);
                }
            })?;
        Ok(Self {
            pending: vec![],
            tx: Some(tx),
            queued,
            dropped_lines,
            cap,
            thread: Some(thread),
        })
    }

    /// Lines dropped so far, queue full or output gone (a shared counter).
    pub fn dropped_lines(&self) -> Arc<AtomicU64> {
        self.dropped_lines.clone()
    }

    /// Bytes waiting for the writer thread.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Hands what is pending over, then waits up to `limit` for the writer thread to write
    /// it all; returns whether it did. Past the limit the rest is dropped and counted.
    pub fn close(&mut self, limit: Duration) -> bool {
        let _ = self.flush();
        self.tx = None;
        let start = Instant::now();
        while self.queued_bytes() > 0 && start.elapsed() < limit {
            thread::sleep(Duration::from_millis(5));
        }
        let left = self.queued_bytes();
        if left == 0 {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            true
        } else {
            // The thread stays blocked in its write; the process is about to exit.
            false
        }
    }
}

fn lines(buf: &[u8]) -> u64 {
    buf.iter().filter(|&&b| b == b'\n').count() as u64
}

impl Write for QueuedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Queues the pending lines, or drops and counts them when the queue is full.
    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.pending);
        let fits = self.queued_bytes().saturating_add(buf.len()) <= self.cap;
        match &self.tx {
            Some(tx) if fits => {
                self.queued.fetch_add(buf.len(), Ordering::Relaxed);
                if let Err(mpsc::SendError(buf)) = tx.send(buf) {
                    self.queued.fetch_sub(buf.len(), Ordering::Relaxed);
                    self.dropped_lines.fetch_add(lines(&buf), Ordering::Relaxed);
                }
            }
            _ => {
                self.dropped_lines.fetch_add(lines(&buf), Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Condvar, Mutex};

    /// Whether the gate is open, and what went through it.
    type GateState = Mutex<(bool, Vec<u8>)>;

    /// An output that blocks until released, like a pipe whose reader stopped.
    #[derive(Clone, Default)]
    struct Gate {
        inner: Arc<(GateState, Condvar)>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (m, c) = &*self.inner;
            let mut g = m.lock().unwrap();
            while !g.0 {
                g = c.wait(g).unwrap();
            }
            g.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Gate {
        fn open(&self) {
            let (m, c) = &*self.inner;
            m.lock().unwrap().0 = true;
            c.notify_all();
        }
        fn written(&self) -> Vec<u8> {
            self.inner.0.lock().unwrap().1.clone()
        }
    }

    #[test]
    fn test_stalled_output_drops_and_counts_whole_lines_and_never_blocks() {
        let gate = Gate::default();
        let mut w = QueuedWriter::spawn(Box::new(gate.clone()), 100).unwrap();
        let start = Instant::now();
        // 1000 lines of 10 bytes against a 100-byte queue, the output stalled.
        for i in 0..1000 {
            writeln!(w, "line {i:04}").unwrap();
            w.flush().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the caller blocked"
        );
        let dropped = w.dropped_lines().load(Ordering::Relaxed);
        // The thread holds one buffer in its write, the queue at most 100 bytes more.
        assert!(
            (988..=999).contains(&dropped),
            "dropped {dropped} of 1000 lines"
        );
        gate.open();
        assert!(w.close(Duration::from_secs(5)));
        let written = gate.written();
        let kept = lines(&written);
        assert_eq!(kept + dropped, 1000, "every line is written or counted");
        // What was written is whole lines, in order.
        let text = String::from_utf8(written).unwrap();
        let nums: Vec<u32> = text
            .lines()
            .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
            .collect();
        assert!(nums.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn test_fast_output_keeps_everything() {
        let gate = Gate::default();
        gate.open();
        let mut w = QueuedWriter::spawn(Box::new(gate.clone()), QUEUE_BYTES).unwrap();
        for i in 0..10_000 {
            writeln!(w, "{i}").unwrap();
            if i % 100 == 0 {
                w.flush().unwrap();
            }
        }
        assert!(w.close(Duration::from_secs(5)));
        assert_eq!(lines(&gate.written()), 10_000);
        assert_eq!(w.dropped_lines().load(Ordering::Relaxed), 0);
    }
}
