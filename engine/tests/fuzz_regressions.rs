//! Reproducers of what the fuzz targets in `fuzz/` found, one test each, so a fixed bug stays
//! fixed without running a fuzzer. A test marked `` fails today: it names
//! an engine bug not fixed yet (the fuzzers skip such inputs, see `fuzz/src/known_bugs.rs`);
//! remove the `ignore` with the fix.
//!
//! This test binary refuses any single allocation above [`ALLOCATION_MAX_BYTES`] (the process
//! aborts saying so), as the fuzzers do: no length or id read from disk may size an allocation.

mod common;

use std::path::Path;

use flin_engine::testing::{
    segment_file_name, RecordHeader, SegmentHeader, SegmentKind, FLAG_BATCH_NEXT, FLAG_TOMBSTONE,
    SEGMENT_HEADER_LEN, SEQ_MAX,
};
use flin_engine::{Engine, Error, Fsync, Options, Update};

// The fuzz targets' allocator, compiled into this test: the same rule for both.
#[path = "../../fuzz/src/alloc.rs"]
#[allow(dead_code)]
mod alloc;
use alloc::CappedAlloc;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

fn options(repair: bool) -> Options {
    Options {
        repair,
        ..common::options(Fsync::Never, 4096)
    }
}

/// A segment file as the engine writes it: header, then `(seq, key, value)` records.
fn segment(id: u32, kind: SegmentKind, records: &[(u64, &[u8], &[u8])]) -> Vec<u8> {
    let flagged: Vec<_> = records.iter().map(|&(s, k, v)| (s, 0, k, v)).collect();
    segment_with_flags(id, kind, &flagged)
}

/// A segment file of `(seq, flags, key, value)` records, each with both checksums right.
fn segment_with_flags(id: u32, kind: SegmentKind, records: &[(u64, u8, &[u8], &[u8])]) -> Vec<u8> {
    let mut b = SegmentHeader {
        kind,
        segment_id: id,
    }
    .encode()
    .to_vec();
    for &(seq, flags, key, value) in records {
        let h = RecordHeader {
            seq,
            expire_at_ms: 0,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            flags,
            ns: 0,
        };
        let at = b.len();
        b.resize(at + h.record_len(), 0);
        h.encode_record(key, value, &mut b[at..]);
    }
    b
}

fn write_segment(dir: &Path, id: u32, kind: SegmentKind, records: &[(u64, &[u8], &[u8])]) {
    std::fs::write(dir.join(segment_file_name(id)), segment(id, kind, records)).unwrap();
}

/// `open` either refuses the directory with an error about its files, or returns a store that
/// serves `expected`, takes a write, and still holds both after a reopen.
fn opens_cleanly_or_refuses(dir: &Path, expected: &[(&[u8], &[u8])]) {
    for repair in [false, true] {
        let engine = match Engine::open(dir, options(repair)) {
            Ok(e) => e,
            Err(e) => {
                assert!(
                    matches!(e, Error::Corrupt { .. } | Error::Io { .. }),
                    "unexpected error: {e:?}"
                );
                continue;
            }
        };
        // Repair may quarantine records it finds invalid (reported); it never serves them wrong.
        let quarantined = engine.stats().recovery.quarantined_bytes > 0;
        for (k, v) in expected {
            let got = engine.get(k);
            assert!(
                got.as_deref() == Some(*v) || (repair && quarantined && got.is_none()),
                "{:?} served {got:?}",
                String::from_utf8_lossy(k)
            );
        }
        let expected: Vec<_> = expected
            .iter()
            .filter(|(k, _)| engine.get(k).is_some())
            .copied()
            .collect();
        engine.put(b"after", b"open", 0).unwrap();
        engine.close().unwrap();
        let engine = Engine::open(dir, options(repair)).unwrap();
        for (k, v) in expected {
            assert_eq!(engine.get(k).as_deref(), Some(v));
        }
        assert_eq!(
            engine.get(b"after").as_deref(),
            Some(&b"open"[..]),
            "a write after open was lost at reopen"
        );
        engine.close().unwrap();
    }
}

/// Found by `engine_open`: recovery takes the next segment id as the highest id found plus one,
/// and `Engine::open` the one after as plain `u32` additions (recovery.rs `f.id + 1`,
/// engine.rs `next_id + 1`; `allocate_segment_id` wraps too). A segment named `4294967295.seg`
/// or `4294967294.seg` panics with "attempt to add with overflow" in a debug build. A release
/// build wraps the active segment's id to 0, then asks for a 32 GB registry spanning ids 0 to
/// 4294967295 (see the next test) and aborts; were that fixed, the active segment would be
/// `0000000000.seg`, a name the next open ignores, losing every write made after this open.
#[test]

fn segment_ids_near_u32_max_do_not_overflow() {
    for id in [u32::MAX, u32::MAX - 1] {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), id, SegmentKind::Log, &[(1, b"k", b"v")]);
        opens_cleanly_or_refuses(dir.path(), &[(b"k", b"v")]);
    }
}

/// Found by `engine_open`: the segment registry (`SegmentMap` in engine.rs) holds one slot per
/// id from the lowest to the highest segment id, sized by `from_segments` as
/// `vec![None; last - first + 1]`. Two segment files with ids 1 and 4,000,000,000 make `open`
/// ask for 32 GB. The ids come from file names and headers, which are untrusted input; a map
/// keyed by id (or a sorted `Vec` searched by id) does not care how far apart they are.
#[test]

fn far_apart_segment_ids_do_not_size_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, SegmentKind::Log, &[(1, b"a", b"1")]);
    write_segment(
        dir.path(),
        4_000_000_000,
        SegmentKind::Log,
        &[(2, b"b", b"2")],
    );
    opens_cleanly_or_refuses(dir.path(), &[(b"a", b"1"), (b"b", b"2")]);
}

/// Found by `engine_open`: recovery sets the next sequence number to the highest one found plus
/// one (recovery.rs `max_seq + 1`). A record whose checksums verify but whose sequence number
/// is `u64::MAX` panics with "attempt to add with overflow" in a debug build. A release build
/// wraps to 0: the log then writes records with sequence number 0, which recovery rejects
/// ("sequence number 0"), so every write after this open is silently cut at the next open as
/// a torn tail. Recovery could refuse such a record as corrupt (no store writes 2^64 records).
#[test]

fn sequence_number_u64_max_does_not_overflow() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, SegmentKind::Log, &[(u64::MAX, b"k", b"v")]);
    opens_cleanly_or_refuses(dir.path(), &[(b"k", b"v")]);
}

/// Found by `engine_damage`: compaction drops a key's older record because the index points at
/// a newer one, and deletes the old segment, without first making the log durable up to that
/// newer record. A power cut then loses both: `k = v1` was written and synced long before, `k =
/// v2` was still only in the page cache, and after the restart `k` is absent, a value that `k`
/// never had. Under `Fsync::EverySec` the window is up to a second after every overwrite; under
/// `Fsync::Always` it is the instant between the append and its group commit, in which an
/// acknowledged write (v1) can be lost although only an unacknowledged one (v2) was in flight.
/// Syncing the log (up to its last sequence number) before retiring a run's inputs closes it.
///
/// The test checks the ordering the fix relies on: when compaction has removed v1's segment,
/// the log is durable at least up to v2 (a power cut can then only lose writes after v2).
#[test]
fn compaction_does_not_drop_the_synced_value_of_an_unsynced_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options(false)).unwrap();
    engine.put(b"k", b"v1", 0).unwrap();
    engine.close().unwrap(); // v1 is on disk; its segment is sealed.
    let engine = Engine::open(dir.path(), options(false)).unwrap();
    let v2 = engine.put(b"k", b"v2", 0).unwrap(); // v2 is in the active segment, not synced.
    let report = engine.compact_now().unwrap(); // drops v1 and retires its segment
    assert!(report.segments_in >= 1, "{report:?}");
    assert!(
        engine.stats().durable_seq >= v2.seq(),
        "v1's segment was retired while v2 (seq {}) was not durable (durable_seq {})",
        v2.seq(),
        engine.stats().durable_seq
    );
    assert_eq!(engine.get(b"k").as_deref(), Some(&b"v2"[..]));
}

/// Found by `engine_open` (CI, 2026-11-30): a record whose checksums verify may carry the
/// highest sequence number recovery accepts, `SEQ_MAX`. The log then numbered the next write
/// `SEQ_MAX + 1` and acknowledged it; the next open rejected that record as damage, so the
/// acknowledged write was gone (repair quarantined it). The log now refuses a write it could
/// not number within the format, before appending anything, single or batch.
#[test]
fn writes_past_the_highest_sequence_number_are_refused_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(
        dir.path(),
        1,
        SegmentKind::Log,
        &[(SEQ_MAX - 2, b"k", b"v")],
    );
    let engine = Engine::open(dir.path(), options(false)).unwrap();
    // Two numbers are left: a two-key batch fits, then nothing does.
    let (_, token) = engine
        .update_many(&[b"a", b"b"], |_| {
            let put = Update::Put {
                value: b"1",
                expire_at_ms: 0,
            };
            (vec![put, put], ())
        })
        .unwrap();
    assert!(token.is_some());
    assert_eq!(engine.stats().last_seq, SEQ_MAX);
    let refused = engine.put(b"c", b"2", 0).unwrap_err();
    assert!(
        matches!(refused, Error::SeqExhausted { last_seq } if last_seq == SEQ_MAX),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("new data directory"),
        "{refused}"
    );
    assert!(matches!(
        engine.delete(b"k"),
        Err(Error::SeqExhausted { .. })
    ));
    engine.close().unwrap();

    for repair in [false, true] {
        let engine = Engine::open(dir.path(), options(repair)).unwrap();
        assert_eq!(engine.stats().recovery.quarantined_bytes, 0);
        for (k, v) in [(&b"k"[..], &b"v"[..]), (b"a", b"1"), (b"b", b"1")] {
            assert_eq!(engine.get(k).as_deref(), Some(v), "{k:?} after reopen");
        }
        assert_eq!(engine.get(b"c"), None);
        engine.close().unwrap();
    }
}

/// Found by `engine_open`: repair quarantined damage by skipping it, but left the bytes in the
/// segment, and the hint file written for the segment later listed every record its own scan
/// verified. Here the newest log segment holds `a` flagged as the first record of an atomic
/// batch, then a record that breaks the format (a tombstone with a value), then garbage.
/// Repair drops `a` with the damage (its batch never completed), yet the hint written at close
/// listed `a`, and the next open, loading the hint, served it: a write that never completed
/// came back. Repair now rewrites the segment without the damage, and the hint writer refuses
/// a segment with damage in it.
#[test]
fn repair_does_not_bring_back_an_incomplete_batch_through_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = segment_with_flags(
        4,
        SegmentKind::Log,
        &[
            (1, FLAG_BATCH_NEXT, b"a", b"1"),
            (2, FLAG_TOMBSTONE, b"b", b"a tombstone has no value"),
        ],
    );
    bytes.extend_from_slice(&[31, 31, 31, 27, 255, 0]);
    std::fs::write(dir.path().join(segment_file_name(4)), bytes).unwrap();
    assert!(matches!(
        Engine::open(dir.path(), options(false)),
        Err(Error::Corrupt { .. })
    ));

    let engine = Engine::open(dir.path(), options(true)).unwrap();
    assert!(engine.stats().recovery.quarantined_bytes > 0);
    assert_eq!(engine.get(b"a"), None);
    engine.put(b"after", b"open", 0).unwrap();
    engine.close().unwrap();

    // Repaired for good: a plain open works, from hints or from the segments alike.
    for hints in [true, false] {
        let engine = Engine::open(
            dir.path(),
            Options {
                hints,
                ..options(false)
            },
        )
        .unwrap();
        assert_eq!(engine.get(b"a"), None, "hints: {hints}");
        assert_eq!(engine.get(b"after").as_deref(), Some(&b"open"[..]));
        assert_eq!(engine.len(), 1);
        engine.close().unwrap();
    }
}

/// The same repair in a sealed segment: damage between two valid records. The records on both
/// sides stay, the damage goes to `quarantine/`, and the store opens without repair afterwards
/// (before, the damaged bytes stayed in the segment: every open without a hint needed repair).
#[test]
fn repair_removes_damage_from_a_sealed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut sealed = segment(1, SegmentKind::Log, &[(1, b"k1", b"v1")]);
    let damage_at = sealed.len();
    sealed.extend_from_slice(&[0xAB; 50]);
    let second = segment(1, SegmentKind::Log, &[(2, b"k2", b"v2")]);
    sealed.extend_from_slice(&second[SEGMENT_HEADER_LEN..]);
    std::fs::write(dir.path().join(segment_file_name(1)), sealed).unwrap();
    write_segment(dir.path(), 2, SegmentKind::Log, &[(3, b"k3", b"v3")]);

    let no_hints = |repair| Options {
        hints: false,
        ..options(repair)
    };
    match Engine::open(dir.path(), no_hints(false)) {
        Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, damage_at as u64),
        Err(e) => panic!("expected the damage reported, got {e}"),
        Ok(_) => panic!("a segment with damage opened without repair"),
    }
    let engine = Engine::open(dir.path(), no_hints(true)).unwrap();
    assert_eq!(engine.stats().recovery.quarantined_bytes, 50);
    engine.close().unwrap();
    let quarantined: Vec<_> = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(quarantined, vec![vec![0xAB; 50]]);

    let engine = Engine::open(dir.path(), no_hints(false)).unwrap();
    for (k, v) in [(b"k1", b"v1"), (b"k2", b"v2"), (b"k3", b"v3")] {
        assert_eq!(engine.get(k).as_deref(), Some(&v[..]));
    }
    assert_eq!(engine.stats().recovery.quarantined_bytes, 0);
}
