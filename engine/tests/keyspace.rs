//! INFO keyspace's counts (`Engine::keyspace`): the keys with an expiry of each database are
//! counted exactly through every write that gives, changes or drops an expiry, expiry (lazy
//! and swept), FLUSHDB, FLUSHALL, SWAPDB, batches across databases (MOVE, COPY), compaction
//! and reopen (from scanned segments and from hints). Guards against a count that drifts from
//! the keys it counts.

mod common;

use std::path::Path;

use flin_engine::{Engine, Keyspace, Update};

/// 2100-01-01: an expiry that never passes during a test.
const FAR_MS: u64 = 4_102_444_800_000;
/// 1 ms after the epoch: a write with it is expired at once, and stays in the index (and the
/// counts, as in Redis) until something removes it.
const PAST_MS: u64 = 1;

fn open(dir: &Path, hints: bool) -> Engine {
    Engine::open(dir, common::small_segments(hints)).unwrap()
}

/// (db, keys, expires) of every database that has keys.
fn counts(e: &Engine) -> Vec<(u32, u64, u64)> {
    e.keyspace()
        .iter()
        .map(|k| (k.db, k.keys, k.expires))
        .collect()
}

fn persist(e: &Engine, db: u32, key: &[u8]) {
    e.db(db)
        .update(key, |cur| {
            let d = match cur {
                Some(c) if c.expire_at_ms != 0 => Update::SetExpiry { expire_at_ms: 0 },
                _ => Update::Keep,
            };
            (d, ())
        })
        .unwrap();
}

fn expire(e: &Engine, db: u32, key: &[u8], at_ms: u64) {
    e.db(db)
        .update(key, |_| {
            (
                Update::SetExpiry {
                    expire_at_ms: at_ms,
                },
                (),
            )
        })
        .unwrap();
}

/// MOVE key from `src` to `dst` (as the server's MOVE: one batch across databases).
fn move_key(e: &Engine, src: u32, dst: u32, key: &[u8]) {
    e.update_many_across(&[(src, key), (dst, key)], true, |cur| {
        match (cur[0], cur[1]) {
            (Some(s), None) => {
                let value = s.value.to_vec();
                let at = s.expire_at_ms;
                // The closure cannot lend a buffer it builds: leak this test's few bytes.
                let value: &'static [u8] = Box::leak(value.into_boxed_slice());
                (
                    vec![
                        Update::Delete,
                        Update::Put {
                            value,
                            expire_at_ms: at,
                        },
                    ],
                    (),
                )
            }
            _ => (vec![Update::Keep, Update::Keep], ()),
        }
    })
    .unwrap();
}

#[test]
fn expires_follow_every_write_that_sets_changes_or_drops_an_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), true);
    assert_eq!(counts(&e), vec![]);
    for i in 0..10u32 {
        let at = if i % 2 == 0 { FAR_MS } else { 0 };
        e.db(0).put(format!("k{i}").as_bytes(), b"v", at).unwrap();
    }
    assert_eq!(counts(&e), vec![(0, 10, 5)]);
    // Overwrites: with an expiry over one without, without over with, with over with.
    e.db(0).put(b"k1", b"v", FAR_MS).unwrap();
    e.db(0).put(b"k0", b"v", 0).unwrap();
    e.db(0).put(b"k2", b"w", FAR_MS + 1).unwrap();
    assert_eq!(counts(&e), vec![(0, 10, 5)]);
    persist(&e, 0, b"k2");
    persist(&e, 0, b"k3");
    expire(&e, 0, b"k3", FAR_MS);
    expire(&e, 0, b"k4", FAR_MS + 5);
    assert_eq!(counts(&e), vec![(0, 10, 5)], "k1 k3 k4 k6 k8");
    e.db(0).delete(b"k1").unwrap();
    e.db(0).delete(b"k5").unwrap();
    assert_eq!(counts(&e), vec![(0, 8, 4)]);
    // An expired key counts until it is removed, as in Redis.
    e.db(0).put(b"gone", b"v", PAST_MS).unwrap();
    assert_eq!(counts(&e), vec![(0, 9, 5)]);
    assert!(e.db(0).get(b"gone").is_none());
    assert!(e.db(0).remove_expired(b"gone"));
    assert_eq!(counts(&e), vec![(0, 8, 4)]);
    e.db(0).put(b"swept", b"v", PAST_MS).unwrap();
    assert_eq!(e.expire_now(1 << 20), 1);
    assert_eq!(counts(&e), vec![(0, 8, 4)]);
    // Deleting an expired key drops it from memory (and the counts) without a tombstone.
    e.db(0).put(b"gone", b"v", PAST_MS).unwrap();
    e.db(0).delete(b"gone").unwrap();
    assert_eq!(counts(&e), vec![(0, 8, 4)]);

    // Other databases, MOVE and a batch that sets expiries.
    e.db(3).put(b"a", b"v", FAR_MS).unwrap();
    move_key(&e, 0, 3, b"k3");
    move_key(&e, 0, 3, b"k7");
    assert_eq!(counts(&e), vec![(0, 6, 3), (3, 3, 2)]);
    e.db(5)
        .update_many(&[b"x", b"y", b"z", b"x"], |_| {
            let put = |at| Update::Put {
                value: b"1",
                expire_at_ms: at,
            };
            (vec![put(FAR_MS), put(FAR_MS), put(0), put(0)], ())
        })
        .unwrap();
    assert_eq!(
        counts(&e),
        vec![(0, 6, 3), (3, 3, 2), (5, 3, 1)],
        "x's last put wins"
    );

    // SWAPDB: the counts go with the data.
    e.swap_databases(0, 5).unwrap();
    assert_eq!(counts(&e), vec![(0, 3, 1), (3, 3, 2), (5, 6, 3)]);
    let before = counts(&e);
    drop(e);
    for hints in [false, true, true] {
        let e = open(dir.path(), hints);
        assert_eq!(counts(&e), before, "reopened, hints {hints}");
        e.compact_now().unwrap();
        assert_eq!(counts(&e), before, "compacted, hints {hints}");
    }

    // FLUSHDB of one database, then FLUSHALL.
    let e = open(dir.path(), true);
    e.db(5).clear().unwrap();
    assert_eq!(counts(&e), vec![(0, 3, 1), (3, 3, 2)]);
    drop(e);
    let e = open(dir.path(), false);
    assert_eq!(counts(&e), vec![(0, 3, 1), (3, 3, 2)]);
    e.clear().unwrap();
    assert_eq!(counts(&e), vec![]);
    e.db(2).put(b"after", b"v", FAR_MS).unwrap();
    drop(e);
    let e = open(dir.path(), true);
    assert_eq!(counts(&e), vec![(2, 1, 1)]);
}

#[test]
fn expired_records_leave_the_counts_at_reopen_and_in_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), true);
    // Enough records to fill several 4 KiB segments, so some are sealed (hinted, compacted).
    for i in 0..300u32 {
        let at = match i % 3 {
            0 => 0,
            1 => FAR_MS,
            _ => PAST_MS,
        };
        e.db(i % 2)
            .put(format!("k{i}").as_bytes(), b"value", at)
            .unwrap();
    }
    assert_eq!(counts(&e), vec![(0, 150, 100), (1, 150, 100)]);
    e.compact_now().unwrap();
    // Compaction may drop expired records' slots itself; the sweep takes the rest.
    e.expire_now(1 << 20);
    assert_eq!(counts(&e), vec![(0, 100, 50), (1, 100, 50)]);
    drop(e);
    for hints in [true, false] {
        let e = open(dir.path(), hints);
        assert_eq!(
            counts(&e),
            vec![(0, 100, 50), (1, 100, 50)],
            "hints {hints}"
        );
    }
}

#[test]
fn avg_ttl_comes_from_the_sweep_and_is_zero_without_expiries() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), true);
    e.db(0).put(b"plain", b"v", 0).unwrap();
    e.db(1).put(b"a", b"v", FAR_MS).unwrap();
    let ks = e.keyspace();
    assert_eq!(ks[0].avg_ttl_ms, 0, "no key with an expiry");
    e.expire_now(1 << 20);
    let ks = e.keyspace();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(
        ks[0],
        Keyspace {
            db: 0,
            keys: 1,
            expires: 0,
            avg_ttl_ms: 0
        }
    );
    // Sampled once: the average is that key's time to live, give or take the test's run.
    let ttl = FAR_MS - now_ms;
    assert!(
        ks[1].avg_ttl_ms <= ttl + 60_000 && ks[1].avg_ttl_ms + 60_000 >= ttl,
        "{ks:?}"
    );
    persist(&e, 1, b"a");
    assert_eq!(e.keyspace()[1].avg_ttl_ms, 0, "no expiry left");
}

#[test]
fn holds_sees_a_record_past_its_expiry_until_it_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    // No background sweep: the expired record stays until the test removes it.
    let options = flin_engine::Options {
        expire_keys: false,
        ..common::small_segments(true)
    };
    let e = Engine::open(dir.path(), options).unwrap();
    let db = e.db(3);
    db.put(b"gone", b"v", PAST_MS).unwrap();
    db.put(b"live", b"v", FAR_MS).unwrap();
    assert!(!db.contains(b"gone") && db.holds(b"gone"));
    assert!(db.contains(b"live") && db.holds(b"live"));
    assert!(!db.holds(b"never") && !e.db(0).holds(b"gone"));
    // Removed lazily here, or by the sweep first: either way it is gone.
    e.set_expire_keys(true);
    db.remove_expired(b"gone");
    assert!(!db.holds(b"gone"));
    db.delete(b"live").unwrap();
    assert!(!db.holds(b"live"));
}
