//! Draining the `EVENTS` ring buffer from tokio.

use std::io;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

/// The ring buffer, registered with the tokio reactor.
pub struct Reader {
    fd: AsyncFd<RingBuf<MapData>>,
}

impl Reader {
    /// Wraps a ring buffer.
    pub fn new(rb: RingBuf<MapData>) -> io::Result<Self> {
        // SAFETY: the RingBuf owns its map fd; it stays open and unchanged for as long as the
        // AsyncFd owns the RingBuf.
        let fd = unsafe { AsyncFd::register(rb) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Self { fd })
    }

    /// Waits until records are available, then hands each to `f`.
    pub async fn readable(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        let mut guard = self.fd.readable_mut().await?;
        let rb = guard.get_inner_mut();
        while let Some(item) = rb.next() {
            f(&item);
        }
        guard.clear_ready();
        Ok(())
    }

    /// Hands every record already queued to `f` without waiting.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) {
        let rb = self.fd.get_mut();
        while let Some(item) = rb.next() {
            f(&item);
        }
    }
}
