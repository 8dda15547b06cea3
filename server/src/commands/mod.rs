//! Commands: the table (`table`: name, arity, flags, key positions and handler of each),
//! dispatch (`execute`) and one file per group: `strings` (GET, SET, counters...), `keys` (DEL,
//! EXISTS, expiry, SCAN...), `connection` (PING, AUTH, HELLO, CLIENT, QUIT), `databases`
//! (SELECT, MOVE, COPY, SWAPDB, FLUSHDB, DBSIZE), `client_list` (CLIENT LIST, INFO, KILL),
//! `server` (INFO, CONFIG, COMMAND, SHUTDOWN...), `multi` (MULTI, EXEC, DISCARD, WATCH,
//! UNWATCH: a client's queue, refused commands, EXEC under the server's gate), `reset` (RESET,
//! CLIENT REPLY's modes), `pubsub` and `notify` (keyspace notifications).
//! Outside the crate only [`lookup`] is public, for the benches.
//!
//! A command runs inline on the connection's thread, on a `Ctx`: the engine, the server's
//! `Shared`, the client's session (`Client`, the per-connection state commands change), and
//! the connection's reply buffer. It reads and writes the engine and appends its reply to
//! `Ctx::out`; reads copy values straight from the engine's map into `out` under the shard
//! lock. Writes record their [`WriteToken`] so that, under `--fsync always`, the connection
//! holds the batch's replies until the token is durable.

mod bitfield;
mod bits;
mod client_list;
mod command;
mod config;
mod connection;
mod databases;
mod dump;
mod info_stats;
mod keys;
mod latency;
mod lcs;
mod memory;
mod monitor;
mod multi;
mod notify;
mod object;
mod propagate;
mod pubsub;
mod replication;
mod reset;
mod server;
mod spec;
mod spec_data;
mod strings;
mod table;

use flin_engine::{Engine, WriteToken};

use crate::protocol::reply;
use crate::shared::Shared;
use crate::{clock, cmdstats};

pub(crate) use multi::{is_exec, Transaction};
pub(crate) use propagate::expired;
pub(crate) use reset::ReplyMode;
pub(crate) use server::REDIS_VERSION;
pub(crate) use spec::stat_slots;
pub(crate) use table::{find, COMMANDS};
pub use table::{lookup, CommandSpec};

/// One client's session: the per-connection state commands read and change.
#[derive(Debug)]
pub(crate) struct Client {
    pub id: u64,
    /// What other connections see of this one (CLIENT LIST), and its name.
    pub entry: std::sync::Arc<crate::clients::ClientEntry>,
    /// True once AUTH succeeded, or from the start when no password is set.
    pub authenticated: bool,
    /// Set by MONITOR: the connection takes it and streams the sink's lines to the client.
    pub monitor: Option<std::sync::Arc<crate::monitor::Sink>>,
    /// The protocol version replies are written in: 2 (RESP2, the default) or 3, set by
    /// HELLO. See `crate::protocol::reply`.
    pub resp: u8,
    /// MULTI's queue and the WATCHed keys.
    pub tx: Transaction,
    /// CLIENT REPLY's mode.
    pub reply: ReplyMode,
    /// Its channels and patterns (SUBSCRIBE...), and the inbox messages arrive in.
    pub pubsub: crate::pubsub::Subscriptions,
    /// The selected database (SELECT), below `--databases`.
    pub db: u32,
    /// The replica's link applying its primary's stream: it may write on a replica.
    pub from_primary: bool,
    /// The stream's offset after this client's last write (WAIT waits for replicas to get
    /// there).
    pub woff: i64,
    /// What the client said with REPLCONF (a replica's handshake).
    pub replconf: crate::backlog::SyncRequest,
    /// Set by SYNC / PSYNC: the connection is handed to the replication threads.
    pub handoff: Option<crate::backlog::SyncRequest>,
    /// Set by WAIT when it must wait: the connection waits (this client only) for the ACKs.
    pub wait: Option<WaitFor>,
    /// True while EXEC runs this client's transaction (WAIT answers at once then).
    pub in_exec: bool,
    /// CLIENT NO-TOUCH ON: this client's commands leave the keys' access clocks (OBJECT
    /// IDLETIME) as they are, except TOUCH.
    pub no_touch: bool,
}

/// A command to propagate, with the database it runs in (`None`: MULTI, EXEC, PING).
pub(crate) type Effect = (Option<u32>, Vec<Vec<u8>>);

/// A WAIT that has to wait: for `replicas` replicas to acknowledge `offset`, until
/// `deadline_ms` (Unix ms; 0: no timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitFor {
    pub offset: i64,
    pub replicas: usize,
    pub deadline_ms: i64,
}

impl Client {
    /// A client's session with nothing set yet: not authenticated, RESP2, database 0.
    pub fn new(entry: std::sync::Arc<crate::clients::ClientEntry>) -> Client {
        Client {
            id: entry.id,
            entry,
            authenticated: false,
            monitor: None,
            resp: 2,
            tx: Default::default(),
            reply: Default::default(),
            pubsub: Default::default(),
            db: 0,
            from_primary: false,
            woff: 0,
            replconf: Default::default(),
            handoff: None,
            wait: None,
            in_exec: false,
            no_touch: false,
        }
    }
}

/// What a command works with. Built once per batch of requests, reused for each command.
pub(crate) struct Ctx<'a> {
    pub engine: &'a Engine,
    pub server: &'a Shared,
    /// The worker running the command: its index in the per-worker statistics and logs.
    pub worker: usize,
    pub client: &'a mut Client,
    pub out: &'a mut Vec<u8>,
    /// The worker's active-expiry queue: commands that set an expiry record it here.
    pub expiry: &'a crate::expiry::ExpiryQueue,
    /// The latest write of this batch: its replies leave once it is durable under
    /// `--fsync always`.
    pub token: Option<WriteToken>,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    /// Set by QUIT: close the connection after this reply.
    pub close: bool,
    /// Set by SHUTDOWN: stop the server (and close this connection without a reply).
    pub shutdown: Option<Shutdown>,
    /// The replication stream, locked while a write runs and replicas may be attached
    /// (`propagate`).
    pub repl: Option<crate::backlog::Held<'a>>,
    /// Inside EXEC: the transaction's effects, sent together when it ends.
    pub repl_tx: Option<Vec<Effect>>,
}

/// How SHUTDOWN stops the server (see `crate::shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// After the replicas acknowledged the stream, for up to `shutdown-timeout`.
    AfterReplicas,
    /// At once (NOW, FORCE).
    Now,
}

impl<'a> Ctx<'a> {
    /// A context for a batch of `client`'s requests on `worker`, replies into `out`, no
    /// write yet unless `token` names one this client is still waiting on.
    pub fn new(
        server: &'a Shared,
        worker: usize,
        client: &'a mut Client,
        out: &'a mut Vec<u8>,
        expiry: &'a crate::expiry::ExpiryQueue,
        token: Option<WriteToken>,
    ) -> Ctx<'a> {
        Ctx {
            engine: &server.engine,
            server,
            worker,
            client,
            out,
            expiry,
            token,
            keyspace_hits: 0,
            keyspace_misses: 0,
            close: false,
            shutdown: None,
            repl: None,
            repl_tx: None,
        }
    }

    /// The client's selected database: the engine's key calls confined to it. Its lookups
    /// stamp the keys' access clocks (Redis's `lookupKey`) unless the client is in
    /// CLIENT NO-TOUCH mode; a command that never touches (TTL, OBJECT...) asks
    /// [`Ctx::db_no_touch`].
    #[inline]
    pub fn db(&self) -> flin_engine::Db<'a> {
        self.engine
            .db(self.client.db)
            .touching(!self.client.no_touch)
    }

    /// The client's selected database, whose lookups leave the access clocks alone (Redis's
    /// `LOOKUP_NOTOUCH`).
    #[inline]
    pub fn db_no_touch(&self) -> flin_engine::Db<'a> {
        self.engine.db(self.client.db).touching(false)
    }

    /// Runs `f` on the replication stream: the one this command holds (a write, or a
    /// command inside EXEC while replicas may be attached), else locked for the call.
    pub fn with_stream<R>(&mut self, f: impl FnOnce(&mut crate::backlog::Stream) -> R) -> R {
        match self.repl.as_mut() {
            Some(held) => f(held),
            None => f(&mut self.server.primary.lock()),
        }
    }

    /// As [`Ctx::with_stream`], to read.
    pub fn read_stream<R>(&self, f: impl FnOnce(&crate::backlog::Stream) -> R) -> R {
        match self.repl.as_ref() {
            Some(held) => f(held),
            None => f(&self.server.primary.lock()),
        }
    }

    pub fn wrote(&mut self, token: Option<WriteToken>) {
        if token > self.token {
            self.token = token;
        }
    }

    /// Replies with an engine write error: `-MISCONF` when the engine refuses writes for
    /// good, `-ERR` otherwise.
    pub fn write_error(&mut self, e: &flin_engine::Error) {
        let msg = e.to_string();
        if e.is_poisoned() {
            reply::error(self.out, format!("MISCONF {msg}").as_bytes());
        } else {
            reply::err(self.out, &msg);
        }
    }

    /// Notes a key given an expiry (absolute Unix ms), for active expiry.
    pub fn track_expiry(&self, key: &[u8], at_ms: u64) {
        if at_ms != 0 {
            self.expiry.track(self.client.db, key, at_ms);
        }
    }

    pub fn hit(&mut self, found: bool) {
        if found {
            self.keyspace_hits += 1;
        } else {
            self.keyspace_misses += 1;
        }
    }
}

/// True for a command that writes (Redis's `write` flag): it waits out a write stall.
pub(crate) fn writes(name: &[u8]) -> bool {
    lookup(name).is_some_and(|s| s.flags & table::WRITE != 0)
}

/// While CLIENT PAUSE is on: the deadline until which this command must wait (Unix ms), as
/// Redis holds commands that pass lookup, arity and authentication: all of them, or those
/// that write. `None` when it may run (one relaxed load when nothing is paused).
pub(crate) fn held_by_pause(ctx: &Ctx<'_>, args: &[&[u8]]) -> Option<i64> {
    if !ctx.server.pause.is_on() {
        return None;
    }
    let spec = lookup(args[0])?;
    if !spec.arity_ok(args.len()) || (!ctx.client.authenticated && !spec.no_auth()) {
        return None;
    }
    let writes =
        spec.flags & table::WRITE != 0 || (spec.name == "exec" && ctx.client.tx.queued_writes());
    ctx.server.pause.holds(writes, clock::now_ms())
}

/// Calls `each` with every key `args` names, by its command's key positions; nothing for an
/// unknown command or a wrong number of arguments.
pub(crate) fn keys_of<'a>(args: &[&'a [u8]], mut each: impl FnMut(&'a [u8])) {
    let Some(spec) = lookup(args[0]) else {
        return;
    };
    let (first, last, step) = spec.keys;
    if !spec.arity_ok(args.len()) || first <= 0 || step <= 0 {
        return;
    }
    let last = if last < 0 {
        args.len() as i64 + i64::from(last)
    } else {
        i64::from(last)
    };
    let mut i = i64::from(first);
    while i <= last && (i as usize) < args.len() {
        each(args[i as usize]);
        i += i64::from(step);
    }
}

/// True when `args` is a write of its key whatever the key holds (a plain `SET key value`),
/// which the engine does without reading the key's old record (`Engine::put`).
pub(crate) fn writes_blindly(args: &[&[u8]]) -> bool {
    args.len() == 3 && args[0].eq_ignore_ascii_case(b"SET")
}

/// Runs one command a client sent, then drops its reply when CLIENT REPLY says so.
pub(crate) fn execute(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if !ctx.client.reply.quiet() {
        return dispatch(ctx, args);
    }
    let mark = ctx.out.len();
    let mode = &mut ctx.client.reply;
    mode.skip_this = std::mem::take(&mut mode.skip_next);
    dispatch(ctx, args);
    let mode = &mut ctx.client.reply;
    if mode.off || std::mem::take(&mut mode.skip_this) {
        ctx.out.truncate(mark);
    }
}

/// Runs one command: lookup, arity, authentication, then (in MULTI) queues it or runs the
/// handler, timed; then what the server keeps of it (INFO commandstats and errorstats,
/// SLOWLOG, LATENCY, MONITOR) and the marks on watched keys it wrote.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    debug_assert!(!args.is_empty());
    let stats = &ctx.server.command_stats[ctx.worker];
    let Some(index) = find(args[0]) else {
        ctx.client.tx.refused();
        unknown_command(ctx.out, args);
        stats.error(b"ERR");
        return;
    };
    let spec = &COMMANDS[index];
    let slot = spec::stat_slot(index, args);
    // A subcommand's own arity, checked before it runs as Redis 7 does.
    let (name, arity_ok) = match spec::slot_subcommand(slot) {
        Some(sub) => (sub.name, arity_fits(sub.arity, args.len())),
        None => (spec.name, spec.arity_ok(args.len())),
    };
    if !arity_ok {
        if spec.name == "exec" {
            multi::exec_refused(ctx, "wrong number of arguments for 'exec' command");
        } else {
            ctx.client.tx.refused();
            arity_error(ctx.out, name);
        }
        stats.reject(slot);
        stats.error(b"ERR");
        return;
    }
    if !ctx.client.authenticated && !spec.no_auth() {
        if spec.name == "exec" {
            multi::exec_refused(ctx, "NOAUTH Authentication required.");
        } else {
            ctx.client.tx.refused();
            reply::error(ctx.out, b"NOAUTH Authentication required.");
        }
        stats.reject(slot);
        stats.error(b"NOAUTH");
        return;
    }
    // While a full sync loads, only commands Redis allows then run (one relaxed load).
    if spec.flags & table::LOADING == 0
        && !ctx.client.from_primary
        && ctx.server.replica.is_loading()
    {
        ctx.client.tx.refused();
        reply::error(ctx.out, b"LOADING Redis is loading the dataset in memory");
        stats.reject(slot);
        stats.error(b"LOADING");
        return;
    }
    // A replica refuses clients' writes unless `replica-read-only no` (relaxed loads, for
    // writes only).
    if spec.flags & table::WRITE != 0
        && !ctx.client.from_primary
        && ctx.server.replica.is_replica()
        && ctx.server.settings.replica_read_only()
    {
        ctx.client.tx.refused();
        reply::error(
            ctx.out,
            b"READONLY You can't write against a read only replica.",
        );
        stats.reject(slot);
        stats.error(b"READONLY");
        return;
    }
    if let Some(inbox) = &ctx.client.pubsub.inbox {
        // Messages published before this command reach the client before its reply.
        inbox.drain_into(ctx.out);
        if pubsub::refused_when_subscribed(ctx, spec.name, name) {
            let stats = &ctx.server.command_stats[ctx.worker];
            stats.reject(slot);
            stats.error(b"ERR");
            return;
        }
    }
    ctx.client.entry.note_command(index);
    if ctx.client.tx.queueing() && !multi::runs_in_multi(spec.name) {
        if spec.flags & table::NO_MULTI != 0 {
            multi::not_allowed(ctx);
            stats.reject(slot);
            stats.error(b"ERR");
        } else {
            multi::queue(ctx, args, spec.flags & table::WRITE != 0);
        }
        return;
    }
    let mark = ctx.out.len();
    let token_before = ctx.token;
    // Replication: one relaxed load while no replica ever attached.
    let propagating = if ctx.server.primary.is_active() {
        propagate::begin(ctx, spec, args)
    } else {
        None
    };
    // Keyspace notifications: one relaxed load when they are off. Shard channels are not
    // keys (Redis's `not_key`).
    let events =
        ctx.server.pubsub.events.flags() != 0 && spec.keys.0 > 0 && spec.flags & table::PUBSUB == 0;
    let before = events.then(|| notify::before(ctx, args));
    let start = clock::ticks();
    (spec.handler)(ctx, args);
    let ticks = clock::ticks().wrapping_sub(start);
    if let Some(begun) = propagating {
        let wrote = ctx.token != token_before;
        propagate::end(ctx, spec, args, begun, wrote, mark);
    }
    // One relaxed load per write while nobody watches.
    if ctx.token != token_before && ctx.server.watches.any() {
        keys_of(args, |k| ctx.server.watches.touch(k));
    }
    let failed = ctx.out.get(mark) == Some(&b'-');
    let stats = &ctx.server.command_stats[ctx.worker];
    stats.record(slot, ticks, failed, ctx.server.settings.latency_tracking());
    if failed {
        stats.error(cmdstats::error_code(&ctx.out[mark..]));
    }
    if let Some(b) = before {
        notify::after(ctx, spec, args, b, mark);
    }
    monitor::after_command(ctx, index, args, ticks);
}

/// Redis's arity convention: `n` exactly n arguments (the name included), `-n` at least n.
fn arity_fits(arity: i64, argc: usize) -> bool {
    let argc = argc as i64;
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// `-ERR unknown command 'x', with args beginning with: 'a' 'b' `, as Redis 7 builds it: each
/// argument cut so the list stays near 128 bytes, C-string semantics (a NUL ends a string).
pub(crate) fn unknown_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut msg = Vec::with_capacity(96);
    msg.extend_from_slice(b"ERR unknown command '");
    msg.extend_from_slice(c_str(args[0], 128));
    msg.extend_from_slice(b"', with args beginning with: ");
    let mut listed = 0usize;
    for a in &args[1..] {
        if listed >= 128 {
            break;
        }
        let part = c_str(a, 128 - listed);
        msg.push(b'\'');
        msg.extend_from_slice(part);
        msg.extend_from_slice(b"' ");
        listed += part.len() + 3;
    }
    reply::error(out, &msg);
}

/// `-ERR wrong number of arguments for 'get' command`
pub(crate) fn arity_error(out: &mut Vec<u8>, name: &str) {
    reply::err(
        out,
        &format!("wrong number of arguments for '{name}' command"),
    );
}

/// `-ERR unknown subcommand 'x'. Try CLIENT HELP.`
pub(crate) fn unknown_subcommand(out: &mut Vec<u8>, sub: &[u8], container: &str) {
    let mut msg = b"ERR unknown subcommand '".to_vec();
    msg.extend_from_slice(c_str(sub, 128));
    msg.extend_from_slice(format!("'. Try {} HELP.", container.to_ascii_uppercase()).as_bytes());
    reply::error(out, &msg);
}

/// A container's HELP: one simple string per line.
pub(crate) fn help(out: &mut Vec<u8>, lines: &[&str]) {
    reply::array_len(out, lines.len());
    for l in lines {
        reply::simple(out, l.as_bytes());
    }
}

/// Checks a subcommand's argument count (Redis's arity convention, the container's name
/// included) and answers `-ERR wrong number of arguments for 'container|sub' command` when
/// it is wrong.
pub(crate) fn sub_arity_ok(out: &mut Vec<u8>, args: &[&[u8]], arity: i32, fullname: &str) -> bool {
    let n = args.len() as i64;
    let a = i64::from(arity);
    let ok = if a >= 0 { n == a } else { n >= -a };
    if !ok {
        arity_error(out, fullname);
    }
    ok
}

/// `-ERR syntax error`
pub(crate) fn syntax_error(out: &mut Vec<u8>) {
    out.extend_from_slice(b"-ERR syntax error\r\n");
}

/// `-ERR value is not an integer or out of range`
pub(crate) fn not_integer(out: &mut Vec<u8>) {
    out.extend_from_slice(b"-ERR value is not an integer or out of range\r\n");
}

/// What C's `printf("%.*s", max, s)` prints of `s`.
fn c_str(s: &[u8], max: usize) -> &[u8] {
    let s = match memchr::memchr(0, s) {
        Some(nul) => &s[..nul],
        None => s,
    };
    &s[..s.len().min(max)]
}

/// ASCII case-insensitive equality of a client argument with an option keyword. Like Redis's
/// `strcasecmp` on the argument, a NUL byte ends it (`"NX\0junk"` is NX).
pub(crate) fn eq_ignore_case(arg: &[u8], keyword: &str) -> bool {
    c_str(arg, usize::MAX).eq_ignore_ascii_case(keyword.as_bytes())
}

/// ASCII case-insensitive equality of a whole argument with a subcommand name (CLIENT ID,
/// CONFIG GET, COMMAND DOCS): Redis 7 finds subcommands in a table, by every byte.
pub(crate) fn eq_subcommand(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// An argument as a Redis integer (strict `string2ll`).
pub(crate) fn parse_i64(arg: &[u8]) -> Option<i64> {
    crate::protocol::parse::string_to_i64(arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(args: &[&[u8]]) -> String {
        let mut out = Vec::new();
        unknown_command(&mut out, args);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn unknown_command_matches_redis() {
        assert_eq!(
            unknown(&[b"foo", b"a", b"b"]),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(
            unknown(&[b"foo"]),
            "-ERR unknown command 'foo', with args beginning with: \r\n"
        );
        assert_eq!(
            unknown(&[b"f\r\no", b"x\0y"]),
            "-ERR unknown command 'f  o', with args beginning with: 'x' \r\n"
        );
        let long = vec![b'a'; 200];
        let s = unknown(&[b"x", &long, b"b"]);
        assert_eq!(
            s,
            format!(
                "-ERR unknown command 'x', with args beginning with: '{}' \r\n",
                "a".repeat(128)
            )
        );
    }

    fn keys(args: &[&'static [u8]]) -> Vec<&'static [u8]> {
        let mut v = Vec::new();
        keys_of(args, |k| v.push(k));
        v
    }

    #[test]
    fn keys_follow_each_commands_key_positions() {
        assert_eq!(keys(&[b"GET", b"k"]), [b"k"]);
        assert_eq!(keys(&[b"set", b"k", b"v", b"EX", b"10"]), [b"k"]);
        assert_eq!(keys(&[b"MGET", b"a", b"b", b"c"]), [b"a", b"b", b"c"]);
        assert_eq!(keys(&[b"MSET", b"a", b"1", b"b", b"2"]), [b"a", b"b"]);
        assert_eq!(keys(&[b"RENAME", b"a", b"b"]), [b"a", b"b"]);
        assert!(keys(&[b"PING"]).is_empty());
        assert!(keys(&[b"NOSUCH", b"k"]).is_empty());
        assert!(keys(&[b"GET"]).is_empty(), "wrong arity names no keys");
    }

    #[test]
    fn arity_message() {
        let mut out = Vec::new();
        arity_error(&mut out, "get");
        assert_eq!(out, b"-ERR wrong number of arguments for 'get' command\r\n");
    }
}
