//! Guards against a client that pipelines without reading growing the server's memory without
//! bound, or slowing other clients.

mod common;

use common::{cmd, start_with, wait_for};
use std::io::Write;
use std::time::Duration;

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
        || {
            let s = srv.handle().stats();
            s.output_queued_bytes > 0 || sender.is_finished()
        },
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
