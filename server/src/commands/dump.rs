//! DUMP and RESTORE in Redis's payload format (see [`crate::rdb`]), so values move between
//! flin and redis-server either way.
//!
//! RESTORE checks what Redis checks, in its order: options, then (without REPLACE) that the
//! key is free, then the TTL, then the payload's version and checksum, then the object. The
//! existence check and the write are one atomic step (`Engine::update`), so a concurrent
//! writer cannot slip in between. IDLETIME sets the restored key's access clock (OBJECT
//! IDLETIME); FREQ is accepted and checked, and, as on a Redis without an LFU policy, sets
//! nothing (flin keeps no access counter).

use flin_engine::{Update, VALUE_LEN_MAX};

use super::{eq_ignore_case, not_integer, parse_i64, syntax_error, Ctx};
use crate::clock::now_ms;
use crate::protocol::reply;
use crate::rdb::{self, PayloadError};

pub fn dump(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let payload = ctx
        .db()
        .get_with(args[1], |e| e.map(|e| rdb::dump_string(e.value)));
    ctx.hit(payload.is_some());
    match payload {
        Some(p) => reply::bulk(ctx.out, &p),
        None => reply::null(ctx.out, ctx.client.resp),
    }
}

#[derive(Default)]
struct RestoreOptions {
    replace: bool,
    absttl: bool,
    /// IDLETIME: seconds the restored key looks idle for.
    idle_s: Option<u64>,
}

/// RESTORE's options, as `restoreCommand` parses them: IDLETIME and FREQ exclude each other
/// (the second is then a syntax error). `None` once an error has been replied.
fn parse_options(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Option<RestoreOptions> {
    let mut o = RestoreOptions::default();
    let (mut idle, mut freq) = (false, false);
    let mut j = 4;
    while j < args.len() {
        let more = j + 1 < args.len();
        let a = args[j];
        if eq_ignore_case(a, "replace") {
            o.replace = true;
        } else if eq_ignore_case(a, "absttl") {
            o.absttl = true;
        } else if eq_ignore_case(a, "idletime") && more && !freq {
            match parse_i64(args[j + 1]) {
                None => not_integer(ctx.out),
                Some(n) if n < 0 => reply::err(ctx.out, "Invalid IDLETIME value, must be >= 0"),
                Some(n) => {
                    idle = true;
                    o.idle_s = Some(n as u64);
                }
            }
            if !idle {
                return None;
            }
            j += 1;
        } else if eq_ignore_case(a, "freq") && more && !idle {
            match parse_i64(args[j + 1]) {
                None => not_integer(ctx.out),
                Some(n) if !(0..=255).contains(&n) => {
                    reply::err(ctx.out, "Invalid FREQ value, must be >= 0 and <= 255")
                }
                Some(_) => freq = true,
            }
            if !freq {
                return None;
            }
            j += 1;
        } else {
            syntax_error(ctx.out);
            return None;
        }
        j += 1;
    }
    Some(o)
}

/// What RESTORE found once the key was looked at.
enum Outcome {
    Busy,
    Error(&'static str),
    NotInteger,
    Restored { expire_at_ms: u64 },
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ n]
pub fn restore(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let Some(o) = parse_options(ctx, args) else {
        return;
    };
    let now = now_ms();
    // On a replica the primary decides when a key expires (see `keys::expire`).
    let from_primary = ctx.client.from_primary;
    // Checked now, answered only once the key is known to be free (Redis's order).
    let ttl = match parse_i64(args[2]) {
        None => Err(Outcome::NotInteger),
        Some(t) if t < 0 => Err(Outcome::Error("Invalid TTL value, must be >= 0")),
        Some(t) => Ok(t),
    };
    let max_len = ctx.server.proto_max_bulk_len().min(VALUE_LEN_MAX as u64);
    let payload = args[3];
    let value = rdb::verify_payload(payload).and_then(|()| rdb::payload_string(payload, max_len));
    let res = ctx.db().update(args[1], |cur| {
        if !o.replace && cur.is_some() {
            return (Update::Keep, Outcome::Busy);
        }
        let ttl = match ttl {
            Ok(t) => t,
            Err(e) => return (Update::Keep, e),
        };
        let value = match &value {
            Ok(v) => v,
            Err(PayloadError::VersionOrChecksum) => {
                return (
                    Update::Keep,
                    Outcome::Error("DUMP payload version or checksum are wrong"),
                )
            }
            Err(PayloadError::BadData) => return (Update::Keep, Outcome::Error("Bad data format")),
        };
        let at = match ttl {
            0 => 0,
            t if o.absttl => t,
            t => t.saturating_add(now),
        };
        if at != 0 && at <= now && !from_primary {
            // Already expired: nothing is created, and REPLACE still removes the old key.
            return (Update::Delete, Outcome::Restored { expire_at_ms: 0 });
        }
        let expire_at_ms = at as u64;
        (
            Update::Put {
                value: value.as_ref(),
                expire_at_ms,
            },
            Outcome::Restored { expire_at_ms },
        )
    });
    match res {
        Ok((Outcome::Restored { expire_at_ms }, token)) => {
            ctx.wrote(token);
            ctx.track_expiry(args[1], expire_at_ms);
            if let Some(s) = o.idle_s {
                ctx.db_no_touch().set_idle_s(args[1], s);
            }
            reply::ok(ctx.out);
        }
        Ok((Outcome::Busy, _)) => reply::error(ctx.out, b"BUSYKEY Target key name already exists."),
        Ok((Outcome::Error(msg), _)) => reply::err(ctx.out, msg),
        Ok((Outcome::NotInteger, _)) => not_integer(ctx.out),
        Err(e) => ctx.write_error(&e),
    }
}
