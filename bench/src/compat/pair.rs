//! A case file run on a [`Pair`] of connections, one to redis-server and one to flin (and up
//! to three more pairs, for the steps marked `@2` to `@4`): each step is sent to both servers
//! and the two answers compared. Each pair follows its [`Session`]: inside MULTI and while
//! CLIENT REPLY silences it, a step's replies are counted instead of ended by the sync
//! marker.

use std::io;

use super::cases::{Mode, Send, Step, CONNS_MAX};
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

/// One connection to each server, and what the case told them so far.
struct Side {
    redis: Conn,
    flin: Conn,
    session: Session,
}

/// The state of a connection that changes how a step's replies are read, as redis-server's
/// replies show it (both servers got the same requests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// Between MULTI and EXEC / DISCARD / RESET: each step gets exactly one reply.
    pub multi: bool,
    /// CLIENT REPLY OFF: steps get no reply, until CLIENT REPLY ON or RESET.
    pub replies_off: bool,
}

/// How many replies to read for a step, when the sync marker cannot end it.
impl Session {
    /// `None`: the step is followed by the sync marker; `Some(n)`: exactly `n` replies.
    pub fn counted(&self, args: &[Vec<u8>]) -> Option<usize> {
        let is = |words: &[&str]| {
            args.len() == words.len()
                && args
                    .iter()
                    .zip(words)
                    .all(|(a, w)| a.eq_ignore_ascii_case(w.as_bytes()))
        };
        if self.replies_off {
            // RESET answers even in MULTI; CLIENT REPLY ON is queued there, silently.
            let answered = is(&["reset"]) || (!self.multi && is(&["client", "reply", "on"]));
            (!answered).then_some(0)
        } else if self.multi {
            Some(1)
        } else if is(&["client", "reply", "off"]) || is(&["client", "reply", "skip"]) {
            Some(0)
        } else {
            None
        }
    }

    /// Follows `args`, which `redis` answered.
    pub fn follow(&mut self, args: &[Vec<u8>], redis: &Answer) {
        let name = |n: &str| args[0].eq_ignore_ascii_case(n.as_bytes());
        let ok = redis
            .replies
            .first()
            .is_some_and(|r| r.first() != Some(&b'-'));
        if name("reset") && args.len() == 1 {
            *self = Session::default();
        } else if self.multi {
            // EXEC ends MULTI whatever it answers (a refused EXEC discards).
            self.multi = !(name("exec") || (name("discard") && ok));
        } else if name("multi") {
            // Silenced, MULTI's reply is not there to look at: a well-formed MULTI starts one.
            self.multi = if self.replies_off {
                args.len() == 1
            } else {
                ok
            };
        } else if args.len() == 3 && name("client") && args[1].eq_ignore_ascii_case(b"reply") {
            if args[2].eq_ignore_ascii_case(b"off") {
                self.replies_off = true;
            } else if args[2].eq_ignore_ascii_case(b"on") {
                self.replies_off = false;
            }
        }
    }
}

/// The connections a case file runs on: connection 1 to each server, and the others (`@2`
/// to `@4`) opened when a step first names them.
pub struct Pair {
    sides: Vec<Option<Side>>,
}

impl Pair {
    /// Connection 1 to redis-server and to flin.
    pub fn new(redis: Conn, flin: Conn) -> Pair {
        let mut sides: Vec<Option<Side>> = (0..CONNS_MAX).map(|_| None).collect();
        sides[0] = Some(Side {
            redis,
            flin,
            session: Session::default(),
        });
        Pair { sides }
    }

    /// Reopens connection 1 to each server and closes the others (fresh client state).
    ///
    /// # Errors
    /// Reconnecting failed.
    pub fn reconnect(&mut self) -> io::Result<()> {
        for side in self.sides.iter_mut().skip(1) {
            *side = None;
        }
        let first = self.sides[0].as_mut().expect("connection 1 is always open");
        first.session = Session::default();
        first.redis.reconnect()?;
        first.flin.reconnect()
    }

    /// Connection `n` (from 0), opened like connection 1 when needed.
    fn side(&mut self, n: usize) -> io::Result<&mut Side> {
        if self.sides[n].is_none() {
            let first = self.sides[0].as_ref().expect("connection 1 is always open");
            let side = Side {
                redis: first.redis.open_another()?,
                flin: first.flin.open_another()?,
                session: Session::default(),
            };
            self.sides[n] = Some(side);
        }
        Ok(self.sides[n].as_mut().expect("opened above"))
    }

    /// Runs `steps`; returns how many requests were compared and the differences.
    ///
    /// # Errors
    /// Reconnecting failed (a server is gone: nothing more can be compared).
    pub fn run(&mut self, steps: &[Step]) -> io::Result<(usize, Vec<Difference>)> {
        let mut compared = 0;
        let mut diffs = Vec::new();
        for step in steps {
            if step.send == Send::Reconnect {
                self.reconnect()?;
                continue;
            }
            let side = self.side(step.conn)?;
            let (r, f) = match (&step.send, step.mode) {
                (Send::Reconnect, _) => unreachable!("handled above"),
                (Send::Command(args), Mode::ScanAll) => (
                    scan_answer(&mut side.redis, args),
                    scan_answer(&mut side.flin, args),
                ),
                (Send::Command(args), _) => {
                    let bytes = encode_command(args);
                    let answers = match side.session.counted(args).filter(|_| !step.closes) {
                        Some(n) => (
                            side.redis.request_counted(&bytes, n),
                            side.flin.request_counted(&bytes, n),
                        ),
                        None => (
                            side.redis.request_synced(&bytes),
                            side.flin.request_synced(&bytes),
                        ),
                    };
                    side.session.follow(args, &answers.0);
                    answers
                }
                (Send::Raw(bytes), _) => (
                    side.redis.request_synced(bytes),
                    side.flin.request_synced(bytes),
                ),
            };
            if step.closes || r.end != End::Synced {
                // The connection was reopened: a fresh session.
                side.session = Session::default();
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Vec<u8>> {
        crate::compat::split_args(line).expect("splits")
    }

    fn answer(reply: &[u8]) -> Answer {
        Answer {
            replies: vec![reply.to_vec()],
            end: End::Synced,
        }
    }

    #[test]
    fn sessions_follow_multi_and_client_reply() {
        let mut s = Session::default();
        assert_eq!(s.counted(&args("GET k")), None);
        s.follow(&args("MULTI extra"), &answer(b"-ERR wrong number\r\n"));
        assert!(!s.multi);
        s.follow(&args("multi"), &answer(b"+OK\r\n"));
        assert!(s.multi);
        assert_eq!(s.counted(&args("GET k")), Some(1));
        s.follow(&args("DISCARD x"), &answer(b"-ERR wrong number\r\n"));
        assert!(s.multi, "a refused DISCARD leaves MULTI on");
        s.follow(&args("EXEC x"), &answer(b"-EXECABORT ...\r\n"));
        assert!(!s.multi, "any EXEC ends it");

        assert_eq!(s.counted(&args("CLIENT REPLY SKIP")), Some(0));
        assert_eq!(s.counted(&args("client reply off")), Some(0));
        s.follow(
            &args("client reply off"),
            &Answer {
                replies: vec![],
                end: End::Synced,
            },
        );
        assert!(s.replies_off);
        assert_eq!(s.counted(&args("GET k")), Some(0));
        s.follow(
            &args("MULTI"),
            &Answer {
                replies: vec![],
                end: End::Synced,
            },
        );
        assert!(s.multi && s.replies_off);
        assert_eq!(s.counted(&args("SET k v")), Some(0), "queued silently");
        assert_eq!(
            s.counted(&args("CLIENT REPLY ON")),
            Some(0),
            "queued silently"
        );
        assert_eq!(s.counted(&args("RESET")), None);
        s.follow(&args("RESET"), &answer(b"+RESET\r\n"));
        assert_eq!(s, Session::default());
    }
}
