//! MULTI, EXEC, DISCARD, WATCH and UNWATCH, as Redis 7.0 answers them.
//!
//! Between MULTI and EXEC a client's commands are checked (name, arity, authentication,
//! `no_multi`) and queued with `+QUEUED`; a command refused then marks the transaction, and
//! EXEC answers `-EXECABORT`. EXEC runs the queue back to back under the server's EXEC gate
//! (`crate::transactions`): the connection takes it before running EXEC, so no other worker
//! runs a command meanwhile. A command failing inside EXEC leaves the others done, as Redis.
//! Its writes are one engine transaction (`Engine::transaction`): after a crash, all of
//! them are there or none.
//!
//! WATCH remembers each key's version (`Engine::version`) and registers the key in
//! `Shared::watches`; EXEC answers a null array when a watched key's version moved or a
//! write command marked it (see `crate::transactions` for why both).

use flin_engine::Engine;

use super::{dispatch, Ctx};
use crate::protocol::reply;
use crate::transactions::{Dirty, Watches};

/// The bytes of arguments one transaction may queue: past it a command is refused (and the
/// transaction marked), rather than letting a client grow the server's memory without end.
pub const QUEUED_BYTES_MAX: usize = 512 * 1024 * 1024;
/// What a queued argument costs beyond its bytes, for [`QUEUED_BYTES_MAX`].
const QUEUED_ARG_OVERHEAD_BYTES: usize = 24;

/// A client's transaction state: its queue while in MULTI, and its watched keys.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    /// `Some` between MULTI and EXEC / DISCARD.
    queue: Option<Queue>,
    /// Each watched key, with its database and its version when WATCH ran.
    watched: Vec<(u32, Vec<u8>, Option<u64>)>,
    /// Set by a write of a watched key (`Watches::touch`).
    dirty: Dirty,
}

#[derive(Debug, Default)]
struct Queue {
    commands: Vec<Vec<Vec<u8>>>,
    bytes: usize,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    failed: bool,
    /// A queued command writes: CLIENT PAUSE WRITE holds the EXEC, as Redis does.
    writes: bool,
}

impl Transaction {
    /// True between MULTI and EXEC / DISCARD.
    #[inline]
    pub fn queueing(&self) -> bool {
        self.queue.is_some()
    }

    /// True when a queued command writes (Redis holds such an EXEC under CLIENT PAUSE WRITE).
    pub fn queued_writes(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| q.writes)
    }

    /// The keys the queued commands name (with repeats), for reading their cold records
    /// before EXEC holds every worker.
    pub fn queued_keys(&self) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        for command in self.queue.iter().flat_map(|q| &q.commands) {
            let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            super::keys_of(&args, |k| keys.push(k.to_vec()));
        }
        keys
    }

    /// A command was refused: in MULTI, EXEC will answer EXECABORT.
    #[inline]
    pub fn refused(&mut self) {
        if let Some(q) = &mut self.queue {
            q.failed = true;
        }
    }

    /// Leaves MULTI and forgets every watch (DISCARD, RESET, a closed connection).
    pub fn clear(&mut self, client: u64, watches: &Watches) {
        self.queue = None;
        self.unwatch(client, watches);
    }

    fn unwatch(&mut self, client: u64, watches: &Watches) {
        if !self.watched.is_empty() {
            watches.unwatch(client, self.watched.iter().map(|(_, k, _)| k.as_slice()));
            self.watched.clear();
        }
        self.dirty
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// True when a watched key changed since WATCH.
    fn broken(&self, engine: &Engine) -> bool {
        self.dirty.load(std::sync::atomic::Ordering::Relaxed)
            || self
                .watched
                .iter()
                .any(|(db, key, version)| engine.db(*db).version(key) != *version)
    }
}

/// True for the commands that run at once inside MULTI instead of being queued.
pub(crate) fn runs_in_multi(name: &str) -> bool {
    matches!(
        name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// True for `EXEC` (any case): the connection takes the EXEC gate before running it.
#[inline]
pub(crate) fn is_exec(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"exec")
}

/// Queues a command that passed the checks, answering `+QUEUED`; `writes`: it has the
/// `write` flag.
pub(crate) fn queue(ctx: &mut Ctx<'_>, args: &[&[u8]], writes: bool) {
    let Some(q) = &mut ctx.client.tx.queue else {
        return;
    };
    let bytes: usize = args
        .iter()
        .map(|a| a.len() + QUEUED_ARG_OVERHEAD_BYTES)
        .sum();
    if q.bytes.saturating_add(bytes) > QUEUED_BYTES_MAX {
        q.failed = true;
        reply::err(
            ctx.out,
            &format!("transaction queue over {QUEUED_BYTES_MAX} bytes"),
        );
        return;
    }
    q.bytes += bytes;
    q.writes |= writes;
    q.commands.push(args.iter().map(|a| a.to_vec()).collect());
    ctx.client.entry.set_multi(Some(q.commands.len()));
    reply::simple(ctx.out, b"QUEUED");
}

/// `-ERR Command not allowed inside a transaction` for a `no_multi` command in MULTI.
pub(crate) fn not_allowed(ctx: &mut Ctx<'_>) {
    ctx.client.tx.refused();
    reply::err(ctx.out, "Command not allowed inside a transaction");
}

/// EXEC refused before it ran (wrong arity, not authenticated), in MULTI or not: the
/// transaction and the watches are discarded, and the reply says why, as Redis's
/// `execCommandAbort`.
pub(crate) fn exec_refused(ctx: &mut Ctx<'_>, why: &str) {
    discard_all(ctx);
    reply::error(
        ctx.out,
        format!("EXECABORT Transaction discarded because of: {why}").as_bytes(),
    );
}

fn discard_all(ctx: &mut Ctx<'_>) {
    let id = ctx.client.id;
    ctx.client.tx.clear(id, &ctx.server.watches);
    ctx.client.entry.set_multi(None);
}

/// MULTI
pub fn multi(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    if ctx.client.tx.queueing() {
        return reply::err(ctx.out, "MULTI calls can not be nested");
    }
    ctx.client.tx.queue = Some(Queue::default());
    ctx.client.entry.set_multi(Some(0));
    reply::ok(ctx.out);
}

/// DISCARD
pub fn discard(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    if !ctx.client.tx.queueing() {
        return reply::err(ctx.out, "DISCARD without MULTI");
    }
    discard_all(ctx);
    reply::ok(ctx.out);
}

/// EXEC: runs with every other worker held at the EXEC gate (the connection took it).
pub fn exec(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    let Some(queue) = ctx.client.tx.queue.take() else {
        return reply::err(ctx.out, "EXEC without MULTI");
    };
    ctx.client.entry.set_multi(None);
    let broken = ctx.client.tx.broken(ctx.engine);
    let id = ctx.client.id;
    // Unwatch before running, as Redis does: the transaction's own writes mark nobody here.
    ctx.client.tx.unwatch(id, &ctx.server.watches);
    if queue.failed {
        return reply::error(
            ctx.out,
            b"EXECABORT Transaction discarded because of previous errors.",
        );
    }
    if broken {
        return reply::null_array(ctx.out, ctx.client.resp);
    }
    let reply_at = ctx.out.len();
    reply::array_len(ctx.out, queue.commands.len());
    ctx.client.in_exec = true;
    // One engine transaction: the writes land on disk all or nothing, as Redis's AOF keeps
    // or drops a MULTI/EXEC block whole.
    let txn = ctx.engine.transaction();
    let mut args: Vec<&[u8]> = Vec::new();
    for command in &queue.commands {
        args.clear();
        args.extend(command.iter().map(|a| a.as_slice()));
        if args[0].eq_ignore_ascii_case(b"monitor") {
            // Redis refuses to turn a client into a monitor from inside a transaction.
            reply::err(ctx.out, "MONITOR isn't allowed for DENY BLOCKING client");
            continue;
        }
        dispatch(ctx, &args);
    }
    ctx.client.in_exec = false;
    match txn.commit() {
        // Replies wait for the commit record under `--fsync always`: the whole EXEC.
        Ok(token) => ctx.wrote(token),
        Err(e) => {
            // The engine is poisoned: what ran would not survive a restart, so the
            // client is not told it did.
            ctx.out.truncate(reply_at);
            ctx.write_error(&e);
        }
    }
}

/// WATCH key [key ...]
pub fn watch(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if ctx.client.tx.queueing() {
        return reply::err(ctx.out, "WATCH inside MULTI is not allowed");
    }
    let id = ctx.client.id;
    for key in &args[1..] {
        if ctx.server.watches.watch(id, &ctx.client.tx.dirty, key) {
            // Registered first, then read: see `crate::transactions`.
            let db = ctx.client.db;
            let version = ctx.db().version(key);
            ctx.client.tx.watched.push((db, key.to_vec(), version));
        }
    }
    reply::ok(ctx.out);
}

/// UNWATCH
pub fn unwatch(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    let id = ctx.client.id;
    ctx.client.tx.unwatch(id, &ctx.server.watches);
    reply::ok(ctx.out);
}
