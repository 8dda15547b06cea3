//! Guards RESP3 (`HELLO 3`): the exact bytes of the replies whose type differs from RESP2
//! (null, map, set, double, verbatim), that RESP2 is untouched before HELLO 3 and after
//! HELLO 2 or a new connection, HELLO's errors, and a real client (the `redis` crate with
//! `?protocol=resp3`) working against flin.

mod common;

use common::{cmd, start, start_with};

/// `HELLO 3`'s map up to (excluding) the id's value, for flin.
const HELLO3_HEAD: &[u8] = b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:";
const HELLO_TAIL: &[u8] =
    b"$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";

/// Sends HELLO (with `args`) and checks the map up to the id, then the rest.
fn hello(raw: &mut common::Raw, request: &[u8], head: &[u8]) {
    raw.send(request);
    assert_eq!(
        String::from_utf8_lossy(&raw.read_n(head.len())),
        String::from_utf8_lossy(head)
    );
    let id = raw.read_line().expect("the id");
    assert!(id.ends_with(b"\r\n") && id[..id.len() - 2].iter().all(u8::is_ascii_digit));
    assert_eq!(raw.read_n(HELLO_TAIL.len()), HELLO_TAIL);
}

#[test]
fn hello_switches_the_protocol_both_ways() {
    let srv = start();
    let mut raw = srv.raw();
    raw.expect(b"GET missing\r\n", b"$-1\r\n");
    hello(&mut raw, b"HELLO 3\r\n", HELLO3_HEAD);
    raw.expect(b"GET missing\r\n", b"_\r\n");
    // Without a version HELLO keeps the protocol and answers in it.
    hello(&mut raw, b"HELLO\r\n", HELLO3_HEAD);
    let hello2 = b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:";
    hello(&mut raw, b"HELLO 2\r\n", hello2);
    raw.expect(b"GET missing\r\n", b"$-1\r\n");
    hello(&mut raw, b"HELLO 3 SETNAME app\r\n", HELLO3_HEAD);
    raw.expect(b"CLIENT GETNAME\r\n", b"$3\r\napp\r\n");
    // A new connection starts in RESP2 again.
    let mut other = srv.raw();
    other.expect(b"GET missing\r\n", b"$-1\r\n");
}

#[test]
fn hello_errors_leave_the_protocol_as_it_was() {
    let srv = start();
    let mut raw = srv.raw();
    for (request, reply) in [
        (
            &b"HELLO 4\r\n"[..],
            &b"-NOPROTO unsupported protocol version\r\n"[..],
        ),
        (b"HELLO 1\r\n", b"-NOPROTO unsupported protocol version\r\n"),
        (
            b"HELLO abc\r\n",
            b"-ERR Protocol version is not an integer or out of range\r\n",
        ),
        (
            b"HELLO 3 foo\r\n",
            b"-ERR Syntax error in HELLO option 'foo'\r\n",
        ),
        (
            b"HELLO 3 AUTH default\r\n",
            b"-ERR Syntax error in HELLO option 'AUTH'\r\n",
        ),
        (
            b"HELLO 3 AUTH nobody pw\r\n",
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (
            b"HELLO 3 SETNAME \"a b\"\r\n",
            b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        ),
    ] {
        raw.expect(request, reply);
    }
    raw.expect(b"GET missing\r\n", b"$-1\r\n");
}

#[test]
fn hello_auth_authenticates_and_switches() {
    let srv = start_with(|c| c.requirepass = Some("pw".into()));
    let mut raw = srv.raw();
    raw.expect(b"HELLO 3\r\n", b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n");
    raw.expect(
        b"HELLO 3 AUTH default wrong\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    raw.expect(b"GET missing\r\n", b"-NOAUTH Authentication required.\r\n");
    // Options act in order, as in Redis 7.0: the name is set before AUTH fails, and the
    // client stays authenticated when a later option fails.
    raw.expect(
        b"HELLO 3 SETNAME early AUTH default wrong\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    raw.expect(
        b"HELLO 3 AUTH default pw SETNAME \"a b\"\r\n",
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    );
    raw.expect(b"GET missing\r\n", b"$-1\r\n");
    raw.expect(b"CLIENT GETNAME\r\n", b"$5\r\nearly\r\n");
    hello(&mut raw, b"HELLO 3 AUTH default pw\r\n", HELLO3_HEAD);
    raw.expect(b"GET missing\r\n", b"_\r\n");
}

#[test]
fn resp3_reply_types_are_redis_7_0s() {
    let srv = start();
    let mut raw = srv.raw();
    hello(&mut raw, b"HELLO 3\r\n", HELLO3_HEAD);
    raw.expect(b"SET k v\r\n", b"+OK\r\n");
    // A hit is the same bulk in both protocols; misses are `_`.
    raw.expect(b"GET k\r\n", b"$1\r\nv\r\n");
    raw.expect(b"MGET k missing\r\n", b"*2\r\n$1\r\nv\r\n_\r\n");
    raw.expect(b"SET k v NX\r\n", b"_\r\n");
    raw.expect(b"SET other v XX\r\n", b"_\r\n");
    raw.expect(b"SET fresh v GET\r\n", b"_\r\n");
    raw.expect(b"GETDEL missing\r\n", b"_\r\n");
    raw.expect(b"GETEX missing\r\n", b"_\r\n");
    raw.expect(b"CLIENT GETNAME\r\n", b"_\r\n");
    raw.expect(b"DUMP missing\r\n", b"_\r\n");
    raw.expect(b"OBJECT ENCODING missing\r\n", b"_\r\n");
    raw.expect(b"MEMORY USAGE missing\r\n", b"_\r\n");
    raw.expect(
        b"BITFIELD bf OVERFLOW FAIL INCRBY u2 0 5\r\n",
        b"*1\r\n_\r\n",
    );
    raw.expect(b"COMMAND INFO nosuch\r\n", b"*1\r\n_\r\n");
    // INCRBYFLOAT stays a bulk, as in Redis.
    raw.expect(b"INCRBYFLOAT f 1.5\r\n", b"$3\r\n1.5\r\n");
    // Maps.
    raw.expect(
        b"CONFIG GET maxmemory\r\n",
        b"%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n",
    );
    raw.expect(b"CONFIG GET nosuch\r\n", b"%0\r\n");
    raw.expect(&cmd(&[b"SET", b"a", b"ohmytext"]), b"+OK\r\n");
    raw.expect(&cmd(&[b"SET", b"b", b"mynewtext"]), b"+OK\r\n");
    raw.expect(
        b"LCS a b IDX MINMATCHLEN 4 WITHMATCHLEN\r\n",
        b"%2\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n",
    );
    raw.expect(b"LATENCY HISTOGRAM nosuch\r\n", b"%0\r\n");
    // Sets.
    raw.expect(
        b"COMMAND GETKEYSANDFLAGS set a b\r\n",
        b"*1\r\n*2\r\n$1\r\na\r\n~2\r\n+OW\r\n+update\r\n",
    );
    raw.expect(
        b"COMMAND INFO get\r\n",
        b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~3\r\n+@read\r\n+@string\r\n+@fast\r\n~0\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n%2\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n%1\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n%2\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n%3\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n~0\r\n",
    );
    // Verbatim text.
    raw.expect(b"LATENCY DOCTOR\r\n", b"=292\r\ntxt:I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n\r\n");
    let text = verbatim(&mut raw, b"CLIENT INFO\r\n");
    assert!(text.starts_with("txt:id="), "{text}");
    assert!(text.ends_with(" resp=3\n"), "{text}");
    let text = verbatim(&mut raw, b"INFO keyspace\r\n");
    assert_eq!(text, "txt:# Keyspace\r\ndb0:keys=6,expires=0,avg_ttl=0\r\n");
    // Errors are the same bytes in both protocols.
    raw.expect(
        b"GET\r\n",
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
}

/// Sends `request` and reads a verbatim string reply: its text, `txt:` included.
fn verbatim(raw: &mut common::Raw, request: &[u8]) -> String {
    raw.send(request);
    let head = raw.read_line().expect("a verbatim header");
    assert!(
        head.starts_with(b"="),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    let len: usize = std::str::from_utf8(&head[1..head.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    let body = raw.read_n(len + 2);
    assert!(body.ends_with(b"\r\n"));
    String::from_utf8(body[..len].to_vec()).unwrap()
}

#[test]
fn memory_stats_has_doubles_in_resp3_and_bulks_in_resp2() {
    let srv = start();
    let mut raw = srv.raw();
    let stats = |raw: &mut common::Raw| {
        raw.send(b"MEMORY STATS\r\n");
        let mut lines = Vec::new();
        // Read until the last field's value: `fragmentation.bytes` is not the last in flin,
        // `log.disk.bytes` is.
        loop {
            let line = String::from_utf8(raw.read_line().expect("a line")).unwrap();
            let last = line == "log.disk.bytes\r\n";
            lines.push(line);
            if last {
                lines.push(String::from_utf8(raw.read_line().expect("a line")).unwrap());
                return lines;
            }
        }
    };
    let resp2 = stats(&mut raw);
    assert_eq!(resp2[0], "*60\r\n");
    let at = resp2
        .iter()
        .position(|l| l == "peak.percentage\r\n")
        .unwrap();
    assert!(resp2[at + 1].starts_with('$'), "{:?}", resp2[at + 1]);
    raw.send(b"HELLO 3\r\n");
    raw.read_n(HELLO3_HEAD.len());
    raw.read_line();
    raw.read_n(HELLO_TAIL.len());
    let resp3 = stats(&mut raw);
    assert_eq!(resp3[0], "%30\r\n");
    let at = resp3
        .iter()
        .position(|l| l == "peak.percentage\r\n")
        .unwrap();
    assert!(resp3[at + 1].starts_with(','), "{:?}", resp3[at + 1]);
    let db = resp3.iter().position(|l| l == "db.0\r\n").unwrap();
    assert_eq!(resp3[db + 1], "%2\r\n");
}

#[test]
fn client_list_shows_each_clients_protocol() {
    let srv = start();
    let mut resp3 = srv.raw();
    hello(&mut resp3, b"HELLO 3 SETNAME three\r\n", HELLO3_HEAD);
    let mut resp2 = srv.raw();
    resp2.expect(b"CLIENT SETNAME two\r\n", b"+OK\r\n");
    let list = resp2.request(&[b"CLIENT", b"LIST"]).expect("a reply");
    let line = |name: &str| {
        list.lines()
            .find(|l| l.contains(&format!(" name={name} ")))
            .unwrap_or_else(|| panic!("{name} in {list}"))
            .to_string()
    };
    assert!(line("three").ends_with(" resp=3"), "{list}");
    assert!(line("two").ends_with(" resp=2"), "{list}");
}

#[test]
fn the_redis_crate_speaks_resp3_to_flin() {
    let srv = start();
    let client =
        redis::Client::open(format!("redis://{}/?protocol=resp3", srv.addr)).expect("client");
    let mut con = client.get_connection().expect("connect");
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    let nil: redis::Value = redis::cmd("GET").arg("missing").query(&mut con).unwrap();
    assert_eq!(nil, redis::Value::Nil);
    let config: redis::Value = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query(&mut con)
        .unwrap();
    assert!(
        matches!(&config, redis::Value::Map(pairs) if pairs.len() == 1),
        "{config:?}"
    );
    let info: redis::Value = redis::cmd("INFO").arg("server").query(&mut con).unwrap();
    assert!(
        matches!(&info, redis::Value::VerbatimString { text, .. } if text.contains("redis_version:")),
        "{info:?}"
    );
    let mget: Vec<Option<String>> = redis::cmd("MGET")
        .arg("k")
        .arg("missing")
        .query(&mut con)
        .unwrap();
    assert_eq!(mget, [Some("v".to_string()), None]);
    let hello: redis::Value = redis::cmd("HELLO").query(&mut con).unwrap();
    let redis::Value::Map(fields) = hello else {
        panic!("HELLO answers a map in RESP3: {hello:?}")
    };
    assert!(fields.contains(&(
        redis::Value::BulkString(b"proto".to_vec()),
        redis::Value::Int(3)
    )));
}

#[test]
fn monitor_lines_are_simple_strings_in_resp3_too() {
    // Redis 7.0 feeds monitors the same `+...` line whatever their protocol.
    let srv = start();
    let mut monitor = srv.raw();
    hello(&mut monitor, b"HELLO 3\r\n", HELLO3_HEAD);
    monitor.expect(b"MONITOR\r\n", b"+OK\r\n");
    let mut other = srv.raw();
    other.expect(&cmd(&[b"SET", b"mk", b"mv"]), b"+OK\r\n");
    let line = String::from_utf8(monitor.read_line().expect("a monitor line")).unwrap();
    assert!(line.starts_with('+'), "{line}");
    assert!(line.ends_with("\"SET\" \"mk\" \"mv\"\r\n"), "{line}");
}
