//! Guards against losing acknowledged writes across a clean restart on the same directory.

mod common;

use common::{config, start};
use flin_server::Server;
use redis::Commands;

#[test]
fn data_survives_a_restart() {
    let mut srv = start();
    {
        let mut con = srv.client();
        for i in 0..1000 {
            let _: () = con.set(format!("k{i}"), format!("v{i}")).unwrap();
        }
        let _: () = con.set_ex("with-ttl", "t", 1000).unwrap();
        let _: () = con.del("k7").unwrap();
        let _: () = con.set("k8", "overwritten").unwrap();
    }
    srv.stop();
    let handle = Server::start(config(srv.dir.path())).expect("restart");
    assert_eq!(handle.stats().engine.recovery.keys, 1000);
    srv.addr = handle.local_addr();
    srv.handle = Some(handle);
    let mut con = srv.client();
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 1000);
    let v: String = con.get("k999").unwrap();
    assert_eq!(v, "v999");
    let v: Option<String> = con.get("k7").unwrap();
    assert_eq!(v, None);
    let v: String = con.get("k8").unwrap();
    assert_eq!(v, "overwritten");
    let ttl: i64 = con.ttl("with-ttl").unwrap();
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");
}

/// A damaged sealed segment stops the server with a message that names the file, the offset
/// and `--repair`; with `--repair yes` it starts, serving every key outside the damage.
#[test]
fn damage_refuses_to_start_unless_repair_is_asked_for() {
    let mut srv = common::start_with(|c| c.segment_size = 64 * 1024);
    {
        let mut con = srv.client();
        for i in 0..2000 {
            let _: () = con
                .set(format!("k{i}"), format!("value-{i}-").repeat(10))
                .unwrap();
        }
    }
    srv.stop();
    // Flip a byte in the middle of the oldest segment, inside a record.
    let mut segs: Vec<_> = std::fs::read_dir(srv.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let victim = &segs[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(victim, &bytes).unwrap();
    // Without its hint the segment is scanned at open, which finds the damage at once (with
    // the hint, reads and the background check find it: see docs/ROBUSTNESS.md).
    let _ = std::fs::remove_file(victim.with_extension("hint"));

    let mut c = config(srv.dir.path());
    c.segment_size = 64 * 1024;
    let err = Server::start(c.clone())
        .err()
        .expect("damage refuses to start");
    let msg = err.to_string();
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    assert!(msg.contains(&name), "names the file: {msg}");
    assert!(msg.contains("--repair yes"), "says what to do: {msg}");

    c.repair = true;
    let handle = Server::start(c).expect("starts with repair");
    srv.addr = handle.local_addr();
    srv.handle = Some(handle);
    let quarantined = std::fs::read_dir(srv.dir.path().join("quarantine"))
        .unwrap()
        .count();
    assert!(quarantined >= 1);
    let mut con = srv.client();
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert!(
        (1900..2000).contains(&n),
        "lost only the damaged records: {n}"
    );
    let v: String = con.get("k1999").unwrap();
    assert_eq!(v, "value-1999-".repeat(10));
}
