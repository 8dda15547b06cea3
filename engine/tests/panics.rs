//! A panic in any of the engine's background threads poisons the engine with its cause:
//! writers waiting for durability get the error at once, later writes fail saying what
//! happened, reads go on. Guards against a dead thread leaving writers waiting forever.

use std::time::Duration;

use flin_engine::testing::Thread;
use flin_engine::{Engine, Error, Fsync, Options};

fn open(dir: &std::path::Path, fsync: Fsync) -> Engine {
    let options = Options {
        fsync,
        segment_size_bytes: 64 * 1024,
        compaction_interval: Duration::from_millis(10),
        ..Options::default()
    };
    Engine::open(dir, options).unwrap()
}

/// Writes until one fails; the engine must refuse writes within `tries` of them.
fn first_refused_write(e: &Engine, tries: u32) -> Error {
    for i in 0..tries {
        let key = format!("after-{i}");
        // A write with a sync asks the sync thread for a round of work.
        let res = e
            .put(key.as_bytes(), &[b'v'; 100], 0)
            .and_then(|t| e.wait_durable(t));
        if let Err(err) = res {
            return err;
        }
        // Give the panicking thread a chance to run; its round of work comes when it does.
        std::thread::yield_now();
    }
    panic!("writes were still accepted after {tries} tries");
}

fn assert_poisoned_by(err: &Error, thread: &str) {
    let text = err.to_string();
    assert!(err.is_poisoned(), "{text}");
    assert!(text.contains(thread), "names the thread: {text}");
    assert!(text.contains("panicked"), "says it panicked: {text}");
    assert!(text.contains("restart"), "says what to do: {text}");
}

fn check_thread(thread: Thread, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path(), Fsync::Always);
    e.put(b"before", b"kept", 0).unwrap();
    e.sync().unwrap();
    e.inject_panic(thread);
    let err = first_refused_write(&e, 100_000);
    assert_poisoned_by(&err, name);
    // Later writes fail with the same cause; reads go on.
    let again = e.put(b"later", b"x", 0).unwrap_err();
    assert_poisoned_by(&again, name);
    assert_eq!(e.get(b"before").as_deref(), Some(&b"kept"[..]));
    assert!(e.stats().poisoned.unwrap().contains(name));
    // Close reports the poison instead of hanging on the dead thread.
    assert!(e.close().unwrap_err().is_poisoned());
    // Every acknowledged write is there after a restart.
    let e = open(dir.path(), Fsync::Always);
    assert_eq!(e.get(b"before").as_deref(), Some(&b"kept"[..]));
}

#[test]
fn a_panic_in_the_sync_thread_poisons() {
    check_thread(Thread::Sync, "flin-sync");
}

#[test]
fn a_panic_in_the_prealloc_thread_poisons() {
    check_thread(Thread::Prealloc, "flin-prealloc");
}

#[test]
fn a_panic_in_the_maintenance_thread_poisons() {
    check_thread(Thread::Maintenance, "flin-maint");
}

/// Writers already blocked in a durability wait when the sync thread dies get the error,
/// instead of waiting for a sync that never comes.
#[test]
fn writers_waiting_for_durability_get_the_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let e = std::sync::Arc::new(open(dir.path(), Fsync::Always));
    e.inject_panic(Thread::Sync);
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                loop {
                    let key = format!("w{t}-{i}");
                    match e
                        .put(key.as_bytes(), b"v", 0)
                        .and_then(|tok| e.wait_durable(tok))
                    {
                        Ok(()) => i += 1,
                        Err(err) => return err,
                    }
                }
            })
        })
        .collect();
    for w in writers {
        let err = w.join().unwrap();
        assert_poisoned_by(&err, "flin-sync");
    }
}
