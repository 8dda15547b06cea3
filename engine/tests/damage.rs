//! Damaged files at open: a torn tail at every byte of the last record is cut and reported, a
//! flipped bit in a sealed segment fails `open` naming the file and offset (or is quarantined
//! with repair), and a second opener of a locked directory gets a clear error. Guards against
//! serving wrong data or silently dropping good records after a crash or disk damage.

mod common;

use std::path::{Path, PathBuf};

use flin_engine::{Engine, Error, Fsync, Options};

fn options() -> Options {
    Options {
        // Scan every segment at open; the hint tests below turn hints on.
        hints: false,
        ..common::options(Fsync::Never, 4096)
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "v".repeat((i % 50) as usize)).into_bytes()
}

/// Writes `n` keys and closes; returns the dir.
fn fill(n: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), with_hints()).unwrap();
    for i in 0..n {
        e.put(format!("k{i}").as_bytes(), &value(i), 0).unwrap();
    }
    e.close().unwrap();
    dir
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record_is_cut() {
    let src = fill(30);
    let segs = segments(src.path());
    let newest = segs.last().unwrap().clone();
    let full = std::fs::read(&newest).unwrap();
    // The last record is k29: header 36 + key 3 + value.
    let last_len = 36 + 3 + value(29).len();
    let last_start = full.len() - last_len;
    for cut in last_start + 1..full.len() {
        let dir = tempfile::tempdir().unwrap();
        for s in &segs {
            std::fs::copy(s, dir.path().join(s.file_name().unwrap())).unwrap();
        }
        let name = newest.file_name().unwrap();
        std::fs::write(dir.path().join(name), &full[..cut]).unwrap();
        let e = Engine::open(dir.path(), options()).unwrap();
        assert_eq!(
            e.get(b"k29"),
            None,
            "cut at {cut}: torn record must not be served"
        );
        for i in 0..29 {
            assert_eq!(
                e.get(format!("k{i}").as_bytes()),
                Some(value(i)),
                "cut at {cut}"
            );
        }
        assert_eq!(
            e.stats().recovery.torn_bytes_truncated,
            (cut - last_start) as u64
        );
    }
}

#[test]
fn bit_flip_in_a_sealed_segment_fails_open_with_file_and_offset() {
    let dir = fill(200);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "need sealed segments, got {}", segs.len());
    let victim = &segs[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let at = 32 + 36 + 1; // inside the first record's key
    bytes[at] ^= 0x04;
    std::fs::write(victim, &bytes).unwrap();
    match Engine::open(dir.path(), options()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!(&path, victim);
            assert_eq!(offset, 32);
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("open must refuse a corrupt sealed segment"),
    }
    let msg = Engine::open(dir.path(), options())
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains(&victim.display().to_string()) && msg.contains("offset 32"),
        "{msg}"
    );

    // With repair: the damaged record is quarantined, everything else is served.
    let e = Engine::open(
        dir.path(),
        Options {
            repair: true,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(e.get(b"k0"), None);
    for i in 1..200 {
        assert_eq!(e.get(format!("k{i}").as_bytes()), Some(value(i)), "k{i}");
    }
    assert!(e.stats().recovery.quarantined_bytes > 0);
    assert!(dir.path().join("quarantine").read_dir().unwrap().count() >= 1);
}

#[test]
fn a_flipped_bit_never_yields_a_wrong_value() {
    // Every byte of a small sealed segment, one flip at a time: open either fails or serves
    // exactly the original values for every key it serves.
    let src = fill(60);
    let segs = segments(src.path());
    let victim = segs[0].clone();
    let original = std::fs::read(&victim).unwrap();
    for at in (0..original.len()).step_by(7) {
        let dir = tempfile::tempdir().unwrap();
        for s in &segs {
            std::fs::copy(s, dir.path().join(s.file_name().unwrap())).unwrap();
        }
        let mut bytes = original.clone();
        bytes[at] ^= 0x20;
        std::fs::write(dir.path().join(victim.file_name().unwrap()), &bytes).unwrap();
        for opts in [options(), with_hints()] {
            if let Ok(e) = Engine::open(dir.path(), opts) {
                for i in 0..60 {
                    if let Some(v) = e.get(format!("k{i}").as_bytes()) {
                        assert_eq!(v, value(i), "flip at {at} served a wrong value for k{i}");
                    }
                }
            }
        }
    }
}

#[test]
fn second_opener_of_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Engine::open(dir.path(), options()).unwrap();
    match Engine::open(dir.path(), options()) {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("second open must fail"),
    }
}

#[test]
fn oversized_keys_and_values_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    let big_key = vec![b'k'; flin_engine::KEY_LEN_MAX + 1];
    assert!(matches!(
        e.put(&big_key, b"v", 0),
        Err(Error::KeyTooLarge { .. })
    ));
    let max_key = vec![b'k'; flin_engine::KEY_LEN_MAX];
    e.put(&max_key, b"v", 0).unwrap();
    assert_eq!(e.get(&max_key).as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_record_larger_than_the_segment_size_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    let big = vec![b'x'; 100_000];
    e.put(b"big", &big, 0).unwrap();
    e.put(b"small", b"s", 0).unwrap();
    assert_eq!(e.get(b"big"), Some(big.clone()));
    e.close().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(e.get(b"big"), Some(big));
    assert_eq!(e.get(b"small").as_deref(), Some(&b"s"[..]));
}

fn hints(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hint"))
        .collect();
    v.sort();
    v
}

fn with_hints() -> Options {
    Options {
        hints: true,
        ..options()
    }
}

#[test]
fn open_uses_hints_and_falls_back_when_a_hint_is_damaged() {
    let dir = fill(300);
    let hs = hints(dir.path());
    assert!(
        hs.len() >= 2,
        "close writes hints for sealed segments: {hs:?}"
    );
    {
        let e = Engine::open(dir.path(), with_hints()).unwrap();
        assert!(e.stats().recovery.segments_from_hints >= 2);
        for i in 0..300 {
            assert_eq!(e.get(format!("k{i}").as_bytes()), Some(value(i)));
        }
    }
    // Damage one hint (flip), truncate another: both fall back to scanning, data intact.
    let hs = hints(dir.path());
    let mut b = std::fs::read(&hs[0]).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(&hs[0], &b).unwrap();
    let b = std::fs::read(&hs[1]).unwrap();
    std::fs::write(&hs[1], &b[..b.len() - 9]).unwrap();
    let before = hints(dir.path()).len() as u64;
    let e = Engine::open(dir.path(), with_hints()).unwrap();
    assert!(e.stats().recovery.segments_from_hints <= before - 2);
    for i in 0..300 {
        assert_eq!(e.get(format!("k{i}").as_bytes()), Some(value(i)), "k{i}");
    }
}

#[test]
fn a_damaged_value_behind_a_hint_is_never_served() {
    let dir = fill(300);
    let segs = segments(dir.path());
    // The first segment is sealed and hinted; flip a byte in its first value (key k0).
    let mut b = std::fs::read(&segs[0]).unwrap();
    b[32 + 36 + 2 + 3] ^= 0x08;
    std::fs::write(&segs[0], &b).unwrap();
    let e = Engine::open(
        dir.path(),
        Options {
            compaction: false,
            ..with_hints()
        },
    )
    .unwrap();
    assert!(
        e.stats().recovery.segments_from_hints >= 1,
        "opened from hints"
    );
    assert_eq!(
        e.get(b"k0"),
        None,
        "a damaged record reads as absent, never as a wrong value"
    );
    assert!(e.stats().corrupt_reads >= 1);
    for i in 1..300 {
        assert_eq!(e.get(format!("k{i}").as_bytes()), Some(value(i)), "k{i}");
    }
}

/// A sealed segment damaged while the store is open (a bad disk) gets no hint file, so the
/// next open scans it and reports the damage instead of trusting a hint that skips it; and
/// the segments after it still get their hints.
#[test]
fn a_segment_damaged_while_open_gets_no_hint_and_later_ones_do() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options {
        // Hints are written at close only: no maintenance cycle runs during the test.
        compaction_interval: std::time::Duration::from_secs(3600),
        ..with_hints()
    };
    let e = Engine::open(dir.path(), opts()).unwrap();
    for i in 0..300 {
        e.put(format!("k{i}").as_bytes(), &value(i), 0).unwrap();
    }
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    // A byte in the middle of the first record's value: its checksum fails, records follow.
    let mut b = std::fs::read(&segs[0]).unwrap();
    b[32 + 36 + 4] ^= 0x40;
    std::fs::write(&segs[0], &b).unwrap();
    e.close().unwrap();

    let hinted: Vec<PathBuf> = hints(dir.path());
    assert!(
        !hinted.contains(&segs[0].with_extension("hint")),
        "damaged segment got a hint: {hinted:?}"
    );
    assert!(
        hinted.contains(&segs[1].with_extension("hint")),
        "segments after the damaged one lost their hints: {hinted:?}"
    );
    match Engine::open(dir.path(), opts()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, segs[0]),
        Err(other) => panic!("expected the damage reported, got {other}"),
        Ok(_) => panic!("a damaged segment opened without repair"),
    }
}
