//! The registry of connected clients, across workers: what CLIENT LIST / CLIENT INFO show and
//! what CLIENT KILL acts on.
//!
//! A connection registers when admitted and leaves when its read loop ends. The hot path only
//! does relaxed stores into its own entry (last activity per read, last command per command,
//! buffer sizes per batch of requests and per write);
//! the registry's mutex is taken on connect, disconnect and by the CLIENT commands. A kill only
//! marks the entry: the owning worker's cron closes the connection within a tick, because
//! another thread can neither wake a connection's task nor safely touch its socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One connected client, as other threads may see it.
pub struct ClientEntry {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: i32,
    created_ms: u64,
    last_active_ms: AtomicU64,
    /// The last command run, as its index in the command table; [`NO_COMMAND`] before any.
    last_cmd: AtomicU16,
    name: Mutex<Option<Box<[u8]>>>,
    killed: AtomicBool,
    /// Commands queued in MULTI, plus one; 0 outside MULTI (CLIENT LIST's `flags=x`, `multi=`).
    multi: AtomicU64,
    /// The selected database, as SELECT last set it (CLIENT LIST's `db`).
    db: std::sync::atomic::AtomicU32,
    buffers: Buffers,
    /// The protocol version (2 or 3) HELLO last chose: CLIENT LIST's `resp`.
    resp: AtomicU8,
    /// Channels, patterns and shard channels subscribed to (CLIENT LIST's sub, psub, ssub).
    subscriptions: [AtomicU32; 3],
    /// What the connection is to replication (CLIENT LIST's `S` and `M` flags, and TYPE).
    role: AtomicU8,
}

/// What a client is to replication: CLIENT LIST and CLIENT KILL's TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A client (`normal`, or `pubsub` while subscribed).
    Client = 0,
    /// A replica this server feeds (flag `S`, `replica` / `slave`), after its SYNC / PSYNC.
    Replica = 1,
    /// This replica's link to its primary (flag `M`, `master`).
    Primary = 2,
}

/// `last_cmd` before the first command.
const NO_COMMAND: u16 = u16::MAX;

/// A connection's buffers, as its loops last published them (CLIENT LIST's buffer fields).
#[derive(Default)]
struct Buffers {
    /// Bytes of requests read and not yet run (a partial request, or a batch held back).
    query: AtomicU64,
    /// Capacity of the read buffer. It grows only as requests arrive and shrinks back once
    /// drained, so it is also its recent peak.
    read_capacity: AtomicU64,
    /// Memory the read loop holds besides the buffer (the arena arguments are parsed into).
    read_other: AtomicU64,
    /// Reply bytes not yet written to the socket: what `--client-output-limit` bounds.
    unsent: AtomicU64,
    /// Capacity of the write loop's buffers.
    write_capacity: AtomicU64,
}

/// What the read loop publishes after each batch.
pub struct ReadBuffers {
    pub query: usize,
    pub capacity: usize,
    pub other: usize,
}

impl std::fmt::Debug for ClientEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEntry")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ClientEntry {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr, fd: i32, now_ms: u64) -> Self {
        ClientEntry {
            id,
            addr,
            laddr,
            fd,
            created_ms: now_ms,
            last_active_ms: AtomicU64::new(now_ms),
            last_cmd: AtomicU16::new(NO_COMMAND),
            multi: AtomicU64::new(0),
            name: Mutex::new(None),
            killed: AtomicBool::new(false),
            db: Default::default(),
            buffers: Buffers::default(),
            resp: AtomicU8::new(2),
            subscriptions: Default::default(),
            role: AtomicU8::new(Role::Client as u8),
        }
    }

    pub fn set_role(&self, role: Role) {
        self.role.store(role as u8, Ordering::Relaxed);
    }

    pub fn role(&self) -> Role {
        match self.role.load(Ordering::Relaxed) {
            1 => Role::Replica,
            2 => Role::Primary,
            _ => Role::Client,
        }
    }

    /// CLIENT LIST / KILL's `TYPE <name>`: true when this client is of that type (`None`: not
    /// a type Redis knows).
    pub fn is_of_type(&self, name: &str) -> Option<bool> {
        let role = self.role();
        Some(match name {
            "normal" => role == Role::Client && !self.is_pubsub(),
            "pubsub" => role == Role::Client && self.is_pubsub(),
            "replica" | "slave" => role == Role::Replica,
            "master" => role == Role::Primary,
            _ => return None,
        })
    }

    /// The read loop's buffers, after a batch of requests.
    pub fn note_read_buffers(&self, b: ReadBuffers) {
        let r = &self.buffers;
        r.query.store(b.query as u64, Ordering::Relaxed);
        r.read_capacity.store(b.capacity as u64, Ordering::Relaxed);
        r.read_other.store(b.other as u64, Ordering::Relaxed);
    }

    /// Reply bytes not yet written, after a batch of requests queued replies or a write ended.
    pub fn note_unsent(&self, unsent: usize) {
        self.buffers.unsent.store(unsent as u64, Ordering::Relaxed);
    }

    /// Capacity of the buffers replies wait in, after a write ended.
    pub fn note_write_capacity(&self, capacity: usize) {
        self.buffers
            .write_capacity
            .store(capacity as u64, Ordering::Relaxed);
    }

    /// The client's subscriptions changed (SUBSCRIBE...).
    pub fn note_subscriptions(&self, channels: usize, patterns: usize, shard_channels: usize) {
        for (a, n) in self
            .subscriptions
            .iter()
            .zip([channels, patterns, shard_channels])
        {
            a.store(u32::try_from(n).unwrap_or(u32::MAX), Ordering::Relaxed);
        }
    }

    /// Subscribed to anything: CLIENT LIST's flag `P`, CLIENT KILL's and LIST's type pubsub.
    pub fn is_pubsub(&self) -> bool {
        self.subscriptions
            .iter()
            .any(|a| a.load(Ordering::Relaxed) > 0)
    }

    pub fn touch(&self, now_ms: u64) {
        self.last_active_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Milliseconds since the client last sent bytes (CLIENT LIST's idle, `--timeout`).
    pub fn idle_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_active_ms.load(Ordering::Relaxed))
    }

    /// Notes the command about to run, by its index in the command table (which holds fewer
    /// than `u16::MAX` commands: the table asserts it).
    pub fn note_command(&self, index: usize) {
        debug_assert!(index < usize::from(NO_COMMAND));
        self.last_cmd.store(index as u16, Ordering::Relaxed);
    }

    /// The index in the command table of the last command run, if any.
    pub fn last_command(&self) -> Option<usize> {
        let index = self.last_cmd.load(Ordering::Relaxed);
        (index != NO_COMMAND).then_some(usize::from(index))
    }

    /// Notes the protocol version HELLO chose, for CLIENT LIST.
    pub fn set_resp(&self, resp: u8) {
        self.resp.store(resp, Ordering::Relaxed);
    }

    pub fn name(&self) -> Option<Box<[u8]>> {
        lock(&self.name).clone()
    }

    pub fn set_name(&self, name: Option<Box<[u8]>>) {
        *lock(&self.name) = name;
    }

    /// Asks the owning worker to close the connection.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Publishes how many commands the client has queued in MULTI; `None` outside MULTI.
    pub fn set_multi(&self, queued: Option<usize>) {
        let v = queued.map_or(0, |n| n as u64 + 1);
        self.multi.store(v, Ordering::Relaxed);
    }

    /// One line of CLIENT LIST, in Redis 7.0's field order, without the newline. The buffer
    /// fields map onto flin's buffers: `qbuf` requests read and not yet run, `qbuf-free` the
    /// rest of the read buffer, `rbs` and `rbp` its size (see [`Buffers`]), `argv-mem` the
    /// parse arena, `omem` the unsent replies (all in one buffer, so `obl` and `oll` are 0),
    /// `tot-mem` all of these buffers' memory. `cmd` names the last command (see
    /// [`ClientEntry::last_command`]), `NULL` before any.
    pub fn describe(&self, now_ms: u64, cmd: &str, out: &mut Vec<u8>) {
        use std::io::Write;
        let age = now_ms.saturating_sub(self.created_ms) / 1000;
        let idle = self.idle_ms(now_ms) / 1000;
        let _ = write!(
            out,
            "id={} addr={} laddr={} fd={} name=",
            self.id, self.addr, self.laddr, self.fd
        );
        if let Some(name) = &*lock(&self.name) {
            out.extend_from_slice(name);
        }
        let b = &self.buffers;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (qbuf, rbs, argv_mem) = (load(&b.query), load(&b.read_capacity), load(&b.read_other));
        let (omem, write_capacity) = (load(&b.unsent), load(&b.write_capacity));
        let qbuf_free = rbs.saturating_sub(qbuf);
        let resp = self.resp.load(Ordering::Relaxed);
        let db = self.db.load(Ordering::Relaxed);
        let tot_mem = rbs + argv_mem + write_capacity;
        // Redis's order: P (pub/sub) before x (in MULTI); N when none.
        let multi_len = self.multi.load(Ordering::Relaxed);
        let mut flags = String::new();
        match self.role() {
            Role::Replica => flags.push('S'),
            Role::Primary => flags.push('M'),
            Role::Client => {}
        }
        if self.is_pubsub() {
            flags.push('P');
        }
        if multi_len > 0 {
            flags.push('x');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let multi = if multi_len == 0 {
            -1
        } else {
            multi_len as i64 - 1
        };
        let [sub, psub, ssub] = [0, 1, 2].map(|i| self.subscriptions[i].load(Ordering::Relaxed));
        let _ = write!(
            out,
            " age={age} idle={idle} flags={flags} db={db} sub={sub} psub={psub} ssub={ssub} \
             multi={multi} qbuf={qbuf} \
             qbuf-free={qbuf_free} argv-mem={argv_mem} multi-mem=0 rbs={rbs} rbp={rbs} obl=0 \
             oll=0 omem={omem} tot-mem={tot_mem} events=r cmd={cmd} user=default redir=-1 \
             resp={resp}"
        );
    }
}

impl ClientEntry {
    /// Notes the database the client selected (SELECT; RESET selects 0).
    pub fn set_db(&self, db: u32) {
        self.db.store(db, Ordering::Relaxed);
    }
}

/// Every connected client, by id.
#[derive(Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientEntry>>>,
}

impl Registry {
    pub fn add(&self, entry: Arc<ClientEntry>) {
        lock(&self.clients).insert(entry.id, entry);
    }

    pub fn remove(&self, id: u64) {
        lock(&self.clients).remove(&id);
    }

    /// The clients, in id order (the order of connection, as Redis lists them).
    pub fn all(&self) -> Vec<Arc<ClientEntry>> {
        lock(&self.clients).values().cloned().collect()
    }
}

/// Poisoning cannot leave these maps half-updated (every critical section is one call), so a
/// panic elsewhere must not take CLIENT LIST down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
