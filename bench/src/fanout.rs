//! `--mode pubsub`: PUBLISH fan-out. `--subscribers` connections SUBSCRIBE to one channel and
//! are read by `--threads` epoll threads; one publisher connection (the calling thread)
//! PUBLISHes `--value-size`-byte messages as fast as it can with at most `--pipeline` in
//! flight, until `--requests` messages or `--duration` seconds.
//!
//! Every message carries its sequence number (20 decimal digits, then `x` filler), so each
//! subscriber checks that it gets every message once, in order: a message frame is compared
//! byte for byte with the one expected next. Each PUBLISH reply must count every subscriber.
//! What is measured is messages delivered to subscribers per second, from the first PUBLISH
//! to the last delivery.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::epoll::{Epoll, Interest, EVENTS_PER_WAIT_MAX};
use crate::error::BenchError;
use crate::options::{Config, Stop};
use crate::resp::{escape, parse_reply, Reply, REPLY_SHOWN_MAX_BYTES};
use crate::run::{connect_all, resolve, CONNECT_TIMEOUT};

/// The channel every subscriber listens on.
pub const CHANNEL: &[u8] = b"flin-bench:fanout";
/// Digits of the sequence number at the start of each message.
pub const SEQ_DIGITS: usize = 20;
/// Smallest message: the sequence number.
pub const MESSAGE_MIN_BYTES: usize = SEQ_DIGITS;
/// Bytes a subscriber reads at once.
const SUB_READ_BYTES: usize = 64 * 1024;
/// Longest epoll wait of a subscriber thread.
const TICK: Duration = Duration::from_millis(50);
/// Not yet known: the number of messages published, until the publisher stops.
const PUBLISHED_UNKNOWN: u64 = u64::MAX;

/// The result of a fan-out run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutReport {
    /// `--addr`.
    pub addr: String,
    /// Subscriber connections.
    pub subscribers: u32,
    /// Subscriber reading threads.
    pub threads: u32,
    /// Most PUBLISHes in flight (`--pipeline`).
    pub in_flight: u32,
    /// Bytes of each message.
    pub message_bytes: usize,
    /// Messages published (and acknowledged).
    pub published: u64,
    /// Messages received by subscribers, all of them.
    pub delivered: u64,
    /// From the first PUBLISH to the last delivery.
    pub elapsed_secs: f64,
    /// `published` over `elapsed_secs`.
    pub published_per_sec: f64,
    /// `delivered` over `elapsed_secs`: the figure of merit.
    pub delivered_per_sec: f64,
    /// Failures: lost, repeated or reordered messages, wrong replies, closed connections.
    pub errors: u64,
    /// The first of them, in words.
    pub first_error: Option<String>,
}

impl FanoutReport {
    /// Whether every message reached every subscriber in order.
    pub fn passed(&self) -> bool {
        self.errors == 0
    }

    /// The human-readable summary.
    ///
    /// # Errors
    /// The error of writing to `out`.
    pub fn print_text(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "flin-bench {} pubsub: 1 publisher ({} in flight), {} subscribers on {} threads, {}-byte messages",
            self.addr, self.in_flight, self.subscribers, self.threads, self.message_bytes
        )?;
        writeln!(
            out,
            "{} published, {} delivered in {:.3} s: {:.1} published/s, {:.1} delivered/s",
            self.published,
            self.delivered,
            self.elapsed_secs,
            self.published_per_sec,
            self.delivered_per_sec
        )?;
        match &self.first_error {
            None => writeln!(
                out,
                "every message reached every subscriber in order: 0 errors"
            ),
            Some(first) => writeln!(out, "ERRORS: {}; first: {first}", self.errors),
        }
    }

    /// Writes the report as pretty JSON to `path`.
    ///
    /// # Errors
    /// As [`crate::report::write_json`].
    pub fn write_json(&self, path: &Path) -> Result<(), BenchError> {
        crate::report::write_json(self, path)
    }
}

/// Failures of one thread.
#[derive(Debug, Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

impl Failures {
    fn add(&mut self, count: u64, describe: impl FnOnce() -> String) {
        self.count += count;
        if self.first.is_none() {
            self.first = Some(describe());
        }
    }

    fn merge(&mut self, other: Failures) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

/// The frames of one run's messages: `PUBLISH` requests and what subscribers receive.
#[derive(Debug, Clone)]
pub struct Frames {
    message_bytes: usize,
    /// `*3 $7 PUBLISH $<channel>` and `$<size>` before the message.
    publish_head: Vec<u8>,
    /// `*3 $7 message $<channel>` and `$<size>` before the message.
    message_head: Vec<u8>,
}

impl Frames {
    /// Frames for `message_bytes`-byte messages (at least [`MESSAGE_MIN_BYTES`]).
    pub fn new(message_bytes: usize) -> Self {
        assert!(message_bytes >= MESSAGE_MIN_BYTES, "validated by options");
        let head = |command: &str| {
            let mut out = format!(
                "*3\r\n${}\r\n{command}\r\n${}\r\n",
                command.len(),
                CHANNEL.len()
            )
            .into_bytes();
            out.extend_from_slice(CHANNEL);
            out.extend_from_slice(format!("\r\n${message_bytes}\r\n").as_bytes());
            out
        };
        Self {
            message_bytes,
            publish_head: head("PUBLISH"),
            message_head: head("message"),
        }
    }

    /// Appends message `seq`: its number in 20 digits, then `x` up to the size.
    fn push_message(&self, out: &mut Vec<u8>, seq: u64) {
        out.extend_from_slice(format!("{seq:0SEQ_DIGITS$}").as_bytes());
        out.resize(out.len() + self.message_bytes - SEQ_DIGITS, b'x');
    }

    /// Appends `PUBLISH <channel> <message seq>`.
    pub fn push_publish(&self, out: &mut Vec<u8>, seq: u64) {
        out.extend_from_slice(&self.publish_head);
        self.push_message(out, seq);
        out.extend_from_slice(b"\r\n");
    }

    /// Bytes of one message as a subscriber receives it.
    pub fn delivery_len(&self) -> usize {
        self.message_head.len() + self.message_bytes + 2
    }

    /// Checks that `frame` (exactly [`Self::delivery_len`] bytes) is message `seq`.
    ///
    /// # Errors
    /// What was wrong, for the report.
    pub fn check_delivery(&self, frame: &[u8], seq: u64) -> Result<(), String> {
        let mut expected = Vec::with_capacity(self.delivery_len());
        expected.extend_from_slice(&self.message_head);
        self.push_message(&mut expected, seq);
        expected.extend_from_slice(b"\r\n");
        if frame == expected.as_slice() {
            return Ok(());
        }
        Err(format!(
            "expected message {seq}, got {}",
            escape(frame, REPLY_SHOWN_MAX_BYTES)
        ))
    }

    /// The reply to `SUBSCRIBE <channel>` as the only subscription.
    pub fn subscribe_reply() -> Vec<u8> {
        let mut out = format!("*3\r\n$9\r\nsubscribe\r\n${}\r\n", CHANNEL.len()).into_bytes();
        out.extend_from_slice(CHANNEL);
        out.extend_from_slice(b"\r\n:1\r\n");
        out
    }
}

/// One subscriber connection and what it received.
struct Sub {
    stream: TcpStream,
    id: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Messages received in order so far; the next expected is this number.
    received: u64,
    alive: bool,
}

impl Sub {
    /// Reads what the socket has and checks every whole message.
    fn on_readable(&mut self, frames: &Frames) -> Result<(), String> {
        let frame_len = frames.delivery_len();
        loop {
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.buf.len() - self.end < frame_len {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err("the server closed the connection".to_string()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(format!("read: {e}")),
            };
            self.end += n;
            while self.end - self.start >= frame_len {
                let frame = &self.buf[self.start..self.start + frame_len];
                frames.check_delivery(frame, self.received)?;
                self.received += 1;
                self.start += frame_len;
            }
        }
    }
}

/// What the subscriber threads share with the publisher.
struct Progress {
    /// Messages published, once the publisher stopped; [`PUBLISHED_UNKNOWN`] before.
    published: AtomicU64,
}

/// Runs the fan-out described by `config`.
///
/// # Errors
/// [`BenchError`] when connecting or subscribing fails or a thread cannot start.
pub fn run(config: &Config) -> Result<FanoutReport, BenchError> {
    let addr = resolve(&config.addr)?;
    let frames = Frames::new(config.value_size_bytes);
    let streams = connect_all(addr, config.subscribers)?;
    subscribe_all(&streams, config.timeout)?;
    let publisher = connect_publisher(addr, config.timeout)?;
    let threads = config.threads.clamp(1, config.subscribers) as usize;
    let mut parts: Vec<Vec<Sub>> = (0..threads).map(|_| Vec::new()).collect();
    for (id, stream) in streams.into_iter().enumerate() {
        parts[id % threads].push(Sub {
            stream,
            id,
            buf: vec![0; SUB_READ_BYTES.max(2 * frames.delivery_len())],
            start: 0,
            end: 0,
            received: 0,
            alive: true,
        });
    }
    let progress = Progress {
        published: AtomicU64::new(PUBLISHED_UNKNOWN),
    };
    let start = Instant::now();
    let (published, publish_failures, results) = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .enumerate()
            .map(|(thread, subs)| {
                let (frames, progress) = (&frames, &progress);
                std::thread::Builder::new()
                    .name(format!("flin-bench-sub-{thread}"))
                    .spawn_scoped(scope, move || {
                        read_subscribers(subs, frames, progress, config.timeout)
                    })
                    .map_err(|source| BenchError::Spawn { thread, source })
            })
            .collect();
        let (published, failures) = publish(publisher, &frames, config, start);
        progress.published.store(published, Ordering::Release);
        let results: Vec<_> = handles
            .into_iter()
            .enumerate()
            .map(|(thread, handle)| {
                handle.and_then(|h| h.join().map_err(|_| BenchError::WorkerPanicked { thread }))
            })
            .collect();
        (published, failures, results)
    });
    let mut failures = publish_failures;
    let mut delivered = 0;
    let mut last = start;
    for result in results {
        let (got, at, thread_failures) = result?;
        delivered += got;
        last = last.max(at);
        failures.merge(thread_failures);
    }
    let elapsed_secs = last.duration_since(start).as_secs_f64();
    let per_sec = |count: u64| {
        if elapsed_secs > 0.0 {
            count as f64 / elapsed_secs
        } else {
            0.0
        }
    };
    Ok(FanoutReport {
        addr: config.addr.clone(),
        subscribers: config.subscribers,
        threads: threads as u32,
        in_flight: config.pipeline,
        message_bytes: config.value_size_bytes,
        published,
        delivered,
        elapsed_secs,
        published_per_sec: per_sec(published),
        delivered_per_sec: per_sec(delivered),
        errors: failures.count,
        first_error: failures.first,
    })
}

/// Sends SUBSCRIBE on every stream, then checks each confirmation.
fn subscribe_all(streams: &[TcpStream], timeout: Duration) -> Result<(), BenchError> {
    let request = crate::resp::encode_command(&[b"SUBSCRIBE".as_slice(), CHANNEL]);
    let expected = Frames::subscribe_reply();
    let failed = |id: usize, what: String| BenchError::Option(format!("subscriber {id}: {what}"));
    for (id, stream) in streams.iter().enumerate() {
        stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(timeout)))
            .and_then(|()| (&*stream).write_all(&request))
            .map_err(|e| failed(id, format!("SUBSCRIBE: {e}")))?;
    }
    for (id, stream) in streams.iter().enumerate() {
        let mut got = vec![0; expected.len()];
        (&*stream)
            .read_exact(&mut got)
            .map_err(|e| failed(id, format!("reading the SUBSCRIBE reply: {e}")))?;
        if got != expected {
            return Err(failed(
                id,
                format!("SUBSCRIBE replied {}", escape(&got, REPLY_SHOWN_MAX_BYTES)),
            ));
        }
        stream
            .set_nonblocking(true)
            .map_err(|e| failed(id, e.to_string()))?;
    }
    Ok(())
}

fn connect_publisher(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, BenchError> {
    let context = |source| BenchError::Connect {
        addr,
        client: usize::MAX,
        source,
    };
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(context)?;
    stream.set_nodelay(true).map_err(context)?;
    stream.set_read_timeout(Some(timeout)).map_err(context)?;
    Ok(stream)
}

/// Publishes until the run's count or time is reached, with at most `--pipeline` PUBLISHes
/// unanswered; returns how many were published and acknowledged, and the failures.
fn publish(
    mut stream: TcpStream,
    frames: &Frames,
    config: &Config,
    start: Instant,
) -> (u64, Failures) {
    let mut failures = Failures::default();
    let (total, deadline) = match config.stop {
        Stop::Requests(total) => (total, None),
        Stop::Duration(duration) => (u64::MAX, Some(start + duration)),
    };
    let window = u64::from(config.pipeline);
    let subscribers = i64::from(config.subscribers);
    let mut out = Vec::new();
    let mut buf = vec![0u8; SUB_READ_BYTES];
    let (mut read_start, mut read_end) = (0, 0);
    let (mut sent, mut acked) = (0u64, 0u64);
    loop {
        let stopping = sent == total || deadline.is_some_and(|d| Instant::now() >= d);
        if stopping && acked == sent {
            return (acked, failures);
        }
        if !stopping && sent - acked < window {
            out.clear();
            let batch = (window - (sent - acked)).min(total - sent);
            for seq in sent..sent + batch {
                frames.push_publish(&mut out, seq);
            }
            if let Err(e) = stream.write_all(&out) {
                failures.add(1, || format!("publisher: write: {e}"));
                return (acked, failures);
            }
            sent += batch;
        }
        if read_start == read_end {
            (read_start, read_end) = (0, 0);
        } else if read_end == buf.len() {
            buf.copy_within(read_start..read_end, 0);
            (read_start, read_end) = (0, read_end - read_start);
        }
        match stream.read(&mut buf[read_end..]) {
            Ok(0) => {
                failures.add(1, || "publisher: the server closed the connection".into());
                return (acked, failures);
            }
            Ok(n) => read_end += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                failures.add(1, || format!("publisher: read: {e}"));
                return (acked, failures);
            }
        }
        loop {
            match parse_reply(&buf[read_start..read_end]) {
                Ok(Some((reply, used))) => {
                    if reply != Reply::Integer(subscribers) {
                        failures.add(1, || {
                            format!(
                                "PUBLISH {acked}: expected :{subscribers}, got {}",
                                reply.describe()
                            )
                        });
                    }
                    read_start += used;
                    acked += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    failures.add(1, || format!("publisher: protocol error in reply: {e}"));
                    return (acked, failures);
                }
            }
        }
    }
}

/// Reads `subs` until each received every published message or failed, or `timeout` passed
/// since the publisher stopped. Returns messages received, when the last arrived, failures.
fn read_subscribers(
    mut subs: Vec<Sub>,
    frames: &Frames,
    progress: &Progress,
    timeout: Duration,
) -> (u64, Instant, Failures) {
    let mut failures = Failures::default();
    let mut last = Instant::now();
    let epoll = Epoll::new();
    let mut epoll = match epoll {
        Ok(epoll) => epoll,
        Err(e) => {
            failures.add(subs.len() as u64, || format!("epoll_create1: {e}"));
            return (0, last, failures);
        }
    };
    for (token, sub) in subs.iter_mut().enumerate() {
        if let Err(e) = epoll.add(sub.stream.as_raw_fd(), token as u64, Interest::Read) {
            failures.add(1, || format!("subscriber {}: epoll_ctl: {e}", sub.id));
            sub.alive = false;
        }
    }
    let mut ready = Vec::with_capacity(EVENTS_PER_WAIT_MAX);
    let mut publisher_done_at: Option<Instant> = None;
    loop {
        let published = progress.published.load(Ordering::Acquire);
        if published != PUBLISHED_UNKNOWN {
            let done_at = *publisher_done_at.get_or_insert_with(Instant::now);
            if subs.iter().all(|s| !s.alive || s.received >= published) {
                break;
            }
            if done_at.elapsed() > timeout {
                break;
            }
        }
        if let Err(e) = epoll.wait(TICK.as_millis() as i32, |event| ready.push(event.token)) {
            failures.add(1, || format!("epoll_wait: {e}"));
            break;
        }
        for token in ready.drain(..) {
            let sub = &mut subs[token as usize];
            if !sub.alive {
                continue;
            }
            let before = sub.received;
            let result = sub.on_readable(frames);
            if sub.received > before {
                last = Instant::now();
            }
            if let Err(e) = result {
                failures.add(1, || format!("subscriber {}: {e}", sub.id));
                sub.alive = false;
                let _ = epoll.delete(sub.stream.as_raw_fd());
            }
        }
    }
    let published = progress.published.load(Ordering::Acquire);
    let mut received = 0;
    for sub in &subs {
        received += sub.received;
        if sub.alive && published != PUBLISHED_UNKNOWN && sub.received != published {
            failures.add(1, || {
                format!(
                    "subscriber {}: received {} of {published} messages",
                    sub.id, sub.received
                )
            });
        }
    }
    (received, last, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_and_delivery_frames() {
        let frames = Frames::new(24);
        let mut out = Vec::new();
        frames.push_publish(&mut out, 7);
        assert_eq!(
            out,
            b"*3\r\n$7\r\nPUBLISH\r\n$17\r\nflin-bench:fanout\r\n$24\r\n00000000000000000007xxxx\r\n"
        );
        let delivery: &[u8] =
            b"*3\r\n$7\r\nmessage\r\n$17\r\nflin-bench:fanout\r\n$24\r\n00000000000000000007xxxx\r\n";
        assert_eq!(frames.delivery_len(), delivery.len());
        assert_eq!(frames.check_delivery(delivery, 7), Ok(()));
        let err = frames.check_delivery(delivery, 6).unwrap_err();
        assert!(err.contains("expected message 6"), "{err}");
        assert_eq!(
            Frames::subscribe_reply(),
            b"*3\r\n$9\r\nsubscribe\r\n$17\r\nflin-bench:fanout\r\n:1\r\n"
        );
    }

    #[test]
    fn subscriber_counts_in_order_and_rejects_gaps() {
        let frames = Frames::new(20);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        let mut sub = Sub {
            stream: client,
            id: 0,
            buf: vec![0; 2 * frames.delivery_len() + 3],
            start: 0,
            end: 0,
            received: 0,
            alive: true,
        };
        let mut sent = Vec::new();
        for seq in 0..5 {
            let mut frame = frames.message_head.clone();
            frames.push_message(&mut frame, seq);
            frame.extend_from_slice(b"\r\n");
            sent.extend_from_slice(&frame);
        }
        // Split mid-frame: the subscriber waits for the rest.
        server.write_all(&sent[..sent.len() - 5]).unwrap();
        while sub.received < 4 {
            sub.on_readable(&frames).unwrap();
        }
        server.write_all(&sent[sent.len() - 5..]).unwrap();
        while sub.received < 5 {
            sub.on_readable(&frames).unwrap();
        }
        // Message 6 instead of 5: a gap.
        let mut gap = frames.message_head.clone();
        frames.push_message(&mut gap, 6);
        gap.extend_from_slice(b"\r\n");
        server.write_all(&gap).unwrap();
        let err = loop {
            match sub.on_readable(&frames) {
                Ok(()) => continue,
                Err(e) => break e,
            }
        };
        assert!(err.contains("expected message 5"), "{err}");
        assert_eq!(sub.received, 5);
    }
}
