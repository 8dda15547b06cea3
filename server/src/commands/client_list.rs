//! CLIENT LIST, CLIENT INFO and CLIENT KILL, over the registry of every worker's clients.

use std::sync::Arc;

use super::{eq_ignore_case, parse_i64, syntax_error, Ctx, COMMANDS};
use crate::clients::ClientEntry;
use crate::clock::now_ms;
use crate::protocol::reply;

/// Client types Redis knows, lower-cased; `None` for another name.
fn client_type(name: &[u8]) -> Option<&'static str> {
    ["normal", "master", "slave", "replica", "pubsub"]
        .into_iter()
        .find(|t| eq_ignore_case(name, t))
}

fn unknown_type(ctx: &mut Ctx<'_>, name: &[u8]) {
    let mut msg = b"ERR Unknown client type '".to_vec();
    msg.extend_from_slice(name);
    msg.push(b'\'');
    reply::error(ctx.out, &msg);
}

fn live_clients(ctx: &Ctx<'_>) -> Vec<Arc<ClientEntry>> {
    let mut all = ctx.server.registry.all();
    all.retain(|c| !c.is_killed());
    all
}

fn lines(clients: &[Arc<ClientEntry>]) -> Vec<u8> {
    let now = now_ms() as u64;
    let mut text = Vec::with_capacity(clients.len() * 300);
    for c in clients {
        let cmd = c.last_command().map_or("NULL", |i| COMMANDS[i].name);
        c.describe(now, cmd, &mut text);
        text.push(b'\n');
    }
    text
}

/// `CLIENT LIST [TYPE type] [ID id [id ...]]`
pub fn list(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let mut clients = live_clients(ctx);
    let mut j = 2;
    while j < args.len() {
        if eq_ignore_case(args[j], "type") && j + 1 < args.len() {
            let t = args[j + 1];
            let Some(kind) = client_type(t) else {
                return unknown_type(ctx, t);
            };
            clients.retain(|c| c.is_of_type(kind) == Some(true));
            j += 2;
        } else if eq_ignore_case(args[j], "id") && j + 1 < args.len() {
            let mut ids = Vec::new();
            for raw in &args[j + 1..] {
                match parse_i64(raw) {
                    Some(id) if id > 0 => ids.push(id as u64),
                    _ => return reply::err(ctx.out, "Invalid client ID"),
                }
            }
            clients.retain(|c| ids.contains(&c.id));
            j = args.len();
        } else {
            return syntax_error(ctx.out);
        }
    }
    reply::verbatim(ctx.out, ctx.client.resp, &lines(&clients));
}

/// `CLIENT INFO`: this connection's line.
pub fn info(ctx: &mut Ctx<'_>) {
    let me = ctx.client.entry.clone();
    reply::verbatim(ctx.out, ctx.client.resp, &lines(&[me]));
}

/// `CLIENT KILL ip:port` (replies OK or an error) or `CLIENT KILL <filter value> ...`
/// (replies how many were killed; SKIPME defaults to yes). The current client, if killed, is
/// closed once the reply is out.
pub fn kill(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let old_form = args.len() == 3;
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut skip_me = !old_form;
    let mut of_type: Option<&str> = None;
    if old_form {
        addr = Some(args[2]);
    } else {
        let mut j = 2;
        while j < args.len() {
            let (opt, value) = (args[j], args.get(j + 1).copied());
            match value {
                Some(v) if eq_ignore_case(opt, "id") => match parse_i64(v) {
                    Some(n) if n > 0 => id = Some(n as u64),
                    _ => return reply::err(ctx.out, "client-id should be greater than 0"),
                },
                Some(v) if eq_ignore_case(opt, "type") => {
                    let Some(kind) = client_type(v) else {
                        return unknown_type(ctx, v);
                    };
                    of_type = Some(kind);
                }
                Some(v) if eq_ignore_case(opt, "addr") => addr = Some(v),
                Some(v) if eq_ignore_case(opt, "laddr") => laddr = Some(v),
                Some(v) if eq_ignore_case(opt, "user") => {
                    if v != b"default" {
                        let mut msg = b"ERR No such user '".to_vec();
                        msg.extend_from_slice(v);
                        msg.push(b'\'');
                        return reply::error(ctx.out, &msg);
                    }
                }
                Some(v) if eq_ignore_case(opt, "skipme") => {
                    if eq_ignore_case(v, "yes") {
                        skip_me = true;
                    } else if eq_ignore_case(v, "no") {
                        skip_me = false;
                    } else {
                        return syntax_error(ctx.out);
                    }
                }
                _ => return syntax_error(ctx.out),
            }
            j += 2;
        }
    }
    let me = ctx.client.id;
    let mut killed = 0;
    for c in live_clients(ctx) {
        let matches = of_type.is_none_or(|t| c.is_of_type(t) == Some(true))
            && id.is_none_or(|id| c.id == id)
            && addr.is_none_or(|a| a == c.addr.to_string().as_bytes())
            && laddr.is_none_or(|a| a == c.laddr.to_string().as_bytes())
            && !(skip_me && c.id == me);
        if matches {
            if c.id == me {
                ctx.close = true;
            } else {
                c.kill();
            }
            killed += 1;
        }
    }
    if old_form {
        if killed == 0 {
            reply::err(ctx.out, "No such client");
        } else {
            reply::ok(ctx.out);
        }
    } else {
        reply::integer(ctx.out, killed);
    }
}
