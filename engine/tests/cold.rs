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

use flin_engine::{ColdRing, Engine, Error, Failures, Fetch, Fsync, Options};

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

/// Who reads the cold records: the engine's pool, or a ring of the caller's own. Every case
/// below runs with both.
enum Reader {
    Pool,
    Ring(Box<ColdRing>),
}

impl Reader {
    fn both(e: &Engine) -> [Reader; 2] {
        [
            Reader::Pool,
            Reader::Ring(Box::new(
                e.cold_ring(8).expect("io_uring is available here"),
            )),
        ]
    }

    fn fetch(&mut self, e: &Engine, keys: &[&[u8]]) -> Option<Fetch> {
        match self {
            Reader::Pool => e.fetch_cold(keys),
            Reader::Ring(r) => e.db(0).fetch_cold_on(r, keys, |_| false),
        }
    }

    /// Waits for `f`: the pool wakes this thread; a ring is polled and reaped here, as a
    /// server's event loop does.
    fn wait(&mut self, f: Fetch) -> Failures {
        match self {
            Reader::Pool => block_on(f),
            Reader::Ring(r) => {
                let waker = Waker::noop();
                let mut cx = Context::from_waker(waker);
                let mut f = pin!(f);
                loop {
                    if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                        return v;
                    }
                    let mut pfd = libc::pollfd {
                        fd: r.event_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
                    assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
                    r.reap();
                }
            }
        }
    }

    /// Fetches the records of `keys`, which must be cold, and waits for them.
    fn read(&mut self, e: &Engine, keys: &[&[u8]]) -> Failures {
        let f = self.fetch(e, keys).expect("cold");
        self.wait(f)
    }

    fn name(&self) -> &'static str {
        match self {
            Reader::Pool => "pool",
            Reader::Ring(_) => "ring",
        }
    }
}

/// Runs `case` once per reader, each on a fresh store of `n` keys.
fn each_reader(n: u32, case: impl Fn(&tempfile::TempDir, Engine, &mut Reader)) {
    for kind in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let e = store(dir.path(), n);
        let mut r = Reader::both(&e).into_iter().nth(kind).unwrap();
        eprintln!("reader: {}", r.name());
        case(&dir, e, &mut r);
    }
}

#[test]
fn evicted_records_are_fetched_then_read_from_memory() {
    each_reader(500, |_, e, r| {
        // In memory: nothing to fetch.
        let keys: Vec<Vec<u8>> = (0..500).map(key).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        assert!(r.fetch(&e, &refs).is_none());
        e.evict_for_tests().unwrap();
        let fetch = r.fetch(&e, &refs).expect("evicted records are cold");
        let failures = r.wait(fetch);
        assert!(
            failures.is_empty(),
            "{:?}",
            failures.first().map(|f| f.1.to_string())
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
        // Fetched: in memory now, so a second check finds nothing to read.
        assert!(r.fetch(&e, &refs).is_none());
        for i in 0..500 {
            assert_eq!(e.get(&key(i)), Some(value(i)), "key {i}");
        }
    });
}

#[test]
fn a_ring_reads_more_records_than_its_depth_and_large_ones_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), common::options(Fsync::Never, 8 << 20)).unwrap();
    // Values from one byte to 3 MiB: first pieces, whole pages, and pieces of 1 MiB.
    let sizes = [1usize, 100, 4000, 4096, 9000, 70_000, 1 << 20, 3 << 20];
    let big = |i: usize| -> Vec<u8> { (0..sizes[i]).map(|j| (j * 31 + i) as u8).collect() };
    for (i, _) in sizes.iter().enumerate() {
        e.put(&key(i as u32), &big(i), 0).unwrap();
    }
    for i in 0..200 {
        e.put(&key(1000 + i), &value(i), 0).unwrap();
    }
    e.evict_for_tests().unwrap();
    let mut r = Reader::Ring(Box::new(e.cold_ring(4).unwrap()));
    let keys: Vec<Vec<u8>> = (0..sizes.len() as u32).chain(1000..1200).map(key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let fetch = r.fetch(&e, &refs).expect("cold");
    assert!(r.wait(fetch).is_empty());
    assert_eq!(e.stats().cold_reads_in_flight, 0);
    for (i, size) in sizes.iter().enumerate() {
        assert_eq!(e.get(&key(i as u32)), Some(big(i)), "size {size}");
    }
}

#[test]
fn dropping_a_ring_answers_its_reads() {
    let dir = tempfile::tempdir().unwrap();
    let e = store(dir.path(), 20);
    e.evict_for_tests().unwrap();
    let mut ring = e.cold_ring(2).unwrap();
    e.hold_cold_reads(true);
    let k = key(4);
    let fetch = e
        .db(0)
        .fetch_cold_on(&mut ring, &[&k], |_| false)
        .expect("cold");
    drop(ring);
    e.hold_cold_reads(false);
    let failures = block_on(fetch);
    assert_eq!(failures.len(), 1);
    assert!(matches!(failures[0].1, Error::Closed), "{}", failures[0].1);
    assert_eq!(e.stats().cold_reads_in_flight, 0);
}

#[test]
fn keys_without_records_need_no_read() {
    each_reader(100, |_, e, r| {
        e.evict_for_tests().unwrap();
        assert!(r.fetch(&e, &[b"absent-1", b"absent-2"]).is_none());
    });
}

#[test]
fn reads_of_one_record_are_merged() {
    each_reader(100, |_, e, r| {
        e.evict_for_tests().unwrap();
        // Held reads keep the first queued while the others arrive.
        e.hold_cold_reads(true);
        let k = key(3);
        let fetches: Vec<_> = (0..4).map(|_| r.fetch(&e, &[&k]).expect("cold")).collect();
        e.hold_cold_reads(false);
        for f in fetches {
            assert!(r.wait(f).is_empty());
        }
        let st = e.stats();
        assert_eq!(st.cold_reads, 1, "one read for four callers");
        assert_eq!(st.cold_reads_merged, 3);
    });
}

#[test]
fn a_failing_read_is_reported_for_its_key_and_nothing_else() {
    each_reader(50, |_, e, r| {
        e.evict_for_tests().unwrap();
        e.inject_cold_read_eio(true);
        let (a, b) = (key(7), b"absent".to_vec());
        let failures = r.read(&e, &[&b, &a]);
        assert_eq!(failures.len(), 1);
        let (index, err) = &failures[0];
        assert_eq!(*index, 1, "the second key's record failed");
        let text = err.to_string();
        assert!(matches!(err, Error::Io { .. }), "{text}");
        assert!(text.contains(".seg"), "names the file: {text}");
        assert!(e.stats().cold_read_errors >= 1);
        // The disk recovers: the next fetch reads it.
        e.inject_cold_read_eio(false);
        assert!(r.read(&e, &[&a]).is_empty());
        assert_eq!(e.get(&a), Some(value(7)));
    });
}

#[test]
fn a_flipped_byte_on_disk_is_a_checksum_error_with_file_and_offset() {
    each_reader(50, |dir, e, r| {
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
        let failures = r.read(&e, &[&k]);
        assert_eq!(failures.len(), 1);
        let text = failures[0].1.to_string();
        assert!(matches!(failures[0].1, Error::Corrupt { .. }), "{text}");
        assert!(text.contains("checksum"), "{text}");
        let name = flipped.file_name().unwrap().to_string_lossy().to_string();
        assert!(text.contains(&name), "names {name}: {text}");
        // Other keys read fine.
        let other = key(40);
        assert!(r.read(&e, &[&other]).is_empty());
        assert_eq!(e.get(&other), Some(value(40)));
    });
}

#[test]
fn overwriting_an_evicted_key_fetches_its_old_record_first() {
    each_reader(100, |dir, e, r| {
        e.evict_for_tests().unwrap();
        // A write must compare the key with the record its slot points at: that record is cold.
        let k = key(55);
        assert!(r.read(&e, &[&k]).is_empty());
        e.put(&k, b"new", 0).unwrap();
        assert_eq!(e.get(&k).as_deref(), Some(&b"new"[..]));
        // After a restart every key holds its newest value.
        drop(e);
        let e = Engine::open(dir.path(), options()).unwrap();
        assert_eq!(e.get(&k).as_deref(), Some(&b"new"[..]));
        assert_eq!(e.get(&key(56)), Some(value(56)));
        assert_eq!(e.len(), 100);
    });
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
