//! The workload every engine runs: which keys, which values, in which order, and how a phase
//! runs on several threads until its time or op budget is spent.
//!
//! Every draw comes from a [`SmallRng`] seeded from (run seed, phase, thread), so each engine
//! sees the same keys in the same order and the same values.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use flin_bench::engine_tools::key16;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::store::{Result, Store};

/// Distinct values the writes cycle through: enough that a block holds few repeats for a
/// compressor to find, few enough (100 KiB at 100 bytes) to stay in cache beside the engine's.
pub const VALUE_POOL: usize = 1024;
/// Values are drawn from these 64 bytes: printable, as a client's would often be.
const VALUE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Streams of the workload's own draws, numbered apart from the phases'.
const STREAM_VALUES: u64 = u64::MAX;
const STREAM_LOAD_ORDER: u64 = u64::MAX - 1;
/// Keys per call of [`Store::load`] (per transaction for redb).
pub const LOAD_BATCH: usize = 10_000;
/// Ops a thread runs between looks at the clock, in the phases without a sync per op.
const CHECK_EVERY_OPS: u64 = 64;

/// One timed operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Overwrite a random present key.
    Put,
    /// Read a random present key (its value must be there, with the run's length).
    Get,
    /// Read a random key that was never written.
    GetAbsent,
    /// Overwrite a random present key and wait for it to be on disk.
    DurablePut,
}

/// When a phase stops: after `seconds` or after `ops` operations in total, whichever comes
/// first; a phase with neither does not stop.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub seconds: Option<f64>,
    pub ops: Option<u64>,
}

/// The keys and values of a run.
pub struct Workload {
    keys: u64,
    value_bytes: usize,
    seed: u64,
    values: Vec<Vec<u8>>,
}

impl Workload {
    pub fn new(keys: u64, value_bytes: usize, seed: u64) -> Workload {
        let mut rng = stream(seed, STREAM_VALUES, 0);
        let values = (0..VALUE_POOL)
            .map(|_| {
                (0..value_bytes)
                    .map(|_| VALUE_ALPHABET[rng.gen_range(0..VALUE_ALPHABET.len())])
                    .collect()
            })
            .collect();
        Workload {
            keys,
            value_bytes,
            seed,
            values,
        }
    }

    /// Key `i` of the loaded set. Present and absent keys interleave (even and odd numbers),
    /// so an absent key lies inside the loaded key range and no engine can reject it by range.
    pub fn present_key(i: u64) -> [u8; 16] {
        key16(2 * i)
    }

    /// A key that is never written.
    pub fn absent_key(i: u64) -> [u8; 16] {
        key16(2 * i + 1)
    }

    fn value(&self, draw: u64) -> &[u8] {
        &self.values[(draw % VALUE_POOL as u64) as usize]
    }

    /// Loads every key once, in a shuffled order (the same for every engine), and returns the
    /// rate in keys per second.
    pub fn load<S: Store>(&self, store: &S) -> Result<f64> {
        let mut order: Vec<u64> = (0..self.keys).collect();
        let mut rng = stream(self.seed, STREAM_LOAD_ORDER, 0);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        let started = Instant::now();
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        for chunk in order.chunks(LOAD_BATCH) {
            batch.clear();
            batch.extend(
                chunk
                    .iter()
                    .map(|&i| (Workload::present_key(i), self.value(i))),
            );
            store.load(&batch)?;
        }
        Ok(self.keys as f64 / started.elapsed().as_secs_f64())
    }

    /// Runs `op` on `threads` threads until `limit`, and returns operations per second.
    /// `phase` picks the random streams: the same phase number gives the same keys.
    pub fn run<S: Store>(
        &self,
        store: &S,
        op: Op,
        threads: usize,
        limit: Limit,
        phase: u64,
    ) -> Result<f64> {
        assert!(threads > 0, "a phase needs threads");
        let budget = limit
            .ops
            .map_or(u64::MAX, |ops| ops.div_ceil(threads as u64));
        let length = limit.seconds.map(Duration::from_secs_f64);
        let start = Barrier::new(threads);
        let results = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads as u64)
                .map(|thread| {
                    let start = &start;
                    let rng = stream(self.seed, phase, thread);
                    scope.spawn(move || {
                        start.wait();
                        self.worker(store, op, rng, budget, length)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| Err("a worker panicked".into())))
                .collect::<Vec<_>>()
        });
        // From the first thread's start to the last one's end.
        let (mut total, mut first, mut last) = (0, None::<Instant>, None::<Instant>);
        for result in results {
            let (done, began, ended) = result?;
            total += done;
            first = Some(first.map_or(began, |f| f.min(began)));
            last = Some(last.map_or(ended, |l| l.max(ended)));
        }
        let seconds = match (first, last) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        Ok(total as f64 / seconds.max(f64::MIN_POSITIVE))
    }

    /// One thread of a phase: `op` until `budget` ops are done or `length` has passed.
    /// Returns the ops done, and when it began and ended.
    fn worker<S: Store>(
        &self,
        store: &S,
        op: Op,
        mut rng: SmallRng,
        budget: u64,
        length: Option<Duration>,
    ) -> Result<(u64, Instant, Instant)> {
        // A durable op lasts a sync: look at the clock after each.
        let check_every = if op == Op::DurablePut {
            1
        } else {
            CHECK_EVERY_OPS
        };
        let began = Instant::now();
        let deadline = length.map(|length| began + length);
        let mut done = 0u64;
        while done < budget {
            let batch = check_every.min(budget - done);
            for _ in 0..batch {
                self.one(store, op, &mut rng)?;
            }
            done += batch;
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                break;
            }
        }
        Ok((done, began, Instant::now()))
    }

    fn one<S: Store>(&self, store: &S, op: Op, rng: &mut SmallRng) -> Result<()> {
        let i = rng.gen_range(0..self.keys);
        match op {
            Op::Put => store.put(&Workload::present_key(i), self.value(rng.gen())),
            Op::DurablePut => store.put_durable(&Workload::present_key(i), self.value(rng.gen())),
            Op::Get => match store.get_len(&Workload::present_key(i))? {
                Some(len) if len == self.value_bytes => Ok(()),
                other => Err(format!("get of present key {i}: value length {other:?}").into()),
            },
            Op::GetAbsent => match store.get_len(&Workload::absent_key(i))? {
                None => Ok(()),
                Some(_) => Err(format!("absent key {i} was found").into()),
            },
        }
    }
}

/// The random stream of one thread of one phase: it depends on nothing else, so every engine
/// draws the same keys.
fn stream(seed: u64, phase: u64, thread: u64) -> SmallRng {
    // seed_from_u64 runs its argument through SplitMix64: nearby inputs give unrelated streams.
    SmallRng::seed_from_u64(seed ^ phase.rotate_left(32) ^ thread)
}
