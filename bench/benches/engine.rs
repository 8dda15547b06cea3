//! Engine benchmarks (no network): put, get-hit, get-miss, delete with 16-byte keys and
//! 16 B / 100 B / 1 KiB / 16 KiB values, on one and two threads, fsync never; the server's SET
//! path (`set_update`: `Engine::update` with the closure plain SET passes) beside put at 100 B;
//! put with fsync always from 16 concurrent writers; open time at 1M keys (10M with
//! FLIN_BENCH_10M=1).
//!
//! Run: `cargo bench -p flin-bench --bench engine` (add `-- put` etc. to filter).
//! Memory per key is printed by `cargo run --release -p flin-bench --bin flin-engine-scale`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flin_bench::engine_tools::key16 as key;
use flin_engine::{Engine, Fsync, Options, Update};

const VALUE_SIZES: [usize; 4] = [16, 100, 1024, 16 * 1024];
/// Keys per keyspace; larger values use fewer keys so the data set stays a few hundred MB.
fn keyspace(value_size: usize) -> u64 {
    (256 * 1024 * 1024 / (value_size as u64 + 52)).clamp(10_000, 1_000_000)
}

/// A cheap, well-spread permutation of 0..n so accesses are not sequential.
fn spread(i: u64, n: u64) -> u64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % n
}

fn open(dir: &std::path::Path, fsync: Fsync) -> Engine {
    Engine::open(
        dir,
        Options {
            fsync,
            compaction: false,
            ..Options::default()
        },
    )
    .expect("open engine")
}

fn filled(value_size: usize) -> (tempfile::TempDir, Arc<Engine>, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), Fsync::Never);
    let n = keyspace(value_size);
    let value = vec![b'v'; value_size];
    for i in 0..n {
        engine.put(&key(i), &value, 0).expect("put");
    }
    (dir, Arc::new(engine), n)
}

/// Runs `op(thread, i)` `iters` times split over `threads` threads; returns wall time.
fn on_threads(threads: u64, iters: u64, op: impl Fn(u64, u64) + Sync) -> Duration {
    on_threads_with(threads, iters, || (), |(), t, i| op(t, i))
}

/// As [`on_threads`], each thread with its own `state()` (made before the clock starts) that
/// `op(state, thread, i)` may use.
fn on_threads_with<S: Send>(
    threads: u64,
    iters: u64,
    state: impl Fn() -> S,
    op: impl Fn(&mut S, u64, u64) + Sync,
) -> Duration {
    let mut states: Vec<S> = (0..threads).map(|_| state()).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (t, state) in (0..threads).zip(states.iter_mut()) {
            let op = &op;
            s.spawn(move || {
                for i in 0..iters / threads {
                    op(state, t, i);
                }
            });
        }
    });
    start.elapsed()
}

/// Benchmarks `write(engine, key, value, reply)` as `group/{value size}B/{threads}t` on a fresh
/// store, each thread cycling over the keyspace (inserts first, then overwrites). `reply` is a
/// per-thread buffer the write may append to, cleared after each write.
fn bench_writes(
    c: &mut Criterion,
    group: &str,
    value_sizes: &[usize],
    write: impl Fn(&Engine, &[u8], &[u8], &mut Vec<u8>) + Sync,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    for &vs in value_sizes {
        for threads in [1u64, 2] {
            let dir = tempfile::tempdir().expect("tempdir");
            let engine = open(dir.path(), Fsync::Never);
            let n = keyspace(vs);
            let value = vec![b'v'; vs];
            g.bench_function(
                BenchmarkId::new(format!("{vs}B"), format!("{threads}t")),
                |b| {
                    b.iter_custom(|iters| {
                        on_threads_with(threads, iters.max(threads), Vec::new, |reply, t, i| {
                            let k = key(spread(i * threads + t, n));
                            write(&engine, &k, &value, reply);
                            reply.clear();
                        })
                    })
                },
            );
        }
    }
    g.finish();
}

fn bench_put(c: &mut Criterion) {
    bench_writes(c, "put", &VALUE_SIZES, |engine, k, value, _| {
        engine.put(k, value, 0).expect("put");
    });
}

/// What the server's plain `SET key value` does (server/src/commands/strings.rs `set`): an
/// `update` whose closure writes `+OK` into the connection's reply buffer and decides to put
/// the value with no expiry. Beside `put/100B`, it shows what SET pays for reading the key's
/// current entry under the shard lock instead of `put`'s reordered path.
fn bench_set_update(c: &mut Criterion) {
    bench_writes(c, "set_update", &[100], |engine, k, value, reply| {
        engine
            .update(k, |_current| {
                reply.extend_from_slice(b"+OK\r\n");
                (
                    Update::Put {
                        value,
                        expire_at_ms: 0,
                    },
                    (),
                )
            })
            .expect("update");
    });
}

fn bench_get(c: &mut Criterion) {
    let mut g = c.benchmark_group("get");
    g.throughput(Throughput::Elements(1));
    for &vs in &VALUE_SIZES {
        let (_dir, engine, n) = filled(vs);
        for threads in [1u64, 2] {
            g.bench_function(
                BenchmarkId::new(format!("hit/{vs}B"), format!("{threads}t")),
                |b| {
                    b.iter_custom(|iters| {
                        on_threads(threads, iters.max(threads), |t, i| {
                            let k = key(spread(i * threads + t, n));
                            let len = engine.get_with(&k, |e| e.map(|e| e.value.len()));
                            assert_eq!(len, Some(vs));
                        })
                    })
                },
            );
            g.bench_function(
                BenchmarkId::new(format!("miss/{vs}B"), format!("{threads}t")),
                |b| {
                    b.iter_custom(|iters| {
                        on_threads(threads, iters.max(threads), |t, i| {
                            let k = key(n + spread(i * threads + t, n));
                            assert!(engine.get_with(&k, |e| e.is_none()));
                        })
                    })
                },
            );
        }
    }
    g.finish();
}

/// Reads of 16 keys at once (`get_many_with`, as MGET runs), which prefetches each chunk's
/// index slots and records so their memory reads overlap; per key, against `get/hit`.
fn bench_get_batched(c: &mut Criterion) {
    const BATCH: u64 = 16;
    let mut g = c.benchmark_group("get_batched");
    g.throughput(Throughput::Elements(BATCH));
    let vs = 100;
    let (_dir, engine, n) = filled(vs);
    g.bench_function(BenchmarkId::new(format!("hit{BATCH}/{vs}B"), "1t"), |b| {
        b.iter_custom(|iters| {
            on_threads(1, iters, |_, i| {
                let keys: [[u8; 16]; BATCH as usize] =
                    std::array::from_fn(|j| key(spread(i * BATCH + j as u64, n)));
                let refs: [&[u8]; BATCH as usize] = std::array::from_fn(|j| &keys[j][..]);
                let found = engine.get_many_with(&refs, |es| es.iter().flatten().count());
                assert_eq!(found, BATCH as usize);
            })
        })
    });
    g.finish();
}

fn bench_delete(c: &mut Criterion) {
    let mut g = c.benchmark_group("delete");
    g.throughput(Throughput::Elements(1));
    for &vs in &VALUE_SIZES {
        let (_dir, engine, n) = filled(vs);
        let value = vec![b'v'; vs];
        g.bench_function(BenchmarkId::new(format!("{vs}B"), "1t"), |b| {
            // Each measured delete removes a present key; the puts that refill it run outside
            // the timed section.
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let batch = (iters - done).min(n);
                    let start = Instant::now();
                    for i in 0..batch {
                        let gone = engine.delete(&key(i)).expect("delete");
                        assert!(gone.is_some());
                    }
                    took += start.elapsed();
                    for i in 0..batch {
                        engine.put(&key(i), &value, 0).expect("refill");
                    }
                    done += batch;
                }
                took
            })
        });
    }
    g.finish();
}

fn bench_fsync_always(c: &mut Criterion) {
    let mut g = c.benchmark_group("put_fsync_always");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), Fsync::Always);
    let value = vec![b'v'; 100];
    g.bench_function("16_writers/100B", |b| {
        b.iter_custom(|iters| {
            on_threads(16, iters.max(16), |t, i| {
                let token = engine.put(&key(t * 1_000_000 + i), &value, 0).expect("put");
                engine.wait_durable(token).expect("durable");
            })
        })
    });
    g.finish();
}

fn bench_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("open");
    g.sample_size(10);
    let mut sizes = vec![1_000_000u64];
    if std::env::var_os("FLIN_BENCH_10M").is_some() {
        sizes.push(10_000_000);
    }
    for n in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let engine = open(dir.path(), Fsync::Never);
            let value = [b'v'; 100];
            for i in 0..n {
                engine.put(&key(i), &value, 0).expect("put");
            }
        }
        g.throughput(Throughput::Elements(n));
        for hints in [true, false] {
            let name = if hints { "hints" } else { "scan" };
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    let e = Engine::open(
                        dir.path(),
                        Options {
                            fsync: Fsync::Never,
                            compaction: false,
                            hints,
                            ..Options::default()
                        },
                    )
                    .expect("open");
                    assert_eq!(e.len(), n);
                })
            });
        }
    }
    g.finish();
}

/// Compaction throughput: a store of 200K keys overwritten twice (two thirds dead), compacted
/// whole; reported in input bytes per second.
fn bench_compaction(c: &mut Criterion) {
    let mut g = c.benchmark_group("compaction");
    g.sample_size(10);
    let n = 200_000u64;
    let value = [b'v'; 100];
    g.throughput(Throughput::Bytes(COMPACTION_BYTES_NOMINAL));
    g.bench_function("200k_keys_2_overwrites", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            let mut bytes = 0u64;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let engine = Engine::open(
                    dir.path(),
                    Options {
                        fsync: Fsync::Never,
                        compaction: false,
                        segment_size_bytes: 8 << 20,
                        ..Options::default()
                    },
                )
                .expect("open");
                for round in 0..3 {
                    for i in 0..n {
                        engine
                            .put(&key(spread(i + round, n)), &value, 0)
                            .expect("put");
                    }
                }
                let start = Instant::now();
                let report = engine.compact_now().expect("compact");
                took += start.elapsed();
                bytes += report.bytes_in;
            }
            // Scale so criterion's per-iteration throughput reads as input bytes per second.
            let per_iter = bytes / iters.max(1);
            took.mul_f64(COMPACTION_BYTES_NOMINAL as f64 / per_iter.max(1) as f64)
        })
    });
    g.finish();
}

/// The byte count criterion divides by for the compaction group (times are scaled to it).
const COMPACTION_BYTES_NOMINAL: u64 = 64 << 20;

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_put, bench_set_update, bench_get, bench_get_batched, bench_delete, bench_fsync_always, bench_open, bench_compaction
}
criterion_main!(benches);
