//! CONFIG SET appendfsync changes the engine's fsync policy while the server runs: under
//! `always` every acknowledged write has had its fsync, under `no` writes do not wait for one.

mod common;

use common::{info_field, start_with};
use flin_server::FsyncPolicy;

fn fsyncs(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").query(con).unwrap();
    info_field(&info, "engine_fsyncs").parse().unwrap()
}

fn policy(con: &mut redis::Connection) -> String {
    let info: String = redis::cmd("INFO").query(con).unwrap();
    info_field(&info, "fsync_policy").to_owned()
}

#[test]
fn appendfsync_switches_the_policy_at_run_time() {
    let srv = start_with(|c| c.fsync = FsyncPolicy::Never);
    let mut con = srv.client();
    assert_eq!(policy(&mut con), "no");

    // Under `no`, a hundred writes cause no fsync (sealing a segment would, and these are
    // far too small to fill one).
    let before = fsyncs(&mut con);
    for i in 0..100 {
        let _: () = redis::cmd("SET").arg("k").arg(i).query(&mut con).unwrap();
    }
    assert_eq!(fsyncs(&mut con), before, "no fsync under appendfsync no");

    // Under `always`, each acknowledged write has been synced: one client writing one key at
    // a time needs an fsync per write.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("always")
        .query(&mut con)
        .unwrap();
    assert_eq!(policy(&mut con), "always");
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["appendfsync", "always"]);
    let before = fsyncs(&mut con);
    for i in 0..20 {
        let _: () = redis::cmd("SET").arg("k").arg(i).query(&mut con).unwrap();
    }
    assert!(
        fsyncs(&mut con) >= before + 20,
        "every write waited for its own fsync"
    );

    // And back: writes stop waiting.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("no")
        .query(&mut con)
        .unwrap();
    let before = fsyncs(&mut con);
    for i in 0..100 {
        let _: () = redis::cmd("SET").arg("k").arg(i).query(&mut con).unwrap();
    }
    // The switch itself may sync once (the sync thread wakes to read the new policy).
    assert!(fsyncs(&mut con) <= before + 1);
    assert_eq!(policy(&mut con), "no");
}
