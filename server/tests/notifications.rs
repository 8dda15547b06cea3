//! Guards keyspace notifications: the events of string and generic commands, on
//! `__keyspace@0__:` and `__keyevent@0__:` channels, with the bytes redis-server 7.0.15 sends
//! (checked by hand with `notify-keyspace-events KEA` and a `PSUBSCRIBE __key*__:*` client),
//! expired events, the flag, and CONFIG's validation.

mod common;

use common::{cmd, start, start_with, Raw, TestServer};

const PATTERN: &str = "__key*__:*";

fn pmessage(channel: &str, payload: &str) -> Vec<u8> {
    format!(
        "*4\r\n$8\r\npmessage\r\n${}\r\n{PATTERN}\r\n${}\r\n{channel}\r\n${}\r\n{payload}\r\n",
        PATTERN.len(),
        channel.len(),
        payload.len()
    )
    .into_bytes()
}

/// The two messages of one event about `key`.
fn event(name: &str, key: &str) -> Vec<u8> {
    let mut v = pmessage(&format!("__keyspace@0__:{key}"), name);
    v.extend(pmessage(&format!("__keyevent@0__:{name}"), key));
    v
}

fn listener(srv: &TestServer) -> Raw {
    let mut l = srv.raw();
    l.expect(
        &cmd(&[b"PSUBSCRIBE", PATTERN.as_bytes()]),
        b"*3\r\n$10\r\npsubscribe\r\n$10\r\n__key*__:*\r\n:1\r\n",
    );
    l
}

fn expect_events(l: &mut Raw, events: &[(&str, &str)]) {
    let want: Vec<u8> = events.iter().flat_map(|(e, k)| event(e, k)).collect();
    assert_eq!(
        String::from_utf8_lossy(&l.read_n(want.len())),
        String::from_utf8_lossy(&want)
    );
}

/// A command and the events it must publish, in order: (event, key).
type Step<'a> = (&'a [&'a [u8]], &'a [(&'a str, &'a str)]);

#[test]
fn string_and_generic_commands_notify_as_redis() {
    let srv = start();
    let mut c = srv.raw();
    c.expect(
        &cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"KEAn"]),
        b"+OK\r\n",
    );
    let mut l = listener(&srv);
    let steps: &[Step] = &[
        (&[b"SET", b"k", b"v"], &[("new", "k"), ("set", "k")]),
        (
            &[b"SET", b"k", b"v", b"EX", b"100"],
            &[("set", "k"), ("expire", "k")],
        ),
        (&[b"SETRANGE", b"k", b"1", b"x"], &[("setrange", "k")]),
        (&[b"INCR", b"n"], &[("new", "n"), ("incrby", "n")]),
        (&[b"DECRBY", b"n", b"2"], &[("incrby", "n")]),
        (&[b"INCRBYFLOAT", b"n", b"1.5"], &[("incrbyfloat", "n")]),
        (&[b"APPEND", b"k", b"z"], &[("append", "k")]),
        (&[b"PERSIST", b"k"], &[("persist", "k")]),
        (&[b"PEXPIRE", b"k", b"100000"], &[("expire", "k")]),
        (
            &[b"RENAME", b"k", b"k2"],
            &[("new", "k2"), ("rename_from", "k"), ("rename_to", "k2")],
        ),
        (
            &[b"MSET", b"a", b"1", b"b", b"2"],
            &[("new", "a"), ("set", "a"), ("new", "b"), ("set", "b")],
        ),
        (
            &[b"DEL", b"a", b"nokey", b"b"],
            &[("del", "a"), ("del", "b")],
        ),
        (&[b"SETNX", b"k2", b"v"], &[]),
        (&[b"EXPIRE", b"k2", b"0"], &[("del", "k2")]),
        (&[b"GET", b"nokey"], &[]),
        (
            &[b"SET", b"last", b"v"],
            &[("new", "last"), ("set", "last")],
        ),
    ];
    for (args, events) in steps {
        c.request(args).expect("a reply");
        expect_events(&mut l, events);
    }
    // An expiring key is reported as expired (by active or lazy expiry).
    c.request(&[b"SET", b"t", b"v", b"PX", b"1"]).unwrap();
    expect_events(
        &mut l,
        &[
            ("new", "t"),
            ("set", "t"),
            ("expire", "t"),
            ("expired", "t"),
        ],
    );
}

#[test]
fn the_flag_turns_events_on_and_config_validates_letters() {
    let srv = start_with(|c| c.notify_keyspace_events = "Ex".into());
    let mut c = srv.raw();
    c.expect(
        &cmd(&[b"CONFIG", b"GET", b"notify-keyspace-events"]),
        b"*2\r\n$22\r\nnotify-keyspace-events\r\n$2\r\nxE\r\n",
    );
    c.expect(
        &cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"KQ"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.\r\n",
    );
    let mut l = srv.raw();
    l.expect(
        &cmd(&[b"SUBSCRIBE", b"__keyevent@0__:expired"]),
        b"*3\r\n$9\r\nsubscribe\r\n$22\r\n__keyevent@0__:expired\r\n:1\r\n",
    );
    c.request(&[b"SET", b"gone", b"v", b"PX", b"1"]).unwrap();
    let want = b"*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:expired\r\n$4\r\ngone\r\n";
    assert_eq!(l.read_n(want.len()), want);
}

#[test]
fn nothing_is_published_when_notifications_are_off() {
    let srv = start();
    let mut l = srv.raw();
    l.expect(
        &cmd(&[b"PSUBSCRIBE", b"*"]),
        b"*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n",
    );
    let mut c = srv.raw();
    c.expect(&cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    // The next thing the listener gets is this message, not an event of the SET.
    c.expect(&cmd(&[b"PUBLISH", b"marker", b"m"]), b":1\r\n");
    let want = b"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$6\r\nmarker\r\n$1\r\nm\r\n";
    assert_eq!(l.read_n(want.len()), want);
}

#[test]
fn reads_of_missing_keys_are_keymiss_events_with_m() {
    let srv = start();
    let mut c = srv.raw();
    c.expect(
        &cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"KEm"]),
        b"+OK\r\n",
    );
    c.expect(&cmd(&[b"SET", b"have", b"1"]), b"+OK\r\n");
    let mut l = listener(&srv);
    let steps: &[Step] = &[
        (&[b"GET", b"have"], &[]),
        (
            &[b"EXISTS", b"m", b"m"],
            &[("keymiss", "m"), ("keymiss", "m")],
        ),
        (&[b"INCR", b"m"], &[]),
        (&[b"GETSET", b"m3", b"x"], &[("keymiss", "m3")]),
        (&[b"SET", b"m4", b"v", b"GET"], &[("keymiss", "m4")]),
        (&[b"TTL", b"m5"], &[("keymiss", "m5")]),
    ];
    for (args, events) in steps {
        c.request(args).expect("a reply");
        expect_events(&mut l, events);
    }
    c.expect(
        &cmd(&[b"MGET", b"q1", b"have", b"q2"]),
        b"*3\r\n$-1\r\n$1\r\n1\r\n$-1\r\n",
    );
    expect_events(&mut l, &[("keymiss", "q1"), ("keymiss", "q2")]);
    // Nothing else arrived: the next message is this one.
    c.expect(&cmd(&[b"PUBLISH", b"__keyevent@0__:end", b"x"]), b":1\r\n");
    let want = pmessage("__keyevent@0__:end", "x");
    assert_eq!(l.read_n(want.len()), want);
}
