//! flin-bench: a load generator for any RESP2 server (flin, Redis, ...), and the chart of
//! `compare.sh`'s redis-vs-flin table.
//!
//! Layout, one concept per file:
//! - `options.rs`: the command line (clap) and its validation into a [`options::Config`].
//! - `run.rs`: one run: connect, spread connections over threads, progress bar, merge.
//! - `worker.rs`: one driver thread multiplexing its connections with epoll.
//! - `conn.rs`: one connection: write a batch, parse and check its replies, repeat.
//! - `shared.rs`: what threads share: request budget, keys written so far, deadlines, progress.
//! - `resp.rs`: request encoding and the allocation-free incremental reply parser, the one
//!   both flin-bench and flin-compat read replies with.
//! - `keys.rs`: fixed-width key names and the deterministic value of each key.
//! - `zipf.rs`: the Gray et al. (YCSB) zipfian key generator.
//! - `rng.rs`: SplitMix64, the one PRNG everything draws from.
//! - `epoll.rs`: the thin safe wrapper over Linux epoll (the only `unsafe`).
//! - `fanout.rs`: `--mode pubsub`, PUBLISH fan-out to many subscribers, every message
//!   checked in order by each (its own connections, threads and report).
//! - `tally.rs`: one thread's histograms and counts; `report.rs`: the merged result (text,
//!   JSON, redis-benchmark style CSV).
//! - `chart.rs`: `flin-bench chart`, the SVG chart of each cell's ratio to Redis; `error.rs`:
//!   [`BenchError`].
//! - `compat/`: `flin-compat`, which sends the case files of `bench/compat/` to flin and to
//!   redis-server and compares the replies byte for byte (`compat/mod.rs` lists its files).
//!
//! `--mode multi` makes each request a MULTI, SET, SET, EXEC transaction (`conn.rs` checks
//! its replies byte for byte).
//!
//! Public: `options`, `run`, `report`, `error`, `fanout` (what the binary and the tests drive), `resp`,
//! `compat` (flin-compat), `chart`, `engine_tools` (the engine benches and tools). The driver's
//! parts (`conn`, `worker`, `shared`, `keys`, `zipf`, `rng`, `epoll`, `tally`) are private.
//!
//! Data flow: [`run::run`] connects `--clients` sockets and hands them to `--threads` workers.
//! A worker's connection claims up to `--pipeline` requests from the shared budget (or checks
//! the deadline), encodes them into its reused write buffer and writes them at once. Replies
//! are parsed in place from its read buffer; each is checked against its request (SET wants
//! `+OK`; GET wants a bulk, and exactly the derived value once this run's SET of that key was
//! acknowledged) and its latency since the batch was written goes into the thread's
//! histogram. When the last reply of a batch arrives the next batch goes out. At the end the
//! per-thread tallies merge into a [`report::Report`]; any failed request fails the run.

#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod chart;
pub mod compat;
pub mod engine_tools;
pub mod error;
pub mod fanout;
pub mod options;
pub mod report;
pub mod resp;
pub mod run;

mod conn;
mod epoll;
mod keys;
mod rng;
mod shared;
mod tally;
mod worker;
mod zipf;

pub use error::BenchError;
pub use options::{Cli, Config, RunArgs};
pub use report::Report;
pub use run::{run, Progress};
