//! Fault injection for tests, chosen by the environment variable `FLIN_FAILPOINT` (read once
//! per process; when unset every check is one load of a cached value and a comparison).
//!
//! - `compaction-before-rename`, `compaction-after-rename`, `compaction-after-switch`,
//!   `compaction-after-retire`: the process aborts at that point of a compaction, as a SIGKILL
//!   would stop it ([`crash`]).
//! - `fsync-eio` or `fsync-eio:N`: the sync thread's `fdatasync` of a segment fails with EIO
//!   after N successful ones (0 when N is not given), and so does every later one, as on a
//!   failing disk ([`fsync`]). The real `fdatasync` is not called for an injected failure.
//!   Counted per process.
//! - `compaction-sync-eio`, `compaction-dir-sync-eio`: a compaction run's fdatasync of its
//!   output segments, or its fsync of the directory after renaming them into place, fails with
//!   EIO, every time ([`eio`]).
//! - `roll-dir-sync-eio`: the sync thread's fsync of the directory after the log rolled to a
//!   segment renamed into place fails with EIO ([`eio`]).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The environment variable that names the failpoint.
pub const ENV: &str = "FLIN_FAILPOINT";

#[derive(Debug, PartialEq)]
enum Point {
    None,
    /// Abort the process where [`crash`] is called with this name.
    Crash(String),
    /// Fail with EIO where [`eio`] is called with this name (a name ending in `-eio`).
    Eio(String),
    /// Fail every segment fdatasync after this many successful ones.
    FsyncEio {
        after: u64,
    },
}

fn parse(value: Option<&str>) -> std::result::Result<Point, String> {
    let Some(value) = value else {
        return Ok(Point::None);
    };
    let Some(rest) = value.strip_prefix("fsync-eio") else {
        if value.ends_with("-eio") {
            return Ok(Point::Eio(value.to_string()));
        }
        return Ok(Point::Crash(value.to_string()));
    };
    if rest.is_empty() {
        return Ok(Point::FsyncEio { after: 0 });
    }
    rest.strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .map(|after| Point::FsyncEio { after })
        .ok_or_else(|| {
            format!(
                "{ENV}={value:?} is not a failpoint: write fsync-eio or fsync-eio:N with N a \
                 count of fdatasyncs that succeed first"
            )
        })
}

fn point() -> &'static Point {
    static POINT: OnceLock<Point> = OnceLock::new();
    POINT.get_or_init(|| {
        let value = std::env::var(ENV).ok();
        parse(value.as_deref()).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Reads the failpoint now, so that a malformed value panics in the thread opening the engine
/// rather than in a background thread.
pub(crate) fn init() {
    let _ = point();
}

/// Aborts the process when the failpoint names `name`.
pub(crate) fn crash(name: &str) {
    if matches!(point(), Point::Crash(p) if p == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Before the file operation `op` on `path`: an injected EIO when the failpoint names `name`.
pub(crate) fn eio(name: &str, op: &'static str, path: &Path) -> Result<()> {
    if matches!(point(), Point::Eio(p) if p == name) {
        return Err(injected_eio(name, op, path));
    }
    Ok(())
}

/// The error an injected EIO returns, said in the log first.
fn injected_eio(name: &str, op: &'static str, path: &Path) -> Error {
    tracing::warn!(path = %path.display(), "failpoint {name}: injecting EIO");
    Error::io(op, path, std::io::Error::from_raw_os_error(libc::EIO))
}

/// Before the `fdatasync` of the segment at `path`: an injected EIO naming the file when
/// `fsync-eio` is due.
pub(crate) fn fsync(path: &Path) -> Result<()> {
    if let Point::FsyncEio { after } = point() {
        static DONE: AtomicU64 = AtomicU64::new(0);
        if DONE.fetch_add(1, Ordering::Relaxed) >= *after {
            return Err(injected_eio("fsync-eio", "fdatasync", path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse() {
        assert_eq!(parse(None), Ok(Point::None));
        assert_eq!(
            parse(Some("compaction-after-switch")),
            Ok(Point::Crash("compaction-after-switch".into()))
        );
        assert_eq!(parse(Some("fsync-eio")), Ok(Point::FsyncEio { after: 0 }));
        assert_eq!(
            parse(Some("compaction-sync-eio")),
            Ok(Point::Eio("compaction-sync-eio".into()))
        );
        assert_eq!(
            parse(Some("fsync-eio:25")),
            Ok(Point::FsyncEio { after: 25 })
        );
        for bad in ["fsync-eio:", "fsync-eio:x", "fsync-eio25", "fsync-eio:-1"] {
            let e = parse(Some(bad)).unwrap_err();
            assert!(e.contains(ENV) && e.contains("fsync-eio:N"), "{bad}: {e}");
        }
    }
}
