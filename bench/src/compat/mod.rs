//! `flin-compat`: sends the same requests to flin and to redis-server and compares the replies
//! byte for byte.
//!
//! Layout, by concern:
//! - `cases.rs`: the case files (`bench/compat/*.txt`, format in `bench/compat/README.md`):
//!   each line a [`Step`]: a command written like redis-cli input (sent as one RESP multibulk
//!   request), raw bytes (`!raw "..."`, for inline and malformed input), or `!reconnect`, and
//!   the [`Mode`] its replies are compared in.
//! - `conn.rs`: one connection to one server. Each request gets exactly one reply, read with
//!   [`Conn::request`]: the bytes of one complete RESP2 reply (framed by flin-bench's parser,
//!   [`crate::resp::parse_reply`], which takes any nesting: COMMAND DOCS nests deeper than 8),
//!   or what happened instead (the server closed the connection, or nothing came within the
//!   timeout).
//!   [`Conn::request_synced`] collects every reply to one step into an [`Answer`].
//! - `value.rs`: replies parsed into a [`Value`] tree, for the modes that look inside one.
//! - `compare.rs`: whether two answers count as the same under a [`Mode`] (the default is
//!   every byte), and the [`Difference`] reported when they do not.
//! - `pair.rs`: a case file run on a [`Pair`] of connections, one to each server.
//!
//! Data flow: `flin-compat` parses each file with [`parse_cases`] and hands the steps to
//! [`Pair::run`], which sends each step to both servers, compares the two answers and returns
//! the differences it found.

mod cases;
mod compare;
mod conn;
mod pair;
mod value;

pub use cases::{parse_cases, split_args, Mode, Send, Step, CONNS_MAX};
pub use compare::{same, same_reply, Difference, SHOWN_MAX_BYTES};
pub use conn::{Answer, Conn, End, Outcome, REPLIES_PER_STEP_MAX, SYNC_MARKER};
pub use pair::{scan_all, Pair, Session, SCAN_CALLS_MAX};
pub use value::{head_reply, sorted_reply, Value};
