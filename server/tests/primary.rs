//! A flin primary followed by flin replicas over Redis's replication protocol: a full sync of
//! TTL keys in several databases, the live stream (expiry rewritten as absolute times,
//! INCRBYFLOAT, GETDEL, MULTI/EXEC, keys expiring), WAIT, INFO replication and ROLE, a
//! replica cut off by its output limit resuming with `+CONTINUE`, and a promoted replica
//! (`REPLICAOF NO ONE`) that another replica of the old primary continues with.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{info_field, start, start_with, wait_for, TestServer};

const DBS: [u32; 3] = [0, 3, 7];
const DEADLINE: Duration = Duration::from_secs(30);

fn replica_of(primary: &TestServer) -> TestServer {
    let port = primary.addr.port().to_string();
    start_with(|c| c.replicaof = vec!["127.0.0.1".into(), port])
}

fn info(con: &mut redis::Connection) -> String {
    redis::cmd("INFO").arg("replication").query(con).unwrap()
}

fn stats(con: &mut redis::Connection) -> String {
    redis::cmd("INFO").arg("stats").query(con).unwrap()
}

fn select(con: &mut redis::Connection, db: u32) {
    let _: () = redis::cmd("SELECT").arg(db).query(con).unwrap();
}

/// Every key of the listed databases: value and absolute expiry (PEXPIRETIME, -1: none).
fn dump(con: &mut redis::Connection) -> BTreeMap<(u32, Vec<u8>), (Vec<u8>, i64)> {
    let mut all = BTreeMap::new();
    for db in DBS {
        select(con, db);
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).unwrap();
        for k in keys {
            let v: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(con).unwrap();
            let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(con).unwrap();
            if let Some(v) = v {
                all.insert((db, k), (v, at));
            }
        }
    }
    select(con, 0);
    all
}

/// Waits until the replica's link is up (its full sync loaded).
fn wait_link_up(replica: &mut redis::Connection) {
    wait_for("the replica's link", DEADLINE, || {
        info_field(&info(replica), "master_link_status") == "up"
    });
}

type Keys = BTreeMap<(u32, Vec<u8>), (Vec<u8>, i64)>;

/// Fails naming the keys (values cut short) that differ between `replica` and `primary`.
fn assert_same(replica: &Keys, primary: &Keys, what: &str) {
    let show = |k: &(u32, Vec<u8>), v: Option<&(Vec<u8>, i64)>| {
        let v = v.map(|(v, at)| {
            (
                String::from_utf8_lossy(&v[..v.len().min(20)]).into_owned(),
                *at,
            )
        });
        format!("db {} {:?}: {v:?}", k.0, String::from_utf8_lossy(&k.1))
    };
    let mut diff = Vec::new();
    for k in replica.keys().chain(primary.keys()) {
        let (r, p) = (replica.get(k), primary.get(k));
        if r != p {
            diff.push(format!("replica {} / primary {}", show(k, r), show(k, p)));
        }
    }
    diff.dedup();
    assert!(diff.is_empty(), "{what}:\n{}", diff.join("\n"));
}

/// Points `replica` at `primary` (REPLICAOF) and waits until `primary` has `online` replicas
/// online and `replica`'s link is up.
fn follow(
    replica: &mut redis::Connection,
    primary: &TestServer,
    primary_con: &mut redis::Connection,
    online: usize,
) {
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.addr.port())
        .query(replica)
        .unwrap();
    wait_online(primary_con, online);
    wait_link_up(replica);
}

fn wait_replicas(con: &mut redis::Connection, n: i64) -> i64 {
    redis::cmd("WAIT").arg(n).arg(10_000).query(con).unwrap()
}

fn wait_online(primary: &mut redis::Connection, replicas: usize) {
    wait_for("replicas online", DEADLINE, || {
        let i = info(primary);
        (0..replicas).all(|n| {
            i.lines()
                .any(|l| l.starts_with(&format!("slave{n}:")) && l.contains("state=online"))
        })
    });
}

#[test]
fn a_flin_replica_follows_a_flin_primary() {
    let primary = start();
    let mut p = primary.client();
    // Before any replica: no backlog, offset 0.
    let i = info(&mut p);
    assert_eq!(info_field(&i, "role"), "master");
    assert_eq!(info_field(&i, "repl_backlog_active"), "0");
    assert_eq!(info_field(&i, "master_repl_offset"), "0");
    assert_eq!(info_field(&i, "master_replid").len(), 40);
    assert_eq!(wait_replicas(&mut p, 0), 0, "nothing to wait for");
    let n: i64 = redis::cmd("WAIT").arg(1).arg(50).query(&mut p).unwrap();
    assert_eq!(n, 0, "no replica: the timeout answers 0");

    let long = "compressible ".repeat(2000);
    for db in DBS {
        select(&mut p, db);
        for i in 0..50 {
            let _: () = redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg(format!("v{db}-{i}"))
                .query(&mut p)
                .unwrap();
        }
        let _: () = redis::cmd("SET")
            .arg("ttl")
            .arg("x")
            .arg("EX")
            .arg(1000)
            .query(&mut p)
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("int")
            .arg(-1234567)
            .query(&mut p)
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("long")
            .arg(&long)
            .query(&mut p)
            .unwrap();
    }
    select(&mut p, 0);

    let replica = replica_of(&primary);
    let mut r = replica.client();
    wait_online(&mut p, 1);
    wait_link_up(&mut r);
    assert_eq!(wait_replicas(&mut p, 1), 1);
    assert_same(
        &dump(&mut r),
        &dump(&mut p),
        "the full sync copied every key",
    );

    // The live stream.
    let script: &[&[&str]] = &[
        &["SET", "a", "1", "EX", "500"],
        &["SET", "b", "2", "PX", "400000", "GET"],
        &["SETEX", "c", "300", "3"],
        &["EXPIRE", "k1", "700"],
        &["PEXPIRE", "k2", "800000"],
        &["PERSIST", "ttl"],
        &["INCRBYFLOAT", "f", "1.1"],
        &["INCRBYFLOAT", "f", "2.2"],
        &["GETDEL", "k3"],
        &["GETEX", "k4", "EX", "900"],
        &["SETNX", "k5", "not written"],
        &["DEL", "missing"],
        &["EXPIRE", "k6", "-1"],
        &["SELECT", "3"],
        &["APPEND", "k7", "-appended"],
        &["INCR", "int"],
        &["RENAME", "k8", "k8-renamed"],
        &["SET", "gone", "soon", "PX", "30"],
        &["SELECT", "0"],
    ];
    for command in script {
        let mut c = redis::cmd(command[0]);
        for a in &command[1..] {
            c.arg(*a);
        }
        let _: redis::Value = c.query(&mut p).unwrap();
    }
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("tx")
        .cmd("INCRBY")
        .arg("tx")
        .arg(10)
        .query(&mut p)
        .unwrap();
    assert_eq!((a, b), (1, 11));
    assert_eq!(wait_replicas(&mut p, 1), 1);
    // The key that expired on the primary is deleted on the replica.
    select(&mut p, 3);
    select(&mut r, 3);
    wait_for("the expired key's DEL", DEADLINE, || {
        let on_primary: i64 = redis::cmd("EXISTS").arg("gone").query(&mut p).unwrap();
        let on_replica: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
        let primary_size: i64 = redis::cmd("DBSIZE").query(&mut p).unwrap();
        on_primary == 0 && on_replica == primary_size
    });
    select(&mut p, 0);
    select(&mut r, 0);

    assert_same(
        &dump(&mut r),
        &dump(&mut p),
        "the stream applied every write",
    );
    let f: String = redis::cmd("GET").arg("f").query(&mut r).unwrap();
    assert_eq!(f, "3.3");

    // INFO and ROLE as Redis writes them.
    let pi = info(&mut p);
    let ri = info(&mut r);
    assert_eq!(info_field(&pi, "connected_slaves"), "1");
    assert_eq!(info_field(&pi, "repl_backlog_active"), "1");
    assert_eq!(info_field(&pi, "repl_backlog_size"), "1048576");
    assert_eq!(
        info_field(&ri, "master_replid"),
        info_field(&pi, "master_replid")
    );
    let offset: i64 = info_field(&pi, "master_repl_offset").parse().unwrap();
    assert!(offset > 0);
    let slave0 = info_field(&pi, "slave0");
    let port = replica.addr.port();
    assert!(
        slave0.starts_with(&format!("ip=127.0.0.1,port={port},state=online,offset=")),
        "{slave0}"
    );
    let role: redis::Value = redis::cmd("ROLE").query(&mut p).unwrap();
    let redis::Value::Array(role) = role else {
        panic!("ROLE: {role:?}")
    };
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    let redis::Value::Array(replicas) = &role[2] else {
        panic!("ROLE: {role:?}")
    };
    assert_eq!(replicas.len(), 1);

    // Cut off by its output limit, the replica comes back with a partial resync.
    let s = stats(&mut p);
    assert_eq!(info_field(&s, "sync_full"), "1");
    assert_eq!(info_field(&s, "sync_partial_ok"), "0");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("replica 1kb 0 0")
        .query(&mut p)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg("x".repeat(100_000))
        .query(&mut p)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("replica 256mb 64mb 60")
        .query(&mut p)
        .unwrap();
    wait_for("the partial resync", DEADLINE, || {
        info_field(&stats(&mut p), "sync_partial_ok") == "1"
    });
    wait_online(&mut p, 1);
    wait_link_up(&mut r);
    assert_eq!(wait_replicas(&mut p, 1), 1);
    assert_eq!(info_field(&stats(&mut p), "sync_full"), "1", "no full sync");
    assert_same(&dump(&mut r), &dump(&mut p), "the copy differs");

    // WAIT inside MULTI answers at once.
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .cmd("WAIT")
        .arg(5)
        .arg(0)
        .query(&mut p)
        .unwrap();
    assert_eq!(n, 1);
    let e = redis::cmd("WAIT")
        .arg(1)
        .arg(-1)
        .query::<i64>(&mut p)
        .unwrap_err();
    assert!(e.to_string().contains("timeout is negative"), "{e}");
}

#[test]
fn a_promoted_replica_continues_the_old_primarys_stream() {
    let primary = start();
    let mut p = primary.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut p).unwrap();
    let port = primary.addr.port().to_string();
    let b = start_with(|c| {
        c.replicaof = vec!["127.0.0.1".into(), port];
        c.replica_priority = 7;
    });
    let c = replica_of(&primary);
    let server: String = redis::cmd("INFO").arg("server").query(&mut p).unwrap();
    assert_eq!(info_field(&server, "run_id").len(), 40);
    wait_online(&mut p, 2);
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("sync")
        .arg("EX")
        .arg(100)
        .query(&mut p)
        .unwrap();
    assert_eq!(wait_replicas(&mut p, 2), 2);
    let old_id = info_field(&info(&mut p), "master_replid").to_owned();

    // B becomes the primary by Redis Sentinel's failover transaction: same data, a new id,
    // the old one second.
    let mut bc = b.client();
    let bi = info(&mut bc);
    assert_eq!(info_field(&bi, "slave_priority"), "7");
    let (slaveof, rewrite, _, _): (String, String, i64, i64) = redis::pipe()
        .atomic()
        .cmd("SLAVEOF")
        .arg("NO")
        .arg("ONE")
        .cmd("CONFIG")
        .arg("REWRITE")
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut bc)
        .unwrap();
    assert_eq!((slaveof.as_str(), rewrite.as_str()), ("OK", "OK"));
    let bi = info(&mut bc);
    assert_eq!(info_field(&bi, "role"), "master");
    assert_eq!(info_field(&bi, "master_replid2"), old_id);
    assert_ne!(info_field(&bi, "master_replid"), old_id);
    let offset: i64 = info_field(&bi, "master_repl_offset").parse().unwrap();
    assert_eq!(
        info_field(&bi, "second_repl_offset"),
        (offset + 1).to_string()
    );
    let _: () = redis::cmd("SET")
        .arg("on-b")
        .arg("1")
        .query(&mut bc)
        .unwrap();

    // C follows B and continues where it was: no full sync on B.
    let mut cc = c.client();
    follow(&mut cc, &b, &mut bc, 1);
    assert_eq!(wait_replicas(&mut bc, 1), 1);
    let s = stats(&mut bc);
    assert_eq!(info_field(&s, "sync_partial_ok"), "1");
    assert_eq!(info_field(&s, "sync_full"), "0");
    assert_same(&dump(&mut cc), &dump(&mut bc), "the copy differs");

    // The old primary becomes a replica: B's replicas of it would be dropped.
    let mut pc = primary.client();
    follow(&mut pc, &b, &mut bc, 2);
    assert_eq!(wait_replicas(&mut bc, 2), 2);
    assert_same(&dump(&mut pc), &dump(&mut bc), "the copy differs");
}

#[test]
fn the_backlog_is_freed_after_repl_backlog_ttl_without_replicas() {
    let primary = start();
    let mut p = primary.client();
    {
        let _replica = replica_of(&primary);
        wait_online(&mut p, 1);
        let _: () = redis::cmd("SET").arg("a").arg(1).query(&mut p).unwrap();
        assert_eq!(wait_replicas(&mut p, 1), 1);
    }
    wait_for("the replica gone", DEADLINE, || {
        info_field(&info(&mut p), "connected_slaves") == "0"
    });
    let before = info(&mut p);
    assert_eq!(info_field(&before, "repl_backlog_active"), "1");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("repl-backlog-ttl")
        .arg(1)
        .query(&mut p)
        .unwrap();
    wait_for("the backlog freed", DEADLINE, || {
        info_field(&info(&mut p), "repl_backlog_active") == "0"
    });
    let after = info(&mut p);
    assert_ne!(
        info_field(&after, "master_replid"),
        info_field(&before, "master_replid"),
        "a new id: nobody can continue the old stream"
    );
    assert_eq!(
        info_field(&after, "master_replid2"),
        "0000000000000000000000000000000000000000"
    );
    let offset = info_field(&after, "master_repl_offset").to_owned();
    let _: () = redis::cmd("SET").arg("b").arg(2).query(&mut p).unwrap();
    assert_eq!(
        info_field(&info(&mut p), "master_repl_offset"),
        offset,
        "no backlog, no stream"
    );
    let ttl: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("repl-backlog-ttl")
        .query(&mut p)
        .unwrap();
    assert_eq!(ttl, ["repl-backlog-ttl", "1"]);
}

/// A primary and one replica with its link up, and a client of each.
fn linked() -> (TestServer, redis::Connection, TestServer, redis::Connection) {
    let primary = start();
    let mut p = primary.client();
    let replica = replica_of(&primary);
    let mut r = replica.client();
    wait_online(&mut p, 1);
    wait_link_up(&mut r);
    (primary, p, replica, r)
}

/// PUBLISH on a primary goes down the stream (as Redis's does): subscribers on its replicas
/// get the message.
#[test]
fn a_publish_reaches_the_replicas_subscribers() {
    let (_primary, mut p, replica, _r) = linked();
    let mut sub = replica.client();
    let mut sub = sub.as_pubsub();
    sub.subscribe("news").unwrap();
    sub.set_read_timeout(Some(DEADLINE)).unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("hello")
        .query(&mut p)
        .unwrap();
    let msg = sub.get_message().expect("the message, within the deadline");
    assert_eq!(msg.get_channel_name(), "news");
    assert_eq!(msg.get_payload::<String>().unwrap(), "hello");
}

/// A replica's link is a client in CLIENT LIST on both ends, as on Redis: flag `S` on the
/// primary (TYPE replica / slave), flag `M` on the replica (TYPE master); CLIENT KILL of
/// either drops the link, and the replica comes back with `+CONTINUE`.
#[test]
fn replica_links_are_listed_and_killed_as_clients() {
    let (_primary, mut p, _replica, mut r) = linked();
    let list = |con: &mut redis::Connection, kind: &str| -> Vec<String> {
        let text: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("TYPE")
            .arg(kind)
            .query(con)
            .unwrap();
        text.lines().map(str::to_owned).collect()
    };
    let replicas = list(&mut p, "replica");
    assert_eq!(replicas.len(), 1, "{replicas:?}");
    assert!(replicas[0].contains(" flags=S "), "{}", replicas[0]);
    assert_eq!(list(&mut p, "slave"), replicas);
    assert!(list(&mut p, "normal")
        .iter()
        .all(|l| !l.contains("flags=S")));
    let masters = list(&mut r, "master");
    assert_eq!(masters.len(), 1, "{masters:?}");
    assert!(masters[0].contains(" flags=M "), "{}", masters[0]);
    assert!(list(&mut r, "normal")
        .iter()
        .all(|l| !l.contains("flags=M")));
    let partial = |p: &mut redis::Connection| -> u64 {
        info_field(&stats(p), "sync_partial_ok").parse().unwrap()
    };

    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut p)
        .unwrap();
    assert_eq!(killed, 1);
    wait_for("the replica back with +CONTINUE", DEADLINE, || {
        partial(&mut p) == 1
    });
    wait_online(&mut p, 1);
    // The primary may count the replica online a moment before the replica lists its new
    // link (a full-suite run once killed nothing here).
    wait_for("the replica's new link listed", DEADLINE, || {
        list(&mut r, "master").len() == 1
    });
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("master")
        .query(&mut r)
        .unwrap();
    assert_eq!(killed, 1);
    wait_for("the link back with +CONTINUE", DEADLINE, || {
        partial(&mut p) == 2
    });
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut p).unwrap();
    assert_eq!(wait_replicas(&mut p, 1), 1);
    assert_eq!(
        list(&mut p, "replica").len(),
        1,
        "the dropped links left the list"
    );
    wait_link_up(&mut r);
    assert_eq!(list(&mut r, "master").len(), 1);
}

/// A key that expires on a primary and whose record compaction drops before the expiry sweep
/// found it leaves its replicas too: compaction reports it, and the primary sends its DEL as
/// for a key the sweep removes. Before, the replica (which keeps expired keys until its
/// primary's DEL, as Redis's do) kept it for ever.
#[test]
fn a_key_compaction_drops_as_expired_is_deleted_on_the_replicas() {
    let primary = start_with(|c| c.segment_size = 64 * 1024);
    // Only compaction may find the key expired on the primary.
    primary.handle().engine().pause_expiry_sweep_for_tests(true);
    let mut p = primary.client();
    let replica = replica_of(&primary);
    let mut r = replica.client();
    wait_online(&mut p, 1);
    wait_link_up(&mut r);
    let _: () = redis::cmd("SET")
        .arg("gone")
        .arg("v")
        .arg("PX")
        .arg(1)
        .query(&mut p)
        .unwrap();
    // Segments full of overwritten values after it: the one holding it is sealed, with dead
    // bytes, so compaction takes it.
    let value = vec![b'x'; 1000];
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("churn{}", i % 4))
            .arg(&value)
            .query(&mut p)
            .unwrap();
    }
    assert_eq!(wait_replicas(&mut p, 1), 1);
    wait_for("the key to expire on the primary", DEADLINE, || {
        redis::cmd("PTTL").arg("gone").query::<i64>(&mut p).unwrap() == -2
    });
    // (The replica holds it, hidden from reads, until the primary's DEL; the primary's own
    // compaction may have dropped it already.)
    primary.handle().engine().compact_now().unwrap();
    let on_primary: i64 = redis::cmd("DBSIZE").query(&mut p).unwrap();
    assert_eq!(
        on_primary, 4,
        "compaction dropped the expired key on the primary"
    );
    wait_for("the expired key's DEL on the replica", DEADLINE, || {
        redis::cmd("DBSIZE").query::<i64>(&mut r).unwrap() == 4
    });
}

/// `replica-read-only` (Redis's default `yes`): a replica refuses its clients' writes; after
/// `CONFIG SET replica-read-only no` it takes them locally, INFO says so, and the primary's
/// stream still overwrites the key; back to `yes`, writes are refused again.
#[test]
fn a_replica_takes_local_writes_only_with_replica_read_only_no() {
    let (_primary, mut p, _replica, mut r) = linked();
    let refused = redis::cmd("SET")
        .arg("local")
        .arg("1")
        .query::<()>(&mut r)
        .unwrap_err();
    assert_eq!(refused.code(), Some("READONLY"), "{refused}");
    assert_eq!(info_field(&info(&mut r), "slave_read_only"), "1");

    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("replica-read-only")
        .arg("no")
        .query(&mut r)
        .unwrap();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("replica-read-only")
        .query(&mut r)
        .unwrap();
    assert_eq!(got, ["replica-read-only", "no"]);
    assert_eq!(info_field(&info(&mut r), "slave_read_only"), "0");
    let _: () = redis::cmd("SET")
        .arg("local")
        .arg("1")
        .query(&mut r)
        .unwrap();
    let v: String = redis::cmd("GET").arg("local").query(&mut r).unwrap();
    assert_eq!(v, "1");

    // The primary's write of the same key wins on the replica.
    let _: () = redis::cmd("SET")
        .arg("local")
        .arg("from-primary")
        .query(&mut p)
        .unwrap();
    assert_eq!(wait_replicas(&mut p, 1), 1);
    let v: String = redis::cmd("GET").arg("local").query(&mut r).unwrap();
    assert_eq!(v, "from-primary");

    let bad = redis::cmd("CONFIG")
        .arg("SET")
        .arg("replica-read-only")
        .arg("maybe")
        .query::<()>(&mut r)
        .unwrap_err();
    assert!(
        bad.to_string().contains("argument must be 'yes' or 'no'"),
        "{bad}"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("replica-read-only")
        .arg("yes")
        .query(&mut r)
        .unwrap();
    let refused = redis::cmd("DEL")
        .arg("local")
        .query::<i64>(&mut r)
        .unwrap_err();
    assert_eq!(refused.code(), Some("READONLY"), "{refused}");
}
