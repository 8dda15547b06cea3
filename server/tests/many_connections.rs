//! Guards against the server failing under 1,000 simultaneous connections.

mod common;

use common::{start, wait_for};
use std::time::Duration;

#[test]
fn a_thousand_concurrent_connections() {
    let srv = start();
    let mut conns: Vec<_> = (0..1000).map(|_| srv.raw()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(format!("SET conn:{i} {i}\r\n").as_bytes());
    }
    for c in conns.iter_mut() {
        assert_eq!(c.read_n(5), b"+OK\r\n");
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let v = i.to_string();
        c.expect(
            format!("GET conn:{i}\r\n").as_bytes(),
            format!("${}\r\n{v}\r\n", v.len()).as_bytes(),
        );
    }
    assert_eq!(srv.handle().stats().active_connections, 1000);
    drop(conns);
    wait_for("all connections to close", Duration::from_secs(20), || {
        srv.handle().stats().active_connections == 0
    });
}
