//! The result of a run: throughput and latency, total and per command, and whether every
//! reply was right. Serialised as JSON for scripts, printed as a table or as redis-benchmark
//! compatible CSV for people and for `compare.sh`.

use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::BenchError;
use crate::options::{Config, Distribution, Mode};
use crate::tally::{new_histogram, Tally};

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Arithmetic mean.
    pub mean: f64,
    /// Fastest reply.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest reply.
    pub max: f64,
}

impl Latency {
    fn from_histogram(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        let at = |quantile: f64| us(histogram.value_at_quantile(quantile));
        Self {
            mean: histogram.mean() / 1_000.0,
            min: us(histogram.min()),
            p50: at(0.50),
            p90: at(0.90),
            p95: at(0.95),
            p99: at(0.99),
            p999: at(0.999),
            max: us(histogram.max()),
        }
    }
}

/// One command's (or all commands') measured requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OpReport {
    /// Measured requests answered correctly.
    pub requests: u64,
    /// `requests` over the run's measured time.
    pub ops_per_sec: f64,
    /// From writing a request's batch to reading its reply.
    pub latency_us: Latency,
}

impl OpReport {
    fn new(histogram: &Histogram<u64>, elapsed_secs: f64) -> Self {
        let requests = histogram.len();
        Self {
            requests,
            ops_per_sec: if elapsed_secs > 0.0 {
                requests as f64 / elapsed_secs
            } else {
                0.0
            },
            latency_us: Latency::from_histogram(histogram),
        }
    }
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `--addr`, as given.
    pub addr: String,
    /// `--clients`.
    pub clients: u32,
    /// `--threads`.
    pub threads: u32,
    /// `--pipeline`.
    pub pipeline: u32,
    /// `--keyspace`.
    pub keyspace: u64,
    /// `--value-size`.
    pub value_size_bytes: usize,
    /// `--ratio`, as `SET:GET`.
    pub ratio: String,
    /// `--mode`: `set-get`, or `multi` when each request (counted under `set`) was a
    /// MULTI, SET, SET, EXEC transaction.
    #[serde(default)]
    pub mode: String,
    /// `uniform` or `zipf`.
    pub distribution: String,
    /// `--zipf-theta`, for a zipf distribution.
    pub zipf_theta: Option<f64>,
    /// The seed keys and values were drawn from (given or from the clock).
    pub seed: u64,
    /// `--warmup`.
    pub warmup_secs: f64,
    /// From the end of warmup to the last measured reply.
    pub elapsed_secs: f64,
    /// Every measured request.
    pub total: OpReport,
    /// The measured SETs.
    pub set: OpReport,
    /// The measured GETs.
    pub get: OpReport,
    /// Measured GETs answered with a value.
    pub get_hits: u64,
    /// Measured GETs answered with nil.
    pub get_misses: u64,
    /// Requests answered wrongly or not at all; non-zero fails the run.
    pub errors: u64,
    /// The first of them, in words.
    pub first_error: Option<String>,
    /// `--stalled-clients`: connections beside the measured ones that never read.
    #[serde(default)]
    pub stalled_clients: u32,
    /// `--stalled-value-size`.
    #[serde(default)]
    pub stalled_value_size_bytes: usize,
    /// Pipelined GETs each stalled connection wrote.
    #[serde(default)]
    pub stalled_requests: u32,
}

impl Report {
    /// Summarises `tally`, whose measured phase began at `measure_start`.
    pub fn new(config: &Config, tally: &Tally, measure_start: Instant) -> Self {
        let elapsed_secs = tally.last_reply_at.map_or(0.0, |end| {
            end.saturating_duration_since(measure_start).as_secs_f64()
        });
        let mut all = new_histogram();
        // Same bounds: adding cannot fail.
        all.add(&tally.set_latency_ns)
            .expect("equal histogram bounds");
        all.add(&tally.get_latency_ns)
            .expect("equal histogram bounds");
        Self {
            addr: config.addr.clone(),
            clients: config.clients,
            threads: config.threads,
            pipeline: config.pipeline,
            keyspace: config.keyspace,
            value_size_bytes: config.value_size_bytes,
            ratio: config.ratio.to_string(),
            mode: match config.mode {
                Mode::SetGet => "set-get",
                Mode::Multi => "multi",
                Mode::Pubsub => "pubsub",
            }
            .to_string(),
            distribution: match config.distribution {
                Distribution::Uniform => "uniform".to_string(),
                Distribution::Zipf => "zipf".to_string(),
            },
            zipf_theta: (config.distribution == Distribution::Zipf).then_some(config.zipf_theta),
            seed: config.seed,
            warmup_secs: config.warmup.as_secs_f64(),
            elapsed_secs,
            total: OpReport::new(&all, elapsed_secs),
            set: OpReport::new(&tally.set_latency_ns, elapsed_secs),
            get: OpReport::new(&tally.get_latency_ns, elapsed_secs),
            get_hits: tally.get_hits,
            get_misses: tally.get_misses,
            errors: tally.errors,
            first_error: tally.first_error.clone(),
            stalled_clients: config.stalled.map_or(0, |s| s.clients),
            stalled_value_size_bytes: config.stalled.map_or(0, |s| s.value_size_bytes),
            stalled_requests: config.stalled.map_or(0, |s| s.requests),
        }
    }

    /// The name of the `set` row: `MULTI` when it counts transactions.
    fn set_name(&self) -> &'static str {
        if self.mode == "multi" {
            "MULTI"
        } else {
            "SET"
        }
    }

    /// Whether every reply was right.
    pub fn passed(&self) -> bool {
        self.errors == 0
    }

    /// Writes the report as pretty JSON to `path`.
    ///
    /// # Errors
    /// As [`write_json`].
    pub fn write_json(&self, path: &Path) -> Result<(), BenchError> {
        write_json(self, path)
    }

    /// The human-readable table.
    ///
    /// # Errors
    /// The error of writing to `out`.
    pub fn print_text(&self, out: &mut impl Write) -> io::Result<()> {
        let distribution = match self.zipf_theta {
            Some(theta) => format!("zipf theta {theta}"),
            None => self.distribution.clone(),
        };
        writeln!(
            out,
            "flin-bench {}: {} clients on {} threads, pipeline {}, {}-byte values, {} keys {}, SET:GET {}, seed {}",
            self.addr, self.clients, self.threads, self.pipeline, self.value_size_bytes,
            self.keyspace, distribution, self.ratio, self.seed
        )?;
        if self.mode == "multi" {
            writeln!(
                out,
                "each request is one transaction: MULTI, SET, SET, EXEC (the MULTI row)"
            )?;
        }
        if self.stalled_clients > 0 {
            writeln!(
                out,
                "beside {} stalled clients: each wrote {} pipelined GETs of a {}-byte value and read nothing",
                self.stalled_clients, self.stalled_requests, self.stalled_value_size_bytes
            )?;
        }
        writeln!(
            out,
            "{} requests in {:.3} s{}",
            self.total.requests,
            self.elapsed_secs,
            if self.warmup_secs > 0.0 {
                format!(" after {:.1} s warmup", self.warmup_secs)
            } else {
                String::new()
            }
        )?;
        writeln!(
            out,
            "\n{:<6}{:>11}{:>13}  {:>9}{:>9}{:>9}{:>9}{:>9}   latency us",
            "", "requests", "ops/s", "p50", "p90", "p99", "p99.9", "max"
        )?;
        for (name, op) in [
            ("total", &self.total),
            (self.set_name(), &self.set),
            ("GET", &self.get),
        ] {
            if op.requests == 0 && name != "total" {
                continue;
            }
            let l = op.latency_us;
            writeln!(
                out,
                "{name:<6}{:>11}{:>13.1}  {:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}",
                op.requests, op.ops_per_sec, l.p50, l.p90, l.p99, l.p999, l.max
            )?;
        }
        if self.get.requests > 0 {
            writeln!(
                out,
                "GET hits {}, misses {}",
                self.get_hits, self.get_misses
            )?;
        }
        match &self.first_error {
            None => writeln!(out, "all replies checked: 0 errors"),
            Some(first) => writeln!(
                out,
                "ERRORS: {} requests failed; first: {first}",
                self.errors
            ),
        }
    }

    /// Lines like `redis-benchmark --csv`: a header, then one line per command that ran.
    ///
    /// # Errors
    /// The error of writing to `out`.
    pub fn print_csv(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\""
        )?;
        for (name, op) in [(self.set_name(), &self.set), ("GET", &self.get)] {
            if op.requests == 0 {
                continue;
            }
            let l = op.latency_us;
            let ms = |us: f64| us / 1_000.0;
            writeln!(
                out,
                "\"{name}\",\"{:.2}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\"",
                op.ops_per_sec,
                ms(l.mean),
                ms(l.min),
                ms(l.p50),
                ms(l.p95),
                ms(l.p99),
                ms(l.max)
            )?;
        }
        Ok(())
    }
}

/// Writes `value` as pretty JSON to `path`, ending with a newline.
///
/// # Errors
/// [`BenchError::Json`] when it cannot be serialised, [`BenchError::Write`] when the file
/// cannot be written.
pub fn write_json(value: &impl Serialize, path: &Path) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| BenchError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(|source| BenchError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Cli;
    use crate::tally::Op;
    use clap::Parser;
    use std::time::Duration;

    fn sample() -> Report {
        let config = Cli::parse_from(["flin-bench", "--seed", "1"])
            .run
            .to_config()
            .unwrap();
        let start = Instant::now();
        let mut tally = Tally::new();
        for i in 1..=100u64 {
            tally.record_n(
                Op::Set,
                Duration::from_micros(i),
                1,
                start + Duration::from_millis(500),
            );
        }
        tally.record_n(
            Op::Get,
            Duration::from_micros(7),
            1,
            start + Duration::from_secs(1),
        );
        Report::new(&config, &tally, start)
    }

    #[test]
    fn rates_and_percentiles() {
        let report = sample();
        assert!((report.elapsed_secs - 1.0).abs() < 1e-6);
        assert_eq!(report.total.requests, 101);
        assert!((report.set.ops_per_sec - 100.0).abs() < 1e-6);
        let p50 = report.set.latency_us.p50;
        assert!((49.0..=51.0).contains(&p50), "{p50}");
        assert!(report.passed());
    }

    #[test]
    fn json_round_trips_and_csv_has_both_commands() {
        let report = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        report.write_json(&path).unwrap();
        let back: Report = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, report);
        let mut csv = Vec::new();
        report.print_csv(&mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("\"SET\",\"100.00\""),
            "{csv}"
        );
        assert!(csv.lines().nth(2).unwrap().starts_with("\"GET\""), "{csv}");
        let mut text = Vec::new();
        report.print_text(&mut text).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("0 errors"));
    }
}
