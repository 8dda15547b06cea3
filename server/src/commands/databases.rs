//! Database commands: SELECT, MOVE, COPY, SWAPDB, FLUSHDB, DBSIZE. The selected database is
//! the client's (`Client::db`); every key command works in it through `Ctx::db`. MOVE and
//! COPY are one engine batch across the two databases, so no reader sees the key in both or
//! in neither, and a crash keeps all of it or none.

use flin_engine::Update;

use super::{eq_ignore_case, not_integer, parse_i64, syntax_error, Ctx};
use crate::protocol::reply;

/// Redis's `shared.sameobjecterr`.
const SAME_OBJECT: &str = "source and destination objects are the same";
const OUT_OF_RANGE: &str = "DB index is out of range";

/// Redis's `getIntFromObjectOrReply`: a C `int`, or the reply it makes (`msg` replaces both
/// of its errors when given).
fn int_arg(ctx: &mut Ctx<'_>, arg: &[u8], msg: Option<&str>) -> Option<i64> {
    match (parse_i64(arg), msg) {
        (Some(n), _) if i32::try_from(n).is_ok() => Some(n),
        (_, Some(msg)) => {
            reply::err(ctx.out, msg);
            None
        }
        (Some(_), None) => {
            reply::err(
                ctx.out,
                "value is out of range, value must between -2147483648 and 2147483647",
            );
            None
        }
        (None, None) => {
            not_integer(ctx.out);
            None
        }
    }
}

/// A database number this server has, or `None` (Redis's `selectDb` failing).
fn in_range(ctx: &Ctx<'_>, n: i64) -> Option<u32> {
    u32::try_from(n)
        .ok()
        .filter(|&d| d < ctx.server.config.databases)
}

/// A database argument: `-ERR DB index is out of range` when the server has no such one.
fn db_arg(ctx: &mut Ctx<'_>, arg: &[u8]) -> Option<u32> {
    let n = int_arg(ctx, arg, None)?;
    let db = in_range(ctx, n);
    if db.is_none() {
        reply::err(ctx.out, OUT_OF_RANGE);
    }
    db
}

pub fn select(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if let Some(db) = db_arg(ctx, args[1]) {
        ctx.client.db = db;
        ctx.client.entry.set_db(db);
        reply::ok(ctx.out);
    }
}

/// SWAPDB index1 index2: O(1) and durable (see `Engine::swap_databases`).
pub fn swapdb(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let Some(a) = int_arg(ctx, args[1], Some("invalid first DB index")) else {
        return;
    };
    let Some(b) = int_arg(ctx, args[2], Some("invalid second DB index")) else {
        return;
    };
    let (Some(a), Some(b)) = (in_range(ctx, a), in_range(ctx, b)) else {
        return reply::err(ctx.out, OUT_OF_RANGE);
    };
    match ctx.engine.swap_databases(a, b) {
        Ok(()) => reply::ok(ctx.out),
        Err(e) => ctx.write_error(&e),
    }
}

/// MOVE key db: 1 when moved, 0 when the key is absent here or present there.
pub fn move_(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let Some(dst) = db_arg(ctx, args[2]) else {
        return;
    };
    let src = ctx.client.db;
    if src == dst {
        return reply::err(ctx.out, SAME_OBJECT);
    }
    let key = args[1];
    let res = copy_across(ctx, (src, key), (dst, key), false, true);
    reply_copied(ctx, key, dst, res);
}

/// COPY source destination [DB destination-db] [REPLACE].
pub fn copy(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let src = ctx.client.db;
    let mut dst = src;
    let mut replace = false;
    let mut j = 3;
    while j < args.len() {
        if eq_ignore_case(args[j], "replace") {
            replace = true;
        } else if eq_ignore_case(args[j], "db") && j + 1 < args.len() {
            let Some(db) = db_arg(ctx, args[j + 1]) else {
                return;
            };
            dst = db;
            j += 1;
        } else {
            return syntax_error(ctx.out);
        }
        j += 1;
    }
    let (key, new_key) = (args[1], args[2]);
    if src == dst && key == new_key {
        return reply::err(ctx.out, SAME_OBJECT);
    }
    let res = copy_across(ctx, (src, key), (dst, new_key), replace, false);
    reply_copied(ctx, new_key, dst, res);
}

/// Copies `from` to `to` as one batch, deleting `from` when `delete` (MOVE); `to` is
/// overwritten only when `replace`. The expiry goes along. Returns the expiry when copied.
fn copy_across(
    ctx: &mut Ctx<'_>,
    from: (u32, &[u8]),
    to: (u32, &[u8]),
    replace: bool,
    delete: bool,
) -> Result<(Option<u64>, Option<flin_engine::WriteToken>), flin_engine::Error> {
    let mut value = Vec::new();
    let value = &mut value;
    let touch = !ctx.client.no_touch;
    ctx.engine
        .update_many_across(&[from, to], touch, move |cur| {
            let keep = vec![Update::Keep; 2];
            let Some(e) = cur[0] else {
                return (keep, None);
            };
            if cur[1].is_some() && !replace {
                return (keep, None);
            }
            value.extend_from_slice(e.value);
            let value: &[u8] = value;
            let put = Update::Put {
                value,
                expire_at_ms: e.expire_at_ms,
            };
            let first = if delete { Update::Delete } else { Update::Keep };
            (vec![first, put], Some(e.expire_at_ms))
        })
}

fn reply_copied(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    db: u32,
    res: Result<(Option<u64>, Option<flin_engine::WriteToken>), flin_engine::Error>,
) {
    match res {
        Ok((Some(expire_at_ms), token)) => {
            ctx.wrote(token);
            if expire_at_ms != 0 {
                ctx.expiry.track(db, key, expire_at_ms);
            }
            reply::integer(ctx.out, 1);
        }
        Ok((None, _)) => reply::integer(ctx.out, 0),
        Err(e) => ctx.write_error(&e),
    }
}

/// FLUSHDB [ASYNC | SYNC]: the selected database only, synchronous and durable on return.
pub fn flushdb(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if !flush_args_ok(args) {
        return syntax_error(ctx.out);
    }
    match ctx.db().clear() {
        Ok(()) => reply::ok(ctx.out),
        Err(e) => ctx.write_error(&e),
    }
}

/// FLUSHALL's and FLUSHDB's one optional argument.
pub(super) fn flush_args_ok(args: &[&[u8]]) -> bool {
    args.len() == 1
        || (args.len() == 2
            && (eq_ignore_case(args[1], "async") || eq_ignore_case(args[1], "sync")))
}

pub fn dbsize(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    reply::integer(ctx.out, ctx.db().len() as i64);
}

/// INFO's keyspace section: a line for each database holding keys, as Redis's: `keys` and
/// `expires` exact (expired keys not yet removed included), `avg_ttl` the expiry sweep's
/// running estimate (see `Engine::keyspace`).
pub(super) fn info_keyspace(engine: &flin_engine::Engine, s: &mut String) {
    s.push_str("# Keyspace\r\n");
    for k in engine.keyspace() {
        s.push_str(&format!(
            "db{}:keys={},expires={},avg_ttl={}\r\n",
            k.db, k.keys, k.expires, k.avg_ttl_ms
        ));
    }
}
