//! flin-engine: a log-structured key-value store of the Bitcask family.
//!
//! # Layout, bottom to top
//! Each module uses only modules listed above it (a test in `tests/layering.rs` holds this).
//! - `error`, `clock`, `failpoint`, `lock`: errors, time, fault injection, the directory lock.
//! - `format`: the bytes on disk (segment header, record header), mirrored in `docs/FORMAT.md`;
//!   `scan`: walking the records of a segment's bytes and classifying damage.
//! - `options`, `stats`, `testing_hooks`.
//! - `index`: the in-memory hash index: 256 shards of open-addressed 16-byte slots
//!   (hash tag and check, access clock, segment id, offset); the key itself is checked
//!   against the record in the map.
//! - `segment`: one segment file: create and preallocate, append through a shared writable
//!   map, read through the same map, seal (truncate, fsync). `hint`: hint files. `staged`:
//!   records a cold read put in a buffer, which this thread's reads use instead of the map.
//! - `registry`: which segments exist (copy-on-write map) and new segment ids;
//!   `databases`: which namespace holds each database (SWAPDB swaps two entries).
//! - `poison`, `syncer` (group commit's state), `stall` (write stalls' state), `space` (disk
//!   use against the space bound).
//! - `log`: the active segment, sequence numbers and rolling to a new segment.
//! - `cold`: reads of records not in memory, off the caller's thread (a `pread` pool,
//!   `O_DIRECT` into buffers handed to the caller);
//!   `verify`: checking blind overwrites whose old record was not read.
//! - `recovery`: `open`'s scan: directory listing, hints or record scans, torn tails, damage.
//! - `shared`: [`Engine`]'s state as every part above it sees it.
//! - `read`, `write`, `expiry`, `wait` (durability and stall futures), `compaction`,
//!   `checkpoint`, `txn` (writes that land on disk all or nothing, EXEC's): the paths that
//!   work on `shared`; `access`: a key's access clock (OBJECT IDLETIME) looked at or set.
//! - `background`: the sync, prealloc and maintenance threads (a panic in one poisons).
//! - `db`: [`Db`], one database's key calls; `engine`: [`Engine`], the public handle.
//!
//! # Data flow
//! A write takes its key's index shard lock, appends a record to the active segment under the
//! log lock (a `memcpy` into a preallocated shared map: no system call), then points the index
//! slot at it and releases the shard. A read takes the shard's read lock, finds the slot, checks
//! the key against the mapped record and copies the value out: no system call, and it never
//! waits behind an fsync, which runs on the sync thread. Durability is tracked by sequence
//! number: [`WriteToken`]s say which writes a caller needs on disk, [`Engine::durable`] waits
//! for them without blocking an async runtime.
//!
//! # Databases
//! Keys live in numbered databases (Redis's SELECT): [`Engine::db`] gives one's key calls.
//! Each record names its namespace (0 for database 0 until a swap) in its header, and the
//! index hashes a key with its namespace, so database 0's records and hashing are those of a
//! store without databases. FLUSHDB writes one namespace flush record; SWAPDB swaps two
//! entries of a small durable map (`DATABASES`), moving no record.

#![warn(missing_docs, clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod access;
mod background;
mod checkpoint;
mod clock;
mod cold;
mod compaction;
mod databases;
mod db;
mod engine;
mod error;
mod expiry;
mod failpoint;
mod format;
mod hint;
mod index;
mod lock;
mod log;
mod options;
mod poison;
mod read;
mod recovery;
mod registry;
mod scan;
mod segment;
mod shared;
mod space;
mod staged;
mod stall;
mod stats;
mod syncer;
mod testing_hooks;
mod txn;
mod verify;
mod wait;
mod write;

pub use background::maintenance::set_current_thread_nice;
pub use checkpoint::CheckpointReport;
pub use clock::follow_primary_expiry;
pub use cold::{ColdRing, Failures, Fetch, Fetched};
pub use compaction::RunReport;
pub use db::Db;
pub use engine::Engine;
pub use error::{Error, Result};
pub use format::{BATCH_LEN_MAX, DATABASES_MAX, KEY_LEN_MAX, VALUE_LEN_MAX};
pub use options::{Fsync, Options};
pub use read::{Entry, ScanCursor, PREFETCH_BATCH};
pub use staged::{with_staged, Staged};
pub use stall::WRITE_STALL_MAX;
pub use stats::{Keyspace, RecoveryStats, Stats};
pub use txn::Transaction;
pub use wait::{Durable, StallLifted};
pub use write::{Update, WriteToken};

/// What the fuzz targets and the engine's own tests reach into: the on-disk format, hint
/// files and the record scanner, and fault injection. Not part of the API.
#[doc(hidden)]
pub mod testing {
    pub use crate::databases::DATABASES_FILE;
    pub use crate::format::*;
    pub use crate::hint::{
        encode_hint_entries, hint_file_name, HINT_HEADER_LEN, HINT_MAGIC, HINT_RESTART_INTERVAL,
        HINT_VERSION,
    };
    pub use crate::scan::{scan_records, ScanEnd};
    pub use crate::testing_hooks::Thread;
}
