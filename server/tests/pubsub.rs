//! Guards Pub/Sub across connections and workers: every subscriber gets every message of a
//! publisher in publish order, with Redis 7.0's bytes (checked by hand against
//! redis-server 7.0.15); PUBLISH counts receivers as Redis does; a subscriber that never
//! reads is cut off at the pubsub output limit while the others go on.

mod common;

use common::{cmd, start, wait_for, Raw, TestServer};
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
    const LIMIT: usize = 1 << 20;
    let srv = start();
    let mut admin = srv.raw();
    admin.expect(
        &cmd(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"pubsub 1mb 0 0",
        ]),
        b"+OK\r\n",
    );
    let slow = subscriber(&srv, "firehose");
    let mut fast = subscriber(&srv, "firehose");
    let payload = "x".repeat(64 * 1024);
    let one = message("firehose", &payload);
    let mut publisher = srv.raw();
    // The reading subscriber takes each message before the next is published, so it is never
    // behind; the other one's replies fill the kernel's buffers, then the server's up to the
    // limit. Bounded: past that much, the limit did not act.
    let most = (common::kernel_socket_buffers_max() as usize + 2 * LIMIT) / one.len() + 10;
    let mut slow_gone = false;
    for _ in 0..most {
        let n = publisher
            .request(&[b"PUBLISH", b"firehose", payload.as_bytes()])
            .unwrap();
        assert_eq!(
            fast.read_n(one.len()),
            one,
            "the reading subscriber lost a message"
        );
        if n == ":1\r\n" {
            slow_gone = true;
            break;
        }
        assert_eq!(n, ":2\r\n");
    }
    assert!(slow_gone, "the never-reading subscriber was not closed");
    publisher.expect(
        &cmd(&[b"PUBSUB", b"NUMSUB", b"firehose"]),
        b"*2\r\n$8\r\nfirehose\r\n:1\r\n",
    );
    drop(slow);
}
