//! Connection commands: PING, ECHO, AUTH, HELLO, CLIENT, QUIT (SELECT is in `databases`).

use super::{arity_error, eq_ignore_case, eq_subcommand, parse_i64, unknown_subcommand, Ctx};
use crate::pause::PauseMode;
use crate::protocol::reply;

pub fn ping(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if args.len() <= 2 && super::pubsub::subscribed_ping(ctx, args.get(1).copied()) {
        return;
    }
    match args.len() {
        1 => reply::simple(ctx.out, b"PONG"),
        2 => reply::bulk(ctx.out, args[1]),
        _ => arity_error(ctx.out, "ping"),
    }
}

pub fn echo(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    reply::bulk(ctx.out, args[1]);
}

pub fn quit(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    reply::ok(ctx.out);
    ctx.close = true;
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right (the length still shows).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

enum AuthOutcome {
    Ok,
    WrongPass,
}

/// Checks a (username, password) pair against `--requirepass`; only the `default` user exists.
fn check(ctx: &Ctx<'_>, user: &[u8], pass: &[u8]) -> AuthOutcome {
    let ok = match ctx.server.settings.requirepass() {
        None => user == b"default",
        Some(p) => user == b"default" && constant_time_eq(pass, &p),
    };
    if ok {
        AuthOutcome::Ok
    } else {
        AuthOutcome::WrongPass
    }
}

const WRONGPASS: &[u8] = b"WRONGPASS invalid username-password pair or user is disabled.";

pub fn auth(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if args.len() > 3 {
        return super::syntax_error(ctx.out);
    }
    if args.len() == 2 && ctx.server.settings.requirepass().is_none() {
        return reply::err(
            ctx.out,
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    }
    let (user, pass): (&[u8], &[u8]) = if args.len() == 2 {
        (b"default", args[1])
    } else {
        (args[1], args[2])
    };
    match check(ctx, user, pass) {
        AuthOutcome::Ok => {
            ctx.client.authenticated = true;
            reply::ok(ctx.out);
        }
        AuthOutcome::WrongPass => reply::error(ctx.out, WRONGPASS),
    }
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]: switches the connection to RESP2 or
/// RESP3 (without a version it keeps the current one) and answers, in the new protocol, the
/// map Redis 7.0 does.
pub fn hello(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let mut j = 1;
    let mut version = None;
    if args.len() >= 2 {
        match parse_i64(args[1]) {
            Some(v @ (2 | 3)) => version = Some(v as u8),
            Some(_) => return reply::error(ctx.out, b"NOPROTO unsupported protocol version"),
            None => {
                return reply::err(
                    ctx.out,
                    "Protocol version is not an integer or out of range",
                )
            }
        }
        j = 2;
    }
    // Options take effect in order, as in Redis 7.0: AUTH authenticates and SETNAME names the
    // client at once (even before authentication), and the first that fails answers.
    while j < args.len() {
        let more = args.len() - 1 - j;
        if eq_ignore_case(args[j], "auth") && more >= 2 {
            match check(ctx, args[j + 1], args[j + 2]) {
                AuthOutcome::Ok => ctx.client.authenticated = true,
                AuthOutcome::WrongPass => return reply::error(ctx.out, WRONGPASS),
            }
            j += 3;
        } else if eq_ignore_case(args[j], "setname") && more >= 1 {
            if !set_name(ctx, args[j + 1]) {
                return;
            }
            j += 2;
        } else {
            let mut msg = b"ERR Syntax error in HELLO option '".to_vec();
            msg.extend_from_slice(args[j]);
            msg.push(b'\'');
            return reply::error(ctx.out, &msg);
        }
    }
    if !ctx.client.authenticated {
        return reply::error(
            ctx.out,
            b"NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    if let Some(v) = version {
        ctx.client.resp = v;
        ctx.client.entry.set_resp(v);
        super::pubsub::protocol_changed(ctx);
    }
    let resp = ctx.client.resp;
    let out = &mut *ctx.out;
    reply::map_len(out, resp, 7);
    reply::bulk(out, b"server");
    reply::bulk(out, b"redis");
    reply::bulk(out, b"version");
    reply::bulk(out, super::server::REDIS_VERSION.as_bytes());
    reply::bulk(out, b"proto");
    reply::integer(out, i64::from(resp));
    reply::bulk(out, b"id");
    reply::integer(out, ctx.client.id as i64);
    reply::bulk(out, b"mode");
    reply::bulk(out, b"standalone");
    reply::bulk(out, b"role");
    reply::bulk(out, b"master");
    reply::bulk(out, b"modules");
    reply::array_len(out, 0);
}

/// Sets the client name (empty clears it); false after replying with Redis's error.
fn set_name(ctx: &mut Ctx<'_>, name: &[u8]) -> bool {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        reply::err(
            ctx.out,
            "Client names cannot contain spaces, newlines or special characters.",
        );
        return false;
    }
    ctx.client
        .entry
        .set_name((!name.is_empty()).then(|| name.into()));
    true
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR <ip:port>",
    "      Kill connections made from the specified address",
    "    * LADDR <ip:port>",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * ID <client-id> [<client-id> ...]",
    "      Return clients of specified IDs only.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Accepted for client libraries; the value is not kept.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "HELP",
    "    Print this help.",
];

pub fn client(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let sub = args[1];
    let want = |n: usize, name: &str, ctx: &mut Ctx<'_>| {
        if args.len() != n {
            arity_error(ctx.out, &format!("client|{name}"));
            false
        } else {
            true
        }
    };
    if eq_subcommand(sub, "id") {
        if want(2, "id", ctx) {
            reply::integer(ctx.out, ctx.client.id as i64);
        }
    } else if eq_subcommand(sub, "getname") {
        if want(2, "getname", ctx) {
            match &ctx.client.entry.name() {
                Some(n) => reply::bulk(ctx.out, n),
                None => reply::null(ctx.out, ctx.client.resp),
            }
        }
    } else if eq_subcommand(sub, "setname") {
        if want(3, "setname", ctx) && set_name(ctx, args[2]) {
            reply::ok(ctx.out);
        }
    } else if eq_subcommand(sub, "setinfo") {
        if want(4, "setinfo", ctx) {
            if eq_ignore_case(args[2], "lib-name") || eq_ignore_case(args[2], "lib-ver") {
                reply::ok(ctx.out);
            } else {
                let mut msg = b"ERR Unrecognized option '".to_vec();
                msg.extend_from_slice(args[2]);
                msg.push(b'\'');
                reply::error(ctx.out, &msg);
            }
        }
    } else if eq_subcommand(sub, "list") {
        super::client_list::list(ctx, args);
    } else if eq_subcommand(sub, "info") {
        if want(2, "info", ctx) {
            super::client_list::info(ctx);
        }
    } else if eq_subcommand(sub, "kill") {
        if args.len() < 3 {
            arity_error(ctx.out, "client|kill");
        } else {
            super::client_list::kill(ctx, args);
        }
    } else if eq_subcommand(sub, "pause") {
        if args.len() < 3 {
            arity_error(ctx.out, "client|pause");
        } else {
            pause(ctx, args);
        }
    } else if eq_subcommand(sub, "unpause") {
        if want(2, "unpause", ctx) {
            ctx.server.pause.unpause();
            reply::ok(ctx.out);
        }
    } else if eq_subcommand(sub, "no-evict") || eq_subcommand(sub, "no-touch") {
        // flin evicts nothing, so NO-EVICT is accepted as it is; NO-TOUCH keeps this client's
        // commands from stamping the keys' access clocks.
        let touch = eq_subcommand(sub, "no-touch");
        let name = if touch { "no-touch" } else { "no-evict" };
        if want(3, name, ctx) {
            let on = eq_ignore_case(args[2], "on");
            if on || eq_ignore_case(args[2], "off") {
                if touch {
                    ctx.client.no_touch = on;
                }
                reply::ok(ctx.out);
            } else {
                super::syntax_error(ctx.out);
            }
        }
    } else if eq_subcommand(sub, "reply") {
        if want(3, "reply", ctx) {
            super::reset::client_reply(ctx, args);
        }
    } else if eq_subcommand(sub, "help") {
        if !want(2, "help", ctx) {
            return;
        }
        reply::array_len(ctx.out, CLIENT_HELP.len());
        for line in CLIENT_HELP {
            reply::simple(ctx.out, line.as_bytes());
        }
    } else {
        unknown_subcommand(ctx.out, sub, "client");
    }
}

/// CLIENT PAUSE timeout [WRITE|ALL]: the mode is checked first, then the timeout (ms), as
/// Redis does.
fn pause(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if args.len() > 4 {
        let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
        msg.extend_from_slice(super::c_str(args[1], 128));
        msg.extend_from_slice(b"'. Try CLIENT HELP.");
        return reply::error(ctx.out, &msg);
    }
    let mode = match args.get(3) {
        None => PauseMode::All,
        Some(m) if eq_ignore_case(m, "write") => PauseMode::Write,
        Some(m) if eq_ignore_case(m, "all") => PauseMode::All,
        Some(_) => return reply::err(ctx.out, "CLIENT PAUSE mode must be WRITE or ALL"),
    };
    let now = crate::clock::now_ms();
    let end = match parse_i64(args[2]) {
        None => return reply::err(ctx.out, "timeout is not an integer or out of range"),
        Some(t) if t < 0 => return reply::err(ctx.out, "timeout is negative"),
        // Redis 7.0 adds without an overflow check: a huge timeout wraps into the past, which
        // pauses nothing.
        Some(t) => t.wrapping_add(now),
    };
    ctx.server.pause.pause(end, mode, now);
    reply::ok(ctx.out);
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn password_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret1"));
        assert!(constant_time_eq(b"", b""));
    }
}
