//! SLOWLOG (GET, LEN, RESET, HELP) and LATENCY (LATEST, HISTORY, RESET, GRAPH, DOCTOR,
//! HISTOGRAM, HELP): what every worker logged, merged into one view (see [`crate::slowlog`],
//! [`crate::latency`] and [`crate::cmdstats`]).

use std::fmt::Write as _;

use super::{eq_subcommand, help, parse_i64, spec, sub_arity_ok, unknown_subcommand, Ctx};
use crate::clock::{now_ms, ticks_per_us};
use crate::cmdstats;
use crate::latency::History;
use crate::protocol::reply;

/// SLOWLOG GET's default count.
const SLOWLOG_GET_DEFAULT: usize = 10;

const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

pub fn slowlog(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let sub = args[1];
    let len_max = ctx.server.settings.slowlog_max_len() as usize;
    if eq_subcommand(sub, "get") {
        if args.len() > 3 {
            let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
            msg.extend_from_slice(super::c_str(sub, 128));
            msg.extend_from_slice(b"'. Try SLOWLOG HELP.");
            return reply::error(ctx.out, &msg);
        }
        let count = match args.get(2).map(|a| parse_i64(a)) {
            None => SLOWLOG_GET_DEFAULT,
            Some(Some(-1)) => usize::MAX,
            Some(Some(n)) if n >= 0 => n as usize,
            Some(_) => return reply::err(ctx.out, "count should be greater than or equal to -1"),
        };
        let entries = ctx.server.slowlog.newest(count, len_max);
        let out = &mut *ctx.out;
        reply::array_len(out, entries.len());
        for e in entries {
            reply::array_len(out, 6);
            reply::integer(out, e.id as i64);
            reply::integer(out, e.unix_secs);
            reply::integer(out, e.duration_us as i64);
            reply::array_len(out, e.args.len());
            for a in &e.args {
                reply::bulk(out, a);
            }
            reply::bulk(out, e.peer.as_bytes());
            reply::bulk(out, &e.name);
        }
    } else if eq_subcommand(sub, "len") {
        if sub_arity_ok(ctx.out, args, 2, "slowlog|len") {
            reply::integer(ctx.out, ctx.server.slowlog.len(len_max) as i64);
        }
    } else if eq_subcommand(sub, "reset") {
        if sub_arity_ok(ctx.out, args, 2, "slowlog|reset") {
            ctx.server.slowlog.reset();
            reply::ok(ctx.out);
        }
    } else if eq_subcommand(sub, "help") {
        if sub_arity_ok(ctx.out, args, 2, "slowlog|help") {
            help(ctx.out, SLOWLOG_HELP);
        }
    } else {
        unknown_subcommand(ctx.out, sub, "slowlog");
    }
}

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

pub fn latency(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let sub = args[1];
    let exact = |ctx: &mut Ctx<'_>, n: i32, name: &str| sub_arity_ok(ctx.out, args, n, name);
    if eq_subcommand(sub, "latest") {
        if exact(ctx, 2, "latency|latest") {
            latest(ctx);
        }
    } else if eq_subcommand(sub, "history") {
        if exact(ctx, 3, "latency|history") {
            history(ctx, args[2]);
        }
    } else if eq_subcommand(sub, "graph") {
        if exact(ctx, 3, "latency|graph") {
            graph(ctx, args[2]);
        }
    } else if eq_subcommand(sub, "reset") {
        let n = ctx.server.latency.reset(&args[2..]);
        reply::integer(ctx.out, n as i64);
    } else if eq_subcommand(sub, "doctor") {
        if exact(ctx, 2, "latency|doctor") {
            doctor(ctx);
        }
    } else if eq_subcommand(sub, "histogram") {
        histogram(ctx, &args[2..]);
    } else if eq_subcommand(sub, "help") {
        if exact(ctx, 2, "latency|help") {
            help(ctx.out, LATENCY_HELP);
        }
    } else {
        unknown_subcommand(ctx.out, sub, "latency");
    }
}

fn latest(ctx: &mut Ctx<'_>) {
    let events = ctx.server.latency.merged();
    let out = &mut *ctx.out;
    reply::array_len(out, events.len());
    for (name, h) in events {
        let last = h.samples.back().copied();
        reply::array_len(out, 4);
        reply::bulk(out, name.as_bytes());
        reply::integer(out, last.map_or(0, |s| s.unix_secs));
        reply::integer(out, last.map_or(0, |s| s.ms) as i64);
        reply::integer(out, h.max_ms as i64);
    }
}

fn event<'e>(
    events: &'e std::collections::BTreeMap<&str, History>,
    name: &[u8],
) -> Option<&'e History> {
    events
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|(_, h)| h)
}

fn history(ctx: &mut Ctx<'_>, name: &[u8]) {
    let events = ctx.server.latency.merged();
    let Some(h) = event(&events, name) else {
        return reply::array_len(ctx.out, 0);
    };
    reply::array_len(ctx.out, h.samples.len());
    for s in &h.samples {
        reply::array_len(ctx.out, 2);
        reply::integer(ctx.out, s.unix_secs);
        reply::integer(ctx.out, s.ms as i64);
    }
}

/// LATENCY GRAPH: the samples as columns of `#`, scaled to the worst, oldest on the left, with
/// how long ago each was (as Redis draws it, in a simpler hand).
fn graph(ctx: &mut Ctx<'_>, name: &[u8]) {
    let events = ctx.server.latency.merged();
    let Some(h) = event(&events, name).filter(|h| !h.samples.is_empty()) else {
        let mut msg = b"ERR No samples available for event '".to_vec();
        msg.extend_from_slice(name);
        msg.push(b'\'');
        return reply::error(ctx.out, &msg);
    };
    const ROWS: u64 = 4;
    let (min, max) = h
        .samples
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s.ms), hi.max(s.ms)));
    let now = now_ms().div_euclid(1000);
    let mut text = format!(
        "{} - high {} ms, low {} ms (all time high {} ms)\n",
        String::from_utf8_lossy(name),
        max,
        min,
        h.max_ms
    );
    text.push_str(&"-".repeat(80));
    text.push('\n');
    for row in (1..=ROWS).rev() {
        for s in &h.samples {
            let height = (s.ms * ROWS).div_ceil(max.max(1));
            text.push(if height >= row { '#' } else { ' ' });
        }
        text.push('\n');
    }
    for s in &h.samples {
        let _ = write!(text, "{}", ((now - s.unix_secs).max(0) % 10));
    }
    text.push_str("\nseconds ago, last digit\n");
    reply::verbatim(ctx.out, ctx.client.resp, text.as_bytes());
}

const DOCTOR_DISABLED: &str = "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n";
const DOCTOR_QUIET: &str = "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n";

/// LATENCY DOCTOR: Redis's texts when the monitor is off or saw nothing; otherwise each
/// event's spikes, their mean and deviation, and the advice that applies to flin.
fn doctor(ctx: &mut Ctx<'_>) {
    let events = ctx.server.latency.merged();
    if events.is_empty() {
        let off = ctx.server.settings.latency_monitor_threshold_ms() == 0;
        let text = if off { DOCTOR_DISABLED } else { DOCTOR_QUIET };
        return reply::verbatim(ctx.out, ctx.client.resp, text.as_bytes());
    }
    let mut text = String::from(
        "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n",
    );
    for (i, (name, h)) in events.iter().enumerate() {
        let n = h.samples.len() as u64;
        let mean = h.samples.iter().map(|s| s.ms).sum::<u64>() / n.max(1);
        let dev = h.samples.iter().map(|s| s.ms.abs_diff(mean)).sum::<u64>() / n.max(1);
        let _ = writeln!(
            text,
            "{}. {name}: {n} latency spikes (average {mean}ms, mean deviation {dev}ms). Worst all time event {}ms.",
            i + 1,
            h.max_ms
        );
    }
    text.push_str(
        "\nI have a few advices for you:\n\n- Check your slow log (SLOWLOG GET) for the commands that take longest: long \
         BITOP, BITCOUNT, LCS, KEYS or DUMP of large values run on one worker and delay that worker's other clients.\n\
         - Values larger than memory are read from disk: INFO stats shows cold_reads and their latency.\n",
    );
    reply::verbatim(ctx.out, ctx.client.resp, text.as_bytes());
}

/// LATENCY HISTOGRAM [command ...]: for each command with calls, its calls and a cumulative
/// histogram in microseconds at powers of two (Redis's layout).
fn histogram(ctx: &mut Ctx<'_>, names: &[&[u8]]) {
    // Every command and subcommand, or the named ones (`get`, `client|id`; a container's
    // name stands for its subcommands, as Redis does).
    let wanted: Vec<usize> = (0..spec::stat_slots())
        .filter(|&slot| {
            let name = spec::stat_name(slot);
            names.is_empty()
                || names.iter().any(|n| {
                    let container = name.split_once('|').map_or(name, |(c, _)| c);
                    n.eq_ignore_ascii_case(name.as_bytes())
                        || (name.contains('|') && n.eq_ignore_ascii_case(container.as_bytes()))
                })
        })
        .collect();
    let baseline = ctx.server.command_stats_baseline.lock();
    let workers = &ctx.server.command_stats;
    let resp = ctx.client.resp;
    let mut body = Vec::new();
    let mut n = 0;
    for i in wanted {
        let h = match &baseline {
            Ok(b) => b.histogram(workers, i),
            Err(_) => None,
        };
        let Some(h) = h else { continue };
        n += 1;
        reply::bulk(&mut body, spec::stat_name(i).as_bytes());
        cumulative(&mut body, resp, &h);
    }
    drop(baseline);
    reply::map_len(ctx.out, resp, n);
    ctx.out.extend_from_slice(&body);
}

/// One command's `calls` and `histogram_usec` (bucket upper bound in µs, samples at or
/// below it), buckets from 1 µs doubling, only where the count grows.
fn cumulative(out: &mut Vec<u8>, resp: u8, h: &[u64]) {
    let calls: u64 = h.iter().sum();
    let tpu = ticks_per_us();
    let mut points = Vec::new();
    let (mut seen, mut prev, mut bound_us) = (0u64, 0u64, 1u64);
    let mut i = 0;
    while seen < calls {
        let bound_ticks = (bound_us as f64 * tpu) as u64;
        while i < h.len() && cmdstats::bucket_high(i) <= bound_ticks {
            seen += h[i];
            i += 1;
        }
        if i >= h.len() {
            seen = calls;
        }
        if seen > prev {
            points.push((bound_us, seen));
            prev = seen;
        }
        bound_us *= 2;
    }
    reply::map_len(out, resp, 2);
    reply::bulk(out, b"calls");
    reply::integer(out, calls as i64);
    reply::bulk(out, b"histogram_usec");
    reply::map_len(out, resp, points.len());
    for (us, count) in points {
        reply::integer(out, us as i64);
        reply::integer(out, count as i64);
    }
}
