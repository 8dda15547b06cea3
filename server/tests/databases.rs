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
        "db1:keys=52,expires=0,avg_ttl=0",
        "db2:keys=1,expires=0,avg_ttl=0",
        "db3:keys=1,expires=0,avg_ttl=0",
    ] {
        assert!(info.contains(line), "{line} not in {info}");
    }
    assert!(!info.contains("db4"), "{info}");
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
