//! Progress bars, one per burst, with accepted/throttled/rejected counts. Hidden when stderr is
//! not a terminal, so logs and CI output stay clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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

    /// Prints a line above the bars without tearing them.
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    pub(crate) fn bar(&self, label: &str, total: u64) -> BurstBar {
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
            accepted: 0,
            throttled: 0,
            rejected: 0,
            other: 0,
        }
    }
}

/// One burst's bar and its counts.
pub(crate) struct BurstBar {
    bar: ProgressBar,
    accepted: u64,
    throttled: u64,
    rejected: u64,
    other: u64,
}

impl BurstBar {
    /// Counts one finished attempt.
    pub(crate) fn record(&mut self, o: OutcomeClass, first_attempt: bool) {
        match o {
            OutcomeClass::Accepted => self.accepted += 1,
            OutcomeClass::Throttled | OutcomeClass::RateLimited => self.throttled += 1,
            OutcomeClass::Rejected | OutcomeClass::TlsRequired => self.rejected += 1,
            _ => self.other += 1,
        }
        if first_attempt {
            self.bar.inc(1);
        }
        if self.bar.is_hidden() {
            return;
        }
        self.bar.set_message(format!(
            "accepted {} throttled {} rejected {} other {}",
            self.accepted, self.throttled, self.rejected, self.other
        ));
    }

    /// Leaves the finished bar on screen.
    pub(crate) fn finish(&self) {
        self.bar.finish();
    }
}
