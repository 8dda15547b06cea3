//! CLIENT PAUSE / UNPAUSE across connections on every worker: a WRITE pause holds writes and
//! lets reads through, an ALL pause holds everything until it runs out, UNPAUSE releases the
//! held connections at once, and a held pipeline keeps its order.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::{cmd, start, Raw};

/// Connections enough that, with two workers, both almost surely serve some.
const CLIENTS: usize = 6;

/// True when nothing arrives on `raw` for `quiet`: the request is being held.
fn held(raw: &mut Raw, quiet: Duration) -> bool {
    raw.stream.set_read_timeout(Some(quiet)).unwrap();
    let mut byte = [0u8; 1];
    let held = match std::io::Read::read(&mut raw.stream, &mut byte) {
        Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        Ok(_) => false,
    };
    raw.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    held
}

#[test]
fn a_write_pause_holds_writes_on_every_worker_until_unpause() {
    let srv = start();
    let mut admin = srv.raw();
    admin.expect(&cmd(&[b"CLIENT", b"PAUSE", b"60000", b"WRITE"]), b"+OK\r\n");
    let mut writers: Vec<Raw> = (0..CLIENTS).map(|_| srv.raw()).collect();
    for (i, w) in writers.iter_mut().enumerate() {
        // Reads still run.
        assert_eq!(w.request(&[b"GET", b"k"]).as_deref(), Some("$-1\r\n"));
        let key = format!("k{i}");
        let mut pipeline = cmd(&[b"SET", key.as_bytes(), b"v"]);
        pipeline.extend(cmd(&[b"GET", key.as_bytes()]));
        w.send(&pipeline);
    }
    for w in &mut writers {
        assert!(
            held(w, Duration::from_millis(200)),
            "a write ran during the pause"
        );
    }
    admin.expect(&cmd(&[b"CLIENT", b"UNPAUSE"]), b"+OK\r\n");
    for w in &mut writers {
        assert_eq!(w.read_n(5), b"+OK\r\n");
        assert_eq!(w.read_n(7), b"$1\r\nv\r\n", "the pipeline kept its order");
    }
}

#[test]
fn an_all_pause_holds_every_command_until_it_runs_out() {
    let srv = start();
    let mut admin = srv.raw();
    let mut others: Vec<Raw> = (0..CLIENTS).map(|_| srv.raw()).collect();
    let started = Instant::now();
    admin.expect(&cmd(&[b"CLIENT", b"PAUSE", b"400", b"ALL"]), b"+OK\r\n");
    for o in &mut others {
        o.send(&cmd(&[b"PING"]));
    }
    // Errors Redis answers before the pause applies are not held.
    admin.expect(
        &cmd(&[b"NOSUCH"]),
        b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
    );
    admin.expect(
        &cmd(&[b"GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    for o in &mut others {
        assert_eq!(o.read_n(7), b"+PONG\r\n");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(350),
        "answered after {waited:?}"
    );
    // The pause is over for everyone.
    assert_eq!(admin.request(&[b"PING"]).as_deref(), Some("+PONG\r\n"));
}
