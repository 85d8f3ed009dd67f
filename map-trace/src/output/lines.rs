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
    /// Index in `buf` of its last newline: found as bytes arrive, so that a long line (a
    /// summary of many maps is one line of megabytes, written in small pieces) is not
    /// scanned again at every piece.
    last_newline: Option<usize>,
}

impl<W: Write> WholeLines<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(2 * ATOMIC),
            last_newline: None,
        }
    }

    /// Writes every complete line buffered.
    fn write_lines(&mut self) -> io::Result<()> {
        let Some(last) = self.last_newline else {
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
        // What is left follows the last newline (or, after an error, still holds it).
        self.last_newline = self.buf.iter().rposition(|&c| c == b'\n');
        result
    }
}

impl<W: Write> Write for WholeLines<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        // Room first, so that an error means `b` was not taken.
        if self.buf.len() + b.len() > 2 * ATOMIC && self.last_newline.is_some() {
            self.write_lines()?;
        }
        if let Some(i) = b.iter().rposition(|&c| c == b'\n') {
            self.last_newline = Some(self.buf.len() + i);
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
            self.last_newline = None;
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

    /// A line of 200 KB written a few bytes at a time (as serde_json writes a summary) goes out
    /// as one write, after the line before it.
    #[test]
    fn test_a_long_line_in_small_pieces_is_one_write() {
        let mut w = WholeLines::new(Writes::default());
        w.write_all(b"first\n").unwrap();
        let piece = b"\"k\":12,";
        for _ in 0..25_000 {
            w.write_all(piece).unwrap();
        }
        w.write_all(b"end\n").unwrap();
        w.flush().unwrap();
        let writes = std::mem::take(&mut w.inner.0);
        assert_eq!(
            writes.len(),
            2,
            "{:?}",
            writes.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(writes[0], b"first\n");
        assert_eq!(writes[1].len(), 25_000 * piece.len() + 4);
    }
}
