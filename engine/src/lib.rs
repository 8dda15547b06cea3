//! flin-engine: a log-structured key-value store of the Bitcask family.
//!
//! # Layout
//! - [`format`]: the bytes on disk (segment header, record header), mirrored in `docs/FORMAT.md`.
//! - [`segment`]: one segment file: create and preallocate, append through a shared writable
//!   map, read through the same map, seal (truncate, fsync).
//! - [`index`]: the in-memory hash index: 256 shards of open-addressed 12-byte slots
//!   (hash tag, segment id, offset); the key itself is checked against the record in the map.
//! - [`log`]: the active segment, sequence numbers and rolling to a new segment.
//! - [`sync`]: fsync policies and group commit (one `fdatasync` shared by concurrent writers).
//! - [`recovery`]: `open`: directory lock, segment scan, torn-tail truncation, corruption errors.
//! - [`compaction`] and [`hint`]: space reclamation and fast start; [`stall`]: writers wait
//!   for compaction when they outrun it past the space bound.
//! - [`checkpoint`]: a consistent copy of the store in another directory, taken online.
//! - [`error`], [`stats`], [`options`].
//! - `failpoint`: fault injection for tests (`FLIN_FAILPOINT`: crashes in compaction, a failing
//!   fdatasync).
//!
//! # Data flow
//! A write takes its key's index shard lock, appends a record to the active segment under the
//! log lock (a `memcpy` into a preallocated shared map: no system call), then points the index
//! slot at it and releases the shard. A read takes the shard's read lock, finds the slot, checks
//! the key against the mapped record and copies the value out: no system call, and it never
//! waits behind an fsync, which runs on the sync thread. Durability is tracked by sequence
//! number: [`WriteToken`]s say which writes a caller needs on disk, [`Engine::durable`] waits
//! for them without blocking an async runtime.

pub mod checkpoint;
pub mod compaction;
pub mod error;
pub mod format;
pub mod hint;
pub mod index;
pub mod log;
pub mod options;
pub mod recovery;
pub mod segment;
pub mod stall;
pub mod stats;
pub mod sync;

mod clock;
mod engine;
mod failpoint;
mod lock;

pub use checkpoint::CheckpointReport;
pub use engine::{Engine, Entry, ScanCursor, Update, WriteToken, PREFETCH_BATCH};
pub use error::{Error, Result};
pub use options::{Fsync, Options};
pub use stats::Stats;
