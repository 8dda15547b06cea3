//! Server commands: INFO (its per-command sections are in `info_stats`), SHUTDOWN,
//! SAVE, BGSAVE, LASTSAVE (see [`crate::checkpoints`]), ROLE, TIME. CONFIG is in `config`,
//! COMMAND in `command`.

use std::fmt::Write as _;

use super::{eq_ignore_case, info_stats, Ctx};
use crate::checkpoints::BgsaveRefused;
use crate::protocol::reply;

/// The Redis version flin reports to clients that check it (RESP2 string commands of 7.0).
pub const REDIS_VERSION: &str = "7.0.0";

/// SAVE: a checkpoint now, on this worker; `+OK` once it is on disk.
pub fn save(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    match ctx.server.saves.save(ctx.engine) {
        Ok(_) => reply::ok(ctx.out),
        Err(msg) => reply::err(ctx.out, &msg),
    }
}

/// BGSAVE [SCHEDULE]: a checkpoint on a thread of its own. With SCHEDULE, a request made while
/// one runs is answered as Redis does, without queueing another (the running one is as recent).
pub fn bgsave(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let schedule = match args {
        [_] => false,
        [_, a] if eq_ignore_case(a, "schedule") => true,
        _ => return super::syntax_error(ctx.out),
    };
    match ctx.server.saves.start_background(&ctx.server.engine) {
        Ok(()) => reply::simple(ctx.out, b"Background saving started"),
        Err(BgsaveRefused::InProgress) if schedule => {
            reply::simple(ctx.out, b"Background saving scheduled")
        }
        Err(BgsaveRefused::InProgress) => {
            reply::err(ctx.out, "Background save already in progress")
        }
        Err(BgsaveRefused::Spawn(e)) => {
            reply::err(ctx.out, &format!("cannot start the background save: {e}"))
        }
    }
}

/// LASTSAVE: Unix time of the last successful SAVE or BGSAVE (of the start, before any).
pub fn lastsave(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    reply::integer(ctx.out, ctx.server.saves.last_save_unix_secs() as i64);
}

/// SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]: stops the server; like Redis, the client
/// gets no reply, its connection closes. Every write is synced either way. Without NOW (or
/// FORCE: flin has no save that could fail) it first waits for lagging replicas, writes
/// paused, for up to `shutdown-timeout` seconds, as Redis 7 does; ABORT ends that wait
/// (`crate::shutdown`).
pub fn shutdown(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let (mut now, mut abort, mut nosave, mut save) = (false, false, false, false);
    for a in &args[1..] {
        if eq_ignore_case(a, "abort") {
            abort = true;
        } else if eq_ignore_case(a, "now") || eq_ignore_case(a, "force") {
            now = true;
        } else if eq_ignore_case(a, "nosave") {
            nosave = true;
        } else if eq_ignore_case(a, "save") {
            save = true;
        } else {
            return super::syntax_error(ctx.out);
        }
    }
    // Redis's illegal combinations: ABORT with any other flag, NOSAVE with SAVE.
    if (abort && (now || nosave || save)) || (nosave && save) {
        return super::syntax_error(ctx.out);
    }
    if abort {
        if crate::shutdown::abort(ctx.server) {
            return reply::ok(ctx.out);
        }
        return reply::err(ctx.out, "No shutdown in progress.");
    }
    ctx.shutdown = Some(if now {
        super::Shutdown::Now
    } else {
        super::Shutdown::AfterReplicas
    });
}

/// INFO's sections in Redis's order, each with whether plain `INFO` (and `INFO default`)
/// shows it; `all` and `everything` show them all.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("keyspace", true),
];

pub fn info(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let wanted = |&&(name, default): &&(&str, bool)| {
        (args.len() == 1 && default)
            || args[1..].iter().any(|a| {
                eq_ignore_case(a, name)
                    || eq_ignore_case(a, "all")
                    || eq_ignore_case(a, "everything")
                    || (default && eq_ignore_case(a, "default"))
            })
    };
    let stats = ctx.server.stats();
    let mut s = String::with_capacity(2048);
    for (section, _) in SECTIONS.iter().filter(wanted) {
        if !s.is_empty() {
            s.push_str("\r\n");
        }
        match *section {
            "server" => info_server(ctx, &stats, &mut s),
            "clients" => info_clients(ctx, &stats, &mut s),
            "memory" => info_memory(&stats, &mut s),
            "persistence" => info_persistence(ctx, &stats, &mut s),
            "stats" => info_stats(
                &stats,
                info_stats::total_error_replies(ctx),
                &ctx.server.pubsub,
                &ctx.server.primary,
                &mut s,
            ),
            "replication" => info_replication(ctx, &mut s),
            "cpu" => info_cpu(&mut s),
            "commandstats" => info_stats::commandstats(ctx, &mut s),
            "errorstats" => info_stats::errorstats(ctx, &mut s),
            "latencystats" => info_stats::latencystats(ctx, &mut s),
            "cluster" => s.push_str("# Cluster\r\ncluster_enabled:0\r\n"),
            _ => super::databases::info_keyspace(ctx.engine, &mut s),
        }
    }
    reply::verbatim(ctx.out, ctx.client.resp, s.as_bytes());
}

macro_rules! line {
    ($s:expr, $($arg:tt)*) => {{
        let _ = write!($s, $($arg)*);
        $s.push_str("\r\n");
    }};
}

fn info_server(ctx: &Ctx<'_>, st: &crate::stats::ServerStats, s: &mut String) {
    let sh = ctx.server;
    line!(s, "# Server");
    line!(s, "redis_version:{REDIS_VERSION}");
    line!(s, "flin_version:{}", env!("CARGO_PKG_VERSION"));
    line!(s, "redis_mode:standalone");
    line!(s, "os:{} {}", std::env::consts::OS, std::env::consts::ARCH);
    line!(s, "arch_bits:{}", usize::BITS);
    line!(s, "multiplexing_api:{}", sh.driver.name());
    line!(s, "process_id:{}", std::process::id());
    line!(s, "run_id:{}", run_id());
    line!(s, "tcp_port:{}", sh.local_addr.port());
    line!(s, "server_threads:{}", sh.threads);
    line!(s, "uptime_in_seconds:{}", st.uptime_secs);
    line!(s, "uptime_in_days:{}", st.uptime_secs / 86_400);
    line!(
        s,
        "executable:{}",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    line!(s, "config_file:");
}

/// This process's id for Sentinel and clients: 40 random hex digits, new at each start.
fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(crate::backlog::new_replid)
}

fn info_clients(ctx: &Ctx<'_>, st: &crate::stats::ServerStats, s: &mut String) {
    line!(s, "# Clients");
    line!(s, "connected_clients:{}", st.active_connections);
    line!(s, "maxclients:{}", ctx.server.settings.maxclients());
    line!(s, "blocked_clients:0");
    line!(s, "client_output_queued_bytes:{}", st.output_queued_bytes);
    line!(
        s,
        "client_output_queued_bytes_peak:{}",
        st.output_queued_bytes_peak
    );
}

/// Resident set size from /proc, in bytes (0 where unavailable).
pub(super) fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf reads a constant; no memory is touched.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

fn human(bytes: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.2}{}", units[i])
    }
}

fn info_memory(st: &crate::stats::ServerStats, s: &mut String) {
    let rss = rss_bytes();
    // The index is what the keyspace costs in memory; values live in the mapped segments.
    let used = st.engine.index_bytes + st.output_queued_bytes;
    line!(s, "# Memory");
    line!(s, "used_memory:{used}");
    line!(s, "used_memory_human:{}", human(used));
    line!(s, "used_memory_rss:{rss}");
    line!(s, "used_memory_rss_human:{}", human(rss));
    line!(s, "index_bytes:{}", st.engine.index_bytes);
    line!(s, "maxmemory:0");
    line!(s, "maxmemory_human:0B");
    line!(s, "maxmemory_policy:noeviction");
}

fn info_persistence(ctx: &Ctx<'_>, st: &crate::stats::ServerStats, s: &mut String) {
    let e = &st.engine;
    let ok = if e.poisoned.is_some() { "err" } else { "ok" };
    line!(s, "# Persistence");
    line!(s, "loading:{}", u8::from(ctx.server.replica.is_loading()));
    line!(s, "aof_enabled:1");
    line!(s, "aof_last_write_status:{ok}");
    let saves = &ctx.server.saves;
    line!(
        s,
        "rdb_changes_since_last_save:{}",
        saves.changes_since_last_save(e.last_seq)
    );
    line!(
        s,
        "rdb_bgsave_in_progress:{}",
        u8::from(saves.in_progress())
    );
    line!(s, "rdb_last_save_time:{}", saves.last_save_unix_secs());
    let status = if saves.last_ok() { "ok" } else { "err" };
    line!(s, "rdb_last_bgsave_status:{status}");
    line!(s, "checkpoint_dir:{}", saves.root().display());
    line!(
        s,
        "fsync_policy:{}",
        crate::config::FsyncPolicy::from_engine(ctx.engine.fsync()).name()
    );
    line!(s, "engine_keys:{}", e.keys);
    line!(s, "engine_segments:{}", e.segments);
    line!(s, "engine_live_bytes:{}", e.live_bytes);
    line!(s, "engine_dead_bytes:{}", e.dead_bytes);
    line!(s, "engine_disk_bytes:{}", e.disk_bytes);
    line!(s, "engine_bytes_written:{}", e.bytes_written);
    line!(s, "engine_fsyncs:{}", e.fsyncs);
    line!(s, "engine_last_fsync_unix_ms:{}", e.last_fsync_unix_ms);
    line!(
        s,
        "engine_last_fsync_duration_us:{}",
        e.last_fsync_duration_us
    );
    line!(s, "engine_write_errors:{}", e.write_errors);
    line!(s, "engine_compactions:{}", e.compactions);
    line!(s, "engine_write_stalls:{}", e.write_stalls);
    line!(s, "engine_write_stall_ms:{}", e.write_stall_ms);
    line!(s, "engine_poisoned:{}", e.poisoned.as_deref().unwrap_or(""));
    line!(s, "recovery_keys:{}", e.recovery.keys);
    line!(s, "recovery_segments:{}", e.recovery.segments);
    line!(s, "recovery_duration_ms:{}", e.recovery.duration_ms);
}

fn info_stats(
    st: &crate::stats::ServerStats,
    error_replies: u64,
    pubsub: &crate::pubsub::PubSub,
    primary: &crate::backlog::Primary,
    s: &mut String,
) {
    line!(s, "# Stats");
    line!(s, "total_connections_received:{}", st.total_connections);
    line!(s, "total_commands_processed:{}", st.ops_processed);
    line!(
        s,
        "instantaneous_ops_per_sec:{}",
        st.instantaneous_ops_per_sec
    );
    line!(s, "total_net_input_bytes:{}", st.net_input_bytes);
    line!(s, "total_net_output_bytes:{}", st.net_output_bytes);
    line!(s, "rejected_connections:{}", st.rejected_connections);
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    line!(s, "sync_full:{}", primary.sync_full.load(relaxed));
    line!(
        s,
        "sync_partial_ok:{}",
        primary.sync_partial_ok.load(relaxed)
    );
    line!(
        s,
        "sync_partial_err:{}",
        primary.sync_partial_err.load(relaxed)
    );
    line!(s, "expired_keys:{}", st.expired_keys);
    line!(s, "keyspace_hits:{}", st.keyspace_hits);
    line!(s, "keyspace_misses:{}", st.keyspace_misses);
    use crate::pubsub::Kind;
    line!(s, "pubsub_channels:{}", pubsub.len(Kind::Channel));
    line!(s, "pubsub_patterns:{}", pubsub.len(Kind::Pattern));
    line!(s, "pubsubshard_channels:{}", pubsub.len(Kind::Shard));
    line!(s, "total_error_replies:{error_replies}");
    line!(s, "protocol_errors:{}", st.protocol_errors);
    line!(s, "idle_timeouts:{}", st.idle_closed);
    // Data larger than memory: reads of records not in memory, done off the workers.
    let e = &st.engine;
    line!(s, "cold_reads:{}", e.cold_reads);
    line!(s, "cold_reads_in_flight:{}", e.cold_reads_in_flight);
    line!(s, "cold_reads_merged:{}", e.cold_reads_merged);
    line!(s, "cold_reads_direct:{}", e.cold_reads_direct);
    line!(
        s,
        "cold_read_cache_bypass:{}",
        u8::from(e.cold_read_cache_bypass)
    );
    line!(s, "cold_read_errors:{}", e.cold_read_errors);
    line!(s, "cold_read_p50_us:{}", e.cold_read_p50_us);
    line!(s, "cold_read_p99_us:{}", e.cold_read_p99_us);
    line!(s, "cold_read_p999_us:{}", e.cold_read_p999_us);
    line!(s, "cold_waits:{}", st.cold_waits);
    line!(s, "cold_read_rings:{}", st.cold_read_rings);
    line!(s, "residency_checks:{}", u8::from(e.residency_checks));
    line!(s, "blind_writes_pending:{}", e.blind_writes_pending);
    line!(s, "blind_writes_checked:{}", e.blind_writes_checked);
    line!(s, "fingerprint_collisions:{}", e.fingerprint_collisions);
    line!(s, "worker_major_faults:{}", st.worker_major_faults);
}

/// INFO replication: a replica's link first (when it is one), then the primary side's lines,
/// as Redis 7.0 writes them.
fn info_replication(ctx: &Ctx<'_>, s: &mut String) {
    line!(s, "# Replication");
    let replica = super::replication::info_replica(ctx, s);
    super::replication::info_primary(ctx, s, replica.is_some());
    if let Some(r) = replica {
        // flin's own, after Redis's lines: keys of types it does not store, skipped.
        line!(s, "flin_skipped_keys:{}", r.skipped_keys);
    }
}

/// CPU time of the process (and of the calling worker thread, Redis's "main thread").
fn info_cpu(s: &mut String) {
    let usage = |who| {
        // SAFETY: getrusage fills the zeroed struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `who` is RUSAGE_SELF or RUSAGE_THREAD.
        if unsafe { libc::getrusage(who, &mut ru) } != 0 {
            return (0.0, 0.0);
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        (secs(ru.ru_stime), secs(ru.ru_utime))
    };
    let (sys, user) = usage(libc::RUSAGE_SELF);
    let (sys_thread, user_thread) = usage(libc::RUSAGE_THREAD);
    line!(s, "# CPU");
    line!(s, "used_cpu_sys:{sys:.6}");
    line!(s, "used_cpu_user:{user:.6}");
    line!(s, "used_cpu_sys_children:0.000000");
    line!(s, "used_cpu_user_children:0.000000");
    line!(s, "used_cpu_sys_main_thread:{sys_thread:.6}");
    line!(s, "used_cpu_user_main_thread:{user_thread:.6}");
}

/// ROLE: a replica's link, or a primary and its replicas.
pub fn role(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    if !super::replication::role_replica(ctx) {
        super::replication::role_primary(ctx);
    }
}

/// TIME: Unix time as seconds and microseconds, two bulk strings.
pub fn time(ctx: &mut Ctx<'_>, _args: &[&[u8]]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    reply::array_len(ctx.out, 2);
    reply::bulk(ctx.out, now.as_secs().to_string().as_bytes());
    reply::bulk(ctx.out, now.subsec_micros().to_string().as_bytes());
}
