//! kill -9 of the real `flin-server` binary under write load from several clients, 50 rounds
//! (`FLIN_KILL9_ROUNDS` for a longer soak): with `--fsync always` no acknowledged write is lost
//! and no value is wrong; with `--fsync everysec` no value is ever corrupted or resurrected.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::binary::{start, xorshift};
use common::{cmd, Raw};

const CLIENTS: usize = 4;
const KEYS_PER_CLIENT: u64 = 40;

fn key(c: usize, n: u64) -> String {
    format!("c{c}:k{}", n % KEYS_PER_CLIENT)
}

fn value(c: usize, n: u64) -> String {
    format!("c{c}-n{n}-{}", "v".repeat((n % 50) as usize))
}

/// One client: SETs its keys in order until the connection dies; returns the last op it saw
/// acknowledged (or `start - 1`).
fn client(addr: String, c: usize, start: u64, acks: Arc<AtomicU64>) -> Option<u64> {
    let mut s = TcpStream::connect(&addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut last = None;
    let mut buf = [0u8; 5];
    for n in start.. {
        let req = cmd(&[b"SET", key(c, n).as_bytes(), value(c, n).as_bytes()]);
        if s.write_all(&req).is_err() || s.read_exact(&mut buf).is_err() {
            return last;
        }
        assert_eq!(&buf, b"+OK\r\n", "client {c} op {n}");
        last = Some(n);
        acks.fetch_add(1, Ordering::Relaxed);
    }
    last
}

#[test]
fn kill9_loses_no_acknowledged_write() {
    let rounds: usize = std::env::var("FLIN_KILL9_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    // Per client: the next op number, and the model of its keys.
    let mut next = [0u64; CLIENTS];
    let mut model: HashMap<String, String> = HashMap::new();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let started = Instant::now();
    for round in 0..rounds {
        let fsync = if round % 2 == 0 { "always" } else { "everysec" };
        let mut srv = start(dir.path(), &["--fsync", fsync]);
        let acks = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (addr, acks, from) = (srv.addr.clone(), acks.clone(), next[c]);
                std::thread::spawn(move || client(addr, c, from, acks))
            })
            .collect();
        let target = 5 + xorshift(&mut seed) % 200;
        srv.kill_after(&acks, target, round);
        let lasts: Vec<Option<u64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();

        let srv2 = start(dir.path(), &["--fsync", fsync]);
        let mut s = Raw::connect(&srv2.addr);
        for (c, last) in lasts.iter().enumerate() {
            let from = next[c];
            let acked_to = last.map_or(from, |l| l + 1); // ops [from, acked_to) acknowledged
            for n in from..acked_to {
                model.insert(key(c, n), value(c, n));
            }
            // The op after the last acknowledged one may or may not have landed.
            let inflight = acked_to;
            for k in 0..KEYS_PER_CLIENT {
                let k = format!("c{c}:k{k}");
                let got = s.get(&k);
                let expected = model.get(&k).cloned();
                let inflight_value = (key(c, inflight) == k).then(|| value(c, inflight));
                if got.is_some() && got == inflight_value {
                    model.insert(k.clone(), got.clone().unwrap());
                    continue;
                }
                assert_eq!(
                    got,
                    expected,
                    "round {round} (--fsync {fsync}): client {c} key {k}, acknowledged up to op {}",
                    acked_to as i64 - 1
                );
            }
            next[c] = acked_to + 1;
        }
        let mut srv2 = srv2;
        srv2.child.kill().unwrap();
        srv2.child.wait().unwrap();
    }
    eprintln!(
        "kill -9: {rounds} rounds survived in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
