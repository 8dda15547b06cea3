//! Hostile data directories: `Engine::open`, with and without repair, returns the store or a
//! clear error; it never panics, hangs or sizes an allocation from the bytes it reads. A store
//! it returns serves through `get` everything `scan` lists, takes a write, and reopens with the
//! same contents (unless its files already use the last sequence number: then the write must be
//! refused); and repair never refuses a directory that opens without it, nor changes what
//! such a directory holds.

#![no_main]

use flin_engine::testing::SEQ_MAX;
use flin_engine::{Engine, Error};
use flin_fuzz::check::{lasting, now_ms, read_all, Served, Snapshot};
use flin_fuzz::files::DirSpec;
use flin_fuzz::{known_bugs, options, scratch};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: flin_fuzz::alloc::CappedAlloc = flin_fuzz::alloc::CappedAlloc;

/// Longer than any key the grammar makes short, so it does not collide with a fuzzed key by
/// accident (a collision would still be handled: the probe overwrites it).
const PROBE_KEY: &[u8] = b"flin-fuzz probe key, written after open";
const PROBE_VALUE: &[u8] = b"probe";

fuzz_target!(|spec: DirSpec| {
    if known_bugs::in_dir(&spec).is_some() {
        return;
    }
    let now = now_ms();
    let plain = open_and_check(&spec, now, false);
    let repaired = open_and_check(&spec, now, true);
    if let Some(plain) = plain {
        let repaired = repaired.expect("repair refused a directory that opens without it");
        let horizon = now_ms();
        assert_eq!(
            lasting(&plain, horizon),
            lasting(&repaired, horizon),
            "repair changed the contents of a directory that opens without it"
        );
    }
});

/// Opens a fresh copy of the directory; on success checks the store and returns what it held.
fn open_and_check(spec: &DirSpec, now: u64, repair: bool) -> Option<Snapshot> {
    let dir = scratch::dir();
    spec.write(dir.path(), now)
        .expect("write the fuzzed directory");
    let engine = match Engine::open(dir.path(), options(repair)) {
        Ok(e) => e,
        Err(e) => {
            assert_clear(&e, dir.path());
            return None;
        }
    };
    let first = read_all(&engine);
    let probed = match engine.put(PROBE_KEY, PROBE_VALUE, 0) {
        Ok(_) => true,
        // Checksummed records may claim the last sequence number the format allows; then no
        // write can be numbered, and it must be refused rather than written and lost.
        Err(Error::SeqExhausted { last_seq }) if last_seq == SEQ_MAX => false,
        Err(e) => panic!("a store that opened refused a write: {e}"),
    };
    if probed {
        assert_eq!(engine.get(PROBE_KEY).as_deref(), Some(PROBE_VALUE));
    }
    engine.close().expect("close");

    let engine = Engine::open(dir.path(), options(repair)).expect("a store that opened reopens");
    let second = read_all(&engine);
    let horizon = now_ms();
    let mut expected = lasting(&first, horizon);
    if probed {
        expected.insert(
            PROBE_KEY.to_vec(),
            Served {
                value: PROBE_VALUE.to_vec(),
                expire_at_ms: 0,
            },
        );
    }
    assert_eq!(
        lasting(&second, horizon),
        expected,
        "reopen changed the store"
    );
    Some(first)
}

/// An error from `open` on hostile files is about the files: corrupt data or a failed system
/// call, naming a path inside the directory, with a message a person can act on.
fn assert_clear(e: &Error, dir: &std::path::Path) {
    let message = e.to_string();
    assert!(!message.is_empty());
    match e {
        Error::Corrupt { path, .. } | Error::Io { path, .. } => {
            assert!(
                path.starts_with(dir),
                "error names {path:?}, outside {dir:?}: {message}"
            )
        }
        other => panic!("unexpected kind of error from open: {other:?}"),
    }
}
