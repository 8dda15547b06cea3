//! Guards against command semantics drifting from Redis, through a real client library.

mod common;

use common::{info_field, start};
use redis::{Commands, Value};

#[test]
fn strings_and_expiry() {
    let srv = start();
    let mut con = srv.client();
    let ok: String = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("NX")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    let nil: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .arg("NX")
        .query(&mut con)
        .unwrap();
    assert_eq!(nil, None);
    let old: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .arg("XX")
        .arg("GET")
        .query(&mut con)
        .unwrap();
    assert_eq!(old.as_deref(), Some("v"));
    let nil: Option<String> = redis::cmd("SET")
        .arg("absent")
        .arg("w")
        .arg("XX")
        .query(&mut con)
        .unwrap();
    assert_eq!(nil, None);
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("1")
        .arg("EX")
        .arg(100)
        .query(&mut con)
        .unwrap();
    let ttl: i64 = con.ttl("t").unwrap();
    assert_eq!(ttl, 100);
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("2")
        .arg("KEEPTTL")
        .query(&mut con)
        .unwrap();
    let pttl: i64 = con.pttl("t").unwrap();
    assert!(pttl > 99_000 && pttl <= 100_000, "{pttl}");
    let _: () = con.set("t", "3").unwrap();
    assert_eq!(con.ttl::<_, i64>("t").unwrap(), -1, "SET clears the TTL");
    assert_eq!(con.ttl::<_, i64>("nope").unwrap(), -2);
    // Past absolute expiry deletes.
    let _: () = redis::cmd("SET")
        .arg("gone")
        .arg("x")
        .arg("PXAT")
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert!(!con.exists::<_, bool>("gone").unwrap());

    assert_eq!(con.expire::<_, i64>("t", 50).unwrap(), 1);
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("t")
            .arg(10)
            .arg("GT")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("t")
            .arg(10)
            .arg("LT")
            .query::<i64>(&mut con)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("t")
            .arg(10)
            .arg("NX")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    assert_eq!(con.persist::<_, i64>("t").unwrap(), 1);
    assert_eq!(con.persist::<_, i64>("t").unwrap(), 0);
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("t")
            .arg(10)
            .arg("XX")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    assert_eq!(con.pexpire::<_, i64>("missing", 100).unwrap(), 0);
    assert_eq!(
        con.expire::<_, i64>("t", -1).unwrap(),
        1,
        "negative expiry deletes"
    );
    assert!(!con.exists::<_, bool>("t").unwrap());

    let _: () = con.mset(&[("a", "1"), ("b", "2")]).unwrap();
    let vals: Vec<Option<String>> = con.mget(&["a", "x", "b"]).unwrap();
    assert_eq!(vals, vec![Some("1".into()), None, Some("2".into())]);
    assert_eq!(con.exists::<_, i64>(&["a", "b", "a", "zz"]).unwrap(), 3);
    assert_eq!(con.del::<_, i64>(&["a", "zz"]).unwrap(), 1);
    assert_eq!(
        redis::cmd("SETNX")
            .arg("b")
            .arg("9")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    assert_eq!(
        redis::cmd("SETNX")
            .arg("c")
            .arg("9")
            .query::<i64>(&mut con)
            .unwrap(),
        1
    );
    let v: Option<String> = redis::cmd("GETDEL").arg("c").query(&mut con).unwrap();
    assert_eq!(v.as_deref(), Some("9"));
    let v: Option<String> = redis::cmd("GETDEL").arg("c").query(&mut con).unwrap();
    assert_eq!(v, None);
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 2);
}

#[test]
fn counters_and_string_ops() {
    let srv = start();
    let mut con = srv.client();
    assert_eq!(con.incr::<_, _, i64>("n", 1).unwrap(), 1);
    assert_eq!(con.incr::<_, _, i64>("n", 41).unwrap(), 42);
    assert_eq!(con.decr::<_, _, i64>("n", 2).unwrap(), 40);
    assert_eq!(
        redis::cmd("DECR").arg("n").query::<i64>(&mut con).unwrap(),
        39
    );
    let _: () = con.set("max", i64::MAX).unwrap();
    let err = redis::cmd("INCR")
        .arg("max")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("increment or decrement would overflow"),
        "{err}"
    );
    let f: String = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg("10.5")
        .query(&mut con)
        .unwrap();
    assert_eq!(f, "10.5");
    let f: String = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg("0.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(f, "10.6");
    assert_eq!(con.append::<_, _, i64>("s", "Hello").unwrap(), 5);
    assert_eq!(con.append::<_, _, i64>("s", " World").unwrap(), 11);
    assert_eq!(con.strlen::<_, i64>("s").unwrap(), 11);
    let r: String = con.getrange("s", 0, 4).unwrap();
    assert_eq!(r, "Hello");
    let r: String = con.getrange("s", -5, -1).unwrap();
    assert_eq!(r, "World");
    assert_eq!(con.setrange::<_, _, i64>("s", 6, "Redis").unwrap(), 11);
    let s: String = con.get("s").unwrap();
    assert_eq!(s, "Hello Redis");
    assert_eq!(con.setrange::<_, _, i64>("pad", 3, "x").unwrap(), 4);
    let p: Vec<u8> = con.get("pad").unwrap();
    assert_eq!(p, b"\0\0\0x");
    let old: Option<String> = con.getset("s", "new").unwrap();
    assert_eq!(old.as_deref(), Some("Hello Redis"));
    let v: String = redis::cmd("GETEX")
        .arg("s")
        .arg("EX")
        .arg(100)
        .query(&mut con)
        .unwrap();
    assert_eq!(v, "new");
    assert_eq!(con.ttl::<_, i64>("s").unwrap(), 100);
    let _: String = redis::cmd("GETEX")
        .arg("s")
        .arg("PERSIST")
        .query(&mut con)
        .unwrap();
    assert_eq!(con.ttl::<_, i64>("s").unwrap(), -1);
    let _: () = redis::cmd("SETEX")
        .arg("e")
        .arg(100)
        .arg("v")
        .query(&mut con)
        .unwrap();
    assert_eq!(con.ttl::<_, i64>("e").unwrap(), 100);
    assert_eq!(
        redis::cmd("MSETNX")
            .arg("e")
            .arg("1")
            .arg("z")
            .arg("2")
            .query::<i64>(&mut con)
            .unwrap(),
        0
    );
    assert_eq!(
        redis::cmd("MSETNX")
            .arg("y")
            .arg("1")
            .arg("z")
            .arg("2")
            .query::<i64>(&mut con)
            .unwrap(),
        1
    );
}

#[test]
fn keyspace_commands() {
    let srv = start();
    let mut con = srv.client();
    for i in 0..500 {
        let _: () = con.set(format!("user:{i}"), i).unwrap();
    }
    let _: () = con.set("other", 1).unwrap();
    let mut keys: Vec<String> = con.keys("user:4?").unwrap();
    keys.sort();
    assert_eq!(keys.len(), 10);
    assert_eq!(keys[0], "user:40");
    let all: Vec<String> = con.keys("*").unwrap();
    assert_eq!(all.len(), 501);
    // SCAN returns every key at least once.
    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("user:*")
            .arg("COUNT")
            .arg(50)
            .query(&mut con)
            .unwrap();
        seen.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 500);
    let t: String = redis::cmd("TYPE").arg("other").query(&mut con).unwrap();
    assert_eq!(t, "string");
    let t: String = redis::cmd("TYPE").arg("nothing").query(&mut con).unwrap();
    assert_eq!(t, "none");
    let k: Option<String> = redis::cmd("RANDOMKEY").query(&mut con).unwrap();
    assert!(k.is_some());
    let _: () = con.rename("other", "renamed").unwrap();
    assert!(con.exists::<_, bool>("renamed").unwrap());
    assert_eq!(con.rename_nx::<_, _, i64>("renamed", "user:1").unwrap(), 0);
    let err = con.rename::<_, _, ()>("nothing", "x").unwrap_err();
    assert!(err.to_string().contains("no such key"), "{err}");
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 0);
    let k: Option<String> = redis::cmd("RANDOMKEY").query(&mut con).unwrap();
    assert_eq!(k, None);
}

#[test]
fn server_introspection() {
    let srv = start();
    let mut con = srv.client();
    let _: () = con.set("k", "v").unwrap();
    let info: String = redis::cmd("INFO").query(&mut con).unwrap();
    for field in [
        "# Server",
        "redis_version:",
        "# Clients",
        "connected_clients:1",
        "# Memory",
        "used_memory:",
        "# Persistence",
        "engine_segments:",
        "engine_live_bytes:",
        "engine_last_fsync_unix_ms:",
        "# Stats",
        "total_connections_received:",
        "total_commands_processed:",
        "instantaneous_ops_per_sec:",
        "keyspace_hits:",
        "total_net_input_bytes:",
        "# Replication",
        "role:master",
        "connected_slaves:0",
        "# CPU",
        "used_cpu_sys:",
        "# Cluster",
        "cluster_enabled:0",
        "# Keyspace",
        "db0:keys=1,expires=0,avg_ttl=0",
    ] {
        assert!(info.contains(field), "INFO lacks {field}:\n{info}");
    }
    // CONFIG RESETSTAT starts the counters again: the GET's hit is gone, and the command
    // count holds at most the RESETSTAT itself.
    let v: String = con.get("k").unwrap();
    assert_eq!(v, "v");
    let field = |info: &str, name: &str| -> u64 { info_field(info, name).parse().unwrap() };
    let before: String = redis::cmd("INFO").arg("stats").query(&mut con).unwrap();
    assert!(field(&before, "keyspace_hits") >= 1, "{before}");
    assert!(field(&before, "total_commands_processed") >= 4, "{before}");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
    let after: String = redis::cmd("INFO").arg("stats").query(&mut con).unwrap();
    assert_eq!(field(&after, "keyspace_hits"), 0, "{after}");
    assert!(field(&after, "total_commands_processed") <= 1, "{after}");
    assert!(field(&after, "total_connections_received") == 0, "{after}");
    let role: (String, i64, Vec<String>) = redis::cmd("ROLE").query(&mut con).unwrap();
    assert_eq!(role, ("master".to_string(), 0, vec![]));
    let (secs, micros): (u64, u32) = redis::cmd("TIME").query(&mut con).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) <= 5, "TIME says {secs}, the clock {now}");
    assert!(micros < 1_000_000, "{micros}");
    let only: String = redis::cmd("INFO").arg("keyspace").query(&mut con).unwrap();
    assert_eq!(only, "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n");
    let cfg: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query(&mut con)
        .unwrap();
    assert_eq!(cfg, vec!["save".to_string(), String::new()]);
    let cfg: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("max*")
        .query(&mut con)
        .unwrap();
    assert!(cfg.contains(&"maxmemory".to_string()) && cfg.contains(&"maxclients".to_string()));
    let n: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut con).unwrap();
    let all: Vec<Value> = redis::cmd("COMMAND").query(&mut con).unwrap();
    assert_eq!(all.len() as i64, n);
    let docs: Vec<Value> = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg("get")
        .query(&mut con)
        .unwrap();
    assert_eq!(docs.len(), 2);
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap();
    assert!(id > 0);
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    let echo: String = redis::cmd("ECHO").arg("hi").query(&mut con).unwrap();
    assert_eq!(echo, "hi");
    let stats = srv.handle().stats();
    assert!(stats.ops_processed >= 10);
    assert_eq!(stats.keyspace_hits, 0);
    assert_eq!(stats.active_connections, 1);
}

#[test]
fn expired_keys_leave_without_being_read() {
    let srv = start();
    let mut con = srv.client();
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("short:{i}"))
            .arg("v")
            .arg("PX")
            .arg(50)
            .query(&mut con)
            .unwrap();
    }
    let _: () = con.set("long", "v").unwrap();
    let _: () = redis::cmd("PEXPIRE")
        .arg("long")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    common::wait_for("active expiry", std::time::Duration::from_secs(10), || {
        redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap() == 1
    });
    assert_eq!(srv.handle().stats().expired_keys, 100);
    assert!(con.exists::<_, bool>("long").unwrap());
}
