//! Replication on Redis's own protocol (issue 17), both ends. The replica side (`replica`,
//! `wire`): a flin-server follows a Redis 7 primary (or anything that speaks its protocol,
//! flin included) named by `--replicaof` or REPLICAOF / SLAVEOF, and stops with `REPLICAOF NO
//! ONE`. The primary side (`primary`, `snapshot`): a client's SYNC / PSYNC hands its socket
//! to two threads that serve it a full sync or a partial resync and then the stream that
//! `commands::propagate` feeds into `crate::backlog`.
//!
//! # Design
//! One std thread per server, `replica::spawn`, owns the link until it is in sync: a blocking
//! `TcpStream`, so the monoio workers never wait on the primary's handshake and the RDB
//! streams straight from the socket into `rdb::file::FileReader` without being buffered
//! whole. Then it hands the socket to worker 0 (`stream`, through `repl_state::Inbox`), which
//! applies the stream in its event loop beside its clients, as Redis's one thread does, and
//! waits until the stream ends to connect again. What the link shares with the commands
//! (which primary, the link's state and offsets for INFO and ROLE) is `crate::repl_state`,
//! below the commands; REPLICAOF only changes that state and wakes the thread.
//!
//! The link, as Redis 7's replica does it: PING, AUTH (`--masterauth`), `REPLCONF
//! listening-port`, `REPLCONF capa eof capa psync2`, then `PSYNC <replid> <offset+1>` when a
//! previous link synced, in this process or before a clean shutdown (`crate::repl_resume`;
//! `+CONTINUE` goes on with the stream), else `PSYNC ? -1`. A `+FULLRESYNC` payload comes as `$<len>` or, diskless, `$EOF:<40-byte mark>` ... mark,
//! after any bare `\n` keepalives (`wire`). String keys load with their expiry; keys of other
//! types are skipped, counted (`INFO replication`: `flin_skipped_keys`) and logged.
//!
//! The stream is applied by a pseudo-client (`commands::Client::from_primary`) through the
//! command table, replies discarded: SELECT, MULTI/EXEC and every write command work as they
//! do for clients, and the read-only check lets it through. Plain commands run holding worker
//! 0's part of the EXEC gate (as its batches do), the stream's EXEC takes the whole gate, so a
//! client's EXEC stays atomic. `REPLCONF ACK <offset>` goes out every second and on
//! `REPLCONF GETACK` (with the offset applied before the GETACK, as Redis does); an applied
//! write is in flin's log when it is acknowledged, and on disk under `--fsync always`.
//!
//! # The primary
//! See `crate::backlog` for how writes of several workers become one stream, `snapshot` for
//! how a full sync's RDB corresponds exactly to the offset it announces, and `primary` for a
//! replica's threads.
//!
//! # Known gaps
//! - A full sync checks its payload whole (every key, the checksum) before it flushes the
//!   live store and loads into it (clients get `-LOADING` meanwhile), instead of loading a
//!   fresh store and switching to it: a load failing on the store's own errors (a full disk)
//!   leaves part of the payload.
//! - Worker 0 applies the stream without reading cold records ahead (`Engine::fetch_cold`,
//!   as a client's batch does): under a memory cap, a write that reads its key's old value
//!   (INCR, APPEND, SETRANGE) may fault on the worker and hold its clients meanwhile.
//! - Only a clean shutdown keeps the replication position (`crate::repl_resume`): after a
//!   crash the replica full-syncs, and so do a crashed primary's replicas.
//! - No chained replicas (a replica refuses SYNC / PSYNC), no diskless payload from a flin
//!   primary; docs/REPLICATION.md lists the rest.

mod primary;
mod replica;
mod snapshot;
mod stream;
mod wire;

pub(crate) use primary::attach;
pub(crate) use replica::spawn;
pub(crate) use snapshot::clean_up;
pub(crate) use stream::{follow as follow_stream, into_runtime};
