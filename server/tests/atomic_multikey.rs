//! Multi-key commands are atomic, as on Redis's single thread: MGET and EXISTS never see half
//! of an MSET, DEL or RENAME running on another connection (and worker thread), and of two
//! racing MSETNX on the same keys exactly one wins, whole.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::start;
use redis::Commands;

const KEYS: [&str; 8] = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"];

/// Runs `reader` on two connections until `writer` (on its own connection) returns; returns
/// how many reads each made.
fn race(
    srv: &common::TestServer,
    writer: impl FnOnce(&mut redis::Connection) + Send + 'static,
    reader: impl Fn(&mut redis::Connection) + Send + Sync + 'static,
) -> Vec<u64> {
    let done = Arc::new(AtomicBool::new(false));
    let reader = Arc::new(reader);
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (done, reader) = (done.clone(), reader.clone());
            let mut con = srv.client();
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(Ordering::Acquire) {
                    reader(&mut con);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut con = srv.client();
    writer(&mut con);
    done.store(true, Ordering::Release);
    readers.into_iter().map(|r| r.join().unwrap()).collect()
}

#[test]
fn mget_never_sees_half_an_mset_or_a_multi_key_del() {
    let srv = start();
    let reads = race(
        &srv,
        |con| {
            for i in 0..3000u32 {
                if i % 7 == 6 {
                    let n: i64 = con.del(&KEYS[..]).unwrap();
                    assert_eq!(n, 8);
                } else {
                    let pairs: Vec<(&str, u32)> = KEYS.iter().map(|k| (*k, i)).collect();
                    let () = con.mset(&pairs).unwrap();
                }
            }
        },
        |con| {
            let values: Vec<Option<u32>> = con.mget(&KEYS[..]).unwrap();
            assert!(
                values.windows(2).all(|w| w[0] == w[1]),
                "MGET saw half a write: {values:?}"
            );
            let n: usize = con.exists(&KEYS[..]).unwrap();
            assert!(n == 0 || n == 8, "EXISTS counted {n} of 8 keys");
        },
    );
    assert!(reads.iter().all(|&r| r > 0), "reads: {reads:?}");
}

#[test]
fn a_renamed_key_is_always_under_exactly_one_name() {
    let srv = start();
    let mut setup = srv.client();
    let () = setup.set_ex("a", "value", 1000).unwrap();
    let reads = race(
        &srv,
        |con| {
            for _ in 0..1500 {
                let () = con.rename("a", "b").unwrap();
                let () = con.rename("b", "a").unwrap();
            }
        },
        |con| {
            let values: Vec<Option<String>> = con.mget(&["a", "b"]).unwrap();
            let present = values.iter().flatten().count();
            assert_eq!(present, 1, "MGET a b during RENAME: {values:?}");
        },
    );
    assert!(reads.iter().all(|&r| r > 0), "reads: {reads:?}");
    // The TTL moved with the value each time.
    let ttl: i64 = setup.ttl("a").unwrap();
    assert!(ttl > 900 && ttl <= 1000, "ttl {ttl}");
}

#[test]
fn of_two_racing_msetnx_exactly_one_wins_whole() {
    let srv = start();
    let rounds = 400;
    let contenders: Vec<_> = ["A", "B"]
        .into_iter()
        .map(|who| {
            let mut con = srv.client();
            std::thread::spawn(move || {
                let mut wins = Vec::new();
                for r in 0..rounds {
                    // The two name the keys in opposite orders.
                    let (x, y) = (format!("x{r}"), format!("y{r}"));
                    let pairs = if who == "A" {
                        [(x, who), (y, who)]
                    } else {
                        [(y, who), (x, who)]
                    };
                    let won: bool = con.mset_nx(&pairs).unwrap();
                    wins.push(won);
                }
                wins
            })
        })
        .collect();
    let wins: Vec<Vec<bool>> = contenders.into_iter().map(|c| c.join().unwrap()).collect();
    let mut con = srv.client();
    for (r, (&a, &b)) in wins[0].iter().zip(&wins[1]).enumerate() {
        assert!(a != b, "round {r}: A won {a}, B won {b}");
        let winner = if a { "A" } else { "B" };
        let values: Vec<String> = con.mget(&[format!("x{r}"), format!("y{r}")]).unwrap();
        assert_eq!(values, [winner, winner], "round {r}");
    }
}

#[test]
fn multi_key_replies_match_redis() {
    let srv = start();
    let mut con = srv.client();
    let () = con.set("a", "1").unwrap();
    // Repeated keys: DEL counts a key once, EXISTS counts every mention.
    let n: i64 = redis::cmd("DEL")
        .arg("a")
        .arg("a")
        .arg("missing")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    let () = redis::cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("a")
        .arg("2")
        .query(&mut con)
        .unwrap();
    let v: String = con.get("a").unwrap();
    assert_eq!(v, "2", "the last value of a repeated MSET key wins");
    let n: i64 = redis::cmd("EXISTS")
        .arg("a")
        .arg("a")
        .arg("nope")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    let err = con.rename::<_, _, ()>("nope", "x").unwrap_err();
    assert_eq!(err.detail(), Some("no such key"));
    let won: bool = redis::cmd("RENAMENX")
        .arg("a")
        .arg("a")
        .query(&mut con)
        .unwrap();
    assert!(!won);
    let () = con.set("b", "other").unwrap();
    let won: bool = con.rename_nx("a", "b").unwrap();
    assert!(!won);
    let v: String = con.get("a").unwrap();
    assert_eq!(v, "2");
}
