//! Guards against commands running before AUTH, weak pre-auth limits, and wrong AUTH replies.

mod common;

use common::{cmd, start_with};

#[test]
fn requirepass_gates_commands() {
    let srv = start_with(|c| c.requirepass = Some("s3cret".into()));
    let mut raw = srv.raw();
    raw.expect(b"GET k\r\n", b"-NOAUTH Authentication required.\r\n");
    raw.expect(
        b"FOO\r\n",
        b"-ERR unknown command 'FOO', with args beginning with: \r\n",
    );
    raw.expect(
        b"AUTH wrong\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    raw.expect(
        b"AUTH other s3cret\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    // Redis 7.0.15's wording (7.2 added "<proto>" after HELLO).
    raw.expect(b"HELLO 2\r\n", b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n");
    raw.expect(b"PING\r\n", b"-NOAUTH Authentication required.\r\n");
    raw.expect(b"AUTH s3cret\r\n", b"+OK\r\n");
    raw.expect(b"SET k v\r\n", b"+OK\r\n");
    raw.expect(b"GET k\r\n", b"$1\r\nv\r\n");

    let mut con = srv.client();
    let hello: Vec<redis::Value> = redis::cmd("HELLO")
        .arg(2)
        .arg("AUTH")
        .arg("default")
        .arg("s3cret")
        .arg("SETNAME")
        .arg("app")
        .query(&mut con)
        .unwrap();
    assert_eq!(hello.len(), 14);
    let name: String = redis::cmd("CLIENT").arg("GETNAME").query(&mut con).unwrap();
    assert_eq!(name, "app");

    // The redis crate's AUTH through the URL.
    let client = redis::Client::open(format!("redis://:s3cret@{}/", srv.addr)).unwrap();
    let mut con = client.get_connection().unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, "v");
}

#[test]
fn unauthenticated_requests_are_small() {
    let srv = start_with(|c| c.requirepass = Some("pw".into()));
    let mut raw = srv.raw();
    let args: Vec<&[u8]> = vec![b"x"; 11];
    raw.send(&cmd(&args));
    assert_eq!(
        raw.read_to_close(),
        b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    let mut raw = srv.raw();
    raw.send(b"*2\r\n$3\r\nGET\r\n$16385\r\n");
    assert_eq!(
        raw.read_to_close(),
        b"-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    // After AUTH the usual limits apply.
    let mut raw = srv.raw();
    raw.expect(b"AUTH pw\r\n", b"+OK\r\n");
    let big = vec![b'v'; 20_000];
    raw.expect(&cmd(&[b"SET", b"k", &big]), b"+OK\r\n");
}

#[test]
fn auth_in_a_pipeline_lifts_the_limits_for_the_requests_after_it() {
    // One write: AUTH, then requests over the pre-auth limits (11 arguments, a 20,000-byte
    // bulk). Each is parsed with the limits in force when it runs, not when the buffer
    // arrived, as on Redis; the look-ahead that prefetches keys must not change that.
    let srv = start_with(|c| c.requirepass = Some("pw".into()));
    let mut raw = srv.raw();
    let big = vec![b'v'; 20_000];
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    let pairs: Vec<Vec<u8>> = (0..5).map(|i| format!("k{i}").into_bytes()).collect();
    for p in &pairs {
        mset.push(p);
        mset.push(b"1");
    }
    assert_eq!(mset.len(), 11);
    let mut req = b"AUTH pw\r\n".to_vec();
    req.extend_from_slice(&cmd(&[b"SET", b"big", &big]));
    req.extend_from_slice(&cmd(&mset));
    req.extend_from_slice(&cmd(&[b"STRLEN", b"big"]));
    raw.expect(&req, b"+OK\r\n+OK\r\n+OK\r\n:20000\r\n");
}
