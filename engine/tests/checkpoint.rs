//! Checkpoints: taken while the store serves, each one opens as the store was at that moment,
//! whatever happens to the live store afterwards (more writes, deletes, compaction deleting the
//! segments it linked); concurrent writers see no pause in correctness (the checkpoint holds a
//! prefix of their writes, never a hole, while compaction runs); a destination that exists is
//! refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flin_engine::{Engine, Fsync, Options};

mod common;
// Restores copy a checkpoint rather than serve it in place.
use common::copy_dir;

fn options() -> Options {
    // Small segments: a checkpoint links many sealed ones and copies the active one.
    common::options(Fsync::Never, 16 * 1024)
}

fn assert_holds(e: &Engine, model: &BTreeMap<Vec<u8>, Vec<u8>>, keys: u32, what: &str) {
    for i in 0..keys {
        let k = format!("key{i}").into_bytes();
        assert_eq!(e.get(&k), model.get(&k).cloned(), "{what}: key{i}");
    }
    assert_eq!(e.len(), model.len() as u64, "{what}: key count");
}

#[test]
fn checkpoint_opens_as_the_store_was_whatever_happens_after() {
    const KEYS: u32 = 300;
    let live_dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let e = Engine::open(live_dir.path(), options()).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..3000u32 {
        let k = format!("key{}", i % KEYS).into_bytes();
        if i % 11 == 5 {
            e.delete(&k).unwrap();
            model.remove(&k);
        } else {
            let v = format!("v{i}-{}", "x".repeat((i % 90) as usize)).into_bytes();
            e.put(&k, &v, 0).unwrap();
            model.insert(k, v);
        }
    }
    let dest = backups.path().join("cp1");
    let report = e.checkpoint(&dest).unwrap();
    assert_eq!(report.dir, dest);
    assert!(report.segments > 2, "{report:?}");
    // The active segment is always copied; the sealed ones linked (one file system here).
    assert_eq!(report.segments_copied, 1, "{report:?}");
    assert!(!backups.path().join("cp1.partial").exists());
    let at_checkpoint = model.clone();

    // The live store moves on: overwrites, deletes, then compaction deletes old segments.
    for i in 0..KEYS {
        let k = format!("key{i}").into_bytes();
        if i % 3 == 0 {
            e.delete(&k).unwrap();
            model.remove(&k);
        } else {
            e.put(&k, b"after", 0).unwrap();
            model.insert(k, b"after".to_vec());
        }
    }
    let compacted = e.compact_now().unwrap();
    assert!(compacted.segments_in > 0, "{compacted:?}");
    assert_holds(&e, &model, KEYS, "live store");
    e.close().unwrap();

    let restored = backups.path().join("restored");
    copy_dir(&dest, &restored);
    let r = Engine::open(&restored, options()).unwrap();
    assert_holds(&r, &at_checkpoint, KEYS, "checkpoint");
    assert_eq!(r.stats().recovery.torn_bytes_truncated, 0);
    r.close().unwrap();
    // The live store reopens unchanged by all this.
    let e = Engine::open(live_dir.path(), options()).unwrap();
    assert_holds(&e, &model, KEYS, "live store reopened");
}

#[test]
fn checkpoint_under_concurrent_writes_and_compaction_holds_a_prefix_of_the_writes() {
    let live_dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let e = Arc::new(Engine::open(live_dir.path(), options()).unwrap());
    // One writer puts seq0, hot=0, seq1, hot=1, ... in order (the overwrites of `hot` give
    // compaction work); `done` counts the seq puts that returned.
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (e, done, stop) = (e.clone(), done.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) || i < 2000 {
                e.put(format!("seq{i}").as_bytes(), &i.to_le_bytes(), 0)
                    .unwrap();
                e.put(b"hot", &i.to_le_bytes(), 0).unwrap();
                i += 1;
                done.store(i, Ordering::Release);
            }
            i
        })
    };
    // Compaction runs over and over meanwhile, retiring segments the checkpoints link.
    let compactor = {
        let (e, stop) = (e.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0u64;
            while !stop.load(Ordering::Relaxed) {
                runs += e.compact_now().unwrap().segments_in;
            }
            runs
        })
    };
    // Checkpoints while it writes.
    let mut taken = Vec::new();
    for n in 0..4 {
        while done.load(Ordering::Acquire) < 500 * (n + 1) {
            std::thread::yield_now();
        }
        let before = done.load(Ordering::Acquire);
        let dest = backups.path().join(format!("cp{n}"));
        e.checkpoint(&dest).unwrap();
        taken.push((dest, before));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let compacted = compactor.join().unwrap();
    assert!(compacted > 0, "compaction never ran");
    for (n, (dest, before)) in taken.iter().enumerate() {
        let restored = backups.path().join(format!("restored{n}"));
        copy_dir(dest, &restored);
        let r = Engine::open(&restored, options()).unwrap();
        // seq keys plus `hot`.
        let held = r.len() - 1;
        assert!(
            held >= *before && held <= written,
            "checkpoint {n}: {held} keys; {before} puts had returned before it, {written} in all"
        );
        // A prefix: seq0..seq{held} all there, with their values, nothing after.
        for i in 0..held {
            let v = r.get(format!("seq{i}").as_bytes());
            assert_eq!(v, Some(i.to_le_bytes().to_vec()), "checkpoint {n}: seq{i}");
        }
        assert_eq!(
            r.get(format!("seq{held}").as_bytes()),
            None,
            "checkpoint {n}"
        );
        // The prefix ends after seq{held-1}, or after the hot put that followed it.
        let hot = u64::from_le_bytes(r.get(b"hot").unwrap().try_into().unwrap());
        assert!(
            hot + 2 == held || hot + 1 == held,
            "checkpoint {n}: hot={hot} with {held} seq keys"
        );
        r.close().unwrap();
    }
}

#[test]
fn checkpoint_refuses_an_existing_destination_and_replaces_a_partial_one() {
    let live_dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let e = Engine::open(live_dir.path(), options()).unwrap();
    e.put(b"k", b"v", 0).unwrap();

    let existing = backups.path().join("taken");
    std::fs::create_dir(&existing).unwrap();
    let err = e.checkpoint(&existing).unwrap_err().to_string();
    assert!(
        err.contains("taken") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 0);

    // What a checkpoint interrupted by a crash leaves: replaced, not mixed in.
    let dest = backups.path().join("cp");
    let partial = backups.path().join("cp.partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join("0000000099.seg"), b"junk").unwrap();
    e.checkpoint(&dest).unwrap();
    assert!(!partial.exists());
    assert!(!dest.join("0000000099.seg").exists());
    let restored = backups.path().join("restored");
    copy_dir(&dest, &restored);
    let r = Engine::open(&restored, options()).unwrap();
    assert_eq!(r.get(b"k"), Some(b"v".to_vec()));
}
