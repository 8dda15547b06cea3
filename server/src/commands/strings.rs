//! String commands: GET, SET (EX/PX/EXAT/PXAT/KEEPTTL, NX/XX, GET), SETNX, SETEX, PSETEX,
//! GETDEL, GETSET, GETEX, MGET, MSET, MSETNX, APPEND, STRLEN, GETRANGE, SETRANGE and the
//! counters INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT.
//!
//! Read-modify-write commands go through [`flin_engine::Engine::update`], atomic per key.
//! Replies written inside an update closure are rolled back when the write then fails.

use flin_engine::{Entry, Update};

use super::{arity_error, eq_ignore_case, not_integer, parse_i64, syntax_error, Ctx};
use crate::clock::now_ms;
use crate::float80;
use crate::protocol::reply;

/// Longest string value (Redis's proto-max-bulk-len default, and the engine's limit).
const STRING_LEN_MAX: usize = 512 * 1024 * 1024;

pub fn get(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let db = ctx.db();
    let (out, resp) = (&mut *ctx.out, ctx.client.resp);
    let found = db.get_with(args[1], |e| match e {
        Some(e) => {
            reply::bulk(out, e.value);
            true
        }
        None => {
            reply::null(out, resp);
            false
        }
    });
    ctx.hit(found);
}

/// Expiry options shared by SET and GETEX.
#[derive(Default, Clone, Copy)]
struct ExpiryOpts {
    /// Absolute Unix ms, when EX/PX/EXAT/PXAT was given.
    at_ms: Option<i64>,
    keep_ttl: bool,
    persist: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpiryUnit {
    Seconds,
    Millis,
}

/// Redis's `getExpireMillisecondsOrReply`: the option's value as absolute Unix ms, or the
/// error reply.
fn expire_at(
    out: &mut Vec<u8>,
    raw: &[u8],
    unit: ExpiryUnit,
    relative: bool,
    cmd: &str,
) -> Option<i64> {
    let Some(mut ms) = parse_i64(raw) else {
        not_integer(out);
        return None;
    };
    if ms <= 0 || (unit == ExpiryUnit::Seconds && ms > i64::MAX / 1000) {
        invalid_expire(out, cmd);
        return None;
    }
    if unit == ExpiryUnit::Seconds {
        ms *= 1000;
    }
    if relative {
        let Some(at) = ms.checked_add(now_ms()) else {
            invalid_expire(out, cmd);
            return None;
        };
        ms = at;
    }
    Some(ms)
}

fn invalid_expire(out: &mut Vec<u8>, cmd: &str) {
    reply::err(out, &format!("invalid expire time in '{cmd}' command"));
}

/// The expiry SET/GETEX writes: `None` when the key must be deleted (already expired; never
/// on a replica applying its primary's stream, `from_primary`: the primary decides).
fn resolve_expiry(opts: ExpiryOpts, current: Option<Entry<'_>>, from_primary: bool) -> Option<u64> {
    match opts.at_ms {
        Some(at) if at <= now_ms() && !from_primary => None,
        Some(at) => Some(at as u64),
        None if opts.keep_ttl => Some(current.map_or(0, |e| e.expire_at_ms)),
        None => Some(0),
    }
}

/// The options of SET (`is_set`) or GETEX, as Redis 7.0's
/// `parseExtendedStringArgumentsOrReply` accepts them.
#[derive(Default, Clone, Copy)]
struct ExtendedArgs<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    /// EX/PX/EXAT/PXAT: unit, relative to now, raw value (the last one given).
    expiry: Option<(ExpiryUnit, bool, &'a [u8])>,
}

/// `None` for Redis's `-ERR syntax error`. Like Redis, an expiry option excludes the other
/// kinds but may be repeated (the last value wins); KEEPTTL (SET) and PERSIST (GETEX) exclude
/// every expiry option; NX and XX exclude each other; any option may repeat.
fn parse_extended<'a>(args: &[&'a [u8]], is_set: bool) -> Option<ExtendedArgs<'a>> {
    let mut a = ExtendedArgs::default();
    let mut j = if is_set { 3 } else { 2 };
    while j < args.len() {
        let opt = args[j];
        let next = args.get(j + 1).copied();
        if is_set && eq_ignore_case(opt, "nx") && !a.xx {
            a.nx = true;
        } else if is_set && eq_ignore_case(opt, "xx") && !a.nx {
            a.xx = true;
        } else if is_set && eq_ignore_case(opt, "get") {
            a.get = true;
        } else if is_set && eq_ignore_case(opt, "keepttl") && a.expiry.is_none() {
            a.keep_ttl = true;
        } else if !is_set && eq_ignore_case(opt, "persist") && a.expiry.is_none() {
            a.persist = true;
        } else {
            let (unit, relative) = expiry_option(opt)?;
            let v = next?;
            let same_kind = a.expiry.is_none_or(|(u, r, _)| (u, r) == (unit, relative));
            if a.keep_ttl || a.persist || !same_kind {
                return None;
            }
            a.expiry = Some((unit, relative, v));
            j += 1;
        }
        j += 1;
    }
    Some(a)
}

pub fn set(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let Some(ext) = parse_extended(args, true) else {
        return syntax_error(ctx.out);
    };
    let (nx, xx, get) = (ext.nx, ext.xx, ext.get);
    let mut opts = ExpiryOpts {
        keep_ttl: ext.keep_ttl,
        ..ExpiryOpts::default()
    };
    if let Some((unit, relative, raw)) = ext.expiry {
        match expire_at(ctx.out, raw, unit, relative, "set") {
            Some(at) => opts.at_ms = Some(at),
            None => return,
        }
    }
    let (key, value) = (args[1], args[2]);
    let mark = ctx.out.len();
    // A plain SET writes whatever the key holds: a blind write, which needs no read of the
    // key's old record (not even from disk, when it is not in memory).
    if !nx && !xx && !get && !opts.keep_ttl {
        if let Some(expire_at_ms) = resolve_expiry(opts, None, ctx.client.from_primary) {
            reply::ok(ctx.out);
            let res = ctx.db().put(key, value, expire_at_ms);
            if res.is_ok() {
                if let Some(at) = opts.at_ms {
                    ctx.track_expiry(key, at as u64);
                }
            }
            return finish(ctx, mark, res.map(Some));
        }
    }
    let db = ctx.db();
    let from_primary = ctx.client.from_primary;
    let (out, resp) = (&mut *ctx.out, ctx.client.resp);
    let res = db.update(key, |cur| {
        if get {
            match cur {
                Some(e) => reply::bulk(out, e.value),
                None => reply::null(out, resp),
            }
        }
        if (nx && cur.is_some()) || (xx && cur.is_none()) {
            if !get {
                reply::null(out, resp);
            }
            return (Update::Keep, ());
        }
        if !get {
            reply::ok(out);
        }
        match resolve_expiry(opts, cur, from_primary) {
            Some(expire_at_ms) => (
                Update::Put {
                    value,
                    expire_at_ms,
                },
                (),
            ),
            None => (Update::Delete, ()),
        }
    });
    if res.is_ok() {
        if let Some(at) = opts.at_ms {
            ctx.track_expiry(key, at as u64);
        }
    }
    finish(ctx, mark, res.map(|(_, t)| t));
}

/// Records the write's token, or replaces whatever the command replied with the write error.
fn finish(
    ctx: &mut Ctx<'_>,
    mark: usize,
    res: flin_engine::Result<Option<flin_engine::WriteToken>>,
) {
    match res {
        Ok(token) => ctx.wrote(token),
        Err(e) => {
            ctx.out.truncate(mark);
            ctx.write_error(&e);
        }
    }
}

pub fn setnx(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let value = args[2];
    let mark = ctx.out.len();
    let res = ctx.db().update(args[1], |cur| match cur {
        Some(_) => (Update::Keep, 0),
        None => (
            Update::Put {
                value,
                expire_at_ms: 0,
            },
            1,
        ),
    });
    match res {
        Ok((n, token)) => {
            reply::integer(ctx.out, n);
            ctx.wrote(token);
        }
        Err(e) => finish(ctx, mark, Err(e)),
    }
}

pub fn setex(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    set_with_expiry(ctx, args, ExpiryUnit::Seconds, "setex");
}

pub fn psetex(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    set_with_expiry(ctx, args, ExpiryUnit::Millis, "psetex");
}

fn set_with_expiry(ctx: &mut Ctx<'_>, args: &[&[u8]], unit: ExpiryUnit, cmd: &str) {
    let Some(at) = expire_at(ctx.out, args[2], unit, true, cmd) else {
        return;
    };
    let res = ctx.db().put(args[1], args[3], at as u64);
    if res.is_ok() {
        ctx.track_expiry(args[1], at as u64);
    }
    let mark = ctx.out.len();
    reply::ok(ctx.out);
    finish(ctx, mark, res.map(Some));
}

pub fn getdel(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let mark = ctx.out.len();
    let db = ctx.db();
    let (out, resp) = (&mut *ctx.out, ctx.client.resp);
    let res = db.update(args[1], |cur| match cur {
        Some(e) => {
            reply::bulk(out, e.value);
            (Update::Delete, true)
        }
        None => {
            reply::null(out, resp);
            (Update::Keep, false)
        }
    });
    if let Ok((found, _)) = &res {
        ctx.hit(*found);
    }
    finish(ctx, mark, res.map(|(_, t)| t));
}

pub fn getset(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let value = args[2];
    let mark = ctx.out.len();
    let db = ctx.db();
    let (out, resp) = (&mut *ctx.out, ctx.client.resp);
    let res = db.update(args[1], |cur| {
        match cur {
            Some(e) => reply::bulk(out, e.value),
            None => reply::null(out, resp),
        }
        (
            Update::Put {
                value,
                expire_at_ms: 0,
            },
            (),
        )
    });
    finish(ctx, mark, res.map(|(_, t)| t));
}

pub fn getex(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let Some(ext) = parse_extended(args, false) else {
        return syntax_error(ctx.out);
    };
    let mut opts = ExpiryOpts {
        persist: ext.persist,
        ..ExpiryOpts::default()
    };
    // Like Redis, a missing key answers nil before the expiry value is checked: the error
    // (if any) is kept aside until the key is found.
    let mut invalid: Vec<u8> = Vec::new();
    if let Some((unit, relative, raw)) = ext.expiry {
        opts.at_ms = expire_at(&mut invalid, raw, unit, relative, "getex");
    }
    let mark = ctx.out.len();
    let db = ctx.db();
    let from_primary = ctx.client.from_primary;
    let (out, resp) = (&mut *ctx.out, ctx.client.resp);
    let res = db.update(args[1], |cur| {
        let Some(e) = cur else {
            reply::null(out, resp);
            return (Update::Keep, false);
        };
        if !invalid.is_empty() {
            out.extend_from_slice(&invalid);
            return (Update::Keep, true);
        }
        reply::bulk(out, e.value);
        let decision = if opts.persist {
            if e.expire_at_ms == 0 {
                Update::Keep
            } else {
                Update::SetExpiry { expire_at_ms: 0 }
            }
        } else if opts.at_ms.is_some() {
            match resolve_expiry(opts, cur, from_primary) {
                Some(at) => Update::SetExpiry { expire_at_ms: at },
                None => Update::Delete,
            }
        } else {
            Update::Keep
        };
        (decision, true)
    });
    if let Ok((found, _)) = &res {
        ctx.hit(*found);
        if let (true, Some(at)) = (*found, opts.at_ms) {
            ctx.track_expiry(args[1], at as u64);
        }
    }
    finish(ctx, mark, res.map(|(_, t)| t));
}

pub fn mget(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let keys = &args[1..];
    reply::array_len(ctx.out, keys.len());
    let db = ctx.db();
    let (out, resp) = (&mut *ctx.out, ctx.client.resp);
    let hits = db.get_many_with(keys, |entries| {
        let mut hits = 0u64;
        for e in entries {
            match e {
                Some(e) => {
                    reply::bulk(out, e.value);
                    hits += 1;
                }
                None => reply::null(out, resp),
            }
        }
        hits
    });
    ctx.keyspace_hits += hits;
    ctx.keyspace_misses += keys.len() as u64 - hits;
}

/// The keys of MSET/MSETNX's key-value pairs.
fn pair_keys<'a>(pairs: &[&'a [u8]]) -> Vec<&'a [u8]> {
    pairs.iter().step_by(2).copied().collect()
}

/// The puts of MSET/MSETNX's key-value pairs, without expiry (MSET clears a TTL, as Redis).
fn pair_puts<'a>(pairs: &[&'a [u8]]) -> Vec<Update<'a>> {
    pairs
        .chunks_exact(2)
        .map(|p| Update::Put {
            value: p[1],
            expire_at_ms: 0,
        })
        .collect()
}

/// MSET writes every pair as one atomic batch: readers and a restart see all or none.
pub fn mset(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if args.len() % 2 == 0 {
        return arity_error(ctx.out, "mset");
    }
    let pairs = &args[1..];
    match ctx
        .db()
        .update_many(&pair_keys(pairs), |_| (pair_puts(pairs), ()))
    {
        Ok(((), token)) => {
            ctx.wrote(token);
            reply::ok(ctx.out);
        }
        Err(e) => ctx.write_error(&e),
    }
}

/// MSETNX checks that no key exists and writes them all, in one atomic step.
pub fn msetnx(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if args.len() % 2 == 0 {
        return arity_error(ctx.out, "msetnx");
    }
    let pairs = &args[1..];
    let keys = pair_keys(pairs);
    let res = ctx.db().update_many(&keys, |cur| {
        if cur.iter().any(Option::is_some) {
            (vec![Update::Keep; cur.len()], 0)
        } else {
            (pair_puts(pairs), 1)
        }
    });
    match res {
        Ok((set, token)) => {
            ctx.wrote(token);
            reply::integer(ctx.out, set);
        }
        Err(e) => ctx.write_error(&e),
    }
}

pub(super) fn string_too_long(out: &mut Vec<u8>) {
    reply::err(
        out,
        "string exceeds maximum allowed size (proto-max-bulk-len)",
    );
}

pub fn append(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let suffix = args[2];
    let mut joined: Vec<u8> = Vec::new();
    let joined_ref = &mut joined;
    let res = ctx.db().update(args[1], |cur| {
        let old = cur.map_or(&[][..], |e| e.value);
        if old.len() + suffix.len() > STRING_LEN_MAX {
            return (Update::Keep, None);
        }
        joined_ref.reserve_exact(old.len() + suffix.len());
        joined_ref.extend_from_slice(old);
        joined_ref.extend_from_slice(suffix);
        let len = joined_ref.len() as i64;
        let value: &[u8] = joined_ref;
        (
            Update::Put {
                value,
                expire_at_ms: cur.map_or(0, |e| e.expire_at_ms),
            },
            Some(len),
        )
    });
    match res {
        Ok((Some(len), token)) => {
            reply::integer(ctx.out, len);
            ctx.wrote(token);
        }
        Ok((None, _)) => string_too_long(ctx.out),
        Err(e) => ctx.write_error(&e),
    }
}

pub fn strlen(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let len = ctx
        .db()
        .get_with(args[1], |e| e.map_or(0, |e| e.value.len()));
    reply::integer(ctx.out, len as i64);
}

pub fn getrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let (Some(start), Some(end)) = (parse_i64(args[2]), parse_i64(args[3])) else {
        return not_integer(ctx.out);
    };
    let db = ctx.db();
    let out = &mut *ctx.out;
    db.get_with(args[1], |e| {
        let s = e.map_or(&[][..], |e| e.value);
        match range(start, end, s.len()) {
            Some((a, b)) => reply::bulk(out, &s[a..=b]),
            None => reply::bulk(out, b""),
        }
    });
}

/// GETRANGE's index rules: negative counts from the end, clamped; `None` for empty.
fn range(mut start: i64, mut end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if start < 0 && end < 0 && start > end {
        return None;
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return None;
    }
    Some((start as usize, end as usize))
}

pub fn setrange(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let Some(offset) = parse_i64(args[2]) else {
        return not_integer(ctx.out);
    };
    if offset < 0 {
        return reply::err(ctx.out, "offset is out of range");
    }
    let offset = offset as usize;
    let patch = args[3];
    if !patch.is_empty() && offset.saturating_add(patch.len()) > STRING_LEN_MAX {
        return string_too_long(ctx.out);
    }
    let mut buf: Vec<u8> = Vec::new();
    let buf_ref = &mut buf;
    let res = ctx.db().update(args[1], |cur| {
        let old = cur.map_or(&[][..], |e| e.value);
        if patch.is_empty() {
            return (Update::Keep, old.len() as i64);
        }
        let new_len = old.len().max(offset + patch.len());
        buf_ref.reserve_exact(new_len);
        buf_ref.extend_from_slice(old);
        buf_ref.resize(new_len, 0);
        buf_ref[offset..offset + patch.len()].copy_from_slice(patch);
        let value: &[u8] = buf_ref;
        (
            Update::Put {
                value,
                expire_at_ms: cur.map_or(0, |e| e.expire_at_ms),
            },
            new_len as i64,
        )
    });
    match res {
        Ok((len, token)) => {
            reply::integer(ctx.out, len);
            ctx.wrote(token);
        }
        Err(e) => ctx.write_error(&e),
    }
}

pub fn incr(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    incr_by(ctx, args[1], 1);
}

pub fn decr(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    incr_by(ctx, args[1], -1);
}

pub fn incrby(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    match parse_i64(args[2]) {
        Some(n) => incr_by(ctx, args[1], n),
        None => not_integer(ctx.out),
    }
}

pub fn decrby(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    match parse_i64(args[2]) {
        Some(i64::MIN) => reply::err(ctx.out, "decrement would overflow"),
        Some(n) => incr_by(ctx, args[1], -n),
        None => not_integer(ctx.out),
    }
}

enum CounterError {
    NotInteger,
    Overflow,
}

fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) {
    let mut digits = Vec::with_capacity(24);
    let digits_ref = &mut digits;
    let res = ctx.db().update(key, |cur| {
        let old = match cur {
            None => 0,
            Some(e) => match parse_i64(e.value) {
                Some(v) => v,
                None => return (Update::Keep, Err(CounterError::NotInteger)),
            },
        };
        let Some(new) = old.checked_add(delta) else {
            return (Update::Keep, Err(CounterError::Overflow));
        };
        reply::push_i64(digits_ref, new);
        let value: &[u8] = digits_ref;
        (
            Update::Put {
                value,
                expire_at_ms: cur.map_or(0, |e| e.expire_at_ms),
            },
            Ok(new),
        )
    });
    match res {
        Ok((Ok(n), token)) => {
            reply::integer(ctx.out, n);
            ctx.wrote(token);
        }
        Ok((Err(CounterError::NotInteger), _)) => not_integer(ctx.out),
        Ok((Err(CounterError::Overflow), _)) => {
            reply::err(ctx.out, "increment or decrement would overflow")
        }
        Err(e) => ctx.write_error(&e),
    }
}

/// INCRBYFLOAT in C `long double` arithmetic, as Redis on x86-64 (see [`float80`]).
pub fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let incr = float80::parse(args[2]);
    let mut text = Vec::with_capacity(32);
    let text_ref = &mut text;
    let res = ctx.db().update(args[1], |cur| {
        // Like Redis, the stored value is checked before the increment.
        let old = match cur {
            None => Some(float80::F80::ZERO),
            Some(e) => float80::parse(e.value),
        };
        let (Some(old), Some(incr)) = (old, incr) else {
            return (Update::Keep, Err("value is not a valid float"));
        };
        let new = float80::add(old, incr);
        if !new.is_finite() {
            return (Update::Keep, Err("increment would produce NaN or Infinity"));
        }
        text_ref.extend_from_slice(float80::format_human(new).as_bytes());
        let value: &[u8] = text_ref;
        (
            Update::Put {
                value,
                expire_at_ms: cur.map_or(0, |e| e.expire_at_ms),
            },
            Ok(()),
        )
    });
    match res {
        Ok((Ok(()), token)) => {
            reply::bulk(ctx.out, &text);
            ctx.wrote(token);
        }
        Ok((Err(msg), _)) => reply::err(ctx.out, msg),
        Err(e) => ctx.write_error(&e),
    }
}

/// The unit of an EX / PX / EXAT / PXAT option and whether it is relative to now (SET, GETEX).
fn expiry_option(opt: &[u8]) -> Option<(ExpiryUnit, bool)> {
    match () {
        _ if eq_ignore_case(opt, "ex") => Some((ExpiryUnit::Seconds, true)),
        _ if eq_ignore_case(opt, "px") => Some((ExpiryUnit::Millis, true)),
        _ if eq_ignore_case(opt, "exat") => Some((ExpiryUnit::Seconds, false)),
        _ if eq_ignore_case(opt, "pxat") => Some((ExpiryUnit::Millis, false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getrange_rules() {
        assert_eq!(range(0, 3, 10), Some((0, 3)));
        assert_eq!(range(-3, -1, 10), Some((7, 9)));
        assert_eq!(range(0, -1, 10), Some((0, 9)));
        assert_eq!(range(5, 100, 10), Some((5, 9)));
        assert_eq!(range(-1, -5, 10), None);
        assert_eq!(range(5, 3, 10), None);
        assert_eq!(range(0, 0, 0), None);
        assert_eq!(range(-100, 2, 10), Some((0, 2)));
    }
}
