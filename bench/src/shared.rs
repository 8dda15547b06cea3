//! State every driver thread shares during a run: the request budget, the set of keys this run
//! has written, the phase deadlines and the progress counters. Everything here is atomics or
//! read-only; nothing is locked on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::options::{Config, Distribution, Stop};
use crate::resp::Encoder;
use crate::rng::Rng;
use crate::zipf::{Zipf, ZipfError};

/// The measured requests still to hand out, when the run stops at a count.
#[derive(Debug)]
pub struct Budget {
    claimed: AtomicU64,
    total: u64,
}

impl Budget {
    pub fn new(total: u64) -> Self {
        Self {
            claimed: AtomicU64::new(0),
            total,
        }
    }

    /// Takes up to `want` requests; 0 once the budget is spent. Grants add up to exactly
    /// `total` however threads interleave.
    #[inline]
    pub fn claim(&self, want: u64) -> u64 {
        // `claimed` may run past `total` (each late caller adds `want` once before stopping):
        // clamp instead of a compare-exchange loop. It cannot wrap: callers stop at 0.
        let before = self.claimed.fetch_add(want, Ordering::Relaxed);
        self.total.saturating_sub(before).min(want)
    }
}

/// One bit per key: set once a SET of that key was acknowledged in this run. A GET sent after
/// the bit was seen set must return the key's derived value.
#[derive(Debug)]
pub struct WrittenKeys {
    words: Box<[AtomicU64]>,
}

impl WrittenKeys {
    pub fn new(keyspace: u64) -> Self {
        let words = keyspace.div_ceil(64) as usize;
        Self {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// # Panics
    /// If `key` is outside the keyspace this was built for.
    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        let word = self.words[(key / 64) as usize].load(Ordering::Acquire);
        word & (1 << (key % 64)) != 0
    }

    /// Marks `key` written. Reads first so a hot key does not bounce its cache line.
    ///
    /// # Panics
    /// If `key` is outside the keyspace this was built for.
    #[inline]
    pub fn insert(&self, key: u64) {
        let word = &self.words[(key / 64) as usize];
        let bit = 1 << (key % 64);
        if word.load(Ordering::Relaxed) & bit == 0 {
            word.fetch_or(bit, Ordering::Release);
        }
    }
}

/// How keys are drawn.
#[derive(Debug, Clone)]
pub enum KeyGen {
    Uniform { keyspace: u64 },
    Zipf(Zipf),
}

impl KeyGen {
    /// # Errors
    /// [`ZipfError`] for a zipf theta outside `(0, 1)`.
    pub fn new(config: &Config) -> Result<Self, ZipfError> {
        Ok(match config.distribution {
            Distribution::Uniform => Self::Uniform {
                keyspace: config.keyspace,
            },
            Distribution::Zipf => Self::Zipf(Zipf::new(config.keyspace, config.zipf_theta)?),
        })
    }

    #[inline]
    pub fn next(&self, rng: &mut Rng) -> u64 {
        match self {
            Self::Uniform { keyspace } => rng.below(*keyspace),
            Self::Zipf(zipf) => zipf.next(rng),
        }
    }
}

/// A counter alone on its cache line, so threads publishing progress do not slow each other.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct PaddedCounter(pub AtomicU64);

/// Everything the driver threads of one run share.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub encoder: Encoder,
    pub keys: KeyGen,
    /// `Some` when the run stops at a request count.
    pub budget: Option<Budget>,
    pub written: WrittenKeys,
    /// Batches written before this are warmup: checked, not recorded, not counted.
    pub measure_start: Instant,
    /// `Some` when the run stops at a time: no batch starts at or after it.
    pub deadline: Option<Instant>,
    /// Measured requests completed, one counter per thread, for the progress bar.
    pub progress: Box<[PaddedCounter]>,
}

impl Shared {
    /// Shared state for a run whose clock starts at `start`.
    ///
    /// # Errors
    /// [`ZipfError`] for a zipf theta outside `(0, 1)`.
    pub fn new(config: &Config, start: Instant) -> Result<Self, ZipfError> {
        let measure_start = start + config.warmup;
        let (budget, deadline) = match config.stop {
            Stop::Requests(total) => (Some(Budget::new(total)), None),
            Stop::Duration(duration) => (None, Some(measure_start + duration)),
        };
        Ok(Self {
            config: config.clone(),
            encoder: Encoder::new(config.seed, config.value_size_bytes),
            keys: KeyGen::new(config)?,
            budget,
            written: WrittenKeys::new(config.keyspace),
            measure_start,
            deadline,
            progress: (0..config.threads)
                .map(|_| PaddedCounter::default())
                .collect(),
        })
    }

    /// Measured requests completed so far, all threads.
    pub fn completed(&self) -> u64 {
        self.progress
            .iter()
            .map(|counter| counter.0.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_grants_exactly_the_total() {
        let budget = Budget::new(10);
        assert_eq!(budget.claim(4), 4);
        assert_eq!(budget.claim(4), 4);
        assert_eq!(budget.claim(4), 2);
        assert_eq!(budget.claim(4), 0);
        assert_eq!(budget.claim(1), 0);
    }

    #[test]
    fn budget_is_exact_across_threads() {
        let budget = Budget::new(100_003);
        let granted: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = 0;
                        loop {
                            let got = budget.claim(16);
                            if got == 0 {
                                return mine;
                            }
                            mine += got;
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, 100_003);
    }

    #[test]
    fn written_keys_remember() {
        let written = WrittenKeys::new(130);
        assert!(!written.contains(129));
        written.insert(129);
        written.insert(0);
        assert!(written.contains(129) && written.contains(0));
        assert!(!written.contains(64));
    }
}
