//! RESP as bytes: [`parse`] turns request bytes into argument lists, `inline` splits
//! hand-typed inline lines with Redis's quoting rules, [`reply`] encodes replies (in RESP2, or
//! in RESP3 for a client that sent `HELLO 3`: requests are the same in both). Nothing here
//! does I/O or knows about sockets or monoio.

mod inline;
pub mod parse;
pub mod reply;

/// The arena type the parser builds inline arguments in (re-exported for benches and tests).
pub use bumpalo::Bump;
pub use parse::{Frame, Limits, Parser, ProtocolError};
