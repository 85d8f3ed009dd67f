//! Standard output shared with a launched program: [`WholeLines`] hands the kernel whole lines
//! only, in writes of at most `PIPE_BUF` bytes. A pipe write that small is atomic, so the
//! child's own writes (`map-trace -- ./prog | jq`) can fall between two of map-trace's lines
//! but never inside one.

use std::io::{self, Write};

/// `PIPE_BUF` on Linux: the largest pipe write the kernel never interleaves with another.
const ATOMIC: usize = 4096;

/// A buffered writer that writes complete lines, several per write up to [`ATOMIC`] bytes (a
/// longer line alone).
pub struct WholeLines<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> WholeLines<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(2 * ATOMIC),
        }
    }

    /// Writes every complete line buffered.
    fn write_lines(&mut self) -> io::Result<()> {
        let Some(last) = self.buf.iter().rposition(|&c| c == b'\n') else {
            return Ok(());
        };
        let end = last + 1;
        let mut start = 0;
        let mut result = Ok(());
        while start < end {
            let window = &self.buf[start..(start + ATOMIC).min(end)];
            let len = match window.iter().rposition(|&c| c == b'\n') {
                Some(i) => i + 1,
                // A line longer than one atomic write: alone, whole.
                None => self.buf[start..end]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(end - start, |i| i + 1),
            };
            if let Err(e) = self.inner.write_all(&self.buf[start..start + len]) {
                result = Err(e);
                break;
            }
            start += len;
        }
        self.buf.drain(..start);
        result
    }
}

impl<W: Write> Write for WholeLines<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        // Room first, so that an error means `b` was not taken.
        if self.buf.len() + b.len() > 2 * ATOMIC {
            self.write_lines()?;
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    /// Writes the complete lines, then whatever follows the last one (sinks flush between
    /// records, so normally nothing).
    fn flush(&mut self) -> io::Result<()> {
        self.write_lines()?;
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for WholeLines<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// A line to stderr in one write: a launched target shares map-trace's stderr, and
/// `eprintln!` may write a line in pieces that the target's own lines would cut into.
pub fn eprint_line(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each write the inner writer gets.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn test_writes_are_whole_lines_of_at_most_pipe_buf() {
        let mut w = WholeLines::new(Writes::default());
        let line = |i: usize, n: usize| format!("{i:05}{}\n", "x".repeat(n));
        let mut all = String::new();
        for i in 0..500 {
            // Lines of 7 to 306 bytes, and one longer than an atomic write.
            let l = line(i, if i == 250 { 9000 } else { i % 300 });
            w.write_all(l.as_bytes()).unwrap();
            all.push_str(&l);
        }
        w.write_all(b"tail without newline").unwrap();
        all.push_str("tail without newline");
        w.flush().unwrap();
        let writes = std::mem::take(&mut w.inner.0);
        assert_eq!(writes.concat(), all.as_bytes());
        let (last, lines) = writes.split_last().unwrap();
        assert_eq!(last, b"tail without newline");
        for wr in lines {
            assert_eq!(wr.last(), Some(&b'\n'), "a write ends inside a line");
            assert!(
                wr.len() <= ATOMIC || wr.iter().filter(|&&c| c == b'\n').count() == 1,
                "a write of {} bytes holds more than one line",
                wr.len()
            );
        }
        assert!(
            lines.iter().any(|wr| wr.len() > 9000),
            "the long line alone"
        );
        assert!(lines.len() > 1);
    }
}
