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

pub mod checkpoints;
pub mod clients;
mod clock;
pub mod commands;
pub mod config;
pub mod connection;
pub mod durability;
pub mod expiry;
mod float80;
pub mod glob;
pub mod protocol;
pub mod server;
mod shared;
pub mod stats;
pub mod worker;

pub use config::{Config, Driver};
pub use server::{Server, ServerHandle, ShutdownTrigger, StartError};
pub use stats::ServerStats;
