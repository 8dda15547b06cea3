//! The replica's link thread: connect to the primary, handshake, full sync or partial resync,
//! then apply the command stream and acknowledge it, until REPLICAOF changes, the link drops
//! (then connect again a second later) or the server stops.

use std::io::{self, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bumpalo::Bump;

use super::wire::{self, Payload, Psync};
use crate::clients::ClientEntry;
use crate::commands::{self, Client, Ctx};
use crate::expiry::ExpiryQueue;
use crate::protocol::{Frame, Limits, Parser};
use crate::rdb::{FileError, FileReader, Item};
use crate::repl_state::LinkState;
use crate::shared::Shared;

/// Redis's `repl-timeout`: a link silent this long is dropped.
const REPL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a blocked read wakes up to look at the clock, REPLICAOF and shutdown.
const READ_TICK: Duration = Duration::from_millis(100);
/// `REPLCONF ACK` at least this often.
const ACK_PERIOD: Duration = Duration::from_secs(1);
/// Wait before connecting again after a failed or dropped link.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Skipped keys logged one by one per sync; past this only their count.
const SKIPPED_LOGGED_MAX: u64 = 10;

/// Starts the link thread; it follows whatever primary `shared.replica` names, for the life of
/// the server.
///
/// # Errors
/// The thread could not be started.
pub(crate) fn spawn(shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("flin-replica".into())
        .spawn(move || run(&shared))
}

fn run(shared: &Shared) {
    ask_for_short_slice();
    // Left by a full sync the process did not finish.
    let _ = std::fs::remove_file(shared.config.dir.join(SYNC_FILE));
    // This thread applies the primary's stream: the primary decides what has expired.
    flin_engine::follow_primary_expiry(true);
    while !shared.is_shutting_down() {
        let Some(((host, port), generation)) = shared.replica.wait_primary(Duration::from_secs(1))
        else {
            // A primary (again): expired keys are this server's to remove.
            shared.engine.set_expire_keys(true);
            continue;
        };
        // A replica keeps expired keys (reads hide them) until the primary's DEL.
        shared.engine.set_expire_keys(false);
        tracing::info!(primary = %format!("{host}:{port}"), "connecting to the primary");
        match follow(shared, &host, port, generation) {
            Ok(()) => {}
            Err(e) => tracing::warn!(primary = %format!("{host}:{port}"), error = %e,
                                     "replication link down"),
        }
        {
            let mut link = shared.replica.lock();
            if link.generation == generation {
                if link.state == LinkState::Connected {
                    link.down_since = Some(Instant::now());
                }
                link.state = LinkState::Connect;
            }
        }
        let until = Instant::now() + RETRY_DELAY;
        while Instant::now() < until
            && !shared.is_shutting_down()
            && shared.replica.current(generation)
        {
            std::thread::sleep(READ_TICK);
        }
    }
}

/// The scheduler slice this thread asks for (the kernel's minimum custom slice).
const LINK_SLICE_NS: u64 = 100_000;

/// Asks the kernel to run this thread soon after it wakes: a short slice (Linux 6.12's EEVDF
/// custom slice, `sched_attr.sched_runtime`, which needs no privilege) puts its deadline
/// first among runnable threads of equal weight, so it preempts them when the primary's bytes
/// arrive. Its share of the CPU does not change.
///
/// Why: a replica's reads and the stream's applies are separate threads here (Redis runs
/// both on one), and under CPU contention the link thread, woken by the primary's bytes,
/// waited behind a worker answering a tight loop of GETs for up to 4 ms (scheduler traces of
/// `bench/replication.sh`'s lag runs; `docs/perf/HISTORY.md`). Older kernels ignore the
/// field; a refusal is logged at debug and changes nothing else.
fn ask_for_short_slice() {
    // `struct sched_attr`, SCHED_ATTR_SIZE_VER0 (48 bytes).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    // SAFETY: sched_getscheduler, getpriority and gettid take and return plain integers;
    // errno is this thread's own.
    let (policy, nice, errno) = unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t);
        let errno = *libc::__errno_location();
        (libc::sched_getscheduler(0), nice, errno)
    };
    // getpriority answers -1 for nice -1 too: only errno tells a failure.
    if nice == -1 && errno != 0 {
        return;
    }
    // Only the fair classes have a slice; a real-time policy set by an administrator stays.
    if policy != libc::SCHED_OTHER && policy != libc::SCHED_BATCH {
        return;
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy as u32,
        flags: 0,
        // The thread's niceness as it is (`nice -n` on the server): only the slice changes.
        nice,
        priority: 0,
        runtime: LINK_SLICE_NS,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a valid, initialised sched_attr of the size it declares, alive for
    // the call; pid 0 is the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(),
                        "could not ask for a short scheduler slice for the replication link thread; \
                         it is scheduled as the other threads are");
    }
}

/// The socket's read side: retries timeouts while the link is current and not silent for
/// [`REPL_TIMEOUT`]; in the stream phase a timeout returns `WouldBlock` so the caller can ACK.
struct LinkReader<'a> {
    stream: TcpStream,
    shared: &'a Shared,
    generation: u64,
    last_io: Instant,
    /// Return `WouldBlock` on a quiet tick instead of waiting on.
    ticks: bool,
}

impl Read for LinkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "primary closed the link",
                    ))
                }
                Ok(n) => {
                    self.last_io = Instant::now();
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.shared.is_shutting_down()
                        || !self.shared.replica.current(self.generation)
                    {
                        return Err(io::Error::other("link given up"));
                    }
                    if self.last_io.elapsed() > REPL_TIMEOUT {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "primary silent past the timeout",
                        ));
                    }
                    if self.ticks {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sets the link's fields while `generation` is current; false once REPLICAOF moved on.
fn update(shared: &Shared, generation: u64, f: impl FnOnce(&mut crate::repl_state::Link)) -> bool {
    let mut link = shared.replica.lock();
    if link.generation != generation {
        return false;
    }
    f(&mut link);
    true
}

fn given_up() -> io::Error {
    io::Error::other("REPLICAOF changed")
}

/// One link's life: connect, handshake, sync, stream. Returns when it drops or is given up.
fn follow(shared: &Shared, host: &str, port: u16, generation: u64) -> io::Result<()> {
    update(shared, generation, |l| l.state = LinkState::Connecting);
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address for the primary"))?;
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_TICK))?;
    let mut out = stream.try_clone()?;
    let peer = stream.peer_addr()?;
    let local = stream.local_addr()?;
    let mut r = BufReader::with_capacity(
        READ_CHUNK_BYTES,
        LinkReader {
            stream,
            shared,
            generation,
            last_io: Instant::now(),
            ticks: false,
        },
    );
    if !update(shared, generation, |l| l.state = LinkState::Handshake) {
        return Err(given_up());
    }
    // The handshake, as Redis 7's replica does it.
    out.write_all(&wire::request(&[b"PING"]))?;
    let pong = wire::read_line(&mut r)?;
    if !wire::ping_ok(&pong) {
        return Err(refused("PING", &pong));
    }
    let (masterauth, masteruser) = shared.replica.credentials();
    if let Some(pass) = &masterauth {
        let auth = match &masteruser {
            Some(user) => wire::request(&[b"AUTH", user.as_bytes(), pass.as_bytes()]),
            None => wire::request(&[b"AUTH", pass.as_bytes()]),
        };
        out.write_all(&auth)?;
        let ok = wire::read_line(&mut r)?;
        if !ok.starts_with(b"+") {
            return Err(refused("AUTH", &ok));
        }
    }
    let our_port = shared.local_addr.port().to_string();
    out.write_all(&wire::request(&[
        b"REPLCONF",
        b"listening-port",
        our_port.as_bytes(),
    ]))?;
    let _ = wire::read_line(&mut r)?;
    out.write_all(&wire::request(&[
        b"REPLCONF",
        b"capa",
        b"eof",
        b"capa",
        b"psync2",
    ]))?;
    let _ = wire::read_line(&mut r)?;
    let (known, offset) = {
        let link = shared.replica.lock();
        (link.replid.clone(), link.offset)
    };
    match &known {
        Some(id) => {
            let from = (offset + 1).to_string();
            out.write_all(&wire::request(&[b"PSYNC", id.as_bytes(), from.as_bytes()]))?;
        }
        None => out.write_all(&wire::request(&[b"PSYNC", b"?", b"-1"]))?,
    }
    // A Redis primary whose full sync waits (`repl-diskless-sync-delay`, 5 s by default)
    // sends bare newlines each second before its answer, to keep the link alive.
    let answer = loop {
        let line = wire::read_line(&mut r)?;
        if !line.is_empty() {
            break line;
        }
    };
    match wire::parse_psync(&answer) {
        Psync::Full { replid, offset } => {
            tracing::info!(%replid, offset, "full sync from the primary");
            full_sync(shared, generation, &mut r)?;
            // Our stream is now a copy of the primary's, for our own replicas after a
            // promotion (`REPLICAOF NO ONE` keeps it).
            shared
                .primary
                .lock()
                .mirror(&replid, offset, shared.primary.flag());
            update(shared, generation, |l| {
                l.replid = Some(replid);
                l.offset = offset;
                l.read_offset = offset;
                l.full_syncs += 1;
            });
        }
        Psync::Continue { replid } => {
            tracing::info!(
                offset,
                "partial resync: the primary's backlog covers the gap"
            );
            {
                let mut stream = shared.primary.lock();
                let id = replid.clone().unwrap_or_else(|| stream.replid.clone());
                stream.mirror_continue(&id);
            }
            update(shared, generation, |l| {
                if replid.is_some() {
                    l.replid = replid;
                }
                l.partial_syncs += 1;
            });
        }
        Psync::Refused(why) => return Err(io::Error::other(format!("PSYNC refused: {why}"))),
    }
    if !update(shared, generation, |l| {
        l.state = LinkState::Connected;
        l.down_since = None;
        l.last_io = Some(Instant::now());
    }) {
        return Err(given_up());
    }
    tracing::info!("replica in sync: applying the primary's stream");
    r.get_mut().ticks = true;
    let entry = Arc::new(ClientEntry::new(
        shared
            .next_client_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        peer,
        local,
        -1,
        crate::clock::now_ms() as u64,
    ));
    // Listed while the stream flows (CLIENT LIST's flag `M`; CLIENT KILL TYPE master drops
    // the link, which reconnects).
    entry.set_role(crate::clients::Role::Primary);
    shared.registry.add(entry.clone());
    let streamed = stream_loop(shared, generation, &mut r, &mut out, entry.clone());
    shared.registry.remove(entry.id);
    streamed
}

fn refused(what: &str, line: &[u8]) -> io::Error {
    io::Error::other(format!("{what} refused: {}", String::from_utf8_lossy(line)))
}

/// The file a full sync's payload is received into, in the data directory.
pub const SYNC_FILE: &str = "REPLICA-SYNC.rdb.tmp";

/// Reads the payload into [`SYNC_FILE`] first, as Redis's replica does with its temporary
/// RDB: until the whole payload arrived, the store keeps the data it had (a link that drops
/// mid-transfer loses nothing). Then the store is flushed and loaded from the file, while
/// clients get `-LOADING` (Redis's reply) for every command Redis refuses during a load.
fn full_sync(
    shared: &Shared,
    generation: u64,
    r: &mut BufReader<LinkReader<'_>>,
) -> io::Result<()> {
    let payload = wire::read_payload_header(r)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no payload header"))?;
    let total = match payload {
        Payload::Len(n) => n,
        Payload::Eof(_) => 0,
    };
    if !update(shared, generation, |l| {
        l.state = LinkState::Sync;
        l.sync_total_bytes = total;
        l.sync_read_bytes = 0;
    }) {
        return Err(given_up());
    }
    let path = shared.config.dir.join(SYNC_FILE);
    let received = receive(shared, generation, r, &payload, &path);
    let loaded = received.and_then(|len| load(shared, generation, &path, len));
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(file = %path.display(), error = %e, "could not remove the full sync's temporary file; remove it by hand");
        }
    }
    loaded
}

/// Copies the payload into `path`; returns the RDB's length.
fn receive(
    shared: &Shared,
    generation: u64,
    r: &mut BufReader<LinkReader<'_>>,
    payload: &Payload,
    path: &std::path::Path,
) -> io::Result<u64> {
    let file = std::fs::File::create(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("create {} for the full sync: {e}", path.display()),
        )
    })?;
    let mut out = std::io::BufWriter::with_capacity(READ_CHUNK_BYTES, file);
    let len = wire::copy_payload(r, payload, &mut out, |n| {
        update(shared, generation, |l| l.sync_read_bytes = n);
    })
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("receiving the full sync into {}: {e}", path.display()),
        )
    })?;
    out.flush()?;
    Ok(len)
}

/// Flushes the store and loads the RDB in `path` (`len` bytes), clients held off meanwhile.
fn load(shared: &Shared, generation: u64, path: &std::path::Path, len: u64) -> io::Result<()> {
    struct Loading<'a>(&'a Shared);
    impl Drop for Loading<'_> {
        fn drop(&mut self) {
            self.0.replica.set_loading(false);
        }
    }
    let file = std::fs::File::open(path)?;
    let r = &mut std::io::BufReader::with_capacity(READ_CHUNK_BYTES, file);
    shared.replica.set_loading(true);
    let _loading = Loading(shared);
    shared.replica.wait_load_released();
    let bad = |e: FileError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    // From here the store is no copy of any stream until the load succeeds: a link that
    // drops, or a shutdown, must not offer the old position for a `+CONTINUE`.
    shared.replica.lock().replid = None;
    shared
        .engine
        .clear()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut rdb = FileReader::new(&mut *r, shared.proto_max_bulk_len()).map_err(bad)?;
    let databases = shared.engine.databases();
    let (mut loaded, mut skipped) = (0u64, 0u64);
    loop {
        match rdb.next_item().map_err(bad)? {
            Item::String {
                db,
                key,
                value,
                expire_at_ms,
            } => {
                let Some(db) = u32::try_from(db).ok().filter(|d| *d < databases) else {
                    skipped += 1;
                    continue;
                };
                let at = expire_at_ms.map_or(0, |t| t.max(1) as u64);
                shared
                    .engine
                    .db(db)
                    .put(&key, &value, at)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                loaded += 1;
                if loaded % 4096 == 0 {
                    let read = rdb.position();
                    update(shared, generation, |l| l.sync_read_bytes = read);
                }
            }
            Item::Skipped { db, key, kind } => {
                skipped += 1;
                if skipped <= SKIPPED_LOGGED_MAX {
                    tracing::warn!(db, key = %String::from_utf8_lossy(&key), kind,
                                   "full sync: skipped a key of a type flin does not store");
                }
            }
            Item::End => break,
            Item::Aux { .. } | Item::Function | Item::ModuleAux => {}
        }
    }
    let rdb_len = rdb.position();
    drop(rdb);
    if rdb_len != len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the payload held {len} bytes, its RDB ended after {rdb_len}"),
        ));
    }
    update(shared, generation, |l| {
        l.skipped_keys += skipped;
        l.sync_read_bytes = rdb_len;
    });
    tracing::info!(keys = loaded, skipped, bytes = rdb_len, "full sync loaded");
    Ok(())
}

/// Applies the primary's stream as a client that may write, acknowledging the offset every
/// second and on `REPLCONF GETACK`.
///
/// The applied offset (`slave_repl_offset`: what is acknowledged, copied into this server's
/// own stream, and asked for again by a `PSYNC` that continues) moves past whole commands
/// outside a transaction only, as Redis's `reploff` does: the commands a `MULTI` queued die
/// with the link's client, so a link that drops inside a transaction continues from its
/// `MULTI`. The bytes of an open transaction stay at the head of `buf`, parsed.
fn stream_loop(
    shared: &Shared,
    generation: u64,
    r: &mut BufReader<LinkReader<'_>>,
    out: &mut TcpStream,
    entry: Arc<ClientEntry>,
) -> io::Result<()> {
    let (mut offset, db) = {
        let link = shared.replica.lock();
        (link.offset, link.db)
    };
    let mut client = Client::new(entry);
    client.authenticated = true;
    client.from_primary = true;
    client.db = db;
    let limits = Limits {
        bulk_len_max: usize::try_from(shared.proto_max_bulk_len()).unwrap_or(usize::MAX),
        authenticated: true,
    };
    let mut parser = Parser::new();
    let mut arena = Bump::new();
    // At once, as Redis's replica does: a Redis primary that sent a diskless payload streams
    // nothing until the replica's first ACK says it loaded it (up to a second otherwise).
    out.write_all(&ack(offset))?;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
    // Bytes at the head of `buf` already parsed: an open transaction's.
    let mut parsed = 0;
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut last_ack = Instant::now();
    // The latest write applied and not yet acknowledged.
    let mut unacked = None;
    let mut replies = Vec::new();
    loop {
        match r.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                client.entry.touch(crate::clock::now_ms() as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if client.entry.is_killed() {
            return Err(io::Error::other("the link was killed by CLIENT KILL"));
        }
        // Bytes at the head of `buf` applied by this pass.
        let mut applied = 0;
        let result = {
            let expiry = ExpiryQueue::default();
            let mut ctx = Ctx {
                engine: &shared.engine,
                server: shared,
                worker: 0,
                client: &mut client,
                out: &mut replies,
                expiry: &expiry,
                token: unacked,
                keyspace_hits: 0,
                keyspace_misses: 0,
                close: false,
                shutdown: None,
                repl: None,
                repl_tx: None,
            };
            let mut batch = None;
            let result = loop {
                if parsed >= buf.len() {
                    break Ok(());
                }
                let frame = match parser.parse(&buf[parsed..], &arena, limits) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(io::Error::new(io::ErrorKind::InvalidData, e.message())),
                };
                let consumed = match frame {
                    Frame::Empty { consumed } => consumed,
                    Frame::Command { args, consumed } => {
                        if is_getack(args) {
                            // The ACK answers with what was applied before the GETACK.
                            let acked = on_disk(shared, ctx.token)
                                .and_then(|()| out.write_all(&ack(offset + applied as i64)));
                            if let Err(e) = acked {
                                break Err(e);
                            }
                            last_ack = Instant::now();
                        } else if args[0].eq_ignore_ascii_case(b"REPLCONF") {
                            // Other REPLCONF from the primary: nothing to do.
                        } else if commands::is_exec(args[0]) {
                            batch = None;
                            let _all = shared.exec_gate.exclusive();
                            commands::execute(&mut ctx, args);
                        } else {
                            if batch.is_none() {
                                batch = Some(shared.exec_gate.batch(0));
                            }
                            commands::execute(&mut ctx, args);
                        }
                        ctx.out.clear();
                        consumed
                    }
                };
                parsed += consumed;
                if !ctx.client.tx.queueing() {
                    applied = parsed;
                }
            };
            drop(batch);
            unacked = ctx.token;
            result
        };
        if applied > 0 {
            let mut stream = shared.primary.lock();
            if stream.mirroring && stream.active() {
                stream.append(&buf[..applied]);
            }
        }
        buf.drain(..applied);
        parsed -= applied;
        offset += applied as i64;
        // No frame of this pass is held on to (a transaction's queue owns copies).
        arena.reset();
        if buf.capacity() > READ_CHUNK_BYTES * 16 && buf.len() < READ_CHUNK_BYTES {
            buf.shrink_to(READ_CHUNK_BYTES);
        }
        // Recorded even when the pass failed part way: what it applied is in the store. A
        // SELECT inside an open transaction is queued: `client.db` is the applied offset's.
        let db = client.db;
        if !update(shared, generation, |l| {
            l.offset = offset;
            l.db = db;
            l.read_offset = offset + buf.len() as i64;
            l.last_io = Some(r.get_ref().last_io);
        }) {
            return Err(given_up());
        }
        result?;
        if last_ack.elapsed() >= ACK_PERIOD {
            on_disk(shared, unacked.take())?;
            out.write_all(&ack(offset))?;
            last_ack = Instant::now();
        }
    }
}

/// Under `--fsync always`, waits until `token`'s write is on disk: an acknowledged offset is
/// in flin's log, as a client's acknowledged write is.
fn on_disk(shared: &Shared, token: Option<flin_engine::WriteToken>) -> io::Result<()> {
    match token {
        Some(t) if shared.engine.acks_wait_for_disk() => shared
            .engine
            .wait_durable(t)
            .map_err(|e| io::Error::other(e.to_string())),
        _ => Ok(()),
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
