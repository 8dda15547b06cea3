//! Protected mode (as Redis's): with no password and a non-loopback bind, clients from other
//! hosts are refused and loopback clients are served. Tests only connect to 127.0.0.1, so the
//! refusal of other hosts is covered by the unit test of the decision in `worker.rs`; here the
//! server must enter the mode exactly when it should and keep serving loopback clients in it.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::start_with;
use redis::Commands;

const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

fn loopback_client(port: u16) -> redis::Connection {
    let addr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

#[test]
fn a_wildcard_bind_without_password_is_protected_and_serves_loopback() {
    let srv = start_with(|c| c.bind = ANY);
    assert!(srv.handle().is_protected());
    let mut con = loopback_client(srv.addr.port());
    let () = con.set("k", "v").unwrap();
    let v: String = con.get("k").unwrap();
    assert_eq!(v, "v");
    assert_eq!(srv.handle().stats().rejected_connections, 0);
}

#[test]
fn protected_mode_is_off_with_a_password_a_loopback_bind_or_when_disabled() {
    let srv = start_with(|c| {
        c.bind = ANY;
        c.requirepass = Some("secret".into());
    });
    assert!(!srv.handle().is_protected());
    drop(srv);
    let srv = start_with(|c| {
        c.bind = ANY;
        c.protected_mode = false;
    });
    assert!(!srv.handle().is_protected());
    drop(srv);
    let srv = start_with(|_| {});
    assert!(!srv.handle().is_protected(), "127.0.0.1 is loopback");
}
