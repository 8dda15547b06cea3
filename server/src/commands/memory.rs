//! MEMORY (USAGE, STATS, DOCTOR, MALLOC-STATS, PURGE, HELP).
//!
//! USAGE is what Redis 7.0 would count for the key (see `object`). STATS has Redis's fields
//! with flin's figures: the heap as glibc's allocator reports it (`mallinfo2`), the index as
//! the keyspace's overhead, the live bytes of the log as the dataset, and the process's
//! resident set; fields for what flin does not have (replication, AOF buffer, scripts) are 0.

use super::object::usage_bytes;
use super::{
    eq_ignore_case, eq_subcommand, help, not_integer, parse_i64, sub_arity_ok, syntax_error,
    unknown_subcommand, Ctx,
};
use crate::heap;
use crate::protocol::reply;

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];

/// Below this much memory in use Redis's doctor declines to judge.
const DOCTOR_USED_BYTES_MIN: u64 = 5 * 1024 * 1024;

const DOCTOR_EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";
const DOCTOR_FINE: &str = "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n";

pub fn memory(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let sub = args[1];
    if eq_subcommand(sub, "usage") {
        if sub_arity_ok(ctx.out, args, -3, "memory|usage") {
            usage(ctx, args);
        }
        return;
    }
    let (name, run): (&str, fn(&mut Ctx<'_>)) = if eq_subcommand(sub, "stats") {
        ("memory|stats", stats)
    } else if eq_subcommand(sub, "doctor") {
        ("memory|doctor", doctor)
    } else if eq_subcommand(sub, "malloc-stats") {
        ("memory|malloc-stats", malloc_stats)
    } else if eq_subcommand(sub, "purge") {
        ("memory|purge", purge)
    } else if eq_subcommand(sub, "help") {
        ("memory|help", |ctx| help(ctx.out, MEMORY_HELP))
    } else {
        return unknown_subcommand(ctx.out, sub, "memory");
    };
    if sub_arity_ok(ctx.out, args, 2, name) {
        run(ctx);
    }
}

/// MEMORY USAGE key [SAMPLES count]: SAMPLES is checked as Redis does; a string has nothing
/// nested to sample.
fn usage(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let mut j = 3;
    while j < args.len() {
        if eq_ignore_case(args[j], "samples") && j + 1 < args.len() {
            match parse_i64(args[j + 1]) {
                None => return not_integer(ctx.out),
                Some(n) if n < 0 => return syntax_error(ctx.out),
                Some(_) => j += 2,
            }
        } else {
            return syntax_error(ctx.out);
        }
    }
    let key = args[2];
    match ctx
        .db_no_touch()
        .get_with(key, |e| e.map(|e| usage_bytes(key, e.value)))
    {
        Some(n) => reply::integer(ctx.out, n as i64),
        None => reply::null(ctx.out, ctx.client.resp),
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn stats(ctx: &mut Ctx<'_>) {
    let st = ctx.server.stats();
    let h = ctx.server.heap.sample();
    let (allocated, active, startup, peak) = (h.allocated, h.active, h.at_start, h.peak);
    let rss = super::server::rss_bytes();
    let index = st.engine.index_bytes;
    let clients = st.output_queued_bytes;
    let overhead = startup + index + clients;
    let keys = st.engine.keys;
    let dataset = st.engine.live_bytes;
    let ints: [(&str, u64); 10] = [
        ("peak.allocated", peak),
        ("total.allocated", allocated),
        ("startup.allocated", startup),
        ("replication.backlog", 0),
        ("clients.slaves", 0),
        ("clients.normal", clients),
        ("cluster.links", 0),
        ("aof.buffer", 0),
        ("lua.caches", 0),
        ("functions.caches", 0),
    ];
    let (out, resp) = (&mut *ctx.out, ctx.client.resp);
    reply::map_len(out, resp, ints.len() + 1 + 19);
    for (name, v) in ints {
        reply::bulk(out, name.as_bytes());
        reply::integer(out, v as i64);
    }
    reply::bulk(out, b"db.0");
    reply::map_len(out, resp, 2);
    reply::bulk(out, b"overhead.hashtable.main");
    reply::integer(out, index as i64);
    reply::bulk(out, b"overhead.hashtable.expires");
    reply::integer(out, 0);
    let per_key = allocated
        .saturating_sub(startup)
        .checked_div(keys)
        .unwrap_or(0);
    let fields: [(&str, Figure); 19] = [
        ("overhead.total", Figure::Int(overhead)),
        ("keys.count", Figure::Int(keys)),
        ("keys.bytes-per-key", Figure::Int(per_key)),
        ("dataset.bytes", Figure::Int(dataset)),
        (
            "dataset.percentage",
            Figure::Float(100.0 * ratio(dataset, dataset + overhead)),
        ),
        (
            "peak.percentage",
            Figure::Float(100.0 * ratio(allocated, peak)),
        ),
        ("allocator.allocated", Figure::Int(allocated)),
        ("allocator.active", Figure::Int(active)),
        ("allocator.resident", Figure::Int(active)),
        (
            "allocator-fragmentation.ratio",
            Figure::Float(ratio(active, allocated)),
        ),
        (
            "allocator-fragmentation.bytes",
            Figure::Int(active - allocated),
        ),
        ("allocator-rss.ratio", Figure::Float(1.0)),
        ("allocator-rss.bytes", Figure::Int(0)),
        ("rss-overhead.ratio", Figure::Float(ratio(rss, active))),
        (
            "rss-overhead.bytes",
            Figure::Int(rss.saturating_sub(active)),
        ),
        ("fragmentation", Figure::Float(ratio(rss, allocated))),
        (
            "fragmentation.bytes",
            Figure::Int(rss.saturating_sub(allocated)),
        ),
        ("index.bytes", Figure::Int(index)),
        ("log.disk.bytes", Figure::Int(st.engine.disk_bytes)),
    ];
    for (name, v) in fields {
        reply::bulk(out, name.as_bytes());
        match v {
            Figure::Int(n) => reply::integer(out, n as i64),
            // Redis keeps these ratios as C floats and prints them widened, with `%.17g`.
            Figure::Float(f) => reply::double(out, resp, f64::from(f as f32)),
        }
    }
}

enum Figure {
    Int(u64),
    Float(f64),
}

fn doctor(ctx: &mut Ctx<'_>) {
    // The values live in the log's mapped segments, not the heap: both count.
    let used = ctx.server.heap.sample().allocated + ctx.engine.stats().live_bytes;
    let text = if used < DOCTOR_USED_BYTES_MIN {
        DOCTOR_EMPTY
    } else {
        DOCTOR_FINE
    };
    reply::verbatim(ctx.out, ctx.client.resp, text.as_bytes());
}

/// The allocator's own figures, as text (Redis prints jemalloc's report; flin runs on glibc's
/// allocator).
fn malloc_stats(ctx: &mut Ctx<'_>) {
    reply::verbatim(
        ctx.out,
        ctx.client.resp,
        heap::allocator_report().as_bytes(),
    );
}

/// MEMORY PURGE: gives free heap pages back to the system.
fn purge(ctx: &mut Ctx<'_>) {
    heap::purge();
    reply::ok(ctx.out);
}
