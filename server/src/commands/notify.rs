//! Keyspace notifications of the string and generic commands, with Redis 7.0's event names
//! (checked against redis-server with `notify-keyspace-events KEAn`).
//!
//! Nothing here runs unless `notify-keyspace-events` asks for events: `execute` loads one
//! atomic. When it does, [`before`] expires the command's keys that are due (Redis expires a
//! key lazily when a command touches it, with an `expired` event) and notes which exist;
//! [`after`] compares with what the command did (whether it wrote: its write token moved;
//! which keys exist now) and publishes the events Redis would.

use flin_engine::WriteToken;

use super::table::{CommandSpec, READONLY};
use super::{eq_ignore_case, keys_of, Ctx};
use crate::notify::{EXPIRED, GENERIC, KEY_MISS, NEW, STRING};

/// The database events are reported in: the client's selected one.
fn db(ctx: &Ctx<'_>) -> u32 {
    ctx.client.db
}

/// Publishes one event about `key` (this client's own messages go into its replies).
pub(super) fn event(ctx: &mut Ctx<'_>, class: u32, name: &str, key: &[u8]) {
    let db = db(ctx);
    event_in(ctx, db, class, name, key);
}

/// As [`event`], about `key` in database `db` (MOVE's and COPY's destination).
fn event_in(ctx: &mut Ctx<'_>, db: u32, class: u32, name: &str, key: &[u8]) {
    let me = Some((ctx.client.id, &mut *ctx.out, ctx.client.resp == 3));
    ctx.server.pubsub.key_event(class, name, key, db, me);
}

/// What [`before`] saw: the command's write token then, and which of its keys existed.
pub(super) struct Before {
    token: Option<WriteToken>,
    existed: Vec<bool>,
}

/// Runs before a command with keys while events are wanted: lazily expires its keys that
/// are due, and notes which exist.
pub(super) fn before(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Before {
    let mut keys = Vec::new();
    keys_of(args, |k| keys.push(k));
    let mut existed = Vec::with_capacity(keys.len());
    for k in keys {
        if super::propagate::expire_lazily(ctx, k) {
            crate::stats::add(&ctx.server.workers[ctx.worker].expired_keys, 1);
            event(ctx, EXPIRED, "expired", k);
        }
        existed.push(ctx.db().contains(k));
    }
    Before {
        token: ctx.token,
        existed,
    }
}

/// Whether `args` carries one of `options` from index `from` on (SET's options follow its
/// value, GETEX's its key).
fn has_option(args: &[&[u8]], from: usize, options: &[&str]) -> bool {
    args.iter()
        .skip(from)
        .any(|a| options.iter().any(|o| eq_ignore_case(a, o)))
}

/// The keys whose absence a command reports as `keymiss` ('m'): those Redis looks up for
/// reading (every key of a read-only command; the key of GETDEL, GETEX, GETSET, SET ... GET,
/// BITFIELD with only GET; BITOP's sources).
fn read_keys(spec: &CommandSpec, args: &[&[u8]], keys: usize) -> std::ops::Range<usize> {
    let first_only = match spec.name {
        _ if spec.flags & READONLY != 0 => return 0..keys,
        "getdel" | "getex" | "getset" => true,
        "set" => has_option(args, 3, &["get"]),
        "bitfield" => !has_option(args, 2, &["set", "incrby"]),
        "bitop" => return 1..keys,
        _ => false,
    };
    0..usize::from(first_only).min(keys)
}

/// Publishes the events of the command that just ran, given what [`before`] saw. Its reply
/// starts at `reply_at` in the client's replies: events this client receives itself (RESP3)
/// go before it, as Redis notifies before it replies.
pub(super) fn after(
    ctx: &mut Ctx<'_>,
    spec: &CommandSpec,
    args: &[&[u8]],
    b: Before,
    reply_at: usize,
) {
    let own_from = ctx.out.len();
    publish_events(ctx, spec, args, b);
    if ctx.out.len() > own_from && reply_at < own_from {
        let own = ctx.out.split_off(own_from);
        ctx.out.splice(reply_at..reply_at, own);
    }
}

fn publish_events(ctx: &mut Ctx<'_>, spec: &CommandSpec, args: &[&[u8]], b: Before) {
    let name = spec.name;
    if ctx.server.pubsub.events.wants(KEY_MISS) {
        let mut keys = Vec::new();
        keys_of(args, |k| keys.push(k));
        for i in read_keys(spec, args, keys.len()) {
            if !b.existed[i] {
                event(ctx, KEY_MISS, "keymiss", keys[i]);
            }
        }
    }
    if ctx.token <= b.token {
        return; // Wrote nothing: no event.
    }
    let mut keys = Vec::new();
    keys_of(args, |k| keys.push(k));
    // These replace their destination: Redis deletes it and adds the key anew.
    let replaces = matches!(name, "rename" | "renamenx" | "restore");
    let dst = keys.len() - 1;
    // What the command left, whatever the clock did since: a key it wrote with a 1 ms time
    // to live is still one it created (Redis reports it before any expiry).
    let exists: Vec<bool> = keys.iter().map(|k| ctx.db().holds(k)).collect();
    // Keys the command created ('n'): each announced just before the command's first event
    // about it, as Redis's dbAdd does.
    let mut created: Vec<bool> = (0..keys.len())
        .map(|i| {
            exists[i] && (!b.existed[i] || (replaces && i == dst)) && !keys[..i].contains(&keys[i])
        })
        .collect();
    if replaces && name != "restore" && created[dst] {
        // RENAME adds the destination before it reports either key.
        created[dst] = false;
        event(ctx, NEW, "new", keys[dst]);
    }
    let all_keys = keys.clone();
    let mut event = |ctx: &mut Ctx<'_>, class: u32, name: &str, key: &[u8]| {
        if let Some(i) = keys.iter().position(|k| *k == key).filter(|&i| created[i]) {
            created[i] = false;
            event(ctx, NEW, "new", key);
        }
        event(ctx, class, name, key);
    };
    const EXPIRY_OPTIONS: &[&str] = &["ex", "px", "exat", "pxat"];
    match name {
        "set" => {
            event(ctx, STRING, "set", keys[0]);
            if has_option(args, 3, EXPIRY_OPTIONS) {
                event(ctx, GENERIC, "expire", keys[0]);
            }
        }
        "setex" | "psetex" => {
            event(ctx, STRING, "set", keys[0]);
            event(ctx, GENERIC, "expire", keys[0]);
        }
        "setnx" | "getset" | "mset" | "msetnx" => {
            for k in all_keys {
                event(ctx, STRING, "set", k);
            }
        }
        "incr" | "decr" | "incrby" | "decrby" => event(ctx, STRING, "incrby", keys[0]),
        "incrbyfloat" | "append" | "setrange" => event(ctx, STRING, name, keys[0]),
        "setbit" | "bitfield" => event(ctx, STRING, "setbit", keys[0]),
        "bitop" => {
            let ev = if exists[0] { "set" } else { "del" };
            let class = if exists[0] { STRING } else { GENERIC };
            event(ctx, class, ev, keys[0]);
        }
        "restore" => event(ctx, GENERIC, "restore", keys[0]),
        "del" | "unlink" | "getdel" => {
            for (i, k) in all_keys.iter().enumerate() {
                if b.existed[i] && !exists[i] && !all_keys[..i].contains(k) {
                    event(ctx, GENERIC, "del", k);
                }
            }
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            let ev = if exists[0] { "expire" } else { "del" };
            event(ctx, GENERIC, ev, keys[0]);
        }
        "persist" => event(ctx, GENERIC, "persist", keys[0]),
        "getex" => {
            if has_option(args, 2, &["persist"]) {
                event(ctx, GENERIC, "persist", keys[0]);
            } else if !exists[0] {
                event(ctx, GENERIC, "del", keys[0]);
            } else if has_option(args, 2, EXPIRY_OPTIONS) {
                event(ctx, GENERIC, "expire", keys[0]);
            }
        }
        "rename" | "renamenx" => {
            event(ctx, GENERIC, "rename_from", keys[0]);
            event(ctx, GENERIC, "rename_to", keys[1]);
        }
        // As Redis: the key is added to the destination ('new' there), then move_from in the
        // source and move_to in the destination.
        "move" => {
            let Some(dst) = args.get(2).and_then(|a| super::parse_i64(a)) else {
                return;
            };
            let dst = dst as u32;
            event_in(ctx, dst, NEW, "new", keys[0]);
            event(ctx, GENERIC, "move_from", keys[0]);
            event_in(ctx, dst, GENERIC, "move_to", keys[0]);
        }
        // COPY src dst [DB n] [REPLACE]: the destination is added anew, then copy_to.
        "copy" => {
            let db_arg = args
                .iter()
                .skip(3)
                .position(|a| eq_ignore_case(a, "db"))
                .and_then(|i| args.get(3 + i + 1))
                .and_then(|a| super::parse_i64(a));
            let dst = db_arg.map_or(db(ctx), |d| d as u32);
            event_in(ctx, dst, NEW, "new", keys[1]);
            event_in(ctx, dst, GENERIC, "copy_to", keys[1]);
        }
        _ => {}
    }
}
