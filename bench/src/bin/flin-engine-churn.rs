//! Compaction under churn: uniform overwrites of N keys for several times the data size with
//! background compaction on. Prints space amplification over time and write amplification, then
//! foreground put/get throughput and p99 get latency while compaction runs versus idle.
//!
//! `cargo run --release -p flin-bench --bin flin-engine-churn -- --keys 1000000 --passes 5`

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use flin_bench::engine_tools::{dir_bytes as file_bytes, key16 as key};

/// How often the disk-use sampler looks at the directory.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);
use flin_engine::{Engine, Fsync, Options};

#[derive(Parser)]
#[command(about = "Space and write amplification under uniform overwrites, and compaction's cost")]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Overwrite this many times the data size.
    #[arg(long, default_value_t = 5)]
    passes: u64,
    /// Segment size in MiB.
    #[arg(long, default_value_t = 16)]
    segment_mib: u64,
    /// Reports per pass.
    #[arg(long, default_value_t = 4)]
    reports_per_pass: u64,
    /// Overwrites per second during the churn phase (0 = as fast as possible). A network server
    /// on this machine sustains a few hundred thousand SETs per second.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds for each foreground-impact measurement.
    #[arg(long, default_value_t = 2.0)]
    measure_s: f64,
    /// Idle/during-compaction measurement pairs (each after one more overwrite pass); the
    /// ratios printed are the medians, as one pair on a shared machine is mostly noise.
    #[arg(long, default_value_t = 3)]
    impact_rounds: usize,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: enough for uniform key choice.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn options(segment_mib: u64, compaction: bool) -> Options {
    Options {
        fsync: Fsync::Never,
        segment_size_bytes: segment_mib << 20,
        compaction,
        compaction_interval: Duration::from_millis(100),
        ..Options::default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let value = vec![b'v'; args.value_size];
    let record = (36 + 16 + args.value_size) as u64;
    let engine = Engine::open(dir, options(args.segment_mib, true))?;
    for i in 0..args.keys {
        engine.put(&key(i), &value, 0)?;
    }
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>12} {:>12}",
        "pass",
        "live MB",
        "seg MB",
        "hint MB",
        "space",
        "+hints",
        "write amp",
        "engine live",
        "engine disk"
    );
    let sampler = Sampler::start(dir.to_path_buf());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let step = (args.keys / args.reports_per_pass).max(1);
    let mut written = 0u64;
    let mut worst_space = 0f64;
    let mut last_wamp = 0f64;
    let churn_start = Instant::now();
    for _ in 0..args.passes * args.reports_per_pass {
        for n in 0..step {
            engine.put(&key(rng.next() % args.keys), &value, 0)?;
            if args.rate > 0 && n % 1000 == 0 {
                // Pacing to the requested rate (not synchronisation).
                let due = Duration::from_secs_f64((written + n) as f64 / args.rate as f64);
                if let Some(ahead) = due.checked_sub(churn_start.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
        }
        written += step;
        let st = engine.stats();
        let live = args.keys * record;
        let seg = data_bytes(dir);
        let hint = file_bytes(dir, "hint");
        let user = (args.keys + written) * record;
        let wamp = (st.bytes_written + st.compaction_bytes_written) as f64 / user as f64;
        let space = seg as f64 / live as f64;
        // The first pass fills the first segments; judge the steady state after it.
        if written > args.keys {
            worst_space = worst_space.max(space);
            sampler.judging.store(true, Ordering::Relaxed);
        }
        last_wamp = wamp;
        println!(
            "{:>8.2} {:>10.1} {:>10.1} {:>10.1} {:>8.2} {:>8.2} {:>10.2} {:>12.1} {:>12.1}",
            written as f64 / args.keys as f64,
            live as f64 / 1e6,
            seg as f64 / 1e6,
            hint as f64 / 1e6,
            space,
            (seg + hint) as f64 / live as f64,
            wamp,
            st.live_bytes as f64 / 1e6,
            st.disk_bytes as f64 / 1e6
        );
    }
    let churn_s = churn_start.elapsed().as_secs_f64();
    let peak = sampler.stop();
    let live = args.keys * record;
    let st = engine.stats();
    println!(
        "steady state: worst space amplification {worst_space:.2} at the reports, {:.2} at the \
         peak sampled every {} ms (segment files, with the preallocated spare and unfinished \
         compaction outputs, / live data), write amplification {last_wamp:.2}; compactions {}, \
         reclaimed {:.1} MB; {:.0} overwrites/s, {} writes waited for compaction ({} ms)",
        peak as f64 / live as f64,
        SAMPLE_EVERY.as_millis(),
        st.compactions,
        st.compaction_bytes_reclaimed as f64 / 1e6,
        written as f64 / churn_s,
        st.write_stalls,
        st.write_stall_ms
    );
    drop(engine);

    // Foreground impact: the same store with background compaction off; measure idle, then
    // again while a full compaction runs on another thread.
    let engine = Arc::new(Engine::open(dir, options(args.segment_mib, false))?);
    let mut rounds = Vec::new();
    for round in 1..=args.impact_rounds.max(1) {
        for _ in 0..args.keys {
            engine.put(&key(rng.next() % args.keys), &value, 0)?;
        }
        let idle = measure(&engine, &args, &value, &mut rng, None);
        let busy = Arc::new(AtomicBool::new(true));
        let compactor = {
            let (e, busy) = (engine.clone(), busy.clone());
            std::thread::spawn(move || {
                // At the priority the engine's own maintenance thread runs at.
                flin_engine::set_current_thread_nice(e.options().background_nice)
                    .expect("lower the compaction thread's priority");
                let r = e.compact_now();
                busy.store(false, Ordering::Release);
                r
            })
        };
        let during = measure(&engine, &args, &value, &mut rng, Some(&busy));
        let report = compactor.join().expect("compaction thread")?;
        println!(
            "round {round}: compaction {:.1} MB in, {:.1} MB out; put {:.0} -> {:.0} ops/s, \
             get {:.0} -> {:.0} ops/s, get p99 {:.1} -> {:.1} us{}",
            report.bytes_in as f64 / 1e6,
            report.bytes_out as f64 / 1e6,
            idle.put_ops,
            during.put_ops,
            idle.get_ops,
            during.get_ops,
            idle.get_p99_us,
            during.get_p99_us,
            if during.overlapped {
                ""
            } else {
                " (compaction finished before the measurement ended; use more keys)"
            }
        );
        rounds.push((idle, during));
    }
    let median = |f: &dyn Fn(&Figures) -> f64| {
        let mut r: Vec<f64> = rounds.iter().map(|(i, d)| f(d) / f(i)).collect();
        r.sort_by(f64::total_cmp);
        (r[r.len() / 2], r[0], r[r.len() - 1])
    };
    for (name, (m, lo, hi)) in [
        ("put ops/s", median(&|f| f.put_ops)),
        ("get ops/s", median(&|f| f.get_ops)),
        ("get p99 us", median(&|f| f.get_p99_us)),
    ] {
        println!(
            "{name:<12} during compaction / idle: median {m:.2} over {} rounds ({lo:.2}-{hi:.2})",
            rounds.len()
        );
    }
    Ok(())
}

/// Bytes of the store's data files: segments (`.seg`), including the preallocated active one,
/// and `.seg.tmp` files (the prepared spare segment, compaction outputs not yet renamed).
fn data_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".seg") || name.ends_with(".seg.tmp")
        })
        // A file removed since the listing counts nothing.
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Watches the peak of [`data_bytes`] on a thread of its own, so a compaction run's transient
/// (outputs written before the inputs go) is seen, not only the state at report time.
struct Sampler {
    judging: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Sampler {
    fn start(dir: PathBuf) -> Sampler {
        let judging = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (judging, stop) = (judging.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut peak = 0;
                while !stop.load(Ordering::Relaxed) {
                    if judging.load(Ordering::Relaxed) {
                        peak = data_bytes(&dir).max(peak);
                    }
                    // Sampling period, not synchronisation.
                    std::thread::sleep(SAMPLE_EVERY);
                }
                peak
            })
        };
        Sampler {
            judging,
            stop,
            thread,
        }
    }

    /// The highest disk use seen while judging.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}

struct Figures {
    put_ops: f64,
    get_ops: f64,
    get_p99_us: f64,
    overlapped: bool,
}

fn measure(
    engine: &Engine,
    args: &Args,
    value: &[u8],
    rng: &mut Rng,
    busy: Option<&AtomicBool>,
) -> Figures {
    let limit = Duration::from_secs_f64(args.measure_s / 2.0);
    let t = Instant::now();
    let mut puts = 0u64;
    while t.elapsed() < limit {
        for _ in 0..1000 {
            engine
                .put(&key(rng.next() % args.keys), value, 0)
                .expect("put");
        }
        puts += 1000;
    }
    let put_ops = puts as f64 / t.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    let t = Instant::now();
    while t.elapsed() < limit {
        for _ in 0..1000 {
            let s = Instant::now();
            let k = key(rng.next() % args.keys);
            assert!(engine.get_with(&k, |e| e.is_some()));
            lat.push(s.elapsed().as_nanos() as u64);
        }
    }
    let get_ops = lat.len() as f64 / t.elapsed().as_secs_f64();
    lat.sort_unstable();
    let p99 = lat[lat.len() * 99 / 100] as f64 / 1000.0;
    Figures {
        put_ops,
        get_ops,
        get_p99_us: p99,
        overlapped: busy.is_none_or(|b| b.load(Ordering::Acquire)),
    }
}
