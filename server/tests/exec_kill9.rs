//! kill -9 of the real `flin-server` binary while a client runs transactions of several large
//! SETs (each EXEC spans segment boundaries): after every restart all the keys of the
//! transaction hold values of one same EXEC, never a mix; with `--fsync always` that EXEC is
//! at least the last one acknowledged.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::binary::{start, xorshift};
use common::{cmd, Raw};

/// SETs per transaction, and the bytes of each value: an EXEC writes about 12 KiB, and
/// segments are 16 KiB, so most transactions roll the log in their middle.
const KEYS: usize = 6;
const VALUE_BYTES: usize = 2000;

fn value(n: u64, j: usize) -> String {
    let head = format!("n{n}-k{j}-");
    format!("{head}{}", "v".repeat(VALUE_BYTES - head.len()))
}

/// The number of the transaction that wrote `v`.
fn txn_of(v: &str) -> u64 {
    v[1..v.find('-').unwrap()].parse().unwrap()
}

/// Runs transactions n = start, start + 1, ... until the connection dies; returns the last one
/// acknowledged.
fn client(addr: String, start: u64, acks: Arc<AtomicU64>) -> Option<u64> {
    let mut s = TcpStream::connect(&addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut expect = b"+OK\r\n".to_vec();
    expect.extend(b"+QUEUED\r\n".repeat(KEYS));
    expect.extend(format!("*{KEYS}\r\n").as_bytes());
    expect.extend(b"+OK\r\n".repeat(KEYS));
    let mut buf = vec![0u8; expect.len()];
    let mut last = None;
    for n in start.. {
        let req = transaction(n);
        if s.write_all(&req).is_err() || s.read_exact(&mut buf).is_err() {
            return last;
        }
        assert_eq!(buf, expect, "transaction {n}");
        last = Some(n);
        acks.fetch_add(1, Ordering::Relaxed);
    }
    last
}

/// MULTI, a SET of each key, EXEC: transaction `n`.
fn transaction(n: u64) -> Vec<u8> {
    let mut req = cmd(&[b"MULTI"]);
    for j in 0..KEYS {
        req.extend(cmd(&[
            b"SET",
            format!("t{j}").as_bytes(),
            value(n, j).as_bytes(),
        ]));
    }
    req.extend(cmd(&[b"EXEC"]));
    req
}

#[test]
fn kill9_in_the_middle_of_exec_recovers_whole_transactions() {
    let rounds: usize = std::env::var("FLIN_KILL9_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let mut next = 0u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..rounds {
        let fsync = if round % 2 == 0 { "always" } else { "everysec" };
        let flags = ["--fsync", fsync, "--segment-size", "16KiB"];
        let mut srv = start(dir.path(), &flags);
        let acks = Arc::new(AtomicU64::new(0));
        let handle = {
            let (addr, acks) = (srv.addr.clone(), acks.clone());
            std::thread::spawn(move || client(addr, next, acks))
        };
        let target = 1 + xorshift(&mut seed) % 40;
        srv.kill_after(&acks, target, round);
        let last = handle.join().unwrap();

        let mut srv2 = start(dir.path(), &flags);
        let mut s = Raw::connect(&srv2.addr);
        let got: Vec<Option<String>> = (0..KEYS).map(|j| s.get(&format!("t{j}"))).collect();
        let txns: Vec<Option<u64>> = got.iter().map(|v| v.as_deref().map(txn_of)).collect();
        assert!(
            txns.windows(2).all(|w| w[0] == w[1]),
            "round {round} (--fsync {fsync}): keys from different transactions {txns:?}"
        );
        if let Some(n) = txns[0] {
            for (j, v) in got.iter().enumerate() {
                assert_eq!(v.as_deref(), Some(value(n, j).as_str()), "round {round}");
            }
            // Nothing from a transaction never sent.
            assert!(
                n <= last.map_or(next, |l| l + 1),
                "round {round}: {n} never sent"
            );
        }
        if fsync == "always" {
            if let Some(l) = last {
                assert!(
                    txns[0] >= Some(l),
                    "round {round}: acknowledged {l}, found {txns:?}"
                );
            }
        }
        next = last.map_or(next, |l| l + 1) + 1;
        srv2.child.kill().unwrap();
        srv2.child.wait().unwrap();
    }
}
