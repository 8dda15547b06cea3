//! Databases (SELECT, FLUSHDB, SWAPDB): keys stay in their database through reopen (scans and
//! hints), compaction and checkpoints; a namespace flush voids only its database, for good;
//! a swap is durable; a version 1 directory opens with its keys in database 0, and a
//! directory from a newer version is refused naming both versions.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use flin_engine::testing::{
    put_u32, put_u64, segment_file_name, RecordHeader, SegmentHeader, SegmentKind, HINT_MAGIC,
    SEGMENT_HEADER_LEN,
};
use flin_engine::{Engine, Error, Options, Update};

fn options(hints: bool) -> Options {
    common::small_segments(hints)
}

fn open(dir: &Path, hints: bool) -> Engine {
    Engine::open(dir, options(hints)).unwrap()
}

/// Every live key of database `db`, with its value.
fn contents(e: &Engine, db: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    common::db_contents(e, db)
}

/// Database `db` holds `k<i>` = `<tag><i>` for `i` in `keys`, and nothing else.
fn expect(e: &Engine, db: u32, tag: &str, keys: std::ops::Range<u32>) {
    let want: BTreeMap<Vec<u8>, Vec<u8>> = keys
        .clone()
        .map(|i| {
            (
                format!("k{i}").into_bytes(),
                format!("{tag}{i}").into_bytes(),
            )
        })
        .collect();
    assert_eq!(contents(e, db), want, "database {db}");
    assert_eq!(e.db(db).len(), keys.len() as u64, "database {db} size");
    for i in keys {
        let k = format!("k{i}");
        assert_eq!(
            e.db(db).get(k.as_bytes()),
            Some(format!("{tag}{i}").into_bytes())
        );
    }
}

fn fill(e: &Engine) {
    for i in 0..200u32 {
        let k = format!("k{i}");
        e.db(0)
            .put(k.as_bytes(), format!("zero{i}").as_bytes(), 0)
            .unwrap();
        if i < 100 {
            e.db(1)
                .put(k.as_bytes(), format!("one{i}").as_bytes(), 0)
                .unwrap();
        }
        if i < 50 {
            e.db(15)
                .put(k.as_bytes(), format!("old{i}").as_bytes(), 0)
                .unwrap();
            e.db(15)
                .put(k.as_bytes(), format!("fifteen{i}").as_bytes(), 0)
                .unwrap();
        }
    }
}

fn expect_filled(e: &Engine) {
    expect(e, 0, "zero", 0..200);
    expect(e, 1, "one", 0..100);
    expect(e, 15, "fifteen", 0..50);
    assert!(e.db(2).is_empty());
    assert_eq!(e.database_sizes(), vec![(0, 200), (1, 100), (15, 50)]);
    assert_eq!(e.len(), 350);
}

#[test]
fn keys_stay_in_their_database_through_reopen_compaction_and_checkpoint() {
    for hints in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path(), hints);
        fill(&e);
        expect_filled(&e);
        // Deletes and batches stay in their database too.
        e.db(1).delete(b"k0").unwrap();
        assert_eq!(e.db(0).get(b"k0"), Some(b"zero0".to_vec()));
        e.db(1).put(b"k0", b"one0", 0).unwrap();
        e.db(1)
            .update_many(&[b"a", b"b"], |_| {
                (
                    vec![
                        Update::Put {
                            value: b"1",
                            expire_at_ms: 0,
                        },
                        Update::Put {
                            value: b"2",
                            expire_at_ms: 0,
                        },
                    ],
                    (),
                )
            })
            .unwrap();
        e.db(1)
            .update_many(&[b"a", b"b"], |_| {
                (vec![Update::Delete, Update::Delete], ())
            })
            .unwrap();
        assert!(!e.db(0).contains(b"a") && !e.db(1).contains(b"a"));
        e.sync().unwrap();
        drop(e);

        let e = open(dir.path(), hints);
        expect_filled(&e);
        e.compact_now().unwrap();
        expect_filled(&e);
        let cp = dir.path().join("cp");
        e.checkpoint(&cp).unwrap();
        drop(e);
        let e = open(dir.path(), hints);
        expect_filled(&e);
        drop(e);
        let e = open(&cp, hints);
        expect_filled(&e);
    }
}

#[test]
fn flushdb_voids_one_database_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), true);
    fill(&e);
    e.db(1).clear().unwrap();
    assert!(e.db(1).is_empty());
    assert_eq!(e.db(1).get(b"k3"), None);
    assert_eq!(e.db(1).random_key(|| 7), None);
    expect(&e, 0, "zero", 0..200);
    expect(&e, 15, "fifteen", 0..50);
    // Written after the flush: kept.
    e.db(1).put(b"k1", b"after", 0).unwrap();
    drop(e);
    for round in 0..3 {
        let e = open(dir.path(), true);
        assert_eq!(contents(&e, 1).len(), 1, "round {round}");
        assert_eq!(e.db(1).get(b"k1"), Some(b"after".to_vec()));
        assert_eq!(e.db(1).len(), 1);
        expect(&e, 0, "zero", 0..200);
        expect(&e, 15, "fifteen", 0..50);
        e.compact_now().unwrap();
        assert_eq!(e.db(1).get(b"k2"), None);
    }
    // FLUSHALL still empties every database.
    let e = open(dir.path(), true);
    e.clear().unwrap();
    assert_eq!(e.database_sizes(), vec![]);
    drop(e);
    let e = open(dir.path(), true);
    assert_eq!(e.len(), 0);
}

/// FLUSHDB when no other database holds a key takes FLUSHALL's way: no record is read to
/// tell its namespace (on a store larger than memory that was a disk read per key, with
/// every shard locked), and the old segments go at once.
#[test]
fn flushdb_of_the_only_database_in_use_retires_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), true);
    // Database 2's namespace is not 2 after the swap: the check is by namespace.
    e.swap_databases(2, 9).unwrap();
    for i in 0..300 {
        e.db(2)
            .put(format!("k{i}").as_bytes(), &[b'v'; 100], 0)
            .unwrap();
    }
    let before = e.stats();
    assert!(before.segments > 5, "{}", before.segments);
    e.db(2).clear().unwrap();
    let after = e.stats();
    assert!(
        after.segments <= 2,
        "old segments retired: {}",
        after.segments
    );
    assert!(after.disk_bytes < before.disk_bytes / 4);
    assert!(e.db(2).is_empty());
    assert_eq!(e.db(2).get(b"k7"), None);
    e.db(2).put(b"k7", b"after", 0).unwrap();
    e.db(0).put(b"zero", b"0", 0).unwrap();
    drop(e);
    let e = open(dir.path(), true);
    assert_eq!(e.db(2).len(), 1);
    assert_eq!(e.db(2).get(b"k7"), Some(b"after".to_vec()));
    assert_eq!(e.db(0).get(b"zero"), Some(b"0".to_vec()));
    // With another database in use, only the flushed one's keys go.
    e.db(2).clear().unwrap();
    assert_eq!(e.db(0).get(b"zero"), Some(b"0".to_vec()));
    assert!(e.db(2).is_empty());
}

#[test]
fn swapdb_is_durable_and_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), true);
    fill(&e);
    e.swap_databases(0, 1).unwrap();
    expect(&e, 0, "one", 0..100);
    expect(&e, 1, "zero", 0..200);
    // Writes after the swap go to the database's new namespace.
    e.db(0).put(b"new", b"x", 0).unwrap();
    e.db(1).clear().unwrap();
    e.swap_databases(15, 3).unwrap();
    assert!(e.swap_databases(0, 16).is_err());
    let cp = dir.path().join("cp");
    e.checkpoint(&cp).unwrap();
    drop(e);
    for d in [dir.path(), cp.as_path()] {
        let e = open(d, true);
        assert_eq!(e.db(0).get(b"new"), Some(b"x".to_vec()));
        assert_eq!(e.db(0).len(), 101);
        assert!(e.db(1).is_empty());
        expect(&e, 3, "fifteen", 0..50);
        assert_eq!(e.database_sizes(), vec![(0, 101), (3, 50)]);
    }
    // Swapping back leaves the identity, and no map file.
    let e = open(dir.path(), true);
    e.swap_databases(0, 1).unwrap();
    e.swap_databases(1, 0).unwrap();
    e.swap_databases(3, 15).unwrap();
    e.swap_databases(15, 3).unwrap();
    assert!(dir
        .path()
        .join(flin_engine::testing::DATABASES_FILE)
        .exists());
}

#[test]
fn a_random_key_is_found_in_a_small_database() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), true);
    for i in 0..5000u32 {
        e.db(0).put(format!("k{i}").as_bytes(), b"v", 0).unwrap();
    }
    e.db(7).put(b"only", b"v", 0).unwrap();
    let mut x = 1u64;
    for _ in 0..20 {
        let got = e.db(7).random_key(|| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            x
        });
        assert_eq!(got, Some(b"only".to_vec()));
    }
}

/// A segment file in format version `version`: header, then `(seq, key, value)` records.
fn segment(version: u32, id: u32, kind: SegmentKind, records: &[(u64, &[u8], &[u8])]) -> Vec<u8> {
    let mut b = SegmentHeader {
        kind,
        segment_id: id,
    }
    .encode()
    .to_vec();
    put_u32(&mut b, 8, version);
    let crc = crc32fast::hash(&b[..28]);
    put_u32(&mut b, 28, crc);
    for &(seq, key, value) in records {
        let h = RecordHeader {
            seq,
            expire_at_ms: 0,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            flags: 0,
            ns: 0,
        };
        let at = b.len();
        b.resize(at + h.record_len(), 0);
        h.encode_record(key, value, &mut b[at..]);
    }
    b
}

/// A version 1 hint file (29-byte entries) for `records` as `segment` lays them out.
fn hint_v1(id: u32, segment_len: u64, records: &[(u64, &[u8], &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut off = SEGMENT_HEADER_LEN as u32;
    for &(seq, key, value) in records {
        body.extend_from_slice(&seq.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&off.to_le_bytes());
        body.extend_from_slice(&(value.len() as u32).to_le_bytes());
        body.extend_from_slice(&(key.len() as u32).to_le_bytes());
        body.push(0);
        body.extend_from_slice(key);
        off += 36 + key.len() as u32 + value.len() as u32;
    }
    let mut header = [0u8; 40];
    header[..8].copy_from_slice(&HINT_MAGIC);
    put_u32(&mut header, 8, 1);
    put_u32(&mut header, 12, id);
    put_u64(&mut header, 16, segment_len);
    put_u64(&mut header, 24, records.len() as u64);
    let crc = crc32fast::hash(&header[..36]);
    put_u32(&mut header, 36, crc);
    let mut b = header.to_vec();
    b.extend_from_slice(&body);
    b.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    b
}

#[test]
fn a_version_1_directory_opens_with_its_keys_in_database_0() {
    let dir = tempfile::tempdir().unwrap();
    let sealed: &[(u64, &[u8], &[u8])] = &[(1, b"a", b"1"), (2, b"b", b"2"), (3, b"a", b"3")];
    let seg1 = segment(1, 1, SegmentKind::Log, sealed);
    std::fs::write(dir.path().join(segment_file_name(1)), &seg1).unwrap();
    std::fs::write(
        dir.path().join("0000000001.hint"),
        hint_v1(1, seg1.len() as u64, sealed),
    )
    .unwrap();
    let newest: &[(u64, &[u8], &[u8])] = &[(4, b"c", b"4")];
    std::fs::write(
        dir.path().join(segment_file_name(2)),
        segment(1, 2, SegmentKind::Log, newest),
    )
    .unwrap();
    let e = open(dir.path(), true);
    assert_eq!(
        e.stats().recovery.segments_from_hints,
        1,
        "the version 1 hint is read"
    );
    assert_eq!(e.db(0).get(b"a"), Some(b"3".to_vec()));
    assert_eq!(e.db(0).get(b"b"), Some(b"2".to_vec()));
    assert_eq!(e.db(0).get(b"c"), Some(b"4".to_vec()));
    assert!(e.db(1).is_empty());
    assert_eq!(e.database_sizes(), vec![(0, 3)]);
    e.db(1).put(b"a", b"one", 0).unwrap();
    e.compact_now().unwrap();
    drop(e);
    let e = open(dir.path(), true);
    assert_eq!(e.db(0).get(b"a"), Some(b"3".to_vec()));
    assert_eq!(e.db(1).get(b"a"), Some(b"one".to_vec()));
}

#[test]
fn a_directory_from_a_newer_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let records: &[(u64, &[u8], &[u8])] = &[(1, b"a", b"1")];
    std::fs::write(
        dir.path().join(segment_file_name(1)),
        segment(4, 1, SegmentKind::Compacted, records),
    )
    .unwrap();
    std::fs::write(
        dir.path().join(segment_file_name(2)),
        segment(2, 2, SegmentKind::Log, &[(2, b"b", b"2")]),
    )
    .unwrap();
    let err = Engine::open(dir.path(), options(true))
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(matches!(err, Error::Corrupt { .. }), "{msg}");
    assert!(msg.contains("newer") && msg.contains("version 4"), "{msg}");
    assert!(msg.contains("to 3"), "{msg}");
}

#[test]
fn a_batch_across_databases_is_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), true);
    e.db(2).put(b"k", b"v", 0).unwrap();
    e.db(5).put(b"k", b"other", 0).unwrap();
    // MOVE k from 2 to 3: delete there, put here, atomically.
    let (seen, token) = e
        .update_many_across(&[(2, b"k"), (3, b"k"), (5, b"k")], true, |cur| {
            let seen: Vec<Option<Vec<u8>>> =
                cur.iter().map(|c| c.map(|c| c.value.to_vec())).collect();
            (
                vec![
                    Update::Delete,
                    Update::Put {
                        value: b"v",
                        expire_at_ms: 0,
                    },
                    Update::Keep,
                ],
                seen,
            )
        })
        .unwrap();
    assert!(token.is_some());
    assert_eq!(
        seen,
        vec![Some(b"v".to_vec()), None, Some(b"other".to_vec())]
    );
    assert_eq!(e.db(2).get(b"k"), None);
    assert_eq!(e.db(3).get(b"k"), Some(b"v".to_vec()));
    e.sync().unwrap();
    drop(e);
    let e = open(dir.path(), true);
    assert_eq!(e.database_sizes(), vec![(3, 1), (5, 1)]);
}

/// Waits (bounded) until the index holds `n` keys: the maintenance thread removing a retired
/// namespace's slots.
fn wait_for_len(e: &Engine, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while e.len() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "index still holds {} keys, not {n}",
            e.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// FLUSHDB beside other databases' keys moves the database to a fresh namespace instead of
/// reading every record's header with every shard locked; the old namespace's slots go in the
/// background, and everything holds through reopen, SWAPDB and compaction.
#[test]
fn flushdb_beside_other_databases_moves_to_a_fresh_namespace() {
    for hints in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path(), hints);
        fill(&e);
        e.evict_for_tests().unwrap();
        e.db(1).clear().unwrap();
        assert!(e.db(1).is_empty());
        assert_eq!(e.db(1).get(b"k3"), None);
        assert_eq!(e.db(1).random_key(|| 7), None);
        assert!(contents(&e, 1).is_empty());
        e.db(1).put(b"k1", b"after", 0).unwrap();
        wait_for_len(&e, 251);
        expect(&e, 0, "zero", 0..200);
        expect(&e, 15, "fifteen", 0..50);
        assert_eq!(e.database_sizes(), vec![(0, 200), (1, 1), (15, 50)]);
        // Again, and a swap: the fresh namespaces follow their databases.
        e.db(15).clear().unwrap();
        e.db(15).put(b"x", b"y", 0).unwrap();
        e.swap_databases(1, 15).unwrap();
        wait_for_len(&e, 202);
        drop(e);
        for round in 0..2 {
            let e = open(dir.path(), hints);
            assert_eq!(e.len(), 202, "round {round}");
            expect(&e, 0, "zero", 0..200);
            assert_eq!(e.db(15).get(b"k1"), Some(b"after".to_vec()));
            assert_eq!(e.db(1).get(b"x"), Some(b"y".to_vec()));
            assert_eq!(e.database_sizes(), vec![(0, 200), (1, 1), (15, 1)]);
            e.compact_now().unwrap();
        }
    }
}

/// A crash after FLUSHDB's flush records reached the disk but before the databases file
/// changed (here: the file removed again) leaves the database on its old namespace, which the
/// flush emptied; keys written to the fresh namespace meanwhile are leftovers that open
/// removes.
#[test]
fn a_flushdb_cut_before_the_databases_file_changed_still_empties_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), true);
    fill(&e);
    e.db(1).clear().unwrap();
    e.db(1).put(b"k1", b"after", 0).unwrap();
    e.sync().unwrap();
    drop(e);
    let map = dir.path().join("DATABASES");
    assert!(map.exists(), "database 1 moved to a fresh namespace");
    std::fs::remove_file(&map).unwrap();
    let e = open(dir.path(), true);
    assert!(e.db(1).is_empty());
    expect(&e, 0, "zero", 0..200);
    expect(&e, 15, "fifteen", 0..50);
    wait_for_len(&e, 250);
    assert_eq!(e.database_sizes(), vec![(0, 200), (15, 50)]);
}
