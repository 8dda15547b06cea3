//! flin-server: a Redis-protocol (RESP2) server on flin's storage engine, thread per core.
//!
//! # Layout
//! - [`config`]: command-line flags (clap), each with a `FLIN_*` environment variable.
//! - [`server`]: [`Server::start`] opens the engine, binds the listeners, starts the workers;
//!   [`ServerHandle`] gives the address, [`ServerStats`] and shutdown.
//! - [`worker`]: one thread per core, each with its own monoio runtime (io_uring or epoll),
//!   its own SO_REUSEPORT listener and a cron task (idle timeout, ops rate, shutdown).
//! - [`connection`]: one client's read loop and write loop: the only code touching sockets.
//!   [`durability`]: under `--fsync always`, a worker's connections share one wait on the
//!   engine's durability.
//! - [`protocol`]: bytes only, no I/O: [`protocol::parse`] (RESP2 multibulk and inline
//!   requests, limits, Redis's error strings), [`protocol::inline`] (inline quoting),
//!   [`protocol::reply`] (reply encoders).
//! - [`commands`]: the command table and one file per group (strings, keys, connection,
//!   server). [`glob`]: Redis's glob patterns. [`stats`]: per-thread counters.
//!   [`expiry`]: active expiry of keys given a TTL, run by each worker's cron.
//!   [`checkpoints`]: SAVE / BGSAVE / LASTSAVE as engine checkpoints (online backups).
//!
//! # Data flow
//! A worker accepts a connection and keeps it for life. The connection's read loop reads into
//! one buffer, the parser cuts it into argument lists (borrowed from the buffer, or built in a
//! per-connection arena reset after each batch), and each command runs inline against the
//! shared [`flin_engine::Engine`], appending its reply to the connection's pending buffer. The
//! write loop swaps that buffer out and writes it whole: one write per batch, never awaited by
//! the reader. Under `--fsync always` the write loop first awaits the engine's durability of
//! the batch's last write, so one fdatasync covers every connection's writes (group commit).

// Values and bytes: no I/O, no state, nothing of this crate.
mod clock;
mod float80;
pub mod glob;
pub mod protocol;

// The pieces of state the subsystems share.
pub mod checkpoints;
pub mod clients;
pub mod config;
pub mod durability;
pub mod expiry;
pub mod stats;

// What holds them: one `Shared` per server, one `WorkerShared` per worker.
mod shared;

// What a request does to the engine, and the reply it gets.
pub mod commands;

// One client's socket: read, run, write.
pub mod connection;

// One thread per core, with its connections.
pub mod worker;

// The public handle: start, stats, shutdown.
pub mod server;

pub use config::{Config, Driver};
pub use server::{Server, ServerHandle, ShutdownTrigger, StartError};
pub use stats::ServerStats;
