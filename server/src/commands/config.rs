//! CONFIG (GET, SET, RESETSTAT, HELP) under Redis's parameter names.
//!
//! CONFIG SET changes, while the server runs, every parameter flin has that Redis lets you
//! change: maxclients, timeout, requirepass, masterauth, masteruser, replica-priority,
//! proto-max-bulk-len, client-output-buffer-limit
//! (its normal class's hard limit becomes flin's output limit, see below) and flin's own
//! client-output-limit, slowlog-log-slower-than, slowlog-max-len, latency-monitor-threshold,
//! latency-tracking, and appendfsync (the engine's fsync policy, from the next write on).
//! appendonly, save, maxmemory, maxmemory-policy and protected-mode are fixed when the server
//! starts (no RDB, no eviction): setting them to the value they have is accepted, anything
//! else gets Redis's immutable-config error, as do bind, databases, dir, io-threads, port and
//! segment-size.
//!
//! As Redis 7.0, several pairs are set at once or none is: names are checked first (unknown,
//! immutable, repeated: the first problem is reported), then every value is parsed with
//! Redis's rules and messages, then all are applied.
//!
//! flin's output limit is backpressure (a client over it waits until it reads), not Redis's
//! disconnection, so client-output-buffer-limit's normal hard limit of 0 (Redis: unlimited)
//! leaves flin's limit as it is. Its pubsub class is Redis's: a subscriber over it is closed.

use super::{arity_error, eq_subcommand, help, syntax_error, unknown_subcommand, Ctx};
use crate::config::FsyncPolicy;
use crate::glob;
use crate::protocol::parse::string_to_i64;
use crate::protocol::reply;

/// Every parameter, sorted (CONFIG GET * lists them in this order).
const PARAMS: &[&str] = &[
    "appendfsync",
    "appendonly",
    "bind",
    "client-output-buffer-limit",
    "client-output-limit",
    "databases",
    "dir",
    "io-threads",
    "latency-monitor-threshold",
    "latency-tracking",
    "masterauth",
    "masteruser",
    "maxclients",
    "maxmemory",
    "maxmemory-policy",
    "notify-keyspace-events",
    "port",
    "protected-mode",
    "proto-max-bulk-len",
    "repl-backlog-size",
    "repl-backlog-ttl",
    "replica-priority",
    "replica-read-only",
    "requirepass",
    "save",
    "segment-size",
    "shutdown-timeout",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "timeout",
];

/// Parameters that never change while flin runs.
const IMMUTABLE: &[&str] = &[
    "bind",
    "databases",
    "dir",
    "io-threads",
    "port",
    "segment-size",
];

/// Parameters whose value is Redis-sensitive: CONFIG SET's value is redacted in the slow log.
pub(super) const SENSITIVE: &[&str] = &["requirepass", "masterauth"];

const MAXMEMORY_POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];
const BUFFER_CLASSES: &[&str] = &["normal", "slave", "pubsub"];
/// The smallest output limit CONFIG SET client-output-limit takes.
const OUTPUT_LIMIT_MIN_BYTES: u64 = 1024;

/// A parameter's value now, as CONFIG GET shows it.
fn value(ctx: &Ctx<'_>, name: &str) -> String {
    let c = &ctx.server.config;
    let s = &ctx.server.settings;
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    match name {
        "appendfsync" => FsyncPolicy::from_engine(ctx.engine.fsync()).name().into(),
        "appendonly" => "yes".into(),
        "bind" => c.bind.to_string(),
        "client-output-buffer-limit" => {
            let l = s.output_buffer_limits();
            let mut v = Vec::new();
            for (class, [hard, soft, secs]) in BUFFER_CLASSES.iter().zip(l) {
                v.push(format!("{class} {hard} {soft} {secs}"));
            }
            v.join(" ")
        }
        "client-output-limit" => s.client_output_limit().to_string(),
        "databases" => c.databases.to_string(),
        "dir" => c.dir.display().to_string(),
        "io-threads" => ctx.server.threads.to_string(),
        "latency-monitor-threshold" => s.latency_monitor_threshold_ms().to_string(),
        "latency-tracking" => yes_no(s.latency_tracking()),
        "maxclients" => s.maxclients().to_string(),
        "maxmemory" => "0".into(),
        "maxmemory-policy" => "noeviction".into(),
        "notify-keyspace-events" => crate::notify::format(ctx.server.pubsub.events.flags()),
        "port" => ctx.server.local_addr.port().to_string(),
        "protected-mode" => yes_no(c.protected_mode),
        "proto-max-bulk-len" => s.proto_max_bulk_len().to_string(),
        "repl-backlog-size" => ctx.read_stream(|s| s.backlog_size()).to_string(),
        "repl-backlog-ttl" => ctx.read_stream(|s| s.backlog_ttl_secs()).to_string(),
        "replica-priority" => s.replica_priority().to_string(),
        "replica-read-only" => yes_no(s.replica_read_only()),
        "masterauth" => ctx.server.replica.credentials().0.unwrap_or_default(),
        "masteruser" => ctx.server.replica.credentials().1.unwrap_or_default(),
        "requirepass" => s
            .requirepass()
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .unwrap_or_default(),
        "save" => String::new(),
        "segment-size" => c.segment_size.to_string(),
        "shutdown-timeout" => s.shutdown_timeout_secs().to_string(),
        "slowlog-log-slower-than" => s.slowlog_log_slower_than_us().to_string(),
        "slowlog-max-len" => s.slowlog_max_len().to_string(),
        _ => s.timeout_secs().to_string(),
    }
}

const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
];

pub fn config(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let sub = args[1];
    if eq_subcommand(sub, "get") {
        if args.len() < 3 {
            return arity_error(ctx.out, "config|get");
        }
        get(ctx, &args[2..]);
    } else if eq_subcommand(sub, "set") {
        if args.len() < 4 {
            return arity_error(ctx.out, "config|set");
        }
        if args.len() % 2 != 0 {
            return syntax_error(ctx.out);
        }
        set(ctx, &args[2..]);
    } else if eq_subcommand(sub, "resetstat") {
        if args.len() != 2 {
            return arity_error(ctx.out, "config|resetstat");
        }
        ctx.server.reset_stats();
        reply::ok(ctx.out);
    } else if eq_subcommand(sub, "rewrite") {
        if args.len() != 2 {
            return arity_error(ctx.out, "config|rewrite");
        }
        // flin has no config file: what Redis rewrites into it that must survive a restart
        // is the role, which REPLICAOF already keeps in <dir>/REPLICAOF. Sentinel's failover
        // transaction sends CONFIG REWRITE after SLAVEOF and expects OK.
        reply::ok(ctx.out);
    } else if eq_subcommand(sub, "help") {
        if args.len() != 2 {
            return arity_error(ctx.out, "config|help");
        }
        help(ctx.out, CONFIG_HELP);
    } else {
        unknown_subcommand(ctx.out, sub, "config");
    }
}

/// The parameter named `arg` (any case, every byte).
fn param(arg: &[u8]) -> Option<&'static str> {
    PARAMS
        .iter()
        .copied()
        .find(|p| arg.eq_ignore_ascii_case(p.as_bytes()))
}

/// CONFIG GET as Redis 7: a name without glob characters is looked up as given (any case)
/// and answered under the name as the client wrote it; a pattern matches the canonical names.
/// A parameter is listed once however many arguments find it.
fn get(ctx: &mut Ctx<'_>, patterns: &[&[u8]]) {
    let mut hits: Vec<(&[u8], &str)> = Vec::new();
    for &p in patterns {
        let before_nul = p.split(|&b| b == 0).next().unwrap_or_default();
        if !before_nul.iter().any(|b| matches!(b, b'[' | b'*' | b'?')) {
            if let Some(name) = param(p).filter(|n| hits.iter().all(|(_, h)| h != n)) {
                hits.push((p, name));
            }
            continue;
        }
        for name in PARAMS {
            if hits.iter().all(|(_, h)| h != name) && glob::matches(p, name.as_bytes(), true) {
                hits.push((name.as_bytes(), name));
            }
        }
    }
    let values: Vec<String> = hits.iter().map(|(_, name)| value(ctx, name)).collect();
    reply::map_len(ctx.out, ctx.client.resp, hits.len());
    for ((shown, _), v) in hits.iter().zip(values) {
        reply::bulk(ctx.out, shown);
        reply::bulk(ctx.out, v.as_bytes());
    }
}

/// A parsed value, ready to apply.
enum Value {
    Int(i64),
    Bool(bool),
    Text(Vec<u8>),
    BufferLimits([[u64; 3]; 3]),
}

/// CONFIG SET name value [name value ...]
fn set(ctx: &mut Ctx<'_>, pairs: &[&[u8]]) {
    let mut names: Vec<&'static str> = Vec::new();
    // The first problem: an unknown name (`None`), or a name and why it cannot be set.
    let mut problem: Option<(&[u8], Option<Why>)> = None;
    for pair in pairs.chunks_exact(2) {
        let found = param(pair[0]);
        if problem.is_none() {
            problem = match found {
                None => Some((pair[0], None)),
                Some(n) if IMMUTABLE.contains(&n) => Some((pair[0], Some(IMMUTABLE_CONFIG))),
                Some(n) if names.contains(&n) => Some((pair[0], Some("duplicate parameter"))),
                Some(_) => None,
            };
        }
        names.extend(found);
    }
    let mut values = Vec::with_capacity(names.len());
    if problem.is_none() {
        for (pair, name) in pairs.chunks_exact(2).zip(&names) {
            match parse(ctx, name, pair[1]) {
                Ok(v) => values.push(v),
                Err(why) => {
                    problem = Some((pair[0], Some(why)));
                    break;
                }
            }
        }
    }
    match problem {
        None => {
            for (name, v) in names.iter().zip(values) {
                apply(ctx, name, v);
            }
            reply::ok(ctx.out);
        }
        Some((arg, None)) => {
            let mut msg = b"ERR Unknown option or number of arguments for CONFIG SET - '".to_vec();
            msg.extend_from_slice(arg);
            msg.push(b'\'');
            reply::error(ctx.out, &msg);
        }
        Some((arg, Some(why))) => {
            let mut msg = b"ERR CONFIG SET failed (possibly related to argument '".to_vec();
            msg.extend_from_slice(arg);
            msg.extend_from_slice(b"') - ");
            msg.extend_from_slice(why.as_bytes());
            reply::error(ctx.out, &msg);
        }
    }
}

/// What CONFIG SET did not take, as Redis words it.
type Why = &'static str;

const NOT_INTEGER: Why = "argument couldn't be parsed into an integer";
const NOT_MEMORY: Why = "argument must be a memory value";
const NOT_YES_NO: Why = "argument must be 'yes' or 'no'";
const IMMUTABLE_CONFIG: Why = "can't set immutable config";

/// `raw` as parameter `name`'s value, checked against its kind and range.
fn parse(ctx: &Ctx<'_>, name: &str, raw: &[u8]) -> Result<Value, Why> {
    // As Redis 7.0 parses them: integers by every byte, other kinds as C strings (to a NUL).
    let raw_c = super::c_str(raw, usize::MAX);
    let int = |min: i64, max: i64, range: Why| {
        let v = string_to_i64(raw).ok_or(NOT_INTEGER)?;
        if (min..=max).contains(&v) {
            Ok(Value::Int(v))
        } else {
            Err(range)
        }
    };
    match name {
        "maxclients" => int(1, u32::MAX.into(), "argument must be between 1 and 4294967295 inclusive"),
        "timeout" => int(0, i32::MAX.into(), "argument must be between 0 and 2147483647 inclusive"),
        "replica-priority" | "shutdown-timeout" => int(0, i32::MAX.into(), "argument must be between 0 and 2147483647 inclusive"),
        "repl-backlog-ttl" => int(0, i64::MAX, "argument must be between 0 and 9223372036854775807 inclusive"),
        "slowlog-log-slower-than" => int(
            -1,
            i64::MAX,
            "argument must be between -1 and 9223372036854775807 inclusive",
        ),
        "slowlog-max-len" | "latency-monitor-threshold" => int(
            0,
            i64::MAX,
            "argument must be between 0 and 9223372036854775807 inclusive",
        ),
        "proto-max-bulk-len" => match memory_value(raw_c).ok_or(NOT_MEMORY)? {
            v if v >= 1 << 20 && v <= i64::MAX as u64 => Ok(Value::Int(v as i64)),
            _ => Err("argument must be between 1048576 and 9223372036854775807 inclusive"),
        },
        "repl-backlog-size" => match memory_value(raw_c).ok_or(NOT_MEMORY)? {
            v if v >= 1 && v <= i64::MAX as u64 => Ok(Value::Int(v as i64)),
            _ => Err("argument must be between 1 and 9223372036854775807 inclusive"),
        },
        "client-output-limit" => match memory_value(raw_c).ok_or(NOT_MEMORY)? {
            v if v >= OUTPUT_LIMIT_MIN_BYTES && v <= i64::MAX as u64 => Ok(Value::Int(v as i64)),
            _ => Err("argument must be between 1024 and 9223372036854775807 inclusive"),
        },
        "maxmemory" => match memory_value(raw_c).ok_or(NOT_MEMORY)? {
            0 => Ok(Value::Int(0)),
            _ => Err(IMMUTABLE_CONFIG),
        },
        "latency-tracking" | "replica-read-only" => yes_no(raw_c).map(Value::Bool),
        "appendonly" => match yes_no(raw_c)? {
            true => Ok(Value::Bool(true)),
            false => Err(IMMUTABLE_CONFIG),
        },
        "protected-mode" => match yes_no(raw_c)? {
            on if on == ctx.server.config.protected_mode => Ok(Value::Bool(on)),
            _ => Err(IMMUTABLE_CONFIG),
        },
        "appendfsync" => FsyncPolicy::from_name(raw_c)
            .map(|p| Value::Text(p.name().as_bytes().to_vec()))
            .ok_or("argument(s) must be one of the following: everysec, always, no"),
        "maxmemory-policy" => one_of(
            raw_c,
            MAXMEMORY_POLICIES,
            "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
            "noeviction",
        ),
        "save" => match raw_c {
            b"" => Ok(Value::Text(Vec::new())),
            _ => Err(IMMUTABLE_CONFIG),
        },
        "client-output-buffer-limit" => buffer_limits(ctx, raw_c).map(Value::BufferLimits),
        "notify-keyspace-events" => crate::notify::parse(raw_c)
            .map(|f| Value::Int(i64::from(f)))
            .ok_or(crate::notify::INVALID),
        _ => Ok(Value::Text(raw.to_vec())),
    }
}

fn yes_no(raw: &[u8]) -> Result<bool, Why> {
    if raw.eq_ignore_ascii_case(b"yes") {
        Ok(true)
    } else if raw.eq_ignore_ascii_case(b"no") {
        Ok(false)
    } else {
        Err(NOT_YES_NO)
    }
}

/// One of an enumeration's words, which must be the `current` one (flin cannot change it).
fn one_of(raw: &[u8], words: &[&str], why: Why, current: &str) -> Result<Value, Why> {
    match words
        .iter()
        .find(|w| raw.eq_ignore_ascii_case(w.as_bytes()))
    {
        None => Err(why),
        Some(w) if *w == current => Ok(Value::Text(w.as_bytes().to_vec())),
        Some(_) => Err(IMMUTABLE_CONFIG),
    }
}

/// Redis's `memtoull`: digits and an optional unit (b, k, kb, m, mb, g, gb; k is 1000, kb
/// 1024), no sign.
fn memory_value(raw: &[u8]) -> Option<u64> {
    let digits = raw.iter().take_while(|b| b.is_ascii_digit()).count();
    let (num, unit) = raw.split_at(digits);
    let mul: u64 = match unit.to_ascii_lowercase().as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    let mut v: u64 = 0;
    for &d in num {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v.wrapping_mul(mul))
}

/// client-output-buffer-limit: `<class> <hard> <soft> <seconds>` repeated; classes not named
/// keep their limits.
fn buffer_limits(ctx: &Ctx<'_>, raw: &[u8]) -> Result<[[u64; 3]; 3], Why> {
    let words: Vec<&[u8]> = raw
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let mut limits = ctx.server.settings.output_buffer_limits();
    if words.len() % 4 != 0 {
        return Err("Wrong number of arguments in buffer limit configuration.");
    }
    for group in words.chunks_exact(4) {
        let class = match group[0].to_ascii_lowercase().as_slice() {
            b"normal" => 0,
            b"slave" | b"replica" => 1,
            b"pubsub" => 2,
            _ => return Err("Invalid client class specified in buffer limit configuration."),
        };
        let bad = "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
        let hard = memory_value(group[1]).ok_or(bad)?;
        let soft = memory_value(group[2]).ok_or(bad)?;
        let secs = string_to_i64(group[3])
            .and_then(|s| u64::try_from(s).ok())
            .ok_or(bad)?;
        limits[class] = [hard, soft, secs];
    }
    Ok(limits)
}

fn apply(ctx: &mut Ctx<'_>, name: &str, v: Value) {
    let server = ctx.server;
    let s = &server.settings;
    match (name, v) {
        ("maxclients", Value::Int(n)) => s.set_maxclients(n as usize),
        ("timeout", Value::Int(n)) => s.set_timeout_secs(n as u64),
        ("slowlog-log-slower-than", Value::Int(n)) => s.set_slowlog_log_slower_than_us(n),
        ("slowlog-max-len", Value::Int(n)) => s.set_slowlog_max_len(n as u64),
        ("latency-monitor-threshold", Value::Int(n)) => {
            s.set_latency_monitor_threshold_ms(n as u64)
        }
        ("proto-max-bulk-len", Value::Int(n)) => s.set_proto_max_bulk_len(n as u64),
        ("client-output-limit", Value::Int(n)) => s.set_client_output_limit(n as u64),
        ("repl-backlog-size", Value::Int(n)) => {
            ctx.with_stream(|s| s.set_backlog_size(n as u64));
        }
        ("repl-backlog-ttl", Value::Int(n)) => {
            ctx.with_stream(|s| s.set_backlog_ttl_secs(n as u64));
        }
        ("latency-tracking", Value::Bool(on)) => s.set_latency_tracking(on),
        ("replica-read-only", Value::Bool(on)) => s.set_replica_read_only(on),
        ("replica-priority", Value::Int(n)) => s.set_replica_priority(n as u64),
        ("shutdown-timeout", Value::Int(n)) => s.set_shutdown_timeout_secs(n as u64),
        ("masterauth", Value::Text(p)) => server
            .replica
            .set_masterauth((!p.is_empty()).then(|| String::from_utf8_lossy(&p).into_owned())),
        ("masteruser", Value::Text(u)) => server
            .replica
            .set_masteruser((!u.is_empty()).then(|| String::from_utf8_lossy(&u).into_owned())),
        ("requirepass", Value::Text(p)) => s.set_requirepass(&p),
        ("appendfsync", Value::Text(p)) => {
            if let Some(p) = FsyncPolicy::from_name(&p) {
                ctx.engine.set_fsync(p.engine());
            }
        }
        ("notify-keyspace-events", Value::Int(n)) => ctx.server.pubsub.events.set(n as u32),
        ("client-output-buffer-limit", Value::BufferLimits(l)) => {
            s.set_output_buffer_limits(l);
            ctx.server.pubsub.limits.set(l[2]);
            ctx.with_stream(|s| s.set_limits(l[1]));
            if l[0][0] > 0 {
                s.set_client_output_limit(l[0][0]);
            }
        }
        // Accepted because unchanged (see `parse`).
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_values_as_memtoull() {
        assert_eq!(memory_value(b"1gb"), Some(1 << 30));
        assert_eq!(memory_value(b"1G"), Some(1_000_000_000));
        assert_eq!(memory_value(b"512mb"), Some(512 << 20));
        assert_eq!(memory_value(b"100"), Some(100));
        assert_eq!(memory_value(b"7b"), Some(7));
        assert_eq!(memory_value(b""), Some(0));
        assert_eq!(memory_value(b"1x"), None);
        assert_eq!(memory_value(b"-1"), None);
        assert_eq!(memory_value(b"1 mb"), None);
    }

    #[test]
    fn params_are_sorted_and_known() {
        assert!(PARAMS.windows(2).all(|w| w[0] < w[1]));
        assert!(IMMUTABLE
            .iter()
            .chain(SENSITIVE)
            .all(|p| PARAMS.contains(p)));
    }
}
