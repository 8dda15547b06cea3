//! flin-engine against its peers, the embedded key-value stores of Rust (fjall, redb, sled),
//! on one workload in one process run: load N keys (16-byte keys, 100-byte values by default),
//! overwrite and read random keys on one and two threads with durability off in each engine's
//! own terms, read keys that are absent, then 16 writers with a sync per write. Also the disk
//! bytes after the load and after the overwrites, the resident-memory growth over the load
//! (run in a fresh child process, measured with the store still open), and the open time and
//! resident-memory growth of opening the loaded store in another fresh child.
//!
//! `cargo run --release -p flin-bench --bin flin-engine-peers -- --json docs/perf/peers.json
//! --svg docs/perf/peers.svg`
//!
//! What each engine does per op (see `bench/src/peers/store.rs`):
//! - flin: `put` (`Fsync::Never`), `get_with`; durable: `Fsync::Always`, `put` + `wait_durable`.
//! - fjall: one keyspace with key-value separation for values of `--value-bytes` and up, a
//!   1 GiB block cache, journal persisted by hand: `insert`, `get`; durable: `insert` +
//!   `persist(SyncAll)`.
//! - redb: a 1 GiB cache (its default); one write transaction per put, committed with
//!   `Durability::None`, one read transaction per get; the load commits 10,000 keys per
//!   transaction; durable: one transaction per put with `Durability::Immediate`.
//! - sled 0.34: no background flush (`flush_every_ms(None)`), `insert`, `get`; durable:
//!   `insert` + `flush`, which on Linux ends in `sync_file_range`, not `fsync`: weaker than
//!   the others' durable writes, and so cheaper.
//!
//! rocksdb is not among the peers: its crate builds RocksDB's C++ sources and needs libclang for
//! its bindings, minutes of build on this project's two-core CI for one benchmark.

#[path = "../peers/mod.rs"]
mod peers;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};

use peers::report::{Metrics, Report};
use peers::store::{dir_bytes, Fjall, Flin, Mode, Redb, Result, Sled, Store};
use peers::workload::{Limit, Op, Workload};

/// Printed under the table when sled ran: its durable figure is not the others' kind.
const SLED_FLUSH_NOTE: &str = "note: sled 0.34's flush ends in sync_file_range on Linux, which \
     writes the pages but neither the file's metadata nor the drive's cache: its durable puts \
     are not fsynced as the others' are.";

/// Writers in the durable phase (the metric's name says 16).
const DURABLE_WRITERS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Engine {
    Flin,
    Fjall,
    Redb,
    Sled,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Flin => "flin",
            Engine::Fjall => "fjall",
            Engine::Redb => "redb",
            Engine::Sled => "sled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Child {
    /// Open `--dir` with `--engine`, print the open time and RSS growth as JSON, close.
    Open,
    /// Create a store in `--dir` with `--engine`, load every key, print the load rate and
    /// the RSS growth from before the open to the end of the load as JSON, close.
    Load,
}

#[derive(Parser)]
#[command(about = "flin-engine against fjall, redb and sled on one workload")]
struct Args {
    /// Keys to load (16-byte keys).
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Engines to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "flin,fjall,redb,sled"
    )]
    engines: Vec<Engine>,
    /// Seconds per timed phase (the load always writes every key).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Also stop a timed phase after this many operations.
    #[arg(long)]
    ops: Option<u64>,
    /// Random overwrites, on one thread, before the disk is measured again (default: as many
    /// as keys). A count, not a time, so every engine has written the same bytes.
    #[arg(long)]
    overwrites: Option<u64>,
    /// Seed of the keys' order and of the values.
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,
    /// Write the metrics as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw flin's lead over each peer as an SVG chart here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Each engine gets a fresh directory under this one (default: the system's temporary
    /// directory, or beside this binary when that is a tmpfs, whose figures would not be a
    /// disk's). With `--child`, the store's own directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Internal: what a child process does.
    #[arg(long, value_enum, hide = true, requires_all = ["engine", "dir"])]
    child: Option<Child>,
    /// Internal: the child's engine.
    #[arg(long, value_enum, hide = true)]
    engine: Option<Engine>,
}

/// What a child reports of one load.
#[derive(Debug, Serialize, Deserialize)]
struct Loaded {
    load_ops_s: f64,
    /// Growth of the resident set from before the store was created to the end of the load,
    /// the store still open.
    rss_bytes: u64,
    /// The anonymous part of it (the rest is mapped files).
    rss_anon_bytes: u64,
}

/// What a child reports of one open.
#[derive(Debug, Serialize, Deserialize)]
struct Opened {
    open_ms: f64,
    /// Growth of the resident set across the open.
    rss_bytes: u64,
    /// The anonymous part of it (the rest is mapped files and the binary).
    rss_anon_bytes: u64,
}

fn main() {
    let args = Args::parse();
    let result = match (args.child, args.engine, &args.dir) {
        (Some(Child::Open), Some(engine), Some(dir)) => child_open(engine, dir, &args),
        (Some(Child::Load), Some(engine), Some(dir)) => child_load(engine, dir, &args),
        _ => run(&args),
    };
    if let Err(e) = result {
        eprintln!("flin-engine-peers: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    let seconds_valid = args.seconds.is_finite() && args.seconds > 0.0;
    if args.keys == 0 || args.value_bytes == 0 || !seconds_valid {
        return Err("--keys, --value-bytes and --seconds must be above 0 (and finite)".into());
    }
    let base = match &args.dir {
        Some(dir) => dir.clone(),
        None => default_base_dir()?,
    };
    std::fs::create_dir_all(&base)?;
    let scratch = tempfile::Builder::new()
        .prefix("flin-engine-peers-")
        .tempdir_in(&base)?;
    eprintln!(
        "{} keys, {}-byte values, {} s per phase, in {} ({})",
        args.keys,
        args.value_bytes,
        args.seconds,
        scratch.path().display(),
        filesystem_of(scratch.path()).unwrap_or_else(|| "filesystem unknown".into()),
    );
    let work = Workload::new(args.keys, args.value_bytes, args.seed);
    let mut report = Report::default();
    for &engine in &args.engines {
        let dir = scratch.path().join(engine.name());
        let metrics = match engine {
            Engine::Flin => run_engine::<Flin>(engine, &dir, &work, args),
            Engine::Fjall => run_engine::<Fjall>(engine, &dir, &work, args),
            Engine::Redb => run_engine::<Redb>(engine, &dir, &work, args),
            Engine::Sled => run_engine::<Sled>(engine, &dir, &work, args),
        }
        .map_err(|e| format!("{}: {e}", engine.name()))?;
        std::fs::remove_dir_all(&dir)?;
        report.engines.push((engine.name().to_string(), metrics));
    }
    println!("{}", report.table());
    if args.engines.contains(&Engine::Sled) {
        println!("{SLED_FLUSH_NOTE}");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    if let Some(path) = &args.svg {
        let caption = format!(
            "flin-engine's lead over each peer ({} keys, {}-byte values)",
            args.keys, args.value_bytes
        );
        peers::chart::draw(&report, path, &caption)?;
    }
    Ok(())
}

/// Phase numbers: each picks its own random streams, the same for every engine.
const PHASE_PUT: u64 = 1;
const PHASE_PUT_2T: u64 = 2;
const PHASE_GET: u64 = 3;
const PHASE_GET_2T: u64 = 4;
const PHASE_ABSENT: u64 = 5;
const PHASE_ABSENT_2T: u64 = 6;
const PHASE_DURABLE: u64 = 7;
const PHASE_OVERWRITE: u64 = 8;

/// Every phase of one engine, each store opened in `dir` and closed again between the
/// measurements that need a closed store.
fn run_engine<S: Store>(
    engine: Engine,
    dir: &Path,
    work: &Workload,
    args: &Args,
) -> Result<Metrics> {
    let name = engine.name();
    let limit = Limit {
        seconds: Some(args.seconds),
        ops: args.ops,
    };
    let open = |mode| S::open(dir, mode, args.value_bytes);
    let timed = |store: &S, op, threads, phase| -> Result<f64> {
        let rate = work.run(store, op, threads, limit, phase)?;
        eprintln!("{name}: {op:?} x{threads}: {rate:.0}/s");
        log_state(name, store);
        Ok(rate)
    };
    let mut m = Metrics::default();

    let loaded = in_child(Child::Load, engine, dir, args)?;
    let loaded: Loaded = serde_json::from_slice(&loaded)?;
    m.load_ops_s = loaded.load_ops_s;
    m.rss_bytes_after_load = loaded.rss_bytes;
    m.disk_bytes_after_load = dir_bytes(dir)?;
    eprintln!(
        "{name}: load: {:.0}/s, RSS +{} KiB ({} KiB anonymous)",
        m.load_ops_s,
        loaded.rss_bytes >> 10,
        loaded.rss_anon_bytes >> 10
    );
    let opened: Opened = serde_json::from_slice(&in_child(Child::Open, engine, dir, args)?)?;
    m.open_ms = opened.open_ms;
    m.rss_bytes_after_open = opened.rss_bytes;
    eprintln!(
        "{name}: open: {:.1} ms, RSS +{} KiB ({} KiB anonymous)",
        opened.open_ms,
        opened.rss_bytes >> 10,
        opened.rss_anon_bytes >> 10
    );

    // The same number of overwrites for every engine, whatever its speed, so the disk bytes
    // after them compare.
    let store = open(Mode::Fast)?;
    let overwrites = Limit {
        seconds: None,
        ops: Some(args.overwrites.unwrap_or(args.keys)),
    };
    let rate = work.run(&store, Op::Put, 1, overwrites, PHASE_OVERWRITE)?;
    log_state(name, &store);
    store.close()?;
    m.disk_bytes_after_overwrite = dir_bytes(dir)?;
    eprintln!("{name}: {:?} overwrites: {rate:.0}/s", overwrites.ops);

    let store = open(Mode::Fast)?;
    m.put_ops_s = timed(&store, Op::Put, 1, PHASE_PUT)?;
    m.put_2t_ops_s = timed(&store, Op::Put, 2, PHASE_PUT_2T)?;
    m.get_ops_s = timed(&store, Op::Get, 1, PHASE_GET)?;
    m.get_2t_ops_s = timed(&store, Op::Get, 2, PHASE_GET_2T)?;
    m.get_absent_ops_s = timed(&store, Op::GetAbsent, 1, PHASE_ABSENT)?;
    m.get_absent_2t_ops_s = timed(&store, Op::GetAbsent, 2, PHASE_ABSENT_2T)?;
    store.close()?;

    let store = open(Mode::Durable)?;
    m.durable_put_16w_ops_s = timed(&store, Op::DurablePut, DURABLE_WRITERS, PHASE_DURABLE)?;
    store.close()?;
    Ok(m)
}

fn log_state<S: Store>(name: &str, store: &S) {
    if let Some(state) = store.state() {
        eprintln!("{name}:   {state}");
    }
}

/// Runs `what` (the load, or an open of the loaded store) in a new process of this binary,
/// so its resident memory is the engine's alone; returns what the child printed (JSON).
fn in_child(what: Child, engine: Engine, dir: &Path, args: &Args) -> Result<Vec<u8>> {
    let what_name = match what {
        Child::Open => "open",
        Child::Load => "load",
    };
    let out = Command::new(std::env::current_exe()?)
        .args(["--child", what_name, "--engine", engine.name()])
        .arg("--dir")
        .arg(dir)
        .args(["--keys", &args.keys.to_string()])
        .args(["--value-bytes", &args.value_bytes.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("the child that runs the {what_name} failed: {}", out.status).into());
    }
    Ok(out.stdout)
}

fn child_load(engine: Engine, dir: &Path, args: &Args) -> Result<()> {
    let work = Workload::new(args.keys, args.value_bytes, args.seed);
    let loaded = match engine {
        Engine::Flin => load_and_measure::<Flin>(dir, &work, args),
        Engine::Fjall => load_and_measure::<Fjall>(dir, &work, args),
        Engine::Redb => load_and_measure::<Redb>(dir, &work, args),
        Engine::Sled => load_and_measure::<Sled>(dir, &work, args),
    }?;
    println!("{}", serde_json::to_string(&loaded)?);
    Ok(())
}

fn load_and_measure<S: Store>(dir: &Path, work: &Workload, args: &Args) -> Result<Loaded> {
    let before = (rss_bytes("VmRSS")?, rss_bytes("RssAnon")?);
    let store = S::open(dir, Mode::Fast, args.value_bytes)?;
    let load_ops_s = work.load(&store)?;
    let after = (rss_bytes("VmRSS")?, rss_bytes("RssAnon")?);
    store.close()?;
    Ok(Loaded {
        load_ops_s,
        rss_bytes: after.0.saturating_sub(before.0),
        rss_anon_bytes: after.1.saturating_sub(before.1),
    })
}

fn child_open(engine: Engine, dir: &Path, args: &Args) -> Result<()> {
    let opened = match engine {
        Engine::Flin => open_and_measure::<Flin>(dir, args),
        Engine::Fjall => open_and_measure::<Fjall>(dir, args),
        Engine::Redb => open_and_measure::<Redb>(dir, args),
        Engine::Sled => open_and_measure::<Sled>(dir, args),
    }?;
    println!("{}", serde_json::to_string(&opened)?);
    Ok(())
}

fn open_and_measure<S: Store>(dir: &Path, args: &Args) -> Result<Opened> {
    let before = (rss_bytes("VmRSS")?, rss_bytes("RssAnon")?);
    let started = Instant::now();
    let store = S::open(dir, Mode::Fast, args.value_bytes)?;
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    let after = (rss_bytes("VmRSS")?, rss_bytes("RssAnon")?);
    // The store holds what was loaded: the last key and one past it.
    let last = args.keys - 1;
    if store.get_len(&Workload::present_key(last))? != Some(args.value_bytes)
        || store.get_len(&Workload::absent_key(last))?.is_some()
    {
        return Err(format!("{} does not hold the loaded keys", dir.display()).into());
    }
    store.close()?;
    Ok(Opened {
        open_ms,
        rss_bytes: after.0.saturating_sub(before.0),
        rss_anon_bytes: after.1.saturating_sub(before.1),
    })
}

/// A resident-set figure of this process in bytes, from /proc/self/status: `VmRSS` (the
/// resident pages of /proc/self/statm, anonymous and file-backed alike) or `RssAnon`.
fn rss_bytes(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status"))?;
    Ok(kib * 1024)
}

/// The system's temporary directory, unless it is a tmpfs (memory, not a disk): then the
/// directory of this binary, which cargo builds under the repository's target directory.
fn default_base_dir() -> Result<PathBuf> {
    let tmp = std::env::temp_dir();
    if filesystem_of(&tmp).is_some_and(|fs| fs.starts_with("tmpfs")) {
        let exe = std::env::current_exe()?;
        return Ok(exe
            .parent()
            .ok_or("the binary has no directory")?
            .to_path_buf());
    }
    Ok(tmp)
}

/// The type and device of the filesystem holding `path` (`ext4 on /dev/vda`), from the
/// longest mount point in /proc/self/mounts that contains it.
fn filesystem_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point)
                .then(|| (point.len(), format!("{kind} on {device}")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
}
