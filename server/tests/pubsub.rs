//! Guards Pub/Sub across connections and workers: every subscriber gets every message of a
//! publisher in publish order, with Redis 7.0's bytes (checked by hand against
//! redis-server 7.0.15); PUBLISH counts receivers as Redis does; a subscriber that never
//! reads is cut off at the pubsub output limit while the others go on.

mod common;

use common::{cmd, start, wait_for, Raw, TestServer};
use std::io::Read;
use std::time::Duration;

fn message(channel: &str, payload: &str) -> Vec<u8> {
    format!(
        "*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n{payload}\r\n",
        channel.len(),
        payload.len()
    )
    .into_bytes()
}

fn subscriber(srv: &TestServer, channel: &str) -> Raw {
    let mut s = srv.raw();
    let reply = format!(
        "*3\r\n$9\r\nsubscribe\r\n${}\r\n{channel}\r\n:1\r\n",
        channel.len()
    );
    s.expect(&cmd(&[b"SUBSCRIBE", channel.as_bytes()]), reply.as_bytes());
    s
}

#[test]
fn messages_reach_subscribers_on_every_worker_in_publish_order() {
    let srv = start();
    // Several connections: the kernel spreads them over both workers' listeners.
    let mut subs: Vec<Raw> = (0..6).map(|_| subscriber(&srv, "news")).collect();
    let mut psub = srv.raw();
    psub.expect(
        &cmd(&[b"PSUBSCRIBE", b"n*"]),
        b"*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n",
    );
    let mut publisher = srv.raw();
    const MESSAGES: usize = 500;
    let mut expected = Vec::new();
    let mut expected_p = Vec::new();
    for i in 0..MESSAGES {
        let payload = format!("m{i}");
        // 6 channel subscribers and one pattern subscriber.
        publisher.expect(&cmd(&[b"PUBLISH", b"news", payload.as_bytes()]), b":7\r\n");
        expected.extend_from_slice(&message("news", &payload));
        expected_p.extend_from_slice(
            format!(
                "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n${}\r\n{payload}\r\n",
                payload.len()
            )
            .as_bytes(),
        );
    }
    for s in &mut subs {
        assert_eq!(s.read_n(expected.len()), expected);
    }
    assert_eq!(psub.read_n(expected_p.len()), expected_p);
    // Introspection from another client.
    publisher.expect(
        &cmd(&[b"PUBSUB", b"NUMSUB", b"news", b"none"]),
        b"*4\r\n$4\r\nnews\r\n:6\r\n$4\r\nnone\r\n:0\r\n",
    );
    publisher.expect(&cmd(&[b"PUBSUB", b"NUMPAT"]), b":1\r\n");
    publisher.expect(&cmd(&[b"PUBSUB", b"CHANNELS"]), b"*1\r\n$4\r\nnews\r\n");
    // A subscriber that leaves is no longer counted.
    drop(subs.pop());
    wait_for("the subscriber to leave", Duration::from_secs(10), || {
        publisher.request(&[b"PUBLISH", b"news", b"x"]).as_deref() == Some(":6\r\n")
    });
}

#[test]
fn subscribed_mode_allows_only_the_subscribe_family() {
    let srv = start();
    let mut s = subscriber(&srv, "c");
    s.expect(
        &cmd(&[b"GET", b"k"]),
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    s.expect(&cmd(&[b"PING"]), b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    let mut other = srv.raw();
    let list = other
        .request(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"])
        .unwrap();
    assert!(
        list.contains(" flags=P db=0 sub=1 psub=0 ssub=0 "),
        "{list}"
    );
    other.expect(&cmd(&[b"CLIENT", b"KILL", b"TYPE", b"pubsub"]), b":1\r\n");
    assert!(s.read_to_close().is_empty());
    other.expect(
        &cmd(&[b"UNSUBSCRIBE"]),
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
    );
}

#[test]
fn a_subscriber_that_never_reads_is_closed_and_the_others_go_on() {
    let srv = start();
    let mut admin = srv.raw();
    admin.expect(
        &cmd(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"pubsub 256kb 0 0",
        ]),
        b"+OK\r\n",
    );
    let slow = subscriber(&srv, "firehose");
    // A subscriber that reads everything, on its own thread.
    let mut fast = std::net::TcpStream::connect(srv.addr).unwrap();
    std::io::Write::write_all(&mut fast, &cmd(&[b"SUBSCRIBE", b"firehose"])).unwrap();
    let confirm = b"*3\r\n$9\r\nsubscribe\r\n$8\r\nfirehose\r\n:1\r\n";
    let mut got = vec![0u8; confirm.len()];
    fast.read_exact(&mut got).unwrap();
    assert_eq!(&got[..], &confirm[..]);
    let (total_tx, total_rx) = std::sync::mpsc::channel::<usize>();
    let reader = std::thread::spawn(move || {
        fast.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let mut want = None;
        while want != Some(got) {
            if want.is_none() {
                want = total_rx.try_recv().ok();
                if want == Some(got) {
                    break;
                }
            }
            let n = fast
                .read(&mut buf)
                .expect("the reading subscriber keeps getting messages");
            assert!(n > 0, "the reading subscriber was closed");
            got += n;
        }
        got
    });
    let payload = vec![b'x'; 64 * 1024];
    let one = message("firehose", std::str::from_utf8(&payload).unwrap()).len();
    let mut publisher = srv.raw();
    // Kernel buffers hold some megabytes before the server's own buffer grows; bounded.
    let mut sent = 0;
    let mut slow_gone = false;
    for _ in 0..4000 {
        let n = publisher
            .request(&[b"PUBLISH", b"firehose", &payload])
            .unwrap();
        sent += 1;
        if n == ":1\r\n" {
            slow_gone = true;
            break;
        }
        assert_eq!(n, ":2\r\n");
    }
    assert!(slow_gone, "the never-reading subscriber was not closed");
    total_tx.send(sent * one).unwrap();
    assert_eq!(reader.join().unwrap(), sent * one);
    drop(slow);
}
