//! RESET and CLIENT REPLY ON|OFF|SKIP: a connection's reply mode and its return to a fresh
//! session, as Redis 7.0 does them.

use super::{eq_subcommand, syntax_error, Ctx};
use crate::protocol::reply;

/// CLIENT REPLY's mode. Replies of a command the mode silences are dropped after it ran
/// (`commands::execute`), including errors, as Redis drops them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReplyMode {
    /// CLIENT REPLY OFF: no replies until ON (or RESET).
    pub off: bool,
    /// CLIENT REPLY SKIP: the next command's reply is dropped.
    pub skip_next: bool,
    /// The command running now is the one SKIP named.
    pub skip_this: bool,
}

impl ReplyMode {
    /// True when some reply may be dropped: the slow path of `commands::execute`.
    #[inline]
    pub fn quiet(&self) -> bool {
        self.off || self.skip_next
    }
}

/// CLIENT REPLY ON|OFF|SKIP (arity checked by the caller: `client|reply` is 3).
pub fn client_reply(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let mode = &mut ctx.client.reply;
    let word = args[2];
    if eq_subcommand(word, "on") {
        // Redis clears the skip of the command running now too: ON's own OK is sent.
        *mode = ReplyMode::default();
        reply::ok(ctx.out);
    } else if eq_subcommand(word, "off") {
        mode.off = true;
    } else if eq_subcommand(word, "skip") {
        if !mode.off {
            mode.skip_next = true;
        }
    } else {
        syntax_error(ctx.out);
    }
}

/// RESET: leaves MULTI, MONITOR and every subscription, forgets watches, the name and CLIENT
/// REPLY's mode, goes back to database 0 and RESP2, and authenticates as a new connection would (not at all when a password is
/// set).
pub fn reset(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    let id = ctx.client.id;
    ctx.client.tx.clear(id, &ctx.server.watches);
    ctx.client.entry.set_multi(None);
    if ctx.client.monitor.take().is_some() {
        ctx.server.monitors.remove(id);
    }
    ctx.client.entry.set_name(None);
    ctx.client.reply = ReplyMode::default();
    ctx.client.no_touch = false;
    ctx.client.authenticated = ctx.server.settings.requirepass().is_none();
    ctx.client.resp = 2;
    ctx.client.entry.set_resp(2);
    super::pubsub::reset(ctx);
    ctx.client.db = 0;
    ctx.client.entry.set_db(0);
    reply::simple(ctx.out, b"RESET");
}
