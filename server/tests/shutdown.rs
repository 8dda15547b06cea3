//! Guards against SHUTDOWN losing replies already read, leaving the server running, or
//! leaving writes unsynced.

mod common;

use common::{cmd, config, start};
use flin_server::Server;

#[test]
fn shutdown_command_answers_what_was_read_then_stops() {
    let mut srv = start();
    let mut raw = srv.raw();
    let mut idle = srv.raw();
    idle.expect(b"PING\r\n", b"+PONG\r\n");
    let mut req = cmd(&[b"SET", b"k", b"v"]);
    req.extend_from_slice(b"GET k\r\nSHUTDOWN\r\n");
    raw.send(&req);
    assert_eq!(raw.read_to_close(), b"+OK\r\n$1\r\nv\r\n");
    // Every other client is closed too, and the server stops by itself.
    assert_eq!(idle.read_to_close(), b"");
    let handle = srv.handle.take().unwrap();
    handle.wait().expect("clean stop");
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(srv.addr).is_err());
    let again = Server::start(config(srv.dir.path())).unwrap();
    assert_eq!(again.stats().engine.keys, 1);
    again.shutdown().unwrap();
}
