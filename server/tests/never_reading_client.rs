//! Guards against a client that pipelines without reading growing the server's memory without
//! bound, or keeping other clients from being served. (How much it slows them is measured by
//! `bench/slow-reader.sh`, not here: no timing asserts.)

mod common;

use common::{cmd, start_with, wait_for, TestServer};
use std::io::Write;
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connects a client that writes `count` pipelined GETs of `key` from a thread and never reads
/// a reply. Returns the socket (keep it open: closing it ends the stall) and the sender.
fn never_reading_client(srv: &TestServer, key: &[u8], count: usize) -> (TcpStream, JoinHandle<()>) {
    let slow = TcpStream::connect(srv.addr).unwrap();
    let one = cmd(&[b"GET", key]);
    let batch: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * count)
        .collect();
    let mut writer = slow.try_clone().unwrap();
    // Sends until the kernel buffers are full (the write then blocks until the socket is shut
    // down) or everything went.
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&batch);
    });
    (slow, sender)
}

#[test]
fn output_stays_bounded_for_a_client_that_never_reads() {
    const LIMIT: u64 = 256 * 1024;
    const VALUE_LEN: usize = 100 * 1024;
    let srv = start_with(|c| c.client_output_limit = LIMIT);
    let mut setup = srv.raw();
    setup.expect(&cmd(&[b"SET", b"big", &vec![b'x'; VALUE_LEN]]), b"+OK\r\n");

    // 20,000 GETs of 100 KiB = 2 GB of replies if the server buffered them all.
    let slow = std::net::TcpStream::connect(srv.addr).unwrap();
    slow.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let one = cmd(&[b"GET", b"big"]);
    let batch: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * 20_000)
        .collect();
    let mut writer = slow.try_clone().unwrap();
    // Sends until the server stops reading (the socket buffers fill) or everything went.
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&batch);
    });
    wait_for(
        "the server to stop reading the slow client",
        Duration::from_secs(20),
        // Replies to 20,000 GETs cannot all fit in the kernel's socket buffers: the server
        // must end up holding some. (The sender may finish first: 480 KB of requests fit.)
        || srv.handle().stats().output_queued_bytes > 0,
    );
    // Another client is served promptly meanwhile.
    let mut other = srv.raw();
    for _ in 0..100 {
        other.expect(b"PING\r\n", b"+PONG\r\n");
    }
    let s = srv.handle().stats();
    eprintln!("stats while blocked: {s:?}");
    let bound = LIMIT + VALUE_LEN as u64 + 64 * 1024;
    assert!(
        s.output_queued_bytes_peak <= bound,
        "queued output peaked at {} bytes, bound {bound}",
        s.output_queued_bytes_peak
    );
    assert!(
        s.ops_processed < 20_000,
        "the server kept executing for a client that does not read"
    );
    drop(slow);
    let _ = sender.join();
    wait_for(
        "the slow client's output to be released",
        Duration::from_secs(20),
        || srv.handle().stats().output_queued_bytes == 0,
    );
}

/// Two clients pipeline GETs of a 100 KiB value and never read, while a well-behaved client
/// runs 2,000 requests, each reply checked. The stalled clients stay stalled throughout, the
/// server's queued output stays within the per-client limit for each of them, and the server
/// executes only the GETs whose replies fit in its limit and the kernel's socket buffers.
#[test]
fn well_behaved_client_is_served_beside_never_reading_ones() {
    const LIMIT: u64 = 256 * 1024;
    const VALUE_LEN: usize = 100 * 1024;
    const STALLED: u64 = 2;
    const STALLED_GETS: usize = 50_000; // 5 GB of replies each, if the server produced them
    const REQUESTS: u32 = 2_000;
    let srv = start_with(|c| c.client_output_limit = LIMIT);
    let mut setup = srv.raw();
    setup.expect(&cmd(&[b"SET", b"big", &vec![b'x'; VALUE_LEN]]), b"+OK\r\n");
    let stalled: Vec<_> = (0..STALLED)
        .map(|_| never_reading_client(&srv, b"big", STALLED_GETS))
        .collect();
    // Both stalled: the server holds replies for them that they do not read.
    let per_client_bound = LIMIT + VALUE_LEN as u64 + 64 * 1024;
    wait_for(
        "the server to stop reading both slow clients",
        Duration::from_secs(30),
        || {
            let s = srv.handle().stats();
            assert!(s.output_queued_bytes <= STALLED * per_client_bound, "{s:?}");
            s.output_queued_bytes > STALLED * LIMIT / 2
        },
    );

    let mut good = srv.raw();
    for i in 0..REQUESTS {
        let key = format!("w{}", i / 2);
        let value = format!("value-{i:05}-{}", "v".repeat((i as usize * 13) % 300));
        if i % 2 == 0 {
            good.expect(
                &cmd(&[b"SET", key.as_bytes(), value.as_bytes()]),
                b"+OK\r\n",
            );
        } else {
            // The value the previous request SET.
            let set = format!(
                "value-{:05}-{}",
                i - 1,
                "v".repeat(((i - 1) as usize * 13) % 300)
            );
            let reply = format!("${}\r\n{set}\r\n", set.len());
            good.expect(&cmd(&[b"GET", key.as_bytes()]), reply.as_bytes());
        }
        if i % 100 == 0 {
            let s = srv.handle().stats();
            assert!(
                s.output_queued_bytes <= STALLED * per_client_bound,
                "request {i}: {} bytes queued, bound {}",
                s.output_queued_bytes,
                STALLED * per_client_bound
            );
        }
    }

    let s = srv.handle().stats();
    eprintln!("stats after the well-behaved client: {s:?}");
    // Still stalled: the well-behaved client was served beside them, not after them.
    assert!(
        s.output_queued_bytes > STALLED * LIMIT / 2,
        "the slow clients' output drained: {s:?}"
    );
    assert!(
        s.output_queued_bytes_peak <= per_client_bound,
        "one client's queued output peaked at {} bytes, bound {per_client_bound}",
        s.output_queued_bytes_peak
    );
    let stalled_gets = s.ops_processed - 1 - u64::from(REQUESTS);
    let stalled_gets_max =
        STALLED * (per_client_bound + common::kernel_socket_buffers_max()) / VALUE_LEN as u64;
    assert!(
        stalled_gets <= stalled_gets_max,
        "{stalled_gets} GETs executed for clients that read nothing (at most \
         {stalled_gets_max} replies fit in the output limit and the socket buffers)"
    );
    for (slow, sender) in stalled {
        slow.shutdown(std::net::Shutdown::Both).unwrap();
        drop(slow);
        let _ = sender.join();
    }
    wait_for(
        "the slow clients' output to be released",
        Duration::from_secs(20),
        || srv.handle().stats().output_queued_bytes == 0,
    );
}
