//! Group commit and the durability API: many writers with `Fsync::Always` share fsyncs, the
//! `durable` future resolves without blocking its thread, and concurrent readers and writers
//! see every acknowledged value. Guards against acknowledging before the disk has the write and
//! against lost updates between threads.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use flin_engine::{Engine, Fsync, Options, Update};

struct ThreadWaker(std::thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls, parks until woken.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

fn open(dir: &std::path::Path, fsync: Fsync) -> Engine {
    Engine::open(
        dir,
        Options {
            fsync,
            segment_size_bytes: 1 << 20,
            ..Options::default()
        },
    )
    .unwrap()
}

#[test]
fn sixteen_writers_share_fsyncs_and_every_ack_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(dir.path(), Fsync::Always));
    const WRITERS: u64 = 16;
    const PUTS: u64 = 200;
    let handles: Vec<_> = (0..WRITERS)
        .map(|t| {
            let e = engine.clone();
            std::thread::spawn(move || {
                for i in 0..PUTS {
                    let token = e
                        .put(format!("{t}:{i}").as_bytes(), &i.to_le_bytes(), 0)
                        .unwrap();
                    e.wait_durable(token).unwrap();
                    assert!(e.stats().durable_seq >= token.seq());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = engine.stats();
    assert!(stats.fsyncs >= 1);
    assert!(
        stats.fsyncs <= WRITERS * PUTS,
        "at most one fsync per write: {}",
        stats.fsyncs
    );
    assert!(stats.durable_seq >= WRITERS * PUTS);
}

#[test]
fn durable_future_resolves_under_every_policy() {
    for fsync in [Fsync::Always, Fsync::EverySec, Fsync::Never] {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path(), fsync);
        let token = engine.put(b"k", b"v", 0).unwrap();
        block_on(engine.durable(token)).unwrap();
        assert!(engine.stats().durable_seq >= token.seq(), "{fsync:?}");
    }
}

#[test]
fn concurrent_increments_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(dir.path(), Fsync::Never));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let e = engine.clone();
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let mut buf = [0u8; 20];
                    e.update(b"counter", |cur| {
                        let n: u64 = cur
                            .map(|c| std::str::from_utf8(c.value).unwrap().parse().unwrap())
                            .unwrap_or(0);
                        let s = (n + 1).to_string();
                        buf[..s.len()].copy_from_slice(s.as_bytes());
                        let len = s.len();
                        (
                            Update::Put {
                                value: &buf[..len],
                                expire_at_ms: 0,
                            },
                            (),
                        )
                    })
                    .unwrap();
                    assert!(e.get(b"counter").is_some());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(engine.get(b"counter").as_deref(), Some(&b"8000"[..]));
}

#[test]
fn readers_always_see_a_complete_acknowledged_value() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(dir.path(), Fsync::Never));
    engine.put(b"k", &[0u8; 1000], 0).unwrap();
    let writer = {
        let e = engine.clone();
        std::thread::spawn(move || {
            for i in 1..=3000u32 {
                let b = (i % 251) as u8;
                e.put(b"k", &vec![b; 1000 + (i % 100) as usize], 0).unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let v = engine.get(b"k").unwrap();
        assert!(v.iter().all(|&x| x == v[0]), "torn read");
        reads += 1;
    }
    writer.join().unwrap();
}

#[test]
fn expiry_hides_values_and_set_expiry_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Fsync::Never);
    engine.put(b"past", b"v", 1).unwrap();
    assert_eq!(engine.get(b"past"), None);
    assert!(
        engine.delete(b"past").unwrap().is_none(),
        "expired keys are not deleted twice"
    );
    let far = 4_000_000_000_000u64;
    engine.put(b"k", b"v", 0).unwrap();
    engine
        .update(b"k", |_| (Update::SetExpiry { expire_at_ms: far }, ()))
        .unwrap();
    let exp = engine.get_with(b"k", |e| e.map(|e| (e.value.to_vec(), e.expire_at_ms)));
    assert_eq!(exp, Some((b"v".to_vec(), far)));
    engine
        .update(b"k", |_| (Update::SetExpiry { expire_at_ms: 1 }, ()))
        .unwrap();
    assert_eq!(engine.get(b"k"), None);
}

#[test]
fn clear_survives_reopen_and_scan_covers_a_growing_index() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Fsync::Never);
    for i in 0..5000u32 {
        engine.put(format!("a{i}").as_bytes(), b"x", 0).unwrap();
    }
    engine.clear().unwrap();
    assert_eq!(engine.len(), 0);
    for i in 0..1000u32 {
        engine.put(format!("b{i}").as_bytes(), b"y", 0).unwrap();
    }
    // Scan while inserting more keys: every key present throughout is returned.
    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0;
    let mut extra = 0u32;
    loop {
        cursor = engine.scan(cursor, 50, |k, _| {
            seen.insert(k.to_vec());
        });
        for _ in 0..40 {
            engine.put(format!("c{extra}").as_bytes(), b"z", 0).unwrap();
            extra += 1;
        }
        if cursor == 0 {
            break;
        }
    }
    for i in 0..1000u32 {
        assert!(
            seen.contains(format!("b{i}").as_bytes()),
            "b{i} missed by scan"
        );
    }
    engine.close().unwrap();
    let engine = open(dir.path(), Fsync::Never);
    assert_eq!(engine.get(b"a1"), None, "cleared keys stay cleared");
    assert_eq!(engine.get(b"b1").as_deref(), Some(&b"y"[..]));
    assert_eq!(engine.len(), 1000 + u64::from(extra));
}

#[test]
fn active_expiry_removes_expired_keys_also_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let soon = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 1000
    };
    let opts = || Options {
        fsync: Fsync::Never,
        compaction: false,
        ..Options::default()
    };
    {
        let engine = Engine::open(dir.path(), opts()).unwrap();
        let at = soon(); // one expiry time for all, so they expire together
        for i in 0..100u32 {
            engine.put(format!("ttl{i}").as_bytes(), b"v", at).unwrap();
            engine.put(format!("keep{i}").as_bytes(), b"v", 0).unwrap();
        }
        assert_eq!(engine.len(), 200);
    }
    let engine = Engine::open(dir.path(), opts()).unwrap();
    // Wait (bounded) until the expiry time has passed, by the clock, not by sleeping blindly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while engine.get(b"ttl0").is_some() {
        assert!(std::time::Instant::now() < deadline, "key never expired");
        std::thread::yield_now();
    }
    // Keys that came back from disk with an expiry are removed without being read.
    // (The maintenance thread may have swept some of them already.)
    engine.expire_now(1 << 20);
    assert_eq!(engine.len(), 100);
    // Keys already expired when the store was reopened are not loaded at all.
    let expired_at_open = 200 - engine.stats().recovery.keys;
    assert_eq!(engine.stats().expired_keys + expired_at_open, 100);
    assert_eq!(engine.get(b"keep5").as_deref(), Some(&b"v"[..]));
}
