//! A child process writing with `Fsync::Always` from several threads is killed with SIGKILL at
//! a random moment; the parent reopens the directory and checks that every acknowledged write
//! is there with its acknowledged value. Guards against losing or corrupting acknowledged
//! writes in a crash, and against recovery failing on what a crash leaves behind.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use flin_engine::{Engine, Fsync, Options};
use rand::Rng;

mod common;
use common::parse_ack;

const CHILD_ENV: &str = "FLIN_CRASH_CHILD_DIR";
const THREADS: usize = 4;
const KEYS_PER_THREAD: u64 = 300;
const ROUNDS: usize = 20;

fn options() -> Options {
    Options {
        fsync: Fsync::Always,
        // Small segments so crashes also land in rolls and compactions.
        segment_size_bytes: 64 * 1024,
        compaction_interval: std::time::Duration::from_millis(20),
        ..Options::default()
    }
}

fn key(t: usize, k: u64) -> Vec<u8> {
    format!("t{t}-k{k}").into_bytes()
}

/// Op `i` of thread `t`: which key, and the value (None = delete).
fn op(t: usize, i: u64) -> (Vec<u8>, Option<Vec<u8>>) {
    let k = (i * 7919) % KEYS_PER_THREAD;
    if i % 5 == 4 {
        (key(t, k), None)
    } else {
        let len = 10 + (i * 31 % 400) as usize;
        let mut v = format!("t{t}-i{i}-").into_bytes();
        v.resize(len, b'a' + (i % 26) as u8);
        (key(t, k), Some(v))
    }
}

/// Applies thread `t`'s op `i` and waits until it is durable.
fn apply(engine: &Engine, t: usize, i: u64) {
    let (k, v) = op(t, i);
    let token = match v {
        Some(v) => Some(engine.put(&k, &v, 0).unwrap()),
        None => engine.delete(&k).unwrap(),
    };
    if let Some(token) = token {
        engine.wait_durable(token).unwrap();
    }
}

/// The child: writes forever, printing "t i" after op i of thread t is durable.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only runs when the parent starts it.
    };
    let start: u64 = std::env::var("FLIN_CRASH_START").unwrap().parse().unwrap();
    let engine = std::sync::Arc::new(Engine::open(&dir, options()).unwrap());
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let engine = engine.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                for i in start.. {
                    apply(&engine, t, i);
                    let mut o = out.lock().unwrap();
                    // A marker, because the test harness prints "test crash_child ... " without a
                    // newline just before the first line.
                    writeln!(o, "ACK {t} {i}").unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::thread_rng();
    // Model: per thread, the ops acknowledged so far (all ops are applied in order per thread).
    let mut acked: Vec<Option<u64>> = vec![None; THREADS];
    let mut next_start = 0u64;
    for round in 0..ROUNDS {
        let mut child = common::child("crash_child")
            .env(CHILD_ENV, dir.path())
            .env("FLIN_CRASH_START", next_start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let kill_after = rng.gen_range(1..1500);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while let Some(Ok(line)) = lines.next() {
            let Some((t, i)) = parse_ack(&line) else {
                continue; // test harness chatter
            };
            acked[t] = Some(i);
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Lines acknowledged after our last read were acknowledged too, but we do not count on
        // them: drain what the pipe still holds.
        for line in lines.map_while(Result::ok) {
            if let Some((t, i)) = parse_ack(&line) {
                acked[t] = Some(i);
            }
        }
        let engine = Engine::open(dir.path(), options())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let max_acked = acked.iter().flatten().max().copied();
        for (t, last) in acked.iter().enumerate() {
            let Some(last) = *last else { continue };
            // Expected state: every op of this thread up to `last` applied; the next op may or
            // may not have landed (it was in flight), nothing later was started... except by the
            // child in earlier rounds, which all started at `next_start`.
            let mut expected: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
            for i in 0..=last {
                let (k, v) = op(t, i);
                expected.insert(k, v);
            }
            let (inflight_key, inflight_val) = op(t, last + 1);
            for (k, v) in expected {
                let got = engine.get(&k);
                if k == inflight_key && got == inflight_val {
                    continue;
                }
                assert_eq!(
                    got,
                    v,
                    "round {round} (child started at op {next_start}, acks {acked:?}): thread {t} \
                     key {} after ack of op {last}",
                    String::from_utf8_lossy(&k)
                );
            }
        }
        // Threads that acknowledged nothing this round may have written op `next_start`..:
        // restart every thread after the highest op any thread reached, re-syncing the model by
        // replaying the ops the next child will overwrite from scratch.
        let restart = max_acked.map_or(next_start, |m| m + 2);
        // Bring every thread's key state to "ops up to restart-1 applied" so the model holds.
        for (t, acked_t) in acked.iter_mut().enumerate() {
            let from = acked_t.map_or(0, |a| a + 1);
            for i in from..restart {
                apply(&engine, t, i);
            }
            *acked_t = restart.checked_sub(1);
        }
        engine.close().unwrap();
        next_start = restart;
    }
    assert!(
        acked.iter().all(|a| a.is_some()),
        "every thread acknowledged writes"
    );
}
