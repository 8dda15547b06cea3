//! The primary's command stream, applied on worker 0 as Redis applies it on its one thread.
//!
//! The link thread (`replica`) connects, does the handshake and any full sync, then hands the
//! socket over (`crate::repl_state::Handover`) and waits for the stream's end. Worker 0
//! reads the stream in its event loop, beside its clients: a replica's GET and the write it
//! waits for are one thread's work, with no thread to wake and schedule between the
//! primary's bytes and the store (the link thread's scheduling delay was the tail of a flin
//! replica's lag; `docs/perf/HISTORY.md`).
//!
//! The stream is a registered connection of the worker (the cron's CLIENT KILL, and shutdown,
//! act on it as on any client); a ticker task beside it sends the periodic `REPLCONF ACK`
//! and ends the link when REPLICAOF moves on or the primary falls silent. The ACKs go through
//! the connection's write loop, which under `--fsync always` holds each until the writes it
//! covers are on disk.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bumpalo::Bump;
use flin_engine::WriteToken;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, Splitable};
use monoio::net::TcpStream;

use super::wire;
use crate::clients::ClientEntry;
use crate::commands::{self, Client, Ctx};
use crate::connection::{self, ConnShared};
use crate::expiry::ExpiryQueue;
use crate::protocol::{Frame, Limits, Parser};
use crate::shared::{Shared, WorkerShared};

/// Redis's `repl-timeout`: a link silent this long is dropped.
pub(super) const REPL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the ticker looks at the clock, REPLICAOF and the ACK period.
const TICK: Duration = Duration::from_millis(100);
/// `REPLCONF ACK` at least this often.
const ACK_PERIOD: Duration = Duration::from_secs(1);
/// Read at least this much per call.
const READ_ROOM_MIN_BYTES: usize = 16 * 1024;
/// The read buffer starts this large and is given back when it grew past 16 times this.
const READ_BUF_BYTES: usize = 64 * 1024;

/// The socket of a handover, in the worker's runtime.
///
/// # Errors
/// It could not be made non-blocking or registered with the runtime.
pub(crate) fn into_runtime(stream: std::net::TcpStream) -> io::Result<TcpStream> {
    stream.set_read_timeout(None)?;
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}

/// What the reader and the ticker share.
struct Progress {
    /// The applied offset (`slave_repl_offset`).
    offset: Cell<i64>,
    /// The latest write applied and not covered by an ACK yet.
    unacked: Cell<Option<WriteToken>>,
    last_io: Cell<Instant>,
    last_ack: Cell<Instant>,
    /// Why the ticker ended the link, when it did.
    why: RefCell<Option<io::Error>>,
}

/// Applies the stream of a handover until the link drops, REPLICAOF moves on, CLIENT KILL, or
/// the server stops; returns why it ended. `conn` is the link's connection, registered with
/// the worker by the caller.
pub(crate) async fn follow(
    stream: TcpStream,
    buffered: Vec<u8>,
    generation: u64,
    conn: Rc<ConnShared>,
    w: Rc<WorkerShared>,
) -> io::Result<()> {
    let shared = w.shared.clone();
    let (offset, db) = {
        let link = shared.replica.lock();
        (link.offset, link.db)
    };
    let mut applier = Applier::new(&shared, conn.entry.clone(), db, offset, buffered);
    let progress = Rc::new(Progress {
        offset: Cell::new(offset),
        unacked: Cell::new(None),
        last_io: Cell::new(Instant::now()),
        last_ack: Cell::new(Instant::now()),
        why: RefCell::new(None),
    });
    let (mut rd, wr) = stream.into_split();
    let writer = monoio::spawn(connection::write_loop(wr, conn.clone(), w.clone()));
    // At once, as Redis's replica does: a Redis primary that sent a diskless payload streams
    // nothing until the replica's first ACK says it loaded it (up to a second otherwise).
    conn.queue(&w, &ack(offset), None);
    monoio::spawn(ticker(
        Rc::downgrade(&w),
        conn.clone(),
        progress.clone(),
        generation,
    ));
    let ended = loop {
        // Bytes already there (read with the handshake) are applied before the first read.
        let (applied, getack) = applier.pass(&shared, w.id);
        progress.offset.set(applier.offset);
        if applier.unacked.is_some() {
            progress.unacked.set(applier.unacked);
        }
        if let Some((at, token)) = getack {
            conn.queue(
                &w,
                &ack(at),
                token.filter(|_| shared.engine.acks_wait_for_disk()),
            );
            progress.last_ack.set(Instant::now());
        }
        let db = applier.client.db;
        let read_offset = applier.offset + applier.buf.len() as i64;
        if !super::replica::update(&shared, generation, |l| {
            l.offset = applier.offset;
            l.db = db;
            l.read_offset = read_offset;
            l.last_io = Some(progress.last_io.get());
        }) {
            break Err(io::Error::other("REPLICAOF changed"));
        }
        if let Err(e) = applied {
            break Err(e);
        }
        if conn.is_closing() {
            break Err(io::Error::other("the link was closed"));
        }
        let buf = &mut applier.buf;
        if buf.capacity() - buf.len() < READ_ROOM_MIN_BYTES {
            buf.reserve(READ_BUF_BYTES);
        }
        let len = buf.len();
        let (res, slice) = rd.read(std::mem::take(buf).slice_mut(len..)).await;
        *buf = slice.into_inner();
        match res {
            Ok(0) => {
                break Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "primary closed the link",
                ))
            }
            Ok(_) => {
                progress.last_io.set(Instant::now());
                applier.client.entry.touch(crate::clock::now_ms() as u64);
            }
            Err(e) => break Err(e),
        }
    };
    // The ticker's reason (REPLICAOF moved on, silence, CLIENT KILL, shutdown), or the
    // cron's (CLIENT KILL, shutdown), explains the failed read it caused.
    let ended = match progress.why.borrow_mut().take() {
        Some(why) => Err(why),
        None if conn.entry.is_killed() => {
            Err(io::Error::other("the link was killed by CLIENT KILL"))
        }
        None if shared.is_shutting_down() => Err(io::Error::other("the server is stopping")),
        None => ended,
    };
    conn.finish();
    let _ = writer.await;
    applier.client.tx.clear(applier.client.id, &shared.watches);
    ended
}

/// Every [`TICK`] while the link lives: ends it when the server stops, REPLICAOF moved on,
/// CLIENT KILL marked it or the primary was silent past [`REPL_TIMEOUT`]; sends `REPLCONF
/// ACK` each [`ACK_PERIOD`]. Holds the worker weakly: a sleeping task must not keep it alive
/// past its runtime.
async fn ticker(
    w: Weak<WorkerShared>,
    conn: Rc<ConnShared>,
    progress: Rc<Progress>,
    generation: u64,
) {
    loop {
        monoio::time::sleep(TICK).await;
        if conn.is_closing() {
            return;
        }
        let Some(w) = w.upgrade() else {
            return;
        };
        let shared = &w.shared;
        let why = if shared.is_shutting_down() {
            Some(io::Error::other("the server is stopping"))
        } else if !shared.replica.current(generation) {
            Some(io::Error::other("REPLICAOF changed"))
        } else if conn.entry.is_killed() {
            Some(io::Error::other("the link was killed by CLIENT KILL"))
        } else if progress.last_io.get().elapsed() > REPL_TIMEOUT {
            Some(io::Error::new(
                io::ErrorKind::TimedOut,
                "primary silent past the timeout",
            ))
        } else {
            None
        };
        if let Some(why) = why {
            *progress.why.borrow_mut() = Some(why);
            conn.shut_both();
            return;
        }
        if progress.last_ack.get().elapsed() >= ACK_PERIOD {
            let token = progress
                .unacked
                .take()
                .filter(|_| shared.engine.acks_wait_for_disk());
            conn.queue(&w, &ack(progress.offset.get()), token);
            progress.last_ack.set(Instant::now());
        }
    }
}

/// The stream's parser and pseudo-client: applies every complete command of its buffer.
///
/// The applied offset (`slave_repl_offset`: what is acknowledged, copied into this server's
/// own stream, and asked for again by a `PSYNC` that continues) moves past whole commands
/// outside a transaction only, as Redis's `reploff` does: the commands a `MULTI` queued die
/// with the link's client, so a link that drops inside a transaction continues from its
/// `MULTI`. The bytes of an open transaction stay at the head of `buf`, parsed.
struct Applier {
    parser: Parser,
    /// Parses ahead of `parser` for the keys to prefetch (see `connection::look_ahead`).
    lookahead: Parser,
    arena: Bump,
    /// Received and not applied yet.
    buf: Vec<u8>,
    /// Bytes at the head of `buf` already parsed: an open transaction's.
    parsed: usize,
    /// The applied offset.
    offset: i64,
    client: Client,
    /// The latest write applied.
    unacked: Option<WriteToken>,
    limits: Limits,
}

impl Applier {
    fn new(shared: &Shared, entry: Arc<ClientEntry>, db: u32, offset: i64, buf: Vec<u8>) -> Self {
        let mut client = Client::new(entry);
        client.authenticated = true;
        client.from_primary = true;
        client.db = db;
        let mut buf = buf;
        buf.reserve(READ_BUF_BYTES);
        Applier {
            parser: Parser::new(),
            lookahead: Parser::new(),
            arena: Bump::new(),
            buf,
            parsed: 0,
            offset,
            client,
            unacked: None,
            limits: Limits {
                bulk_len_max: usize::try_from(shared.proto_max_bulk_len()).unwrap_or(usize::MAX),
                authenticated: true,
            },
        }
    }

    /// Applies what `buf` holds; returns whether the stream is still good, and the offset a
    /// `REPLCONF GETACK` of this pass asked about (the applied offset before it, as Redis
    /// answers) with the latest write before it.
    #[allow(clippy::type_complexity)]
    fn pass(
        &mut self,
        shared: &Shared,
        worker: usize,
    ) -> (io::Result<()>, Option<(i64, Option<WriteToken>)>) {
        // The primary alone decides what has expired for the writes it sends (see
        // `flin_engine::follow_primary_expiry`); this worker's clients see expired keys hidden.
        struct PrimaryDecides;
        impl Drop for PrimaryDecides {
            fn drop(&mut self) {
                flin_engine::follow_primary_expiry(false);
            }
        }
        flin_engine::follow_primary_expiry(true);
        let _decides = PrimaryDecides;
        let mut getack = None;
        // Bytes at the head of `buf` applied by this pass.
        let mut applied = 0;
        let mut replies = Vec::new();
        let expiry = ExpiryQueue::default();
        let result = {
            let mut ctx = Ctx::new(
                shared,
                worker,
                &mut self.client,
                &mut replies,
                &expiry,
                self.unacked,
            );
            // No EXEC of another worker runs while this pass does (as a connection's batch).
            let mut batch = None;
            // As a client's pipeline: the index slots and records of the next commands' keys
            // are asked for together, so their cache misses overlap instead of coming one
            // after another (a replica applying a stream spent a quarter of its time on them).
            let mut prefetched_to = self.parsed;
            let result = loop {
                if self.parsed >= self.buf.len() {
                    break Ok(());
                }
                if self.parsed >= prefetched_to && !self.parser.in_frame() {
                    let (covered, keys, _) = crate::connection::look_ahead(
                        &self.buf[self.parsed..],
                        &mut self.lookahead,
                        &self.arena,
                        self.limits,
                    );
                    if keys.len() > 1 {
                        ctx.db().prefetch(&keys);
                    }
                    prefetched_to = self.parsed + covered.max(1);
                }
                let frame =
                    match self
                        .parser
                        .parse(&self.buf[self.parsed..], &self.arena, self.limits)
                    {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break Ok(()),
                        Err(e) => {
                            break Err(io::Error::new(io::ErrorKind::InvalidData, e.message()))
                        }
                    };
                let consumed = match frame {
                    Frame::Empty { consumed } => consumed,
                    Frame::Command { args, consumed } => {
                        if is_getack(args) {
                            getack = Some((self.offset + applied as i64, ctx.token));
                        } else if args[0].eq_ignore_ascii_case(b"REPLCONF") {
                            // Other REPLCONF from the primary: nothing to do.
                        } else if commands::is_exec(args[0]) {
                            batch = None;
                            let _all = shared.exec_gate.exclusive();
                            commands::execute(&mut ctx, args);
                        } else {
                            if batch.is_none() {
                                batch = Some(shared.exec_gate.batch(worker));
                            }
                            commands::execute(&mut ctx, args);
                        }
                        ctx.out.clear();
                        consumed
                    }
                };
                self.parsed += consumed;
                if !ctx.client.tx.queueing() {
                    applied = self.parsed;
                }
            };
            drop(batch);
            self.unacked = ctx.token;
            result
        };
        if applied > 0 {
            let mut stream = shared.primary.lock();
            if stream.mirroring && stream.active() {
                stream.append(&self.buf[..applied]);
            }
        }
        self.buf.drain(..applied);
        self.parsed -= applied;
        self.offset += applied as i64;
        // No frame of this pass is held on to (a transaction's queue owns copies).
        self.arena.reset();
        if self.buf.capacity() > READ_BUF_BYTES * 16 && self.buf.len() < READ_BUF_BYTES {
            self.buf.shrink_to(READ_BUF_BYTES);
        }
        (result, getack)
    }
}

fn is_getack(args: &[&[u8]]) -> bool {
    args.len() >= 2
        && args[0].eq_ignore_ascii_case(b"REPLCONF")
        && args[1].eq_ignore_ascii_case(b"GETACK")
}

/// `REPLCONF ACK <offset>`.
fn ack(offset: i64) -> Vec<u8> {
    wire::request(&[b"REPLCONF", b"ACK", offset.to_string().as_bytes()])
}
