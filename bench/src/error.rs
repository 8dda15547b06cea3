//! The errors that stop flin-bench before or outside a measurement. Bad replies during a run
//! are not errors here: they are counted in the report, which makes the run exit non-zero.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why flin-bench could not run or finish a measurement.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// Options that cannot work together.
    Option(String),
    /// `--addr` does not resolve (to anything).
    Resolve {
        /// `--addr`, as given.
        addr: String,
        /// The resolver's error; `None` when it found no address.
        source: Option<io::Error>,
    },
    /// Connecting or configuring connection number `client` failed.
    Connect {
        /// The address connected to.
        addr: SocketAddr,
        /// The connection's number in the run.
        client: usize,
        /// The OS error.
        source: io::Error,
    },
    /// A driver thread could not start.
    Spawn {
        /// The thread's number.
        thread: usize,
        /// The OS error.
        source: io::Error,
    },
    /// A driver thread panicked (a bug in flin-bench).
    WorkerPanicked {
        /// The thread's number.
        thread: usize,
    },
    /// Reading an input file failed.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Writing an output file failed.
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A JSON file is not what it should be.
    Json {
        /// The file.
        path: PathBuf,
        /// What serde_json found.
        source: serde_json::Error,
    },
    /// Drawing the chart failed.
    Chart {
        /// The SVG file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Setting up the `--stalled-clients` failed.
    Stalled(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Option(message) => write!(f, "invalid options: {message}"),
            Self::Resolve {
                addr,
                source: Some(source),
            } => {
                write!(f, "cannot resolve --addr {addr:?}: {source}")
            }
            Self::Resolve { addr, source: None } => {
                write!(f, "--addr {addr:?} resolves to no address")
            }
            Self::Connect {
                addr,
                client,
                source,
            } => {
                write!(f, "cannot connect client {client} to {addr}: {source}")
            }
            Self::Spawn { thread, source } => {
                write!(f, "cannot start driver thread {thread}: {source}")
            }
            Self::WorkerPanicked { thread } => write!(f, "driver thread {thread} panicked"),
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            Self::Json { path, source } => write!(f, "bad JSON in {}: {source}", path.display()),
            Self::Chart { path, message } => {
                write!(f, "cannot draw chart {}: {message}", path.display())
            }
            Self::Stalled(message) => write!(f, "--stalled-clients: {message}"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Resolve {
                source: Some(source),
                ..
            }
            | Self::Connect { source, .. }
            | Self::Spawn { source, .. }
            | Self::Read { source, .. }
            | Self::Write { source, .. } => Some(source),
            Self::Json { source, .. } => Some(source),
            _ => None,
        }
    }
}
