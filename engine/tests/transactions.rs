//! Transactions (`Engine::transaction`, a server's EXEC) land on disk all or nothing: a log cut
//! anywhere in a transaction that spans several segments recovers none of it, a whole one
//! recovers all of it; what its uncommitted writes made dead (FLUSHALL's old segments,
//! compaction's inputs) survives a crash before the commit; and the writes of another thread
//! meanwhile are not part of it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flin_engine::testing::{parse_segment_file_name, HINT_MAGIC};
use flin_engine::{Engine, Update};

use common::copy_dir;

/// Small segments: a transaction of a few KiB spans several.
fn open(dir: &Path) -> Engine {
    Engine::open(dir, common::small_segments(true)).unwrap()
}

type Contents = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;

/// Every live key of databases 0 to 2.
fn contents(e: &Engine) -> Contents {
    (0..3).map(|db| common::db_contents(e, db)).collect()
}

/// Keys in databases 0, 1 and 2, with short values.
fn write_before(e: &Engine) {
    for i in 0..20 {
        e.db(0)
            .put(format!("k{i}").as_bytes(), b"before", 0)
            .unwrap();
        e.db(2)
            .put(format!("two{i}").as_bytes(), b"before", 0)
            .unwrap();
    }
    e.db(1).put(b"gone", b"before", 0).unwrap();
}

/// One transaction of every kind of write, about 9 KiB: it rolls the log twice or more.
fn write_transaction(e: &Engine) {
    let big = vec![b'a'; 600];
    let t = e.transaction();
    for i in 0..20 {
        e.db(0).put(format!("k{i}").as_bytes(), &big, 0).unwrap();
    }
    e.db(1).delete(b"gone").unwrap();
    e.db(0)
        .update(b"k3", |cur| {
            assert_eq!(cur.map(|c| c.value.len()), Some(600), "sees its own write");
            (Update::SetExpiry { expire_at_ms: 0 }, ())
        })
        .unwrap();
    e.db(1)
        .update_many(&[b"m1", b"m2"], |_| {
            let put = Update::Put {
                value: b"batch",
                expire_at_ms: 0,
            };
            (vec![put, put], ())
        })
        .unwrap();
    e.db(2).clear().unwrap();
    e.db(2).put(b"after-flushdb", &big, 0).unwrap();
    let token = t.commit().unwrap();
    assert!(
        token.is_some(),
        "a transaction that wrote has a commit record"
    );
}

/// The segment files of `dir` by id.
fn segments(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let id = parse_segment_file_name(p.file_name()?.to_str()?)?;
            Some((id, p))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_transaction_cut_anywhere_is_recovered_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write_before(&e);
    let before = contents(&e);
    e.close().unwrap();
    let last_before = segments(dir.path()).last().unwrap().0;
    let e = open(dir.path());
    write_transaction(&e);
    let after = contents(&e);
    e.close().unwrap();
    assert_ne!(before, after);
    let written: Vec<(u32, PathBuf)> = segments(dir.path())
        .into_iter()
        .filter(|(id, _)| *id > last_before)
        .collect();
    assert!(
        written.len() >= 3,
        "the transaction spans segments: {written:?}"
    );

    let scratch = tempfile::tempdir().unwrap();
    let (mut whole, mut none) = (0, 0);
    for (n, (id, path)) in written.iter().enumerate() {
        let len = std::fs::metadata(path).unwrap().len();
        // Every cut point of the segment's records, in steps that land inside headers, keys,
        // values and on record boundaries alike.
        for cut in (32..=len).step_by(37).chain([len]) {
            let copy = scratch.path().join(format!("{id}-{cut}"));
            copy_dir(dir.path(), &copy);
            // A crash here: the segment ends at `cut`, and the later ones never existed.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(copy.join(path.file_name().unwrap()))
                .unwrap();
            f.set_len(cut).unwrap();
            for (later, p) in &written[n..] {
                if *later > *id {
                    std::fs::remove_file(copy.join(p.file_name().unwrap())).unwrap();
                }
                let _ = std::fs::remove_file(copy.join(format!("{later:010}.hint")));
            }
            let e = open(&copy);
            let got = contents(&e);
            if got == after {
                whole += 1;
            } else {
                assert_eq!(got, before, "segment {id} cut at {cut}: half a transaction");
                none += 1;
            }
            drop(e);
            std::fs::remove_dir_all(&copy).unwrap();
        }
    }
    assert!(whole > 0 && none > 10, "whole {whole}, none {none}");
    // Whole again from the untouched directory, from hints and from scans.
    let e = open(dir.path());
    assert_eq!(contents(&e), after);
    drop(e);
    for (id, _) in segments(dir.path()) {
        let _ = std::fs::remove_file(dir.path().join(format!("{id:010}.hint")));
    }
    let e = open(dir.path());
    assert_eq!(contents(&e), after);
    assert_eq!(e.stats().recovery.uncommitted_txn_records, 0);
}

#[test]
fn a_crash_before_the_commit_keeps_what_the_transaction_made_dead() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write_before(&e);
    // Old segments with dead records, for compaction.
    for i in 0..20 {
        e.db(2)
            .put(format!("two{i}").as_bytes(), b"before", 0)
            .unwrap();
    }
    let before = contents(&e);
    // Sealed: the transaction's records go to another segment.
    e.close().unwrap();
    let e = open(dir.path());
    let t = e.transaction();
    // Twice: the segments the transaction sealed hold dead records, so compaction would
    // take them (and copy its live records, which must not be).
    for round in 0..2 {
        for i in 0..20 {
            e.db(0)
                .put(format!("k{i}").as_bytes(), &[b'x' + round; 300], 0)
                .unwrap();
        }
    }
    // Compaction while the transaction is open: the old versions of k0..k19 are dead now,
    // but must outlive a crash before the commit.
    let run = e.compact_now().unwrap();
    assert!(run.segments_in > 0, "{run:?}");
    e.clear().unwrap();
    e.db(1).put(b"after-flushall", b"x", 0).unwrap();
    assert_eq!(contents(&e)[0].len(), 0);
    // A crash here: the files as they are (the page cache survives a killed process).
    let crashed = dir.path().join("crashed");
    copy_dir(dir.path(), &crashed);
    let token = t.commit().unwrap();
    e.wait_durable(token.unwrap()).unwrap();
    let after = contents(&e);
    drop(e);
    let e = open(&crashed);
    assert_eq!(contents(&e), before, "none of the transaction");
    assert!(e.stats().recovery.uncommitted_txn_records > 20);
    drop(e);
    let e = open(dir.path());
    assert_eq!(contents(&e), after, "all of it");
    assert_eq!(after[1].len(), 1);
}

#[test]
fn another_threads_writes_during_a_transaction_are_not_part_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let t = e.transaction();
    e.put(b"in", b"1", 0).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| e.put(b"outside", b"1", 0).unwrap());
    });
    let crashed = dir.path().join("crashed");
    copy_dir(dir.path(), &crashed);
    t.commit().unwrap();
    // A transaction that writes nothing has no commit record.
    assert_eq!(e.transaction().commit().unwrap(), None);
    // Transactions do not nest: a second on the same thread is a bug, told at once.
    let outer = e.transaction();
    let nested = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _inner = e.transaction();
    }));
    assert!(nested.is_err());
    outer.commit().unwrap();
    drop(e);
    let e = open(&crashed);
    assert_eq!(e.get(b"outside"), Some(b"1".to_vec()));
    assert_eq!(e.get(b"in"), None);
    drop(e);
    let e = open(dir.path());
    assert_eq!(e.get(b"in"), Some(b"1".to_vec()));
}

#[test]
fn a_directory_of_the_previous_format_opens() {
    use flin_engine::testing::{put_u32, SH_CRC, SH_VERSION};
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    write_before(&e);
    let want = contents(&e);
    e.close().unwrap();
    // Version 2 segments are version 3 ones without transactions: relabel them.
    for (_, path) in segments(dir.path()) {
        let mut b = std::fs::read(&path).unwrap();
        put_u32(&mut b, SH_VERSION, 2);
        let crc = crc32fast::hash(&b[..SH_CRC]);
        put_u32(&mut b, SH_CRC, crc);
        std::fs::write(&path, b).unwrap();
    }
    let hint_seen = std::fs::read_dir(dir.path()).unwrap().any(|e| {
        let p = e.unwrap().path();
        p.extension().is_some_and(|x| x == "hint")
            && std::fs::read(&p).unwrap().starts_with(&HINT_MAGIC)
    });
    assert!(hint_seen, "hints are read too");
    let e = open(dir.path());
    assert_eq!(contents(&e), want);
}
