//! Guards against a second server silently sharing a port through SO_REUSEPORT.

mod common;

use common::{config, start};
use flin_server::{Server, StartError};

#[test]
fn a_second_server_on_the_same_port_fails_clearly() {
    let srv = start();
    let other_dir = tempfile::tempdir().unwrap();
    let mut c = config(other_dir.path());
    c.port = srv.addr.port();
    match Server::start(c) {
        Err(e @ StartError::Bind { .. }) => {
            assert!(e.to_string().contains("already in use"), "{e}");
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("second server started on a used port"),
    }
    // The same data directory is refused as well.
    let mut c = config(srv.dir.path());
    c.port = 0;
    assert!(matches!(Server::start(c), Err(StartError::Engine(_))));
    srv.raw().expect(b"PING\r\n", b"+PONG\r\n");
}
