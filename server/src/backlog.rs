//! The primary side's shared state: the replication id and offset, the backlog of the
//! propagated command stream, and the replicas attached to it (their positions in the stream,
//! their acknowledged offsets). The commands feed it (`commands::propagate`), the replicas'
//! threads (`crate::replication::primary`) read it, INFO, ROLE and WAIT look at it.
//!
//! # One stream, in the engine's order
//! Redis applies and propagates each write on its one thread. flin's workers write
//! concurrently, so the order of the stream must be made: while a backlog exists, a write
//! command runs holding the stream's mutex ([`Primary::lock`]) from before it touches the
//! engine until its effect is in the stream, so two writes of one key reach the stream in the
//! order the engine applied them (and every write gets its offset at that moment: the
//! sequencer is the mutex). Before the first replica attaches there is no backlog, as in
//! Redis: writers pay one relaxed load ([`Primary::is_active`]) and nothing else.
//!
//! # The buffer
//! As Redis 7's shared replication buffer: one byte buffer from the oldest byte anyone needs
//! (the backlog's `repl-backlog-size` bytes, or an attached replica further behind) to
//! `master_repl_offset`. A replica's output is the bytes from its position on; one that
//! falls further behind than `client-output-buffer-limit replica` (hard, or soft for its
//! seconds) is cut off ([`Stream::check_limits`]) and full-syncs when it comes back.
//!
//! # Who sends
//! A replica's sender thread (`crate::replication::primary`) sends its RDB and whatever the
//! stream holds for it, blocking. While it sleeps, the worker that wrote sends the batch's
//! new bytes itself at the batch's end, without blocking ([`Primary::flush`]), and wakes it
//! only for what the socket did not take: one thread hop less between a write and a replica.
//! `sender_idle` and `flushing` keep the two from writing the same socket at once.

use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

/// Redis's default `repl-backlog-ttl`: an hour.
pub const REPL_BACKLOG_TTL_SECS_DEFAULT: u64 = 3600;
/// Redis's smallest `repl-backlog-size`.
pub const REPL_BACKLOG_SIZE_MIN: u64 = 16 * 1024;
/// Redis's `repl-ping-replica-period`: a PING goes down the stream this often.
pub const REPL_PING_PERIOD: Duration = Duration::from_secs(10);
/// A replid with no meaning (Redis's `master_replid2` before any promotion).
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// Where an attached replica stands (Redis's `slave_state`, as INFO names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Its snapshot is being taken and encoded.
    WaitBgsave,
    /// The RDB payload is being sent.
    SendBulk,
    /// Following the stream.
    Online,
}

impl ReplicaState {
    pub fn name(self) -> &'static str {
        match self {
            ReplicaState::WaitBgsave => "wait_bgsave",
            ReplicaState::SendBulk => "send_bulk",
            ReplicaState::Online => "online",
        }
    }
}

/// One attached replica.
#[derive(Debug)]
pub struct Replica {
    pub id: u64,
    pub addr: SocketAddr,
    /// The port it listens on (`REPLCONF listening-port`), which INFO and ROLE show.
    pub port: u16,
    pub state: ReplicaState,
    /// The offset of the next byte to send it.
    sent: i64,
    /// The offset it acknowledged (`REPLCONF ACK`), and when.
    pub ack: i64,
    pub ack_at: Instant,
    /// Since when its unsent bytes have been over the soft limit.
    soft_since: Option<Instant>,
    /// Why it was cut off; its threads end.
    pub dropped: Option<String>,
    /// Its socket, shut down to wake its threads when it is cut off.
    socket: Option<TcpStream>,
    /// Its socket for the workers' direct sends ([`Primary::flush`]): a clone of its own, so
    /// a cut-off that closes `socket` cannot close it under a send in flight.
    out: Option<std::sync::Arc<TcpStream>>,
    /// Its sender thread sleeps in [`Primary::wait_more`]: the socket is free for a worker.
    sender_idle: bool,
    /// A worker is sending it bytes from `sent` on, outside the lock: nobody else sends.
    flushing: bool,
}

impl Replica {
    /// `addr` as `ip:port` with the port it listens on, for the log.
    pub fn name(&self) -> String {
        format!("{}:{}", self.addr.ip(), self.port)
    }

    pub fn cut_off(&mut self, why: String) {
        if self.dropped.is_none() {
            tracing::warn!(replica = %self.name(), reason = %why, "replica disconnected");
            self.dropped = Some(why);
        }
        if let Some(s) = self.socket.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// What a replica asked for with SYNC or PSYNC, and what it said with REPLCONF before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRequest {
    /// PSYNC's replid and offset (the first byte it wants); `None` for `PSYNC ? -1` and SYNC.
    pub continue_from: Option<(String, i64)>,
    /// It sent PSYNC (not SYNC): `+FULLRESYNC` / `+CONTINUE` lines go first.
    pub psync: bool,
    /// `REPLCONF listening-port`, 0 when not given.
    pub port: u16,
    /// `REPLCONF capa psync2`: `+CONTINUE` carries the replid.
    pub psync2: bool,
}

/// The stream and the replicas, behind [`Primary`]'s mutex.
#[derive(Debug)]
pub struct Stream {
    pub replid: String,
    pub replid2: String,
    /// The offset up to which `replid2` is valid, plus one (Redis's `second_replid_offset`).
    pub second_offset: i64,
    /// `master_repl_offset`: the offset of the last byte of the stream.
    pub offset: i64,
    /// The bytes from offset `start` to `offset`.
    buf: VecDeque<u8>,
    start: i64,
    backlog_size: u64,
    active: bool,
    /// The database the stream last selected; `None`: the next write selects its own.
    db: Option<u32>,
    /// This server follows a primary: the stream is the primary's, copied, never our own.
    pub mirroring: bool,
    pub replicas: Vec<Replica>,
    next_id: u64,
    /// client-output-buffer-limit replica: hard, soft bytes, soft seconds.
    limits: [u64; 3],
    /// Senders asleep in `Primary::wait_more`: a write wakes them only when there are some.
    senders_waiting: usize,
    /// Redis's `repl-backlog-ttl`: a primary frees its backlog after this long without
    /// replicas (0: never), and writes stop paying for the stream.
    backlog_ttl_secs: u64,
    /// Since when no replica has been attached.
    alone_since: Option<Instant>,
}

impl Stream {
    /// True once the backlog exists (the first replica attached).
    pub fn active(&self) -> bool {
        self.active
    }

    pub fn backlog_size(&self) -> u64 {
        self.backlog_size
    }

    /// The backlog's first byte's offset (0 without a backlog).
    pub fn backlog_first(&self) -> i64 {
        if !self.active {
            return 0;
        }
        self.start
            .max(self.offset + 1 - self.backlog_size as i64)
            .min(self.offset + 1)
    }

    /// Bytes of stream the backlog holds.
    pub fn backlog_histlen(&self) -> i64 {
        if self.active {
            self.offset + 1 - self.backlog_first()
        } else {
            0
        }
    }

    /// Appends one command, preceded by SELECT when it is for another database than the
    /// stream's last (`db`: `None` for commands of no database: MULTI, EXEC, PING).
    pub fn feed(&mut self, db: Option<u32>, args: &[&[u8]]) {
        if !self.active {
            // No backlog, no replica: the stream starts when the first one attaches.
            return;
        }
        let before = self.buf.len();
        if let Some(db) = db.filter(|d| self.db != Some(*d)) {
            let n = db.to_string();
            push_resp(&mut self.buf, &[b"SELECT", n.as_bytes()]);
            self.db = Some(db);
        }
        push_resp(&mut self.buf, args);
        self.appended(self.buf.len() - before);
    }

    /// Appends bytes as they are (a replica copying its primary's stream).
    pub fn append(&mut self, bytes: &[u8]) {
        if !self.active {
            return;
        }
        self.buf.extend(bytes);
        self.appended(bytes.len());
    }

    /// `n` bytes were added to the buffer: the offset moves, limits and backlog follow.
    fn appended(&mut self, n: usize) {
        self.offset += n as i64;
        debug_assert_eq!(self.start + self.buf.len() as i64, self.offset + 1);
        if !self.replicas.is_empty() {
            self.check_limits();
        }
        self.trim();
    }

    /// Drops the bytes nobody needs: older than the backlog and sent to every replica.
    fn trim(&mut self) {
        let mut keep_from = self.offset + 1 - self.backlog_size as i64;
        for r in self.replicas.iter().filter(|r| r.dropped.is_none()) {
            keep_from = keep_from.min(r.sent);
        }
        if keep_from > self.start {
            let n = ((keep_from - self.start) as usize).min(self.buf.len());
            self.buf.drain(..n);
            self.start += n as i64;
        }
    }

    /// Cuts off the replicas whose unsent bytes pass the replica output limits.
    fn check_limits(&mut self) {
        let [hard, soft, soft_secs] = self.limits;
        let end = self.offset + 1;
        let now = Instant::now();
        for r in self.replicas.iter_mut().filter(|r| r.dropped.is_none()) {
            let unsent = (end - r.sent).max(0) as u64;
            let over_soft = soft > 0 && unsent > soft;
            if !over_soft {
                r.soft_since = None;
            }
            let why = if hard > 0 && unsent > hard {
                Some(format!(
                    "{unsent} unsent bytes, over the hard limit of {hard}"
                ))
            } else if over_soft {
                let since = *r.soft_since.get_or_insert(now);
                (now.duration_since(since).as_secs() >= soft_secs).then(|| {
                    format!(
                        "{unsent} unsent bytes, over the soft limit of {soft} for {soft_secs} s"
                    )
                })
            } else {
                None
            };
            if let Some(why) = why {
                r.cut_off(format!(
                    "{why} (client-output-buffer-limit replica): it reads the stream slower \
                     than the primary writes; it will reconnect and full-sync; raise the limit \
                     with CONFIG SET client-output-buffer-limit if that is expected"
                ));
            }
        }
    }

    /// Creates the backlog when it does not exist yet, starting at the next byte.
    pub fn activate(&mut self, flag: &AtomicBool) {
        if !self.active {
            self.active = true;
            self.buf.clear();
            self.start = self.offset + 1;
            self.db = None;
            flag.store(true, Ordering::Release);
        }
    }

    /// True when a replica that has `replid`'s stream up to `from - 1` can go on from the
    /// backlog (Redis's `masterTryPartialResynchronization`).
    pub fn can_continue(&self, replid: &str, from: i64) -> bool {
        let ours = replid == self.replid
            || (replid == self.replid2 && replid != NO_REPLID && from <= self.second_offset);
        ours && self.active
            && !self.mirroring
            && from >= self.backlog_first()
            && from <= self.offset + 1
    }

    /// Attaches a replica that is sent the stream from offset `from` on; its id.
    pub fn attach(
        &mut self,
        addr: SocketAddr,
        port: u16,
        from: i64,
        state: ReplicaState,
        socket: Option<TcpStream>,
    ) -> u64 {
        debug_assert!(from >= self.start && from <= self.offset + 1);
        self.next_id += 1;
        self.alone_since = None;
        let out = socket
            .as_ref()
            .and_then(|s| s.try_clone().ok())
            .map(std::sync::Arc::new);
        self.replicas.push(Replica {
            id: self.next_id,
            addr,
            port,
            state,
            sent: from,
            ack: 0,
            ack_at: Instant::now(),
            soft_since: None,
            dropped: None,
            socket,
            out,
            sender_idle: false,
            flushing: false,
        });
        self.next_id
    }

    pub fn replica(&mut self, id: u64) -> Option<&mut Replica> {
        self.replicas.iter_mut().find(|r| r.id == id)
    }

    /// Forgets a replica whose threads ended.
    pub fn detach(&mut self, id: u64) {
        self.replicas.retain(|r| r.id != id);
        if self.replicas.is_empty() {
            self.alone_since = Some(Instant::now());
        }
        self.trim();
    }

    /// Frees the backlog of a primary that has had no replica for `repl-backlog-ttl`, as
    /// Redis does: with a new replication id (no replica can continue a stream that is not
    /// kept) and no second one. True when it did. Writes that see the flag still set find the
    /// stream inactive under its lock and send nothing; the next replica makes a new backlog
    /// with every worker held (`replication::snapshot`).
    pub fn free_if_unused(&mut self, flag: &AtomicBool) -> bool {
        let unused = self.active
            && !self.mirroring
            && self.replicas.is_empty()
            && self.backlog_ttl_secs > 0
            && self
                .alone_since
                .is_some_and(|t| t.elapsed().as_secs() >= self.backlog_ttl_secs);
        if !unused {
            return false;
        }
        self.active = false;
        flag.store(false, Ordering::Release);
        self.buf = VecDeque::new();
        self.start = self.offset + 1;
        self.replid = new_replid();
        self.replid2 = NO_REPLID.to_owned();
        self.second_offset = -1;
        tracing::info!(
            ttl_secs = self.backlog_ttl_secs,
            "replication backlog freed: no replica for repl-backlog-ttl"
        );
        true
    }

    pub fn backlog_ttl_secs(&self) -> u64 {
        self.backlog_ttl_secs
    }

    pub fn set_backlog_ttl_secs(&mut self, secs: u64) {
        self.backlog_ttl_secs = secs;
    }

    /// Copies up to `max` bytes of the stream the replica has not been sent into `out`, and
    /// counts them sent. `None` once it was cut off.
    pub fn take_for(&mut self, id: u64, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        let (start, end) = (self.start, self.offset + 1);
        let r = self.replicas.iter_mut().find(|r| r.id == id)?;
        if r.dropped.is_some() {
            return None;
        }
        if r.flushing {
            // A worker is sending; it wakes the sender if it leaves bytes behind.
            return Some(0);
        }
        let from = (r.sent - start) as usize;
        let n = ((end - r.sent) as usize).min(max);
        out.extend(self.buf.range(from..from + n));
        r.sent += n as i64;
        Some(n)
    }

    /// Cuts off every replica (this server now follows a primary, or stops).
    pub fn drop_replicas(&mut self, why: &str) {
        for r in &mut self.replicas {
            r.cut_off(why.to_owned());
        }
    }

    /// Replicas online whose acknowledged offset is at least `offset`.
    pub fn acked(&self, offset: i64) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.dropped.is_none() && r.state == ReplicaState::Online && r.ack >= offset)
            .count()
    }

    /// A new replication id, the old one kept as the second with its offset (Redis's
    /// `shiftReplicationId`, on `REPLICAOF NO ONE`): replicas of the old primary that had its
    /// stream up to here can go on with us.
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, new_replid());
        self.second_offset = self.offset + 1;
        self.mirroring = false;
        self.db = None;
        tracing::info!(replid = %self.replid, replid2 = %self.replid2,
                       second_offset = self.second_offset, "new replication id");
    }

    /// A replica's full sync from its primary: our stream is now a copy of its, from
    /// `offset` on, under its `replid`.
    pub fn mirror(&mut self, replid: &str, offset: i64, flag: &AtomicBool) {
        self.replid = replid.to_owned();
        self.replid2 = NO_REPLID.to_owned();
        self.second_offset = -1;
        self.offset = offset;
        self.active = false;
        self.activate(flag);
        self.mirroring = true;
    }

    /// Takes up the stream a clean shutdown recorded (`crate::repl_resume`): `replid` up to
    /// `offset`, with a backlog that starts empty after it, so replicas that had all of it
    /// continue. A replica's recorded stream is its primary's: taken up as a promotion would
    /// (a new id, the recorded one valid up to `offset`).
    pub fn resume(&mut self, replid: &str, offset: i64, promoted: bool, flag: &AtomicBool) {
        self.mirror(replid, offset, flag);
        self.mirroring = false;
        self.alone_since = Some(Instant::now());
        if promoted {
            self.shift_replid();
        }
    }

    /// A replica's partial resync under a new id (its primary was promoted): the old id is
    /// valid up to here, as Redis's replica does.
    pub fn mirror_continue(&mut self, replid: &str) {
        if replid != self.replid {
            self.replid2 = std::mem::replace(&mut self.replid, replid.to_owned());
            self.second_offset = self.offset + 1;
        }
        self.mirroring = true;
    }

    /// The next command selects its database (a replica starts its stream here).
    pub fn forget_db(&mut self) {
        self.db = None;
    }

    pub fn set_backlog_size(&mut self, bytes: u64) {
        self.backlog_size = bytes.max(REPL_BACKLOG_SIZE_MIN);
        if self.active {
            self.trim();
        }
    }

    pub fn set_limits(&mut self, limits: [u64; 3]) {
        self.limits = limits;
    }
}

/// The flag writers read, alone on its cache lines.
#[repr(align(128))]
struct Flag(AtomicBool);

/// The primary side's state (one per server).
pub struct Primary {
    active: Flag,
    stream: Mutex<Stream>,
    /// Replicas' sender threads wait here for bytes.
    more: Condvar,
    /// WAIT's clients, woken when an ACK arrives.
    ack_wakers: Mutex<Vec<Waker>>,
    /// Threads waiting for an ACK (with `ack_wakers`' lock): the shutdown's wait for lagging
    /// replicas.
    acked: Condvar,
    /// Keys the engine's sweep removed whose DEL is not in the stream yet: queued under the
    /// key's lock (`Engine::on_expiring`), sent by the next write before its own effect, or
    /// by the sweep's report just after.
    owed: Mutex<Vec<(u32, Box<[u8]>)>>,
    owed_any: AtomicBool,
    /// Full syncs served, partial resyncs accepted and refused (INFO stats' `sync_full`,
    /// `sync_partial_ok`, `sync_partial_err`).
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// Replica links and full syncs running now (`replication::primary` bounds both).
    pub links: AtomicUsize,
    pub full_syncs: AtomicUsize,
}

/// The locked stream; dropping it wakes the replicas' senders when bytes were added.
pub struct Held<'a> {
    stream: MutexGuard<'a, Stream>,
    primary: &'a Primary,
    offset_before: i64,
}

impl std::ops::Deref for Held<'_> {
    type Target = Stream;
    fn deref(&self) -> &Stream {
        &self.stream
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // A futex wake only when a sender sleeps: not once per write; inside a worker's
        // batch, once at its end (see `SenderWakes`).
        let added = self.stream.offset - self.offset_before;
        if added > 0 && self.stream.senders_waiting > 0 && !WAKES.with(|w| w.defer(added)) {
            self.primary.more.notify_all();
        }
    }
}

/// Stream bytes a batch may add before its replicas' senders are woken anyway.
const DEFERRED_WAKE_BYTES_MAX: i64 = 64 * 1024;

/// A worker's deferred wake of the replicas' senders, while it runs a batch of requests.
#[derive(Default)]
struct Deferred {
    /// In a batch: writes leave the wake to its end.
    on: std::cell::Cell<bool>,
    /// Bytes added to the stream since the last wake, while senders sleep.
    owed: std::cell::Cell<i64>,
}

impl Deferred {
    /// True when the wake for `added` bytes is left to the batch's end.
    fn defer(&self, added: i64) -> bool {
        if !self.on.get() {
            return false;
        }
        let owed = self.owed.get() + added;
        if owed > DEFERRED_WAKE_BYTES_MAX {
            self.owed.set(0);
            return false;
        }
        self.owed.set(owed);
        true
    }
}

thread_local! {
    static WAKES: Deferred = Deferred::default();
    /// The bytes a worker's [`Primary::flush`] copies out of the stream to send.
    static FLUSH_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Sends what `socket` takes of `bytes` now; 0 when it takes nothing or failed (the sender
/// finds the failure on its own write).
fn send_now(socket: &TcpStream, bytes: &[u8]) -> usize {
    use std::os::fd::AsRawFd;
    // SAFETY: `socket` is open for the call (held by the Arc); `bytes` is a valid slice.
    let n = unsafe {
        libc::send(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).unwrap_or(0)
}

/// Held by a worker over a batch of requests (one read's worth of a client's pipeline): the
/// writes in it reach the replicas whose senders sleep once, when it ends, sent by the worker
/// itself ([`Primary::flush`]), instead of a sender woken by each write. A sender woken by
/// every write of a burst sends it a command at a time, and the replica wakes as often:
/// thousands of context switches a second on both servers, which on a loaded machine cost
/// more latency than the batch's end adds (Redis, too, writes to its replicas once per turn
/// of its event loop, from that loop).
pub struct SenderWakes<'a> {
    primary: &'a Primary,
}

impl Drop for SenderWakes<'_> {
    fn drop(&mut self) {
        let owed = WAKES.with(|w| {
            w.on.set(false);
            w.owed.replace(0)
        });
        if owed > 0 {
            self.primary.flush();
        }
    }
}

/// Most stream bytes a worker sends a replica by itself at the end of a batch; the sender
/// thread sends the rest.
const FLUSH_BYTES_MAX: usize = 256 * 1024;

impl Primary {
    pub fn new(backlog_size: u64, limits: [u64; 3]) -> Primary {
        Primary {
            active: Flag(AtomicBool::new(false)),
            stream: Mutex::new(Stream {
                replid: new_replid(),
                replid2: NO_REPLID.to_owned(),
                second_offset: -1,
                offset: 0,
                buf: VecDeque::new(),
                start: 1,
                backlog_size: backlog_size.max(REPL_BACKLOG_SIZE_MIN),
                active: false,
                db: None,
                mirroring: false,
                replicas: Vec::new(),
                next_id: 0,
                limits,
                senders_waiting: 0,
                backlog_ttl_secs: REPL_BACKLOG_TTL_SECS_DEFAULT,
                alone_since: None,
            }),
            more: Condvar::new(),
            ack_wakers: Mutex::new(Vec::new()),
            acked: Condvar::new(),
            owed: Mutex::new(Vec::new()),
            owed_any: AtomicBool::new(false),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            links: AtomicUsize::new(0),
            full_syncs: AtomicUsize::new(0),
        }
    }

    /// True once a backlog exists: writes are propagated. One relaxed load.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.0.load(Ordering::Relaxed)
    }

    /// The flag [`Stream::activate`] sets.
    pub fn flag(&self) -> &AtomicBool {
        &self.active.0
    }

    pub fn lock(&self) -> Held<'_> {
        let stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        let offset_before = stream.offset;
        Held {
            stream,
            primary: self,
            offset_before,
        }
    }

    /// Defers the senders' wakes of this thread's writes until the result is dropped.
    pub fn batch(&self) -> SenderWakes<'_> {
        WAKES.with(|w| w.on.set(true));
        SenderWakes { primary: self }
    }

    /// Sends the new stream bytes to the online replicas whose senders sleep, from this
    /// thread, without blocking (`MSG_DONTWAIT`), as Redis's event loop writes to its
    /// replicas: the bytes leave without waiting for a sender thread to be woken and
    /// scheduled, which on a busy machine is most of a replica's lag. What the socket does
    /// not take at once is left to the sender, woken for it.
    pub fn flush(&self) {
        FLUSH_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            let mut sends = Vec::new();
            {
                let mut held = self.stream.lock().unwrap_or_else(|e| e.into_inner());
                let s = &mut *held;
                let (start, end) = (s.start, s.offset + 1);
                for r in s.replicas.iter_mut() {
                    let ready = r.dropped.is_none()
                        && r.state == ReplicaState::Online
                        && r.sender_idle
                        && !r.flushing
                        && r.sent < end;
                    let Some(out) = r.out.clone().filter(|_| ready) else {
                        continue;
                    };
                    let from = buf.len();
                    let n = ((end - r.sent) as usize).min(FLUSH_BYTES_MAX);
                    let at = (r.sent - start) as usize;
                    buf.extend(s.buf.range(at..at + n));
                    r.flushing = true;
                    sends.push((r.id, out, from..from + n));
                }
            }
            if sends.is_empty() {
                return;
            }
            let sent: Vec<(u64, usize)> = sends
                .iter()
                .map(|(id, out, range)| (*id, send_now(out, &buf[range.clone()])))
                .collect();
            buf.clear();
            let mut rest = false;
            let mut s = self.stream.lock().unwrap_or_else(|e| e.into_inner());
            let end = s.offset + 1;
            for (id, n) in sent {
                if let Some(r) = s.replica(id) {
                    r.sent += n as i64;
                    r.flushing = false;
                    rest |= r.sent < end;
                }
            }
            s.trim();
            drop(s);
            if rest {
                self.more.notify_all();
            }
        });
    }

    /// A sender's wait, at most `timeout`, until the stream holds bytes replica `id` was not
    /// sent, or it was cut off.
    pub fn wait_more(&self, id: u64, timeout: Duration) {
        // Nothing to send: sent it all, or a worker is sending.
        let nothing_new = |s: &mut Stream| {
            let end = s.offset + 1;
            s.replicas
                .iter()
                .find(|r| r.id == id)
                .is_some_and(|r| r.dropped.is_none() && (r.sent >= end || r.flushing))
        };
        let idle = |s: &mut Stream, idle: bool| {
            if let Some(r) = s.replica(id) {
                r.sender_idle = idle;
            }
        };
        let mut stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        if !nothing_new(&mut stream) {
            return;
        }
        stream.senders_waiting += 1;
        idle(&mut stream, true);
        let (mut stream, _) = self
            .more
            .wait_timeout_while(stream, timeout, nothing_new)
            .unwrap_or_else(|e| e.into_inner());
        idle(&mut stream, false);
        stream.senders_waiting -= 1;
    }

    /// Wakes every sender (a replica was cut off, the server stops).
    pub fn wake_senders(&self) {
        self.more.notify_all();
    }

    /// The engine's sweep removed `key` (called under its lock: takes no other lock than the
    /// queue's). Queued only while a backlog exists.
    pub fn owe_del(&self, db: u32, key: &[u8]) {
        if self.is_active() {
            let mut owed = self.owed.lock().unwrap_or_else(|e| e.into_inner());
            owed.push((db, key.into()));
            self.owed_any.store(true, Ordering::Release);
        }
    }

    /// Takes the queued DELs (one relaxed load when there are none).
    pub fn take_owed(&self) -> Vec<(u32, Box<[u8]>)> {
        if !self.owed_any.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut owed = self.owed.lock().unwrap_or_else(|e| e.into_inner());
        self.owed_any.store(false, Ordering::Release);
        std::mem::take(&mut *owed)
    }

    /// Records a replica's `REPLCONF ACK` and wakes WAIT's clients.
    pub fn ack(&self, id: u64, offset: i64) {
        if let Some(r) = self.lock().replica(id) {
            r.ack = r.ack.max(offset);
            r.ack_at = Instant::now();
        }
        self.wake_ack_waiters();
    }

    /// Wakes WAIT's clients and [`Primary::wait_ack`]'s thread (an ACK, or a reason to look
    /// again).
    pub fn wake_ack_waiters(&self) {
        let mut wakers = self.ack_wakers.lock().unwrap_or_else(|e| e.into_inner());
        let wakers = std::mem::take(&mut *wakers);
        self.acked.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Blocks the calling thread until the next ACK (or [`Primary::wake_ack_waiters`]), for
    /// at most `timeout`: the caller looks at what it waits for again either way.
    pub fn wait_ack(&self, timeout: Duration) {
        let wakers = self.ack_wakers.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.acked.wait_timeout(wakers, timeout);
    }

    /// Registers a WAIT client's waker, woken at the next ACK.
    pub fn on_ack(&self, waker: &Waker) {
        let mut wakers = self.ack_wakers.lock().unwrap_or_else(|e| e.into_inner());
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }
}

/// A new replication id: 40 random hex digits.
pub fn new_replid() -> String {
    use std::fmt::Write as _;
    use std::hash::{BuildHasher, Hasher};
    let mut id = String::with_capacity(48);
    for i in 0..3u64 {
        // RandomState is seeded from the OS's randomness, differently for each instance.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(Instant::now().elapsed().as_nanos());
        let _ = write!(id, "{:016x}", h.finish());
    }
    id.truncate(40);
    id
}

/// Appends a command as RESP (an array of bulk strings) to `buf`.
fn push_resp(buf: &mut VecDeque<u8>, args: &[&[u8]]) {
    let header = |mark: u8, n: usize, buf: &mut VecDeque<u8>| {
        let mut digits = [0u8; 20];
        buf.push_back(mark);
        buf.extend(crate::protocol::reply::format_u64(&mut digits, n as u64));
        buf.extend(b"\r\n");
    };
    header(b'*', args.len(), buf);
    for a in args {
        header(b'$', a.len(), buf);
        buf.extend(*a);
        buf.extend(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(backlog: u64, limits: [u64; 3]) -> (Primary, AtomicBool) {
        (Primary::new(backlog, limits), AtomicBool::new(false))
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn a_batch_defers_the_senders_wake_up_to_a_bound() {
        let d = Deferred::default();
        assert!(!d.defer(100), "outside a batch: wake now");
        d.on.set(true);
        assert!(d.defer(DEFERRED_WAKE_BYTES_MAX - 1));
        assert!(d.defer(1), "up to the bound");
        assert!(!d.defer(1), "past it: wake now");
        assert_eq!(d.owed.get(), 0, "and start counting again");
        assert!(d.defer(1));
    }

    #[test]
    fn a_batch_sends_to_replicas_whose_senders_sleep() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, addr) = listener.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let p = Primary::new(REPL_BACKLOG_SIZE_MIN, [0; 3]);
        let id = {
            let mut s = p.lock();
            s.activate(p.flag());
            let from = s.offset + 1;
            s.attach(addr, 6380, from, ReplicaState::Online, Some(socket))
        };
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        // As if its sender waited for bytes (`sender_idle` says whether it sleeps).
        p.lock().senders_waiting = 1;
        let write = || {
            let _batch = p.batch();
            p.lock().feed(None, &[b"SET", b"k", b"v"]);
        };
        write();
        assert_eq!(
            p.lock().replica(id).unwrap().sent,
            1,
            "its sender is busy: left to it"
        );
        p.lock().replica(id).unwrap().sender_idle = true;
        write();
        let mut got = vec![0u8; 2 * set.len()];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(got, [&set[..], &set[..]].concat(), "both, in order");
        let mut s = p.lock();
        let end = s.offset + 1;
        let r = s.replica(id).unwrap();
        assert_eq!((r.sent, r.flushing), (end, false));
    }

    #[test]
    fn nothing_is_kept_before_the_first_replica() {
        let (p, flag) = stream(REPL_BACKLOG_SIZE_MIN, [0; 3]);
        let mut s = p.lock();
        s.feed(Some(0), &[b"SET", b"k", b"v"]);
        assert_eq!(
            (s.offset, s.backlog_histlen(), s.backlog_first()),
            (0, 0, 0)
        );
        s.activate(&flag);
        assert!(flag.load(Ordering::Relaxed));
        s.feed(Some(2), &[b"SET", b"k", b"v"]);
        let select = b"*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n".len() as i64;
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n".len() as i64;
        assert_eq!(s.offset, select + set, "SELECT first, once");
        s.feed(Some(2), &[b"SET", b"k", b"v"]);
        assert_eq!(s.offset, select + 2 * set);
        assert_eq!((s.backlog_first(), s.backlog_histlen()), (1, s.offset));
    }

    #[test]
    fn the_backlog_keeps_its_size_and_decides_continue() {
        let (p, flag) = stream(REPL_BACKLOG_SIZE_MIN, [0; 3]);
        let mut s = p.lock();
        s.activate(&flag);
        let value = vec![b'x'; 1000];
        for _ in 0..40 {
            s.feed(None, &[b"SET", b"k", &value]);
        }
        assert_eq!(s.backlog_histlen(), REPL_BACKLOG_SIZE_MIN as i64);
        let first = s.backlog_first();
        let id = s.replid.clone();
        assert!(s.can_continue(&id, first));
        assert!(s.can_continue(&id, s.offset + 1));
        assert!(!s.can_continue(&id, first - 1), "the backlog lost it");
        assert!(!s.can_continue(&id, s.offset + 2), "ahead of the stream");
        assert!(!s.can_continue(NO_REPLID, first));
        s.shift_replid();
        assert!(
            s.can_continue(&id, s.offset + 1),
            "the old id, up to the shift"
        );
        s.feed(None, &[b"PING"]);
        assert!(
            !s.can_continue(&id, s.offset + 1),
            "the old id ends at the shift"
        );
        let new = s.replid.clone();
        assert!(s.can_continue(&new, s.offset + 1));
    }

    #[test]
    fn a_replica_keeps_its_bytes_until_sent_or_cut_off() {
        let (p, flag) = stream(REPL_BACKLOG_SIZE_MIN, [64 * 1024, 0, 0]);
        let mut s = p.lock();
        s.activate(&flag);
        let from = s.offset + 1;
        let id = s.attach(addr(), 6380, from, ReplicaState::Online, None);
        let value = vec![b'y'; 1000];
        for _ in 0..30 {
            s.feed(None, &[b"SET", b"k", &value]);
        }
        // Past the backlog, but the replica has not been sent them: kept.
        let mut out = Vec::new();
        let n = s.take_for(id, usize::MAX, &mut out).unwrap();
        assert_eq!(n as i64, s.offset);
        assert!(out.starts_with(b"*3\r\n$3\r\nSET\r\n"));
        assert_eq!(s.take_for(id, usize::MAX, &mut out), Some(0));
        for _ in 0..70 {
            s.feed(None, &[b"SET", b"k", &value]);
        }
        let why = s.replica(id).and_then(|r| r.dropped.clone());
        assert!(why.is_some_and(|w| w.contains("hard limit")), "cut off");
        assert_eq!(s.take_for(id, 10, &mut out), None);
        s.detach(id);
        assert_eq!(s.backlog_histlen(), REPL_BACKLOG_SIZE_MIN as i64);
    }
}
