//! MONITOR, and what the server keeps of each command once it ran: a slow log entry when it
//! took `slowlog-log-slower-than` or more, a latency event past `latency-monitor-threshold`,
//! and a line for the monitoring clients. Each costs one relaxed load and a compare when it
//! does not apply.
//!
//! As Redis 7.0 does, MONITOR does not show administrative commands (SAVE, CONFIG, SLOWLOG,
//! CLIENT LIST...) nor commands refused before running, and shows passwords (AUTH, HELLO
//! AUTH) as `(redacted)`, in MONITOR and in the slow log alike.

use std::sync::Arc;

use super::table::{CommandSpec, ADMIN, FAST};
use super::{eq_ignore_case, eq_subcommand, Ctx};
use crate::clock::{now_ms, ticks_to_us};
use crate::monitor::{format_line, Sink};
use crate::protocol::reply;
use crate::slowlog;

/// MONITOR: from now on this client receives a line for every command any client runs.
pub fn monitor(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    if ctx.client.monitor.is_none() {
        let limit = ctx.server.settings.client_output_limit() as usize;
        let sink = Arc::new(Sink::new(ctx.client.id, limit));
        ctx.server.monitors.add(sink.clone());
        ctx.client.monitor = Some(sink);
    }
    reply::ok(ctx.out);
}

const REDACTED: &[u8] = b"(redacted)";

/// The arguments as MONITOR and the slow log show them: passwords redacted (AUTH's
/// arguments, the two after HELLO's AUTH, CONFIG SET requirepass's value).
fn shown_args<'a>(args: &'a [&'a [u8]]) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
    let mut hide = vec![false; args.len()];
    if eq_ignore_case(args[0], "auth") {
        hide[1..].fill(true);
    } else if eq_ignore_case(args[0], "config") && args.len() > 1 && eq_subcommand(args[1], "set") {
        for (i, pair) in args[2..].chunks(2).enumerate() {
            if super::config::SENSITIVE
                .iter()
                .any(|p| eq_ignore_case(pair[0], p))
            {
                hide[2 + 2 * i + 1..]
                    .iter_mut()
                    .take(1)
                    .for_each(|h| *h = true);
            }
        }
    } else if eq_ignore_case(args[0], "hello") {
        let mut j = 2;
        while j < args.len() {
            if eq_ignore_case(args[j], "auth") && j + 2 < args.len() {
                hide[j + 1] = true;
                hide[j + 2] = true;
                j += 3;
            } else if eq_ignore_case(args[j], "setname") {
                j += 2;
            } else {
                j += 1;
            }
        }
    }
    args.iter()
        .zip(hide)
        .map(|(&a, hidden)| if hidden { REDACTED } else { a })
}

/// Whether MONITOR shows a command: not when it, or its subcommand (Redis 7's COMMAND INFO
/// flags, see `spec`), is administrative.
fn shown_to_monitors(index: usize, spec: &CommandSpec, args: &[&[u8]]) -> bool {
    if spec.flags & ADMIN != 0 {
        return false;
    }
    let sub = args.get(1).and_then(|a| super::spec::subcommand(index, a));
    !sub.is_some_and(|s| s.flags.contains(&"admin"))
}

/// Logs, records and shows a command that ran for `ticks`.
#[inline]
pub(super) fn after_command(ctx: &mut Ctx<'_>, index: usize, args: &[&[u8]], ticks: u64) {
    let spec = &super::table::COMMANDS[index];
    let server = ctx.server;
    // EXEC is `skip_slowlog`: its commands are logged, each by itself.
    if ticks >= server.settings.slowlog_threshold_ticks()
        && spec.flags & super::table::SKIP_SLOWLOG == 0
    {
        slow(ctx, args, ticks);
    }
    if ticks >= server.settings.latency_threshold_ticks() {
        let ms = (ticks_to_us(ticks) / 1000.0) as u64;
        let event = if spec.flags & FAST != 0 {
            "fast-command"
        } else {
            "command"
        };
        server
            .latency
            .add(ctx.worker, event, now_ms().div_euclid(1000), ms);
    }
    if server.monitors.is_active() && shown_to_monitors(index, spec, args) {
        let mut line = Vec::with_capacity(64);
        let unix_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let peer = ctx.client.entry.addr.to_string();
        format_line(&mut line, unix_us, ctx.client.db, &peer, shown_args(args));
        server.monitors.feed(&line);
    }
}

#[cold]
fn slow(ctx: &mut Ctx<'_>, args: &[&[u8]], ticks: u64) {
    let server = ctx.server;
    let entry = slowlog::Entry {
        id: server.slowlog.next_id(),
        unix_secs: now_ms().div_euclid(1000),
        duration_us: ticks_to_us(ticks) as u64,
        args: slowlog::entry_args(shown_args(args)),
        peer: ctx.client.entry.addr.to_string(),
        name: ctx.client.entry.name().unwrap_or_default(),
    };
    let len_max = server.settings.slowlog_max_len() as usize;
    server.slowlog.push(ctx.worker, entry, len_max);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(args: &[&[u8]]) -> Vec<String> {
        shown_args(args)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(shown(&[b"auth", b"pw"]), ["auth", "(redacted)"]);
        assert_eq!(
            shown(&[b"AUTH", b"user", b"pw"]),
            ["AUTH", "(redacted)", "(redacted)"]
        );
        assert_eq!(
            shown(&[b"hello", b"2", b"auth", b"u", b"p", b"setname", b"n"]),
            [
                "hello",
                "2",
                "auth",
                "(redacted)",
                "(redacted)",
                "setname",
                "n"
            ]
        );
        assert_eq!(shown(&[b"set", b"auth", b"x"]), ["set", "auth", "x"]);
        assert_eq!(
            shown(&[b"config", b"set", b"timeout", b"1", b"requirepass", b"pw"]),
            ["config", "set", "timeout", "1", "requirepass", "(redacted)"]
        );
    }
}
