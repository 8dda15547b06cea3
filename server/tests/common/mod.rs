//! Shared helpers for the server scenarios: start a server on 127.0.0.1:0 in a temporary
//! directory, talk to it with raw sockets (exact bytes) or the `redis` crate.
#![allow(dead_code)]

pub mod binary;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use flin_server::{Config, Server, ServerHandle};

pub struct TestServer {
    pub handle: Option<ServerHandle>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

pub fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::with_dir(dir);
    c.port = 0;
    c.threads = 2;
    c.pin_cores = false;
    c
}

/// Starts a server with the defaults, adjusted by `tweak`.
pub fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    tweak(&mut c);
    let handle = Server::start(c).expect("server starts");
    let addr = handle.local_addr();
    TestServer {
        handle: Some(handle),
        addr,
        dir,
    }
}

pub fn start() -> TestServer {
    start_with(|_| {})
}

impl TestServer {
    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("running")
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(self.addr)
    }

    pub fn client(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.addr)).expect("client");
        let con = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .expect("connect");
        con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        con
    }

    /// Stops the server and waits for it; the directory stays.
    pub fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().expect("clean shutdown");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.shutdown();
        }
    }
}

/// A raw connection for exact bytes.
pub struct Raw {
    pub stream: TcpStream,
    /// Bytes read and not yet returned.
    pending: Vec<u8>,
}

impl Raw {
    /// Connects to `addr`. Reads give up after 30 s: a reply that never comes fails the test
    /// instead of hanging it.
    pub fn connect(addr: impl ToSocketAddrs) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            pending: Vec::new(),
        }
    }

    /// Wraps a connected stream (set up by the test: buffer sizes, timeouts).
    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            stream,
            pending: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads what the server sent next; false once it has closed the connection.
    fn fill(&mut self) -> bool {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    return true;
                }
                // The io_uring runtime in this process can interrupt a blocking read: retry.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return false,
                Err(e) => panic!(
                    "read: {e} (after {:?})",
                    String::from_utf8_lossy(&self.pending)
                ),
            }
        }
    }

    /// Reads exactly `n` bytes.
    pub fn read_n(&mut self, n: usize) -> Vec<u8> {
        while self.pending.len() < n {
            assert!(
                self.fill(),
                "connection closed after {:?}",
                String::from_utf8_lossy(&self.pending)
            );
        }
        let rest = self.pending.split_off(n);
        std::mem::replace(&mut self.pending, rest)
    }

    /// Reads one line, with its CRLF; None when the connection closes first.
    pub fn read_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.pending.windows(2).position(|w| w == b"\r\n") {
                return Some(self.read_n(i + 2));
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Sends `request` and expects exactly `reply` back.
    pub fn expect(&mut self, request: &[u8], reply: &[u8]) {
        self.send(request);
        let got = self.read_n(reply.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(reply),
            "reply to {:?}",
            String::from_utf8_lossy(request)
        );
    }

    /// Sends one command and returns its reply: the body of a bulk string, or the whole line
    /// (with its CRLF) of any other reply, `$-1` included; None when the server closed the
    /// connection instead (or before the command could be sent).
    pub fn request(&mut self, args: &[&[u8]]) -> Option<String> {
        self.stream.write_all(&cmd(args)).ok()?;
        let head = String::from_utf8(self.read_line()?).expect("a UTF-8 reply line");
        let bulk_len = head
            .strip_prefix('$')
            .and_then(|l| l.trim_end().parse().ok());
        let Some(len) = bulk_len else {
            return Some(head);
        };
        let body = self.read_n(len + 2);
        Some(String::from_utf8(body[..len].to_vec()).expect("a UTF-8 bulk string"))
    }

    /// GET `key`: its value, None when it is missing.
    pub fn get(&mut self, key: &str) -> Option<String> {
        let reply = self
            .request(&[b"GET", key.as_bytes()])
            .unwrap_or_else(|| panic!("the connection closed on GET {key}"));
        (reply != "$-1\r\n").then_some(reply)
    }

    /// Reads until the server closes the connection; returns what came before.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.pending)
    }
}

/// Reads one RESP array of bulk strings (a request, or a command of a replication stream).
pub fn read_command(raw: &mut Raw) -> Vec<String> {
    let head = raw.read_line().expect("an array of bulk strings");
    let n: usize = std::str::from_utf8(&head[1..head.len() - 2])
        .ok()
        .filter(|_| head[0] == b'*')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an array header: {head:?}"));
    (0..n)
        .map(|_| {
            let h = raw.read_line().expect("bulk header");
            let len: usize = std::str::from_utf8(&h[1..h.len() - 2])
                .unwrap()
                .parse()
                .unwrap();
            let mut b = raw.read_n(len + 2);
            b.truncate(len);
            String::from_utf8(b).unwrap()
        })
        .collect()
}

/// Encodes a multibulk request.
pub fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// The value of `name` in INFO's text (its `name:value` lines); panics naming it when absent.
pub fn info_field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in INFO: {info}"))
}

/// The most reply bytes the kernel can hold for one connection that is not read: the server's
/// send buffer plus the client's receive buffer, at their autotuning maximums.
pub fn kernel_socket_buffers_max() -> u64 {
    let max_of = |path: &str| -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().last()?.parse().ok())
            .unwrap_or(64 << 20)
    };
    max_of("/proc/sys/net/ipv4/tcp_wmem") + max_of("/proc/sys/net/ipv4/tcp_rmem")
}
