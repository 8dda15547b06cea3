//! A full sync's payload: a consistent snapshot of every database at one offset of the
//! stream, encoded as an RDB file (version 9, `rdb::FileWriter`).
//!
//! The snapshot is an engine checkpoint taken while every worker waits between batches (the
//! EXEC gate, held for the checkpoint only: hard links of the sealed segments and a copy of the
//! active one). A write propagates while its worker holds its part of the gate, so at that
//! moment the stream's offset counts exactly the writes the checkpoint holds. The replica is
//! attached at that offset in the same step: the writes after it reach it through the stream,
//! none twice and none lost. The checkpoint is then opened as a store of its own (no
//! compaction) and its keys written out as RDB into a file next to it, off the workers, and
//! both are removed when the payload has been sent.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flin_engine::{Engine, Fsync, Options};

use crate::backlog::{ReplicaState, SyncRequest};
use crate::rdb::FileWriter;
use crate::shared::Shared;

/// Where full syncs keep their snapshots and RDB files, under the data directory.
pub const SYNC_DIR: &str = "repl-sync";
/// Keys scanned per call while encoding.
const SCAN_BATCH: usize = 1024;
/// While the RDB is being encoded, a newline goes to the replica this often, so it does not
/// time out (Redis's keepalive during BGSAVE).
const KEEPALIVE_PERIOD: Duration = Duration::from_secs(1);

/// A checkpoint taken for a full sync, and the RDB made from it; both removed on drop.
pub(super) struct Snapshot {
    dir: PathBuf,
    rdb: PathBuf,
    /// The replication id and offset it corresponds to.
    pub replid: String,
    pub offset: i64,
    /// The replica, attached to the stream at `offset`.
    pub replica: u64,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.rdb);
    }
}

/// Takes the snapshot and attaches the replica at its offset, as one step with every worker
/// held between batches.
///
/// # Errors
/// The checkpoint failed; the replica is not attached then.
pub(super) fn take(
    shared: &Shared,
    addr: SocketAddr,
    request: &SyncRequest,
    socket: Option<std::net::TcpStream>,
) -> io::Result<Snapshot> {
    let root = shared.config.dir.join(SYNC_DIR);
    std::fs::create_dir_all(&root)?;
    let name = format!("{}-{}", crate::clock::now_ms(), addr.port());
    let dir = root.join(&name);
    let rdb = root.join(format!("{name}.rdb"));
    let _all = shared.exec_gate.exclusive();
    // No worker writes now. The stream's lock is taken after the checkpoint: the engine's
    // sweep may report an expired key meanwhile, whose DEL is harmless on either side.
    shared
        .engine
        .checkpoint(&dir)
        .map_err(|e| io::Error::other(format!("snapshot into {}: {e}", dir.display())))?;
    let mut stream = shared.primary.lock();
    stream.activate(shared.primary.flag());
    // The stream selects its database again at the next write: the replica starts there.
    stream.forget_db();
    let offset = stream.offset;
    let replica = stream.attach(
        addr,
        request.port,
        offset + 1,
        ReplicaState::WaitBgsave,
        socket,
    );
    Ok(Snapshot {
        dir,
        rdb,
        replid: stream.replid.clone(),
        offset,
        replica,
    })
}

/// Encodes the snapshot as RDB into its file, calling `keepalive` about every second;
/// returns the file, rewound, and its length.
///
/// # Errors
/// The snapshot cannot be opened, the file cannot be written, or `keepalive` failed.
pub(super) fn encode(
    shared: &Shared,
    snap: &Snapshot,
    mut keepalive: impl FnMut() -> io::Result<()>,
) -> io::Result<(File, u64)> {
    let options = Options {
        fsync: Fsync::Never,
        segment_size_bytes: shared.config.segment_size,
        compaction: false,
        cold_read_threads: 1,
        databases: shared.engine.databases(),
        ..Options::default()
    };
    let store = Engine::open(&snap.dir, options)
        .map_err(|e| io::Error::other(format!("open snapshot {}: {e}", snap.dir.display())))?;
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&snap.rdb)?;
    let offset = snap.offset.to_string();
    let ctime = (crate::clock::now_ms() / 1000).to_string();
    let aux: [(&str, &[u8]); 8] = [
        ("redis-ver", crate::commands::REDIS_VERSION.as_bytes()),
        ("redis-bits", b"64"),
        ("ctime", ctime.as_bytes()),
        ("used-mem", b"0"),
        ("repl-stream-db", b"0"),
        ("repl-id", snap.replid.as_bytes()),
        ("repl-offset", offset.as_bytes()),
        ("aof-base", b"0"),
    ];
    let mut w = FileWriter::new(BufWriter::new(file), &aux, true)?;
    let mut last = Instant::now();
    let mut error = None;
    for db in 0..store.databases() {
        let keys = store.db(db).len();
        if keys == 0 {
            continue;
        }
        w.select_db(u64::from(db), keys, 0)?;
        let mut cursor = 0;
        loop {
            cursor = store.db(db).scan(cursor, SCAN_BATCH, |key, e| {
                if error.is_none() {
                    let at = (e.expire_at_ms != 0).then_some(e.expire_at_ms as i64);
                    error = w.string(key, e.value, at).err();
                }
            });
            if let Some(e) = error.take() {
                return Err(e);
            }
            if last.elapsed() >= KEEPALIVE_PERIOD {
                keepalive()?;
                last = Instant::now();
            }
            if cursor == 0 {
                break;
            }
        }
    }
    let mut file = w
        .finish()?
        .into_inner()
        .map_err(|e| io::Error::other(e.to_string()))?;
    drop(store);
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    Ok((file, len))
}

/// Removes what full syncs left behind when the server stopped in the middle of one.
pub(crate) fn clean_up(dir: &Path) {
    let root = dir.join(SYNC_DIR);
    if root.exists() {
        if let Err(e) = std::fs::remove_dir_all(&root) {
            tracing::warn!(dir = %root.display(), error = %e,
                           "cannot remove an interrupted full sync's files; remove them by hand");
        }
    }
}
