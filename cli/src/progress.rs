//! A progress line on the terminal for long work (`strom produce` of a large input, `strom
//! bench`): records, rate and, when the total is known, a bar, the share done and the time
//! left. Shown only when stderr is a terminal; a pipe or a file gets nothing from here.
//!
//! Redrawn at most every 200 ms, in place (`\r`, erase line). `finish` leaves the last state
//! on its own line.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(200);
const BAR: usize = 24;

/// The progress of one command.
#[derive(Debug)]
pub(crate) struct Progress {
    enabled: bool,
    started: Instant,
    last_draw: Option<Instant>,
    /// The total in the unit `done` counts (input bytes for produce, records for bench).
    total: Option<u64>,
    records: u64,
    bytes: u64,
    done: u64,
}

impl Progress {
    /// A progress line toward `total` (None: unknown, no bar or ETA), shown only when stderr
    /// is a terminal.
    pub(crate) fn new(total: Option<u64>) -> Self {
        Self::with_terminal(total, std::io::stderr().is_terminal())
    }

    fn with_terminal(total: Option<u64>, enabled: bool) -> Self {
        Progress {
            enabled,
            started: Instant::now(),
            last_draw: None,
            total: total.filter(|t| *t > 0),
            records: 0,
            bytes: 0,
            done: 0,
        }
    }

    /// `records` records of `bytes` bytes so far; `done` counts toward the total.
    pub(crate) fn update(&mut self, records: u64, bytes: u64, done: u64) {
        (self.records, self.bytes, self.done) = (records, bytes, done);
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self.last_draw.is_some_and(|t| now.duration_since(t) < EVERY) {
            return;
        }
        self.last_draw = Some(now);
        let line = self.line(now.duration_since(self.started));
        let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
    }

    /// Draws the final state on its own line (nothing when not a terminal).
    pub(crate) fn finish(&mut self) {
        if !self.enabled {
            return;
        }
        let line = self.line(self.started.elapsed());
        let _ = writeln!(std::io::stderr(), "\r\x1b[2K{line}");
        self.enabled = false;
    }

    /// Erases the line without leaving a final state (an error follows).
    pub(crate) fn clear(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
        self.enabled = false;
    }

    fn line(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let rate = self.records as f64 / secs;
        let mib = self.bytes as f64 / secs / (1024.0 * 1024.0);
        let counts = format!(
            "{} records, {}/s, {mib:.1} MiB/s",
            thousands(self.records),
            thousands(rate.round() as u64)
        );
        match self.total {
            Some(total) => {
                let share = (self.done as f64 / total as f64).clamp(0.0, 1.0);
                let filled = (share * BAR as f64).round() as usize;
                let eta = if share > 0.0 && share < 1.0 {
                    let left = secs * (1.0 - share) / share;
                    format!(", ETA {}", clock(Duration::from_secs_f64(left)))
                } else {
                    String::new()
                };
                format!(
                    "[{}{}] {:>3.0}% {counts}, {}{eta}",
                    "#".repeat(filled),
                    ".".repeat(BAR - filled),
                    share * 100.0,
                    clock(elapsed)
                )
            }
            None => format!("{counts}, {}", clock(elapsed)),
        }
    }
}

impl Drop for Progress {
    /// An early return (an error) leaves no half-drawn line behind.
    fn drop(&mut self) {
        self.clear();
    }
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "m:ss", or "h:mm:ss" from an hour on.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_rate_share_and_time_left() {
        let mut p = Progress::with_terminal(Some(1000), false);
        p.update(250_000, 25 * 1024 * 1024, 250);
        let line = p.line(Duration::from_secs(10));
        assert_eq!(
            line,
            "[######..................]  25% 250,000 records, 25,000/s, 2.5 MiB/s, 0:10, ETA 0:30"
        );
        let mut p = Progress::with_terminal(None, false);
        p.update(1_234_567, 0, 0);
        assert_eq!(
            p.line(Duration::from_secs(3725)),
            "1,234,567 records, 331/s, 0.0 MiB/s, 1:02:05"
        );
        // Done: no ETA.
        let mut p = Progress::with_terminal(Some(10), false);
        p.update(10, 10, 10);
        assert!(p
            .line(Duration::from_secs(1))
            .starts_with("[########################] 100% "));
    }
}
