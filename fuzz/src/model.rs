//! A model check of the engine: random puts, deletes, gets, read-modify-writes, expiries, scans,
//! reopens, compactions, FLUSHALL, and databases (select, FLUSHDB, SWAPDB) on small segments (so the log rolls and compaction has
//! work), checked against a `BTreeMap` after every step that reads. One model, two drivers: the
//! `engine_model` fuzz target, and `engine/tests/model.rs` (proptest, in `cargo test`), which
//! includes this file and `check.rs` by path.

use std::collections::BTreeMap;
use std::path::Path;

use arbitrary::{Arbitrary, Result, Unstructured};
use flin_engine::{Db, Engine, Options, Update};

use crate::check::{now_ms, read_all_db, Served};

const KEYS: u8 = 24;
/// Databases a run uses (of the engine's 16).
const DBS: u32 = 3;
const OPS_MAX: usize = 400;
/// Puts one transaction makes at most.
const TXN_PUTS_MAX: usize = 16;
/// A day: an expiry this far ahead never passes during a run.
const FUTURE_MS: u64 = 86_400_000;

#[derive(Arbitrary, Debug, Clone)]
enum Value {
    Bytes(Vec<u8>),
    /// `len` bytes of `fill`: up to 64 KiB, larger than a segment, which the log must take.
    Filled {
        fill: u8,
        len: u16,
    },
}

impl Value {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Bytes(b) => b.clone(),
            Value::Filled { fill, len } => vec![*fill; usize::from(*len)],
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Expiry {
    Never,
    /// Already passed: the write makes the key invisible.
    Past,
    Future,
}

#[derive(Arbitrary, Debug, Clone)]
enum Change {
    Keep,
    /// Appends to the current value (APPEND), creating the key when absent.
    Append(Vec<u8>),
    /// Writes only when the key is absent (SETNX).
    PutIfAbsent(Value),
    SetExpiry(Expiry),
    Delete,
}

#[derive(Arbitrary, Debug, Clone)]
enum BatchChange {
    Keep,
    Put(Value, Expiry),
    SetExpiry(Expiry),
    Delete,
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Put(u8, Value, Expiry),
    Delete(u8),
    Get(u8),
    Update(u8, Change),
    /// An atomic multi-key write (MSET, RENAME, DEL k1 k2...); keys may repeat.
    Batch(Vec<(u8, BatchChange)>),
    Scan(u8),
    Reopen,
    Compact,
    Clear,
    /// Every page out of memory, and memory counted as short from then on: puts that find
    /// their key's old record on disk take it without reading it (checked later).
    Evict,
    /// Later operations work on this database (SELECT).
    Select(u8),
    /// Empties the selected database (FLUSHDB).
    FlushDb,
    /// Swaps two databases (SWAPDB).
    Swap(u8, u8),
    /// Puts in the selected database as one transaction (EXEC), committed.
    Txn(Vec<(u8, Value, Expiry)>),
}

/// A run's operations, at most `OPS_MAX`.
#[derive(Debug)]
pub struct Ops(Vec<Op>);

impl<'a> Arbitrary<'a> for Ops {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let ops = u
            .arbitrary_iter()?
            .take(OPS_MAX)
            .collect::<Result<Vec<_>>>()?;
        Ok(Ops(ops))
    }
}

impl Ops {
    /// As many operations as `u`'s bytes make (up to `OPS_MAX`), for drivers whose inputs are
    /// uniformly random bytes: `arbitrary`'s iterator stops at the first clear bit, about two
    /// operations in, on such input.
    ///
    /// # Errors
    /// Never in practice: `arbitrary` fills what runs out of bytes with defaults.
    pub fn dense(u: &mut Unstructured<'_>) -> Result<Ops> {
        let n = u.arbitrary_len::<Op>()?.min(OPS_MAX);
        let ops = (0..n)
            .map(|_| Op::arbitrary(u))
            .collect::<Result<Vec<_>>>()?;
        Ok(Ops(ops))
    }
}

fn key(k: u8) -> Vec<u8> {
    // Mixed lengths, and the empty key, which Redis allows.
    match k % KEYS {
        0 => Vec::new(),
        n => format!("key-{n}-{}", "x".repeat(usize::from(n % 7))).into_bytes(),
    }
}

fn expire_at_ms(e: Expiry, now_ms: u64) -> u64 {
    match e {
        Expiry::Never => 0,
        Expiry::Past => 1,
        Expiry::Future => now_ms + FUTURE_MS,
    }
}

/// Live keys only: a write with a past expiry removes the key from the model.
type Model = BTreeMap<Vec<u8>, Served>;

fn set(model: &mut Model, k: Vec<u8>, value: Vec<u8>, expire_at_ms: u64) {
    if expire_at_ms != 0 && expire_at_ms <= now_ms() {
        model.remove(&k);
    } else {
        model.insert(
            k,
            Served {
                value,
                expire_at_ms,
            },
        );
    }
}

/// Runs `ops` on a store in `dir` opened with `options`, checking every read against a
/// `BTreeMap` model.
///
/// # Panics
/// When the store and the model disagree: that is the bug this reports.
pub fn run(dir: &Path, options: &Options, ops: Ops) {
    let mut engine = Engine::open(dir, options.clone()).expect("open");
    // Pages of a tmpfs file (the fuzz targets' scratch directories are on /dev/shm) cannot
    // leave memory: there an eviction could never finish, so it is skipped.
    let mut evicted = dir.starts_with("/dev/shm");
    let mut models = vec![Model::new(); DBS as usize];
    let mut selected = 0u32;
    let now = now_ms();
    for op in ops.0 {
        let db = engine.db(selected);
        let sel = selected as usize;
        match op {
            Op::Put(k, v, e) => {
                let (k, v, at) = (key(k), v.bytes(), expire_at_ms(e, now));
                db.put(&k, &v, at).expect("put");
                set(&mut models[sel], k, v, at);
            }
            Op::Delete(k) => {
                let k = key(k);
                let wrote = db.delete(&k).expect("delete").is_some();
                assert_eq!(wrote, models[sel].remove(&k).is_some(), "delete of {k:?}");
            }
            Op::Get(k) => {
                // A prefetch is a hint: it must change nothing, whatever it is given.
                let ahead: Vec<Vec<u8>> = (0..KEYS).map(|i| key(k.wrapping_add(i))).collect();
                let ahead: Vec<&[u8]> = ahead.iter().map(|k| &k[..]).collect();
                db.prefetch(&ahead);
                let k = key(k);
                let got = db.get_with(&k, |e| {
                    e.map(|e| Served {
                        value: e.value.to_vec(),
                        expire_at_ms: e.expire_at_ms,
                    })
                });
                assert_eq!(got.as_ref(), models[sel].get(&k), "get of {k:?}");
            }
            Op::Update(k, change) => update(db, &mut models[sel], key(k), change, now),
            Op::Batch(changes) => batch(db, &mut models[sel], &changes, now),
            Op::Scan(batch) => scan(db, &models[sel], usize::from(batch % 9)),
            Op::Reopen => {
                engine.close().expect("close");
                engine = Engine::open(dir, options.clone()).expect("reopen");
                // Recovery drops expired keys, so the count is exact here.
                check_all(&engine, &models, true, "after reopen");
            }
            Op::Compact => {
                engine.compact_now().expect("compact");
                check_all(&engine, &models, false, "after compaction");
            }
            // Once a run: memory stays "short" after it, and an eviction (sync, drop every
            // page, wait for hints) is too slow to repeat hundreds of times in one input.
            Op::Evict if !evicted => {
                evicted = true;
                engine.evict_for_tests().expect("evict");
                check_all(&engine, &models, false, "after eviction");
            }
            Op::Evict => {}
            Op::Clear => {
                engine.clear().expect("clear");
                models.iter_mut().for_each(Model::clear);
                assert_eq!(engine.len(), 0, "len after clear");
            }
            Op::Select(d) => selected = u32::from(d) % DBS,
            Op::FlushDb => {
                db.clear().expect("flushdb");
                models[sel].clear();
                assert_eq!(db.len(), 0, "len after flushdb");
                check_all(&engine, &models, false, "after flushdb");
            }
            Op::Txn(puts) => {
                let t = engine.transaction();
                for (k, v, e) in puts.iter().take(TXN_PUTS_MAX) {
                    let (k, v, at) = (key(*k), v.bytes(), expire_at_ms(*e, now));
                    db.put(&k, &v, at).expect("put in a transaction");
                    set(&mut models[sel], k, v, at);
                }
                t.commit().expect("commit");
            }
            Op::Swap(a, b) => {
                let (a, b) = (u32::from(a) % DBS, u32::from(b) % DBS);
                engine.swap_databases(a, b).expect("swapdb");
                models.swap(a as usize, b as usize);
                check_all(&engine, &models, false, "after swapdb");
            }
        }
    }
    check_all(&engine, &models, false, "at the end");
    engine.close().expect("close");
    let engine = Engine::open(dir, options.clone()).expect("reopen");
    check_all(&engine, &models, true, "after the last reopen");
}

/// Every database against its model; `exact`: counts too (right after open, which drops
/// expired keys).
fn check_all(engine: &Engine, models: &[Model], exact: bool, when: &str) {
    for (d, model) in models.iter().enumerate() {
        let db = engine.db(d as u32);
        assert_eq!(&read_all_db(db), model, "database {d} {when}");
        if exact {
            assert_eq!(db.len(), model.len() as u64, "len of database {d} {when}");
        }
    }
    if exact {
        let total: usize = models.iter().map(Model::len).sum();
        assert_eq!(engine.len(), total as u64, "len {when}");
        // INFO keyspace: keys, and keys with an expiry, of each database that has any.
        let want: Vec<(u32, u64, u64)> = models
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.is_empty())
            .map(|(d, m)| {
                let expires = m.values().filter(|s| s.expire_at_ms != 0).count();
                (d as u32, m.len() as u64, expires as u64)
            })
            .collect();
        let got: Vec<(u32, u64, u64)> = engine
            .keyspace()
            .iter()
            .map(|k| (k.db, k.keys, k.expires))
            .collect();
        assert_eq!(got, want, "keyspace {when}");
    }
}

fn update(engine: Db<'_>, model: &mut Model, k: Vec<u8>, change: Change, now: u64) {
    let before = model.get(&k).cloned();
    let (seen, token) = engine
        .update(&k, |entry| {
            let seen = entry.map(|e| Served {
                value: e.value.to_vec(),
                expire_at_ms: e.expire_at_ms,
            });
            let decision = match &change {
                Change::Keep => Update::Keep,
                Change::Append(_) | Change::PutIfAbsent(_) => Update::Keep,
                Change::SetExpiry(e) => Update::SetExpiry {
                    expire_at_ms: expire_at_ms(*e, now),
                },
                Change::Delete => Update::Delete,
            };
            (decision, seen)
        })
        .expect("update");
    assert_eq!(seen, before, "update of {k:?} saw the wrong value");
    // Writes that need a value computed from the old one take a second step: the closure
    // cannot return a borrow of a buffer it builds.
    match change {
        Change::Keep => assert!(token.is_none()),
        Change::Append(tail) => {
            let mut v = before.map(|s| s.value).unwrap_or_default();
            v.extend_from_slice(&tail);
            let value = v.clone();
            let (_, token) = engine
                .update(&k, |_| {
                    (
                        Update::Put {
                            value: &value,
                            expire_at_ms: 0,
                        },
                        (),
                    )
                })
                .expect("append");
            assert!(token.is_some());
            set(model, k, v, 0);
        }
        Change::PutIfAbsent(v) => {
            let v = v.bytes();
            let (_, token) = engine
                .update(&k, |entry| match entry {
                    Some(_) => (Update::Keep, ()),
                    None => (
                        Update::Put {
                            value: &v,
                            expire_at_ms: 0,
                        },
                        (),
                    ),
                })
                .expect("put if absent");
            assert_eq!(token.is_some(), before.is_none());
            if before.is_none() {
                set(model, k, v, 0);
            }
        }
        Change::SetExpiry(e) => {
            assert_eq!(token.is_some(), before.is_some());
            if let Some(s) = before {
                set(model, k, s.value, expire_at_ms(e, now));
            }
        }
        Change::Delete => {
            assert_eq!(token.is_some(), before.is_some());
            model.remove(&k);
        }
    }
}

/// `update_many` sees every key as the model has it, and applies each key's last decision,
/// taken against the state before the batch.
fn batch(engine: Db<'_>, model: &mut Model, changes: &[(u8, BatchChange)], now: u64) {
    let keys: Vec<Vec<u8>> = changes.iter().map(|(k, _)| key(*k)).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let values: Vec<Option<Vec<u8>>> = changes
        .iter()
        .map(|(_, c)| match c {
            BatchChange::Put(v, _) => Some(v.bytes()),
            _ => None,
        })
        .collect();
    let before: Vec<Option<Served>> = keys.iter().map(|k| model.get(k).cloned()).collect();
    let (seen, _) = engine
        .update_many(&refs, |entries| {
            let seen: Vec<Option<Served>> = entries
                .iter()
                .map(|e| {
                    e.map(|e| Served {
                        value: e.value.to_vec(),
                        expire_at_ms: e.expire_at_ms,
                    })
                })
                .collect();
            let decisions = changes
                .iter()
                .zip(&values)
                .map(|((_, c), v)| match c {
                    BatchChange::Keep => Update::Keep,
                    BatchChange::Put(_, e) => Update::Put {
                        value: v.as_deref().expect("a put has a value"),
                        expire_at_ms: expire_at_ms(*e, now),
                    },
                    BatchChange::SetExpiry(e) => Update::SetExpiry {
                        expire_at_ms: expire_at_ms(*e, now),
                    },
                    BatchChange::Delete => Update::Delete,
                })
                .collect();
            (decisions, seen)
        })
        .expect("update_many");
    assert_eq!(seen, before, "update_many saw the wrong values");
    for (i, (k, (_, change))) in keys.iter().zip(changes).enumerate() {
        if keys[i + 1..].contains(k) {
            continue;
        }
        match change {
            BatchChange::Keep => {}
            BatchChange::Put(_, e) => {
                let v = values[i].clone().expect("a put has a value");
                set(model, k.clone(), v, expire_at_ms(*e, now));
            }
            BatchChange::SetExpiry(e) => {
                if let Some(s) = before[i].clone() {
                    set(model, k.clone(), s.value, expire_at_ms(*e, now));
                }
            }
            BatchChange::Delete => {
                model.remove(k);
            }
        }
    }
    // The keys read together afterwards show the batch whole.
    let read = engine.get_many_with(&refs, |cur| {
        cur.iter()
            .map(|e| e.map(|e| e.value.to_vec()))
            .collect::<Vec<_>>()
    });
    let expected: Vec<Option<Vec<u8>>> = keys
        .iter()
        .map(|k| model.get(k).map(|s| s.value.clone()))
        .collect();
    assert_eq!(read, expected, "get_many_with after update_many");
}

/// A full scan in batches of `batch` keys lists every live key, and only those.
fn scan(engine: Db<'_>, model: &Model, batch: usize) {
    let mut seen = Model::new();
    let mut cursor = 0;
    loop {
        cursor = engine.scan(cursor, batch, |k, e| {
            seen.insert(
                k.to_vec(),
                Served {
                    value: e.value.to_vec(),
                    expire_at_ms: e.expire_at_ms,
                },
            );
        });
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(&seen, model, "scan in batches of {batch}");
}
