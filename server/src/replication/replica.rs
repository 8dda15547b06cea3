//! The replica's link thread: connect to the primary, handshake, full sync or partial resync,
//! then hand the link to worker 0, which applies the command stream and acknowledges it
//! (`super::stream`), until REPLICAOF changes, the link drops (then connect again a second
//! later) or the server stops.

use std::io::{self, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::stream::REPL_TIMEOUT;
use super::wire::{self, Payload, Psync};
use crate::rdb::{FileError, FileReader, Item};
use crate::repl_state::{Handover, LinkState};
use crate::shared::Shared;

/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a blocked read wakes up to look at the clock, REPLICAOF and shutdown.
const READ_TICK: Duration = Duration::from_millis(100);
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
    // Left by a full sync the process did not finish.
    let _ = std::fs::remove_file(shared.config.dir.join(SYNC_FILE));
    // This thread loads the primary's full syncs: the primary decides what has expired.
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

/// The socket's read side during the handshake and a full sync: retries timeouts while the
/// link is current and not silent for [`REPL_TIMEOUT`].
struct LinkReader<'a> {
    stream: TcpStream,
    shared: &'a Shared,
    generation: u64,
    last_io: Instant,
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
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sets the link's fields while `generation` is current; false once REPLICAOF moved on.
pub(super) fn update(
    shared: &Shared,
    generation: u64,
    f: impl FnOnce(&mut crate::repl_state::Link),
) -> bool {
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
    let mut r = BufReader::with_capacity(
        READ_CHUNK_BYTES,
        LinkReader {
            stream,
            shared,
            generation,
            last_io: Instant::now(),
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
    hand_over(shared, generation, r)
}

/// Hands the link to worker 0, which applies the stream (`super::stream`), and waits until
/// it ends; returns why it did.
fn hand_over(shared: &Shared, generation: u64, r: BufReader<LinkReader<'_>>) -> io::Result<()> {
    let buffered = r.buffer().to_vec();
    let stream = r.into_inner().stream;
    let (done, ended) = std::sync::mpsc::channel();
    shared.repl_inbox.put(Handover {
        stream,
        buffered,
        generation,
        done,
    });
    loop {
        match ended.recv_timeout(READ_TICK) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Timeout) => {
                // Worker 0 ends the stream within its tick once the server stops; if it had
                // ended before taking the link, nothing else will.
                if shared.is_shutting_down() && shared.repl_inbox.take().is_some() {
                    return Err(io::Error::other("the server is stopping"));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other(
                    "the worker applying the stream stopped (the server is stopping)",
                ))
            }
        }
    }
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

/// Copies the payload into `path`; returns the RDB's length once it is known good.
///
/// The payload is checked whole as it arrives, without touching the store: a thread parses
/// a copy of every chunk written to the file (every key, and the RDB's checksum at its end).
/// A payload that would fail to load is refused here, before the store is flushed, so the
/// replica keeps the data it had, and serves it, until a good one arrives; past this check a
/// load can fail only on the store's own errors. On its own thread, the parse overlaps the
/// transfer instead of adding to the sync's time.
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
    let (chunks, arrived) = std::sync::mpsc::sync_channel(CHECK_QUEUE_CHUNKS);
    let max_bulk = shared.proto_max_bulk_len();
    let checker = std::thread::Builder::new()
        .name("flin-sync-check".into())
        .spawn(move || check(Chunks::new(arrived), max_bulk))?;
    let mut out = Tee {
        file: std::io::BufWriter::with_capacity(READ_CHUNK_BYTES, file),
        chunks: Some(chunks),
    };
    let copied = wire::copy_payload(r, payload, &mut out, |n| {
        update(shared, generation, |l| l.sync_read_bytes = n);
    })
    .and_then(|len| out.file.flush().map(|()| len))
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("receiving the full sync into {}: {e}", path.display()),
        )
    });
    // The checker sees the end of the payload (or of a failed transfer) and returns.
    drop(out);
    let checked = checker
        .join()
        .unwrap_or_else(|_| Err("the thread checking it panicked".to_owned()));
    let len = copied?;
    let refused = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the full sync's payload is not a valid RDB ({why}); the store keeps its data \
                 and the link syncs again"
            ),
        )
    };
    match checked {
        Ok(rdb_len) if rdb_len == len => Ok(len),
        Ok(rdb_len) => Err(refused(format!(
            "the payload held {len} bytes, its RDB ended after {rdb_len}"
        ))),
        Err(why) => Err(refused(why)),
    }
}

/// Chunks of a full sync's payload queued for the check, at most: 4 MiB of 64 KiB reads.
const CHECK_QUEUE_CHUNKS: usize = 64;

/// Parses the RDB `r` reads to its end; returns its length, or why it would not load.
fn check(r: Chunks, max_bulk: u64) -> Result<u64, String> {
    let mut rdb = FileReader::new(r, max_bulk).map_err(|e| e.to_string())?;
    while !matches!(rdb.next_item().map_err(|e| e.to_string())?, Item::End) {}
    Ok(rdb.position())
}

/// The payload's file, and a copy of each chunk written to it for the check.
struct Tee {
    file: std::io::BufWriter<std::fs::File>,
    /// None once the check ended early (it failed, or its RDB ended before the payload did):
    /// its verdict is in, the transfer goes on to its end.
    chunks: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(chunks) = &self.chunks {
            if chunks.send(buf[..n].to_vec()).is_err() {
                self.chunks = None;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The chunks [`Tee`] sends, read as one stream; it ends when the sender is dropped.
struct Chunks {
    arrived: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Chunks {
    fn new(arrived: std::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        Chunks {
            arrived,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.arrived.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// String keys of one database a full sync loads together (see [`load`]).
#[derive(Default)]
struct LoadBatch {
    db: u32,
    /// Key, value and expiry (0: none).
    keys: Vec<(Vec<u8>, Vec<u8>, u64)>,
}

impl LoadBatch {
    /// Prefetches the keys' index slots, writes them, and empties the batch; returns how many
    /// it wrote.
    fn write(&mut self, shared: &Shared) -> io::Result<u64> {
        if self.keys.is_empty() {
            return Ok(0);
        }
        let db = shared.engine.db(self.db);
        let keys: Vec<&[u8]> = self.keys.iter().map(|(k, _, _)| k.as_slice()).collect();
        db.prefetch(&keys);
        for (key, value, at) in &self.keys {
            db.put(key, value, *at)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        let n = self.keys.len() as u64;
        self.keys.clear();
        Ok(n)
    }
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
    // Keys of one database, written together once their index slots were prefetched: their
    // cache misses overlap instead of coming one after another (most of a put's time here).
    let mut batch = LoadBatch::default();
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
                if batch.db != db || batch.keys.len() == flin_engine::PREFETCH_BATCH {
                    loaded += batch.write(shared)?;
                    batch.db = db;
                    if loaded % 4096 < flin_engine::PREFETCH_BATCH as u64 {
                        let read = rdb.position();
                        update(shared, generation, |l| l.sync_read_bytes = read);
                    }
                }
                let at = expire_at_ms.map_or(0, |t| t.max(1) as u64);
                batch.keys.push((key, value, at));
            }
            Item::Resize { keys, .. } => shared.engine.reserve_keys(keys),
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
    loaded += batch.write(shared)?;
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
