//! SAVE, BGSAVE and LASTSAVE: online backups as engine checkpoints.
//!
//! flin has no RDB file; what a Redis user gets from SAVE (a consistent copy of the data to
//! back up) is here a checkpoint ([`flin_engine::Engine::checkpoint`]): a directory named by
//! the time it was taken (Unix milliseconds) under `--checkpoint-dir` (default
//! `<dir>/checkpoints`), which `flin-server --dir` opens as a store once copied elsewhere.
//! Sealed segments are hard-linked into it, so a checkpoint is quick and small at first; it
//! holds their disk space once compaction has deleted the originals, until it is removed.
//!
//! SAVE runs on the worker that received it (its other clients wait, as all of Redis's do
//! during SAVE); BGSAVE on a thread of its own, one at a time. LASTSAVE and INFO's
//! `rdb_last_save_time` give the Unix time of the last success (the server's start before any).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use flin_engine::{CheckpointReport, Engine};

/// The state of saves, shared by every worker.
pub struct Saves {
    root: PathBuf,
    in_progress: AtomicBool,
    last_save_unix_secs: AtomicU64,
    /// Sequence number of the newest write in the last checkpoint (the store's at start).
    last_save_seq: AtomicU64,
    last_ok: AtomicBool,
    background: Mutex<Option<JoinHandle<()>>>,
}

/// Why a BGSAVE did not start.
#[derive(Debug, PartialEq, Eq)]
pub enum BgsaveRefused {
    InProgress,
    /// The thread could not be created.
    Spawn(String),
}

impl Saves {
    /// `last_seq`: the store's newest write at start, which counts as saved (as Redis counts
    /// the data it loaded).
    pub fn new(root: PathBuf, last_seq: u64) -> Saves {
        Saves {
            root,
            in_progress: AtomicBool::new(false),
            last_save_unix_secs: AtomicU64::new(now_ms() / 1000),
            last_save_seq: AtomicU64::new(last_seq),
            last_ok: AtomicBool::new(true),
            background: Mutex::new(None),
        }
    }

    /// Where checkpoints go.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn in_progress(&self) -> bool {
        self.in_progress.load(Ordering::Acquire)
    }

    pub fn last_save_unix_secs(&self) -> u64 {
        self.last_save_unix_secs.load(Ordering::Relaxed)
    }

    /// Writes since the last checkpoint (INFO's `rdb_changes_since_last_save`), given the
    /// store's newest sequence number now.
    pub fn changes_since_last_save(&self, last_seq: u64) -> u64 {
        last_seq.saturating_sub(self.last_save_seq.load(Ordering::Relaxed))
    }

    pub fn last_ok(&self) -> bool {
        self.last_ok.load(Ordering::Relaxed)
    }

    /// Takes a checkpoint now, on this thread.
    ///
    /// # Errors
    /// A save is already running (one at a time, as Redis), or the checkpoint's error, said
    /// for a client.
    pub fn save(&self, engine: &Engine) -> Result<CheckpointReport, String> {
        if self.in_progress.swap(true, Ordering::AcqRel) {
            return Err("Background save already in progress".into());
        }
        let r = self.run(engine);
        self.in_progress.store(false, Ordering::Release);
        r
    }

    /// Starts a checkpoint on its own thread.
    ///
    /// # Errors
    /// [`BgsaveRefused`]: one is running, or the thread could not start.
    pub fn start_background(self: &Arc<Self>, engine: &Arc<Engine>) -> Result<(), BgsaveRefused> {
        if self.in_progress.swap(true, Ordering::AcqRel) {
            return Err(BgsaveRefused::InProgress);
        }
        let mut slot = self
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The previous one has finished (in_progress was clear): reap it.
        if let Some(done) = slot.take() {
            let _ = done.join();
        }
        let (saves, engine) = (self.clone(), engine.clone());
        let spawned = std::thread::Builder::new()
            .name("flin-bgsave".into())
            .spawn(move || {
                let _ = saves.run(&engine);
                saves.in_progress.store(false, Ordering::Release);
            });
        match spawned {
            Ok(handle) => {
                *slot = Some(handle);
                Ok(())
            }
            Err(e) => {
                self.in_progress.store(false, Ordering::Release);
                Err(BgsaveRefused::Spawn(e.to_string()))
            }
        }
    }

    /// Waits for a background save to end (at shutdown, so it is not cut off halfway).
    pub fn join_background(&self) {
        let handle = self
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("the background save thread panicked");
            }
        }
    }

    fn run(&self, engine: &Engine) -> Result<CheckpointReport, String> {
        let dest = self.root.join(now_ms().to_string());
        match engine.checkpoint(&dest) {
            Ok(report) => {
                self.last_ok.store(true, Ordering::Relaxed);
                self.last_save_seq
                    .fetch_max(report.last_seq, Ordering::Relaxed);
                self.last_save_unix_secs
                    .store(now_ms() / 1000, Ordering::Relaxed);
                tracing::info!(
                    dir = %report.dir.display(),
                    segments = report.segments,
                    copied = report.segments_copied,
                    bytes_copied = report.bytes_copied,
                    ms = report.duration_ms,
                    "checkpoint saved; copy this directory to back up, then remove it to free \
                     the space it holds"
                );
                Ok(report)
            }
            Err(e) => {
                self.last_ok.store(false, Ordering::Relaxed);
                tracing::error!(dir = %dest.display(), error = %e, "checkpoint failed");
                Err(format!("checkpoint into {} failed: {e}", dest.display()))
            }
        }
    }
}

fn now_ms() -> u64 {
    crate::clock::now_ms().max(0) as u64
}
