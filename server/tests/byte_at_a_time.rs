//! Guards against parser state bugs when a request arrives one byte per packet.

mod common;

use common::{cmd, start};

#[test]
fn requests_delivered_one_byte_at_a_time() {
    let srv = start();
    let mut raw = srv.raw();
    let mut req = cmd(&[b"SET", b"k\r\n1", b"a value\r\nwith CRLF"]);
    req.extend_from_slice(b"GET \"k\\r\\n1\"\r\n");
    req.extend_from_slice(&cmd(&[b"ECHO", b""]));
    for b in &req {
        raw.send(std::slice::from_ref(b));
    }
    let want = b"+OK\r\n$18\r\na value\r\nwith CRLF\r\n$0\r\n\r\n";
    assert_eq!(raw.read_n(want.len()), want);
}
