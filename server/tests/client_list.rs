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

/// Sends a request and returns its reply (a bulk string's body, or the reply line).
fn reply(raw: &mut Raw, args: &[&[u8]]) -> String {
    raw.request(args).expect("a reply")
}

fn integer(raw: &mut Raw, args: &[&[u8]]) -> i64 {
    let line = reply(raw, args);
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
    let text = reply(&mut b, &[b"CLIENT", b"LIST"]);
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

    let info = reply(&mut b, &[b"CLIENT", b"INFO"]);
    let mine = fields(info.trim_end());
    assert_eq!(field(&mine, "id"), b_id.to_string());
    assert_eq!(
        field(&mine, "addr"),
        b.stream.local_addr().unwrap().to_string()
    );

    let only_a = reply(
        &mut b,
        &[b"CLIENT", b"LIST", b"ID", a_id.to_string().as_bytes()],
    );
    assert_eq!(only_a.lines().count(), 1, "{only_a}");
    assert_eq!(reply(&mut b, &[b"CLIENT", b"LIST", b"TYPE", b"pubsub"]), "");
    assert_eq!(
        reply(&mut b, &[b"CLIENT", b"LIST", b"TYPE", b"normal"])
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
        || reply(&mut b, &[b"CLIENT", b"LIST"]).lines().count() == 1,
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

/// CLIENT LIST's line for the client with this id, as fields.
fn line_of(admin: &mut Raw, id: i64) -> Vec<(String, String)> {
    let list = reply(
        admin,
        &[b"CLIENT", b"LIST", b"ID", id.to_string().as_bytes()],
    );
    let line = list
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no client {id}"));
    fields(line)
}

fn number(f: &[(String, String)], name: &str) -> u64 {
    field(f, name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in {f:?}"))
}

/// The buffer fields say what each connection holds: a half-sent request shows in `qbuf`,
/// replies a client does not read show in `omem`, and both count in `tot-mem`; once the
/// request completes and the replies are read, they go back down.
#[test]
fn buffer_fields_show_what_a_connection_holds() {
    const LIMIT: u64 = 256 * 1024;
    const VALUE_LEN: usize = 100 * 1024;
    let srv = common::start_with(|c| c.client_output_limit = LIMIT);
    let mut admin = srv.raw();

    // A SET whose 200 KB value has only half arrived.
    let mut partial = srv.raw();
    let id = integer(&mut partial, &[b"CLIENT", b"ID"]);
    // The write loop publishes its unsent bytes after its write returns, which may be after
    // the client has read the reply: wait for the idle state rather than sample it once.
    common::wait_for(
        "an idle connection to show empty buffers",
        std::time::Duration::from_secs(10),
        || {
            let idle = line_of(&mut admin, id);
            number(&idle, "qbuf") == 0 && number(&idle, "omem") == 0
        },
    );
    let request = cmd(&[b"SET", b"k", &vec![b'v'; 200_000]]);
    let half = request.len() / 2;
    partial.send(&request[..half]);
    common::wait_for(
        "the half request to show in qbuf",
        std::time::Duration::from_secs(10),
        || number(&line_of(&mut admin, id), "qbuf") == half as u64,
    );
    let f = line_of(&mut admin, id);
    assert!(number(&f, "rbs") >= half as u64, "{f:?}");
    assert_eq!(
        number(&f, "qbuf-free"),
        number(&f, "rbs") - half as u64,
        "{f:?}"
    );
    assert!(number(&f, "tot-mem") >= number(&f, "rbs"), "{f:?}");
    partial.send(&request[half..]);
    assert_eq!(partial.read_n(5), b"+OK\r\n");
    common::wait_for(
        "qbuf to empty once the request ran",
        std::time::Duration::from_secs(10),
        || number(&line_of(&mut admin, id), "qbuf") == 0,
    );

    // A client that pipelines GETs of a 100 KiB value and reads nothing.
    admin.expect(&cmd(&[b"SET", b"big", &vec![b'x'; VALUE_LEN]]), b"+OK\r\n");
    let mut slow = srv.raw();
    let slow_id = integer(&mut slow, &[b"CLIENT", b"ID"]);
    let gets: Vec<u8> = cmd(&[b"GET", b"big"]).repeat(200);
    slow.send(&gets);
    common::wait_for(
        "unsent replies to show in omem",
        std::time::Duration::from_secs(20),
        || number(&line_of(&mut admin, slow_id), "omem") > 0,
    );
    let f = line_of(&mut admin, slow_id);
    let bound = LIMIT + VALUE_LEN as u64 + 64 * 1024;
    assert!(number(&f, "omem") <= bound, "omem over the limit: {f:?}");
    assert!(number(&f, "tot-mem") >= number(&f, "omem"), "{f:?}");
    // Reading every reply drains it.
    let reply_len = format!("${VALUE_LEN}\r\n").len() + VALUE_LEN + 2;
    for _ in 0..200 {
        slow.read_n(reply_len);
    }
    common::wait_for(
        "omem to drain once the replies are read",
        std::time::Duration::from_secs(20),
        || number(&line_of(&mut admin, slow_id), "omem") == 0,
    );
}
