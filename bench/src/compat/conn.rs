//! One connection to one server: send a request, read exactly one complete reply (or say what
//! happened instead), and [`Conn::request_synced`], which collects every reply to one step.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::resp::{encode_command, escape, parse_reply};

/// What came back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The bytes of exactly one RESP2 reply.
    Reply(Vec<u8>),
    /// The server closed the connection before a complete reply (bytes received so far).
    Closed(Vec<u8>),
    /// No complete reply within the timeout (bytes received so far).
    Timeout(Vec<u8>),
    /// Bytes that are not RESP2, or a socket error.
    Broken(String),
}

impl Outcome {
    /// A printable form, payload escaped and cut at `shown_max` bytes.
    pub fn describe(&self, shown_max: usize) -> String {
        match self {
            Outcome::Reply(b) => escape(b, shown_max),
            Outcome::Closed(b) if b.is_empty() => "(connection closed, no reply)".into(),
            Outcome::Closed(b) => format!(
                "(connection closed after a partial reply: {})",
                escape(b, shown_max)
            ),
            Outcome::Timeout(b) if b.is_empty() => "(no reply within the timeout)".into(),
            Outcome::Timeout(b) => format!(
                "(timed out after a partial reply: {})",
                escape(b, shown_max)
            ),
            Outcome::Broken(msg) => format!("(broken: {msg})"),
        }
    }

    fn connection_lost(&self) -> bool {
        !matches!(self, Outcome::Reply(_))
    }
}

/// One connection to one server.
pub struct Conn {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
    /// Bytes read past the last reply (only a server that sends too much leaves any).
    pending: Vec<u8>,
}

impl Conn {
    /// Connects to `addr`; reads wait at most `timeout`.
    ///
    /// # Errors
    /// The connect error.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let mut c = Conn {
            addr,
            timeout,
            stream: None,
            pending: Vec::new(),
        };
        c.reconnect()?;
        Ok(c)
    }

    /// A new connection to the same server, with the same timeout.
    ///
    /// # Errors
    /// The connect error.
    pub fn open_another(&self) -> io::Result<Conn> {
        Conn::connect(self.addr, self.timeout)
    }

    /// Sends `bytes` and reads exactly `count` replies (none: nothing is read), for steps
    /// the sync marker cannot end: inside MULTI (the marker, an unknown command, would mark
    /// the transaction) and while CLIENT REPLY silences the connection (the marker would get
    /// no reply either).
    pub fn request_counted(&mut self, bytes: &[u8], count: usize) -> Answer {
        if count == 0 {
            let sent = self.stream.as_mut().map(|s| s.write_all(bytes));
            return match sent {
                Some(Ok(())) => Answer {
                    replies: Vec::new(),
                    end: End::Synced,
                },
                _ => {
                    let _ = self.reconnect();
                    Answer {
                        replies: Vec::new(),
                        end: End::Lost(Outcome::Broken(format!("write to {}", self.addr))),
                    }
                }
            };
        }
        let mut replies = Vec::new();
        let mut outcome = self.request(bytes);
        loop {
            match outcome {
                Outcome::Reply(r) => replies.push(r),
                lost => {
                    return Answer {
                        replies,
                        end: End::Lost(lost),
                    }
                }
            }
            if replies.len() == count {
                return Answer {
                    replies,
                    end: End::Synced,
                };
            }
            outcome = self.request(&[]);
        }
    }

    /// Drops the connection and opens a new one.
    ///
    /// # Errors
    /// The connect error.
    pub fn reconnect(&mut self) -> io::Result<()> {
        self.stream = None;
        self.pending.clear();
        let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        s.set_nodelay(true)?;
        self.stream = Some(s);
        Ok(())
    }

    /// Sends `bytes` (if any) and reads one reply. After anything but a reply the connection
    /// is reopened, so the next request starts clean.
    pub fn request(&mut self, bytes: &[u8]) -> Outcome {
        let outcome = self.request_once(bytes);
        if outcome.connection_lost() {
            // A failed reconnect shows up as a broken outcome of the next request.
            let _ = self.reconnect();
        }
        outcome
    }

    fn request_once(&mut self, bytes: &[u8]) -> Outcome {
        let Some(stream) = self.stream.as_mut() else {
            return Outcome::Broken(format!("not connected to {}", self.addr));
        };
        if !bytes.is_empty() {
            if let Err(e) = stream.write_all(bytes) {
                return Outcome::Broken(format!("write to {}: {e}", self.addr));
            }
        }
        self.read_reply()
    }

    fn read_reply(&mut self) -> Outcome {
        loop {
            match parse_reply(&self.pending) {
                Ok(Some((_, used))) => {
                    let rest = self.pending.split_off(used);
                    return Outcome::Reply(std::mem::replace(&mut self.pending, rest));
                }
                Ok(None) => {}
                Err(e) => {
                    return Outcome::Broken(format!(
                        "not RESP2 ({e}): {}",
                        escape(&self.pending, 200)
                    ))
                }
            }
            match self.read_some() {
                Ok(true) => {}
                Ok(false) => return Outcome::Closed(std::mem::take(&mut self.pending)),
                Err(e) if is_timeout(&e) => {
                    return Outcome::Timeout(std::mem::take(&mut self.pending))
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Outcome::Closed(std::mem::take(&mut self.pending))
                }
                Err(e) => return Outcome::Broken(format!("read from {}: {e}", self.addr)),
            }
        }
    }

    /// Appends what the socket has to `pending`; false at end of stream.
    fn read_some(&mut self) -> io::Result<bool> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `bytes` followed by the command `<SYNC_MARKER>`, which no server has, and reads
    /// replies until the error naming it: everything before answers `bytes`, however many
    /// replies that is (zero, one, more). Unknown-command errors come before the
    /// authentication check, so this works on unauthenticated connections too. A server that
    /// closes the connection or goes quiet first ends the step with that.
    pub fn request_synced(&mut self, bytes: &[u8]) -> Answer {
        let marker = encode_command(&[SYNC_MARKER]);
        let is_marker = |r: &[u8]| {
            r.first() == Some(&b'-') && r.windows(SYNC_MARKER.len()).any(|w| w == SYNC_MARKER)
        };
        let mut replies = Vec::new();
        let request = [bytes, &marker].concat();
        let mut outcome = self.request(&request);
        loop {
            match outcome {
                Outcome::Reply(r) if is_marker(&r) => {
                    return Answer {
                        replies,
                        end: End::Synced,
                    }
                }
                Outcome::Reply(r) if replies.len() < REPLIES_PER_STEP_MAX => replies.push(r),
                Outcome::Reply(_) => {
                    let _ = self.reconnect();
                    return Answer {
                        replies,
                        end: End::Lost(Outcome::Broken(format!(
                            "more than {REPLIES_PER_STEP_MAX} replies to one step"
                        ))),
                    };
                }
                lost => {
                    return Answer {
                        replies,
                        end: End::Lost(lost),
                    }
                }
            }
            outcome = self.request(&[]);
        }
    }
}

/// The unknown command sent after each step; the error naming it ends the step's replies.
pub const SYNC_MARKER: &[u8] = b"flin-compat:end-of-step";
/// Replies to one step beyond which the server is taken to be broken.
pub const REPLIES_PER_STEP_MAX: usize = 64;

/// Everything a server answered to one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Complete replies, in order (normally exactly one).
    pub replies: Vec<Vec<u8>>,
    /// Whether the connection stayed in step afterwards.
    pub end: End,
}

/// How a step's answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The sync marker came back: the connection is still in step.
    Synced,
    /// The connection closed, timed out or broke first (the connection is then reopened).
    Lost(Outcome),
}

impl Answer {
    /// True when the server closed the connection right after its replies.
    pub fn closed(&self) -> bool {
        matches!(&self.end, End::Lost(Outcome::Closed(partial)) if partial.is_empty())
    }

    /// The replies escaped (cut at `shown_max` bytes each), then how the step ended when the
    /// connection did not stay in step.
    pub fn describe(&self, shown_max: usize) -> String {
        let mut parts: Vec<String> = self.replies.iter().map(|r| escape(r, shown_max)).collect();
        if parts.is_empty() {
            parts.push("(no reply)".into());
        }
        if self.replies.len() > 1 {
            parts.insert(0, format!("({} replies)", self.replies.len()));
        }
        if let End::Lost(o) = &self.end {
            parts.push(match o {
                Outcome::Closed(b) if b.is_empty() => "then closed the connection".into(),
                other => format!("then {}", other.describe(shown_max)),
            });
        }
        parts.join("  ")
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted server: answers each request with the next canned reply, split in two
    /// writes; when the script ends it closes (`synced`) or reads one more request and closes.
    /// A request is one read, or with `synced` everything up to the sync marker.
    fn fake_server(replies: Vec<&'static [u8]>, synced: bool) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let mut read_request = |s: &mut TcpStream, synced: bool| {
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).unwrap_or(0);
                    got.extend_from_slice(&buf[..n]);
                    let done = !synced || got.windows(SYNC_MARKER.len()).any(|w| w == SYNC_MARKER);
                    if n == 0 || done {
                        return n > 0;
                    }
                }
            };
            for reply in replies {
                if !read_request(&mut s, synced) {
                    return;
                }
                let (a, b) = reply.split_at(reply.len() / 2);
                s.write_all(a).unwrap();
                s.flush().unwrap();
                s.write_all(b).unwrap();
            }
            if !synced {
                read_request(&mut s, false);
            }
        });
        addr
    }

    #[test]
    fn reads_exactly_one_reply_and_sees_close() {
        let addr = fake_server(vec![b"*2\r\n$1\r\na\r\n:1\r\n", b"+OK\r\n"], false);
        let mut c = Conn::connect(addr, Duration::from_secs(10)).unwrap();
        assert_eq!(
            c.request(b"PING\r\n"),
            Outcome::Reply(b"*2\r\n$1\r\na\r\n:1\r\n".to_vec())
        );
        assert_eq!(c.request(b"PING\r\n"), Outcome::Reply(b"+OK\r\n".to_vec()));
        assert_eq!(c.request(b"PING\r\n"), Outcome::Closed(Vec::new()));
    }

    #[test]
    fn synced_steps_count_every_reply() {
        let addr = fake_server(
            vec![
                b"+A\r\n-ERR unknown command 'flin-compat:end-of-step'\r\n",
                b"+B\r\n+C\r\n-ERR unknown command 'flin-compat:end-of-step'\r\n",
                b"-ERR unknown command 'flin-compat:end-of-step'\r\n",
                b"-ERR bye\r\n",
            ],
            true,
        );
        let mut c = Conn::connect(addr, Duration::from_secs(10)).unwrap();
        let a = c.request_synced(b"PING\r\n");
        assert_eq!((a.replies, a.end), (vec![b"+A\r\n".to_vec()], End::Synced));
        let two = c.request_synced(b"PING\r\n");
        assert_eq!(two.replies, [b"+B\r\n".to_vec(), b"+C\r\n".to_vec()]);
        assert_eq!(two.end, End::Synced);
        let none = c.request_synced(b"\r\n");
        assert_eq!((none.replies.len(), none.end), (0, End::Synced));
        let bye = c.request_synced(b"*x\r\n");
        assert_eq!(bye.replies, [b"-ERR bye\r\n".to_vec()]);
        assert!(bye.closed(), "{bye:?}");
    }

    #[test]
    fn missing_reply_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Conn::connect(addr, Duration::from_millis(100)).unwrap();
        let _held = listener.accept().unwrap();
        assert_eq!(c.request(b"PING\r\n"), Outcome::Timeout(Vec::new()));
    }
}
