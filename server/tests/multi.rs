//! MULTI/EXEC/WATCH as Redis 7.0 runs them: the exact replies (queueing, EXECABORT, errors
//! inside EXEC, nested MULTI, WATCH inside MULTI), WATCH broken by writes from any connection,
//! by expiry and by FLUSHALL, EXEC atomic for clients on the other worker (no reader sees half
//! of it, no writer lands in its middle), the `redis` crate's atomic pipelines and optimistic
//! transactions, CLIENT REPLY and RESET.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{cmd, start, wait_for};
use redis::Commands;

fn req(parts: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    cmd(&args)
}

#[test]
fn replies_are_redis_bytes() {
    let srv = start();
    let mut c = srv.raw();
    c.expect(&req(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");
    c.expect(&req(&["DISCARD"]), b"-ERR DISCARD without MULTI\r\n");
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["MULTI"]), b"-ERR MULTI calls can not be nested\r\n");
    c.expect(
        &req(&["WATCH", "k"]),
        b"-ERR WATCH inside MULTI is not allowed\r\n",
    );
    c.expect(&req(&["SET", "k", "x"]), b"+QUEUED\r\n");
    c.expect(&req(&["INCR", "k"]), b"+QUEUED\r\n");
    c.expect(&req(&["GET", "k"]), b"+QUEUED\r\n");
    // Neither the nested MULTI nor WATCH marked the transaction; INCR fails alone.
    c.expect(
        &req(&["EXEC"]),
        b"*3\r\n+OK\r\n-ERR value is not an integer or out of range\r\n$1\r\nx\r\n",
    );
    c.expect(&req(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");

    // Refused while queueing: EXEC discards everything.
    for bad in [&["GET"][..], &["NOSUCH", "a"], &["SAVE"], &["DISCARD", "x"]] {
        c.expect(&req(&["MULTI"]), b"+OK\r\n");
        c.expect(&req(&["SET", "k", "y"]), b"+QUEUED\r\n");
        c.send(&req(bad));
        let line = c.read_line().expect("a reply");
        assert!(line.starts_with(b"-ERR "), "{bad:?}: {line:?}");
        c.expect(
            &req(&["EXEC"]),
            b"-EXECABORT Transaction discarded because of previous errors.\r\n",
        );
    }
    c.expect(&req(&["GET", "k"]), b"$1\r\nx\r\n");
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(
        &req(&["SAVE"]),
        b"-ERR Command not allowed inside a transaction\r\n",
    );
    c.expect(&req(&["DISCARD"]), b"+OK\r\n");
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(
        &req(&["EXEC", "x"]),
        b"-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n",
    );
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["MONITOR"]), b"+QUEUED\r\n");
    c.expect(
        &req(&["EXEC"]),
        b"*1\r\n-ERR MONITOR isn't allowed for DENY BLOCKING client\r\n",
    );
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["EXEC"]), b"*0\r\n");
    c.expect(
        &req(&["WATCH"]),
        b"-ERR wrong number of arguments for 'watch' command\r\n",
    );
}

#[test]
fn client_list_shows_a_transaction() {
    let srv = start();
    let mut c = srv.raw();
    let mut other = srv.client();
    c.expect(&req(&["CLIENT", "SETNAME", "tx"]), b"+OK\r\n");
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["SET", "a", "1"]), b"+QUEUED\r\n");
    c.expect(&req(&["SET", "b", "1"]), b"+QUEUED\r\n");
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut other).unwrap();
    let line = list.lines().find(|l| l.contains("name=tx")).unwrap();
    assert!(
        line.contains(" flags=x ") && line.contains(" multi=2 "),
        "{line}"
    );
    c.expect(&req(&["DISCARD"]), b"+OK\r\n");
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut other).unwrap();
    let line = list.lines().find(|l| l.contains("name=tx")).unwrap();
    assert!(
        line.contains(" flags=N ") && line.contains(" multi=-1 "),
        "{line}"
    );
}

/// EXEC of `WATCH key; MULTI; GET key; EXEC` after `between` ran: the null array or not.
fn watch_broken(srv: &common::TestServer, key: &str, between: impl FnOnce()) -> bool {
    let mut c = srv.raw();
    c.expect(&req(&["WATCH", key]), b"+OK\r\n");
    between();
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["PING"]), b"+QUEUED\r\n");
    c.send(&req(&["EXEC"]));
    match c.read_line().unwrap().as_slice() {
        b"*-1\r\n" => true,
        b"*1\r\n" => {
            assert_eq!(c.read_line().unwrap(), b"+PONG\r\n");
            false
        }
        other => panic!("EXEC: {:?}", String::from_utf8_lossy(other)),
    }
}

#[test]
fn watch_aborts_exec_only_when_a_watched_key_changed() {
    let srv = start();
    let mut o = srv.client();
    let () = o.set("w", "1").unwrap();
    assert!(!watch_broken(&srv, "w", || ()));
    assert!(!watch_broken(&srv, "w", || {
        let () = srv.client().set("unrelated", "1").unwrap();
        let _: Option<String> = srv.client().get("w").unwrap();
    }));
    assert!(watch_broken(&srv, "w", || {
        let () = srv.client().set("w", "1").unwrap();
    }));
    assert!(watch_broken(&srv, "w", || {
        let _: i64 = srv.client().del("w").unwrap();
    }));
    // Absent at WATCH, written and deleted again: still a change, as in Redis.
    assert!(watch_broken(&srv, "w", || {
        let () = srv.client().set("w", "2").unwrap();
        let _: i64 = srv.client().del("w").unwrap();
    }));
    // A write that changes nothing (SET NX of an existing key, DEL of a missing one) is not.
    let () = o.set("w", "1").unwrap();
    assert!(!watch_broken(&srv, "w", || {
        let r: Option<String> = redis::cmd("SET")
            .arg("w")
            .arg("2")
            .arg("NX")
            .query(&mut srv.client())
            .unwrap();
        assert_eq!(r, None);
        let _: i64 = srv.client().del("missing").unwrap();
    }));
    assert!(watch_broken(&srv, "w", || {
        let () = redis::cmd("FLUSHALL").query(&mut srv.client()).unwrap();
    }));
    let () = o.set("w", "1").unwrap();
    assert!(watch_broken(&srv, "w", || {
        let _: bool = srv.client().pexpire("w", 20).unwrap();
        wait_for("w to expire", Duration::from_secs(10), || {
            !srv.client().exists::<_, bool>("w").unwrap()
        });
    }));
}

#[test]
fn a_client_breaks_its_own_watch_and_unwatch_forgets() {
    let srv = start();
    let mut c = srv.raw();
    c.expect(&req(&["WATCH", "k"]), b"+OK\r\n");
    c.expect(&req(&["SET", "k", "1"]), b"+OK\r\n");
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["EXEC"]), b"*-1\r\n");
    // EXEC forgot the watch: the next transaction runs.
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["EXEC"]), b"*0\r\n");
    c.expect(&req(&["WATCH", "k"]), b"+OK\r\n");
    c.expect(&req(&["UNWATCH"]), b"+OK\r\n");
    let () = srv.client().set("k", "2").unwrap();
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["EXEC"]), b"*0\r\n");
    c.expect(&req(&["WATCH", "k"]), b"+OK\r\n");
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["DISCARD"]), b"+OK\r\n");
    let () = srv.client().set("k", "3").unwrap();
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["EXEC"]), b"*0\r\n");
}

#[test]
fn atomic_pipelines_of_the_redis_crate() {
    let srv = start();
    let mut con = srv.client();
    let (a, b): (i64, String) = redis::pipe()
        .atomic()
        .incr("n", 5)
        .set("s", "v")
        .ignore()
        .get("s")
        .query(&mut con)
        .unwrap();
    assert_eq!((a, b.as_str()), (5, "v"));
}

/// Optimistic increments (`redis::transaction`: WATCH, GET, MULTI, SET, EXEC, retried on a
/// null EXEC) from connections on both workers: none is lost.
#[test]
fn watched_increments_from_both_workers_lose_nothing() {
    let srv = start();
    const THREADS: usize = 4;
    const EACH: i64 = 150;
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let mut con = srv.client();
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    let _: () = redis::transaction(&mut con, &["counter"], |con, pipe| {
                        let v: Option<i64> = con.get("counter")?;
                        pipe.set("counter", v.unwrap_or(0) + 1).ignore().query(con)
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n: i64 = srv.client().get("counter").unwrap();
    assert_eq!(n, THREADS as i64 * EACH);
}

/// EXEC of `INCR a; INCR b` on two connections, a writer setting both keys with MSET, and
/// readers taking MGET a b, all on connections spread over both workers: the readers always
/// see a == b, and each EXEC's two results are equal (no MSET landed between them).
#[test]
fn exec_is_atomic_for_every_other_client() {
    let srv = start();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let done = done.clone();
            let mut con = srv.client();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) {
                    let (a, b): (Option<i64>, Option<i64>) = con.mget(&["a", "b"]).unwrap();
                    assert_eq!(a, b, "a reader saw half a transaction");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let writer = {
        let done = done.clone();
        let mut con = srv.client();
        std::thread::spawn(move || {
            let mut v = 1_000_000i64;
            while !done.load(Ordering::Acquire) {
                let () = con.mset(&[("a", v), ("b", v)]).unwrap();
                v += 1_000_000;
            }
        })
    };
    let execs: Vec<_> = (0..2)
        .map(|_| {
            let mut con = srv.client();
            std::thread::spawn(move || {
                for _ in 0..1500 {
                    let (a, b): (i64, i64) = redis::pipe()
                        .atomic()
                        .incr("a", 1)
                        .incr("b", 1)
                        .query(&mut con)
                        .unwrap();
                    assert_eq!(a, b, "a write landed inside a transaction");
                }
            })
        })
        .collect();
    // Transactions pipelined ten at a time: the connection keeps the gate across them.
    let mut raw = srv.raw();
    let mut batch = Vec::new();
    for _ in 0..10 {
        for part in [&["MULTI"][..], &["INCR", "a"], &["INCR", "b"], &["EXEC"]] {
            batch.extend(req(part));
        }
    }
    for _ in 0..150 {
        raw.send(&batch);
        for _ in 0..10 {
            for expected in ["+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "*2\r\n"] {
                assert_eq!(
                    String::from_utf8(raw.read_line().unwrap()).unwrap(),
                    expected
                );
            }
            let (a, b) = (raw.read_line().unwrap(), raw.read_line().unwrap());
            assert_eq!(a, b, "a write landed inside a pipelined transaction");
        }
    }
    for e in execs {
        e.join().unwrap();
    }
    done.store(true, Ordering::Release);
    writer.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

#[test]
fn client_reply_and_reset() {
    let srv = start();
    let mut c = srv.raw();
    c.send(&req(&["CLIENT", "REPLY", "OFF"]));
    c.send(&req(&["SET", "k", "1"]));
    c.send(&req(&["NOSUCH"]));
    c.send(&req(&["CLIENT", "REPLY", "SKIP"]));
    c.expect(&req(&["CLIENT", "REPLY", "ON"]), b"+OK\r\n");
    c.send(&req(&["CLIENT", "REPLY", "SKIP"]));
    c.send(&req(&["GET", "k"]));
    c.expect(&req(&["GET", "k"]), b"$1\r\n1\r\n");
    c.expect(
        &req(&["CLIENT", "REPLY", "MAYBE"]),
        b"-ERR syntax error\r\n",
    );
    c.expect(
        &req(&["CLIENT", "REPLY"]),
        b"-ERR wrong number of arguments for 'client|reply' command\r\n",
    );

    c.expect(&req(&["CLIENT", "SETNAME", "me"]), b"+OK\r\n");
    c.expect(&req(&["WATCH", "k"]), b"+OK\r\n");
    c.send(&req(&["CLIENT", "REPLY", "OFF"]));
    c.send(&req(&["MULTI"]));
    c.send(&req(&["SET", "k", "2"]));
    c.expect(&req(&["RESET"]), b"+RESET\r\n");
    c.expect(&req(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");
    c.expect(&req(&["CLIENT", "GETNAME"]), b"$-1\r\n");
    c.expect(&req(&["GET", "k"]), b"$1\r\n1\r\n");
    // The watch is gone: a write elsewhere does not abort the next transaction.
    let () = srv.client().set("k", "3").unwrap();
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["EXEC"]), b"*0\r\n");
    c.expect(
        &req(&["RESET", "x"]),
        b"-ERR wrong number of arguments for 'reset' command\r\n",
    );
}

#[test]
fn reset_leaves_monitor_and_authentication() {
    let srv = common::start_with(|c| c.requirepass = Some("pw".into()));
    let mut c = srv.raw();
    c.expect(&req(&["AUTH", "pw"]), b"+OK\r\n");
    c.expect(&req(&["MONITOR"]), b"+OK\r\n");
    c.expect(&req(&["RESET"]), b"+RESET\r\n");
    c.expect(&req(&["GET", "k"]), b"-NOAUTH Authentication required.\r\n");
    c.expect(
        &req(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n",
    );
    c.expect(&req(&["AUTH", "pw"]), b"+OK\r\n");
    // No monitor line arrives for another client's command any more.
    let mut other = srv.raw();
    other.expect(&req(&["AUTH", "pw"]), b"+OK\r\n");
    other.expect(&req(&["SET", "seen", "1"]), b"+OK\r\n");
    c.expect(&req(&["PING"]), b"+PONG\r\n");
}

/// CLIENT PAUSE WRITE holds an EXEC whose queue writes, and lets a read-only one run, as
/// Redis decides by the queued commands' flags.
#[test]
fn client_pause_write_holds_an_exec_that_writes() {
    let srv = start();
    let mut c = srv.raw();
    let mut admin = srv.raw();
    c.expect(&req(&["MULTI"]), b"+OK\r\n");
    c.expect(&req(&["SET", "p", "1"]), b"+QUEUED\r\n");
    admin.expect(&req(&["CLIENT", "PAUSE", "100000", "WRITE"]), b"+OK\r\n");
    c.send(&req(&["EXEC"]));
    // A read-only transaction on a third connection runs meanwhile.
    let mut r = srv.raw();
    r.expect(&req(&["MULTI"]), b"+OK\r\n");
    r.expect(&req(&["GET", "p"]), b"+QUEUED\r\n");
    r.expect(&req(&["EXEC"]), b"*1\r\n$-1\r\n");
    admin.expect(&req(&["CLIENT", "UNPAUSE"]), b"+OK\r\n");
    assert_eq!(c.read_line().unwrap(), b"*1\r\n");
    assert_eq!(c.read_line().unwrap(), b"+OK\r\n");
}

/// EXEC is `skip_slowlog`: the slow log has MULTI and the queued commands, not EXEC.
#[test]
fn the_slow_log_has_the_commands_not_exec() {
    let srv = start();
    let mut con = srv.client();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .query(&mut con)
        .unwrap();
    let () = redis::cmd("SLOWLOG").arg("RESET").query(&mut con).unwrap();
    let () = redis::pipe()
        .atomic()
        .set("a", "1")
        .ignore()
        .query(&mut con)
        .unwrap();
    let log = redis::cmd("SLOWLOG")
        .arg("GET")
        .query::<redis::Value>(&mut con);
    let names = format!("{:?}", log.unwrap());
    assert!(names.contains("MULTI"), "{names}");
    assert!(names.contains("SET"), "{names}");
    assert!(!names.contains("EXEC"), "{names}");
}
