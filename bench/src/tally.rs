//! What one driver thread measured: latency histograms per command, counts, failures and the
//! first bad reply. Threads fill their own [`Tally`]; the run merges them at the end.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Largest latency the histograms resolve; slower replies are recorded as this.
pub const LATENCY_MAX_NS: u64 = 3_600_000_000_000;
/// Significant decimal digits the histograms keep (0.1% relative error).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// The two commands this tool sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Set,
    Get,
    /// A transaction of `--mode multi`; recorded in the SET histogram (a run has either
    /// transactions or SETs and GETs, never both).
    Multi,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Self::Set => "SET",
            Self::Get => "GET",
            Self::Multi => "MULTI",
        }
    }
}

/// A new latency histogram in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_NS, LATENCY_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// One thread's measurements.
#[derive(Debug)]
pub struct Tally {
    pub set_latency_ns: Histogram<u64>,
    pub get_latency_ns: Histogram<u64>,
    /// GETs answered with a value.
    pub get_hits: u64,
    /// GETs answered with nil.
    pub get_misses: u64,
    /// Requests answered wrongly or never (failed connections count their outstanding ones).
    pub errors: u64,
    /// The first of them, in words.
    pub first_error: Option<String>,
    /// When the last measured reply arrived.
    pub last_reply_at: Option<Instant>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    pub fn new() -> Self {
        Self {
            set_latency_ns: new_histogram(),
            get_latency_ns: new_histogram(),
            get_hits: 0,
            get_misses: 0,
            errors: 0,
            first_error: None,
            last_reply_at: None,
        }
    }

    /// Measured requests answered correctly.
    pub fn completed(&self) -> u64 {
        self.set_latency_ns.len() + self.get_latency_ns.len()
    }

    /// Records `count` correct, measured replies of `op` that took `latency` and arrived
    /// `at`: a connection records all the replies of one read at once (they share both).
    #[inline]
    pub fn record_n(&mut self, op: Op, latency: Duration, count: u64, at: Instant) {
        if count == 0 {
            return;
        }
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        match op {
            Op::Set | Op::Multi => self.set_latency_ns.saturating_record_n(ns, count),
            Op::Get => self.get_latency_ns.saturating_record_n(ns, count),
        }
        self.last_reply_at = Some(at);
    }

    /// Counts `requests` failed requests; keeps `describe()` if it is the first failure.
    pub fn fail(&mut self, requests: u64, describe: impl FnOnce() -> String) {
        self.errors += requests;
        if self.first_error.is_none() {
            self.first_error = Some(describe());
        }
    }

    /// Adds `other` into `self`; the first error kept is `self`'s if it has one.
    pub fn merge(&mut self, other: Tally) {
        // Both histograms share bounds, so adding cannot fail.
        self.set_latency_ns
            .add(&other.set_latency_ns)
            .expect("histograms with equal bounds add");
        self.get_latency_ns
            .add(&other.get_latency_ns)
            .expect("histograms with equal bounds add");
        self.get_hits += other.get_hits;
        self.get_misses += other.get_misses;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.last_reply_at = self.last_reply_at.max(other.last_reply_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let now = Instant::now();
        let mut a = Tally::new();
        a.record_n(Op::Set, Duration::from_micros(10), 1, now);
        a.record_n(Op::Set, Duration::from_micros(10), 0, now);
        a.fail(2, || "first".into());
        let mut b = Tally::new();
        b.record_n(Op::Get, Duration::from_micros(30), 3, now);
        b.record_n(
            Op::Get,
            Duration::from_micros(20),
            1,
            now + Duration::from_secs(1),
        );
        b.get_hits = 1;
        b.fail(1, || "second".into());
        a.merge(b);
        assert_eq!(a.completed(), 5);
        assert_eq!(a.get_latency_ns.count_at(30_000), 3);
        assert_eq!(a.errors, 3);
        assert_eq!(a.first_error.as_deref(), Some("first"));
        assert_eq!(a.last_reply_at, Some(now + Duration::from_secs(1)));
        assert_eq!(a.get_hits, 1);
    }
}
