//! Data larger than memory: a GET or SET whose record is not in memory waits for the disk on
//! its own connection, never on the worker. Guards against one client's cold read stalling
//! every other client of its worker, against pipelined replies coming back out of order
//! around a cold read, and against a failed cold read (an I/O error, a flipped byte on disk)
//! serving wrong data or taking the connection or the server down.

mod common;

use std::time::Duration;

use common::{cmd, info_field, Raw, TestServer};
use flin_server::DriverChoice;

/// Where the worker's cold reads go.
#[derive(Clone, Copy)]
enum Reader {
    /// Its own io_uring, the worker on epoll or on io_uring.
    Ring(DriverChoice),
    /// The engine's thread pool.
    Pool,
}

/// One worker, so every connection shares it; small segments, so records spread over files.
fn server(reader: Reader) -> TestServer {
    common::start_with(|c| {
        c.threads = 1;
        match reader {
            Reader::Ring(driver) => c.driver = driver,
            Reader::Pool => c.cold_read_depth = 0,
        }
        c.segment_size = 64 * 1024;
    })
}

fn value(i: u32) -> String {
    format!("value-{i}-").repeat(30)
}

fn load(t: &TestServer, n: u32) {
    let mut r = t.raw();
    let mut pipeline = Vec::new();
    for i in 0..n {
        pipeline.extend(cmd(&[
            b"SET",
            format!("k{i}").as_bytes(),
            value(i).as_bytes(),
        ]));
    }
    r.send(&pipeline);
    for _ in 0..n {
        assert_eq!(r.read_n(5), b"+OK\r\n");
    }
}

fn info(r: &mut Raw) -> String {
    r.request(&[b"INFO", b"stats"]).expect("INFO answers")
}

fn a_cold_get_waits_alone_while_the_workers_other_clients_are_served(reader: Reader) {
    let t = server(reader);
    load(&t, 400);
    t.handle().engine().evict_for_tests().unwrap();
    let mut hot = t.raw();
    // Written again: its new record is in memory.
    assert_eq!(
        hot.request(&[b"SET", b"k7", value(7).as_bytes()]).unwrap(),
        "+OK\r\n"
    );
    t.handle().engine().hold_cold_reads(true);
    let mut cold = t.raw();
    cold.send(&cmd(&[b"GET", b"k300"]));
    common::wait_for(
        "the cold GET's read to be queued",
        Duration::from_secs(10),
        || info_field(&info(&mut hot), "cold_reads_in_flight") == "1",
    );
    // The cold GET's read is held; the same worker still answers the other client.
    for _ in 0..20 {
        assert_eq!(hot.get("k7"), Some(value(7)));
    }
    let before = info(&mut hot);
    assert_eq!(info_field(&before, "cold_reads_in_flight"), "1", "{before}");
    t.handle().engine().hold_cold_reads(false);
    let reply = cold.read_n(format!("${}\r\n{}\r\n", value(300).len(), value(300)).len());
    assert_eq!(
        String::from_utf8_lossy(&reply),
        format!("${}\r\n{}\r\n", value(300).len(), value(300))
    );
    let after = info(&mut hot);
    assert!(info_field(&after, "cold_reads").parse::<u64>().unwrap() >= 1);
    assert!(info_field(&after, "cold_waits").parse::<u64>().unwrap() >= 1);
    assert_eq!(info_field(&after, "residency_checks"), "1");
    let rings = matches!(reader, Reader::Ring(_)) as u8;
    assert_eq!(info_field(&after, "cold_read_rings"), rings.to_string());
}

/// Whether the file system under `dir` takes `O_DIRECT` reads (tmpfs may not).
fn direct_io_works(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let seg = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment file");
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(seg)
        .is_ok()
}

fn cold_reads(r: &mut Raw) -> (u64, u64) {
    let st = info(r);
    let n = |f| info_field(&st, f).parse::<u64>().unwrap();
    (n("cold_reads"), n("cold_reads_direct"))
}

fn a_value_read_from_disk_once_stays_out_of_memory_and_twice_stays_in(reader: Reader) {
    let t = server(reader);
    load(&t, 100);
    t.handle().engine().evict_for_tests().unwrap();
    let mut r = t.raw();
    let (reads0, direct0) = cold_reads(&mut r);
    assert_eq!(r.get("k42"), Some(value(42)));
    let (reads1, direct1) = cold_reads(&mut r);
    assert_eq!(reads1, reads0 + 1, "the first GET reads from disk");
    if !direct_io_works(t.dir.path()) {
        assert_eq!(direct1, direct0);
        // This file system refuses O_DIRECT: the read went through the page cache, which keeps
        // the value for the next GET.
        assert_eq!(r.get("k42"), Some(value(42)));
        assert_eq!(cold_reads(&mut r).0, reads1);
        return;
    }
    // Read around the page cache, and only the record's blocks: the keys next to it (in the
    // same page) are each a cold read of their own.
    for i in 43..48 {
        assert_eq!(r.get(&format!("k{i}")), Some(value(i)));
    }
    assert_eq!(
        direct1,
        direct0 + 1,
        "the first GET reads around the page cache"
    );
    let (reads2, direct2) = cold_reads(&mut r);
    assert_eq!((reads2, direct2), (reads1 + 5, direct1 + 5), "neighbours");
    // A second GET reads from disk again, through the page cache this time (the record was
    // read recently)...
    assert_eq!(r.get("k42"), Some(value(42)));
    let (reads3, direct3) = cold_reads(&mut r);
    assert_eq!((reads3, direct3), (reads2 + 1, direct2), "second GET");
    // ...so later ones find it in memory.
    for _ in 0..3 {
        assert_eq!(r.get("k42"), Some(value(42)));
    }
    assert_eq!(cold_reads(&mut r).0, reads3, "later GETs read memory");
}

fn a_pipeline_mixing_cold_and_hot_keys_keeps_its_order(reader: Reader) {
    let t = server(reader);
    load(&t, 400);
    t.handle().engine().evict_for_tests().unwrap();
    let mut r = t.raw();
    // Warm a few (a record read from disk a second time stays in memory), so the pipeline
    // mixes records in memory and on disk.
    for _ in 0..2 {
        for i in (0..400).step_by(10) {
            assert_eq!(r.get(&format!("k{i}")), Some(value(i)));
        }
    }
    let mut model: std::collections::HashMap<String, String> =
        (0..400).map(|i| (format!("k{i}"), value(i))).collect();
    let mut pipeline = Vec::new();
    let mut expected = Vec::new();
    let bulk = |v: &str| format!("${}\r\n{v}\r\n", v.len()).into_bytes();
    for (n, i) in (0..400).rev().step_by(3).enumerate() {
        let k = format!("k{i}");
        pipeline.extend(cmd(&[b"GET", k.as_bytes()]));
        expected.extend(bulk(&model[&k]));
        if n % 5 == 0 {
            // Writes between the reads, to keys cold or read before.
            let w = format!("k{}", i / 2);
            pipeline.extend(cmd(&[b"SET", w.as_bytes(), b"new"]));
            expected.extend(b"+OK\r\n");
            model.insert(w.clone(), "new".into());
            pipeline.extend(cmd(&[b"GET", w.as_bytes()]));
            expected.extend(bulk("new"));
        }
    }
    r.send(&pipeline);
    let got = r.read_n(expected.len());
    assert!(got == expected, "replies out of order or wrong");
    let st = info(&mut r);
    assert!(
        info_field(&st, "cold_reads").parse::<u64>().unwrap() > 0,
        "{st}"
    );
}

fn a_failing_cold_read_answers_an_error_and_everything_goes_on(reader: Reader) {
    let t = server(reader);
    load(&t, 200);
    let engine = t.handle().engine();
    engine.evict_for_tests().unwrap();
    engine.inject_cold_read_eio(true);
    let mut r = t.raw();
    let reply = r.request(&[b"GET", b"k150"]).unwrap();
    assert!(reply.starts_with("-ERR"), "{reply}");
    assert!(reply.contains("disk"), "says what failed: {reply}");
    // A pipeline: the failing key's request gets the error, its neighbours their replies.
    let mut pipeline = cmd(&[b"PING"]);
    pipeline.extend(cmd(&[b"GET", b"k151"]));
    pipeline.extend(cmd(&[b"GET", b"absent"]));
    r.send(&pipeline);
    assert_eq!(r.read_n(7), b"+PONG\r\n");
    let line = String::from_utf8(read_line(&mut r)).unwrap();
    assert!(line.starts_with("-ERR"), "{line}");
    assert_eq!(r.read_n(5), b"$-1\r\n");
    // The disk recovers: the same connection reads the value.
    engine.inject_cold_read_eio(false);
    assert_eq!(r.get("k150"), Some(value(150)));
    let st = info(&mut r);
    assert!(
        info_field(&st, "cold_read_errors").parse::<u64>().unwrap() >= 2,
        "{st}"
    );
    // Another client was never affected.
    assert_eq!(t.raw().get("k3"), Some(value(3)));
}

fn a_flipped_byte_on_disk_is_an_error_never_wrong_data(reader: Reader) {
    let t = server(reader);
    load(&t, 200);
    let engine = t.handle().engine();
    engine.sync().unwrap();
    // Flip a byte inside k120's value in its segment file.
    let needle = value(120);
    let mut done = false;
    for entry in std::fs::read_dir(t.dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "seg") {
            let bytes = std::fs::read(&p).unwrap();
            if let Some(at) = bytes
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
            {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.write_all_at(&[bytes[at + 9] ^ 0x01], (at + 9) as u64)
                    .unwrap();
                f.sync_all().unwrap();
                done = true;
                break;
            }
        }
    }
    assert!(done, "the value is in a segment file");
    engine.evict_for_tests().unwrap();
    let mut r = t.raw();
    let reply = r.request(&[b"GET", b"k120"]).unwrap();
    assert!(
        reply.starts_with("-ERR"),
        "never the damaged value: {reply}"
    );
    assert!(reply.contains("checksum"), "{reply}");
    assert_eq!(r.get("k121"), Some(value(121)));
    assert_eq!(r.request(&[b"PING"]).unwrap(), "+PONG\r\n");
}

fn read_line(r: &mut Raw) -> Vec<u8> {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.extend(r.read_n(1));
    }
    line
}

fn an_idle_store_does_not_check_residency(reader: Reader) {
    let t = server(reader);
    load(&t, 50);
    let mut r = t.raw();
    // Give the engine's sampler a moment's worth of rounds without making it wait blindly:
    // everything is in memory, so no round turns checks on.
    common::wait_for("a few samples", Duration::from_secs(5), || {
        t.handle().stats().uptime_secs >= 1
    });
    let st = info(&mut r);
    assert_eq!(info_field(&st, "residency_checks"), "0", "{st}");
    assert_eq!(info_field(&st, "cold_reads"), "0");
}

fn a_plain_set_over_a_value_on_disk_does_not_wait_for_the_disk(reader: Reader) {
    let t = server(reader);
    load(&t, 400);
    let engine = t.handle().engine();
    engine.evict_for_tests().unwrap();
    // No read may complete: a SET that needed one would never be answered.
    engine.hold_cold_reads(true);
    let mut r = t.raw();
    r.send(&cmd(&[b"SET", b"k250", b"fresh"]));
    assert_eq!(r.read_n(5), b"+OK\r\n");
    assert_eq!(r.get("k250").as_deref(), Some("fresh"));
    // A SET that must see the old value (NX) waits for its read like a GET.
    let mut nx = t.raw();
    nx.send(&cmd(&[b"SET", b"k251", b"x", b"NX"]));
    common::wait_for(
        "the SET NX's read to be queued",
        Duration::from_secs(10),
        || info_field(&info(&mut r), "cold_reads_in_flight") == "1",
    );
    engine.hold_cold_reads(false);
    assert_eq!(nx.read_n(5), b"$-1\r\n");
    assert_eq!(r.get("k251"), Some(value(251)));
    // The blind write is checked in the background: the old record counted dead.
    common::wait_for(
        "the blind write to be checked",
        Duration::from_secs(20),
        || info_field(&info(&mut r), "blind_writes_checked") == "1",
    );
    assert_eq!(info_field(&info(&mut r), "fingerprint_collisions"), "0");
}

/// MULTI, then each of `commands` queued, one request at a time.
fn queue(r: &mut Raw, commands: &[&[&[u8]]]) {
    r.send(&cmd(&[b"MULTI"]));
    assert_eq!(r.read_n(5), b"+OK\r\n");
    for c in commands {
        r.send(&cmd(c));
        assert_eq!(r.read_n(9), b"+QUEUED\r\n");
    }
}

fn exec_reads_its_cold_keys_before_it_holds_every_worker(reader: Reader) {
    let t = &server(reader);
    load(t, 400);
    let engine = t.handle().engine();
    let mut tx = t.raw();
    let mut other = t.raw();
    // One request at a time: a pipeline's look-ahead would read the keys before MULTI.
    queue(&mut tx, &[&[b"GET", b"k300"], &[b"SET", b"k301", b"new"]]);
    // Evicted after queueing (which reads them too), as memory pressure can.
    engine.evict_for_tests().unwrap();
    engine.hold_cold_reads(true);
    tx.send(&cmd(&[b"EXEC"]));
    // EXEC waits for its reads on its own connection, not under the gate.
    common::wait_for(
        "the transaction's reads to be queued",
        Duration::from_secs(10),
        || info_field(&info(&mut other), "cold_reads_in_flight") != "0",
    );
    other.send(&cmd(&[b"SET", b"free", b"1"]));
    assert_eq!(other.read_n(5), b"+OK\r\n");
    engine.hold_cold_reads(false);
    let v = value(300);
    let want = format!("*2\r\n${}\r\n{v}\r\n+OK\r\n", v.len());
    assert_eq!(String::from_utf8_lossy(&tx.read_n(want.len())), want);
    assert_eq!(tx.get("k301").as_deref(), Some("new"));
    // A record that cannot be read fails the transaction: nothing of it runs.
    queue(&mut tx, &[&[b"SET", b"k302", b"lost"], &[b"GET", b"k303"]]);
    engine.evict_for_tests().unwrap();
    engine.inject_cold_read_eio(true);
    tx.send(&cmd(&[b"EXEC"]));
    let line = read_line(&mut tx);
    assert!(
        line.starts_with(b"-EXECABORT"),
        "{}",
        String::from_utf8_lossy(&line)
    );
    engine.inject_cold_read_eio(false);
    assert_eq!(tx.get("k302"), Some(value(302)));
}

/// Every case, with cold reads on the worker's own io_uring (under both drivers) and on the
/// engine's thread pool.
macro_rules! on_ring_and_pool {
    ($($name:ident),* $(,)?) => {
        mod ring_epoll {
            $(#[test]
            fn $name() {
                super::$name(super::Reader::Ring(super::DriverChoice::Epoll))
            })*
        }
        mod ring_io_uring {
            $(#[test]
            fn $name() {
                super::$name(super::Reader::Ring(super::DriverChoice::IoUring))
            })*
        }
        mod pool {
            $(#[test]
            fn $name() {
                super::$name(super::Reader::Pool)
            })*
        }
    };
}

on_ring_and_pool!(
    a_cold_get_waits_alone_while_the_workers_other_clients_are_served,
    a_value_read_from_disk_once_stays_out_of_memory_and_twice_stays_in,
    a_pipeline_mixing_cold_and_hot_keys_keeps_its_order,
    a_failing_cold_read_answers_an_error_and_everything_goes_on,
    a_flipped_byte_on_disk_is_an_error_never_wrong_data,
    an_idle_store_does_not_check_residency,
    a_plain_set_over_a_value_on_disk_does_not_wait_for_the_disk,
    exec_reads_its_cold_keys_before_it_holds_every_worker,
);
