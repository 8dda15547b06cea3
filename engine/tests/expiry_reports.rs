//! Guards the two ways a server learns that a key expired (for Redis's `expired` keyspace
//! events): `Engine::remove_expired` on access, and the `Engine::on_expired` hook of the
//! engine's own sweep. Every expired key is reported exactly once, by one of them, and a live
//! key never is.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use flin_engine::{Engine, Fsync, Options};

/// How often each (database, key) was reported expired.
type Seen = BTreeMap<(u32, Vec<u8>), u32>;

#[test]
fn every_expired_key_is_reported_once_and_live_keys_never() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options {
            fsync: Fsync::Never,
            compaction: false,
            ..Options::default()
        },
    )
    .unwrap();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let hook_seen = seen.clone();
    engine.on_expired(move |db, key| {
        *hook_seen
            .lock()
            .unwrap()
            .entry((db, key.to_vec()))
            .or_default() += 1;
    });
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for i in 0..50u32 {
        engine
            .put(format!("ttl{i}").as_bytes(), b"v", now_ms + 20)
            .unwrap();
        engine.put(format!("keep{i}").as_bytes(), b"v", 0).unwrap();
    }
    // Database 3's expirations are reported as database 3's.
    for i in 0..10u32 {
        engine
            .db(3)
            .put(format!("ttl{i}").as_bytes(), b"v", now_ms + 20)
            .unwrap();
    }
    // Wait (bounded) until the expiry time has passed, by the engine's own reads.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while engine.get(b"ttl49").is_some() {
        assert!(std::time::Instant::now() < deadline, "key never expired");
        std::thread::yield_now();
    }
    // Half on access (as a server's lazy expiry does), the rest by the sweep.
    for i in 0..25u32 {
        let key = format!("ttl{i}");
        if engine.remove_expired(key.as_bytes()) {
            *seen
                .lock()
                .unwrap()
                .entry((0, key.clone().into_bytes()))
                .or_default() += 1;
        }
        assert!(!engine.remove_expired(key.as_bytes()), "reported twice");
        assert!(!engine.remove_expired(format!("keep{i}").as_bytes()));
    }
    engine.expire_now(1 << 20);
    let seen = seen.lock().unwrap();
    let want: Seen = (0..50u32)
        .map(|i| ((0, format!("ttl{i}").into_bytes()), 1))
        .chain((0..10u32).map(|i| ((3, format!("ttl{i}").into_bytes()), 1)))
        .collect();
    assert_eq!(*seen, want);
    assert_eq!(engine.len(), 50);
    assert_eq!(engine.get(b"keep7").as_deref(), Some(&b"v"[..]));
}

/// A replica's engine (`expire_keys` off) removes no expired key itself, not by its sweep,
/// `remove_expired`, compaction or open: reads hide them, its primary's DELs remove them.
/// A thread that follows the primary's expiry sees them; turned back on, the engine expires
/// them again.
#[test]
fn with_expire_keys_off_expired_keys_stay_until_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        fsync: Fsync::Never,
        expire_keys: false,
        segment_size_bytes: 64 * 1024,
        ..Options::default()
    };
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 1_000;
    {
        let e = Engine::open(dir.path(), options.clone()).unwrap();
        for i in 0..200u32 {
            e.put(format!("k{i}").as_bytes(), &[b'v'; 500], past)
                .unwrap();
        }
        e.put(b"live", b"x", 0).unwrap();
    }
    let e = Engine::open(dir.path(), options.clone()).unwrap();
    assert_eq!(e.len(), 201, "open kept the expired keys");
    assert_eq!(e.expire_now(10_000), 0);
    assert!(!e.remove_expired(b"k1"));
    e.compact_now().unwrap();
    assert_eq!(e.len(), 201, "compaction kept them");
    assert_eq!(e.get(b"k1"), None, "reads hide them");
    // The thread applying a primary's stream sees them, and acts on their values.
    flin_engine::follow_primary_expiry(true);
    assert_eq!(e.get(b"k1"), Some(vec![b'v'; 500]));
    flin_engine::follow_primary_expiry(false);
    assert_eq!(e.get(b"k1"), None);
    e.delete(b"k2").unwrap();
    assert_eq!(e.len(), 200);
    // A primary again.
    e.set_expire_keys(true);
    assert!(e.remove_expired(b"k1"));
    e.expire_now(10_000);
    assert_eq!(e.len(), 1);
    assert_eq!(e.get(b"live"), Some(b"x".to_vec()));
}

/// Compaction may drop an expired key's record (nothing older of the key survives elsewhere):
/// that is the key's expiry, reported as the sweep's are, to `on_expiring` under the key's
/// lock (a primary queues the key's DEL for its replicas there) and to `on_expired`, once per
/// key. Before, compaction dropped them silently, and a flin primary's replicas, which keep
/// expired keys until their primary's DEL, kept them for ever.
#[test]
fn compaction_reports_the_expired_keys_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options {
            fsync: Fsync::Never,
            // Only the explicit compactions below.
            compaction: false,
            segment_size_bytes: 64 * 1024,
            ..Options::default()
        },
    )
    .unwrap();
    // Only compaction may find them expired.
    engine.pause_expiry_sweep_for_tests(true);
    let (locked, after): (Arc<Mutex<Seen>>, Arc<Mutex<Seen>>) = Default::default();
    let l = locked.clone();
    engine.on_expiring(move |db, key| {
        *l.lock().unwrap().entry((db, key.to_vec())).or_default() += 1;
    });
    let a = after.clone();
    engine.on_expired(move |db, key| {
        *a.lock().unwrap().entry((db, key.to_vec())).or_default() += 1;
    });
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 1_000;
    // Expired keys in databases 0 and 2 across several segments, each segment with dead
    // bytes (an overwritten key) so compaction takes it, and live keys beside them.
    for i in 0..300u32 {
        engine
            .put(format!("gone{i}").as_bytes(), &[b'v'; 400], past)
            .unwrap();
        engine
            .db(2)
            .put(format!("gone{i}").as_bytes(), &[b'v'; 400], past)
            .unwrap();
        engine
            .put(format!("live{i}").as_bytes(), &[b'l'; 100], 0)
            .unwrap();
        engine.put(b"churn", &[b'c'; 400], 0).unwrap();
    }
    // Seal the last of them.
    for i in 0..200u32 {
        engine.put(b"churn", &[b'c'; 400], 0).unwrap();
        engine.put(format!("pad{i}").as_bytes(), b"p", 0).unwrap();
    }
    assert_eq!(engine.len(), 300 * 2 + 300 + 1 + 200, "nothing expired yet");
    engine.compact_now().unwrap();
    let want: Seen = (0..300u32)
        .flat_map(|i| {
            [
                (0, format!("gone{i}").into_bytes()),
                (2, format!("gone{i}").into_bytes()),
            ]
        })
        .map(|k| (k, 1))
        .collect();
    assert_eq!(
        *locked.lock().unwrap(),
        want,
        "on_expiring: each dropped key once"
    );
    assert_eq!(
        *after.lock().unwrap(),
        want,
        "on_expired: each dropped key once"
    );
    assert_eq!(engine.len(), 300 + 1 + 200);
    assert_eq!(engine.stats().expired_keys, 600);
    assert_eq!(engine.get(b"live7"), Some(vec![b'l'; 100]));
    // A second run finds nothing more to report.
    engine.compact_now().unwrap();
    assert_eq!(after.lock().unwrap().len(), 600);
}
