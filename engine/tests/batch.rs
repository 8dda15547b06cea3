//! Atomic multi-key writes (`update_many`, used by MSET, MSETNX, RENAME, DEL): readers never
//! see half a batch, and recovery applies a batch whole or not at all.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use flin_engine::testing::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use flin_engine::{Engine, Error, Fsync, Options, Update};

mod common;
use common::copy_dir;

fn options() -> Options {
    common::options(Fsync::Never, 1 << 20)
}

fn put_all<'v>(values: &[&'v [u8]]) -> Vec<Update<'v>> {
    values
        .iter()
        .map(|v| Update::Put {
            value: v,
            expire_at_ms: 0,
        })
        .collect()
}

fn record_len(key: &[u8], value: &[u8]) -> u64 {
    (RECORD_HEADER_LEN + key.len() + value.len()) as u64
}

/// The one segment file of `dir` (the tests write less than a segment).
fn only_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert_eq!(segs.len(), 1, "expected one segment in {}", dir.display());
    segs.pop().unwrap()
}

const BATCH_KEYS: [&[u8]; 4] = [b"b0", b"b1", b"b2", b"k0"];

/// Writes `k0..k9`, then one batch overwriting `k0` and creating `b0..b2`, then (when `after`)
/// more keys. Returns the batch's first offset and the offset of its last record.
fn write_store(dir: &Path, after: bool) -> (u64, u64) {
    let engine = Engine::open(dir, options()).unwrap();
    let mut off = SEGMENT_HEADER_LEN as u64;
    for i in 0..10 {
        let (k, v) = (format!("k{i}"), format!("old-{i}"));
        engine.put(k.as_bytes(), v.as_bytes(), 0).unwrap();
        off += record_len(k.as_bytes(), v.as_bytes());
    }
    let value = vec![b'n'; 700];
    let values = [&value[..]; 4];
    let (_, token) = engine
        .update_many(&BATCH_KEYS, |cur| {
            assert_eq!(cur.iter().filter(|e| e.is_some()).count(), 1, "only k0");
            (put_all(&values), ())
        })
        .unwrap();
    assert!(token.is_some());
    let batch_start = off;
    let last = off + 3 * record_len(b"b0", &value);
    if after {
        for i in 0..5 {
            engine.put(format!("after{i}").as_bytes(), b"x", 0).unwrap();
        }
    }
    engine.close().unwrap();
    (batch_start, last)
}

/// Either every write of the batch is visible or none is; the keys before it always are.
fn check_all_or_nothing(engine: &Engine, expect_batch: bool) {
    for i in 1..10 {
        assert_eq!(
            engine.get(format!("k{i}").as_bytes()),
            Some(format!("old-{i}").into_bytes())
        );
    }
    let k0 = engine.get(b"k0").unwrap();
    let present: Vec<bool> = BATCH_KEYS[..3].iter().map(|k| engine.contains(k)).collect();
    if expect_batch {
        assert_eq!(k0, vec![b'n'; 700]);
        assert_eq!(present, [true; 3]);
    } else {
        assert_eq!(k0, b"old-0");
        assert_eq!(present, [false; 3], "half a batch was recovered");
    }
}

#[test]
fn a_batch_cut_anywhere_by_a_crash_is_recovered_whole_or_not_at_all() {
    let src = tempfile::tempdir().unwrap();
    let (batch_start, _) = write_store(src.path(), false);
    let full_len = std::fs::metadata(only_segment(src.path())).unwrap().len();
    assert!(full_len > batch_start);
    let mut cuts: Vec<u64> = (batch_start..full_len).step_by(61).collect();
    cuts.extend([batch_start + 1, full_len - 1, full_len]);
    for cut in cuts {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let seg = only_segment(dir.path());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let engine = Engine::open(dir.path(), options())
            .unwrap_or_else(|e| panic!("open after a cut at {cut}: {e}"));
        check_all_or_nothing(&engine, cut == full_len);
        if cut > batch_start && cut < full_len {
            let stats = engine.stats();
            assert!(stats.recovery.torn_bytes_truncated > 0, "cut at {cut}");
        }
        // New writes after the cut batch start a fresh record; reopening must not revive it.
        engine.put(b"later", b"v", 0).unwrap();
        engine.close().unwrap();
        let engine = Engine::open(dir.path(), options()).unwrap();
        check_all_or_nothing(&engine, cut == full_len);
        assert_eq!(engine.get(b"later"), Some(b"v".to_vec()));
    }
}

#[test]
fn a_damaged_last_record_drops_the_whole_batch_under_repair() {
    let dir = tempfile::tempdir().unwrap();
    let (batch_start, last) = write_store(dir.path(), true);
    let seg = only_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    // A byte of the last record's value.
    bytes[(last + RECORD_HEADER_LEN as u64 + 10) as usize] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();

    match Engine::open(dir.path(), options()) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, batch_start),
        Err(e) => panic!("expected a corruption error at {batch_start}, got {e}"),
        Ok(_) => panic!("opened a store with a damaged batch without repair"),
    }
    let engine = Engine::open(
        dir.path(),
        Options {
            repair: true,
            ..options()
        },
    )
    .unwrap();
    check_all_or_nothing(&engine, false);
    for i in 0..5 {
        assert!(engine.contains(format!("after{i}").as_bytes()));
    }
}

#[test]
fn readers_never_see_half_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(dir.path(), options()).unwrap());
    // Keys spread over many shards, so the batch takes several shard locks.
    let keys: Vec<Vec<u8>> = (0..16).map(|i| format!("key-{i}").into_bytes()).collect();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (engine, keys, done) = (engine.clone(), keys.clone(), done.clone());
            std::thread::spawn(move || {
                let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) {
                    let values = engine.get_many_with(&refs, |cur| {
                        cur.iter()
                            .map(|e| e.map(|e| e.value.to_vec()))
                            .collect::<Vec<_>>()
                    });
                    assert!(
                        values.windows(2).all(|w| w[0] == w[1]),
                        "a read saw half a batch: {values:?}"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    for round in 0..20_000u32 {
        let value = round.to_le_bytes();
        if round % 10 == 9 {
            // Deleting all of them is atomic too.
            engine
                .update_many(&refs, |_| (vec![Update::Delete; refs.len()], ()))
                .unwrap();
        } else {
            engine
                .update_many(&refs, |_| (put_all(&vec![&value[..]; refs.len()]), ()))
                .unwrap();
        }
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

#[test]
fn large_batches_with_repeats_and_many_keys_per_shard() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    let keys: Vec<Vec<u8>> = (0..3000).map(|i| format!("k{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let value = b"first".to_vec();
    engine
        .update_many(&refs, |_| (put_all(&vec![&value[..]; refs.len()]), ()))
        .unwrap();
    assert_eq!(engine.len(), 3000);

    // Delete the even keys, rewrite the odd ones, and name k1 twice: the last decision wins.
    let mut batch = refs.clone();
    batch.push(b"k1");
    let (count, _) = engine
        .update_many(&batch, |cur| {
            let live = cur.iter().filter(|e| e.is_some()).count();
            let mut updates: Vec<Update<'_>> = (0..refs.len())
                .map(|i| {
                    if i % 2 == 0 {
                        Update::Delete
                    } else {
                        Update::Put {
                            value: b"second",
                            expire_at_ms: 0,
                        }
                    }
                })
                .collect();
            updates.push(Update::Put {
                value: b"third",
                expire_at_ms: 0,
            });
            (updates, live)
        })
        .unwrap();
    assert_eq!(count, 3001);
    let check = |engine: &Engine| {
        assert_eq!(engine.len(), 1500);
        for (i, k) in keys.iter().enumerate() {
            let expected: Option<&[u8]> = match i {
                1 => Some(b"third"),
                _ if i % 2 == 0 => None,
                _ => Some(b"second"),
            };
            assert_eq!(engine.get(k).as_deref(), expected, "key k{i}");
        }
    };
    check(&engine);
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    check(&engine);
    engine.compact_now().unwrap();
    check(&engine);
}

#[test]
fn a_batch_that_writes_nothing_returns_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    engine.put(b"a", b"1", 0).unwrap();
    // MSETNX when one key exists: keep everything.
    let (set, token) = engine
        .update_many(&[b"a", b"b"], |cur| {
            if cur.iter().any(Option::is_some) {
                (vec![Update::Keep; 2], false)
            } else {
                (put_all(&[b"x", b"y"]), true)
            }
        })
        .unwrap();
    assert!(!set);
    assert!(token.is_none());
    assert_eq!(engine.get(b"b"), None);
    assert_eq!(engine.get(b"a"), Some(b"1".to_vec()));
    // Deleting absent keys writes nothing either.
    let (_, token) = engine
        .update_many(&[b"x", b"y"], |_| (vec![Update::Delete; 2], ()))
        .unwrap();
    assert!(token.is_none());
}
