//! Bounded capture of a child's output stream, split into lines for logging and readiness.

use std::collections::VecDeque;

/// Lines longer than this are cut into pieces for logging (the capture keeps the bytes).
const MAX_LINE: usize = 64 * 1024;
/// How many trailing lines are kept for error messages, whatever the byte limit.
pub(crate) const TAIL_LINES: usize = 20;

/// Which end of an over-long stream to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The first bytes: the output of a command read as data.
    Head,
    /// The latest bytes: the log of a long-running background process.
    Tail,
}

/// The captured bytes of one stream.
#[derive(Debug)]
pub(crate) struct Capture {
    data: Vec<u8>,
    limit: usize,
    keep: Keep,
    truncated: bool,
    partial: Vec<u8>,
    tail: VecDeque<String>,
}

impl Capture {
    /// An empty capture keeping at most `limit` bytes.
    pub(crate) fn new(limit: usize, keep: Keep) -> Self {
        Self { data: Vec::new(), limit, keep, truncated: false, partial: Vec::new(), tail: VecDeque::new() }
    }

    /// Add a chunk; returns the lines it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        match self.keep {
            Keep::Head => {
                let room = self.limit.saturating_sub(self.data.len());
                if chunk.len() > room {
                    self.truncated = true;
                }
                self.data.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Keep::Tail => {
                self.data.extend_from_slice(chunk);
                // Trim in batches so appending stays amortised O(1).
                if self.data.len() > self.limit.saturating_mul(2).max(self.limit + 4096) {
                    let cut = self.data.len() - self.limit;
                    self.data.drain(..cut);
                    self.truncated = true;
                }
            }
        }
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..i]);
            lines.push(self.take_line());
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() > MAX_LINE {
            let more = self.partial.split_off(MAX_LINE);
            lines.push(self.take_line());
            self.partial = more;
        }
        lines
    }

    /// The stream ended: the unterminated last line, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take_line())
    }

    fn take_line(&mut self) -> String {
        let mut bytes = std::mem::take(&mut self.partial);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let line = String::from_utf8_lossy(&bytes).into_owned();
        if !line.trim().is_empty() {
            if self.tail.len() == TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(line.clone());
        }
        line
    }

    /// The kept text (lossy UTF-8).
    pub(crate) fn text(&self) -> String {
        let bytes = match self.keep {
            Keep::Tail if self.data.len() > self.limit => &self.data[self.data.len() - self.limit..],
            _ => &self.data[..],
        };
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Were bytes dropped?
    pub(crate) fn truncated(&self) -> bool {
        self.truncated || (self.keep == Keep::Tail && self.data.len() > self.limit)
    }

    /// The last non-blank lines, at most `n` (n <= [`TAIL_LINES`]).
    pub(crate) fn tail(&self, n: usize) -> Vec<String> {
        self.tail.iter().skip(self.tail.len().saturating_sub(n)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks() {
        let mut c = Capture::new(1024, Keep::Head);
        assert_eq!(c.push(b"one\ntw"), vec!["one"]);
        assert_eq!(c.push(b"o\r\nthree"), vec!["two"]);
        assert_eq!(c.finish().as_deref(), Some("three"));
        assert_eq!(c.text(), "one\ntwo\r\nthree");
        assert_eq!(c.tail(2), vec!["two", "three"]);
    }

    #[test]
    fn head_keeps_the_start_and_tail_keeps_the_end() {
        let mut h = Capture::new(4, Keep::Head);
        h.push(b"abcdef\n");
        assert_eq!((h.text().as_str(), h.truncated()), ("abcd", true));
        assert_eq!(h.tail(5), vec!["abcdef"], "error tails survive truncation");
        let mut t = Capture::new(4, Keep::Tail);
        for _ in 0..2000 {
            t.push(b"0123456789");
        }
        t.push(b"wxyz");
        assert_eq!((t.text().as_str(), t.truncated()), ("wxyz", true));
    }
}
