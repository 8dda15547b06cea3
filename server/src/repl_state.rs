//! What the replica's link thread (`crate::replication`) and the commands share: which primary
//! to follow (set by `--replicaof`, REPLICAOF / SLAVEOF, cleared by `REPLICAOF NO ONE`), and
//! the link's state as INFO replication and ROLE show it.
//!
//! The role survives a restart: [`save_role`] keeps the primary in `<dir>/REPLICAOF` (one line,
//! `host port`; no file: a primary), and the server reads it back at start when `--replicaof`
//! is not given (flin has no config file for REPLICAOF to rewrite, as Redis's CONFIG REWRITE
//! does).
//!
//! Client commands pay one relaxed load of [`ReplicaLink::is_replica`], and only for commands
//! that write (the read-only check). Everything else sits behind one mutex that the link thread
//! takes a few times per batch of the primary's stream and INFO / ROLE take once.

use std::io::{self, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Where the replica's link stands: Redis's `repl_state`, as ROLE names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not following anyone.
    None,
    /// About to connect (after REPLICAOF, or after the link dropped).
    Connect,
    /// The TCP connection is being made.
    Connecting,
    /// PING, AUTH, REPLCONF, PSYNC.
    Handshake,
    /// Receiving and loading the full-sync payload.
    Sync,
    /// Applying the primary's command stream.
    Connected,
}

impl LinkState {
    /// The name ROLE gives it.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::None => "none",
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// The primary a replica follows and its link's state.
#[derive(Debug)]
pub struct Link {
    /// The primary's host and port; `None` for a primary.
    pub primary: Option<(String, u16)>,
    /// Bumped by every change of `primary`: the link thread drops a link of an older one.
    pub generation: u64,
    pub state: LinkState,
    /// The primary's replication id and the offset applied so far (`slave_repl_offset`);
    /// `None` until the first full sync.
    pub replid: Option<String>,
    pub offset: i64,
    /// The database the stream had selected at `offset` (its last SELECT): a link that
    /// continues the stream starts there, as Redis's cached primary client does.
    pub db: u32,
    /// Bytes of the stream read so far (`slave_read_repl_offset`).
    pub read_offset: i64,
    /// The last bytes from the primary.
    pub last_io: Option<Instant>,
    /// When the link went down (`master_link_down_since_seconds`).
    pub down_since: Option<Instant>,
    /// The full-sync payload: its declared size (0 for diskless) and the bytes read.
    pub sync_total_bytes: u64,
    pub sync_read_bytes: u64,
    /// Keys of types flin does not store, skipped in full syncs since start.
    pub skipped_keys: u64,
    /// The server is stopping: the link thread ends.
    pub stopping: bool,
    /// Full syncs completed since start.
    pub full_syncs: u64,
    /// Partial resyncs (`+CONTINUE`) since start.
    pub partial_syncs: u64,
}

/// The flag writers read, alone on its cache lines: the link thread's locking of the mutex
/// next to it does not bounce the line the workers read.
#[repr(align(128))]
struct Flag(AtomicBool);

/// The replica side's shared state (one per server).
pub struct ReplicaLink {
    replica: Flag,
    /// A full sync is loading its payload: commands without Redis's `loading` flag get
    /// `-LOADING` (one relaxed load per command).
    loading: Flag,
    link: Mutex<Link>,
    changed: Condvar,
    /// `--masterauth` and `--masteruser` (CONFIG SET changes them): the password the link
    /// sends with AUTH, and the user it names with it.
    credentials: Mutex<(Option<String>, Option<String>)>,
    /// Tests: a full sync's load waits while this holds (see `ServerHandle::hold_replica_load`).
    load_held: Mutex<bool>,
    load_released: Condvar,
}

impl ReplicaLink {
    /// The password the link sends with AUTH (`masterauth`), and the user (`masteruser`).
    pub fn credentials(&self) -> (Option<String>, Option<String>) {
        self.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// CONFIG SET masterauth: used from the next connection to the primary on. Empty = none.
    pub fn set_masterauth(&self, pass: Option<String>) {
        self.credentials.lock().unwrap_or_else(|e| e.into_inner()).0 = pass;
    }

    /// CONFIG SET masteruser: used from the next connection to the primary on. Empty = none.
    pub fn set_masteruser(&self, user: Option<String>) {
        self.credentials.lock().unwrap_or_else(|e| e.into_inner()).1 = user;
    }

    /// Following `primary` from the start (`--replicaof`), or nobody.
    pub fn new(
        primary: Option<(String, u16)>,
        masterauth: Option<String>,
        masteruser: Option<String>,
    ) -> ReplicaLink {
        let state = if primary.is_some() {
            LinkState::Connect
        } else {
            LinkState::None
        };
        ReplicaLink {
            replica: Flag(AtomicBool::new(primary.is_some())),
            loading: Flag(AtomicBool::new(false)),
            link: Mutex::new(Link {
                primary,
                generation: 0,
                state,
                replid: None,
                offset: 0,
                db: 0,
                read_offset: 0,
                last_io: None,
                down_since: None,
                sync_total_bytes: 0,
                sync_read_bytes: 0,
                skipped_keys: 0,
                stopping: false,
                full_syncs: 0,
                partial_syncs: 0,
            }),
            changed: Condvar::new(),
            credentials: Mutex::new((masterauth, masteruser)),
            load_held: Mutex::new(false),
            load_released: Condvar::new(),
        }
    }

    /// True while this server follows a primary: clients' writes are refused. One relaxed load.
    #[inline]
    pub fn is_replica(&self) -> bool {
        self.replica.0.load(Ordering::Relaxed)
    }

    /// True while a full sync loads its payload into the store.
    pub fn is_loading(&self) -> bool {
        self.loading.0.load(Ordering::Relaxed)
    }

    /// Tests: while `held`, a full sync's load waits before it flushes the store (and
    /// clients get `-LOADING`); releasing lets it go.
    pub fn hold_load(&self, held: bool) {
        *self.load_held.lock().unwrap_or_else(|p| p.into_inner()) = held;
        self.load_released.notify_all();
    }

    /// Waits while [`ReplicaLink::hold_load`] holds, or until the server stops.
    pub fn wait_load_released(&self) {
        let mut held = self.load_held.lock().unwrap_or_else(|p| p.into_inner());
        while *held && !self.lock().stopping {
            held = self
                .load_released
                .wait_timeout(held, std::time::Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Marks the load of a full sync's payload as begun or over.
    pub fn set_loading(&self, on: bool) {
        self.loading.0.store(on, Ordering::Relaxed);
    }

    /// The link's state, locked.
    pub fn lock(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// REPLICAOF: follow `primary` (`None`: NO ONE). False when it already follows that one.
    pub fn set_primary(&self, primary: Option<(String, u16)>) -> bool {
        let mut link = self.lock();
        if link.primary == primary {
            return false;
        }
        self.replica.0.store(primary.is_some(), Ordering::Relaxed);
        link.state = if primary.is_some() {
            LinkState::Connect
        } else {
            LinkState::None
        };
        if primary.is_none() {
            // A primary takes writes of its own: a later link cannot continue the old stream.
            link.replid = None;
            link.offset = 0;
            link.db = 0;
            link.read_offset = 0;
        }
        link.primary = primary;
        link.generation += 1;
        link.down_since = None;
        drop(link);
        self.changed.notify_all();
        true
    }

    /// The link thread's wait for a primary to follow, at most `timeout`: the primary and the
    /// generation it was set in.
    pub fn wait_primary(&self, timeout: Duration) -> Option<((String, u16), u64)> {
        let link = self.lock();
        let (link, _) = self
            .changed
            .wait_timeout_while(link, timeout, |l| l.primary.is_none() && !l.stopping)
            .unwrap_or_else(|e| e.into_inner());
        if link.stopping {
            return None;
        }
        link.primary.clone().map(|p| (p, link.generation))
    }

    /// Tells the link thread the server stops, and wakes it.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.changed.notify_all();
    }

    /// True while `generation` is still the current primary's.
    pub fn current(&self, generation: u64) -> bool {
        self.lock().generation == generation
    }
}

/// The file in the data directory that names the primary this server follows.
pub const ROLE_FILE: &str = "REPLICAOF";

/// The primary `<dir>/REPLICAOF` names: `None` when there is no such file (a primary).
///
/// # Errors
/// The file cannot be read, or does not hold `host port`: the message names the file and how
/// to fix it.
pub fn load_role(dir: &Path) -> Result<Option<(String, u16)>, String> {
    let path = dir.join(ROLE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut words = text.split_whitespace();
    match (
        words.next(),
        words.next().map(str::parse::<u16>),
        words.next(),
    ) {
        (Some(host), Some(Ok(port)), None) if port != 0 => Ok(Some((host.to_owned(), port))),
        _ => Err(format!(
            "{} should hold the primary as `host port`, it holds {text:?}: fix it, remove it \
             (this server then starts as a primary) or start with --replicaof",
            path.display()
        )),
    }
}

/// Records that this server follows `primary` (`None`: it is a primary) in `<dir>/REPLICAOF`,
/// durably: a temporary file synced and renamed over it, then the directory synced.
///
/// # Errors
/// The write, sync, rename or removal failed.
pub fn save_role(dir: &Path, primary: Option<&(String, u16)>) -> io::Result<()> {
    let path = dir.join(ROLE_FILE);
    match primary {
        Some((host, port)) => {
            let tmp = dir.join(format!("{ROLE_FILE}.tmp"));
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{host} {port}")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        },
    }
    std::fs::File::open(dir)?.sync_all()
}

/// A link in sync, handed by the link thread to worker 0.
pub struct Handover {
    /// The connected socket (blocking; made non-blocking for the runtime).
    pub stream: std::net::TcpStream,
    /// Bytes the handshake read past the answer to PSYNC (or past the payload): the
    /// stream's first bytes.
    pub buffered: Vec<u8>,
    /// The REPLICAOF this link serves; the stream ends once another one is current.
    pub generation: u64,
    /// Where the stream's end goes: why it ended.
    pub done: Sender<io::Result<()>>,
}

/// The slot the link thread puts a [`Handover`] in, and worker 0's waker.
#[derive(Default)]
pub struct Inbox {
    slot: Mutex<(Option<Handover>, Option<Waker>)>,
}

impl Inbox {
    /// Hands `h` to worker 0 and wakes it.
    pub fn put(&self, h: Handover) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.0 = Some(h);
        if let Some(w) = slot.1.take() {
            w.wake();
        }
    }

    /// Takes back a handover no worker took (the server is stopping).
    pub fn take(&self) -> Option<Handover> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).0.take()
    }

    /// Worker 0's side: the next handover, or its waker kept until one comes.
    pub fn poll_take(&self, cx: &Context<'_>) -> Poll<Handover> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.0.take() {
            Some(h) => Poll::Ready(h),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Forgets worker 0's waker: its runtime is ending.
    pub fn forget_waker(&self) {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).1 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_file_round_trips_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_role(dir.path()), Ok(None));
        let p = ("10.0.0.1".to_owned(), 6380);
        save_role(dir.path(), Some(&p)).unwrap();
        assert_eq!(load_role(dir.path()), Ok(Some(p)));
        save_role(dir.path(), None).unwrap();
        assert_eq!(load_role(dir.path()), Ok(None));
        save_role(dir.path(), None).unwrap();
        for bad in ["", "host", "host 0", "host 70000", "host 1 extra"] {
            std::fs::write(dir.path().join(ROLE_FILE), bad).unwrap();
            let err = load_role(dir.path()).unwrap_err();
            assert!(
                err.contains("REPLICAOF") && err.contains("--replicaof"),
                "{bad}: {err}"
            );
        }
    }
}
