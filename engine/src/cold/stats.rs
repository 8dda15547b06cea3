//! Cold-read counters and their latency histogram (four buckets per power of two).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Cold-read counters, and a latency histogram with four buckets per power of two.
pub(crate) struct ColdStats {
    pub reads: AtomicU64,
    pub errors: AtomicU64,
    pub merged: AtomicU64,
    pub in_flight: AtomicU64,
    latency_us: [AtomicU64; LATENCY_BUCKETS],
}

const LATENCY_BUCKETS: usize = 128;

impl Default for ColdStats {
    fn default() -> Self {
        ColdStats {
            reads: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            merged: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            latency_us: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The histogram bucket of `us`: exact below 4, then four per power of two.
fn bucket(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let b = 63 - us.leading_zeros() as usize; // >= 2
    let sub = ((us >> (b - 2)) & 3) as usize;
    (4 + (b - 2) * 4 + sub).min(LATENCY_BUCKETS - 1)
}

/// The largest value bucket `i` holds.
fn bucket_top(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let b = (i - 4) / 4 + 2;
    let sub = ((i - 4) % 4) as u64;
    ((4 + sub + 1) << (b - 2)) - 1
}

impl ColdStats {
    pub(super) fn note(&self, took: Duration) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let us = took.as_micros() as u64;
        self.latency_us[bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// The latency (microseconds, a bucket's upper bound) below which `q` of the reads fell.
    pub(crate) fn percentile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .latency_us
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return bucket_top(i);
            }
        }
        bucket_top(LATENCY_BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_hold_their_values() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            last = b;
            assert!(
                bucket_top(b) >= us,
                "{us} in bucket {b} topping at {}",
                bucket_top(b)
            );
            if b > 0 {
                assert!(bucket_top(b - 1) < us, "{us}");
            }
        }
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let s = ColdStats::default();
        for us in 1..=1000u64 {
            s.note(Duration::from_micros(us));
        }
        let p50 = s.percentile_us(0.5);
        let p99 = s.percentile_us(0.99);
        assert!((500..=640).contains(&p50), "{p50}");
        assert!((990..=1280).contains(&p99), "{p99}");
    }
}
