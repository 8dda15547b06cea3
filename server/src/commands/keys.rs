//! Keyspace commands: DEL/UNLINK, EXISTS/TOUCH, EXPIRE family (NX/XX/GT/LT), TTL family,
//! PERSIST, TYPE, RENAME, RENAMENX, RANDOMKEY, KEYS, SCAN, FLUSHALL.

use std::cell::Cell;

use flin_engine::Update;

use super::{eq_ignore_case, not_integer, parse_i64, syntax_error, Ctx};
use crate::clock::now_ms;
use crate::glob;
use crate::protocol::reply;

/// DEL and UNLINK: several keys are deleted as one atomic batch; repeats count once.
pub fn del(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let keys = &args[1..];
    let res = if let [key] = keys {
        ctx.db()
            .delete(key)
            .map(|token| (i64::from(token.is_some()), token))
    } else {
        ctx.db().update_many(keys, |cur| {
            let mut seen = std::collections::HashSet::new();
            let live = cur
                .iter()
                .zip(keys)
                .filter(|(e, key)| e.is_some() && seen.insert(**key))
                .count();
            (vec![Update::Delete; keys.len()], live as i64)
        })
    };
    match res {
        Ok((deleted, token)) => {
            ctx.wrote(token);
            reply::integer(ctx.out, deleted);
        }
        Err(e) => ctx.write_error(&e),
    }
}

/// EXISTS and TOUCH: how many of the keys (repeats counted) exist.
/// Several keys are read at one instant. TOUCH stamps their access clocks, even for a
/// client in CLIENT NO-TOUCH mode; EXISTS never does (Redis's `LOOKUP_NOTOUCH`).
pub fn exists(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let db = if eq_ignore_case(args[0], "touch") {
        ctx.engine.db(ctx.client.db)
    } else {
        ctx.db_no_touch()
    };
    let n = match &args[1..] {
        [key] => usize::from(db.contains(key)),
        keys => db.get_many_with(keys, |cur| cur.iter().filter(|e| e.is_some()).count()),
    };
    reply::integer(ctx.out, n as i64);
}

pub fn expire(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    expire_generic(ctx, args, now_ms(), 1000);
}

pub fn pexpire(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    expire_generic(ctx, args, now_ms(), 1);
}

pub fn expireat(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    expire_generic(ctx, args, 0, 1000);
}

pub fn pexpireat(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    expire_generic(ctx, args, 0, 1);
}

#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// Redis's `expireGenericCommand`: `basetime` 0 for the absolute forms, `unit_ms` 1000 for
/// seconds.
fn expire_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], basetime: i64, unit_ms: i64) {
    let mut f = ExpireFlags::default();
    for opt in &args[3..] {
        if eq_ignore_case(opt, "nx") {
            f.nx = true;
        } else if eq_ignore_case(opt, "xx") {
            f.xx = true;
        } else if eq_ignore_case(opt, "gt") {
            f.gt = true;
        } else if eq_ignore_case(opt, "lt") {
            f.lt = true;
        } else {
            let mut msg = b"ERR Unsupported option ".to_vec();
            msg.extend_from_slice(opt);
            return reply::error(ctx.out, &msg);
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return reply::err(
            ctx.out,
            "NX and XX, GT or LT options at the same time are not compatible",
        );
    }
    if f.gt && f.lt {
        return reply::err(
            ctx.out,
            "GT and LT options at the same time are not compatible",
        );
    }
    let Some(when) = parse_i64(args[2]) else {
        return not_integer(ctx.out);
    };
    let cmd = std::str::from_utf8(args[0])
        .unwrap_or("expire")
        .to_ascii_lowercase();
    let Some(when) = when
        .checked_mul(unit_ms)
        .and_then(|w| w.checked_add(basetime))
    else {
        return reply::err(ctx.out, &format!("invalid expire time in '{cmd}' command"));
    };
    // On a replica applying its primary's stream, a time already past still sets the expiry:
    // the primary decides when the key goes (its DEL follows), as Redis's replicas do.
    let now = if ctx.client.from_primary {
        i64::MIN
    } else {
        now_ms()
    };
    let res = ctx.db().update(args[1], |cur| {
        let Some(e) = cur else {
            return (Update::Keep, 0);
        };
        // Redis's view: -1 = no expiry (an infinite TTL).
        let current = if e.expire_at_ms == 0 {
            -1
        } else {
            e.expire_at_ms as i64
        };
        let refused = (f.nx && current != -1)
            || (f.xx && current == -1)
            || (f.gt && (current == -1 || when <= current))
            || (f.lt && current != -1 && when >= current);
        if refused {
            return (Update::Keep, 0);
        }
        if when <= now {
            return (Update::Delete, 1);
        }
        (
            Update::SetExpiry {
                expire_at_ms: when as u64,
            },
            1,
        )
    });
    match res {
        Ok((n, token)) => {
            if n == 1 && when > now {
                ctx.track_expiry(args[1], when as u64);
            }
            reply::integer(ctx.out, n);
            ctx.wrote(token);
        }
        Err(e) => ctx.write_error(&e),
    }
}

pub fn ttl(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    ttl_generic(ctx, args[1], false, false);
}

pub fn pttl(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    ttl_generic(ctx, args[1], true, false);
}

pub fn expiretime(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    ttl_generic(ctx, args[1], false, true);
}

pub fn pexpiretime(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    ttl_generic(ctx, args[1], true, true);
}

/// Redis's `ttlGenericCommand`: -2 no key, -1 no expiry, else the TTL (or the absolute
/// expiry), in ms or rounded to seconds.
fn ttl_generic(ctx: &mut Ctx<'_>, key: &[u8], output_ms: bool, output_abs: bool) {
    let expire = ctx
        .db_no_touch()
        .get_with(key, |e| e.map(|e| e.expire_at_ms));
    let n = match expire {
        None => -2,
        Some(0) => -1,
        Some(at) => {
            let at = at as i64;
            let t = if output_abs {
                at
            } else {
                (at - now_ms()).max(0)
            };
            if output_ms {
                t
            } else {
                // Redis rounds (ttl + 500) / 1000 without overflowing near i64::MAX.
                ((i128::from(t) + 500) / 1000) as i64
            }
        }
    };
    reply::integer(ctx.out, n);
}

pub fn persist(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let res = ctx.db().update(args[1], |cur| match cur {
        Some(e) if e.expire_at_ms != 0 => (Update::SetExpiry { expire_at_ms: 0 }, 1),
        _ => (Update::Keep, 0),
    });
    match res {
        Ok((n, token)) => {
            reply::integer(ctx.out, n);
            ctx.wrote(token);
        }
        Err(e) => ctx.write_error(&e),
    }
}

pub fn type_(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if ctx.db_no_touch().contains(args[1]) {
        reply::simple(ctx.out, b"string");
    } else {
        reply::simple(ctx.out, b"none");
    }
}

pub fn rename(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    rename_generic(ctx, args, false);
}

pub fn renamenx(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    rename_generic(ctx, args, true);
}

/// What RENAME found.
enum Renamed {
    NoSuchKey,
    TargetExists,
    Done { expire_at_ms: u64 },
}

/// RENAME moves the value and expiry to the new key and deletes the old one, as one atomic
/// batch: no reader, concurrent writer or restart sees the value under both names or neither.
fn rename_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], nx: bool) {
    let (src, dst) = (args[1], args[2]);
    if src == dst {
        return match (ctx.db().contains(src), nx) {
            (false, _) => reply::err(ctx.out, "no such key"),
            (true, true) => reply::integer(ctx.out, 0),
            (true, false) => reply::ok(ctx.out),
        };
    }
    let mut moved = Vec::new();
    let moved = &mut moved;
    let res = ctx.db().update_many(&[src, dst], move |cur| {
        let keep = vec![Update::Keep; 2];
        let Some(e) = cur[0] else {
            return (keep, Renamed::NoSuchKey);
        };
        if nx && cur[1].is_some() {
            return (keep, Renamed::TargetExists);
        }
        moved.extend_from_slice(e.value);
        let value: &[u8] = moved;
        let expire_at_ms = e.expire_at_ms;
        let updates = vec![
            Update::Delete,
            Update::Put {
                value,
                expire_at_ms,
            },
        ];
        (updates, Renamed::Done { expire_at_ms })
    });
    match res {
        Err(e) => ctx.write_error(&e),
        Ok((Renamed::NoSuchKey, _)) => reply::err(ctx.out, "no such key"),
        Ok((Renamed::TargetExists, _)) => reply::integer(ctx.out, 0),
        Ok((Renamed::Done { expire_at_ms }, token)) => {
            ctx.wrote(token);
            ctx.track_expiry(dst, expire_at_ms);
            if nx {
                reply::integer(ctx.out, 1);
            } else {
                reply::ok(ctx.out);
            }
        }
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (std::process::id() as u64).rotate_left(32)) | 1
}

/// xorshift64*: fast, not for secrets.
fn next_random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

pub fn randomkey(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    match ctx.db().random_key(next_random) {
        Some(k) => reply::bulk(ctx.out, &k),
        None => reply::null(ctx.out, ctx.client.resp),
    }
}

/// Keys visited per engine scan call while KEYS walks the whole keyspace.
const KEYS_SCAN_BATCH: usize = 4096;

pub fn keys(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let pattern = args[1];
    let all = pattern == b"*";
    let mut body = Vec::new();
    let mut n = 0usize;
    let mut cursor = 0;
    loop {
        cursor = ctx.db().scan(cursor, KEYS_SCAN_BATCH, |key, _| {
            if all || glob::matches(pattern, key, false) {
                reply::bulk(&mut body, key);
                n += 1;
            }
        });
        if cursor == 0 {
            break;
        }
    }
    reply::array_len(ctx.out, n);
    ctx.out.extend_from_slice(&body);
}

/// SCAN's COUNT default, as Redis.
const SCAN_COUNT_DEFAULT: usize = 10;
/// COUNT is capped so one call stays short.
const SCAN_COUNT_MAX: usize = 100_000;

/// Redis's `parseScanCursorOrReply`: C `strtoul(arg, &end, 10)` that must reach the end of
/// the argument (a NUL ends it), no leading blank, no overflow. So `""` is 0, `+5` is 5 and
/// `-1` is 2^64 - 1, as in Redis.
fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let arg = match memchr::memchr(0, arg) {
        Some(nul) => &arg[..nul],
        None => arg,
    };
    if arg.is_empty() {
        return Some(0);
    }
    let (neg, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

pub fn scan(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let Some(cursor) = parse_cursor(args[1]) else {
        return reply::err(ctx.out, "invalid cursor");
    };
    let mut count = SCAN_COUNT_DEFAULT;
    let mut pattern: Option<&[u8]> = None;
    let mut type_ok = true;
    let mut j = 2;
    while j < args.len() {
        let Some(value) = args.get(j + 1) else {
            return syntax_error(ctx.out);
        };
        if eq_ignore_case(args[j], "count") {
            match parse_i64(value) {
                Some(c) if c >= 1 => count = (c as usize).min(SCAN_COUNT_MAX),
                Some(_) => return syntax_error(ctx.out),
                None => return not_integer(ctx.out),
            }
        } else if eq_ignore_case(args[j], "match") {
            pattern = Some(*value).filter(|p| *p != b"*");
        } else if eq_ignore_case(args[j], "type") {
            type_ok = eq_ignore_case(value, "string");
        } else {
            return syntax_error(ctx.out);
        }
        j += 2;
    }
    let mut body = Vec::new();
    let mut n = 0usize;
    let next = ctx.db().scan(cursor, count, |key, _| {
        if type_ok && pattern.is_none_or(|p| glob::matches(p, key, false)) {
            reply::bulk(&mut body, key);
            n += 1;
        }
    });
    reply::array_len(ctx.out, 2);
    reply::bulk(ctx.out, next.to_string().as_bytes());
    reply::array_len(ctx.out, n);
    ctx.out.extend_from_slice(&body);
}

/// FLUSHALL [ASYNC | SYNC]: every database, synchronous, durable on return.
pub fn flushall(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if !super::databases::flush_args_ok(args) {
        return syntax_error(ctx.out);
    }
    match ctx.engine.clear() {
        Ok(()) => reply::ok(ctx.out),
        Err(e) => ctx.write_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b"42"), Some(42));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+7"), Some(7));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"007"), Some(7));
        assert_eq!(parse_cursor(b"5\0junk"), Some(5));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b"18446744073709551616"[..],
            b" 1",
            b"1 ",
            b"+",
            b"-",
            b"abc",
            b"0x1",
            b"1.5",
        ] {
            assert_eq!(
                parse_cursor(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
