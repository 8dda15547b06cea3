//! One load-generator run: resolve and connect, spread the connections over threads, show
//! progress, merge what the threads measured into a [`Report`]. `run/stalled.rs`: the
//! `--stalled-clients` that never read, open beside the measured ones.

pub mod stalled;

use std::io::IsTerminal;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::BenchError;
use crate::options::{Config, Stop};
use crate::report::Report;
use crate::shared::Shared;
use crate::tally::Tally;
use crate::worker;

/// Longest wait for one TCP connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the progress bar is redrawn.
pub const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// Whether to draw a progress bar on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Only if stderr is a terminal.
    Auto,
    /// Never.
    Off,
}

/// Runs the load described by `config` and measures it.
///
/// A run that completes returns `Ok` even if replies were wrong: the report's `errors` and
/// `first_error` say so, and the caller decides the exit status.
///
/// # Errors
/// [`BenchError`] when the address does not resolve, a connection cannot be made, or a driver
/// thread cannot be started or panics.
pub fn run(config: &Config, progress: Progress) -> Result<Report, BenchError> {
    let addr = resolve(&config.addr)?;
    let streams = connect_all(addr, config.clients)?;
    // Closed (and their writers joined) when this returns.
    let _stalled = config
        .stalled
        .map(|s| stalled::start(addr, &s, CONNECT_TIMEOUT, config.timeout))
        .transpose()?;
    let start = Instant::now();
    let shared =
        Arc::new(Shared::new(config, start).map_err(|e| BenchError::Option(e.to_string()))?);
    let bar = progress_bar(config, progress);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Tally)>();
    let mut handles = Vec::new();
    for (thread, (first_id, streams)) in split(streams, config.threads as usize)
        .into_iter()
        .enumerate()
    {
        let shared = Arc::clone(&shared);
        let done_tx = done_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("flin-bench-{thread}"))
            .spawn(move || {
                let tally = worker::drive(streams, first_id, thread, &shared);
                // The receiver outlives every worker; a send can only fail if the run panicked.
                let _ = done_tx.send((thread, tally));
            })
            .map_err(|source| BenchError::Spawn { thread, source })?;
        handles.push(handle);
    }
    drop(done_tx);
    let mut merged = Tally::new();
    let mut finished = 0;
    while finished < handles.len() {
        match done_rx.recv_timeout(PROGRESS_TICK) {
            Ok((_, tally)) => {
                merged.merge(tally);
                finished += 1;
            }
            Err(RecvTimeoutError::Timeout) => update_bar(&bar, &shared, config),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    bar.finish_and_clear();
    for (thread, handle) in handles.into_iter().enumerate() {
        handle
            .join()
            .map_err(|_| BenchError::WorkerPanicked { thread })?;
    }
    Ok(Report::new(config, &merged, shared.measure_start))
}

/// The first address `addr` resolves to: only that one is ever connected to.
pub(crate) fn resolve(addr: &str) -> Result<SocketAddr, BenchError> {
    addr.to_socket_addrs()
        .map_err(|source| BenchError::Resolve {
            addr: addr.to_string(),
            source: Some(source),
        })?
        .next()
        .ok_or_else(|| BenchError::Resolve {
            addr: addr.to_string(),
            source: None,
        })
}

/// Opens `clients` connections, TCP_NODELAY and non-blocking.
pub(crate) fn connect_all(addr: SocketAddr, clients: u32) -> Result<Vec<TcpStream>, BenchError> {
    (0..clients as usize)
        .map(|client| {
            let context = |source| BenchError::Connect {
                addr,
                client,
                source,
            };
            let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(context)?;
            stream.set_nodelay(true).map_err(context)?;
            stream.set_nonblocking(true).map_err(context)?;
            Ok(stream)
        })
        .collect()
}

/// Deals `streams` to `threads` threads in contiguous runs; each part carries the id of its
/// first connection.
fn split(streams: Vec<TcpStream>, threads: usize) -> Vec<(usize, Vec<TcpStream>)> {
    let threads = threads.clamp(1, streams.len().max(1));
    let per_thread = streams.len() / threads;
    let extra = streams.len() % threads;
    let mut parts = Vec::with_capacity(threads);
    let mut rest = streams.into_iter();
    let mut first_id = 0;
    for thread in 0..threads {
        let count = per_thread + usize::from(thread < extra);
        parts.push((first_id, rest.by_ref().take(count).collect()));
        first_id += count;
    }
    parts
}

fn progress_bar(config: &Config, progress: Progress) -> ProgressBar {
    if progress == Progress::Off || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (length, template) = match config.stop {
        Stop::Requests(total) => (total, "{bar:40} {pos}/{len} requests, {per_sec} {msg}"),
        Stop::Duration(duration) => (duration.as_millis() as u64, "{bar:40} {msg}"),
    };
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

fn update_bar(bar: &ProgressBar, shared: &Shared, config: &Config) {
    if bar.is_hidden() {
        return;
    }
    let now = Instant::now();
    if now < shared.measure_start {
        let left = shared.measure_start - now;
        bar.set_message(format!("warmup, {:.1} s left", left.as_secs_f64()));
        return;
    }
    let completed = shared.completed();
    match config.stop {
        Stop::Requests(_) => {
            bar.set_message("");
            bar.set_position(completed);
        }
        Stop::Duration(duration) => {
            let measured = now.duration_since(shared.measure_start).min(duration);
            let rate = completed as f64 / measured.as_secs_f64().max(1e-9);
            bar.set_position(measured.as_millis() as u64);
            bar.set_message(format!("{completed} requests, {rate:.0}/s"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn split_deals_every_stream_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let streams: Vec<_> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let parts = split(streams, 2);
        let sizes: Vec<_> = parts
            .iter()
            .map(|(first, part)| (*first, part.len()))
            .collect();
        assert_eq!(sizes, vec![(0, 3), (3, 2)]);
    }

    #[test]
    fn unresolvable_address_is_an_error() {
        let err = resolve("not an address").unwrap_err().to_string();
        assert!(err.contains("not an address"), "{err}");
    }
}
