//! A child's stdout and stderr, read by the broker and logged as the child's.
//!
//! Every child writes its log to pipes the broker holds, never to the broker's
//! own terminal or log stream. Each line becomes one broker log line with the
//! target `bulkhead::child`, the field `child` naming its role, and a message
//! that starts with `[ROLE]`, so nothing a child writes can pass for a line of
//! the broker's own (a forged `worker exited` line arrives marked as the
//! child's). A line is capped at [`MAX_LINE`] bytes, control characters are
//! escaped, and a child may have at most [`LINES_PER_SECOND`] lines a second
//! logged (bursts of [`LINE_BURST`]); lines past that are counted and dropped,
//! and the count logged at most once a second. The pipes are always drained,
//! so a child is never blocked on its log, whatever it writes.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tracing::{Level, debug, error, info, trace, warn};

use crate::supervise::Budget;

/// The longest part of a line logged, in bytes; the rest is dropped and the
/// line marked ` [line truncated]`.
pub const MAX_LINE: usize = 4096;
/// Lines of one stream logged per second, sustained.
pub const LINES_PER_SECOND: u32 = 1000;
/// Lines of one stream logged in a burst before the rate applies.
pub const LINE_BURST: u32 = 5000;
/// How often, at most, dropped lines are reported for one stream.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(1);

/// Takes `child`'s piped stdout and stderr (those not piped are left alone) and
/// logs what arrives on them as `role`'s, until the child closes them.
///
/// Must be called on a tokio runtime.
pub fn forward(role: &str, child: &mut Child) {
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_stream(role.to_owned(), out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_stream(role.to_owned(), err));
    }
}

/// Logs the lines of one stream until its end or a read error.
async fn forward_stream(role: String, stream: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stream);
    let mut lines = Lines::default();
    let mut budget = Budget::new(LINES_PER_SECOND, LINE_BURST);
    let mut dropped: u64 = 0;
    let mut reported = Instant::now();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let taken = chunk.len();
        for line in lines.feed(chunk) {
            if budget.spend(Instant::now()).is_ok() {
                log_line(&role, &line);
            } else {
                dropped += 1;
            }
        }
        reader.consume(taken);
        if dropped > 0 && reported.elapsed() >= DROP_REPORT_EVERY {
            warn!(child = %role, dropped, "child log rate limit: lines dropped ({LINES_PER_SECOND} a second, bursts of {LINE_BURST})");
            dropped = 0;
            reported = Instant::now();
        }
    }
    if let Some(line) = lines.finish() {
        log_line(&role, &line);
    }
    if dropped > 0 {
        warn!(child = %role, dropped, "child log rate limit: lines dropped ({LINES_PER_SECOND} a second, bursts of {LINE_BURST})");
    }
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes.
#[derive(Default)]
struct Lines {
    line: Vec<u8>,
    truncated: bool,
}

/// One line as read, before it is made printable.
struct Line {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Lines {
    /// Takes the next bytes; returns the lines they complete.
    fn feed(&mut self, mut bytes: &[u8]) -> Vec<Line> {
        let mut done = Vec::new();
        while !bytes.is_empty() {
            let end = bytes.iter().position(|&b| b == b'\n');
            let part = &bytes[..end.unwrap_or(bytes.len())];
            let room = MAX_LINE - self.line.len();
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            self.truncated |= part.len() > room;
            match end {
                Some(at) => {
                    done.push(self.take());
                    bytes = &bytes[at + 1..];
                }
                None => break,
            }
        }
        done
    }

    /// The last line, if the stream ended without a newline.
    fn finish(&mut self) -> Option<Line> {
        (!self.line.is_empty() || self.truncated).then(|| self.take())
    }

    fn take(&mut self) -> Line {
        Line {
            bytes: std::mem::take(&mut self.line),
            truncated: std::mem::replace(&mut self.truncated, false),
        }
    }
}

/// Logs one line of `role`'s as the child's, at the level the child gave it
/// when it is one of Bulkhead's own log lines, else at `info`.
fn log_line(role: &str, line: &Line) {
    let text = String::from_utf8_lossy(&line.bytes);
    let (level, rest) = split_level(text.trim_end_matches('\r'));
    let mut message = format!("[{role}] ");
    escape_into(&mut message, rest);
    if line.truncated {
        message.push_str(" [line truncated]");
    }
    match level {
        Level::ERROR => error!(target: "bulkhead::child", child = %role, "{message}"),
        Level::WARN => warn!(target: "bulkhead::child", child = %role, "{message}"),
        Level::INFO => info!(target: "bulkhead::child", child = %role, "{message}"),
        Level::DEBUG => debug!(target: "bulkhead::child", child = %role, "{message}"),
        Level::TRACE => trace!(target: "bulkhead::child", child = %role, "{message}"),
    }
}

/// A Bulkhead log line (`<timestamp> <LEVEL> <rest>`) gives its level and rest,
/// without the child's timestamp (the broker's own stands for it); any other
/// line is `info` as it is.
fn split_level(line: &str) -> (Level, &str) {
    let mut words = line.splitn(2, ' ');
    let (Some(stamp), Some(after)) = (words.next(), words.next()) else {
        return (Level::INFO, line);
    };
    let after = after.trim_start();
    let Some((word, rest)) = after.split_once(' ') else {
        return (Level::INFO, line);
    };
    let level = match word {
        "ERROR" => Level::ERROR,
        "WARN" => Level::WARN,
        "INFO" => Level::INFO,
        "DEBUG" => Level::DEBUG,
        "TRACE" => Level::TRACE,
        _ => return (Level::INFO, line),
    };
    if !looks_like_timestamp(stamp) {
        return (Level::INFO, line);
    }
    (level, rest)
}

/// `2026-12-04T20:35:01.123456Z` and the like (RFC 3339, as tracing prints it).
fn looks_like_timestamp(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[..4].iter().all(u8::is_ascii_digit)
        && word.ends_with('Z')
}

/// Appends `text` with every control character escaped (`\u{1b}`, `\r`, `\t`),
/// so a child cannot move the cursor, recolour or split an operator's log line.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: Vec<Line>) -> Vec<(String, bool)> {
        lines
            .into_iter()
            .map(|l| (String::from_utf8_lossy(&l.bytes).into_owned(), l.truncated))
            .collect()
    }

    #[test]
    fn lines_are_split_across_reads_and_the_last_one_is_kept() {
        let mut lines = Lines::default();
        assert!(lines.feed(b"hel").is_empty());
        assert_eq!(texts(lines.feed(b"lo\nwor")), [("hello".to_owned(), false)]);
        assert_eq!(
            texts(lines.feed(b"ld\n\n")),
            [("world".to_owned(), false), (String::new(), false)]
        );
        assert!(lines.finish().is_none());
        lines.feed(b"tail");
        assert_eq!(texts(lines.finish().into_iter().collect()), [("tail".to_owned(), false)]);
    }

    #[test]
    fn a_long_line_is_cut_at_the_cap_and_marked() {
        let mut lines = Lines::default();
        let long = vec![b'x'; MAX_LINE * 3];
        assert!(lines.feed(&long).is_empty());
        assert!(lines.feed(&long).is_empty());
        let done = texts(lines.feed(b"yy\nnext\n"));
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].0.len(), MAX_LINE);
        assert!(done[0].1);
        assert_eq!(done[1], ("next".to_owned(), false));
    }

    #[test]
    fn a_bulkhead_line_keeps_its_level_and_loses_its_timestamp() {
        let (level, rest) = split_level("2026-12-04T20:35:01.123456Z  WARN gateway::server: slow");
        assert_eq!(level, Level::WARN);
        assert_eq!(rest, "gateway::server: slow");
    }

    #[test]
    fn other_lines_are_info_as_they_are() {
        for line in ["ERROR worker exited", "yesterday ERROR x", "", "2026-12-04T20:35:01Z"] {
            assert_eq!(split_level(line), (Level::INFO, line));
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        escape_into(&mut out, "a\u{1b}[31mred\rb\tc é");
        assert_eq!(out, "a\\u{1b}[31mred\\rb\\tc é");
    }
}
