//! A failing fsync under the real binary (`FLIN_FAILPOINT=fsync-eio:N`: the engine's first N
//! segment fdatasyncs succeed, every later one fails with EIO), with `--fsync always`: the SET
//! whose sync failed is not acknowledged (one `-MISCONF` error, then the connection closes);
//! later writes get `-MISCONF` naming the failure; GET, PING and INFO keep working and INFO
//! reports the failure; the process stays up; after a restart without the failpoint every
//! acknowledged SET is there.

mod common;

use common::binary::{start, start_with_env};
use common::{info_field, Raw};

const SYNCS_BEFORE_FAILURE: u32 = 30;

fn value(i: u32) -> String {
    format!("{i:05}-{}", "v".repeat(2000))
}

/// The parts a reply refusing writes after the injected failure must name.
fn assert_names_the_failure(reply: &str) {
    assert!(reply.starts_with("-MISCONF "), "{reply:?}");
    for part in [
        "writes are disabled",
        "fdatasync failed on",
        ".seg",
        "Input/output error",
        "restart the server",
    ] {
        assert!(reply.contains(part), "{reply:?} lacks {part:?}");
    }
    assert!(reply.ends_with("\r\n") && reply.matches('\n').count() == 1);
}

#[test]
fn failed_fsync_refuses_writes_clearly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--fsync", "always", "--segment-size", "64KiB"];
    let failpoint = format!("fsync-eio:{SYNCS_BEFORE_FAILURE}");
    let mut srv = start_with_env(dir.path(), &flags, &[("FLIN_FAILPOINT", &failpoint)]);

    // Unpipelined SETs until one is not acknowledged.
    let mut s = Raw::connect(&srv.addr);
    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..10_000u32 {
        let k = format!("k{i}");
        match s.request(&[b"SET", k.as_bytes(), value(i).as_bytes()]) {
            Some(reply) if reply == "+OK\r\n" => acked.push(i),
            other => {
                refusal = Some(other);
                break;
            }
        }
    }
    let refusal = refusal
        .expect("a SET must fail once fsync fails")
        .expect("the SET whose sync failed gets an error before the connection closes");
    assert_names_the_failure(&refusal);
    assert!(refusal.contains("may not be on disk"), "{refusal:?}");
    assert!(
        acked.len() >= 10,
        "only {} SETs acknowledged before the failure",
        acked.len()
    );
    // That connection is closed.
    let rest = s.read_to_close();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));

    // Writes on a new connection are refused, each with the cause.
    let mut c = Raw::connect(&srv.addr);
    for args in [
        &[&b"SET"[..], b"after", b"x"][..],
        &[b"INCR", b"counter"],
        &[b"DEL", b"k0"],
    ] {
        let reply = c.request(args).expect("refused, not disconnected");
        assert_names_the_failure(&reply);
    }
    // Reads, PING and INFO go on, on the same connection.
    for i in &acked {
        assert_eq!(
            c.get(&format!("k{i}")),
            Some(value(*i)),
            "GET k{i} after the failure"
        );
    }
    assert_eq!(c.request(&[b"PING"]).as_deref(), Some("+PONG\r\n"));
    let info = c.request(&[b"INFO", b"persistence"]).unwrap();
    assert!(info.contains("aof_last_write_status:err\r\n"), "{info}");
    let poisoned = info_field(&info, "engine_poisoned");
    assert!(
        poisoned.contains("fdatasync failed on") && poisoned.contains("Input/output error"),
        "{poisoned}"
    );
    let write_errors: u64 = info_field(&info, "engine_write_errors").parse().unwrap();
    assert!(write_errors >= 1, "{info}");
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "the server exited after the fsync failure"
    );
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();

    // A restart without the failpoint has every acknowledged SET and takes writes again.
    let mut srv = start(dir.path(), &flags);
    let mut s = Raw::connect(&srv.addr);
    for i in &acked {
        assert_eq!(
            s.get(&format!("k{i}")),
            Some(value(*i)),
            "acknowledged k{i} lost"
        );
    }
    assert_eq!(
        s.request(&[b"SET", b"after", b"restart"]).as_deref(),
        Some("+OK\r\n")
    );
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
}
