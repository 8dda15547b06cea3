//! OBJECT IDLETIME from the access clock each index slot keeps: it grows while a key is left
//! alone, Redis's lookups reset it (GET, SET, TOUCH...), the lookups Redis makes with
//! `LOOKUP_NOTOUCH` do not (OBJECT itself, TTL, EXISTS, TYPE), a client in CLIENT NO-TOUCH
//! mode leaves it except with TOUCH, and RESTORE ... IDLETIME sets it. Guards against an
//! IDLETIME that is always 0 and against reads that forget to stamp or stamp when they must
//! not.
//!
//! Time is moved by the engine's test hook, not waited for: the clock jumps `AWAY_S` seconds,
//! and a key counts as touched when its idle time is back far below that.

mod common;

use common::{start, TestServer};
use redis::{Connection, Value};

/// How far the tests move the access clock: far more than a test takes in real seconds.
const AWAY_S: u64 = 100_000;
/// An idle time below this after a jump of `AWAY_S` means the key was touched since.
const FRESH_S: i64 = 1_000;

fn idle(con: &mut Connection, key: &str) -> Option<i64> {
    redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg(key)
        .query(con)
        .unwrap()
}

fn away(server: &TestServer) {
    server
        .handle()
        .engine()
        .advance_access_clock_for_tests(AWAY_S);
}

fn run(con: &mut Connection, args: &[&str]) -> Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap()
}

fn is_untouched(con: &mut Connection, key: &str) -> bool {
    idle(con, key).expect("the key exists") >= AWAY_S as i64
}

fn is_fresh(con: &mut Connection, key: &str) -> bool {
    idle(con, key).expect("the key exists") < FRESH_S
}

#[test]
fn idletime_grows_unless_the_key_is_read_or_written() {
    let server = start();
    let mut con = server.client();
    run(&mut con, &["SET", "k", "v"]);
    assert!(is_fresh(&mut con, "k"), "a new key is idle 0");
    assert_eq!(idle(&mut con, "absent"), None);

    away(&server);
    assert!(is_untouched(&mut con, "k"), "idle time grows");
    assert!(
        is_untouched(&mut con, "k"),
        "OBJECT IDLETIME does not count as an access"
    );
    run(&mut con, &["GET", "k"]);
    assert!(is_fresh(&mut con, "k"), "GET resets it");

    away(&server);
    run(&mut con, &["SET", "k", "w"]);
    assert!(is_fresh(&mut con, "k"), "a write resets it");

    // Each of these looks the key up as Redis's `lookupKey` does, and resets it.
    for cmd in [
        &["STRLEN", "k"][..],
        &["MGET", "x", "k"],
        &["GETRANGE", "k", "0", "0"],
        &["SET", "k", "z", "NX"],
        &["TOUCH", "k"],
        &["DUMP", "k"],
        &["OBJECT", "ENCODING", "k"],
    ] {
        away(&server);
        run(&mut con, cmd);
        let touched = idle(&mut con, "k").unwrap() < FRESH_S;
        // OBJECT looks the key up without touching it, as Redis does.
        assert_eq!(touched, cmd[0] != "OBJECT", "{cmd:?}");
    }
}

#[test]
fn lookups_redis_makes_without_touching_leave_the_clock() {
    let server = start();
    let mut con = server.client();
    run(&mut con, &["SET", "k", "v", "EX", "1000"]);
    away(&server);
    for cmd in [
        &["TTL", "k"][..],
        &["PTTL", "k"],
        &["EXPIRETIME", "k"],
        &["EXISTS", "k", "k"],
        &["EXISTS", "k"],
        &["TYPE", "k"],
        &["OBJECT", "FREQ", "k"],
        &["MEMORY", "USAGE", "k"],
        &["SCAN", "0"],
        &["KEYS", "*"],
        &["RANDOMKEY"],
        &["DBSIZE"],
    ] {
        let _ = redis::cmd(cmd[0]).arg(&cmd[1..]).query::<Value>(&mut con);
        assert!(is_untouched(&mut con, "k"), "{cmd:?} touched the key");
    }
}

#[test]
fn a_no_touch_client_leaves_the_clock_except_with_touch() {
    let server = start();
    let mut con = server.client();
    run(&mut con, &["SET", "k", "v"]);
    run(&mut con, &["CLIENT", "NO-TOUCH", "ON"]);
    away(&server);
    run(&mut con, &["GET", "k"]);
    run(&mut con, &["MGET", "k", "k"]);
    run(&mut con, &["SET", "k", "v", "NX"]);
    assert!(is_untouched(&mut con, "k"), "reads in NO-TOUCH mode");
    run(&mut con, &["TOUCH", "k"]);
    assert!(
        is_fresh(&mut con, "k"),
        "TOUCH touches even in NO-TOUCH mode"
    );

    away(&server);
    run(&mut con, &["CLIENT", "NO-TOUCH", "OFF"]);
    run(&mut con, &["GET", "k"]);
    assert!(is_fresh(&mut con, "k"), "OFF again");

    away(&server);
    run(&mut con, &["CLIENT", "NO-TOUCH", "ON"]);
    run(&mut con, &["RESET"]);
    run(&mut con, &["GET", "k"]);
    assert!(is_fresh(&mut con, "k"), "RESET ends NO-TOUCH mode");
}

#[test]
fn restore_idletime_sets_the_clock() {
    let server = start();
    let mut con = server.client();
    run(&mut con, &["SET", "src", "hello"]);
    let payload: Vec<u8> = redis::cmd("DUMP").arg("src").query(&mut con).unwrap();
    let restore = |con: &mut Connection, key: &str, opts: &[&str]| {
        let () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(&payload)
            .arg(opts)
            .query(con)
            .unwrap();
    };
    restore(&mut con, "a", &["IDLETIME", "5000"]);
    let a = idle(&mut con, "a").unwrap();
    assert!((5000..5000 + FRESH_S).contains(&a), "IDLETIME 5000: {a}");
    restore(&mut con, "a", &["REPLACE", "IDLETIME", "0"]);
    assert!(is_fresh(&mut con, "a"));
    restore(&mut con, "b", &["FREQ", "100"]);
    assert!(is_fresh(&mut con, "b"), "FREQ sets nothing in LRU mode");
    let err = redis::cmd("RESTORE")
        .arg("c")
        .arg(0)
        .arg(&payload)
        .arg("IDLETIME")
        .arg(-1)
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("Invalid IDLETIME value"), "{err}");
}

#[test]
fn idletime_inside_a_transaction_and_in_other_databases() {
    let server = start();
    let mut con = server.client();
    run(&mut con, &["SELECT", "3"]);
    run(&mut con, &["SET", "k", "v"]);
    away(&server);
    let replies: Vec<Value> = redis::pipe()
        .atomic()
        .cmd("OBJECT")
        .arg("IDLETIME")
        .arg("k")
        .cmd("GET")
        .arg("k")
        .cmd("OBJECT")
        .arg("IDLETIME")
        .arg("k")
        .query(&mut con)
        .unwrap();
    let n = |v: &Value| match v {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    };
    assert!(n(&replies[0]) >= AWAY_S as i64, "{replies:?}");
    assert!(n(&replies[2]) < FRESH_S, "{replies:?}");
    run(&mut con, &["SELECT", "0"]);
    assert_eq!(idle(&mut con, "k"), None, "database 0 has no k");
}
