//! Guards against losing or reordering replies when 10,000 commands arrive in one write.

mod common;

use common::{cmd, start};

#[test]
fn ten_thousand_pipelined_commands_in_one_write() {
    let srv = start();
    let mut raw = srv.raw();
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..5_000 {
        let key = format!("key:{i}");
        let value = format!("value-{i}");
        req.extend_from_slice(&cmd(&[b"SET", key.as_bytes(), value.as_bytes()]));
        want.extend_from_slice(b"+OK\r\n");
        req.extend_from_slice(&cmd(&[b"GET", key.as_bytes()]));
        want.extend_from_slice(format!("${}\r\n{value}\r\n", value.len()).as_bytes());
    }
    // One write from our side; the writer thread keeps sending while we read.
    let mut sender = raw.stream.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        use std::io::Write;
        sender.write_all(&req).unwrap();
    });
    let got = raw.read_n(want.len());
    t.join().unwrap();
    assert!(got == want, "replies differ from the expected sequence");
    assert_eq!(srv.handle().stats().ops_processed, 10_000);
}
