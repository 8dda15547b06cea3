//! A case file run on a [`Pair`] of connections, one to redis-server and one to flin: each
//! step is sent to both and the two answers compared.

use std::io;

use super::cases::{Mode, Send, Step};
use super::compare::{difference, Difference};
use super::conn::{Answer, Conn, End, Outcome};
use super::value::Value;
use crate::resp::encode_command;

/// SCAN calls at most per `?scan` step, so a cursor that never returns to 0 is reported.
pub const SCAN_CALLS_MAX: usize = 100_000;

/// Runs a full SCAN iteration of `args` (cursor at index 1 replaced each call) and returns
/// the sorted, deduplicated keys as one array reply; the first non-SCAN-shaped reply is
/// returned as it is.
pub fn scan_all(conn: &mut Conn, args: &[Vec<u8>]) -> Outcome {
    let mut args = args.to_vec();
    let mut keys = std::collections::BTreeSet::new();
    for _ in 0..SCAN_CALLS_MAX {
        let outcome = conn.request(&encode_command(&args));
        let Outcome::Reply(bytes) = &outcome else {
            return outcome;
        };
        let Some(Value::Array(Some(parts))) = Value::parse(bytes) else {
            return outcome;
        };
        let [Value::Bulk(Some(cursor)), Value::Array(Some(batch))] = parts.as_slice() else {
            return outcome;
        };
        for k in batch {
            match k {
                Value::Bulk(Some(k)) => keys.insert(k.clone()),
                _ => return outcome,
            };
        }
        if cursor.as_slice() == b"0" {
            let all = Value::Array(Some(
                keys.into_iter().map(|k| Value::Bulk(Some(k))).collect(),
            ));
            let mut out = Vec::new();
            all.encode(&mut out);
            return Outcome::Reply(out);
        }
        args[1] = cursor.clone();
    }
    Outcome::Broken(format!(
        "SCAN cursor not back to 0 after {SCAN_CALLS_MAX} calls"
    ))
}

/// The two connections a case file runs on.
pub struct Pair {
    /// The connection to redis-server.
    pub redis: Conn,
    /// The connection to flin.
    pub flin: Conn,
}

impl Pair {
    /// Runs `steps`; returns how many requests were compared and the differences.
    ///
    /// # Errors
    /// Reconnecting failed (a server is gone: nothing more can be compared).
    pub fn run(&mut self, steps: &[Step]) -> io::Result<(usize, Vec<Difference>)> {
        let mut compared = 0;
        let mut diffs = Vec::new();
        for step in steps {
            let (r, f) = match (&step.send, step.mode) {
                (Send::Reconnect, _) => {
                    self.redis.reconnect()?;
                    self.flin.reconnect()?;
                    continue;
                }
                (Send::Command(args), Mode::ScanAll) => (
                    scan_answer(&mut self.redis, args),
                    scan_answer(&mut self.flin, args),
                ),
                (Send::Command(args), _) => {
                    let bytes = encode_command(args);
                    (
                        self.redis.request_synced(&bytes),
                        self.flin.request_synced(&bytes),
                    )
                }
                (Send::Raw(bytes), _) => (
                    self.redis.request_synced(bytes),
                    self.flin.request_synced(bytes),
                ),
            };
            compared += 1;
            diffs.extend(difference(step, &r, &f));
        }
        Ok((compared, diffs))
    }
}

/// A `?scan` step as an [`Answer`]: the synthesized reply of [`scan_all`].
fn scan_answer(conn: &mut Conn, args: &[Vec<u8>]) -> Answer {
    match scan_all(conn, args) {
        Outcome::Reply(r) => Answer {
            replies: vec![r],
            end: End::Synced,
        },
        lost => Answer {
            replies: Vec::new(),
            end: End::Lost(lost),
        },
    }
}
