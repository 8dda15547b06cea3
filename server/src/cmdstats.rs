//! Per-command statistics, kept per worker with no shared counter on the hot path: calls,
//! time, rejected and failed calls and a latency histogram for each command (INFO
//! commandstats and latencystats, LATENCY HISTOGRAM), and error replies by error code (INFO
//! errorstats). Readers on any thread sum the workers; CONFIG RESETSTAT takes a [`Baseline`]
//! that later readings are counted from (another thread cannot zero a worker's counters
//! without racing its writes).
//!
//! Times are in [`crate::clock::ticks`]. A histogram has 16 buckets per power of two (values
//! below 16 ticks exact), so a percentile read from it is within 1/16 of the true value; it
//! is allocated at a command's first call, so only commands in use cost memory (about 5 KB
//! each per worker).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Histogram resolution: 2^SUB_BITS buckets per power of two.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Times at or above 2^40 ticks (minutes) fall in the last bucket.
const TICKS_BITS_MAX: u32 = 40;
/// Buckets of one histogram.
pub const BUCKETS: usize = (TICKS_BITS_MAX - SUB_BITS + 1) as usize * SUB;
/// Distinct error codes kept (Redis 7.2 keeps 128 too); later ones count as `ERR`.
const ERROR_CODES_MAX: usize = 128;

/// Adds to a counter only its worker writes: a relaxed load and store, no read-modify-write
/// (as `stats` does for the server counters).
#[inline]
fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// The bucket of a time in ticks.
pub fn bucket(ticks: u64) -> usize {
    let v = ticks.min((1 << TICKS_BITS_MAX) - 1);
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    (e - SUB_BITS + 1) as usize * SUB + ((v >> (e - SUB_BITS)) as usize & (SUB - 1))
}

/// The largest time in ticks that falls in bucket `i`.
pub fn bucket_high(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let shift = (i / SUB) as u32 - 1;
    let base = ((SUB + i % SUB) as u64) << shift;
    base + (1 << shift) - 1
}

/// One command's counters on one worker.
#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    ticks: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    histogram: OnceLock<Box<[AtomicU64]>>,
}

/// Error replies by code, and in all.
#[derive(Default)]
struct Errors {
    by_code: BTreeMap<Box<[u8]>, u64>,
    total: u64,
}

/// One worker's command statistics; only that worker records into them.
pub struct CommandStats {
    commands: Box<[Counters]>,
    errors: Mutex<Errors>,
}

impl CommandStats {
    /// Counters for `commands` commands (the command table's length).
    pub fn new(commands: usize) -> CommandStats {
        CommandStats {
            commands: (0..commands).map(|_| Counters::default()).collect(),
            errors: Mutex::new(Errors::default()),
        }
    }

    /// A call of command `cmd` that took `ticks`; `failed` when it replied with an error;
    /// into its histogram when `tracking` (Redis's `latency-tracking`).
    #[inline]
    pub fn record(&self, cmd: usize, ticks: u64, failed: bool, tracking: bool) {
        let c = &self.commands[cmd];
        add(&c.calls, 1);
        add(&c.ticks, ticks);
        if failed {
            add(&c.failed, 1);
        }
        if !tracking {
            return;
        }
        let h = c
            .histogram
            .get_or_init(|| (0..BUCKETS).map(|_| AtomicU64::new(0)).collect());
        add(&h[bucket(ticks)], 1);
    }

    /// Command `cmd` was refused before it ran (arity, authentication).
    pub fn reject(&self, cmd: usize) {
        add(&self.commands[cmd].rejected, 1);
    }

    /// An error reply with code `code` (`ERR`, `WRONGPASS`...).
    pub fn error(&self, code: &[u8]) {
        let Ok(mut e) = self.errors.lock() else {
            return;
        };
        e.total += 1;
        if let Some(n) = e.by_code.get_mut(code) {
            *n += 1;
        } else if e.by_code.len() < ERROR_CODES_MAX {
            e.by_code.insert(code.into(), 1);
        } else {
            *e.by_code.entry((*b"ERR").into()).or_default() += 1;
        }
    }
}

/// The error code of an error reply (`-CODE message\r\n`), as Redis's `afterErrorReply`
/// takes it: the first word within 32 bytes, else `ERR`.
pub fn error_code(reply: &[u8]) -> &[u8] {
    let head = &reply[..reply.len().min(32)];
    match (head.first(), memchr::memchr(b' ', head)) {
        (Some(b'-'), Some(space)) if space > 1 => &head[1..space],
        _ => b"ERR",
    }
}

/// A command's counters summed over the workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub calls: u64,
    pub ticks: u64,
    pub rejected: u64,
    pub failed: u64,
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Command `cmd`'s counters over every worker.
fn totals(workers: &[CommandStats], cmd: usize) -> Totals {
    let mut t = Totals::default();
    for w in workers {
        let c = &w.commands[cmd];
        t.calls += load(&c.calls);
        t.ticks += load(&c.ticks);
        t.rejected += load(&c.rejected);
        t.failed += load(&c.failed);
    }
    t
}

/// Command `cmd`'s histogram over every worker; `None` before its first call.
fn histogram(workers: &[CommandStats], cmd: usize) -> Option<Vec<u64>> {
    let mut sum: Option<Vec<u64>> = None;
    for w in workers {
        if let Some(h) = w.commands[cmd].histogram.get() {
            let s = sum.get_or_insert_with(|| vec![0; BUCKETS]);
            for (s, b) in s.iter_mut().zip(h.iter()) {
                *s += load(b);
            }
        }
    }
    sum
}

/// What the counters held at the last CONFIG RESETSTAT.
#[derive(Default)]
pub struct Baseline {
    commands: Vec<(Totals, Option<Vec<u64>>)>,
}

impl Baseline {
    /// The counters now (and the workers' error counts are cleared): readings count from here.
    pub fn take(workers: &[CommandStats]) -> Baseline {
        for w in workers {
            if let Ok(mut e) = w.errors.lock() {
                *e = Errors::default();
            }
        }
        let n = workers.first().map_or(0, |w| w.commands.len());
        Baseline {
            commands: (0..n)
                .map(|i| (totals(workers, i), histogram(workers, i)))
                .collect(),
        }
    }

    /// Command `cmd`'s counters since the baseline.
    pub fn totals(&self, workers: &[CommandStats], cmd: usize) -> Totals {
        let t = totals(workers, cmd);
        let Some((b, _)) = self.commands.get(cmd) else {
            return t;
        };
        Totals {
            calls: t.calls.saturating_sub(b.calls),
            ticks: t.ticks.saturating_sub(b.ticks),
            rejected: t.rejected.saturating_sub(b.rejected),
            failed: t.failed.saturating_sub(b.failed),
        }
    }

    /// Command `cmd`'s histogram since the baseline; `None` when it has no call since.
    pub fn histogram(&self, workers: &[CommandStats], cmd: usize) -> Option<Vec<u64>> {
        let mut h = histogram(workers, cmd)?;
        if let Some((_, Some(b))) = self.commands.get(cmd) {
            for (v, b) in h.iter_mut().zip(b) {
                *v = v.saturating_sub(*b);
            }
        }
        h.iter().any(|&n| n > 0).then_some(h)
    }
}

/// Error replies by code summed over the workers, and their total.
pub fn errors(workers: &[CommandStats]) -> (BTreeMap<Box<[u8]>, u64>, u64) {
    let mut by_code = BTreeMap::new();
    let mut total = 0;
    for w in workers {
        if let Ok(e) = w.errors.lock() {
            total += e.total;
            for (code, n) in &e.by_code {
                *by_code.entry(code.clone()).or_default() += n;
            }
        }
    }
    (by_code, total)
}

/// The time in ticks below which `percentile` percent of a histogram's samples fall (the
/// upper end of that sample's bucket); 0 for an empty histogram.
pub fn value_at_percentile(h: &[u64], percentile: f64) -> u64 {
    let total: u64 = h.iter().sum();
    if total == 0 {
        return 0;
    }
    let want = ((percentile / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &n) in h.iter().enumerate() {
        seen += n;
        if seen >= want {
            return bucket_high(i);
        }
    }
    bucket_high(h.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bound_their_values() {
        let mut last = 0;
        for v in (0..5000u64).chain([1 << 20, (1 << 20) + 12345, (1 << 39) + 7, u64::MAX]) {
            let b = bucket(v);
            assert!(b < BUCKETS);
            assert!(bucket_high(b) >= v.min((1 << TICKS_BITS_MAX) - 1), "{v}");
            if v < 5000 {
                assert!(b == last || b == last + 1, "{v}");
                last = b;
            }
            if b > 0 {
                assert!(bucket_high(b - 1) < v, "{v} would fit the bucket before");
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_within_a_sixteenth() {
        let w = [CommandStats::new(2)];
        for v in 1..=1000u64 {
            w[0].record(1, v * 100, false, true);
        }
        let h = histogram(&w, 1).unwrap();
        for (p, exact) in [
            (50.0, 50_000u64),
            (99.0, 99_000),
            (99.9, 99_900),
            (100.0, 100_000),
        ] {
            let got = value_at_percentile(&h, p);
            assert!(
                got >= exact && got <= exact + exact / 16,
                "p{p}: {got} for {exact}"
            );
        }
        assert_eq!(histogram(&w, 0), None);
    }

    #[test]
    fn baseline_counts_from_the_reset() {
        let w = [CommandStats::new(1), CommandStats::new(1)];
        w[0].record(0, 10, false, true);
        w[1].record(0, 20, true, true);
        w[1].reject(0);
        w[0].error(b"ERR");
        assert_eq!(
            Baseline::default().totals(&w, 0),
            Totals {
                calls: 2,
                ticks: 30,
                rejected: 1,
                failed: 1
            }
        );
        let b = Baseline::take(&w);
        assert_eq!(b.totals(&w, 0), Totals::default());
        assert_eq!(b.histogram(&w, 0), None);
        assert_eq!(errors(&w).1, 0);
        w[1].record(0, 5, false, true);
        assert_eq!(b.totals(&w, 0).calls, 1);
        assert_eq!(b.histogram(&w, 0).unwrap().iter().sum::<u64>(), 1);
    }

    #[test]
    fn error_codes_as_redis_takes_them() {
        assert_eq!(error_code(b"-ERR syntax error\r\n"), b"ERR");
        assert_eq!(error_code(b"-WRONGPASS invalid\r\n"), b"WRONGPASS");
        assert_eq!(error_code(b"-NOSPACEHEREATALL\r\n"), b"ERR");
        let long = format!("-{} x", "A".repeat(40));
        assert_eq!(error_code(long.as_bytes()), b"ERR");
        let w = CommandStats::new(0);
        for i in 0..200 {
            w.error(format!("E{i}").as_bytes());
        }
        let (by_code, total) = errors(std::slice::from_ref(&w));
        assert_eq!(total, 200);
        assert_eq!(by_code.len(), ERROR_CODES_MAX + 1);
    }
}
