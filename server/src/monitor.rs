//! MONITOR: every command any worker runs, as a line, to every monitoring client.
//!
//! A monitoring client registers a [`Sink`]; a worker running a command checks one atomic
//! (no monitor: nothing more is done), formats the line once and appends it to every sink,
//! waking the monitor's connection, which may live on another worker (monoio's wakers are
//! thread-safe with its `sync` feature). A sink holds at most the client output limit: past
//! it the sink is marked overflowed and its connection closes, as Redis closes a client over
//! its output buffer limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// What a monitor's connection finds in its sink.
#[derive(Debug, PartialEq, Eq)]
pub enum SinkEvent {
    /// Lines were moved out.
    Lines,
    /// More lines arrived than the limit allows: close the connection.
    Overflowed,
    /// The monitor was removed.
    Closed,
}

#[derive(Default)]
struct SinkState {
    lines: Vec<u8>,
    waker: Option<Waker>,
    overflowed: bool,
    closed: bool,
}

/// The lines waiting for one monitoring client.
pub struct Sink {
    pub client_id: u64,
    limit_bytes: usize,
    state: Mutex<SinkState>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Sink {
    pub fn new(client_id: u64, limit_bytes: usize) -> Sink {
        Sink {
            client_id,
            limit_bytes,
            state: Mutex::default(),
        }
    }

    /// Moves waiting lines to the end of `into`, or says why there will be none.
    pub fn poll_take(&self, cx: &mut Context<'_>, into: &mut Vec<u8>) -> Poll<SinkEvent> {
        let Ok(mut s) = self.state.lock() else {
            return Poll::Ready(SinkEvent::Closed);
        };
        if s.closed {
            return Poll::Ready(SinkEvent::Closed);
        }
        if s.overflowed {
            return Poll::Ready(SinkEvent::Overflowed);
        }
        if !s.lines.is_empty() {
            into.extend_from_slice(&s.lines);
            s.lines.clear();
            return Poll::Ready(SinkEvent::Lines);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn push(&self, line: &[u8]) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if s.overflowed || s.closed {
            return;
        }
        if s.lines.len() + line.len() > self.limit_bytes {
            s.overflowed = true;
            s.lines = Vec::new();
        } else {
            s.lines.extend_from_slice(line);
        }
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.closed = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }
}

/// Every monitoring client's sink.
#[derive(Default)]
pub struct Monitors {
    active: AtomicUsize,
    sinks: Mutex<Vec<Arc<Sink>>>,
}

impl Monitors {
    /// True while some client monitors: one relaxed load, for every command.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    pub fn add(&self, sink: Arc<Sink>) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.push(sink);
            self.active.store(sinks.len(), Ordering::Relaxed);
        }
    }

    /// Removes (and closes) the sink of client `client_id`, if it monitors.
    pub fn remove(&self, client_id: u64) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.retain(|s| {
                let keep = s.client_id != client_id;
                if !keep {
                    s.close();
                }
                keep
            });
            self.active.store(sinks.len(), Ordering::Relaxed);
        }
    }

    /// Appends `line` to every monitor's sink.
    pub fn feed(&self, line: &[u8]) {
        if let Ok(sinks) = self.sinks.lock() {
            for s in sinks.iter() {
                s.push(line);
            }
        }
    }
}

/// One MONITOR line, as Redis's `replicationFeedMonitors` writes it:
/// `+<secs>.<usecs> [<db> <peer>] "arg" "arg"...` with each argument quoted and escaped.
pub fn format_line<'a>(
    out: &mut Vec<u8>,
    unix_us: u64,
    db: u32,
    peer: &str,
    args: impl Iterator<Item = &'a [u8]>,
) {
    out.extend_from_slice(
        format!(
            "+{}.{:06} [{db} {peer}]",
            unix_us / 1_000_000,
            unix_us % 1_000_000
        )
        .as_bytes(),
    );
    for a in args {
        out.push(b' ');
        quote(out, a);
    }
    out.extend_from_slice(b"\r\n");
}

/// Redis's `sdscatrepr`: in double quotes, `\\` `\"` `\n` `\r` `\t` `\a` `\b` escaped, other
/// bytes outside printable ASCII as `\xhh`.
pub fn quote(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_quoted_like_redis() {
        let mut out = Vec::new();
        let args: [&[u8]; 3] = [b"set", b"a b", b"c\"d\\n\x01\xc3\xa9\r"];
        format_line(
            &mut out,
            1_796_527_094_006_980,
            0,
            "127.0.0.1:47062",
            args.into_iter(),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "+1796527094.006980 [0 127.0.0.1:47062] \"set\" \"a b\" \
             \"c\\\"d\\\\n\\x01\\xc3\\xa9\\r\"\r\n"
        );
    }

    #[test]
    fn a_sink_overflows_at_its_limit_and_closes_on_removal() {
        let monitors = Monitors::default();
        assert!(!monitors.is_active());
        let sink = Arc::new(Sink::new(7, 10));
        monitors.add(sink.clone());
        assert!(monitors.is_active());
        monitors.feed(b"12345");
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut got = Vec::new();
        assert_eq!(
            sink.poll_take(&mut cx, &mut got),
            Poll::Ready(SinkEvent::Lines)
        );
        assert_eq!(got, b"12345");
        assert_eq!(sink.poll_take(&mut cx, &mut got), Poll::Pending);
        monitors.feed(b"123456");
        monitors.feed(b"123456");
        assert_eq!(
            sink.poll_take(&mut cx, &mut got),
            Poll::Ready(SinkEvent::Overflowed)
        );
        monitors.remove(7);
        assert!(!monitors.is_active());
        assert_eq!(
            sink.poll_take(&mut cx, &mut got),
            Poll::Ready(SinkEvent::Closed)
        );
    }
}
