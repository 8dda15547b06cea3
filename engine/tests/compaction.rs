//! Compaction: a deleted key never comes back (after partial compactions and restarts), space
//! is reclaimed, and a crash at every step of a compaction run loses nothing and resurrects
//! nothing. Guards against Bitcask's issue #82 (deleted keys returning after merge) and against
//! half-finished compactions. A compaction whose fsyncs fail keeps its inputs, leaves no
//! output behind, and does not stop user writes.

use std::collections::BTreeMap;

use flin_engine::{Engine, Fsync, Options};

mod common;

fn options() -> Options {
    common::options(Fsync::Never, 4096)
}

/// Ids of the sealed segments, oldest first.
fn sealed(e: &Engine) -> Vec<u32> {
    let (ids, active) = e.segment_ids();
    ids.into_iter().filter(|&s| s != active).collect()
}

fn filler(e: &Engine, tag: &str, n: u32) {
    for i in 0..n {
        e.put(format!("fill-{tag}-{i}").as_bytes(), &[b'f'; 200], 0)
            .unwrap();
    }
}

#[test]
fn deleted_key_stays_deleted_across_partial_compaction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    e.put(b"victim", b"old value", 0).unwrap();
    let (_, value_segment) = e.segment_ids();
    filler(&e, "a", 40);
    e.delete(b"victim").unwrap().expect("existed");
    let (_, tombstone_segment) = e.segment_ids();
    assert_ne!(value_segment, tombstone_segment);
    filler(&e, "b", 40);
    let (_, active) = e.segment_ids();
    assert_ne!(
        active, tombstone_segment,
        "the tombstone's segment is sealed"
    );
    // Compact only the tombstone's segment: the old value's segment still exists.
    let later = vec![tombstone_segment];
    e.compact_segments(&later).unwrap();
    assert_eq!(e.get(b"victim"), None);
    e.close().unwrap();

    let e = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(
        e.get(b"victim"),
        None,
        "tombstone dropped while the old value survived"
    );
    // Now compact everything, twice, restarting in between.
    e.compact_now().unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(e.get(b"victim"), None);
    e.compact_now().unwrap();
    e.close().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(e.get(b"victim"), None);
    assert_eq!(e.get(b"fill-a-3").as_deref(), Some(&[b'f'; 200][..]));
}

/// A segment whose records are all dead by its accounting, but whose tombstone is still
/// needed (the deleted key's old value lives in an older segment): compaction must keep that
/// tombstone (a shortcut that skipped reading such segments dropped it); once the old value
/// is gone the same segment goes whole.
#[test]
fn a_dead_segment_keeps_the_tombstone_an_older_value_needs() {
    let dir = tempfile::tempdir().unwrap();
    let options = || common::options(Fsync::Never, CHURN_SEGMENT);
    let e = Engine::open(dir.path(), options()).unwrap();
    e.put(b"victim", b"old value", 0).unwrap();
    let (_, value_segment) = e.segment_ids();
    filler(&e, "a", 400);
    // Keys written again below, up to the next segment, so the tombstone's segment holds
    // nothing else.
    let (_, before) = e.segment_ids();
    let mut n = 0;
    while e.segment_ids().1 == before {
        e.put(format!("churn-{n}").as_bytes(), &[b'x'; 200], 0)
            .unwrap();
        n += 1;
    }
    e.delete(b"victim").unwrap().expect("existed");
    let (_, tombstone_segment) = e.segment_ids();
    assert_ne!(value_segment, tombstone_segment);
    // The rest of the tombstone's segment, then the same keys again: all of it dies.
    for round in 0..2 {
        for i in 0..400 {
            e.put(format!("churn-{i}").as_bytes(), &[b'0' + round; 200], 0)
                .unwrap();
        }
    }
    let (_, active) = e.segment_ids();
    assert!(
        active > tombstone_segment + 1,
        "the tombstone's segment is sealed"
    );
    let run = e.compact_segments(&[tombstone_segment]).unwrap();
    assert_eq!(run.segments_in, 1);
    assert!(
        run.records_copied >= 1,
        "the tombstone was dropped: {run:?}"
    );
    e.close().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(e.get(b"victim"), None, "a deleted key came back");
    assert_eq!(e.get(b"churn-7").as_deref(), Some(&[b'1'; 200][..]));
    // Without the old value, nothing is needed any more.
    e.compact_now().unwrap();
    assert!(!e.segment_ids().0.contains(&value_segment));
    e.close().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(e.get(b"victim"), None);
    assert_eq!(e.get(b"churn-7").as_deref(), Some(&[b'1'; 200][..]));
    assert_eq!(e.get(b"fill-a-3").as_deref(), Some(&[b'f'; 200][..]));
}

#[test]
fn compaction_reclaims_overwritten_space() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    for round in 0..10u32 {
        for k in 0..50u32 {
            e.put(
                format!("k{k}").as_bytes(),
                &round.to_le_bytes().repeat(25),
                0,
            )
            .unwrap();
        }
    }
    let before = e.stats();
    let report = e.compact_now().unwrap();
    let after = e.stats();
    assert!(report.bytes_in > report.bytes_out, "{report:?}");
    assert!(
        after.disk_bytes < before.disk_bytes,
        "{before:?} -> {after:?}"
    );
    for k in 0..50u32 {
        assert_eq!(
            e.get(format!("k{k}").as_bytes()),
            Some(9u32.to_le_bytes().repeat(25))
        );
    }
}

const CHILD_ENV: &str = "FLIN_COMPACTION_CHILD_DIR";

/// The child: opens the store and compacts; the failpoint aborts it midway.
#[test]
fn compaction_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let e = Engine::open(&dir, options()).unwrap();
    e.compact_now().unwrap();
    e.close().unwrap();
}

/// Builds a store with overwrites and deletes; returns the model of what it must hold.
fn build(dir: &std::path::Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let e = Engine::open(dir, options()).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..600u32 {
        let k = format!("key{}", i % 97).into_bytes();
        if i % 7 == 3 {
            e.delete(&k).unwrap();
            model.remove(&k);
        } else {
            let v = format!("value-{i}-{}", "x".repeat((i % 60) as usize)).into_bytes();
            e.put(&k, &v, 0).unwrap();
            model.insert(k, v);
        }
    }
    e.close().unwrap();
    model
}

fn check(dir: &std::path::Path, model: &BTreeMap<Vec<u8>, Vec<u8>>, what: &str) {
    let e = Engine::open(dir, options()).unwrap_or_else(|err| panic!("{what}: reopen: {err}"));
    for i in 0..97u32 {
        let k = format!("key{i}").into_bytes();
        assert_eq!(e.get(&k), model.get(&k).cloned(), "{what}: key{i}");
    }
    assert_eq!(e.len(), model.len() as u64, "{what}");
    e.close().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{what}: temporary files left: {leftovers:?}"
    );
}

#[test]
fn crash_at_every_compaction_step_loses_nothing() {
    for point in [
        "compaction-before-rename",
        "compaction-after-rename",
        "compaction-after-switch",
        "compaction-after-retire",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let model = build(dir.path());
        let status = common::child("compaction_child")
            .env(CHILD_ENV, dir.path())
            .env("FLIN_FAILPOINT", point)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            !status.success(),
            "{point}: the child must have crashed there"
        );
        check(dir.path(), &model, point);
        // And a compaction after the crash finishes the job.
        {
            let e = Engine::open(dir.path(), options()).unwrap();
            e.compact_now().unwrap();
        }
        check(dir.path(), &model, &format!("{point}, then compacted"));
    }
}

const EIO_CHILD_ENV: &str = "FLIN_COMPACTION_EIO_CHILD_DIR";

/// The segment files in `dir`, sorted.
fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

/// The child: compacts while the failpoint fails one of the run's fsyncs with EIO. Every run
/// must fail with the error, leave the segment files as they were, and leave the engine
/// serving reads and taking writes.
#[test]
fn compaction_io_error_child() {
    let Ok(dir) = std::env::var(EIO_CHILD_ENV) else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    let e = Engine::open(dir, options()).unwrap();
    let before = segment_files(dir);
    for run in 0..2 {
        let err = e.compact_now().expect_err("the failpoint fails the run");
        let msg = err.to_string();
        assert!(msg.contains("os error 5"), "run {run}: {msg}");
        assert!(!err.is_poisoned(), "run {run}: {msg}");
        assert_eq!(segment_files(dir), before, "run {run}: outputs left behind");
        assert!(!e.stats().compaction_running, "run {run}");
    }
    e.put(b"after-failure", b"written", 0).unwrap();
    assert_eq!(e.get(b"after-failure"), Some(b"written".to_vec()));
    e.close().unwrap();
}

#[test]
fn failed_compaction_fsyncs_keep_every_key_and_writes_going() {
    for point in ["compaction-sync-eio", "compaction-dir-sync-eio"] {
        let dir = tempfile::tempdir().unwrap();
        let mut model = build(dir.path());
        let out = common::child("compaction_io_error_child")
            .env(EIO_CHILD_ENV, dir.path())
            .env("FLIN_FAILPOINT", point)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{point}: child failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // `check` reads key0..key96 and counts keys; the child's write is read here.
        model.insert(b"after-failure".to_vec(), b"written".to_vec());
        check(dir.path(), &model, point);
        // Without the failure, the same store compacts.
        let e = Engine::open(dir.path(), options()).unwrap();
        let report = e.compact_now().unwrap();
        assert!(report.segments_in > 0, "{point}: nothing to compact");
        e.close().unwrap();
        check(dir.path(), &model, &format!("{point}, then compacted"));
        let e = Engine::open(dir.path(), options()).unwrap();
        assert_eq!(
            e.get(b"after-failure"),
            Some(b"written".to_vec()),
            "{point}"
        );
        e.close().unwrap();
    }
}

/// Niceness of every thread of this process named `name`, from /proc.
fn nice_of_threads(name: &str) -> Vec<i64> {
    let mut nices = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        if comm.trim() != name {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name start at field 3 (state); nice is field 19.
        let after = stat.rsplit_once(')').unwrap().1;
        nices.push(after.split_whitespace().nth(16).unwrap().parse().unwrap());
    }
    nices
}

#[test]
fn maintenance_thread_runs_at_the_configured_niceness() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(
        dir.path(),
        Options {
            background_nice: 7,
            ..options()
        },
    )
    .unwrap();
    // Other tests' engines run beside this one at the default; none of them uses 7.
    let nices = nice_of_threads("flin-maint");
    assert!(
        nices.contains(&7),
        "maintenance threads' niceness: {nices:?}"
    );
    e.close().unwrap();

    let bad = Engine::open(
        dir.path(),
        Options {
            background_nice: 20,
            ..options()
        },
    );
    assert!(
        matches!(bad, Err(flin_engine::Error::InvalidOptions(_))),
        "niceness 20 accepted"
    );
}

/// How a churning writer waits out write stalls.
#[derive(Clone, Copy, PartialEq)]
enum StallWait {
    /// Inside `put` (the engine's default).
    Blocking,
    /// Between writes, on `write_stall_lifted` with `write_stall`'s time as the timeout, as
    /// the server does; `put` itself must never wait.
    Async,
}

/// Polls `fut` on this thread until it resolves or `timeout` passes.
fn block_on_for(fut: impl std::future::Future<Output = ()>, timeout: std::time::Duration) {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    let deadline = std::time::Instant::now() + timeout;
    while fut.as_mut().poll(&mut cx).is_pending() {
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            return;
        };
        std::thread::park_timeout(left);
    }
}

/// Overwrites `keys` keys four times over at random with compaction held to 4 MB/s, 64 KiB
/// segments; returns the worst disk/live ratio seen and the final stats.
fn churn_against_slow_compaction(keys: u32, wait: StallWait) -> (f64, flin_engine::Stats) {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(
        dir.path(),
        Options {
            fsync: Fsync::Never,
            segment_size_bytes: CHURN_SEGMENT,
            compaction: true,
            compaction_rate_bytes_per_sec: 4 << 20,
            compaction_interval: std::time::Duration::from_millis(20),
            blocking_write_stalls: wait == StallWait::Blocking,
            ..Options::default()
        },
    )
    .unwrap();
    let value = [b'v'; 100];
    for k in 0..keys {
        e.put(format!("key-{k:05}").as_bytes(), &value, 0).unwrap();
    }
    let mut worst = 0f64;
    // Overwrites at random: a sealed segment's records die one by one, so compaction must
    // copy the live ones to reclaim the dead (in passes over the keys in order, whole
    // segments die and go without a copy, and a fast compaction may keep up).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..4u32 {
        for k in 0..keys {
            if wait == StallWait::Async {
                if let Some(left) = e.write_stall() {
                    block_on_for(e.write_stall_lifted(), left);
                }
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("key-{:05}", x % u64::from(keys));
            let before = e.stats().write_stalls;
            e.put(key.as_bytes(), &value, 0).unwrap();
            if wait == StallWait::Async {
                assert_eq!(e.stats().write_stalls, before, "put waited in async mode");
            }
            if k % 50 == 0 {
                let st = e.stats();
                worst = worst.max(st.disk_bytes as f64 / st.live_bytes as f64);
            }
        }
    }
    let st = e.stats();
    e.close().unwrap();
    (worst, st)
}

const CHURN_SEGMENT: u64 = 64 * 1024;

/// A store of 64 KiB segments whose compaction runs only when the test calls for it
/// (`Engine::compact_due`).
fn open_compacted_by_hand(dir: &std::path::Path) -> Engine {
    Engine::open(dir, common::options(Fsync::Never, CHURN_SEGMENT)).unwrap()
}

/// A writer far faster than compaction is made to wait for it, so disk use stays near the
/// space bound instead of growing with the writes.
#[test]
fn writers_that_outrun_compaction_wait_for_it() {
    for wait in [StallWait::Blocking, StallWait::Async] {
        // About 0.75 MB of live data: eleven segments.
        let (worst, st) = churn_against_slow_compaction(5_000, wait);
        assert!(st.write_stalls > 0, "no write waited: {st:?}");
        // The bound, plus the chunk a writer may add before the stall starts and the chunk
        // of the spare segment.
        let allowed = 1.5 + 2.0 * CHURN_SEGMENT as f64 / st.live_bytes as f64;
        assert!(
            worst <= allowed,
            "disk reached {worst:.2}x live data (allowed {allowed:.2}x): {st:?}"
        );
    }
}

/// In a store of a few segments the bound cannot be met (the active and spare segments alone
/// pass it); writers must not wait for rewrites that cannot meet it.
#[test]
fn small_stores_never_stall_writers() {
    // About 0.15 MB of live data: under three segments.
    let (_, st) = churn_against_slow_compaction(1_000, StallWait::Blocking);
    assert_eq!(st.write_stalls, 0, "{st:?}");
}

/// In a store too small for its space bound, compaction takes only segments dead enough by
/// `compaction_dead_ratio`: pressure from a bound it cannot meet made it rewrite mostly live
/// segments again and again, each record copied several times before it died.
#[test]
fn small_stores_rewrite_only_dead_enough_segments() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_compacted_by_hand(dir.path());
    // About 0.15 MB of live data (under three segments), overwritten at random: a sealed
    // segment's records die one by one, as under a client's random SETs. Compaction looks
    // for work every 100 writes, as a background thread keeping up would.
    let keys = 1_000u64;
    let value = [b'v'; 100];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut runs = 0;
    for i in 0..40 * keys {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        e.put(format!("key-{:05}", x % keys).as_bytes(), &value, 0)
            .unwrap();
        if i % 100 == 0 {
            let run = e.compact_due().unwrap();
            // Taken at least half dead (0.5 is the default `compaction_dead_ratio`): a run
            // copies at most half of what it reads.
            assert!(
                run.bytes_out * 2 <= run.bytes_in,
                "after {i} writes a run copied {} of {} bytes: {run:?}",
                run.bytes_out,
                run.bytes_in
            );
            runs += u64::from(run.segments_in > 0);
        }
    }
    e.close().unwrap();
    assert!(runs > 0, "no run");
}

/// A store of fewer than four sealed segments compacts by dead ratio not yet, but a segment
/// with nothing live goes at once (with nothing to copy).
#[test]
fn a_small_store_removes_whole_dead_segments_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_compacted_by_hand(dir.path());
    // 300 keys of 200 bytes fill a segment and part of the next; writing them again kills
    // every record of the first.
    for round in 0..2u8 {
        for i in 0..300 {
            e.put(format!("key-{i}").as_bytes(), &[b'a' + round; 200], 0)
                .unwrap();
        }
    }
    let (segments, active) = e.segment_ids();
    let sealed = segments.iter().filter(|&&s| s != active).count();
    assert!((1..4).contains(&sealed), "{segments:?}");
    let run = e.compact_due().unwrap();
    assert_eq!(run.segments_in, 1, "{run:?}");
    assert_eq!(run.records_copied, 0, "{run:?}");
    assert!(!e.segment_ids().0.contains(&segments[0]));
    assert_eq!(e.get(b"key-0").as_deref(), Some(&[b'b'; 200][..]));
    e.close().unwrap();
}

/// By dead ratio, the newest sealed segment waits for a newer one: it holds the keys written
/// last, the likeliest to be overwritten next, and copying its live records now would copy
/// them only to die soon after.
#[test]
fn the_newest_sealed_segment_waits_for_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_compacted_by_hand(dir.path());
    // Distinct keys of 200 bytes until eight segments are sealed, noting which keys each
    // segment got.
    let mut keys_of: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    let mut n = 0u32;
    while sealed(&e).len() < 8 {
        let key = format!("key-{n}");
        e.put(key.as_bytes(), &[b'a'; 200], 0).unwrap();
        keys_of.entry(e.segment_ids().1).or_default().push(key);
        n += 1;
    }
    let (_, active) = e.segment_ids();
    let newest = *keys_of.range(..active).next_back().unwrap().0;
    // Kill 70% of the newest sealed segment's records, all in the active segment: it alone
    // is dead enough for a run by ratio (0.5), and the others are wholly live.
    let doomed = &keys_of[&newest];
    for key in &doomed[..doomed.len() * 7 / 10] {
        e.put(key.as_bytes(), &[b'b'; 200], 0).unwrap();
    }
    assert_eq!(e.segment_ids().1, active, "the overwrites rolled the log");
    let run = e.compact_due().unwrap();
    assert_eq!(
        run.segments_in, 0,
        "the newest sealed segment was taken: {run:?}"
    );
    assert!(e.segment_ids().0.contains(&newest));
    // Once a newer segment is sealed, it goes.
    while e.segment_ids().1 == active {
        e.put(format!("key-{n}").as_bytes(), &[b'a'; 200], 0)
            .unwrap();
        n += 1;
    }
    let run = e.compact_due().unwrap();
    assert_eq!(run.segments_in, 1, "{run:?}");
    assert!(!e.segment_ids().0.contains(&newest));
    assert_eq!(
        e.get(doomed[0].as_bytes()).as_deref(),
        Some(&[b'b'; 200][..])
    );
    assert_eq!(
        e.get(doomed.last().unwrap().as_bytes()).as_deref(),
        Some(&[b'a'; 200][..])
    );
    e.close().unwrap();
}

/// Sealed segments of plain writes are compacted by walking the index (only the records it
/// points at are read); once a segment holds a tombstone, which no index entry points at,
/// runs over it read every record again. Either way every key reads its newest value, before
/// and after a restart, and a deleted key stays deleted.
#[test]
fn runs_over_plain_writes_walk_the_index_and_tombstones_force_a_full_read() {
    let dir = tempfile::tempdir().unwrap();
    let options = || common::options(Fsync::Never, CHURN_SEGMENT);
    let e = Engine::open(dir.path(), options()).unwrap();
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    fn write(e: &Engine, model: &mut BTreeMap<String, Vec<u8>>, round: u32, keys: u32) {
        for i in 0..keys {
            let key = format!("key-{}", (i * 7919 + round * 31) % 500);
            let value = format!("value-{round}-{i}").into_bytes();
            e.put(key.as_bytes(), &value, 0).unwrap();
            model.insert(key, value);
        }
    }
    let check = |e: &Engine, model: &BTreeMap<String, Vec<u8>>| {
        for (k, v) in model {
            assert_eq!(e.get(k.as_bytes()).as_deref(), Some(&v[..]), "{k}");
        }
    };
    for round in 0..6 {
        write(&e, &mut model, round, 2000);
    }
    // Keys written once, so the sealed segments keep live records among the dead.
    for i in 0..3000 {
        let (key, value) = (format!("once-{i}"), format!("v{i}").into_bytes());
        e.put(key.as_bytes(), &value, 0).unwrap();
        model.insert(key, value);
    }
    let run = e.compact_now().unwrap();
    assert!(run.segments_in >= 2, "{run:?}");
    assert!(run.index_walk, "plain writes read in full: {run:?}");
    assert!(
        (1..=model.len() as u64).contains(&run.records_copied),
        "{} keys: {run:?}",
        model.len()
    );
    check(&e, &model);
    e.close().unwrap();

    // Recovery reads the records again: still none the index does not point at.
    let e = Engine::open(dir.path(), options()).unwrap();
    check(&e, &model);
    for round in 6..9 {
        write(&e, &mut model, round, 2000);
    }
    let run = e.compact_now().unwrap();
    assert!(run.index_walk, "after a restart: {run:?}");
    check(&e, &model);

    // A deleted key's tombstone must be found, so its segment is read in full.
    let victim = "once-0".to_string();
    model.remove(&victim).expect("written");
    e.delete(victim.as_bytes()).unwrap().expect("existed");
    write(&e, &mut model, 9, 2000);
    let run = e.compact_now().unwrap();
    assert!(
        !run.index_walk,
        "a run over a tombstone walked the index: {run:?}"
    );
    assert_eq!(e.get(victim.as_bytes()), None);
    check(&e, &model);
    e.close().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(e.get(victim.as_bytes()), None, "a deleted key came back");
    check(&e, &model);
    e.close().unwrap();
}

/// A background run under `EverySec` does not force the log to disk to retire its inputs
/// (under pipelined SETs that was 40 syncs a second): the inputs stay until the log's next
/// sync, no run takes them again meanwhile, reads find every key's newest value in the
/// outputs, and close retires them after its final sync.
#[test]
fn background_runs_under_everysec_retire_their_inputs_at_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), common::options(Fsync::EverySec, CHURN_SEGMENT)).unwrap();
    e.pause_periodic_sync_for_tests(true);
    let mut model = BTreeMap::new();
    for pass in 0..20u32 {
        for k in 0..100u32 {
            let (key, value) = (format!("key-{k}"), format!("{pass}-{}", "v".repeat(200)));
            e.put(key.as_bytes(), value.as_bytes(), 0).unwrap();
            model.insert(key, value);
        }
    }
    // Everything durable, then one write that is not (no roll: the log asks for no sync).
    e.sync().unwrap();
    let active = e.segment_ids().1;
    e.put(b"key-0", b"last", 0).unwrap();
    model.insert("key-0".into(), "last".into());
    assert_eq!(e.segment_ids().1, active, "the last write rolled the log");
    let (before, _) = e.segment_ids();
    let reads_model = |e: &Engine| {
        for (key, value) in &model {
            assert_eq!(
                e.get(key.as_bytes()).as_deref(),
                Some(value.as_bytes()),
                "{key}"
            );
        }
    };

    // Runs until none is due: each takes segments no earlier run took, so they end.
    let mut taken = 0;
    for _ in 0..before.len() {
        let run = e.compact_due_as_background_for_tests().unwrap();
        if run.segments_in == 0 {
            break;
        }
        taken += run.segments_in;
    }
    assert!(taken > 0, "nothing was due");
    assert!(
        taken < before.len() as u64,
        "{taken} inputs of {} segments: waiting inputs were taken again",
        before.len()
    );
    let (during, _) = e.segment_ids();
    for id in &before {
        assert!(
            during.contains(id),
            "segment {id} was retired before the log was durable: {before:?} -> {during:?}"
        );
    }
    reads_model(&e);

    e.close().unwrap();
    let e = Engine::open(dir.path(), common::options(Fsync::EverySec, CHURN_SEGMENT)).unwrap();
    let (after, _) = e.segment_ids();
    let retired = before.iter().filter(|id| !after.contains(id)).count();
    assert_eq!(retired as u64, taken, "{before:?} -> {after:?}");
    reads_model(&e);
    e.close().unwrap();
}

/// The maintenance thread writes no hint file for a sealed segment compaction will take by
/// its dead ratio (reading all of it back for a hint was half that thread's time under
/// pipelined SETs), and still writes one for a segment that stays; close writes the rest.
#[test]
fn dead_enough_segments_get_their_hint_at_close_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options {
        hints: true,
        compaction: true,
        ..common::options(Fsync::Never, CHURN_SEGMENT)
    };
    let e = Engine::open(dir.path(), options()).unwrap();
    // The first segment: 100 keys written again and again, so it is mostly dead when it
    // is sealed but keeps every key's newest value (and with fewer than four sealed
    // segments, compaction takes only wholly dead ones: this one stays).
    let mut n = 0u32;
    while sealed(&e).is_empty() {
        e.put(format!("dead-{}", n % 100).as_bytes(), &[b'd'; 200], 0)
            .unwrap();
        n += 1;
    }
    let dead = sealed(&e)[0];
    // Then distinct keys until a wholly live segment is sealed after it.
    while sealed(&e).len() < 2 {
        e.put(format!("live-{n}").as_bytes(), &[b'l'; 200], 0)
            .unwrap();
        n += 1;
    }
    let live = sealed(&e)[1];
    let hint = |id: u32| dir.path().join(format!("{id:010}.hint"));
    // The thread goes through sealed segments oldest first: once the live one has its hint,
    // it has been past the dead one.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !hint(live).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no hint for segment {live}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        !hint(dead).exists(),
        "segment {dead}, mostly dead, got a hint"
    );
    assert_eq!(
        e.segment_ids().0[0],
        dead,
        "compaction took the dead segment"
    );
    e.close().unwrap();
    assert!(
        hint(dead).exists(),
        "close wrote no hint for segment {dead}"
    );
    let e = Engine::open(dir.path(), options()).unwrap();
    assert!(e.stats().recovery.segments_from_hints >= 2);
    assert_eq!(e.get(b"dead-0").as_deref(), Some(&[b'd'; 200][..]));
    e.close().unwrap();
}

/// Under `EverySec` a roll asks for no sync (the next periodic one covers the sealed segment:
/// each sync asked for also rewrote the pages ahead of the writer as zeros), and compaction
/// leaves a sealed segment alone until it is durable rather than force a sync for it.
#[test]
fn under_everysec_rolls_and_compaction_wait_for_the_periodic_sync() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), common::options(Fsync::EverySec, CHURN_SEGMENT)).unwrap();
    e.pause_periodic_sync_for_tests(true);
    let durable_at_open = e.stats().durable_seq;
    // The same 100 keys again and again: every sealed segment is mostly dead.
    let mut n = 0u32;
    while sealed(&e).len() < 6 {
        e.put(format!("key-{}", n % 100).as_bytes(), &[b'v'; 200], 0)
            .unwrap();
        n += 1;
    }
    let st = e.stats();
    assert_eq!(
        st.durable_seq, durable_at_open,
        "a roll made the log durable"
    );
    assert_eq!(st.fsyncs, 0, "a roll asked for a sync");
    let run = e.compact_due_as_background_for_tests().unwrap();
    assert_eq!(
        run.segments_in, 0,
        "a segment not on disk was compacted: {run:?}"
    );
    assert_eq!(e.stats().fsyncs, 0, "compaction forced a sync");

    e.sync().unwrap();
    let run = e.compact_due_as_background_for_tests().unwrap();
    assert!(
        run.segments_in > 0,
        "nothing was compacted once durable: {run:?}"
    );
    for k in 0..100 {
        assert_eq!(
            e.get(format!("key-{k}").as_bytes()).as_deref(),
            Some(&[b'v'; 200][..])
        );
    }
    e.close().unwrap();
}
