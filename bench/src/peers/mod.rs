//! `flin-engine-peers`: flin-engine against the embedded key-value stores of Rust on one
//! workload, in one process, one engine after another.
//!
//! Layout, one concept per file:
//! - `store.rs`: the [`store::Store`] trait the workload drives, its implementation for each
//!   engine (how each is opened, what "no sync" and "sync per write" mean for it), and the
//!   directory size.
//! - `workload.rs`: keys, values, load order, and the timed multi-threaded phases.
//! - `report.rs`: the metrics, the table and the JSON.
//! - `chart.rs`: the SVG chart of flin's lead over each peer.
//!
//! Data flow: the binary opens each engine in a fresh directory, loads it, closes it, measures
//! its directory, opens it in a child process of the same binary (open time and resident
//! memory, free of what the earlier engines left in this process), then reopens it for the
//! overwrite, read and durable-write phases. Each engine's figures become a
//! [`report::Metrics`]; the [`report::Report`] of all of them is printed, written as JSON and
//! drawn.

pub mod chart;
pub mod report;
pub mod store;
pub mod workload;
