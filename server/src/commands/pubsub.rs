//! Pub/Sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, SSUBSCRIBE,
//! SUNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB, over the registry in `crate::pubsub`, with
//! Redis 7.0's replies. Shard channels (SSUBSCRIBE, SPUBLISH) are plain channels of their
//! own, as in Redis with cluster mode off.
//!
//! In RESP2 a client with any subscription may run only the subscribe family, PING, QUIT and
//! RESET ([`refused_when_subscribed`]); PING then answers as a message.

use std::sync::Arc;

use super::{eq_subcommand, help, sub_arity_ok, unknown_subcommand, Ctx};
use crate::protocol::reply;
use crate::pubsub::{push_header, Inbox, Kind};

/// Commands a RESP2 client in subscribed mode may run.
const ALLOWED_WHEN_SUBSCRIBED: &[&str] = &[
    "ping",
    "psubscribe",
    "punsubscribe",
    "quit",
    "reset",
    "ssubscribe",
    "subscribe",
    "sunsubscribe",
    "unsubscribe",
];

/// Redis's pub/sub context check, made after arity and authentication: when the client is
/// in RESP2 subscribed mode and `name` (the command's full name, `container|sub` for a
/// subcommand) is not allowed there, replies with Redis's error and returns true.
pub(super) fn refused_when_subscribed(ctx: &mut Ctx<'_>, spec_name: &str, name: &str) -> bool {
    if ctx.client.resp != 2
        || !ctx.client.pubsub.active()
        || ALLOWED_WHEN_SUBSCRIBED.contains(&spec_name)
    {
        return false;
    }
    reply::err(
        ctx.out,
        &format!(
            "Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
             RESET are allowed in this context"
        ),
    );
    true
}

/// PING's reply in RESP2 subscribed mode: `pong` and the argument (or an empty string) as
/// a message; `None` when the client is not in that mode.
pub(super) fn subscribed_ping(ctx: &mut Ctx<'_>, arg: Option<&[u8]>) -> bool {
    if ctx.client.resp != 2 || !ctx.client.pubsub.active() {
        return false;
    }
    push_header(ctx.out, false, 2);
    reply::bulk(ctx.out, b"pong");
    reply::bulk(ctx.out, arg.unwrap_or_default());
    true
}

/// The client's inbox, created at its first subscription.
fn inbox(ctx: &mut Ctx<'_>) -> Arc<Inbox> {
    let resp3 = ctx.client.resp == 3;
    let id = ctx.client.id;
    ctx.client
        .pubsub
        .inbox
        .get_or_insert_with(|| Arc::new(Inbox::new(id, resp3)))
        .clone()
}

/// One confirmation: `[kind, name, count]`, a null name when there was nothing to leave.
fn confirm(ctx: &mut Ctx<'_>, what: &[u8], name: Option<&[u8]>, count: usize) {
    let resp3 = ctx.client.resp == 3;
    push_header(ctx.out, resp3, 3);
    reply::bulk(ctx.out, what);
    match name {
        Some(n) => reply::bulk(ctx.out, n),
        None if resp3 => ctx.out.extend_from_slice(b"_\r\n"),
        None => ctx.out.extend_from_slice(b"$-1\r\n"),
    }
    reply::integer(ctx.out, count as i64);
}

/// The count a confirmation carries: channels and patterns, or shard channels alone.
fn count(ctx: &Ctx<'_>, kind: Kind) -> usize {
    match kind {
        Kind::Shard => ctx.client.pubsub.shard_channels(),
        _ => ctx.client.pubsub.count(),
    }
}

/// RESET's part: leaves every channel, pattern and shard channel without confirmations (the
/// inbox stays, for later subscriptions) and goes back to RESP2 framing.
pub(super) fn reset(ctx: &mut Ctx<'_>) {
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for name in ctx.client.pubsub.names(kind) {
            ctx.server
                .pubsub
                .unsubscribe(&mut ctx.client.pubsub, kind, &name);
        }
    }
    protocol_changed(ctx);
    note(ctx);
}

/// HELLO changed the protocol: messages already subscribed to arrive in its framing.
pub(super) fn protocol_changed(ctx: &Ctx<'_>) {
    if let Some(inbox) = &ctx.client.pubsub.inbox {
        inbox.set_resp3(ctx.client.resp == 3);
    }
}

/// CLIENT LIST's sub=, psub=, ssub= and flags=P follow the session.
fn note(ctx: &Ctx<'_>) {
    let s = &ctx.client.pubsub;
    ctx.client
        .entry
        .note_subscriptions(s.channels(), s.patterns(), s.shard_channels());
}

fn subscribe_to(ctx: &mut Ctx<'_>, args: &[&[u8]], kind: Kind, what: &[u8]) {
    let inbox = inbox(ctx);
    inbox.set_resp3(ctx.client.resp == 3);
    for name in &args[1..] {
        ctx.server
            .pubsub
            .subscribe(&mut ctx.client.pubsub, &inbox, kind, name);
        let n = count(ctx, kind);
        confirm(ctx, what, Some(name), n);
    }
    note(ctx);
}

fn unsubscribe_from(ctx: &mut Ctx<'_>, args: &[&[u8]], kind: Kind, what: &[u8]) {
    let names: Vec<Box<[u8]>> = if args.len() > 1 {
        args[1..].iter().map(|&a| a.into()).collect()
    } else {
        ctx.client.pubsub.names(kind)
    };
    if names.is_empty() {
        let n = count(ctx, kind);
        confirm(ctx, what, None, n);
    }
    for name in &names {
        ctx.server
            .pubsub
            .unsubscribe(&mut ctx.client.pubsub, kind, name);
        let n = count(ctx, kind);
        confirm(ctx, what, Some(name), n);
    }
    note(ctx);
}

pub fn subscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    subscribe_to(ctx, args, Kind::Channel, b"subscribe");
}

pub fn psubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    subscribe_to(ctx, args, Kind::Pattern, b"psubscribe");
}

pub fn ssubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    subscribe_to(ctx, args, Kind::Shard, b"ssubscribe");
}

pub fn unsubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    unsubscribe_from(ctx, args, Kind::Channel, b"unsubscribe");
}

pub fn punsubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    unsubscribe_from(ctx, args, Kind::Pattern, b"punsubscribe");
}

pub fn sunsubscribe(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    unsubscribe_from(ctx, args, Kind::Shard, b"sunsubscribe");
}

/// Publishes `msg` on `channel`; a message to this very client goes into its replies first.
pub(super) fn publish_from(ctx: &mut Ctx<'_>, kind: Kind, channel: &[u8], msg: &[u8]) -> usize {
    let me = Some((ctx.client.id, &mut *ctx.out, ctx.client.resp == 3));
    ctx.server.pubsub.publish(kind, channel, msg, me)
}

pub fn publish(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let n = publish_from(ctx, Kind::Channel, args[1], args[2]);
    reply::integer(ctx.out, n as i64);
}

pub fn spublish(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let n = publish_from(ctx, Kind::Shard, args[1], args[2]);
    reply::integer(ctx.out, n as i64);
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// PUBSUB CHANNELS / SHARDCHANNELS / NUMSUB / SHARDNUMSUB / NUMPAT / HELP.
pub fn pubsub(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let sub = args[1];
    let ps = &ctx.server.pubsub;
    if eq_subcommand(sub, "help") && args.len() == 2 {
        help(ctx.out, PUBSUB_HELP);
    } else if eq_subcommand(sub, "channels") || eq_subcommand(sub, "shardchannels") {
        let (kind, full) = if eq_subcommand(sub, "channels") {
            (Kind::Channel, "pubsub|channels")
        } else {
            (Kind::Shard, "pubsub|shardchannels")
        };
        if !sub_arity_ok(ctx.out, args, -2, full) {
            return;
        }
        if args.len() > 3 {
            let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
            msg.extend_from_slice(sub);
            msg.extend_from_slice(b"'. Try PUBSUB HELP.");
            return reply::error(ctx.out, &msg);
        }
        let channels = ps.channels(kind, args.get(2).copied());
        reply::array_len(ctx.out, channels.len());
        for c in &channels {
            reply::bulk(ctx.out, c);
        }
    } else if eq_subcommand(sub, "numsub") || eq_subcommand(sub, "shardnumsub") {
        let kind = if eq_subcommand(sub, "numsub") {
            Kind::Channel
        } else {
            Kind::Shard
        };
        // An array in RESP3 too (Redis 7.0).
        reply::array_len(ctx.out, (args.len() - 2) * 2);
        for c in &args[2..] {
            reply::bulk(ctx.out, c);
            reply::integer(ctx.out, ps.subscribers(kind, c) as i64);
        }
    } else if eq_subcommand(sub, "numpat") {
        if !sub_arity_ok(ctx.out, args, 2, "pubsub|numpat") {
            return;
        }
        reply::integer(ctx.out, ps.len(Kind::Pattern) as i64);
    } else {
        unknown_subcommand(ctx.out, sub, "pubsub");
    }
}
