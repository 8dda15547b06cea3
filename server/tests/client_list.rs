//! CLIENT LIST / INFO / KILL across connections (which live on different worker threads).

mod common;

use common::{cmd, start, Raw};

/// The `field=value` pairs of one CLIENT LIST line.
fn fields(line: &str) -> Vec<(String, String)> {
    line.split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("field {kv:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> &'a str {
    &f.iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {f:?}"))
        .1
}

/// Sends a request and reads the first line of its reply.
fn request_line(raw: &mut Raw, args: &[&[u8]]) -> String {
    raw.send(&cmd(args));
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.extend(raw.read_n(1));
    }
    String::from_utf8(line).unwrap()
}

/// Sends a request whose reply is a bulk string; returns the string.
fn bulk(raw: &mut Raw, args: &[&[u8]]) -> String {
    let header = request_line(raw, args);
    let len: usize = header
        .strip_prefix('$')
        .unwrap_or_else(|| panic!("not a bulk reply: {header:?}"))
        .trim_end()
        .parse()
        .unwrap();
    let body = raw.read_n(len + 2);
    String::from_utf8(body[..len].to_vec()).unwrap()
}

fn integer(raw: &mut Raw, args: &[&[u8]]) -> i64 {
    let line = request_line(raw, args);
    line.strip_prefix(':')
        .unwrap_or_else(|| panic!("not an integer reply: {line:?}"))
        .trim_end()
        .parse()
        .unwrap()
}

#[test]
fn list_shows_every_connection_with_its_name_and_address() {
    let srv = start();
    let mut a = srv.raw();
    let mut b = srv.raw();
    a.expect(&cmd(&[b"CLIENT", b"SETNAME", b"alpha"]), b"+OK\r\n");
    let a_id = integer(&mut a, &[b"CLIENT", b"ID"]);
    let b_id = integer(&mut b, &[b"CLIENT", b"ID"]);
    let text = bulk(&mut b, &[b"CLIENT", b"LIST"]);
    assert!(text.ends_with('\n'), "{text:?}");
    let lines: Vec<Vec<(String, String)>> = text.lines().map(fields).collect();
    assert_eq!(lines.len(), 2, "{text}");
    let by_id = |id: i64| {
        lines
            .iter()
            .find(|f| field(f, "id") == id.to_string())
            .unwrap_or_else(|| panic!("client {id} not listed in {text}"))
    };
    let la = by_id(a_id);
    assert_eq!(field(la, "name"), "alpha");
    assert_eq!(
        field(la, "addr"),
        a.stream.local_addr().unwrap().to_string()
    );
    assert_eq!(field(la, "laddr"), srv.addr.to_string());
    assert_eq!(field(la, "cmd"), "client");
    assert_eq!(field(la, "db"), "0");
    assert_eq!(field(la, "resp"), "2");
    assert_eq!(field(by_id(b_id), "name"), "");

    let info = bulk(&mut b, &[b"CLIENT", b"INFO"]);
    let mine = fields(info.trim_end());
    assert_eq!(field(&mine, "id"), b_id.to_string());
    assert_eq!(
        field(&mine, "addr"),
        b.stream.local_addr().unwrap().to_string()
    );

    let only_a = bulk(
        &mut b,
        &[b"CLIENT", b"LIST", b"ID", a_id.to_string().as_bytes()],
    );
    assert_eq!(only_a.lines().count(), 1, "{only_a}");
    assert_eq!(bulk(&mut b, &[b"CLIENT", b"LIST", b"TYPE", b"pubsub"]), "");
    assert_eq!(
        bulk(&mut b, &[b"CLIENT", b"LIST", b"TYPE", b"normal"])
            .lines()
            .count(),
        2
    );
    b.expect(
        &cmd(&[b"CLIENT", b"LIST", b"TYPE", b"nope"]),
        b"-ERR Unknown client type 'nope'\r\n",
    );
    b.expect(
        &cmd(&[b"CLIENT", b"LIST", b"ID", b"x"]),
        b"-ERR Invalid client ID\r\n",
    );
    b.expect(
        &cmd(&[b"CLIENT", b"LIST", b"BOGUS"]),
        b"-ERR syntax error\r\n",
    );

    // A client that leaves leaves the list.
    drop(a);
    common::wait_for(
        "the closed client to leave CLIENT LIST",
        std::time::Duration::from_secs(10),
        || bulk(&mut b, &[b"CLIENT", b"LIST"]).lines().count() == 1,
    );
}

#[test]
fn kill_closes_the_named_connection_and_only_it() {
    let srv = start();
    let mut victim = srv.raw();
    let mut bystander = srv.raw();
    let mut admin = srv.raw();
    let victim_id = integer(&mut victim, &[b"CLIENT", b"ID"]);
    bystander.expect(&cmd(&[b"PING"]), b"+PONG\r\n");

    admin.expect(
        &cmd(&[b"CLIENT", b"KILL", b"ID", b"0"]),
        b"-ERR client-id should be greater than 0\r\n",
    );
    admin.expect(
        &cmd(&[b"CLIENT", b"KILL", b"1.2.3.4:5"]),
        b"-ERR No such client\r\n",
    );
    let killed = integer(
        &mut admin,
        &[b"CLIENT", b"KILL", b"ID", victim_id.to_string().as_bytes()],
    );
    assert_eq!(killed, 1);
    // The victim's connection is closed by its worker; it gets no more replies.
    assert_eq!(victim.read_to_close(), b"");
    bystander.expect(&cmd(&[b"PING"]), b"+PONG\r\n");

    // The old form, by address.
    let addr = bystander.stream.local_addr().unwrap().to_string();
    admin.expect(&cmd(&[b"CLIENT", b"KILL", addr.as_bytes()]), b"+OK\r\n");
    assert_eq!(bystander.read_to_close(), b"");

    // SKIPME defaults to yes: killing every normal client spares the caller...
    let others = integer(&mut admin, &[b"CLIENT", b"KILL", b"TYPE", b"normal"]);
    assert_eq!(others, 0);
    admin.expect(&cmd(&[b"PING"]), b"+PONG\r\n");
    // ...unless told otherwise: the reply goes out, then the connection closes.
    let me = admin.stream.local_addr().unwrap().to_string();
    admin.send(&cmd(&[
        b"CLIENT",
        b"KILL",
        b"ADDR",
        me.as_bytes(),
        b"SKIPME",
        b"no",
    ]));
    assert_eq!(admin.read_to_close(), b":1\r\n");
}
