//! Databases through the server: every key command works in the client's selected database,
//! MOVE / COPY / SWAPDB / FLUSHDB change only what they name, the selection is per connection,
//! and all of it survives a restart (and `--databases` bounds SELECT).

mod common;

use common::{config, start, start_with};
use flin_server::Server;
use redis::Commands;

fn select(con: &mut redis::Connection, db: u32) {
    let _: () = redis::cmd("SELECT").arg(db).query(con).unwrap();
}

fn dbsize(con: &mut redis::Connection) -> i64 {
    redis::cmd("DBSIZE").query(con).unwrap()
}

#[test]
fn databases_are_separate_and_survive_a_restart() {
    let mut srv = start();
    {
        let mut con = srv.client();
        let mut other = srv.client();
        for i in 0..100 {
            let _: () = con.set(format!("k{i}"), format!("zero{i}")).unwrap();
        }
        select(&mut con, 1);
        for i in 0..50 {
            let _: () = con.set(format!("k{i}"), format!("one{i}")).unwrap();
        }
        let _: () = redis::cmd("MSET")
            .arg("m1")
            .arg("a")
            .arg("m2")
            .arg("b")
            .query(&mut con)
            .unwrap();
        let _: () = con.rename("m1", "m3").unwrap();
        let _: () = con.set_ex("ttl", "t", 1000).unwrap();
        assert_eq!(dbsize(&mut con), 53);
        // Another connection stays in database 0.
        let v: String = other.get("k1").unwrap();
        assert_eq!(v, "zero1");
        assert_eq!(dbsize(&mut other), 100);
        let m: Option<String> = other.get("m3").unwrap();
        assert_eq!(m, None);

        // MOVE k0 from 1 to 2, COPY k1 into 3 with REPLACE, then SWAPDB 2 3.
        let moved: i64 = redis::cmd("MOVE").arg("k0").arg(2).query(&mut con).unwrap();
        assert_eq!(moved, 1);
        let copied: i64 = redis::cmd("COPY")
            .arg("k1")
            .arg("k1")
            .arg("DB")
            .arg(3)
            .arg("REPLACE")
            .query(&mut con)
            .unwrap();
        assert_eq!(copied, 1);
        let _: () = redis::cmd("SWAPDB").arg(2).arg(3).query(&mut con).unwrap();
        // Database 4 holds a key, then is flushed alone.
        select(&mut con, 4);
        let _: () = con.set("gone", "x").unwrap();
        let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
        assert_eq!(dbsize(&mut con), 0);
        let e: redis::RedisResult<()> = redis::cmd("SELECT").arg(16).query(&mut con);
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("DB index is out of range"));
    }
    srv.stop();
    let handle = Server::start(config(srv.dir.path())).expect("restart");
    srv.addr = handle.local_addr();
    srv.handle = Some(handle);
    let mut con = srv.client();
    assert_eq!(dbsize(&mut con), 100);
    let v: String = con.get("k0").unwrap();
    assert_eq!(v, "zero0");
    select(&mut con, 1);
    assert_eq!(dbsize(&mut con), 52, "k0 moved out");
    let v: Option<String> = con.get("k0").unwrap();
    assert_eq!(v, None);
    let v: String = con.get("m3").unwrap();
    assert_eq!(v, "a");
    let ttl: i64 = con.ttl("ttl").unwrap();
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");
    // After SWAPDB 2 3: the copy is in 2, the moved key in 3.
    select(&mut con, 2);
    let v: String = con.get("k1").unwrap();
    assert_eq!(v, "one1");
    assert_eq!(dbsize(&mut con), 1);
    select(&mut con, 3);
    let v: String = con.get("k0").unwrap();
    assert_eq!(v, "one0");
    select(&mut con, 4);
    assert_eq!(dbsize(&mut con), 0);
    let info: String = redis::cmd("INFO").arg("keyspace").query(&mut con).unwrap();
    for line in [
        "db0:keys=100,expires=0,avg_ttl=0",
        "db1:keys=52,expires=1,avg_ttl=",
        "db2:keys=1,expires=0,avg_ttl=0",
        "db3:keys=1,expires=0,avg_ttl=0",
    ] {
        assert!(info.contains(line), "{line} not in {info}");
    }
    assert!(!info.contains("db4"), "{info}");
}

/// INFO keyspace as (db, keys, expires, avg_ttl), every line checked for Redis's shape.
fn keyspace(con: &mut redis::Connection) -> Vec<(u32, u64, u64, u64)> {
    let info: String = redis::cmd("INFO").arg("keyspace").query(con).unwrap();
    let mut lines = info.lines();
    assert_eq!(lines.next(), Some("# Keyspace"), "{info}");
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (db, rest) = l.split_once(":keys=").expect("dbN:keys=");
            let (keys, rest) = rest.split_once(",expires=").expect(",expires=");
            let (expires, avg_ttl) = rest.split_once(",avg_ttl=").expect(",avg_ttl=");
            let num = |s: &str| s.parse::<u64>().unwrap_or_else(|_| panic!("{l}"));
            let db = db.strip_prefix("db").expect("db");
            (num(db) as u32, num(keys), num(expires), num(avg_ttl))
        })
        .collect()
}

#[test]
fn info_keyspace_counts_the_keys_with_an_expiry_and_survives_a_restart() {
    let mut srv = start();
    let mut con = srv.client();
    let q = |con: &mut redis::Connection, args: &[&str]| {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        let _: redis::Value = c.query(con).unwrap();
    };
    for args in [
        &["SET", "a", "1", "EX", "1000"][..],
        &["SET", "b", "1"],
        &["SETEX", "c", "1000", "1"],
        &["PSETEX", "d", "1000000", "1"],
        &["SET", "e", "1", "EXAT", "4102444800"],
        &["MSET", "f", "1", "g", "1"],
        &["EXPIRE", "f", "1000"],
        &["PERSIST", "a"],
        &["GETEX", "g", "PX", "1000000"],
        &["SET", "c", "2"],
        &["SET", "b", "2", "EX", "1000"],
        &["SET", "b", "3", "KEEPTTL"],
        &["DEL", "d"],
        // An expiry in the past deletes the key (g), or writes nothing (gone).
        &["EXPIRE", "g", "0"],
        &["SET", "gone", "1", "PXAT", "1"],
    ] {
        q(&mut con, args);
    }
    assert_eq!(dbsize(&mut con), 5, "a b c e f");
    // The counts below show that both moved what they should.
    q(&mut con, &["MOVE", "e", "2"]);
    q(&mut con, &["COPY", "b", "b", "DB", "3"]);
    select(&mut con, 4);
    q(&mut con, &["SET", "x", "1", "EX", "1000"]);
    q(&mut con, &["SET", "y", "1", "EX", "1000"]);
    q(&mut con, &["SWAPDB", "4", "5"]);
    select(&mut con, 6);
    q(&mut con, &["SET", "z", "1", "EX", "1000"]);
    q(&mut con, &["FLUSHDB"]);
    let counts = |k: &[(u32, u64, u64, u64)]| -> Vec<(u32, u64, u64)> {
        k.iter().map(|&(d, n, e, _)| (d, n, e)).collect()
    };
    let want = vec![(0, 4, 2), (2, 1, 1), (3, 1, 1), (5, 2, 2)];
    let before = keyspace(&mut con);
    assert_eq!(counts(&before), want, "a b c f; e; b; x y");
    for &(_, _, expires, avg_ttl) in &before {
        // No sweep may have sampled yet: then 0, else at most the longest TTL written.
        assert!(avg_ttl <= 4_102_444_800_000, "{before:?}");
        if expires == 0 {
            assert_eq!(avg_ttl, 0);
        }
    }
    drop(con);
    srv.stop();
    let handle = Server::start(config(srv.dir.path())).expect("restart");
    srv.addr = handle.local_addr();
    srv.handle = Some(handle);
    let mut con = srv.client();
    assert_eq!(counts(&keyspace(&mut con)), want, "after a restart");
    q(&mut con, &["FLUSHALL"]);
    assert_eq!(keyspace(&mut con), vec![]);
}

#[test]
fn the_databases_flag_bounds_select() {
    let srv = start_with(|c| c.databases = 2);
    let mut con = srv.client();
    select(&mut con, 1);
    let e: redis::RedisResult<()> = redis::cmd("SELECT").arg(2).query(&mut con);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("DB index is out of range"));
    let e: redis::RedisResult<()> = redis::cmd("SWAPDB").arg(0).arg(2).query(&mut con);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("DB index is out of range"));
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("databases")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, vec!["databases".to_string(), "2".to_string()]);
}
