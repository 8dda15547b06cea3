//! A tiny in-test RESP server on 127.0.0.1:0: SET stores into a HashMap and answers `+OK`,
//! GET answers from it. A [`Fault`] makes it answer wrongly on purpose.

// Each test file uses its own part of this helper.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// The first GET of a stored key gets the value with its first byte changed.
    CorruptFirstGetHit,
    /// The first SET gets `-ERR` instead of `+OK` (and stores nothing).
    ErrorOnFirstSet,
}

struct State {
    map: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    fault: Fault,
    fault_used: AtomicBool,
    sets: AtomicU64,
    gets: AtomicU64,
    stop: AtomicBool,
}

pub struct FakeServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            map: Mutex::new(HashMap::new()),
            fault,
            fault_used: AtomicBool::new(false),
            sets: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_state = Arc::clone(&state);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&accept_state);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Self {
            addr,
            state,
            accept: Some(accept),
        }
    }

    pub fn sets(&self) -> u64 {
        self.state.sets.load(Ordering::SeqCst)
    }

    pub fn gets(&self) -> u64 {
        self.state.gets.load(Ordering::SeqCst)
    }

    pub fn keys(&self) -> usize {
        self.state.map.lock().unwrap().len()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Answers commands until the client closes.
fn serve(mut stream: TcpStream, state: &State) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        while let Some((args, len)) = parse_command(&buf[used..]) {
            used += len;
            answer(&args, state, &mut out);
        }
        buf.drain(..used);
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

fn answer(args: &[Vec<u8>], state: &State, out: &mut Vec<u8>) {
    match (args.first().map(|a| a.to_ascii_uppercase()), args.len()) {
        (Some(cmd), 3) if cmd == b"SET" => {
            state.sets.fetch_add(1, Ordering::SeqCst);
            if state.fault == Fault::ErrorOnFirstSet
                && !state.fault_used.swap(true, Ordering::SeqCst)
            {
                out.extend_from_slice(b"-ERR injected fault\r\n");
                return;
            }
            state
                .map
                .lock()
                .unwrap()
                .insert(args[1].clone(), args[2].clone());
            out.extend_from_slice(b"+OK\r\n");
        }
        (Some(cmd), 2) if cmd == b"GET" => {
            state.gets.fetch_add(1, Ordering::SeqCst);
            match state.map.lock().unwrap().get(&args[1]) {
                None => out.extend_from_slice(b"$-1\r\n"),
                Some(value) => {
                    let mut value = value.clone();
                    if state.fault == Fault::CorruptFirstGetHit
                        && !value.is_empty()
                        && !state.fault_used.swap(true, Ordering::SeqCst)
                    {
                        value[0] = if value[0] == b'#' { b'%' } else { b'#' };
                    }
                    out.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
                    out.extend_from_slice(&value);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        _ => out.extend_from_slice(b"-ERR unknown command\r\n"),
    }
}

/// One `*N` array of bulk strings and its length, or `None` if incomplete.
fn parse_command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    let (count, mut at) = header(buf, 0, b'*')?;
    let mut args = Vec::with_capacity(count.min(8));
    for _ in 0..count {
        let (len, start) = header(buf, at, b'$')?;
        if buf.len() < start + len + 2 {
            return None;
        }
        args.push(buf[start..start + len].to_vec());
        at = start + len + 2;
    }
    Some((args, at))
}

/// `<kind><decimal>\r\n` at `at`: the number and the offset after the line.
fn header(buf: &[u8], at: usize, kind: u8) -> Option<(usize, usize)> {
    assert_eq!(*buf.get(at)?, kind, "fake server: bad framing");
    let end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
    let number = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
    Some((number, end + 2))
}

/// A validated config for `flin-bench` options against `addr`.
pub fn config(addr: SocketAddr, args: &[&str]) -> flin_bench::Config {
    use clap::Parser;
    let addr = addr.to_string();
    let argv = ["flin-bench", "--addr", addr.as_str(), "--quiet"]
        .into_iter()
        .chain(args.iter().copied());
    flin_bench::Cli::try_parse_from(argv)
        .expect("options parse")
        .run
        .to_config()
        .expect("options are valid")
}
