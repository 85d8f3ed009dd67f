//! Draining the `EVENTS` ring buffer, in bounded batches.
//!
//! Every read takes at most a batch of records and returns, so whoever reads the ring also gets
//! to run its other work (timers, signals, HTTP) however fast the kernel writes: under a flood
//! an unbounded `while let Some(..) = ring.next()` never returns.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

/// The `EVENTS` ring buffer, taken from the loaded object ([`crate::probes::Probes::take_ring`]),
/// for one of the readers below.
pub struct Ring(RingBuf<MapData>);

impl Ring {
    pub(crate) fn new(rb: RingBuf<MapData>) -> Self {
        Self(rb)
    }
}

/// Records handed over per call at most.
pub const BATCH: usize = 1024;

/// Hands at most `max` queued records to `f`; returns how many it handed over.
fn take(rb: &mut RingBuf<MapData>, max: usize, f: &mut impl FnMut(&[u8])) -> usize {
    let mut n = 0;
    while n < max {
        let Some(item) = rb.next() else { break };
        f(&item);
        n += 1;
    }
    n
}

/// The ring buffer, registered with the tokio reactor (the agent's loop).
pub struct Reader {
    fd: AsyncFd<RingBuf<MapData>>,
}

impl Reader {
    /// Wraps a ring buffer.
    pub fn new(Ring(rb): Ring) -> io::Result<Self> {
        // SAFETY: the RingBuf owns its map fd; it stays open and unchanged for as long as the
        // AsyncFd owns the RingBuf.
        let fd = unsafe { AsyncFd::register(rb) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Self { fd })
    }

    /// Waits until records are available, then hands at most [`BATCH`] of them to `f`. When a
    /// full batch was taken the ring stays marked readable, so the next call returns at once
    /// (after the caller's other branches had their turn).
    pub async fn readable(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        let mut guard = self.fd.readable_mut().await?;
        let n = take(guard.get_inner_mut(), BATCH, &mut f);
        if n < BATCH {
            guard.clear_ready();
        }
        Ok(())
    }

    /// Hands at most [`BATCH`] records already queued to `f` without waiting; returns how
    /// many.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        take(self.fd.get_mut(), BATCH, &mut f)
    }

    /// Hands every queued record to `f` (at the end, after the probes were detached, when no
    /// new record can arrive).
    pub fn drain_all(&mut self, mut f: impl FnMut(&[u8])) {
        while self.drain(&mut f) == BATCH {}
    }
}

/// The ring buffer for a thread of its own (the session's collector): blocking waits.
pub struct BlockingReader {
    rb: RingBuf<MapData>,
}

impl BlockingReader {
    /// Wraps a ring buffer.
    pub fn new(Ring(rb): Ring) -> Self {
        Self { rb }
    }

    /// Waits up to `limit` for the kernel to signal records (below the wakeup threshold it
    /// does not: callers drain on their own timer too).
    pub fn wait(&self, limit: Duration) {
        crate::sys::poll_readable(self.rb.as_fd().as_raw_fd(), limit);
    }

    /// Hands at most [`BATCH`] queued records to `f`; returns how many.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        take(&mut self.rb, BATCH, &mut f)
    }

    /// Hands every queued record to `f`.
    pub fn drain_all(&mut self, mut f: impl FnMut(&[u8])) {
        while self.drain(&mut f) == BATCH {}
    }
}
