//! Engine errors. Every variant says what happened, to which file, and where useful what the
//! user can do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the file and offset where one is involved.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call on a file failed.
    Io {
        /// What the engine was doing, e.g. "fdatasync".
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// Bytes on disk are not what flin wrote.
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where in it the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the data directory.
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// A key longer than `KEY_LEN_MAX`.
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value longer than `VALUE_LEN_MAX`.
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An atomic multi-key write would append more than `max` bytes.
    BatchTooLarge {
        /// Bytes the batch's records would take.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write or fsync failed; the engine no longer accepts writes (reads go on).
    Poisoned {
        /// The first failure, as it was reported.
        cause: String,
    },
    /// The store's records already use the highest sequence number the format allows
    /// (2^62, `SEQ_MAX` in `docs/FORMAT.md`), so no record can be newer. Nothing writes 2^62 records;
    /// only files with a forged or damaged (but checksummed) sequence number get here.
    SeqExhausted {
        /// The highest sequence number found.
        last_seq: u64,
    },
    /// The options passed to `open` are out of range.
    InvalidOptions(String),
    /// The engine was closed.
    Closed,
    /// One of the engine's threads panicked: a bug in flin. The engine refuses writes from
    /// then on (reads go on); the panic's message says where.
    Panicked {
        /// The thread's name, e.g. "flin-sync".
        thread: &'static str,
        /// What the panic said.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// A copy of this error for a second recipient (one failed read answers every caller that
    /// waited for it). An I/O error keeps its OS error code, or its kind and text.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { op, path, source } => Error::Io {
                op,
                path: path.clone(),
                source: match source.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
            },
            Error::Corrupt {
                path,
                offset,
                reason,
            } => Error::Corrupt {
                path: path.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            Error::Locked { path } => Error::Locked { path: path.clone() },
            Error::KeyTooLarge { len, max } => Error::KeyTooLarge {
                len: *len,
                max: *max,
            },
            Error::ValueTooLarge { len, max } => Error::ValueTooLarge {
                len: *len,
                max: *max,
            },
            Error::BatchTooLarge { len, max } => Error::BatchTooLarge {
                len: *len,
                max: *max,
            },
            Error::Poisoned { cause } => Error::Poisoned {
                cause: cause.clone(),
            },
            Error::SeqExhausted { last_seq } => Error::SeqExhausted {
                last_seq: *last_seq,
            },
            Error::InvalidOptions(m) => Error::InvalidOptions(m.clone()),
            Error::Closed => Error::Closed,
            Error::Panicked { thread, message } => Error::Panicked {
                thread,
                message: message.clone(),
            },
        }
    }

    /// True when an I/O error says the file was not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// True when the disk ran out of space (ENOSPC or EDQUOT, or the file-size limit).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
            ),
            _ => false,
        }
    }

    /// True when writes are refused for good until a restart.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Error::Poisoned { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => {
                write!(f, "{op} failed on {}: {source}", path.display())?;
                if self.is_disk_full() {
                    write!(f, " (free disk space; writes resume when space returns)")?;
                }
                Ok(())
            }
            Error::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "corrupt data in {} at offset {offset}: {reason} (start with repair \
                 (flin-server --repair yes) to quarantine the damaged part, or restore the file)",
                path.display()
            ),
            Error::Locked { path } => write!(
                f,
                "data directory {} is locked by another process (is another flin-server \
                 running on it?)",
                path.display()
            ),
            Error::KeyTooLarge { len, max } => {
                write!(
                    f,
                    "key is {len} bytes, longer than the limit of {max} bytes"
                )
            }
            Error::ValueTooLarge { len, max } => {
                write!(
                    f,
                    "value is {len} bytes, longer than the limit of {max} bytes"
                )
            }
            Error::BatchTooLarge { len, max } => write!(
                f,
                "atomic multi-key write of {len} bytes is larger than the limit of {max} bytes; \
                 split it into smaller commands"
            ),
            Error::Poisoned { cause } => write!(
                f,
                "writes are disabled after an earlier write or fsync failure ({cause}); \
                 restart the server once the disk is healthy"
            ),
            Error::SeqExhausted { last_seq } => write!(
                f,
                "writes are refused: the data files already hold sequence number {last_seq}, \
                 the highest the format allows (such a number comes from damaged files, not \
                 from writes); copy the keys into a new data directory"
            ),
            Error::InvalidOptions(msg) => write!(f, "invalid engine options: {msg}"),
            Error::Closed => write!(f, "the engine is closed"),
            Error::Panicked { thread, message } => write!(
                f,
                "the engine's {thread} thread panicked ({message}); this is a bug in flin: \
                 restart the server, which recovers every acknowledged write, and report the \
                 panic message from the log"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
