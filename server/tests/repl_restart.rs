//! Replication across restarts (issue 17: "resumes with +CONTINUE after a dropped link or a
//! restart when the primary's backlog still covers it"): a replica stopped cleanly continues
//! its primary's stream (in the database the stream had selected) instead of a full sync; a
//! replica killed with SIGKILL full-syncs, even after an earlier clean restart left a
//! position; a primary stopped cleanly and restarted on its port is continued by its caught-up
//! replica, and sends the DEL of a key that expired while it was down.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{binary, info_field, start, start_with, wait_for, TestServer};
use flin_server::{Server, ServerHandle};

const DEADLINE: Duration = Duration::from_secs(30);
const DBS: [u32; 2] = [0, 3];
const RESUME_FILE: &str = "REPL-RESUME";

fn connect(addr: impl std::fmt::Display) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let con = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .unwrap();
    con.set_read_timeout(Some(DEADLINE)).unwrap();
    con
}

fn info(con: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(con).unwrap()
}

/// INFO stats' `sync_full` and `sync_partial_ok` on a primary.
fn syncs(primary: &mut redis::Connection) -> (u64, u64) {
    let i = info(primary, "stats");
    (
        info_field(&i, "sync_full").parse().unwrap(),
        info_field(&i, "sync_partial_ok").parse().unwrap(),
    )
}

fn select(con: &mut redis::Connection, db: u32) {
    let _: () = redis::cmd("SELECT").arg(db).query(con).unwrap();
}

/// Sets `n` keys named `<tag>:<i>` in database `db`.
fn write(con: &mut redis::Connection, db: u32, tag: &str, n: usize) {
    select(con, db);
    for i in 0..n {
        let _: () = redis::cmd("SET")
            .arg(format!("{tag}:{i}"))
            .arg(format!("{tag}-{db}-{i}"))
            .query(con)
            .unwrap();
    }
}

/// Every key of [`DBS`] with its value; the connection is left in database 0.
fn dump(con: &mut redis::Connection) -> BTreeMap<(u32, String), String> {
    let mut all = BTreeMap::new();
    for db in DBS {
        select(con, db);
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
        for k in keys {
            let v: Option<String> = redis::cmd("GET").arg(&k).query(con).unwrap();
            all.insert((db, k), v.unwrap_or_default());
        }
    }
    select(con, 0);
    all
}

/// Waits until one replica acknowledged every write of `primary` so far.
fn wait_acked(primary: &mut redis::Connection) {
    let n: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(20_000)
        .query(primary)
        .unwrap();
    assert_eq!(n, 1, "the replica acknowledged the writes");
}

fn wait_link_up(replica: &mut redis::Connection) {
    wait_for("the replica's link", DEADLINE, || {
        info_field(&info(replica, "replication"), "master_link_status") == "up"
    });
}

fn restart(dir: &Path, tweak: impl FnOnce(&mut flin_server::Config)) -> ServerHandle {
    let mut c = common::config(dir);
    tweak(&mut c);
    Server::start(c).expect("restart")
}

fn replica_of(primary: &TestServer) -> TestServer {
    let port = primary.addr.port().to_string();
    start_with(|c| c.replicaof = vec!["127.0.0.1".into(), port])
}

#[test]
fn a_replica_stopped_cleanly_continues_where_it_was() {
    let primary = start();
    let mut p = primary.client();
    let mut replica = replica_of(&primary);
    let mut r = replica.client();
    wait_link_up(&mut r);
    write(&mut p, 0, "a", 50);
    // The stream's last SELECT is database 3: the writes after the restart carry none.
    write(&mut p, 3, "b", 50);
    wait_acked(&mut p);
    assert_eq!(syncs(&mut p), (1, 0));

    drop(r);
    replica.stop();
    let dir = replica.dir.path().to_owned();
    assert!(
        dir.join(RESUME_FILE).exists(),
        "a clean stop keeps the position"
    );
    write(&mut p, 3, "c", 50);

    let again = restart(&dir, |_| {});
    assert!(
        !dir.join(RESUME_FILE).exists(),
        "taken at start: a crash from here must not reuse it"
    );
    let mut r = connect(again.local_addr());
    wait_link_up(&mut r);
    assert_eq!(syncs(&mut p), (1, 1), "+CONTINUE, no second full sync");
    write(&mut p, 3, "d", 20);
    write(&mut p, 0, "e", 20);
    wait_acked(&mut p);
    let (got, want) = (dump(&mut r), dump(&mut p));
    assert_eq!(got.len(), 190);
    assert!(got == want, "the replica has every key, in its database");
    assert!(info(&mut r, "replication").contains("slave_repl_offset:"));
    again.shutdown().unwrap();
}

/// A start that fails after the position was read (here: its port is taken) leaves the
/// position for the next start, which continues the stream with `+CONTINUE`. Before, the
/// start removed the file as it read it, and the next start full-synced.
#[test]
fn a_failed_start_keeps_the_position_for_the_next() {
    let primary = start();
    let mut p = primary.client();
    let mut replica = replica_of(&primary);
    let mut r = replica.client();
    wait_link_up(&mut r);
    write(&mut p, 0, "a", 20);
    wait_acked(&mut p);
    drop(r);
    replica.stop();
    let dir = replica.dir.path().to_owned();
    assert!(
        dir.join(RESUME_FILE).exists(),
        "a clean stop keeps the position"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut c = common::config(&dir);
    c.port = port;
    assert!(Server::start(c).is_err(), "its port is in use");
    assert!(
        dir.join(RESUME_FILE).exists(),
        "a start that failed leaves the position"
    );
    drop(taken);

    let again = restart(&dir, |_| {});
    assert!(
        !dir.join(RESUME_FILE).exists(),
        "taken by the start that succeeded"
    );
    let mut r = connect(again.local_addr());
    wait_link_up(&mut r);
    assert_eq!(syncs(&mut p), (1, 1), "+CONTINUE, no second full sync");
    write(&mut p, 0, "b", 20);
    wait_acked(&mut p);
    assert!(dump(&mut r) == dump(&mut p), "the replica has every key");
    again.shutdown().unwrap();
}

/// Stops the binary as a service manager does (SIGTERM) and waits for its exit.
fn terminate(s: &mut binary::Running) {
    // SAFETY: a plain system call on our own child's pid.
    let sent = unsafe { libc::kill(s.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = s.child.wait().unwrap();
    assert!(status.success(), "clean exit: {status}");
}

#[test]
fn a_replica_killed_with_sigkill_full_syncs_and_has_every_key() {
    let primary = start();
    let mut p = primary.client();
    let dir = tempfile::tempdir().unwrap();
    let port = primary.addr.port().to_string();
    let flags = ["--replicaof", "127.0.0.1", port.as_str()];
    let mut replica = binary::start(dir.path(), &flags);
    write(&mut p, 0, "a", 100);
    wait_acked(&mut p);
    assert_eq!(syncs(&mut p), (1, 0));

    // A clean restart first: it continues, and takes the position it was left.
    terminate(&mut replica);
    write(&mut p, 3, "b", 100);
    let mut replica = binary::start(dir.path(), &[]);
    wait_link_up(&mut connect(&replica.addr));
    assert_eq!(syncs(&mut p), (1, 1));
    write(&mut p, 3, "c", 100);
    wait_acked(&mut p);

    replica.child.kill().unwrap();
    replica.child.wait().unwrap();
    assert!(!dir.path().join(RESUME_FILE).exists());
    write(&mut p, 0, "d", 100);
    let replica = binary::start(dir.path(), &[]);
    let mut r = connect(&replica.addr);
    wait_link_up(&mut r);
    assert_eq!(syncs(&mut p), (2, 1), "after SIGKILL: a full sync");
    wait_acked(&mut p);
    let (got, want) = (dump(&mut r), dump(&mut p));
    assert_eq!(got.len(), 400);
    assert!(got == want, "the replica has every key");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn a_primary_stopped_cleanly_is_continued_by_its_replica() {
    let mut primary = start();
    let port = primary.addr.port();
    let mut p = primary.client();
    let replica = replica_of(&primary);
    let mut r = replica.client();
    wait_link_up(&mut r);
    write(&mut p, 0, "a", 50);
    // Expires while the primary is down: its DEL goes down the stream after the restart.
    let expire_at = now_ms() + 500;
    let _: () = redis::cmd("SET")
        .arg("short")
        .arg("v")
        .arg("PXAT")
        .arg(expire_at)
        .query(&mut p)
        .unwrap();
    wait_acked(&mut p);
    let before = info(&mut p, "replication");
    let replid = info_field(&before, "master_replid").to_owned();
    let offset = info_field(&before, "master_repl_offset").to_owned();
    drop(p);
    primary.stop();
    let dir = primary.dir.path().to_owned();
    assert!(dir.join(RESUME_FILE).exists());
    wait_for("the short key's time", DEADLINE, || {
        now_ms() > expire_at + 50
    });

    let again = restart(&dir, |c| c.port = port);
    let mut p = connect(again.local_addr());
    let now = info(&mut p, "replication");
    assert_eq!(info_field(&now, "master_replid"), replid, "the same stream");
    assert_eq!(info_field(&now, "master_repl_offset"), offset);
    wait_for("the replica's PSYNC", DEADLINE, || syncs(&mut p) != (0, 0));
    assert_eq!(syncs(&mut p), (0, 1), "the replica continued");
    wait_link_up(&mut r);
    wait_for("the expired key's DEL on the replica", DEADLINE, || {
        let n: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
        n == 50
    });
    write(&mut p, 3, "b", 50);
    wait_acked(&mut p);
    let (got, want) = (dump(&mut r), dump(&mut p));
    assert_eq!(got.len(), 100);
    assert!(got == want, "the replica has every key");
    again.shutdown().unwrap();
}
