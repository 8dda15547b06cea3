//! Command-line options (clap derive) and their validation into a [`Config`].
//!
//! `flin-bench [RUN OPTIONS]` and `flin-bench run [RUN OPTIONS]` are the same: the run options
//! are flattened at the top level. `flin-bench chart` draws a `compare.sh` table.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::keys::KEYSPACE_MAX;
use crate::zipf::Zipf;

/// Most client connections in one run.
pub const CLIENTS_MAX: u32 = 10_000;
/// Most driver threads.
pub const THREADS_MAX: u32 = 256;
/// Most requests in flight per connection.
pub const PIPELINE_MAX: u32 = 100_000;
/// Largest `--value-size`.
pub const VALUE_SIZE_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Largest pipelined batch one connection may write at once (pipeline x request size).
pub const BATCH_MAX_BYTES: usize = 256 * 1024 * 1024;
/// Longest `--duration`, `--warmup` and `--timeout`: a run always stops by itself.
pub const DURATION_MAX_SECS: f64 = 24.0 * 3600.0;

/// The whole command line.
#[derive(Parser, Debug)]
#[command(
    name = "flin-bench",
    version,
    about = "RESP2 load generator: SET/GET at a chosen mix, concurrency and pipeline depth; \
             every reply is checked",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// `run` or `chart`; `None` runs with the top-level options.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The run options given without a subcommand.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands; without one, the top-level options run the load generator.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the load generator (the default).
    Run(RunArgs),
    /// Draw a compare.sh JSON table as an SVG chart: each cell's flin/redis ratio against 1.0.
    Chart(ChartArgs),
}

/// `flin-bench chart`.
#[derive(Args, Debug, Clone)]
pub struct ChartArgs {
    /// The JSON written by `compare.sh --json`.
    #[arg(long, value_name = "FILE")]
    pub json: PathBuf,
    /// Where to write the SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
}

/// Options of one load-generator run.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Server address (host:port). Only this address is ever connected to.
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub addr: String,
    /// Client connections.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(CLIENTS_MAX)))]
    pub clients: u32,
    /// OS threads the connections are spread over.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=i64::from(THREADS_MAX)))]
    pub threads: u32,
    /// Requests each connection writes at once before waiting for their replies.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(PIPELINE_MAX)))]
    pub pipeline: u32,
    /// Total requests to measure (default 100000 unless --duration is given).
    #[arg(long, short = 'n', conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Measure for this many seconds instead of a request count.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// Keys are key:000000000 .. key:<keyspace - 1>.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=KEYSPACE_MAX))]
    pub keyspace: u64,
    /// Bytes per SET value.
    #[arg(long, value_name = "BYTES", default_value_t = 16, value_parser = parse_value_size)]
    pub value_size: usize,
    /// Mix of SET and GET requests, SET:GET (1:0 only SET, 0:1 only GET).
    #[arg(long, value_name = "SET:GET", default_value = "1:1")]
    pub ratio: Ratio,
    /// How keys are chosen.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,
    /// Skew of --distribution zipf, strictly between 0 and 1.
    #[arg(long, default_value_t = 0.99, value_parser = parse_theta)]
    pub zipf_theta: f64,
    /// Seconds of load before measuring starts; their replies are checked, not recorded.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_secs)]
    pub warmup: Duration,
    /// A connection waiting longer than this for a reply fails the run.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Print results as redis-benchmark --csv does (test, rps, latencies in ms).
    #[arg(long)]
    pub csv: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Seed for keys and values (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Extra connections, open for the whole run and not measured, that write pipelined GETs
    /// of one large value and never read a reply: the measured clients' latency beside them
    /// is what the run then reports.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=i64::from(CLIENTS_MAX)))]
    pub stalled_clients: u32,
    /// Bytes of the value the stalled clients GET (SET once before the run, as key
    /// `flin-bench:stalled`).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = parse_value_size)]
    pub stalled_value_size: usize,
    /// GETs each stalled client writes. A server that buffers every reply (Redis's default for
    /// normal clients) holds stalled-clients x this x the value size.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=i64::from(PIPELINE_MAX)))]
    pub stalled_requests: u32,
    /// What one request is: a SET or GET (`set-get`, by --ratio), a transaction MULTI, SET,
    /// SET, EXEC (`multi`), or one PUBLISH fanned out to --subscribers connections (`pubsub`:
    /// --clients is ignored, --pipeline bounds the PUBLISHes in flight, --value-size is the
    /// message size, at least 20 bytes).
    #[arg(long, value_enum, default_value_t = Mode::SetGet)]
    pub mode: Mode,
    /// Subscriber connections of --mode pubsub, all on one channel.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=i64::from(CLIENTS_MAX)))]
    pub subscribers: u32,
}

/// What one request of a run is.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One SET or GET.
    SetGet,
    /// `MULTI`, `SET k v`, `SET k2 v`, `EXEC`: one transaction.
    Multi,
    /// One `PUBLISH`, delivered to every subscriber.
    Pubsub,
}

/// The connections that never read (`--stalled-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    /// Connections.
    pub clients: u32,
    /// Bytes of the value they GET.
    pub value_size_bytes: usize,
    /// Pipelined GETs per connection.
    pub requests: u32,
}

/// How keys are chosen.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian: key 0 most popular (YCSB's generator).
    Zipf,
}

/// The SET:GET mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    /// SETs per `set + get` requests.
    pub set: u32,
    /// GETs per `set + get` requests.
    pub get: u32,
}

/// Why a `--ratio` is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatioError(String);

impl fmt::Display for RatioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RatioError {}

impl FromStr for Ratio {
    type Err = RatioError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shape = || RatioError(format!("expected SET:GET like 1:1 or 1:0, got {text:?}"));
        let (set, get) = text.split_once(':').ok_or_else(shape)?;
        let set: u32 = set.trim().parse().map_err(|_| shape())?;
        let get: u32 = get.trim().parse().map_err(|_| shape())?;
        if set == 0 && get == 0 {
            return Err(RatioError(format!(
                "ratio {text:?} has neither SET nor GET: one side must be above 0"
            )));
        }
        Ok(Self { set, get })
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.set, self.get)
    }
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("expected seconds like 10 or 0.5, got {text:?}"))?;
    if !(0.0..=DURATION_MAX_SECS).contains(&secs) {
        return Err(format!(
            "seconds must be in 0..={DURATION_MAX_SECS}, got {secs}"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_value_size(text: &str) -> Result<usize, String> {
    let bytes: usize = text
        .parse()
        .map_err(|_| format!("expected a byte count, got {text:?}"))?;
    if bytes > VALUE_SIZE_MAX_BYTES {
        return Err(format!(
            "value size {bytes} exceeds {VALUE_SIZE_MAX_BYTES} bytes"
        ));
    }
    Ok(bytes)
}

fn parse_theta(text: &str) -> Result<f64, String> {
    let theta: f64 = text
        .parse()
        .map_err(|_| format!("expected a number, got {text:?}"))?;
    Zipf::new(1, theta)
        .map(|_| theta)
        .map_err(|e| e.to_string())
}

/// When a run stops issuing requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many measured requests.
    Requests(u64),
    /// After this long of measuring.
    Duration(Duration),
}

/// A validated run: what [`crate::run::run`] takes.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--addr`: resolved at the start of the run, first address only.
    pub addr: String,
    /// `--clients`.
    pub clients: u32,
    /// `--threads`.
    pub threads: u32,
    /// `--pipeline`.
    pub pipeline: u32,
    /// `--requests` or `--duration`.
    pub stop: Stop,
    /// `--keyspace`.
    pub keyspace: u64,
    /// `--value-size`.
    pub value_size_bytes: usize,
    /// `--ratio`.
    pub ratio: Ratio,
    /// `--distribution`.
    pub distribution: Distribution,
    /// `--zipf-theta` (used by the zipf distribution only).
    pub zipf_theta: f64,
    /// `--warmup`.
    pub warmup: Duration,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--seed`, or drawn from the clock.
    pub seed: u64,
    /// None without `--stalled-clients`.
    pub stalled: Option<Stalled>,
    /// `--mode`.
    pub mode: Mode,
    /// `--subscribers` (pubsub mode).
    pub subscribers: u32,
}

/// Requests measured when neither --requests nor --duration is given.
pub const REQUESTS_DEFAULT: u64 = 100_000;

impl RunArgs {
    /// Checks what clap cannot and fills the defaults that depend on others.
    ///
    /// # Errors
    /// A message naming the option when the combination cannot run.
    pub fn to_config(&self) -> Result<Config, String> {
        let stop = match (self.requests, self.duration) {
            (Some(requests), _) => Stop::Requests(requests),
            (None, Some(duration)) if duration.is_zero() => {
                return Err("--duration must be above 0 seconds".to_string())
            }
            (None, Some(duration)) => Stop::Duration(duration),
            (None, None) => Stop::Requests(REQUESTS_DEFAULT),
        };
        if self.timeout.is_zero() {
            return Err("--timeout must be above 0 seconds".to_string());
        }
        let sets_per_request = if self.mode == Mode::Multi { 2 } else { 1 };
        let request_max_bytes =
            crate::resp::Encoder::new(0, self.value_size).set_len_bytes() * sets_per_request;
        if self.mode == Mode::Pubsub && self.value_size < crate::fanout::MESSAGE_MIN_BYTES {
            return Err(format!(
                "--mode pubsub needs --value-size of at least {} bytes (the sequence number)",
                crate::fanout::MESSAGE_MIN_BYTES
            ));
        }
        let batch_bytes = request_max_bytes.saturating_mul(self.pipeline as usize);
        if batch_bytes > BATCH_MAX_BYTES {
            return Err(format!(
                "--pipeline {} x --value-size {} makes {batch_bytes}-byte batches, above {BATCH_MAX_BYTES}",
                self.pipeline, self.value_size
            ));
        }
        let seed = self.seed.unwrap_or_else(seed_from_clock);
        if self.clients + self.stalled_clients > CLIENTS_MAX {
            return Err(format!(
                "--clients {} plus --stalled-clients {} exceed {CLIENTS_MAX} connections",
                self.clients, self.stalled_clients
            ));
        }
        let stalled = (self.stalled_clients > 0).then_some(Stalled {
            clients: self.stalled_clients,
            value_size_bytes: self.stalled_value_size,
            requests: self.stalled_requests,
        });
        Ok(Config {
            addr: self.addr.clone(),
            clients: self.clients,
            threads: self.threads.min(self.clients),
            pipeline: self.pipeline,
            stop,
            keyspace: self.keyspace,
            value_size_bytes: self.value_size,
            ratio: self.ratio,
            distribution: self.distribution,
            zipf_theta: self.zipf_theta,
            warmup: self.warmup,
            timeout: self.timeout,
            seed,
            stalled,
            mode: self.mode,
            subscribers: self.subscribers,
        })
    }
}

fn seed_from_clock() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    crate::rng::mix64(now.as_nanos() as u64 ^ u64::from(std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("flin-bench").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
        let config = cli.run.to_config().unwrap();
        assert_eq!(config.addr, "127.0.0.1:6379");
        assert_eq!(
            (config.clients, config.threads, config.pipeline),
            (50, 2, 1)
        );
        assert_eq!(config.stop, Stop::Requests(100_000));
        assert_eq!((config.keyspace, config.value_size_bytes), (100_000, 16));
        assert_eq!(config.ratio, Ratio { set: 1, get: 1 });
        assert_eq!(config.distribution, Distribution::Uniform);
        assert_eq!(config.zipf_theta, 0.99);
        assert!(config.warmup.is_zero());
        assert_eq!(config.stalled, None);
        assert_eq!((config.mode, config.subscribers), (Mode::SetGet, 50));
    }

    #[test]
    fn modes() {
        let config = parse(&["--mode", "multi", "--pipeline", "16"])
            .unwrap()
            .run
            .to_config()
            .unwrap();
        assert_eq!(config.mode, Mode::Multi);
        let err = parse(&["--mode", "pubsub", "--value-size", "19"])
            .unwrap()
            .run
            .to_config()
            .unwrap_err();
        assert!(err.contains("at least 20"), "{err}");
        let config = parse(&[
            "--mode",
            "pubsub",
            "--value-size",
            "64",
            "--subscribers",
            "3",
        ])
        .unwrap()
        .run
        .to_config()
        .unwrap();
        assert_eq!((config.mode, config.subscribers), (Mode::Pubsub, 3));
        assert!(parse(&["--mode", "other"]).is_err());
    }

    #[test]
    fn stalled_clients() {
        let config = parse(&["--stalled-clients", "4", "--stalled-value-size", "1000"])
            .unwrap()
            .run
            .to_config()
            .unwrap();
        assert_eq!(
            config.stalled,
            Some(Stalled {
                clients: 4,
                value_size_bytes: 1000,
                requests: 64
            })
        );
        assert!(parse(&["--stalled-requests", "0"]).is_err());
        let err = parse(&["--clients", "10000", "--stalled-clients", "1"])
            .unwrap()
            .run
            .to_config()
            .unwrap_err();
        assert!(err.contains("--stalled-clients"), "{err}");
    }

    #[test]
    fn run_subcommand_and_top_level_agree() {
        let top = parse(&["--clients", "3", "--ratio", "1:0"]).unwrap();
        let sub = parse(&["run", "--clients", "3", "--ratio", "1:0"]).unwrap();
        let Some(Command::Run(sub)) = sub.command else {
            panic!("run subcommand not parsed");
        };
        assert_eq!(top.run.clients, sub.clients);
        assert_eq!(top.run.ratio, sub.ratio);
    }

    #[test]
    fn ratio_parses_and_explains_errors() {
        assert_eq!("3:1".parse::<Ratio>(), Ok(Ratio { set: 3, get: 1 }));
        assert_eq!("0:1".parse::<Ratio>(), Ok(Ratio { set: 0, get: 1 }));
        for bad in ["", "1", "1:", ":1", "a:b", "1:2:3", "-1:1"] {
            let err = bad.parse::<Ratio>().unwrap_err().to_string();
            assert!(err.contains("expected SET:GET"), "{bad:?}: {err}");
        }
        let err = "0:0".parse::<Ratio>().unwrap_err().to_string();
        assert!(err.contains("one side must be above 0"), "{err}");
        let err = parse(&["--ratio", "x"]).unwrap_err().to_string();
        assert!(
            err.contains("--ratio") && err.contains("expected SET:GET"),
            "{err}"
        );
    }

    #[test]
    fn bad_numbers_are_rejected() {
        assert!(parse(&["--clients", "0"]).is_err());
        assert!(parse(&["--pipeline", "0"]).is_err());
        assert!(parse(&["--keyspace", "1000000001"]).is_err());
        assert!(parse(&["--zipf-theta", "1"]).is_err());
        assert!(parse(&["--duration", "-1"]).is_err());
        assert!(parse(&["--requests", "5", "--duration", "5"]).is_err());
        let err = parse(&["--duration", "0"])
            .unwrap()
            .run
            .to_config()
            .unwrap_err();
        assert!(err.contains("--duration"), "{err}");
        let huge = parse(&["--pipeline", "100000", "--value-size", "65536"]).unwrap();
        assert!(huge.run.to_config().unwrap_err().contains("batches"));
    }

    #[test]
    fn duration_and_threads() {
        let config = parse(&["--duration", "1.5", "--clients", "1", "--threads", "4"])
            .unwrap()
            .run
            .to_config()
            .unwrap();
        assert_eq!(config.stop, Stop::Duration(Duration::from_millis(1500)));
        assert_eq!(config.threads, 1, "no more threads than connections");
    }

    #[test]
    fn chart_subcommand() {
        let cli = parse(&["chart", "--json", "a.json", "--out", "a.svg"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Chart(_))));
    }
}
