//! The one interface the workload drives, and its four implementations: flin-engine, fjall,
//! redb and sled, each opened the way its own documentation recommends for the two modes the
//! workload needs (durability off, and a sync per write).

use std::path::Path;

/// Any engine's error, boxed: the harness only reports them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, BoxError>;

/// Block cache given to the peers that have one (redb's and sled's default, set explicitly for
/// fjall, whose default is 32 MiB): every peer can then hold the whole default data set
/// (1M x 116 bytes) in its own memory, as flin holds it in the page cache through its maps.
pub const PEER_CACHE_BYTES: u64 = 1 << 30;

/// How durable a store's writes are while the workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No sync per write, in the engine's own terms.
    Fast,
    /// Each `put_durable` is on disk when it returns.
    Durable,
}

/// What the workload asks of an engine. One op is one call, as a key-value user makes it.
pub trait Store: Send + Sync + Sized {
    fn open(dir: &Path, mode: Mode, value_bytes: usize) -> Result<Self>;
    /// Writes many keys, batched as a user of this engine would batch a bulk load.
    fn load(&self, items: &[([u8; 16], &[u8])]) -> Result<()> {
        items
            .iter()
            .try_for_each(|(key, value)| self.put(key, value))
    }
    /// One write, not synced.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()>;
    /// One write, on disk when this returns (the store was opened with [`Mode::Durable`]).
    fn put_durable(&self, key: &[u8], value: &[u8]) -> Result<()>;
    /// The length of the key's value, read through the engine's cheapest point read.
    fn get_len(&self, key: &[u8]) -> Result<Option<usize>>;
    /// Makes everything written durable and closes the store, leaving the directory as the
    /// next open will find it.
    fn close(self) -> Result<()>;
    /// What the engine says of its own state (background work, stalls), for the log.
    fn state(&self) -> Option<String> {
        None
    }
}

/// flin-engine: `Fsync::Never` when fast; `Fsync::Always` and `wait_durable` per write.
pub struct Flin(flin_engine::Engine);

impl Store for Flin {
    fn open(dir: &Path, mode: Mode, _value_bytes: usize) -> Result<Self> {
        let fsync = match mode {
            Mode::Fast => flin_engine::Fsync::Never,
            Mode::Durable => flin_engine::Fsync::Always,
        };
        let options = flin_engine::Options {
            fsync,
            ..flin_engine::Options::default()
        };
        Ok(Flin(flin_engine::Engine::open(dir, options)?))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.put(key, value, 0)?;
        Ok(())
    }

    fn put_durable(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let token = self.0.put(key, value, 0)?;
        Ok(self.0.wait_durable(token)?)
    }

    fn get_len(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.0.get_with(key, |entry| entry.map(|e| e.value.len())))
    }

    fn close(self) -> Result<()> {
        Ok(self.0.close()?)
    }

    fn state(&self) -> Option<String> {
        let stats = self.0.stats();
        let mib = |bytes: u64| bytes >> 20;
        Some(format!(
            "write stalls {} ({} ms), compactions {} ({} MiB written), live {} MiB, dead {} MiB",
            stats.write_stalls,
            stats.write_stall_ms,
            stats.compactions,
            mib(stats.compaction_bytes_written),
            mib(stats.live_bytes),
            mib(stats.dead_bytes),
        ))
    }
}

/// fjall: one keyspace with key-value separation for values of the run's size; the journal is
/// persisted by hand (`manual_journal_persist`), so a fast write is a memtable insert and a
/// buffered journal append, and a durable one adds `persist(SyncAll)`.
pub struct Fjall {
    keyspace: fjall::Keyspace,
    db: fjall::Database,
}

impl Store for Fjall {
    fn open(dir: &Path, _mode: Mode, value_bytes: usize) -> Result<Self> {
        let db = fjall::Database::builder(dir)
            .cache_size(PEER_CACHE_BYTES)
            .manual_journal_persist(true)
            .open()?;
        // Values at or above the threshold go to blob files; the default (1 KiB) would keep
        // the run's 100-byte values in the tree.
        let threshold = u32::try_from(value_bytes.max(1)).unwrap_or(u32::MAX);
        let keyspace = db.keyspace("kv", || {
            fjall::KeyspaceCreateOptions::default()
                .manual_journal_persist(true)
                .with_kv_separation(Some(
                    fjall::KvSeparationOptions::default().separation_threshold(threshold),
                ))
        })?;
        Ok(Fjall { keyspace, db })
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.keyspace.insert(key, value)?)
    }

    fn put_durable(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.keyspace.insert(key, value)?;
        Ok(self.db.persist(fjall::PersistMode::SyncAll)?)
    }

    fn get_len(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.keyspace.get(key)?.map(|v| v.len()))
    }

    fn state(&self) -> Option<String> {
        Some(format!(
            "key-value separated {}, {} tables, {} blob files, {} journals",
            self.keyspace.is_kv_separated(),
            self.keyspace.table_count(),
            self.keyspace.blob_file_count(),
            self.db.journal_count(),
        ))
    }

    fn close(self) -> Result<()> {
        // fjall has no public memtable flush: a clean close persists the journal, and the
        // next open replays it.
        self.db.persist(fjall::PersistMode::SyncAll)?;
        drop(self.keyspace);
        drop(self.db);
        Ok(())
    }
}

/// redb: one table; every point op is its own transaction, as a key-value user would make it
/// (a write transaction committed with `Durability::None` when fast, `Immediate` when
/// durable; a read transaction per get). The load commits `LOAD_BATCH` keys per transaction.
pub struct Redb(redb::Database);

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("kv");

impl Redb {
    fn write<'a>(
        &self,
        durability: redb::Durability,
        items: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<()> {
        let mut txn = self.0.begin_write()?;
        txn.set_durability(durability)?;
        {
            let mut table = txn.open_table(REDB_TABLE)?;
            for (key, value) in items {
                table.insert(key, value)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl Store for Redb {
    fn open(dir: &Path, _mode: Mode, _value_bytes: usize) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let db = redb::Builder::new()
            .set_cache_size(usize::try_from(PEER_CACHE_BYTES)?)
            .create(dir.join("data.redb"))?;
        Ok(Redb(db))
    }

    fn load(&self, items: &[([u8; 16], &[u8])]) -> Result<()> {
        self.write(
            redb::Durability::None,
            items.iter().map(|(k, v)| (&k[..], *v)),
        )
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(redb::Durability::None, [(key, value)])
    }

    fn put_durable(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(redb::Durability::Immediate, [(key, value)])
    }

    fn get_len(&self, key: &[u8]) -> Result<Option<usize>> {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = self.0.begin_read()?;
        let table = txn.open_table(REDB_TABLE)?;
        let len = table.get(key)?.map(|v| v.value().len());
        Ok(len)
    }

    fn close(self) -> Result<()> {
        // Non-durable commits become durable with the next durable one.
        self.write(redb::Durability::Immediate, [])?;
        drop(self.0);
        Ok(())
    }
}

/// sled 0.34 (the last stable release): no background flush when fast (`flush_every_ms(None)`);
/// `flush` after each durable write.
pub struct Sled {
    db: sled::Db,
    /// The file sled locks (`flock`) while open.
    lock_path: std::path::PathBuf,
}

impl Store for Sled {
    fn open(dir: &Path, _mode: Mode, _value_bytes: usize) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(PEER_CACHE_BYTES)
            .flush_every_ms(None)
            .open()?;
        Ok(Sled {
            db,
            lock_path: dir.join("db"),
        })
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.db.insert(key, value)?;
        Ok(())
    }

    fn put_durable(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.db.insert(key, value)?;
        self.db.flush()?;
        Ok(())
    }

    fn get_len(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.db.get(key)?.map(|v| v.len()))
    }

    fn close(self) -> Result<()> {
        self.db.flush()?;
        drop(self.db);
        // sled's background threads hold the locked file a moment after the last handle is
        // dropped, and an open meanwhile fails with WouldBlock: wait for the lock itself.
        let file = std::fs::File::open(&self.lock_path)?;
        file.lock()?;
        Ok(())
    }
}

/// Bytes of disk allocated to the files under `dir`, recursively (fjall keeps
/// subdirectories). Allocated blocks, not file lengths: fjall sizes each new journal to
/// 64 MiB with `set_len`, a sparse file whose length is not disk in use.
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        if metadata.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else if metadata.is_file() {
            // st_blocks counts 512-byte units whatever the filesystem's block size.
            total += metadata.blocks() * 512;
        }
    }
    Ok(total)
}
