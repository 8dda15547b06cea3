//! Checkpoints: a consistent copy of the store in another directory, taken while it serves.
//!
//! Sealed segments never change again (compaction and FLUSHALL delete them whole), so a
//! checkpoint hard-links them (copies them when the destination is on another file system) with
//! their hint files, and copies the active segment up to its published length, which always
//! ends at a record. It works from one snapshot of the segment registry, which holds each
//! segment open: a segment compaction or FLUSHALL retires meanwhile keeps its file until the
//! checkpoint drops the snapshot. Nothing waits for it: not writers, readers, compaction.
//!
//! A snapshot taken while compaction switches over may hold a run's inputs and its outputs
//! together, the same records twice: recovery keeps one (the state a crash at that step leaves,
//! covered by the compaction crash tests).
//!
//! The checkpoint holds every write made durable before the call (the log is synced first),
//! and is itself a store: `Engine::open` on it (or on a copy) finds the data as of the
//! checkpoint. It is built in `<dest>.partial` and renamed to `<dest>` only once every file and
//! the directory are on disk, so `<dest>` never names half a checkpoint.
//!
//! The database map (`DATABASES`) is copied with the segments, with no swap in between.
//!
//! Restore by copying the checkpoint, not by serving it in place: its sealed segments share
//! their inodes with the live store's files (on one file system).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format;
use crate::hint;
use crate::segment::{sync_dir, Segment};
use crate::shared::Shared;

/// What [`crate::Engine::checkpoint`] made.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CheckpointReport {
    /// The checkpoint's directory.
    pub dir: PathBuf,
    /// Segment files in it, and how many of them were copied rather than linked (the active
    /// segment, and every file when the destination is on another file system).
    pub segments: u64,
    /// Of those, files copied rather than linked.
    pub segments_copied: u64,
    /// Bytes written by copies.
    pub bytes_copied: u64,
    /// Sequence number of the newest write in the checkpoint.
    pub last_seq: u64,
    /// How long the checkpoint took, in milliseconds.
    pub duration_ms: u64,
}

pub(crate) fn checkpoint(shared: &Arc<Shared>, dest: &Path) -> Result<CheckpointReport> {
    let started = Instant::now();
    if dest.exists() {
        return Err(Error::io(
            "create checkpoint directory",
            dest,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "it already exists; name a new directory",
            ),
        ));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent_existed = parent.is_dir();
    fs::create_dir_all(&parent)
        .map_err(|e| Error::io("create checkpoint parent directory", &parent, e))?;
    let mut partial_name = dest.file_name().unwrap_or_default().to_os_string();
    partial_name.push(".partial");
    let partial = parent.join(partial_name);
    if partial.exists() {
        // Left by a checkpoint that did not finish (this name is only ever ours).
        fs::remove_dir_all(&partial)
            .map_err(|e| Error::io("remove unfinished checkpoint", &partial, e))?;
    }
    fs::create_dir(&partial).map_err(|e| Error::io("create checkpoint directory", &partial, e))?;
    let made = (|| {
        let mut report = fill(shared, &partial)?;
        sync_dir(&partial)?;
        fs::rename(&partial, dest).map_err(|e| Error::io("rename checkpoint", &partial, e))?;
        sync_dir(&parent)?;
        if !parent_existed {
            // The first checkpoint made the parent: its own entry must reach the disk too.
            if let Some(grandparent) = parent.parent().filter(|g| !g.as_os_str().is_empty()) {
                sync_dir(grandparent)?;
            }
        }
        report.dir = dest.to_path_buf();
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    })();
    if made.is_err() {
        let _ = fs::remove_dir_all(&partial);
    }
    made
}

/// Links or copies every segment of the current snapshot into `to`.
fn fill(shared: &Arc<Shared>, to: &Path) -> Result<CheckpointReport> {
    // No SWAPDB meanwhile: the copied map must be the one every copied record was written
    // under (the active segment is copied as it is then, past `last_seq`).
    let (_swaps, map) = shared.databases.hold();
    crate::databases::write(to, &map)?;
    let last_seq = shared.log.last_seq();
    crate::wait::wait_durable(shared, last_seq)?;
    // Holds every segment in it open, so none is deleted before it is linked.
    let segments = shared.registry.load_full();
    let mut segs: Vec<&Arc<Segment>> = segments.iter().collect();
    segs.sort_by_key(|s| s.id);
    let mut report = CheckpointReport {
        last_seq,
        ..CheckpointReport::default()
    };
    for seg in segs {
        let target = to.join(format::segment_file_name(seg.id));
        report.segments += 1;
        if seg.is_sealed() {
            let copied = link_or_copy(&seg.path(), &target)?;
            report.segments_copied += u64::from(copied.is_some());
            report.bytes_copied += copied.unwrap_or(0);
            // A hint only speeds up opening; a segment without one is scanned. One may be
            // written, or removed with a retired segment, meanwhile.
            let hint = hint::hint_path(&shared.dir, seg.id);
            match link_or_copy(&hint, &to.join(hint::hint_file_name(seg.id))) {
                Ok(copied) => report.bytes_copied += copied.unwrap_or(0),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        } else {
            // Appended to meanwhile: everything below the length read here is whole records.
            let bytes = seg.bytes_from(0);
            write_file(&target, bytes)?;
            report.segments_copied += 1;
            report.bytes_copied += bytes.len() as u64;
        }
    }
    Ok(report)
}

/// Hard-links `from` as `to`, or copies it when they are on different file systems. Returns
/// the bytes copied, `None` for a link. Either way `to` is on disk when this returns.
fn link_or_copy(from: &Path, to: &Path) -> Result<Option<u64>> {
    let copied = match fs::hard_link(from, to) {
        Ok(()) => None,
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            Some(fs::copy(from, to).map_err(|e| Error::io("copy into checkpoint", to, e))?)
        }
        Err(e) => return Err(Error::io("link into checkpoint", to, e)),
    };
    // A linked segment's data may not be synced yet either (one sealed a moment ago).
    File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("fsync checkpoint file", to, e))?;
    Ok(copied)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io("create checkpoint file", path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("write checkpoint file", path, e))
}
