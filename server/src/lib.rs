//! flin-server: a Redis-protocol (RESP2 and RESP3) server on flin's storage engine, thread per
//! core.
//!
//! # Public API
//! [`Server::start`] takes a [`Config`] and returns a [`ServerHandle`] (address, [`ServerStats`],
//! shutdown); [`protocol`] (request parser, reply encoders) and [`commands::lookup`] are public
//! for the fuzz targets and the benches. Everything else is private to the crate.
//!
//! # Layout, bottom to top
//! Each module uses only the modules above it in this list (lib.rs declares them in the same
//! layers, and `tests/module_layers.rs` fails on an import that goes up or round in a circle).
//! - Values and bytes, no I/O and no state: `bitmap` (the bit arithmetic of BITCOUNT, BITPOS,
//!   BITOP and BITFIELD), `clock` (Unix time), `float80` (INCRBYFLOAT's C `long double`),
//!   `glob` (Redis's glob patterns), [`protocol`] (RESP as bytes: [`protocol::parse`] cuts
//!   requests into argument lists with Redis's limits and error strings, `protocol::inline`
//!   splits hand-typed lines, [`protocol::reply`] encodes replies in RESP2 or RESP3); then
//!   `rdb` (Redis's RDB string encoding, LZF and CRC-64: DUMP/RESTORE payloads now, whole RDB
//!   files for replication later).
//! - The pieces of shared state: `backlog` (the primary side of replication: replication id
//!   and offset, the backlog of the propagated stream, the attached replicas and their ACKs),
//!   `config` (flags, each with a `FLIN_*` variable; [`Driver`]),
//!   `stats` (per-worker counters, [`ServerStats`]), `clients` (every connected client, for
//!   CLIENT LIST / KILL), `checkpoints` (SAVE / BGSAVE as engine checkpoints), `expiry` (a
//!   worker's queue of keys given a TTL), `durability` (a worker's one wait on the engine's
//!   fsync, for `--fsync always`), `heap` (the allocator's figures, for MEMORY), `transactions`
//!   (EXEC's gate over every worker's batches, and the keys clients WATCH), `notify`
//!   (`notify-keyspace-events`), `repl_state` (the primary a replica follows and its link's
//!   state, for REPLICAOF, INFO and ROLE), `repl_resume` (the replication position a clean
//!   shutdown keeps for the next start); then `pubsub` (who subscribes to what, across workers, and
//!   each subscriber's inbox that any worker's PUBLISH fills).
//! - `shared`: `Shared`, one per server, and `WorkerShared`, one per worker, hold those pieces;
//!   the layers above take their state from here, never from the handle or worker that owns it.
//! - [`commands`]: the command table (name, arity, flags, key positions, handler), dispatch,
//!   and one file per group (strings, keys, connection, server, client_list, multi, reset).
//!   Between MULTI and EXEC a command is queued instead of run; EXEC runs the queue while
//!   every worker waits between batches (`transactions`). A command works
//!   on a `Ctx`: the engine, `Shared`, the client's session (`commands::Client`) and the
//!   connection's reply buffer.
//! - `connection`: one client's read loop and write loop, the only code touching sockets; a
//!   read loop step says whether to read more, wait (output backpressure, a write stall) or
//!   close.
//! - `replication`: both ends of a replication link. The replica's link thread (std, blocking
//!   I/O, off the workers): Redis's handshake and the full-sync RDB streamed into the store;
//!   then worker 0 applies the primary's stream in its event loop, through the command table,
//!   as a client that may write on a read-only replica, and sends its ACKs. The primary's
//!   threads per replica, after a
//!   client's SYNC / PSYNC hands its socket over: `+FULLRESYNC` with an RDB of a snapshot
//!   (an engine checkpoint) or `+CONTINUE`, then the stream from the backlog, and its ACKs.
//! - `worker`: one thread per core, each with its own monoio runtime (io_uring or epoll), its
//!   own SO_REUSEPORT listener, its connections and a cron task (idle timeout, active expiry,
//!   ops rate, CLIENT KILL, shutdown).
//! - `server`: [`Server::start`] opens the engine, binds the listeners and starts the workers;
//!   [`ServerHandle`] gives the address, the stats and shutdown.
//!
//! # Data flow
//! A worker accepts a connection and keeps it for life. The connection's read loop reads into
//! one buffer, the parser cuts it into argument lists (borrowed from the buffer, or built in a
//! per-connection arena reset after each batch), and each command runs inline against the
//! shared [`flin_engine::Engine`], appending its reply to the connection's pending buffer. The
//! write loop swaps that buffer out and writes it whole: one write per batch, never awaited by
//! the reader. Under `--fsync always` the write loop first awaits the engine's durability of
//! the batch's last write, so one fdatasync covers every connection's writes (group commit).

#![warn(missing_docs, clippy::undocumented_unsafe_blocks, clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

// Values and bytes: no I/O, no state, nothing of this crate.
mod bitmap;
mod clock;
mod float80;
mod glob;
pub mod protocol;

// Redis's RDB encoding of strings (DUMP/RESTORE) and whole RDB files (replication); reads
// integers as the protocol does. Public for the fuzz targets.
pub mod rdb;

// The pieces of state the subsystems share.
mod backlog;
mod checkpoints;
mod clients;
mod cmdstats;
mod config;
mod durability;
mod expiry;
mod heap;
mod latency;
mod monitor;
mod notify;
mod pause;
mod repl_resume;
mod repl_state;
mod settings;
mod shutdown_wait;
mod slowlog;
mod stats;
mod transactions;

// Pub/Sub's registry and subscribers' inboxes, which read the notification settings.
mod pubsub;

// What holds them: one `Shared` per server, one `WorkerShared` per worker.
mod shared;

// Stopping after the replicas caught up (SHUTDOWN, SIGTERM), on a thread of its own.
mod shutdown;

// What a request does to the engine, and the reply it gets.
pub mod commands;

// One client's socket: read, run, write.
mod connection;

// The replica's link to its primary: handshake, full sync, the applied stream.
mod replication;

// One thread per core, with its connections.
mod worker;

// The public handle: start, stats, shutdown.
mod server;

pub use config::{Config, Driver, DriverChoice, FsyncPolicy};
pub use server::{Server, ServerHandle, ShutdownTrigger, StartError};
pub use stats::ServerStats;
