//! Cold reads: records not in memory are read off the caller's thread, merged when several
//! callers want one record, and a read that fails (an I/O error, a flipped byte on disk) is
//! reported for its key with the file and offset, never served. Guards the path a server's
//! workers take so that a GET of an evicted value does not stall every client of the worker.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use flin_engine::{ColdRing, Engine, Error, Fetch, Fetched, Fsync, Options};

/// Runs a future to completion on this thread (the engine's pool wakes it).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

fn options() -> Options {
    Options {
        // No hint files: the maintenance thread would read evicted segments back to write
        // them, and a test that just evicted everything would race it.
        hints: false,
        // Small segments: the records spread over many files, sealed and active.
        ..common::options(Fsync::Never, 64 * 1024)
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-").repeat(40).into_bytes()
}

fn store(dir: &std::path::Path, n: u32) -> Engine {
    let e = Engine::open(dir, options()).unwrap();
    for i in 0..n {
        e.put(&key(i), &value(i), 0).unwrap();
    }
    e
}

#[test]
fn evicted_records_are_fetched_into_buffers_that_reads_use() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path(), 500);
    // In memory: nothing to fetch.
    let keys: Vec<Vec<u8>> = (0..500).map(key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    assert!(e.fetch_cold(&refs).is_none());
    e.evict_for_tests().unwrap();
    let fetch = e.fetch_cold(&refs).expect("evicted records are cold");
    let fetched = block_on(fetch);
    assert!(
        fetched.failures.is_empty(),
        "{:?}",
        fetched.failures.first().map(|f| f.1.to_string())
    );
    let st = e.stats();
    assert!(
        st.cold_reads > 0 && st.cold_reads <= 500,
        "{}",
        st.cold_reads
    );
    assert!(st.residency_checks);
    assert_eq!(st.cold_reads_in_flight, 0);
    assert!(st.cold_read_p50_us > 0);
    assert_eq!(fetched.staged.len() as u64, st.cold_reads_direct);
    if st.cold_reads_direct == 0 {
        // No O_DIRECT here: the reads went through the page cache, where the map finds them.
        assert!(e.fetch_cold(&refs).is_none());
        for i in 0..500 {
            assert_eq!(e.get(&key(i)), Some(value(i)), "key {i}");
        }
        return;
    }
    // Read around the page cache into buffers: the values come from those...
    flin_engine::with_staged(&fetched.staged, || {
        for i in 0..500 {
            assert_eq!(e.get(&key(i)), Some(value(i)), "key {i}");
        }
    });
    // ...and the map was not touched: the records are still on disk only.
    assert!(e.fetch_cold(&refs).is_some());
    // Without the buffers, reads go to the map (and fault the pages in): same values.
    for i in 0..500 {
        assert_eq!(e.get(&key(i)), Some(value(i)), "key {i}");
    }
    assert!(e.fetch_cold(&refs).is_none());
}

/// Drives `ring` until `fetch` resolves: waits for its eventfd (a bounded wait, then looks
/// again: reads that went to the pool wake nobody here) and reaps.
fn block_on_ring(ring: &mut ColdRing, fetch: Fetch) -> Fetched {
    let mut fetch = pin!(fetch);
    let mut cx = Context::from_waker(Waker::noop());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Poll::Ready(v) = fetch.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ring's reads never completed"
        );
        reap_after_wait(ring);
    }
}

/// Waits (at most 100 ms) for `ring`'s eventfd, then takes its completed reads.
fn reap_after_wait(ring: &mut ColdRing) {
    let mut pfd = libc::pollfd {
        fd: ring.event_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for at most 100 ms.
    unsafe { libc::poll(&mut pfd, 1, 100) };
    ring.reap();
}

#[test]
fn a_ring_reads_cold_records_into_buffers_a_few_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path(), 500);
    let keys: Vec<Vec<u8>> = (0..500).map(key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    e.evict_for_tests().unwrap();
    // Shallower than the reads asked for: the rest wait their turn on the ring.
    let mut ring = e.cold_ring(8).unwrap();
    let fetch = e.db(0).fetch_cold_on(&mut ring, &refs, |_| false);
    let fetched = block_on_ring(&mut ring, fetch.expect("evicted records are cold"));
    assert!(
        fetched.failures.is_empty(),
        "{:?}",
        fetched.failures.first().map(|f| f.1.to_string())
    );
    let st = e.stats();
    assert_eq!(st.cold_reads_in_flight, 0);
    assert_eq!(fetched.staged.len() as u64, st.cold_reads_direct);
    flin_engine::with_staged(&fetched.staged, || {
        for i in 0..500 {
            assert_eq!(e.get(&key(i)), Some(value(i)), "key {i}");
        }
    });
    if st.cold_reads_direct == 0 {
        return; // no O_DIRECT here: the pool read them all into the page cache
    }
    // Read around the page cache, so still cold. A failing disk: each key's read fails, on
    // the ring as on the pool.
    e.inject_cold_read_eio(true);
    let fetch = e.db(0).fetch_cold_on(&mut ring, &refs[..3], |_| false);
    let fetched = block_on_ring(&mut ring, fetch.expect("still cold"));
    let mut failed: Vec<usize> = fetched.failures.iter().map(|f| f.0).collect();
    failed.sort_unstable();
    assert_eq!(failed, [0, 1, 2]);
}

/// Counts its wakes.
struct Counter(std::sync::atomic::AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// With a flusher polling the ring, reads are only queued by the connections and handed to
/// the kernel by the flusher's next poll (once per event-loop turn), which they wake.
#[test]
fn a_flushed_ring_hands_reads_over_when_its_flusher_runs() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path(), 200);
    let keys: Vec<Vec<u8>> = (0..200).map(key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    e.evict_for_tests().unwrap();
    let mut ring = e.cold_ring(16).unwrap();
    let counter = Arc::new(Counter(Default::default()));
    let waker = Waker::from(counter.clone());
    let mut flusher = Context::from_waker(&waker);
    let woken = || counter.0.load(std::sync::atomic::Ordering::SeqCst);
    assert!(ring.poll_flush(&mut flusher).is_pending());
    assert_eq!(woken(), 0, "nothing queued yet");
    // Two "connections" queue reads in one turn: one wake for both.
    let a = e.db(0).fetch_cold_on(&mut ring, &refs[..3], |_| false);
    let b = e.db(0).fetch_cold_on(&mut ring, &refs[3..6], |_| false);
    let (a, b) = (a.expect("cold"), b.expect("cold"));
    if woken() == 0 {
        // No O_DIRECT here: the pool reads them, the ring queued nothing.
        block_on_ring(&mut ring, a);
        block_on_ring(&mut ring, b);
        assert_eq!(e.stats().cold_reads_direct, 0, "read on the ring unflushed");
        return;
    }
    let (mut a, mut b) = (pin!(a), pin!(b));
    assert_eq!(woken(), 1, "one wake per turn");
    let mut cx = Context::from_waker(Waker::noop());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut fa, mut fb) = (None, None);
    while fa.is_none() || fb.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "reads never completed"
        );
        // The flusher's turn: hands the queued reads to the kernel.
        assert!(ring.poll_flush(&mut flusher).is_pending());
        reap_after_wait(&mut ring);
        if let Poll::Ready(v) = a.as_mut().poll(&mut cx) {
            fa = Some(v);
        }
        if let Poll::Ready(v) = b.as_mut().poll(&mut cx) {
            fb = Some(v);
        }
    }
    for (fetched, range) in [(fa.unwrap(), 0..3), (fb.unwrap(), 3..6)] {
        assert!(fetched.failures.is_empty());
        flin_engine::with_staged(&fetched.staged, || {
            for i in range {
                assert_eq!(e.get(&key(i)), Some(value(i)), "key {i}");
            }
        });
    }
}

/// Records of very different lengths, read one after another: the first read of each is
/// sized by the records read before it, so it is sometimes too short (a 30 KB record after
/// small ones: a second read for the rest) and sometimes too long (a small record after large
/// ones, or the last record of a segment: no read past the file). Every value comes back whole.
#[test]
fn records_of_mixed_lengths_are_read_whole_on_the_ring_and_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), options()).unwrap();
    let mixed = |i: u32| -> Vec<u8> {
        match i % 5 {
            0 => vec![b'a' + (i % 26) as u8; 30_000],
            1 => format!("v{i}").into_bytes(),
            _ => value(i),
        }
    };
    for i in 0..300 {
        e.put(&key(i), &mixed(i), 0).unwrap();
    }
    let keys: Vec<Vec<u8>> = (0..300).map(key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    // Only key `i` is read inside the buffers: reading others would fault their pages in.
    let check = |i: u32, fetched: Fetched| {
        assert!(
            fetched.failures.is_empty(),
            "key {i}: {:?}",
            fetched.failures.first().map(|f| f.1.to_string())
        );
        flin_engine::with_staged(&fetched.staged, || {
            assert_eq!(e.get(&key(i)), Some(mixed(i)), "key {i}");
        });
    };
    // One key at a time, in order, so each read's guess follows the previous record.
    e.evict_for_tests().unwrap();
    let mut ring = e.cold_ring(4).unwrap();
    let mut fetched = 0;
    for (i, r) in (0..).zip(&refs) {
        if let Some(fetch) = e.db(0).fetch_cold_on(&mut ring, &[r], |_| false) {
            check(i, block_on_ring(&mut ring, fetch));
            fetched += 1;
        }
    }
    e.evict_for_tests().unwrap();
    for (i, r) in (0..).zip(&refs) {
        if let Some(fetch) = e.fetch_cold(&[r]) {
            check(i, block_on(fetch));
            fetched += 1;
        }
    }
    // Most keys were cold each time (a page holding a small record read through the map can
    // make its neighbours resident).
    assert!(fetched > 300, "{fetched} fetches");
    assert_eq!(e.stats().cold_read_errors, 0);
}

/// Records skip the page cache only while the store is larger than it could hold; a store
/// that fits (a restart left it on disk only) is read through the page cache and warms up.
#[test]
fn a_store_that_fits_in_memory_warms_up_through_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path(), 200);
    let keys: Vec<Vec<u8>> = (0..200).map(key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    e.evict_for_tests().unwrap();
    assert!(
        e.stats().cold_read_cache_bypass,
        "eviction acts as a store too large"
    );
    // Decided by size again: this machine holds a 200-record store many times over.
    e.force_cache_bypass_for_tests(false);
    assert!(!e.stats().cold_read_cache_bypass);
    let fetched = block_on(e.fetch_cold(&refs).expect("evicted records are cold"));
    assert!(fetched.failures.is_empty());
    assert!(fetched.staged.is_empty(), "read through the page cache");
    assert_eq!(e.stats().cold_reads_direct, 0);
    assert!(e.fetch_cold(&refs).is_none(), "resident now");
    for i in 0..200 {
        assert_eq!(e.get(&key(i)), Some(value(i)), "key {i}");
    }
}

#[test]
fn keys_without_records_need_no_read() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path(), 100);
    e.evict_for_tests().unwrap();
    assert!(e.fetch_cold(&[b"absent-1", b"absent-2"]).is_none());
}

#[test]
fn reads_of_one_record_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path(), 100);
    e.evict_for_tests().unwrap();
    // Held reads keep the first queued while the others arrive.
    e.hold_cold_reads(true);
    let k = key(3);
    let fetches: Vec<_> = (0..4).map(|_| e.fetch_cold(&[&k]).expect("cold")).collect();
    e.hold_cold_reads(false);
    for f in fetches {
        assert!(block_on(f).failures.is_empty());
    }
    let st = e.stats();
    assert_eq!(st.cold_reads, 1, "one read for four callers");
    assert_eq!(st.cold_reads_merged, 3);
}

#[test]
fn a_failing_read_is_reported_for_its_key_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path(), 50);
    e.evict_for_tests().unwrap();
    e.inject_cold_read_eio(true);
    let (a, b) = (key(7), b"absent".to_vec());
    let failures = block_on(e.fetch_cold(&[&b, &a]).expect("cold")).failures;
    assert_eq!(failures.len(), 1);
    let (index, err) = &failures[0];
    assert_eq!(*index, 1, "the second key's record failed");
    let text = err.to_string();
    assert!(matches!(err, Error::Io { .. }), "{text}");
    assert!(text.contains(".seg"), "names the file: {text}");
    assert!(e.stats().cold_read_errors >= 1);
    // The disk recovers: the next fetch reads it.
    e.inject_cold_read_eio(false);
    assert!(block_on(e.fetch_cold(&[&a]).expect("still cold"))
        .failures
        .is_empty());
    assert_eq!(e.get(&a), Some(value(7)));
}

#[test]
fn a_flipped_byte_on_disk_is_a_checksum_error_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path(), 50);
    e.sync().unwrap();
    // Find the segment file holding key 20's value and flip a byte of it.
    let needle = value(20);
    let mut flipped = None;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "seg") {
            let bytes = std::fs::read(&p).unwrap();
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.write_all_at(&[bytes[at + 5] ^ 0x20], (at + 5) as u64)
                    .unwrap();
                f.sync_all().unwrap();
                flipped = Some(p);
                break;
            }
        }
    }
    let flipped = flipped.expect("the value is in a segment file");
    e.evict_for_tests().unwrap();
    let k = key(20);
    let failures = block_on(e.fetch_cold(&[&k]).expect("cold")).failures;
    assert_eq!(failures.len(), 1);
    let text = failures[0].1.to_string();
    assert!(matches!(failures[0].1, Error::Corrupt { .. }), "{text}");
    assert!(text.contains("checksum"), "{text}");
    let name = flipped.file_name().unwrap().to_string_lossy().to_string();
    assert!(text.contains(&name), "names {name}: {text}");
    // Other keys read fine.
    let other = key(40);
    assert!(block_on(e.fetch_cold(&[&other]).expect("cold"))
        .failures
        .is_empty());
    assert_eq!(e.get(&other), Some(value(40)));
}

#[test]
fn overwriting_an_evicted_key_fetches_its_old_record_first() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path(), 100);
    e.evict_for_tests().unwrap();
    // A write must compare the key with the record its slot points at: that record is cold.
    let k = key(55);
    let fetched = block_on(e.fetch_cold(&[&k]).expect("cold"));
    assert!(fetched.failures.is_empty());
    flin_engine::with_staged(&fetched.staged, || e.put(&k, b"new", 0)).unwrap();
    assert_eq!(e.get(&k).as_deref(), Some(&b"new"[..]));
    // After a restart every key holds its newest value.
    drop(e);
    let e = Engine::open(dir.path(), options()).unwrap();
    assert_eq!(e.get(&k).as_deref(), Some(&b"new"[..]));
    assert_eq!(e.get(&key(56)), Some(value(56)));
    assert_eq!(e.len(), 100);
}

/// While memory is short the log collects each segment's hint entries as it appends, so the
/// hint is written without reading the segment back: it must be byte for byte the hint a scan
/// of the segment writes.
#[test]
fn hints_collected_while_appending_equal_hints_from_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = Engine::open(dir.path(), hinted()).unwrap();
        e.put(b"first", b"x", 0).unwrap();
        // Memory counts as short from here: the segments begun from now on collect hints.
        e.evict_for_tests().unwrap();
        for i in 0..2000u32 {
            let expire = if i % 7 == 0 { u64::MAX / 2 } else { 0 };
            e.put(&key(i % 1500), &value(i), expire).unwrap();
            if i % 11 == 0 {
                e.delete(&key(i / 2)).unwrap();
            }
        }
        e.close().unwrap();
    }
    let hints = |d: &std::path::Path| -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "hint"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                (name, std::fs::read(&p).unwrap())
            })
            .collect()
    };
    let collected = hints(dir.path());
    assert!(collected.len() >= 10, "{} hint files", collected.len());
    // The same segments, hinted by scanning: a copy without hints, opened and closed.
    let copy = tempfile::tempdir().unwrap();
    common::copy_dir(dir.path(), copy.path());
    for name in collected.keys() {
        std::fs::remove_file(copy.path().join(name)).unwrap();
    }
    Engine::open(copy.path(), hinted())
        .unwrap()
        .close()
        .unwrap();
    // (The copy's open began one more segment, hinted at its close too.)
    let scanned = hints(copy.path());
    for (name, bytes) in &collected {
        let other = scanned
            .get(name)
            .unwrap_or_else(|| panic!("{name} not written by a scan"));
        let differs = bytes.iter().zip(other).position(|(a, b)| a != b);
        assert!(
            bytes == other,
            "{name}: {} bytes collected, {} scanned, first difference at {differs:?}",
            bytes.len(),
            other.len()
        );
    }
}

fn hinted() -> Options {
    Options {
        hints: true,
        ..options()
    }
}
