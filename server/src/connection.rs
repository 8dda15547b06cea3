//! One client connection: a read loop and a write loop, the only code that touches sockets.
//!
//! The read loop reads into one reused buffer, parses every complete request in it, runs each
//! command inline and appends the replies to the connection's pending buffer; it never waits
//! for a write. The write loop takes the whole pending buffer at once (swapping it with its
//! own empty one, so both keep their capacity) and writes it with as few system calls as the
//! socket allows. Under `--fsync always` the write loop first awaits durability of the
//! latest write whose reply is in that buffer: group commit across connections and threads.
//! When that fails (a failed fsync poisons the engine), none of the buffer is sent: the client
//! gets one `-MISCONF` error saying why, and the connection closes.
//!
//! Write stalls: when writers outrun compaction past the space bound, the engine does not
//! block the worker; a connection stops at its next write command and waits for the stall
//! to end, while reads (and other connections' reads) go on (see `Engine::write_stall`).
//!
//! Transactions: a batch runs holding its worker's part of the EXEC gate
//! (`crate::transactions`); a client's EXEC stops the batch, and the read loop takes the
//! whole gate (every worker between batches) to run that one request, then goes on.
//!
//! Beside this file: `forward` (MONITOR's lines and pub/sub messages moved into a client's
//! replies) and `replication` (a client that sent SYNC / PSYNC handed over to the replication
//! threads; WAIT's wait for acknowledgements).
//!
//! Backpressure: when unsent replies pass `--client-output-limit`, the read loop stops
//! executing (and reading) until the write loop has drained below half the limit, so a client
//! that pipelines and never reads holds at most about the limit plus one reply.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use bumpalo::Bump;
use flin_engine::{WriteToken, PREFETCH_BATCH};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;

use crate::clients::{ClientEntry, ReadBuffers};
use crate::commands::{self, Client, Ctx};
use crate::durability::Refused;
use crate::protocol::{Frame, Limits, Parser};
use crate::shared::WorkerShared;
use crate::stats;

mod forward;
mod replication;

use forward::{forward_messages, forward_monitor};
pub(crate) use replication::Handoff;
use replication::{into_std, wait_acks};

/// Read buffer size to start with; it grows only while a large request really arrives.
pub const READ_BUF_INITIAL_BYTES: usize = 32 * 1024;
/// Read at least this much per call: grow the buffer when less room is left.
const READ_ROOM_MIN_BYTES: usize = 4 * 1024;
/// A read buffer this large is given back once it is empty.
const READ_BUF_SHRINK_OVER_BYTES: usize = 1024 * 1024;
/// The most a client's unparsed requests may occupy: a bulk at the limit, plus framing.
const QUERY_BUF_LEN_MAX_EXTRA: usize = 64 * 1024;
/// Most commands a connection runs while it holds the whole EXEC gate: the EXEC it took the
/// gate for, and what the client pipelined after it (more transactions, usually), so that
/// pipelined transactions take the gate once per batch rather than once each, while the
/// other workers wait a bounded time.
const EXCLUSIVE_COMMANDS_MAX: u64 = 256;
/// Reply buffers start this large and are given back when they grew past the shrink size.
const WRITE_BUF_INITIAL_BYTES: usize = 16 * 1024;
const WRITE_BUF_SHRINK_OVER_BYTES: usize = 4 * 1024 * 1024;

/// State the read loop, the write loop and the worker's cron share.
pub struct ConnShared {
    fd: RawFd,
    /// Replies not yet taken by the write loop.
    pending: RefCell<Vec<u8>>,
    /// The latest write whose reply is in `pending`.
    pending_token: Cell<Option<WriteToken>>,
    /// Bytes the write loop is writing now.
    in_flight: Cell<usize>,
    writer_waker: Cell<Option<Waker>>,
    reader_waker: Cell<Option<Waker>>,
    /// The read loop is done: the write loop flushes what is left and ends.
    closing: Cell<bool>,
    /// The write loop failed (peer gone, durability failed): the read loop ends.
    failed: Cell<bool>,
    /// The client as the registry shows it; a kill mark set there is acted on by the cron.
    pub entry: Arc<ClientEntry>,
}

impl ConnShared {
    pub fn new(stream: &TcpStream, entry: Arc<ClientEntry>) -> ConnShared {
        ConnShared {
            fd: stream.as_raw_fd(),
            pending: RefCell::new(Vec::with_capacity(WRITE_BUF_INITIAL_BYTES)),
            pending_token: Cell::new(None),
            in_flight: Cell::new(0),
            writer_waker: Cell::new(None),
            reader_waker: Cell::new(None),
            closing: Cell::new(false),
            failed: Cell::new(false),
            entry,
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.get() || self.failed.get()
    }

    /// Ends the read side: the read loop sees end of input, the replies still go out.
    pub fn shut_read(&self) {
        // SAFETY: shutdown(2) on the connection's descriptor, which stays open until both
        // loops have ended (they own the stream); it touches no memory of ours.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RD) };
    }

    /// Ends both directions: reads see end of input, pending writes fail.
    pub fn shut_both(&self) {
        // SAFETY: as in `shut_read`.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }

    /// Queues `bytes` for the write loop, as if a command had replied them (a replica's
    /// `REPLCONF ACK` to its primary); under `--fsync always` the write loop holds them until
    /// `token`'s write is on disk.
    pub(crate) fn queue(&self, w: &WorkerShared, bytes: &[u8], token: Option<WriteToken>) {
        self.pending.borrow_mut().extend_from_slice(bytes);
        stats::add(&w.counters().output_queued_bytes, bytes.len() as u64);
        if token > self.pending_token.get() {
            self.pending_token.set(token);
        }
        self.wake_writer();
    }

    /// Ends the connection from its reading side: the write loop sends what is queued, then
    /// ends.
    pub(crate) fn finish(&self) {
        self.closing.set(true);
        self.wake_writer();
    }

    fn queued(&self) -> usize {
        self.pending.borrow().len() + self.in_flight.get()
    }

    fn wake_writer(&self) {
        if let Some(w) = self.writer_waker.take() {
            w.wake();
        }
    }

    fn wake_reader(&self) {
        if let Some(w) = self.reader_waker.take() {
            w.wake();
        }
    }
}

/// Serves one client until it leaves, fails, or the server stops; it has left the registry
/// when this returns, and its worker then forgets `conn`.
pub(crate) async fn serve(
    stream: TcpStream,
    entry: Arc<ClientEntry>,
    conn: Rc<ConnShared>,
    w: Rc<WorkerShared>,
) -> Option<Handoff> {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let writer = monoio::spawn(write_loop(wr, conn.clone(), w.clone()));
    let id = entry.id;
    let mut client = Client::new(entry);
    client.authenticated = w.shared.settings.requirepass().is_none();
    let rd = read_loop(rd, &conn, &w, &mut client).await;
    client.tx.clear(id, &w.shared.watches);
    w.shared.pubsub.leave(&mut client.pubsub);
    // A replica stays listed while its link lives (CLIENT LIST's flag `S`).
    if client.handoff.is_none() {
        w.shared.registry.remove(id);
    }
    w.shared.monitors.remove(id);
    conn.finish();
    let wr = writer.await;
    // Every reply before SYNC / PSYNC is out: the replication threads write from here on.
    let request = client.handoff.take()?;
    let Some(socket) = rd.and_then(|rd| into_std(rd, wr)) else {
        w.shared.registry.remove(id);
        return None;
    };
    client.entry.set_role(crate::clients::Role::Replica);
    Some(Handoff {
        socket,
        request,
        entry: client.entry.clone(),
    })
}

/// What processing the buffered input ended with.
enum Step {
    /// Everything complete was executed: read more.
    NeedInput,
    /// Unsent replies are over the limit: wait for the writer.
    Blocked,
    /// Close the connection once the replies are out (QUIT, SHUTDOWN, a protocol error).
    Close,
    /// The next request writes while writers outrun compaction: wait for the stall to end.
    Stalled,
    /// CLIENT PAUSE holds the next request until this Unix ms, or until CLIENT UNPAUSE.
    Paused(i64),
    /// The next requests' records are not in memory: wait (this connection only) for the
    /// engine to read them, then run the requests.
    Cold(ColdWait),
    /// The next request is EXEC of a transaction: take the EXEC gate (every worker between
    /// batches), then run it.
    Exec,
    /// EXEC ran under the gate (and what followed it, up to `EXCLUSIVE_COMMANDS_MAX`):
    /// release the gate, then go on with the buffered requests.
    Again,
    /// SYNC / PSYNC: the client is a replica; its socket goes to the replication threads.
    Replica,
    /// WAIT: wait (this connection only) for replicas' acknowledgements, then answer.
    Wait,
}

/// A connection's wait for cold records (see `flin_engine::Engine::fetch_cold`).
pub(crate) struct ColdWait {
    fetch: flin_engine::Fetch,
    /// The keys the fetch was asked for, by the index its failures name.
    keys: Vec<Vec<u8>>,
}

/// What a connection remembers between the batches of a cold fetch.
#[derive(Default)]
struct ColdState {
    /// Requests in the first `fetched_to` bytes of the read buffer had their cold records
    /// fetched already: they run now, even if memory pressure evicted a page again meanwhile
    /// (a rare fault on the worker rather than a connection that never gets to run).
    fetched_to: usize,
    /// Keys whose records could not be read, with why: a request touching one of them within
    /// `fetched_to` is answered with that error instead of running (reading the record would
    /// fault on the same bad page).
    failed: Vec<(Vec<u8>, String)>,
    /// Records the fetch read into buffers (not the page cache): the requests within
    /// `fetched_to` run with them visible (`flin_engine::with_staged`), so their reads do not
    /// fault on the map.
    staged: flin_engine::Staged,
}

impl ColdState {
    /// The bytes before `consumed` were dropped from the read buffer.
    fn consumed(&mut self, consumed: usize) {
        self.fetched_to = self.fetched_to.saturating_sub(consumed);
        if self.fetched_to == 0 {
            self.failed.clear();
            self.staged = flin_engine::Staged::default();
        }
    }

    /// Why a request touching `keys` cannot run, when one of them failed to read.
    fn failure_for<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> Option<&str> {
        keys.into_iter().find_map(|k| {
            self.failed
                .iter()
                .find(|(f, _)| f.as_slice() == k)
                .map(|(_, why)| why.as_str())
        })
    }
}

/// Runs the client's requests until it leaves; gives back the read half when the client
/// became a replica (SYNC / PSYNC).
async fn read_loop(
    mut rd: OwnedReadHalf<TcpStream>,
    conn: &Rc<ConnShared>,
    w: &WorkerShared,
    client: &mut Client,
) -> Option<OwnedReadHalf<TcpStream>> {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF_INITIAL_BYTES);
    let mut parser = Parser::new();
    let mut lookahead = Parser::new();
    let mut arena = Bump::new();
    let mut cold = ColdState::default();
    // Whether this client's MONITOR lines are being forwarded.
    let mut monitoring = false;
    // The next `process` runs EXEC, with every worker held at the EXEC gate.
    let mut exec_next = false;
    // Whether this client's pub/sub messages are being forwarded.
    let mut forwarding = false;
    loop {
        let exclusive = std::mem::take(&mut exec_next).then(|| w.shared.exec_gate.exclusive());
        // Records read for this connection's waiting requests stay visible while it runs.
        let staged = std::mem::take(&mut cold.staged);
        // Subscribers this batch publishes to are woken once, at its end.
        let step = flin_engine::with_staged(&staged, || {
            crate::pubsub::deferring_wakes(|| {
                process(
                    &mut buf,
                    [&mut parser, &mut lookahead],
                    &mut arena,
                    &mut cold,
                    conn,
                    w,
                    client,
                    exclusive.is_some(),
                )
            })
        });
        drop(exclusive);
        // Still needed by requests of the fetched window that did not run yet (a full output
        // buffer, a stall); a new fetch brings its own.
        if cold.fetched_to > 0 && !matches!(step, Step::Cold(_)) {
            cold.staged = staged;
        }
        client.entry.note_read_buffers(ReadBuffers {
            query: buf.len(),
            capacity: buf.capacity(),
            other: arena.allocated_bytes(),
        });
        if let Some(sink) = client.monitor.as_ref().filter(|_| !monitoring) {
            monitoring = true;
            monoio::spawn(forward_monitor(
                sink.clone(),
                conn.clone(),
                w.shared.clone(),
                w.id,
            ));
        }
        // RESET left MONITOR (its forwarder ended with the sink).
        monitoring &= client.monitor.is_some();
        if let Some(inbox) = client.pubsub.inbox.as_ref().filter(|_| !forwarding) {
            forwarding = true;
            monoio::spawn(forward_messages(
                inbox.clone(),
                conn.clone(),
                w.shared.clone(),
                w.id,
            ));
        }
        match step {
            Step::NeedInput => {}
            Step::Close => return None,
            Step::Replica => return Some(rd),
            Step::Wait => {
                if let Some(wait) = client.wait.take() {
                    let n = wait_acks(conn, w, wait).await;
                    let mut pending = conn.pending.borrow_mut();
                    let before = pending.len();
                    crate::protocol::reply::integer(&mut pending, n);
                    stats::add(
                        &w.counters().output_queued_bytes,
                        (pending.len() - before) as u64,
                    );
                    drop(pending);
                    conn.wake_writer();
                }
                if conn.failed.get() {
                    return None;
                }
                continue;
            }
            Step::Exec => {
                // The transaction's cold records are read before every worker is held for it:
                // a read from disk under the gate would stall every client of every worker.
                if w.shared.engine.memory_short() {
                    cold.staged = exec_fetch_cold(w, client).await;
                    if conn.failed.get() {
                        return None;
                    }
                }
                exec_next = true;
                continue;
            }
            Step::Again => continue,
            Step::Stalled => {
                // Hold this connection (not the worker) until compaction catches up or the
                // stall runs out, then run the write that stopped the batch.
                if let Some(left) = w.shared.engine.write_stall() {
                    let _ = monoio::time::timeout(left, w.shared.engine.write_stall_lifted()).await;
                }
                if conn.failed.get() {
                    return None;
                }
                continue;
            }
            Step::Paused(end_ms) => {
                let left_ms = end_ms.saturating_sub(crate::clock::now_ms()).max(0) as u64;
                let wait = std::time::Duration::from_millis(left_ms);
                let _ = monoio::time::timeout(wait, w.shared.pause.lifted()).await;
                // Stopping: what the pause held never runs (as on Redis, which exits).
                if conn.failed.get() || w.shared.is_shutting_down() {
                    return None;
                }
                continue;
            }
            Step::Blocked => {
                let output_limit = w.shared.settings.client_output_limit() as usize;
                wait_drained(conn, output_limit / 2).await;
                if conn.failed.get() {
                    return None;
                }
                continue;
            }
            Step::Cold(wait) => {
                // Only this connection waits; the worker's other clients go on.
                stats::add(&w.counters().cold_waits, 1);
                let fetched = wait.fetch.await;
                cold.staged = fetched.staged;
                cold.failed = fetched
                    .failures
                    .into_iter()
                    .map(|(i, e)| {
                        let why = format!(
                            "reading this key's value from disk failed ({e}); the server log \
                             names the file and offset"
                        );
                        (wait.keys[i].clone(), why)
                    })
                    .collect();
                if conn.failed.get() {
                    return None;
                }
                continue;
            }
        }
        if conn.failed.get() {
            return None;
        }
        if buf.capacity() - buf.len() < READ_ROOM_MIN_BYTES {
            let bulk_len_max = w.shared.settings.proto_max_bulk_len() as usize;
            if buf.len() >= bulk_len_max.saturating_add(QUERY_BUF_LEN_MAX_EXTRA) {
                tracing::debug!(
                    client = client.id,
                    "closing client over the query buffer limit"
                );
                return None;
            }
            // Doubles: growth follows the bytes that really arrived.
            buf.reserve(buf.capacity());
        }
        let len = buf.len();
        let (res, slice) = rd.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return None,
            Ok(n) => {
                stats::add(&w.counters().net_input_bytes, n as u64);
                client.entry.touch(crate::clock::now_ms() as u64);
            }
        }
    }
}

/// Parses and runs every complete request in `buf`, then drops the consumed bytes. Takes the
/// connection's parser and a second one that looks ahead for keys to prefetch. Holds the
/// worker's part of the EXEC gate while it runs commands; `exclusive`: the caller holds the
/// whole gate instead, to run the EXEC that starts the buffer and at most
/// [`EXCLUSIVE_COMMANDS_MAX`] commands in all.
#[allow(clippy::too_many_arguments)]
fn process(
    buf: &mut Vec<u8>,
    [parser, lookahead]: [&mut Parser; 2],
    arena: &mut Bump,
    cold: &mut ColdState,
    conn: &ConnShared,
    w: &WorkerShared,
    client: &mut Client,
    exclusive: bool,
) -> Step {
    if buf.is_empty() || parser.frame_len_hint().is_some_and(|need| buf.len() < need) {
        return Step::NeedInput;
    }
    let shared = &*w.shared;
    // No EXEC of another worker runs while this batch does (see `crate::transactions`).
    let _batch = (!exclusive).then(|| shared.exec_gate.batch(w.id));
    let _wakes = shared.primary.batch();
    let output_limit = shared.settings.client_output_limit() as usize;
    let bulk_len_max = shared.settings.proto_max_bulk_len() as usize;
    let mut out = conn.pending.borrow_mut();
    let out_before = out.len();
    let in_flight = conn.in_flight.get();
    let mut ctx = Ctx::new(shared, w.id, client, &mut out, &w.expiry, None);
    let mut pos = 0;
    // Requests up to here had their keys prefetched.
    let mut prefetched_to = 0;
    // Requests up to here had their records checked for residency (memory is short).
    let mut checked_to = 0;
    let memory_short = shared.engine.memory_short();
    let mut commands_run = 0u64;
    let mut step = Step::NeedInput;
    loop {
        if ctx.out.len() + in_flight > output_limit {
            step = Step::Blocked;
            break;
        }
        let limits = Limits {
            bulk_len_max,
            authenticated: ctx.client.authenticated,
        };
        if pos >= prefetched_to && !parser.in_frame() {
            let (covered, keys, blind) = look_ahead(&buf[pos..], lookahead, arena, limits);
            if keys.len() > 1 {
                ctx.db().prefetch(&keys);
            }
            prefetched_to = pos + covered;
            // The next requests' cold records are read together, before the first of them
            // runs: a pipeline of cold GETs waits for one round of reads, not one each.
            if memory_short && covered > 0 && pos >= cold.fetched_to {
                checked_to = pos + covered;
                if let Some(fetch) = w.fetch_cold(&ctx.db(), &keys, |i| blind[i]) {
                    cold.fetched_to = checked_to;
                    let keys = keys.iter().map(|k| k.to_vec()).collect();
                    step = Step::Cold(ColdWait { fetch, keys });
                    break;
                }
            }
        }
        match parser.parse(&buf[pos..], arena, limits) {
            Ok(Some(Frame::Command { args, consumed })) => {
                // Left unconsumed: parsed again, and run, once the stall is over.
                if shared.engine.write_stall().is_some() && commands::writes(args[0]) {
                    step = Step::Stalled;
                    break;
                }
                if let Some(end_ms) = commands::held_by_pause(&ctx, args) {
                    step = Step::Paused(end_ms);
                    break;
                }
                // A request the look-ahead did not cover (alone in the buffer, or arrived in
                // pieces) is checked by itself; left unconsumed while its records are read.
                if memory_short && pos >= checked_to && pos >= cold.fetched_to {
                    let mut keys = bumpalo::collections::Vec::new_in(&*arena);
                    commands::keys_of(args, |k| keys.push(k));
                    let blind = commands::writes_blindly(args);
                    if let Some(fetch) = w.fetch_cold(&ctx.db(), &keys, |_| blind) {
                        cold.fetched_to = pos + consumed;
                        let keys = keys.iter().map(|k| k.to_vec()).collect();
                        step = Step::Cold(ColdWait { fetch, keys });
                        break;
                    }
                }
                if !cold.failed.is_empty() && pos < cold.fetched_to {
                    let mut keys = bumpalo::collections::Vec::new_in(&*arena);
                    commands::keys_of(args, |k| keys.push(k));
                    if let Some(why) = cold.failure_for(keys.iter().copied()) {
                        crate::protocol::reply::err(ctx.out, why);
                        pos += consumed;
                        commands_run += 1;
                        continue;
                    }
                }
                // Left unconsumed: run once this connection holds the EXEC gate.
                if !exclusive && ctx.client.tx.queueing() && commands::is_exec(args[0]) {
                    step = Step::Exec;
                    break;
                }
                pos += consumed;
                commands_run += 1;
                commands::execute(&mut ctx, args);
                if ctx.close || ctx.shutdown.is_some() {
                    step = Step::Close;
                    break;
                }
                if ctx.client.handoff.is_some() {
                    step = Step::Replica;
                    break;
                }
                if ctx.client.wait.is_some() {
                    step = Step::Wait;
                    break;
                }
                // Pipelined transactions run on under the gate, for a while: taking it once
                // per EXEC would hand every worker's thread back and forth per transaction.
                if exclusive && commands_run >= EXCLUSIVE_COMMANDS_MAX {
                    step = Step::Again;
                    break;
                }
            }
            Ok(Some(Frame::Empty { consumed })) => pos += consumed,
            Ok(None) => break,
            Err(e) => {
                e.write_reply(ctx.out);
                stats::add(&w.counters().protocol_errors, 1);
                step = Step::Close;
                break;
            }
        }
    }
    let (token, hits, misses, shutdown) = (
        ctx.token,
        ctx.keyspace_hits,
        ctx.keyspace_misses,
        ctx.shutdown,
    );
    drop(ctx);
    let produced = out.len() - out_before;
    let queued = out.len() + in_flight;
    drop(out);
    if let Some(how) = shutdown {
        crate::shutdown::begin(&w.shared, how == commands::Shutdown::Now);
    }
    // Only `--fsync always` holds replies for the disk; `durable` would force an fsync.
    if token > conn.pending_token.get() && shared.engine.acks_wait_for_disk() {
        conn.pending_token.set(token);
    }
    let c = w.counters();
    stats::add(&c.commands, commands_run);
    if hits > 0 {
        stats::add(&c.keyspace_hits, hits);
    }
    if misses > 0 {
        stats::add(&c.keyspace_misses, misses);
    }
    if produced > 0 {
        stats::add(&c.output_queued_bytes, produced as u64);
        stats::raise(&c.output_queued_bytes_peak, queued as u64);
        conn.entry.note_unsent(queued);
        conn.wake_writer();
    }
    arena.reset();
    cold.consumed(pos);
    if pos == buf.len() {
        buf.clear();
        if buf.capacity() > READ_BUF_SHRINK_OVER_BYTES {
            *buf = Vec::with_capacity(READ_BUF_INITIAL_BYTES);
        }
    } else if pos > 0 {
        buf.drain(..pos);
    }
    step
}

/// Reads the cold records of the keys a transaction queued, waiting for them on this
/// connection only. A key whose record cannot be read fails the transaction: EXEC then
/// answers EXECABORT and runs nothing (the server log names the file and offset).
///
/// Returns the records read into buffers, for the EXEC to run with.
async fn exec_fetch_cold(w: &WorkerShared, client: &mut Client) -> flin_engine::Staged {
    let keys = client.tx.queued_keys();
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let db = w.shared.engine.db(client.db);
    let Some(fetch) = db.fetch_cold(&refs) else {
        return flin_engine::Staged::default();
    };
    stats::add(&w.counters().cold_waits, 1);
    let fetched = fetch.await;
    if let Some((i, e)) = fetched.failures.first() {
        tracing::warn!(
            client = client.entry.id,
            key = %String::from_utf8_lossy(&keys[*i]),
            error = %e,
            "a key of a transaction could not be read from disk; EXEC answers EXECABORT"
        );
        client.tx.refused();
    }
    fetched.staged
}

/// Parses ahead of the request about to run (a pipelined batch) and collects the keys of the
/// next few requests, for `Engine::prefetch` (their index slots and records then arrive from
/// memory together instead of one miss after another) and, when memory is short,
/// `Engine::fetch_cold`. Returns how many bytes of requests it covered, and their keys; 0 and
/// none when `buf` holds a single request, which has nothing to overlap.
pub(crate) fn look_ahead<'a>(
    buf: &'a [u8],
    lookahead: &mut Parser,
    arena: &'a Bump,
    limits: Limits,
) -> (
    usize,
    bumpalo::collections::Vec<'a, &'a [u8]>,
    bumpalo::collections::Vec<'a, bool>,
) {
    let mut keys = bumpalo::collections::Vec::with_capacity_in(PREFETCH_BATCH, arena);
    // Per key: written blindly (see `commands::writes_blindly`).
    let mut blind = bumpalo::collections::Vec::with_capacity_in(PREFETCH_BATCH, arena);
    let mut pos = 0;
    // Bounded in frames too, so requests without keys (PING...) are not parsed far ahead.
    let mut frames = 0;
    while keys.len() < PREFETCH_BATCH && frames < 2 * PREFETCH_BATCH {
        frames += 1;
        match lookahead.parse(&buf[pos..], arena, limits) {
            Ok(Some(Frame::Command { args, consumed })) => {
                if pos == 0 && consumed == buf.len() {
                    break;
                }
                pos += consumed;
                let blindly = commands::writes_blindly(args);
                commands::keys_of(args, |k| {
                    keys.push(k);
                    blind.push(blindly);
                });
            }
            Ok(Some(Frame::Empty { consumed })) => pos += consumed,
            // Incomplete or bad: the main parser meets it and deals with it.
            Ok(None) | Err(_) => break,
        }
    }
    lookahead.reset();
    (pos, keys, blind)
}

/// Waits until the unsent replies fall to `low_water` bytes, or the writer failed.
async fn wait_drained(conn: &ConnShared, low_water: usize) {
    poll_fn(|cx| {
        if conn.failed.get() || conn.queued() <= low_water {
            Poll::Ready(())
        } else {
            conn.reader_waker.set(Some(cx.waker().clone()));
            Poll::Pending
        }
    })
    .await;
}

/// Writes the replies until the connection closes; gives back the write half (dropping it
/// shuts the socket's sending side down).
pub(crate) async fn write_loop(
    mut wr: OwnedWriteHalf<TcpStream>,
    conn: Rc<ConnShared>,
    w: Rc<WorkerShared>,
) -> OwnedWriteHalf<TcpStream> {
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUF_INITIAL_BYTES);
    loop {
        poll_fn(|cx| {
            if !conn.pending.borrow().is_empty() || conn.closing.get() || conn.failed.get() {
                Poll::Ready(())
            } else {
                conn.writer_waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        if conn.pending.borrow().is_empty() || conn.failed.get() {
            break;
        }
        std::mem::swap(&mut buf, &mut *conn.pending.borrow_mut());
        let n = buf.len();
        conn.in_flight.set(n);
        let ok = match conn.pending_token.take() {
            Some(token) => match durable(&w, token).await {
                Ok(()) => true,
                Err(e) => {
                    // The replies claim success for writes that are not durable: send none of
                    // them. One error says why, then the connection closes (the client cannot
                    // match the replies it expected any more), as after a protocol error.
                    tracing::error!(error = %e, "write not durable; closing the client");
                    buf.clear();
                    not_durable_reply(&mut buf, &e);
                    let (_, b) = wr.write_all(buf).await;
                    buf = b;
                    false
                }
            },
            None => true,
        };
        let ok = ok && {
            let (res, b) = wr.write_all(buf).await;
            buf = b;
            res.is_ok()
        };
        let c = w.counters();
        stats::sub(&c.output_queued_bytes, n as u64);
        conn.in_flight.set(0);
        if !ok {
            conn.failed.set(true);
            conn.shut_read();
            conn.wake_reader();
            break;
        }
        stats::add(&c.net_output_bytes, n as u64);
        buf.clear();
        if buf.capacity() > WRITE_BUF_SHRINK_OVER_BYTES {
            buf = Vec::with_capacity(WRITE_BUF_INITIAL_BYTES);
        }
        {
            let pending = conn.pending.borrow();
            conn.entry.note_unsent(pending.len());
            conn.entry
                .note_write_capacity(buf.capacity() + pending.capacity());
        }
        conn.wake_reader();
    }
    // Replies that will never be sent leave the queued gauge.
    let left = conn.pending.borrow().len() as u64;
    if left > 0 {
        stats::sub(&w.counters().output_queued_bytes, left);
        conn.pending.borrow_mut().clear();
    }
    wr
}

/// Waits until the write named by `token` is on disk, through the worker's shared wait.
async fn durable(w: &WorkerShared, token: WriteToken) -> Result<(), flin_engine::Error> {
    match w.durability.wait(token).await {
        Ok(()) => Ok(()),
        // The engine refused a sync: ask it about this write, to get its error (or to learn
        // it was on disk before the failure).
        Err(Refused) => w.shared.engine.durable(token).await,
    }
}

/// The one reply a connection gets in place of replies withheld because their writes did not
/// reach the disk: `-MISCONF` when the engine refuses writes for good (Redis's reply when it
/// cannot persist), `-ERR` otherwise (the server is stopping).
fn not_durable_reply(out: &mut Vec<u8>, e: &flin_engine::Error) {
    let msg = format!(
        "{e}; the replies to this connection's last commands were withheld because their writes \
         may not be on disk, and the connection is closed"
    );
    if e.is_poisoned() {
        crate::protocol::reply::error(out, format!("MISCONF {msg}").as_bytes());
    } else {
        crate::protocol::reply::err(out, &msg);
    }
}
