//! `Engine::version`, which WATCH compares: every write of a key (even of the same bytes)
//! gives it a new version, a delete or an expiry takes it away, and compaction (which moves
//! the record) and a restart keep it, so a watched key that nobody wrote does not look
//! changed.

use flin_engine::{Engine, Fsync, Options};

mod common;

fn options() -> Options {
    common::options(Fsync::Never, 4096)
}

#[test]
fn writes_change_the_version_compaction_and_restart_keep_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(e.version(b"k"), None);
    e.put(b"k", b"v", 0).unwrap();
    let v1 = e.version(b"k").expect("a live key has a version");
    e.put(b"k", b"v", 0).unwrap();
    let v2 = e.version(b"k").unwrap();
    assert_ne!(v1, v2, "the same bytes written again are another version");
    assert_eq!(e.version(b"other"), None);
    // Fill segments and overwrite them so compaction has work, and moves `k`.
    for round in 0..3 {
        for i in 0..40 {
            e.put(format!("fill-{i}").as_bytes(), &[round; 200], 0)
                .unwrap();
        }
    }
    let before = e.segment_ids().0;
    e.compact_now().unwrap();
    assert_ne!(e.segment_ids().0, before, "compaction ran");
    assert_eq!(e.version(b"k"), Some(v2));
    e.close().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(e.version(b"k"), Some(v2));
    e.delete(b"k").unwrap();
    assert_eq!(e.version(b"k"), None);
    e.put(b"gone", b"v", 1).unwrap();
    assert_eq!(e.version(b"gone"), None, "expired keys have no version");
}
