//! A failing `fdatasync` (injected with `FLIN_FAILPOINT=fsync-eio:N`: the first N segment syncs
//! succeed, every later one fails with EIO) poisons the engine. A child process writes from
//! several threads with `Fsync::Always`, waiting for durability both blocking and through the
//! `durable()` future, and prints each write whose durability was confirmed. In the child:
//! every write whose sync failed gets `Error::Poisoned` naming the fdatasync, the file and EIO,
//! never `Ok`; a write is confirmed exactly when its sequence number is within the durable
//! watermark; later writes fail the same way; reads keep serving; `close` (or drop) returns
//! without hanging. The parent then reopens the directory without the failpoint and finds every
//! confirmed write.
//!
//! Guards against: a false durability confirmation after a failed fsync (the "fsyncgate"
//! retry), writers or `close` hanging on a poisoned engine, reads failing with writes, and
//! confirmed writes lost.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use flin_engine::{Engine, Error, Fsync, Options, WriteToken};

mod common;
use common::parse_ack;

const CHILD_ENV: &str = "FLIN_FSYNC_CHILD_DIR";
const END_ENV: &str = "FLIN_FSYNC_CHILD_END";
const THREADS: usize = 4;
/// Writes appended before each wait for durability.
const ROUND: usize = 3;
/// Segment fdatasyncs that succeed before the injected failure.
const SYNCS_BEFORE_FAILURE: u32 = 40;
/// Longest the child may take (it takes well under a second when nothing hangs).
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

fn options() -> Options {
    // Small segments, so a sync may cover a sealed segment and the active one.
    common::options(Fsync::Always, 64 * 1024)
}

fn key(t: usize, i: u64) -> Vec<u8> {
    format!("t{t}-k{i}").into_bytes()
}

fn value(t: usize, i: u64) -> Vec<u8> {
    let mut v = format!("t{t}-i{i}-").into_bytes();
    v.resize(50 + (i as usize * 37) % 400, b'a' + (i % 26) as u8);
    v
}

/// Checks that `e` is the poison of an injected fdatasync failure and says what to do.
fn assert_poisoned_by_fsync(e: &Error, context: &str) {
    let msg = e.to_string();
    assert!(e.is_poisoned(), "{context}: not poisoned: {msg}");
    for part in ["fdatasync failed on", ".seg", "os error 5", "restart"] {
        assert!(msg.contains(part), "{context}: {msg:?} lacks {part:?}");
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls every future until all are ready, parking the thread in between (woken by the
/// engine's sync thread).
fn block_on_all<F: Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    while out.iter().any(Option::is_none) {
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                if let Poll::Ready(r) = Pin::new(f).poll(&mut cx) {
                    *slot = Some(r);
                }
            }
        }
        if out.iter().any(Option::is_none) {
            std::thread::park();
        }
    }
    out.into_iter().map(Option::unwrap).collect()
}

/// What one writer thread saw.
#[derive(Default)]
struct Seen {
    confirmed: Vec<(u64, WriteToken)>,
    refused: Vec<(u64, WriteToken)>,
}

/// One writer: rounds of ROUND puts, then a wait for their durability (blocking on even
/// rounds, through the futures on odd ones), until the engine refuses.
fn writer(engine: &Engine, t: usize, out: &std::sync::Mutex<std::io::Stdout>) -> Seen {
    use std::io::Write;
    let mut seen = Seen::default();
    let mut i = 0u64;
    let mut round = 0u64;
    loop {
        round += 1;
        assert!(
            round < 2_000,
            "no fsync failed: is FLIN_FAILPOINT=fsync-eio:N still injected?"
        );
        let mut tokens = Vec::new();
        for _ in 0..ROUND {
            match engine.put(&key(t, i), &value(t, i), 0) {
                Ok(token) => tokens.push((i, token)),
                Err(e) => {
                    // Another writer's sync failed first.
                    assert_poisoned_by_fsync(&e, &format!("put t{t} i{i}"));
                    return seen;
                }
            }
            i += 1;
        }
        let results: Vec<_> = if round % 2 == 0 {
            tokens
                .iter()
                .map(|(_, token)| engine.wait_durable(*token))
                .collect()
        } else {
            block_on_all(
                tokens
                    .iter()
                    .map(|(_, token)| engine.durable(*token))
                    .collect(),
            )
        };
        for ((i, token), result) in tokens.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    assert!(
                        seen.refused.is_empty(),
                        "t{t} i{i} confirmed after an earlier write of this thread was refused"
                    );
                    let mut o = out.lock().unwrap();
                    // A marker: the test harness prints "test ... " without a newline first.
                    writeln!(o, "ACK {t} {i}").unwrap();
                    o.flush().unwrap();
                    seen.confirmed.push((i, token));
                }
                Err(e) => {
                    assert_poisoned_by_fsync(&e, &format!("durability of t{t} i{i}"));
                    seen.refused.push((i, token));
                }
            }
        }
        if !seen.refused.is_empty() {
            // Every later write is refused too.
            let e = engine.put(b"after", b"poison", 0).unwrap_err();
            assert_poisoned_by_fsync(&e, "put after the failure");
            let e = engine.delete(&key(t, 0)).unwrap_err();
            assert_poisoned_by_fsync(&e, "delete after the failure");
            return seen;
        }
    }
}

/// The child: writes until the injected fsync failure, checks the poisoned engine, then closes
/// or drops it and prints DONE.
#[test]
fn fsync_failure_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only runs when the parent starts it.
    };
    let end = std::env::var(END_ENV).unwrap();
    let engine = Arc::new(Engine::open(&dir, options()).unwrap());
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let engine = engine.clone();
            let out = out.clone();
            std::thread::spawn(move || writer(&engine, t, &out))
        })
        .collect();
    let seen: Vec<Seen> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let stats = engine.stats();
    let cause = stats.poisoned.clone().expect("the engine reports why");
    assert!(cause.contains("fdatasync failed on"), "{cause}");
    assert!(stats.write_errors >= 1, "{stats:?}");
    assert!(stats.durable_seq < stats.last_seq, "{stats:?}");
    assert!(
        seen.iter().any(|s| !s.refused.is_empty()),
        "no writer saw the failure"
    );
    for (t, s) in seen.iter().enumerate() {
        // Confirmed exactly when within the durable watermark, which no longer moves.
        for (i, token) in &s.confirmed {
            assert!(token.seq() <= stats.durable_seq, "t{t} i{i} {stats:?}");
            // A fresh wait on a confirmed write is still Ok.
            engine.wait_durable(*token).unwrap();
            // Reads keep working.
            assert_eq!(engine.get(&key(t, *i)), Some(value(t, *i)), "t{t} i{i}");
        }
        for (i, token) in &s.refused {
            assert!(token.seq() > stats.durable_seq, "t{t} i{i} {stats:?}");
            // Waiting again, blocking or not, gives the error again, never Ok.
            let e = engine.wait_durable(*token).unwrap_err();
            assert_poisoned_by_fsync(&e, "second wait");
            let e = block_on_all(vec![engine.durable(*token)])
                .pop()
                .unwrap()
                .unwrap_err();
            assert_poisoned_by_fsync(&e, "second future");
        }
    }
    assert_poisoned_by_fsync(&engine.sync().unwrap_err(), "sync");
    assert_eq!(engine.stats().durable_seq, stats.durable_seq);

    let engine = Arc::into_inner(engine).expect("writers are done");
    match end.as_str() {
        "close" => assert_poisoned_by_fsync(&engine.close().unwrap_err(), "close"),
        "drop" => drop(engine),
        other => panic!("{END_ENV}={other:?}"),
    }
    println!("DONE");
}

/// Runs the child with the failpoint, then reopens its directory without it.
fn run(end: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::child("fsync_failure_child")
        .env(CHILD_ENV, dir.path())
        .env(END_ENV, end)
        .env(
            "FLIN_FAILPOINT",
            format!("fsync-eio:{SYNCS_BEFORE_FAILURE}"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect();
        let _ = tx.send(lines);
    });
    // The pipe closes when the child exits (or hangs forever if close/drop hangs).
    let lines = match rx.recv_timeout(CHILD_TIMEOUT) {
        Ok(lines) => lines,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child ({end}) did not finish within {CHILD_TIMEOUT:?}: hung after the fsync failure");
        }
    };
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "child ({end}) failed: {status}; output {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("DONE")),
        "child ({end}) did not finish its checks: {lines:?}"
    );
    let acked: Vec<(usize, u64)> = lines.iter().filter_map(|l| parse_ack(l)).collect();
    assert!(
        acked.len() >= 10,
        "only {} writes confirmed before the failure",
        acked.len()
    );

    let engine = Engine::open(dir.path(), options()).unwrap();
    for (t, i) in &acked {
        assert_eq!(
            engine.get(&key(*t, *i)),
            Some(value(*t, *i)),
            "confirmed write t{t} i{i} lost or changed ({end})"
        );
    }
    // Without the failpoint the store takes writes again.
    let token = engine.put(b"after-restart", b"ok", 0).unwrap();
    engine.wait_durable(token).unwrap();
    engine.close().unwrap();
}

#[test]
fn failed_fsync_poisons_and_close_returns_the_error() {
    run("close");
}

#[test]
fn failed_fsync_poisons_and_drop_returns() {
    run("drop");
}

const ROLL_CHILD_ENV: &str = "FLIN_ROLL_DIR_SYNC_CHILD_DIR";

/// The child: the directory's fsync that must follow a segment roll fails
/// (`FLIN_FAILPOINT=roll-dir-sync-eio`). With `Fsync::Always`, every write is confirmed until
/// the log rolls to a new segment (renamed into place without a directory fsync on the
/// writer's path); the first write stored in it is never confirmed, since the new segment's
/// name could be lost in a crash: it fails with the poison naming the directory's fsync.
#[test]
fn roll_dir_sync_failure_child() {
    let Ok(dir) = std::env::var(ROLL_CHILD_ENV) else {
        return;
    };
    let engine = Engine::open(std::path::Path::new(&dir), options()).unwrap();
    let segments = engine.stats().segments;
    let mut confirmed = 0u64;
    for i in 0..10_000u64 {
        let token = engine.put(&key(0, i), &value(0, i), 0).unwrap();
        let rolled = engine.stats().segments > segments;
        match engine.wait_durable(token) {
            Ok(()) => {
                assert!(!rolled, "write {i} in the rolled-to segment confirmed");
                confirmed += 1;
            }
            Err(e) => {
                assert!(rolled, "write {i} refused before any roll: {e}");
                let msg = e.to_string();
                assert!(e.is_poisoned(), "{msg}");
                for part in ["fsync directory", "os error 5"] {
                    assert!(msg.contains(part), "{msg:?} lacks {part:?}");
                }
                assert!(confirmed > 0, "nothing confirmed before the roll");
                println!("CONFIRMED {confirmed}");
                return;
            }
        }
    }
    panic!("the log never rolled: is FLIN_FAILPOINT=roll-dir-sync-eio injected?");
}

#[test]
fn a_failed_directory_sync_after_a_roll_confirms_nothing_in_the_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::child("roll_dir_sync_failure_child")
        .env(ROLL_CHILD_ENV, dir.path())
        .env("FLIN_FAILPOINT", "roll-dir-sync-eio")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let confirmed: u64 = stdout
        .split("CONFIRMED ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the child printed no count:\n{stdout}"));
    // Reopened without the failpoint: every confirmed write is there.
    let engine = Engine::open(dir.path(), options()).unwrap();
    for i in 0..confirmed {
        assert_eq!(engine.get(&key(0, i)), Some(value(0, i)), "write {i}");
    }
}
