//! Guards against accepting more clients than --maxclients, and against the refusal not
//! being Redis's reply-then-close.

mod common;

use common::{start_with, wait_for};
use std::time::Duration;

#[test]
fn clients_over_the_limit_are_refused() {
    let srv = start_with(|c| c.maxclients = 3);
    let mut held: Vec<_> = (0..3).map(|_| srv.raw()).collect();
    for r in &mut held {
        r.expect(b"PING\r\n", b"+PONG\r\n");
    }
    let mut extra = srv.raw();
    assert_eq!(
        extra.read_to_close(),
        b"-ERR max number of clients reached\r\n"
    );
    assert_eq!(srv.handle().stats().rejected_connections, 1);
    // A slot frees when a client leaves.
    drop(held.pop());
    wait_for("the slot to free", Duration::from_secs(10), || {
        srv.handle().stats().active_connections == 2
    });
    srv.raw().expect(b"PING\r\n", b"+PONG\r\n");
}
