//! Guards against acknowledging writes before they are durable under --fsync always.

mod common;

use common::{cmd, start_with};
use flin_server::FsyncPolicy;

#[test]
fn replies_to_writes_leave_after_the_fsync() {
    let srv = start_with(|c| c.fsync = FsyncPolicy::Always);
    let mut raw = srv.raw();
    for i in 0..50 {
        let key = format!("k{i}");
        raw.expect(&cmd(&[b"SET", key.as_bytes(), b"v"]), b"+OK\r\n");
        let e = srv.handle().stats().engine;
        assert!(
            e.durable_seq >= e.last_seq,
            "acknowledged before durable: {e:?}"
        );
    }
    // A pipelined batch shares fsyncs.
    let mut batch = Vec::new();
    for i in 0..200 {
        batch.extend_from_slice(&cmd(&[b"SET", format!("p{i}").as_bytes(), b"v"]));
    }
    raw.send(&batch);
    assert_eq!(raw.read_n(5 * 200), b"+OK\r\n".repeat(200));
    let e = srv.handle().stats().engine;
    assert!(e.durable_seq >= e.last_seq);
    assert!(
        e.fsyncs < 250,
        "one fsync per write instead of per batch: {}",
        e.fsyncs
    );
    // Reads are not held back.
    raw.expect(b"GET k1\r\n", b"$1\r\nv\r\n");
}
