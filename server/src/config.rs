//! Command-line flags and their `FLIN_*` environment variables.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::protocol::parse::BULK_LEN_MAX_DEFAULT;

/// When writes reach the disk, as Redis's `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FsyncPolicy {
    /// Reply to a write only once it is on disk; concurrent writers share one fdatasync.
    Always,
    /// Sync once a second: a crash loses at most about a second of writes.
    Everysec,
    /// Leave it to the OS (segments are synced when sealed and at shutdown).
    Never,
}

impl FsyncPolicy {
    /// The engine's setting for this policy.
    pub fn engine(self) -> flin_engine::Fsync {
        match self {
            FsyncPolicy::Always => flin_engine::Fsync::Always,
            FsyncPolicy::Everysec => flin_engine::Fsync::EverySec,
            FsyncPolicy::Never => flin_engine::Fsync::Never,
        }
    }

    /// The policy the engine has.
    pub fn from_engine(f: flin_engine::Fsync) -> FsyncPolicy {
        match f {
            flin_engine::Fsync::Always => FsyncPolicy::Always,
            flin_engine::Fsync::EverySec => FsyncPolicy::Everysec,
            flin_engine::Fsync::Never => FsyncPolicy::Never,
        }
    }

    /// The policy Redis names `name` (`appendfsync`'s values, any case).
    pub fn from_name(name: &[u8]) -> Option<FsyncPolicy> {
        [
            FsyncPolicy::Always,
            FsyncPolicy::Everysec,
            FsyncPolicy::Never,
        ]
        .into_iter()
        .find(|p| name.eq_ignore_ascii_case(p.name().as_bytes()))
    }

    /// The name Redis gives it (`appendfsync`), as INFO and CONFIG GET show it.
    pub fn name(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Everysec => "everysec",
            FsyncPolicy::Never => "no",
        }
    }
}

/// The I/O driver of each worker's monoio runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    /// io_uring; fails to start when the kernel refuses it.
    IoUring,
    /// epoll (monoio's "legacy" driver).
    Epoll,
}

/// The I/O driver the workers run: what [`DriverChoice`] resolved to at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Linux io_uring.
    IoUring,
    /// epoll (monoio's "legacy" driver).
    Epoll,
}

impl Driver {
    /// The name the log and INFO's `multiplexing_api` give it.
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// flin-server: a Redis-protocol (RESP2) key-value server on flin's log-structured engine.
///
/// Every flag can also be set through the environment variable shown beside it.
#[derive(Debug, Clone, Parser)]
#[command(name = "flin-server", version)]
pub struct Config {
    /// Data directory: the engine's segment files live here. Created if missing; one server
    /// at a time may use it.
    #[arg(long, env = "FLIN_DIR", default_value = "./data")]
    pub dir: PathBuf,

    /// Where SAVE and BGSAVE write checkpoints (online backups: a consistent copy of the data
    /// that `--dir` opens), one directory each. Default: <dir>/checkpoints. On the data
    /// directory's file system they are hard links: quick, and small until compaction deletes
    /// the originals.
    #[arg(long, env = "FLIN_CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<PathBuf>,

    /// Address to listen on. Use 0.0.0.0 (or ::) to accept remote clients; then set
    /// --requirepass, or protected mode refuses non-loopback clients.
    #[arg(long, env = "FLIN_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// TCP port; 0 picks a free one (printed in the startup log).
    #[arg(long, env = "FLIN_PORT", default_value_t = 6379)]
    pub port: u16,

    /// Worker threads, each with its own event loop and listener; 0 = one per CPU core but
    /// one (at least one): the last core is left to the kernel's network processing, the
    /// store's own threads (log sync, compaction) and clients on the same machine.
    #[arg(long, env = "FLIN_THREADS", default_value_t = 0)]
    pub threads: usize,

    /// When writes are made durable: `always` (acknowledged only once on disk, group commit),
    /// `everysec` (at most ~1 s lost in a crash), `never` (the OS decides).
    #[arg(long, env = "FLIN_FSYNC", value_enum, default_value = "everysec")]
    pub fsync: FsyncPolicy,

    /// Size of one log segment file, e.g. 16MiB. Suffixes K, M, G (alone or with B or iB)
    /// are powers of 1024. Compaction works a segment at a time, so disk use stays within
    /// 1.5x of the live data once the store holds ten segments or more; a smaller store keeps
    /// up to four sealed segments before it compacts them (as Redis lets its AOF reach 64 MB
    /// before a rewrite). Larger segments make appends slightly cheaper.
    #[arg(long, env = "FLIN_SEGMENT_SIZE", default_value = "16MiB", value_parser = parse_bytes)]
    pub segment_size: u64,

    /// Most bytes per second compaction may write, e.g. 32MiB; 0 = no limit. A limit leaves
    /// more disk bandwidth to clients; if writes then outrun compaction past the space bound,
    /// each connection's next write waits for it (reads go on), for at most a second at a time.
    #[arg(long, env = "FLIN_COMPACTION_RATE", default_value = "0", value_parser = parse_bytes)]
    pub compaction_rate: u64,

    /// Each worker reads values not in memory (a data set larger than memory) with O_DIRECT
    /// on its own io_uring, at most this many at once; a client waits only for its own, and
    /// the worker serves the others meanwhile. 0 = read them all on the --cold-read-threads
    /// pool, which is also used when the kernel refuses io_uring (an old kernel, a
    /// container's seccomp policy) and for reads through the page cache.
    #[arg(long, env = "FLIN_COLD_READ_DEPTH", default_value = "64",
          value_parser = clap::value_parser!(u16).range(0..=4096))]
    pub cold_read_depth: u16,

    /// Threads that read values not in memory for workers without a ring (see
    /// --cold-read-depth), and reads through the page cache (a value read again soon, one
    /// over 256 KiB, a file system without O_DIRECT): at most this many are in flight at once.
    #[arg(long, env = "FLIN_COLD_READ_THREADS", default_value = "32",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub cold_read_threads: u16,

    /// Databases clients may SELECT (Redis's `databases`), numbered from 0. A data directory
    /// written with more keeps its keys in the others, out of reach until it is raised again.
    #[arg(long, env = "FLIN_DATABASES", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(flin_engine::DATABASES_MAX)))]
    pub databases: u32,

    /// Password clients must give with AUTH (or HELLO ... AUTH) before other commands.
    /// Compared in constant time. Unset = no authentication.
    #[arg(long, env = "FLIN_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,

    /// Follow this primary as a read-only replica, Redis's `replicaof <host> <port>`: given as
    /// two values (`--replicaof 10.0.0.1 6379`) or one (`"10.0.0.1 6379"`). REPLICAOF changes
    /// it at run time; `REPLICAOF NO ONE` makes the server a primary again.
    #[arg(long, env = "FLIN_REPLICAOF", num_args = 1..=2, value_names = ["HOST", "PORT"],
          value_delimiter = ' ')]
    pub replicaof: Vec<String>,

    /// Password a replica sends to its primary with AUTH (Redis's `masterauth`).
    #[arg(long, env = "FLIN_MASTERAUTH", hide_env_values = true)]
    pub masterauth: Option<String>,

    /// User a replica authenticates as, with --masterauth, on a primary with ACL users (Redis
    /// 6+'s `masteruser`): the link then sends `AUTH <user> <password>`.
    #[arg(long, env = "FLIN_MASTERUSER", requires = "masterauth")]
    pub masteruser: Option<String>,

    /// Bytes of the propagated command stream a primary keeps for replicas that reconnect
    /// (Redis's `repl-backlog-size`): a replica whose gap fits resumes with `+CONTINUE`
    /// instead of a full sync. Made when the first replica attaches. CONFIG SET changes it.
    #[arg(long, env = "FLIN_REPL_BACKLOG_SIZE", default_value = "1MiB", value_parser = parse_bytes)]
    pub repl_backlog_size: u64,

    /// A replica's priority for promotion (Redis's `replica-priority`, INFO's
    /// `slave_priority`): Redis Sentinel promotes the lowest non-zero one; 0 = never.
    #[arg(long, env = "FLIN_REPLICA_PRIORITY", default_value_t = 100)]
    pub replica_priority: u32,

    /// Seconds SHUTDOWN (without NOW), SIGTERM and SIGINT wait, writes paused, for the
    /// replicas to acknowledge the whole replication stream before the server stops (Redis's
    /// `shutdown-timeout`); 0 = stop at once. CONFIG SET changes it.
    #[arg(long, env = "FLIN_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// `yes`: a replica refuses its clients' writes (`-READONLY`). `no`: it takes them, as
    /// Redis's `replica-read-only no` does: they stay on this server (nothing is sent on to its
    /// primary or to anyone), and the primary's stream overwrites them, a full sync drops them.
    /// CONFIG SET changes it.
    #[arg(
        long,
        env = "FLIN_REPLICA_READ_ONLY",
        default_value = "yes",
        value_parser = parse_yes_no,
        action = clap::ArgAction::Set
    )]
    pub replica_read_only: bool,

    /// Most simultaneous client connections; the next one gets
    /// "-ERR max number of clients reached" and is closed.
    #[arg(long, env = "FLIN_MAXCLIENTS", default_value_t = 10_000)]
    pub maxclients: usize,

    /// Close a client idle for this many seconds; 0 = never.
    #[arg(long, env = "FLIN_TIMEOUT", default_value_t = 0)]
    pub timeout: u64,

    /// Log filter: error, warn, info, debug, trace, or a tracing-subscriber directive.
    #[arg(long, env = "FLIN_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Longest bulk argument a client may send (Redis's proto-max-bulk-len), e.g. 512MiB.
    #[arg(long, env = "FLIN_PROTO_MAX_BULK_LEN", default_value = "512MiB", value_parser = parse_bytes)]
    pub proto_max_bulk_len: u64,

    /// Unsent reply bytes after which the server stops reading a client's requests until it
    /// reads its replies: a client that pipelines without reading cannot grow memory.
    #[arg(long, env = "FLIN_CLIENT_OUTPUT_LIMIT", default_value = "1MiB", value_parser = parse_bytes)]
    pub client_output_limit: u64,

    /// Log commands that take at least this many microseconds in the slow log (SLOWLOG);
    /// negative = never, 0 = every command. CONFIG SET slowlog-log-slower-than changes it.
    #[arg(
        long,
        env = "FLIN_SLOWLOG_LOG_SLOWER_THAN",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    pub slowlog_log_slower_than: i64,

    /// Entries the slow log keeps (the newest). CONFIG SET slowlog-max-len changes it.
    #[arg(long, env = "FLIN_SLOWLOG_MAX_LEN", default_value_t = 128)]
    pub slowlog_max_len: u64,

    /// Keyspace notifications, as Redis's notify-keyspace-events letters (e.g. `KEA`; empty
    /// = off). CONFIG SET notify-keyspace-events changes it.
    #[arg(long, env = "FLIN_NOTIFY_KEYSPACE_EVENTS", default_value = "")]
    pub notify_keyspace_events: String,

    /// Record commands that take at least this many milliseconds as latency events
    /// (LATENCY); 0 = off. CONFIG SET latency-monitor-threshold changes it.
    #[arg(long, env = "FLIN_LATENCY_MONITOR_THRESHOLD", default_value_t = 0)]
    pub latency_monitor_threshold: u64,

    /// I/O driver for the worker event loops. The default was chosen by measurement with
    /// redis-benchmark on a 2-core machine (see README).
    #[arg(long, env = "FLIN_DRIVER", value_enum, default_value = "epoll")]
    pub driver: DriverChoice,

    /// Microseconds an epoll worker polls for more work before it sleeps; 0 = sleep at once.
    /// With many request-response clients the next request often arrives within a few
    /// microseconds, and polling saves the sleep and the client's cost of waking the worker
    /// (an interrupt on a virtual machine): on a 2-vCPU VM, -c 16 -P 1 redis-benchmark ran
    /// about 7% faster at the same CPU per request. A worker spins only while recent spins
    /// found work, so an idle or single-client server does not burn its core. Default: 5 when
    /// the workers leave a core free (as the default --threads does), else 0 (a spinning
    /// worker would hold a core another thread needs). Ignored by the io_uring driver.
    #[arg(long, env = "FLIN_IDLE_SPIN_US",
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub idle_spin_us: Option<u16>,

    /// With no password and a non-loopback --bind, refuse clients that are not on loopback
    /// (as Redis's protected mode). `no` turns that off.
    #[arg(
        long,
        env = "FLIN_PROTECTED_MODE",
        default_value = "yes",
        value_parser = parse_yes_no,
        action = clap::ArgAction::Set
    )]
    pub protected_mode: bool,

    /// `yes`: when a segment file is damaged other than at the torn end of the newest one
    /// (the case a crash leaves, which is always cut off), copy the damaged bytes to
    /// `<dir>/quarantine/`, keep every valid record around them, and start. `no` (the
    /// default) refuses to start and names the file and offset, so nothing is dropped without
    /// someone deciding to.
    #[arg(
        long,
        env = "FLIN_REPAIR",
        default_value = "no",
        value_parser = parse_yes_no,
        action = clap::ArgAction::Set
    )]
    pub repair: bool,

    /// Pin worker thread i to CPU core i (modulo the cores this process may use). Off by
    /// default: on a machine whose cores the server shares (clients, proxies, other
    /// services), a pinned worker waits for its core while another sits idle; on a 2-core
    /// VM with redis-benchmark beside the server, pinning cost a quarter of the unpipelined
    /// throughput. Worth trying on a host whose cores are the server's alone. Skipped when
    /// --threads is below the default (the usable cores but one), so several small servers
    /// on one machine do not all land on core 0.
    #[arg(
        long,
        env = "FLIN_PIN_CORES",
        default_value = "no",
        value_parser = parse_yes_no,
        action = clap::ArgAction::Set
    )]
    pub pin_cores: bool,
}

impl Config {
    /// The defaults, with `dir` as data directory: what `flin-server --dir DIR` would use
    /// (environment variables are not read).
    pub fn with_dir(dir: impl Into<PathBuf>) -> Config {
        let mut c = Config::parse_from_defaults();
        c.dir = dir.into();
        c
    }

    fn parse_from_defaults() -> Config {
        Config {
            dir: PathBuf::from("./data"),
            checkpoint_dir: None,
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 6379,
            threads: 0,
            fsync: FsyncPolicy::Everysec,
            segment_size: 16 << 20,
            compaction_rate: 0,
            cold_read_depth: 64,
            cold_read_threads: 32,
            databases: 16,
            requirepass: None,
            replicaof: Vec::new(),
            masterauth: None,
            masteruser: None,
            repl_backlog_size: 1 << 20,
            replica_priority: 100,
            replica_read_only: true,
            shutdown_timeout: 10,
            maxclients: 10_000,
            timeout: 0,
            log_level: "info".into(),
            proto_max_bulk_len: BULK_LEN_MAX_DEFAULT as u64,
            client_output_limit: 1 << 20,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            notify_keyspace_events: String::new(),
            latency_monitor_threshold: 0,
            driver: DriverChoice::Epoll,
            idle_spin_us: None,
            protected_mode: true,
            repair: false,
            pin_cores: false,
        }
    }

    /// The primary `--replicaof` names, if any.
    ///
    /// # Errors
    /// Not a host and a port.
    pub fn primary(&self) -> Result<Option<(String, u16)>, String> {
        match self.replicaof.as_slice() {
            [] => Ok(None),
            [host, port] if !host.is_empty() => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .map(|p| Some((host.clone(), p)))
                .ok_or_else(|| format!("--replicaof: invalid port {port:?}")),
            _ => Err("--replicaof takes a host and a port".into()),
        }
    }

    /// Where checkpoints go: `--checkpoint-dir`, or `<dir>/checkpoints`.
    pub fn checkpoint_root(&self) -> PathBuf {
        self.checkpoint_dir
            .clone()
            .unwrap_or_else(|| self.dir.join("checkpoints"))
    }

    /// Worker threads to run: `--threads`, or [`default_workers`] of the cores available.
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        default_workers(cores())
    }

    /// How long an epoll worker polls before it sleeps: `--idle-spin-us`, or
    /// [`default_idle_spin_us`] for the workers this configuration runs.
    pub fn idle_spin(&self) -> Duration {
        let us = self
            .idle_spin_us
            .unwrap_or_else(|| default_idle_spin_us(self.worker_threads(), cores()));
        Duration::from_micros(u64::from(us))
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--idle-spin-us` by default: 5 while `workers` leave one of `cores` free for whoever sends
/// them requests (the kernel's network processing, the store's threads, local clients); 0 when
/// every core has a worker, where a spinning worker holds a core they need. On 2 vCPUs with
/// redis-benchmark beside the server, `--threads 2` with 5 us served -c 16 -P 1 SETs 1-10%
/// slower than without, while one worker served them 7% faster.
pub fn default_idle_spin_us(workers: usize, cores: usize) -> u16 {
    if workers < cores {
        5
    } else {
        0
    }
}

/// Workers on `cores` usable cores by default: one per core but one, at least one. A worker
/// that has to share its core with the kernel's network processing, the store's threads or
/// a client sleeps and wakes more often than the requests it serves: on 2 vCPUs with
/// redis-benchmark beside the server, two workers took 14% more CPU per unpipelined GET than
/// one, served fewer requests in 7 of 8 cells of the redis-benchmark matrix, and a flin
/// primary took 1.3-1.6x the CPU under a replicated write load (`docs/perf/HISTORY.md`).
pub fn default_workers(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

/// Parses `64MiB`, `1G`, `4096`, `16k`: suffixes are powers of 1024.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 4096, 64KiB, 64MiB, 1G)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "unknown size unit in '{s}' (use K, M, G or T, optionally with B or iB)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Parses yes/no (also true/false, on/off, 1/0).
///
/// # Errors
/// Anything else.
pub fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("'{s}' is not yes or no")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_workers_leave_a_core_free_from_two_cores() {
        let by_cores: Vec<usize> = (0..=4).chain([8, 64]).map(super::default_workers).collect();
        assert_eq!(by_cores, [1, 1, 1, 2, 3, 7, 63]);
    }

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("64mb"), Ok(64 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("16k"), Ok(16 << 10));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn defaults_match_the_flags() {
        let parsed = Config::try_parse_from(["flin-server"]).unwrap();
        let built = Config::with_dir("./data");
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
    }

    #[test]
    fn yes_no_flags_take_a_value() {
        let c = Config::try_parse_from(["flin-server", "--protected-mode", "no", "--pin-cores=no"])
            .unwrap();
        assert!(!c.protected_mode && !c.pin_cores);
        let c =
            Config::try_parse_from(["flin-server", "--protected-mode", "yes", "--pin-cores=yes"])
                .unwrap();
        assert!(c.protected_mode && c.pin_cores);
        assert!(Config::try_parse_from(["flin-server", "--pin-cores", "maybe"]).is_err());
    }

    #[test]
    fn idle_spin_by_default_only_with_a_core_to_spare() {
        assert_eq!(default_idle_spin_us(1, 2), 5);
        assert_eq!(default_idle_spin_us(7, 8), 5);
        assert_eq!(default_idle_spin_us(2, 2), 0);
        assert_eq!(default_idle_spin_us(1, 1), 0);
        assert_eq!(default_idle_spin_us(4, 2), 0);
        let c = Config::try_parse_from(["flin-server", "--threads", "1000"]).unwrap();
        assert_eq!(c.idle_spin(), Duration::ZERO);
        let c = Config::try_parse_from(["flin-server", "--threads", "1000", "--idle-spin-us", "7"])
            .unwrap();
        assert_eq!(c.idle_spin(), Duration::from_micros(7));
    }

    #[test]
    fn idle_spin_is_bounded() {
        let c = Config::try_parse_from(["flin-server", "--idle-spin-us", "0"]).unwrap();
        assert_eq!(c.idle_spin_us, Some(0));
        let err = Config::try_parse_from(["flin-server", "--idle-spin-us", "1001"]).unwrap_err();
        assert!(err.to_string().contains("--idle-spin-us"), "{err}");
    }
}
