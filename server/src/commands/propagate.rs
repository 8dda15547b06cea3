//! What a primary sends its replicas for each command: the effect of a write, as Redis 7.0
//! propagates strings and generic commands. `dispatch` calls [`begin`] before a command's
//! handler and [`end`] after it; between the two the command holds the stream's lock (see
//! `crate::backlog` for why), so its effect enters the stream in the order the engine applied
//! it.
//!
//! The rewrites, as Redis's: relative expiry becomes absolute (`SET k v PXAT <ms>` for SET
//! with EX/PX/EXAT and SETEX/PSETEX, `PEXPIREAT k <ms>` for EXPIRE/PEXPIRE/EXPIREAT and
//! GETEX's expiries, `RESTORE ... <ms> ABSTTL`), an expiry in the past becomes `DEL k`,
//! GETDEL is `DEL k`, GETEX PERSIST is `PERSIST k`, INCRBYFLOAT is `SET k <new value>
//! KEEPTTL` (floats must not be computed twice), SET's GET option is dropped. A key a write
//! command finds expired is deleted first and `DEL k` goes before the command, as Redis's
//! lazy expiry on a write. A command that wrote nothing (a failed SETNX, DEL of missing keys)
//! sends nothing. A transaction's effects go as MULTI ... EXEC when there are several.
//! PUBLISH and SPUBLISH go as they are, so the replicas' subscribers get the messages.

use super::table::{CommandSpec, WRITE};
use super::{eq_ignore_case, keys_of, Ctx};

/// What [`begin`] did, for [`end`].
pub(super) struct Begun {
    /// This command took the stream's lock (not a command inside EXEC).
    outer: bool,
    exec: bool,
}

/// Before a command runs: takes the stream's lock for a write (or an EXEC) while replicas
/// may be attached, and expires the command's due keys, sending their DEL. `None` while no
/// backlog exists (`dispatch` looks at that first: one relaxed load) or for the replica
/// link's own commands.
pub(super) fn begin(ctx: &mut Ctx<'_>, spec: &CommandSpec, args: &[&[u8]]) -> Option<Begun> {
    let exec = spec.name == "exec";
    if !ctx.server.primary.is_active()
        || (spec.flags & WRITE == 0 && !exec && !publishes(spec))
        || ctx.client.from_primary
        || ctx.server.replica.is_replica()
    {
        return None;
    }
    let outer = ctx.repl.is_none();
    if outer {
        ctx.repl = Some(ctx.server.primary.lock());
        if exec {
            ctx.repl_tx = Some(Vec::new());
        }
    }
    if !exec {
        let mut keys = Vec::new();
        keys_of(args, |k| keys.push(k));
        for k in keys {
            if ctx.db().remove_expired(k) {
                crate::stats::add(&ctx.server.workers[ctx.worker].expired_keys, 1);
                if ctx.server.pubsub.events.flags() != 0 {
                    super::notify::event(ctx, crate::notify::EXPIRED, "expired", k);
                }
                let db = ctx.client.db;
                emit(ctx, Some(db), &[b"DEL", k]);
            }
        }
    }
    Some(Begun { outer, exec })
}

/// After the command ran: sends its effect, if it wrote (`token_before`: the batch's write
/// token before it; `mark`: where its reply starts).
pub(super) fn end(
    ctx: &mut Ctx<'_>,
    spec: &CommandSpec,
    args: &[&[u8]],
    begun: Begun,
    wrote: bool,
    mark: usize,
) {
    if begun.exec {
        if begun.outer {
            let effects = ctx.repl_tx.take().unwrap_or_default();
            // An EXEC whose commit failed (a poisoned engine) answered an error in place of
            // its replies: what it ran is not the primary's data, it does not go out either.
            let committed = ctx.out.get(mark) != Some(&b'-');
            if let Some(stream) = ctx.repl.as_mut().filter(|_| committed) {
                let wrap = effects.len() > 1;
                if wrap {
                    stream.feed(None, &[b"MULTI"]);
                }
                for (db, command) in &effects {
                    let args: Vec<&[u8]> = command.iter().map(|a| a.as_slice()).collect();
                    stream.feed(*db, &args);
                }
                if wrap {
                    stream.feed(None, &[b"EXEC"]);
                }
            }
        }
    } else {
        let failed = ctx.out.get(mark) == Some(&b'-');
        let flush = matches!(spec.name, "flushall" | "flushdb" | "swapdb") && !failed;
        if publishes(spec) {
            // As Redis: the replicas' own subscribers get the message too. Of no database.
            if !failed {
                emit(ctx, None, args);
            }
        } else if wrote || flush {
            // Keys the sweep removed before this write go first: the replica may still hold
            // them, and this write may be of one of them.
            for (db, key) in ctx.server.primary.take_owed() {
                emit(ctx, Some(db), &[b"DEL", &key]);
            }
            effect(ctx, spec.name, args);
        }
    }
    if begun.outer {
        if let Some(stream) = ctx.repl.take() {
            ctx.client.woff = stream.offset;
        }
    }
}

/// PUBLISH and SPUBLISH write nothing but go to the replicas as they are (Redis's
/// `may-replicate`).
fn publishes(spec: &CommandSpec) -> bool {
    matches!(spec.name, "publish" | "spublish")
}

/// Sends one command into the stream, or into the transaction's list inside EXEC.
fn emit(ctx: &mut Ctx<'_>, db: Option<u32>, args: &[&[u8]]) {
    if let Some(tx) = ctx.repl_tx.as_mut() {
        tx.push((db, args.iter().map(|a| a.to_vec()).collect()));
    } else if let Some(stream) = ctx.repl.as_mut() {
        stream.feed(db, args);
    }
}

/// The key's expiry now (Unix ms, 0 for none), `None` when it is gone.
fn expiry_of(ctx: &Ctx<'_>, key: &[u8]) -> Option<u64> {
    ctx.db_no_touch()
        .get_with(key, |e| e.map(|e| e.expire_at_ms))
}

/// Sends the effect of a command that wrote, rewritten as Redis 7.0 rewrites it.
fn effect(ctx: &mut Ctx<'_>, name: &str, args: &[&[u8]]) {
    let db = Some(ctx.client.db);
    let key = args.get(1).copied().unwrap_or_default();
    let absolute = |ctx: &mut Ctx<'_>, head: &[&[u8]]| {
        // `head` then the key's expiry; DEL when the key is gone (its time was past).
        match expiry_of(ctx, key) {
            Some(at) if at != 0 => {
                let at = at.to_string();
                let mut v = head.to_vec();
                v.push(at.as_bytes());
                emit(ctx, db, &v);
            }
            Some(_) => emit(ctx, db, head),
            None => emit(ctx, db, &[b"DEL", key]),
        }
    };
    match name {
        "set" => {
            let opts = &args[3..];
            let has = |o: &str| opts.iter().any(|a| eq_ignore_case(a, o));
            if has("ex") || has("px") || has("exat") {
                absolute(ctx, &[b"SET", key, args[2], b"PXAT"]);
            } else if has("get") && !has("pxat") {
                let kept: Vec<&[u8]> = args
                    .iter()
                    .enumerate()
                    .filter(|(i, a)| *i < 3 || !a.eq_ignore_ascii_case(b"get"))
                    .map(|(_, a)| *a)
                    .collect();
                emit(ctx, db, &kept);
            } else {
                emit(ctx, db, args);
            }
        }
        "setex" | "psetex" => absolute(ctx, &[b"SET", key, args[3], b"PXAT"]),
        "getdel" => emit(ctx, db, &[b"DEL", key]),
        "getex" if args[2..].iter().any(|a| eq_ignore_case(a, "persist")) => {
            emit(ctx, db, &[b"PERSIST", key]);
        }
        "getex" | "expire" | "pexpire" | "expireat" => absolute(ctx, &[b"PEXPIREAT", key]),
        "pexpireat" => match expiry_of(ctx, key) {
            Some(_) => emit(ctx, db, args),
            None => emit(ctx, db, &[b"DEL", key]),
        },
        "incrbyfloat" => match ctx.db_no_touch().get(key) {
            Some(v) => emit(ctx, db, &[b"SET", key, &v, b"KEEPTTL"]),
            None => emit(ctx, db, &[b"DEL", key]),
        },
        "restore" if !args[4..].iter().any(|a| eq_ignore_case(a, "absttl")) && args[2] != b"0" => {
            match expiry_of(ctx, key) {
                Some(at) => {
                    let at = at.to_string();
                    let mut v = args.to_vec();
                    v[2] = at.as_bytes();
                    v.push(b"ABSTTL");
                    emit(ctx, db, &v);
                }
                None => emit(ctx, db, &[b"DEL", key]),
            }
        }
        _ => emit(ctx, db, args),
    }
}

/// After the engine's sweep removed keys (its report, outside the key's lock): their DELs,
/// queued under the lock (`Primary::owe_del`), go down the stream unless a write already
/// sent them ahead of itself.
pub(crate) fn expired(shared: &crate::shared::Shared) {
    if !shared.primary.is_active() {
        return;
    }
    let mut stream = shared.primary.lock();
    // Taken (and on a replica dropped: its stream is its primary's) under the stream's lock,
    // so a write cannot send a later DEL ahead of these.
    let owed = shared.primary.take_owed();
    if stream.mirroring || shared.replica.is_replica() {
        return;
    }
    for (db, key) in owed {
        stream.feed(Some(db), &[b"DEL", &key]);
    }
}

/// Lazy expiry of a key a command touches, for keyspace notifications: true when it was due
/// and removed. While replicas may be attached its DEL goes down the stream at once, the
/// removal holding the stream so no write of the key comes in between.
pub(super) fn expire_lazily(ctx: &mut Ctx<'_>, key: &[u8]) -> bool {
    let db = ctx.client.db;
    let engine = ctx.engine;
    if !ctx.server.primary.is_active() || ctx.client.from_primary || ctx.server.replica.is_replica()
    {
        return engine.db(db).remove_expired(key);
    }
    ctx.with_stream(|s| {
        let gone = engine.db(db).remove_expired(key);
        if gone && !s.mirroring {
            s.feed(Some(db), &[b"DEL", key]);
        }
        gone
    })
}
