//! One client connection: write a batch of up to `pipeline` requests in one write, read and
//! check their replies as they arrive, then start the next batch.
//!
//! Buffers are allocated once and reused: the write buffer holds exactly one batch, the read
//! buffer holds unparsed reply bytes between `read_start..read_end` and grows (doubling, up to
//! `READ_BUFFER_MAX_BYTES`) only when one reply does not fit. Replies are parsed in place.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Instant;

use crate::epoll::{Epoll, Interest};
use crate::keys::{value_matches, KEY_DIGITS, KEY_PREFIX};
use crate::options::Mode;
use crate::resp::{
    escape, parse_reply, Reply, BULK_LEN_MAX_BYTES, LINE_LEN_MAX_BYTES, MULTI_REPLY,
    REPLY_SHOWN_MAX_BYTES,
};
use crate::rng::{mix64, Rng};
use crate::shared::Shared;
use crate::tally::{Op, Tally};

/// Read buffer size at start; enough for a pipelined batch of small replies.
pub const READ_BUFFER_INITIAL_BYTES: usize = 16 * 1024;
/// The read buffer never grows past one largest reply plus a read's worth of slack.
pub const READ_BUFFER_MAX_BYTES: usize = BULK_LEN_MAX_BYTES + LINE_LEN_MAX_BYTES + 64 * 1024;

/// One request of the batch in flight.
#[derive(Debug, Clone, Copy)]
struct Pending {
    op: Op,
    key: u64,
    /// A GET whose key this run had acknowledged writing before the GET was sent: the reply
    /// must be the key's value.
    value_known: bool,
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A batch is in flight.
    Busy,
    /// No work left; deregistered.
    Done,
    /// Failed; deregistered.
    Dead,
}

/// What a readable socket produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The batch still waits for replies.
    Waiting,
    /// Every reply of the batch arrived.
    BatchDone,
}

/// One client connection and its reused buffers.
pub struct Conn {
    stream: TcpStream,
    /// This connection's number in the run (its epoll token within its thread is its index
    /// in the thread's list).
    id: usize,
    token: u64,
    state: State,
    interest: Interest,
    write_buf: Vec<u8>,
    written: usize,
    read_buf: Vec<u8>,
    read_start: usize,
    read_end: usize,
    batch: Vec<Pending>,
    answered: usize,
    batch_sent_at: Instant,
    batch_measured: bool,
    rng: Rng,
}

impl Conn {
    /// Wraps a connected, non-blocking stream and registers it for reading.
    ///
    /// # Errors
    /// The OS error of the epoll registration.
    pub fn new(
        stream: TcpStream,
        id: usize,
        token: u64,
        shared: &Shared,
        epoll: &Epoll,
    ) -> io::Result<Self> {
        epoll.add(stream.as_raw_fd(), token, Interest::Read)?;
        let pipeline = shared.config.pipeline as usize;
        Ok(Self {
            stream,
            id,
            token,
            state: State::Done,
            interest: Interest::Read,
            write_buf: Vec::with_capacity(shared.encoder.set_len_bytes() * pipeline * 2),
            written: 0,
            read_buf: vec![0; READ_BUFFER_INITIAL_BYTES],
            read_start: 0,
            read_end: 0,
            batch: Vec::with_capacity(pipeline),
            answered: 0,
            batch_sent_at: Instant::now(),
            batch_measured: false,
            rng: Rng::new(mix64(shared.config.seed ^ mix64(id as u64 + 1))),
        })
    }

    /// This connection's number in the run, for messages.
    pub fn id(&self) -> usize {
        self.id
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// When the batch in flight was written.
    pub fn batch_sent_at(&self) -> Instant {
        self.batch_sent_at
    }

    /// Requests written whose replies have not arrived.
    pub fn outstanding(&self) -> u64 {
        (self.batch.len() - self.answered) as u64
    }

    /// Starts the next batch if the run has work left; otherwise becomes `Done`.
    ///
    /// # Errors
    /// A description of the write failure.
    pub fn start_batch(&mut self, shared: &Shared, epoll: &Epoll) -> Result<State, String> {
        let now = Instant::now();
        let pipeline = u64::from(shared.config.pipeline);
        let (count, measured) = if now < shared.measure_start {
            (pipeline, false)
        } else if shared.deadline.is_some_and(|deadline| now >= deadline) {
            (0, true)
        } else if let Some(budget) = &shared.budget {
            (budget.claim(pipeline), true)
        } else {
            (pipeline, true)
        };
        if count == 0 {
            self.finish(epoll, State::Done);
            return Ok(State::Done);
        }
        self.fill_batch(shared, count);
        self.batch_measured = measured;
        self.state = State::Busy;
        self.batch_sent_at = Instant::now();
        self.flush(epoll)?;
        Ok(State::Busy)
    }

    /// Encodes `count` requests into the write buffer.
    fn fill_batch(&mut self, shared: &Shared, count: u64) {
        let ratio = shared.config.ratio;
        let ratio_total = u64::from(ratio.set) + u64::from(ratio.get);
        self.batch.clear();
        self.answered = 0;
        self.write_buf.clear();
        self.written = 0;
        if shared.config.mode == Mode::Multi {
            for _ in 0..count {
                let key = shared.keys.next(&mut self.rng);
                let second = shared.keys.next(&mut self.rng);
                shared.encoder.push_multi(&mut self.write_buf, key, second);
                self.batch.push(Pending {
                    op: Op::Multi,
                    key,
                    value_known: false,
                });
            }
            return;
        }
        for _ in 0..count {
            let op = match (ratio.set, ratio.get) {
                (_, 0) => Op::Set,
                (0, _) => Op::Get,
                _ if self.rng.below(ratio_total) < u64::from(ratio.set) => Op::Set,
                _ => Op::Get,
            };
            let key = shared.keys.next(&mut self.rng);
            let value_known = match op {
                Op::Set | Op::Multi => {
                    shared.encoder.push_set(&mut self.write_buf, key);
                    false
                }
                Op::Get => {
                    shared.encoder.push_get(&mut self.write_buf, key);
                    shared.written.contains(key)
                }
            };
            self.batch.push(Pending {
                op,
                key,
                value_known,
            });
        }
    }

    /// Writes what is left of the batch; waits for writability if the socket is full.
    ///
    /// # Errors
    /// A description of the write failure.
    pub fn flush(&mut self, epoll: &Epoll) -> Result<(), String> {
        while self.written < self.write_buf.len() {
            match self.stream.write(&self.write_buf[self.written..]) {
                Ok(0) => return Err("write: the socket accepted no bytes".to_string()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return self.set_interest(epoll, Interest::ReadWrite);
                }
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        self.set_interest(epoll, Interest::Read)
    }

    fn set_interest(&mut self, epoll: &Epoll, interest: Interest) -> Result<(), String> {
        if self.interest != interest {
            epoll
                .modify(self.stream.as_raw_fd(), self.token, interest)
                .map_err(|e| format!("epoll_ctl: {e}"))?;
            self.interest = interest;
        }
        Ok(())
    }

    /// Reads what the socket has, checks every complete reply and records the measured ones.
    ///
    /// # Errors
    /// A description of why this connection cannot go on: closed, an I/O error, broken
    /// framing or bytes no request asked for. Bad replies that keep the framing are counted
    /// in `tally` instead.
    pub fn on_readable(
        &mut self,
        shared: &Shared,
        tally: &mut Tally,
    ) -> Result<ReadOutcome, String> {
        loop {
            self.make_room()?;
            let n = match self.stream.read(&mut self.read_buf[self.read_end..]) {
                Ok(0) => return Err("the server closed the connection".to_string()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Waiting),
                Err(e) => return Err(format!("read: {e}")),
            };
            self.read_end += n;
            let now = Instant::now();
            self.consume(shared, tally, now)?;
            if self.answered == self.batch.len() {
                if self.read_start != self.read_end {
                    let extra = escape(
                        &self.read_buf[self.read_start..self.read_end],
                        REPLY_SHOWN_MAX_BYTES,
                    );
                    return Err(format!(
                        "the server sent bytes no request asked for: {extra}"
                    ));
                }
                return Ok(ReadOutcome::BatchDone);
            }
            if self.read_end < self.read_buf.len() {
                // The socket had less than the room we offered: it is drained for now, and
                // level-triggered epoll reports it again when more arrives.
                return Ok(ReadOutcome::Waiting);
            }
        }
    }

    /// Makes the read buffer's tail non-empty: rewinds when empty, compacts, or grows.
    fn make_room(&mut self) -> Result<(), String> {
        if self.read_start == self.read_end {
            self.read_start = 0;
            self.read_end = 0;
        }
        if self.read_end < self.read_buf.len() {
            return Ok(());
        }
        if self.read_start > 0 {
            self.read_buf.copy_within(self.read_start..self.read_end, 0);
            self.read_end -= self.read_start;
            self.read_start = 0;
            return Ok(());
        }
        if self.read_buf.len() >= READ_BUFFER_MAX_BYTES {
            return Err(format!("one reply exceeds {READ_BUFFER_MAX_BYTES} bytes"));
        }
        let grown = (self.read_buf.len() * 2).min(READ_BUFFER_MAX_BYTES);
        self.read_buf.resize(grown, 0);
        Ok(())
    }

    /// Parses and checks every complete reply in the buffer; records the measured ones.
    fn consume(&mut self, shared: &Shared, tally: &mut Tally, now: Instant) -> Result<(), String> {
        // Every reply of this read arrived at `now` for the batch written at `batch_sent_at`:
        // one latency, recorded once per command with its count.
        let mut correct = [0u64; 2];
        let checked = self.check_replies(shared, tally, &mut correct);
        if self.batch_measured {
            let latency = now - self.batch_sent_at;
            tally.record_n(Op::Set, latency, correct[0], now);
            tally.record_n(Op::Get, latency, correct[1], now);
        }
        checked
    }

    /// Parses and checks every complete reply in the buffer, counting the correct ones per
    /// command in `correct` (SET, GET).
    fn check_replies(
        &mut self,
        shared: &Shared,
        tally: &mut Tally,
        correct: &mut [u64; 2],
    ) -> Result<(), String> {
        let seed = shared.config.seed;
        let value_size = shared.config.value_size_bytes;
        while self.answered < self.batch.len() {
            let unparsed = &self.read_buf[self.read_start..self.read_end];
            if self.batch[self.answered].op == Op::Multi {
                match check_multi(unparsed) {
                    Ok(true) => {}
                    Ok(false) => return Ok(()),
                    Err(e) => return Err(e),
                }
                correct[0] += 1;
                self.read_start += MULTI_REPLY.len();
                self.answered += 1;
                continue;
            }
            let (reply, used) = match parse_reply(unparsed) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(format!(
                        "protocol error in reply: {e} (bytes: {})",
                        escape(unparsed, REPLY_SHOWN_MAX_BYTES)
                    ))
                }
            };
            let pending = self.batch[self.answered];
            match check_reply(pending, &reply, seed, value_size) {
                Ok(outcome) => {
                    match outcome {
                        Outcome::SetOk => shared.written.insert(pending.key),
                        Outcome::Hit => tally.get_hits += u64::from(self.batch_measured),
                        Outcome::Miss => tally.get_misses += u64::from(self.batch_measured),
                    }
                    correct[usize::from(pending.op == Op::Get)] += 1;
                }
                Err(expected) => tally.fail(1, || {
                    format!(
                        "connection {}: {} {}: expected {expected}, got {}",
                        self.id,
                        pending.op.name(),
                        key_name(pending.key),
                        reply.describe()
                    )
                }),
            }
            self.read_start += used;
            self.answered += 1;
        }
        Ok(())
    }

    /// Stops watching this connection; `state` says why.
    pub fn finish(&mut self, epoll: &Epoll, state: State) {
        assert!(state != State::Busy, "finish() ends a connection");
        if self.state != State::Dead {
            // The socket may already be gone from epoll's view; nothing to do on failure.
            let _ = epoll.delete(self.stream.as_raw_fd());
        }
        if state == State::Dead {
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }
        self.state = state;
    }
}

/// A correct reply's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    SetOk,
    Hit,
    Miss,
}

/// Checks `reply` against the request it answers; `Err` says what was expected.
fn check_reply(
    pending: Pending,
    reply: &Reply<'_>,
    seed: u64,
    value_size: usize,
) -> Result<Outcome, String> {
    match (pending.op, reply) {
        (Op::Set, Reply::Simple(b"OK")) => Ok(Outcome::SetOk),
        (Op::Set, _) => Err("+OK".to_string()),
        (Op::Get, Reply::Bulk(_)) if !pending.value_known => Ok(Outcome::Hit),
        (Op::Get, Reply::Bulk(value)) if value_matches(value, pending.key, seed, value_size) => {
            Ok(Outcome::Hit)
        }
        (Op::Get, Reply::NullBulk) if !pending.value_known => Ok(Outcome::Miss),
        (Op::Get, _) if pending.value_known => Err(format!(
            "the {value_size}-byte value this run SET (seed {seed})"
        )),
        (Op::Get, _) => Err("a bulk string or $-1".to_string()),
        // Transactions are checked by `check_multi`, never here.
        (Op::Multi, _) => Err(escape(MULTI_REPLY, REPLY_SHOWN_MAX_BYTES)),
    }
}

/// Whether `unparsed` starts with a whole transaction's replies (`Ok(true)`) or with a part
/// of them (`Ok(false)`: wait for more). Anything else ends the connection: after a wrong
/// reply inside a transaction the framing of the rest is unknown.
fn check_multi(unparsed: &[u8]) -> Result<bool, String> {
    let shared = unparsed.len().min(MULTI_REPLY.len());
    if unparsed[..shared] != MULTI_REPLY[..shared] {
        return Err(format!(
            "MULTI SET SET EXEC: expected {}, got {}",
            escape(MULTI_REPLY, REPLY_SHOWN_MAX_BYTES),
            escape(unparsed, REPLY_SHOWN_MAX_BYTES)
        ));
    }
    Ok(shared == MULTI_REPLY.len())
}

/// `key:000000123`, for messages.
fn key_name(key: u64) -> String {
    format!(
        "{}{key:0width$}",
        String::from_utf8_lossy(KEY_PREFIX),
        width = KEY_DIGITS
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::push_value;

    fn pending(op: Op, value_known: bool) -> Pending {
        Pending {
            op,
            key: 4,
            value_known,
        }
    }

    #[test]
    fn set_needs_ok() {
        assert_eq!(
            check_reply(pending(Op::Set, false), &Reply::Simple(b"OK"), 1, 3),
            Ok(Outcome::SetOk)
        );
        assert!(check_reply(pending(Op::Set, false), &Reply::Error(b"ERR x"), 1, 3).is_err());
        assert!(check_reply(pending(Op::Set, false), &Reply::Simple(b"QUEUED"), 1, 3).is_err());
    }

    #[test]
    fn get_checks_known_values_only() {
        let mut good = Vec::new();
        push_value(&mut good, 4, 1, 3);
        let unknown = pending(Op::Get, false);
        let known = pending(Op::Get, true);
        assert_eq!(
            check_reply(unknown, &Reply::Bulk(b"anything"), 1, 3),
            Ok(Outcome::Hit)
        );
        assert_eq!(
            check_reply(unknown, &Reply::NullBulk, 1, 3),
            Ok(Outcome::Miss)
        );
        assert_eq!(
            check_reply(known, &Reply::Bulk(&good), 1, 3),
            Ok(Outcome::Hit)
        );
        assert!(check_reply(known, &Reply::Bulk(b"bad"), 1, 3).is_err());
        assert!(check_reply(known, &Reply::NullBulk, 1, 3).is_err());
        assert!(check_reply(unknown, &Reply::Integer(1), 1, 3).is_err());
        assert!(check_reply(unknown, &Reply::Error(b"ERR"), 1, 3).is_err());
    }

    #[test]
    fn multi_replies_are_checked_byte_for_byte() {
        assert_eq!(check_multi(b""), Ok(false));
        assert_eq!(check_multi(b"+OK\r\n+QUEUED\r\n"), Ok(false));
        assert_eq!(check_multi(MULTI_REPLY), Ok(true));
        let mut two = MULTI_REPLY.to_vec();
        two.extend_from_slice(b"+OK\r\n");
        assert_eq!(check_multi(&two), Ok(true));
        let aborted = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*-1\r\n";
        let err = check_multi(aborted).unwrap_err();
        assert!(err.contains("*-1"), "{err}");
        assert!(check_multi(b"-ERR MULTI calls can not be nested\r\n").is_err());
    }

    #[test]
    fn key_names_match_the_wire() {
        assert_eq!(key_name(123), "key:000000123");
    }
}
