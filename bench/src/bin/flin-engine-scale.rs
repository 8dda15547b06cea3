//! Loads N keys into a fresh engine and prints what the engine issues' targets are about:
//! anonymous memory per key, open time with and without hints, disk bytes per key, load rate.
//!
//! `cargo run --release -p flin-bench --bin flin-engine-scale -- --keys 10000000`

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use flin_bench::engine_tools::{dir_bytes as disk_bytes, key16 as key};
use flin_engine::{Engine, Fsync, Options};

#[derive(Parser)]
#[command(about = "Engine scale figures: memory per key, open time, disk per key")]
struct Args {
    /// Keys to load (16-byte keys).
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Data directory (must not exist or be empty); a temporary one by default.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Segment size in MiB (the engine's default when not given).
    #[arg(long)]
    segment_mib: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Fresh processes that each open the loaded directory with hints, timed as a server start.
    #[arg(long, default_value_t = 3)]
    starts: usize,
    /// Internal: open `--dir` with hints, print the seconds it took, exit (one timed start).
    #[arg(long, hide = true, requires = "dir")]
    open_only: bool,
}

/// RssAnon of this process in bytes (anonymous memory actually resident).
fn rss_anon_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Opens `dir` in a new process of this binary and returns the open time it reports.
fn start_in_child(args: &Args, dir: &std::path::Path) -> Result<f64, Box<dyn std::error::Error>> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("--open-only").arg("--dir").arg(dir);
    if let Some(m) = args.segment_mib {
        cmd.arg("--segment-mib").arg(m.to_string());
    }
    let out = cmd.stderr(std::process::Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("timed start in a child process failed: {}", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .trim()
        .parse::<f64>()
        .map_err(|e| format!("child printed {text:?}: {e}"))?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let defaults = Options::default();
    let opts = Options {
        fsync: Fsync::Never,
        compaction: false,
        segment_size_bytes: args
            .segment_mib
            .map_or(defaults.segment_size_bytes, |m| m << 20),
        ..defaults
    };
    if args.open_only {
        let t = Instant::now();
        let engine = Engine::open(&dir, opts)?;
        println!("{:.4}", t.elapsed().as_secs_f64());
        engine.close()?;
        return Ok(());
    }
    let value = vec![b'v'; args.value_size];
    let started = Instant::now();
    {
        let engine = Engine::open(&dir, opts.clone())?;
        for i in 0..args.keys {
            engine.put(&key(i), &value, 0)?;
        }
        engine.close()?;
    }
    let load_s = started.elapsed().as_secs_f64();

    let measure = |hints: bool| -> Result<(f64, u64, Engine), Box<dyn std::error::Error>> {
        let before = rss_anon_bytes();
        let t = Instant::now();
        let engine = Engine::open(
            &dir,
            Options {
                hints,
                ..opts.clone()
            },
        )?;
        let open_s = t.elapsed().as_secs_f64();
        let anon = rss_anon_bytes().saturating_sub(before);
        assert_eq!(engine.len(), args.keys, "every key recovered");
        Ok((open_s, anon, engine))
    };
    let (open_scan_s, _, e) = measure(false)?;
    e.close()?;
    let (open_hints_s, anon, engine) = measure(true)?;
    let stats = engine.stats();
    engine.close()?;
    let mut starts = (0..args.starts)
        .map(|_| start_in_child(&args, &dir))
        .collect::<Result<Vec<f64>, _>>()?;
    starts.sort_by(f64::total_cmp);
    let start_median = starts.get(starts.len() / 2).copied().unwrap_or(f64::NAN);
    let start_range = format!(
        "{:.3}-{:.3}",
        starts.first().copied().unwrap_or(f64::NAN),
        starts.last().copied().unwrap_or(f64::NAN)
    );
    let per_key = |b: u64| b as f64 / args.keys.max(1) as f64;
    let seg_bytes = disk_bytes(&dir, "seg");
    let hint_bytes = disk_bytes(&dir, "hint");
    if args.json {
        println!(
            "{{\"keys\":{},\"value_size\":{},\"load_s\":{load_s:.3},\"open_scan_s\":{open_scan_s:.3},\
             \"open_hints_s\":{open_hints_s:.3},\"start_hints_median_s\":{start_median:.3},\"anon_bytes_per_key\":{:.2},\"index_bytes_per_key\":{:.2},\
             \"segment_bytes_per_key\":{:.2},\"hint_bytes_per_key\":{:.2}}}",
            args.keys,
            args.value_size,
            per_key(anon),
            per_key(stats.index_bytes),
            per_key(seg_bytes),
            per_key(hint_bytes)
        );
    } else {
        println!("keys                      {}", args.keys);
        println!("value size                {} B", args.value_size);
        println!(
            "load                      {load_s:.2} s ({:.0} puts/s)",
            args.keys as f64 / load_s
        );
        println!("open, scanning segments   {open_scan_s:.3} s");
        println!(
            "open, with hints          {open_hints_s:.3} s ({} of {} segments from hints; \
             recovery itself {} ms; reopened in this process)",
            stats.recovery.segments_from_hints, stats.segments, stats.recovery.duration_ms
        );
        println!(
            "start, with hints         {start_median:.3} s median of {} fresh processes \
             ({start_range} s)",
            starts.len()
        );
        println!(
            "anonymous memory per key  {:.1} B (RssAnon growth across open)",
            per_key(anon)
        );
        println!(
            "index bytes per key       {:.1} B",
            per_key(stats.index_bytes)
        );
        println!("segment bytes per key     {:.1} B", per_key(seg_bytes));
        println!("hint bytes per key        {:.1} B", per_key(hint_bytes));
    }
    Ok(())
}
