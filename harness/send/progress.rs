//! Progress bars, one per burst, with accepted/throttled/rejected counts, and one line per burst
//! when it finishes. Bars are hidden when stderr is not a terminal, so logs and CI output stay
//! clean; the finished-burst lines are printed either way, so a CI log tells the same story.

use std::io::{IsTerminal, Write as _};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::record::AttemptRecord;
use crate::vocab::OutcomeClass;

/// Redraw rate: enough to look live, cheap at tens of thousands of messages per second.
const REFRESH_HZ: u8 = 10;

/// The progress display of a run (bursts add their bars to it).
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
}

impl Progress {
    /// Bars on stderr when it is a terminal, hidden otherwise.
    pub fn stderr() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(REFRESH_HZ)
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    /// No bars at all (tests, library callers that print their own).
    pub fn hidden() -> Self {
        Progress {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        }
    }

    /// Prints a line above the bars without tearing them (on stderr; a closed stderr is ignored).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// A bar for a burst of `total` messages whose schedule starts at `start_ms` (run clock).
    pub(crate) fn bar(&self, label: &str, total: u64, start_ms: f64) -> BurstBar {
        let bar = self.multi.add(ProgressBar::new(total));
        let style =
            ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(1000 / u64::from(REFRESH_HZ)));
        BurstBar {
            bar,
            progress: self.clone(),
            label: label.to_string(),
            start_ms,
            counts: BurstCounts::default(),
        }
    }
}

/// What a finished-burst line shows: first attempts by kind of outcome, and the throttle onset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BurstCounts {
    /// First attempts that reached the server.
    pub sent: u64,
    /// Accepted.
    pub accepted: u64,
    /// Throttled or rate-limited.
    pub throttled: u64,
    /// Refused for lack of TLS.
    pub tls_required: u64,
    /// Anything else (rejected, deferred, TLS, connect, timeout and protocol failures).
    pub other: u64,
    /// Planned messages never sent because the run stopped.
    pub unsent: u64,
    /// Retries sent.
    pub retries: u64,
    /// The first throttled message: its index and seconds after the burst began.
    pub onset: Option<(u32, f64)>,
}

impl BurstCounts {
    /// Counts one record (`first`: a first attempt, not a retry); `start_ms` is the burst's start.
    pub fn add(&mut self, rec: &AttemptRecord, first: bool, start_ms: f64) {
        if !first {
            self.retries += 1;
            return;
        }
        if rec.never_sent() {
            self.unsent += 1;
            return;
        }
        self.sent += 1;
        match rec.outcome {
            OutcomeClass::Accepted => self.accepted += 1,
            OutcomeClass::Throttled | OutcomeClass::RateLimited => {
                self.throttled += 1;
                let at = ((rec.started_ms - start_ms) / 1000.0).max(0.0);
                if self.onset.is_none_or(|(i, _)| rec.index < i) {
                    self.onset = Some((rec.index, at));
                }
            }
            OutcomeClass::TlsRequired => self.tls_required += 1,
            _ => self.other += 1,
        }
    }

    /// `sent 12, accepted 5, throttled 7, tls-required 0, other 0, onset #5 at 0.6 s`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "sent {}, accepted {}, throttled {}, tls-required {}, other {}, onset {}",
            self.sent,
            self.accepted,
            self.throttled,
            self.tls_required,
            self.other,
            match self.onset {
                Some((i, t)) => format!("#{i} at {t:.1} s"),
                None => "none".into(),
            }
        );
        if self.retries > 0 {
            s.push_str(&format!(", retries {}", self.retries));
        }
        if self.unsent > 0 {
            s.push_str(&format!(", never sent {}", self.unsent));
        }
        s
    }
}

/// One burst's bar and its counts.
pub(crate) struct BurstBar {
    bar: ProgressBar,
    progress: Progress,
    label: String,
    start_ms: f64,
    counts: BurstCounts,
}

impl BurstBar {
    /// Counts one finished attempt.
    pub(crate) fn record(&mut self, rec: &AttemptRecord, first_attempt: bool) {
        self.counts.add(rec, first_attempt, self.start_ms);
        if first_attempt {
            self.bar.inc(1);
        }
        if self.bar.is_hidden() {
            return;
        }
        let c = &self.counts;
        self.bar.set_message(format!(
            "accepted {} throttled {} tls-required {} other {}",
            c.accepted, c.throttled, c.tls_required, c.other
        ));
    }

    /// Replaces the bar with the burst's line, which stays on screen (and in a CI log).
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
        self.progress
            .println(&format!("burst {}: {}", self.label, self.counts.line()));
    }
}
