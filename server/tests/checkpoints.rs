//! SAVE / BGSAVE / LASTSAVE: online backups as engine checkpoints. A checkpoint, copied
//! elsewhere, starts a server holding exactly the data of its moment; LASTSAVE and INFO follow
//! the saves; a save that cannot write fails with an error that names the directory, and the
//! server keeps serving.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{config, start, start_with, wait_for};
use flin_server::Server;
use redis::Commands;

/// A field of INFO persistence, read now.
fn info_field(con: &mut redis::Connection, name: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(con).unwrap();
    common::info_field(&info, name).to_string()
}

/// BGSAVE, then waits until INFO says it is over.
fn bgsave_and_wait(con: &mut redis::Connection) {
    let reply: String = redis::cmd("BGSAVE").query(con).unwrap();
    assert_eq!(reply, "Background saving started");
    wait_for(
        "the background save to end",
        Duration::from_secs(30),
        || info_field(con, "rdb_bgsave_in_progress") == "0",
    );
}

/// The checkpoint directories under `root`, oldest first.
fn checkpoints(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn bgsave_and_save_make_checkpoints_that_restore_their_moment() {
    let mut srv = start_with(|c| c.segment_size = 64 * 1024);
    let root = srv.dir.path().join("checkpoints");
    let mut con = srv.client();
    let started: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    assert_eq!(info_field(&mut con, "rdb_changes_since_last_save"), "0");
    for i in 0..2000 {
        let _: () = con.set(format!("k{i}"), format!("first-{i}")).unwrap();
    }
    let _: () = con.del("k5").unwrap();

    bgsave_and_wait(&mut con);
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "ok");
    assert_eq!(info_field(&mut con, "rdb_changes_since_last_save"), "0");
    let after_bgsave: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    assert!(after_bgsave >= started);
    assert_eq!(
        info_field(&mut con, "rdb_last_save_time"),
        after_bgsave.to_string()
    );
    assert_eq!(
        info_field(&mut con, "checkpoint_dir"),
        root.display().to_string()
    );

    // Later writes are not in it; a SAVE takes a second one that has them.
    for i in 0..1000 {
        let _: () = con.set(format!("k{i}"), format!("second-{i}")).unwrap();
    }
    let _: () = con.set("late", "yes").unwrap();
    assert_eq!(info_field(&mut con, "rdb_changes_since_last_save"), "1001");
    let ok: String = redis::cmd("SAVE").query(&mut con).unwrap();
    assert_eq!(ok, "OK");
    let cps = checkpoints(&root);
    assert_eq!(cps.len(), 2, "{cps:?}");
    drop(con);
    srv.stop();
    // The data directory, with the checkpoints inside it, opens as before.
    let handle = Server::start(config(srv.dir.path())).expect("restart");
    assert_eq!(handle.stats().engine.keys, 2001);
    handle.shutdown().unwrap();

    for (cp, second) in cps.iter().zip([false, true]) {
        let restored = tempfile::tempdir().unwrap();
        copy_dir(cp, restored.path());
        let handle = Server::start(config(restored.path())).expect("start on a checkpoint");
        let client = redis::Client::open(format!("redis://{}/", handle.local_addr())).unwrap();
        let mut con = client.get_connection().unwrap();
        let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(n, if second { 2001 } else { 1999 }, "{}", cp.display());
        let v: Option<String> = con.get("k5").unwrap();
        assert_eq!(v.as_deref(), second.then_some("second-5"));
        let v: String = con.get("k999").unwrap();
        let want = if second { "second-999" } else { "first-999" };
        assert_eq!(v, want);
        let v: String = con.get("k1999").unwrap();
        assert_eq!(v, "first-1999");
        let v: Option<String> = con.get("late").unwrap();
        assert_eq!(v.as_deref(), second.then_some("yes"));
        drop(con);
        handle.shutdown().unwrap();
    }
}

#[test]
fn a_save_that_cannot_write_fails_clearly_and_serving_goes_on() {
    // The checkpoint directory would be under a regular file: it cannot be created.
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let root = blocker.path().join("checkpoints");
    let srv = start_with(|c| c.checkpoint_dir = Some(root.clone()));
    let mut con = srv.client();
    let _: () = con.set("k", "v").unwrap();
    let before: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    let err = redis::cmd("SAVE").query::<String>(&mut con).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("checkpoint into") && msg.contains(&root.display().to_string()),
        "{msg}"
    );
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "err");
    let after: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    assert_eq!(after, before, "LASTSAVE moved for a failed save");

    // A failed BGSAVE says so in INFO too.
    bgsave_and_wait(&mut con);
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "err");
    let v: String = con.get("k").unwrap();
    assert_eq!(v, "v");
    let _: () = con.set("k2", "v2").unwrap();
}

#[test]
fn save_commands_check_their_arguments() {
    let srv = start();
    let mut raw = srv.raw();
    raw.expect(b"BGSAVE now\r\n", b"-ERR syntax error\r\n");
    raw.expect(
        b"SAVE now\r\n",
        b"-ERR wrong number of arguments for 'save' command\r\n",
    );
    raw.expect(
        b"LASTSAVE x\r\n",
        b"-ERR wrong number of arguments for 'lastsave' command\r\n",
    );
    raw.expect(b"PING\r\n", b"+PONG\r\n");
}
