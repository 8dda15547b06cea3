//! The sync thread: group commit (one `fdatasync` for every writer waiting at once) and, under
//! `EverySec`, a sync each second when anything is unsynced. State and wake-ups are in
//! `syncer`; a failed fsync poisons the engine, and is never retried and reported as a success
//! (see "fsyncgate").

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::options::Fsync;
use crate::shared::Shared;
use crate::syncer::Work;
use crate::testing_hooks::Thread;

/// The sync thread's body. Runs until shutdown, then syncs once more.
pub(crate) fn run(shared: Arc<Shared>) {
    let s = &shared.syncer;
    let every = Duration::from_secs(1);
    let mut next_tick = Instant::now() + every;
    let mut last_batch = 0usize;
    loop {
        let tick = (shared.fsync() == Fsync::EverySec).then_some((&mut next_tick, every));
        let work = s.wait_for_work(tick, || {
            shared.log.last_seq() > s.durable()
                && !shared.hooks.periodic_sync_paused.load(Ordering::SeqCst)
        });
        shared.hooks.maybe_panic(Thread::Sync);
        let stopping = matches!(work, Work::Stop);
        if shared.is_poisoned() {
            s.wake(true);
            if !stopping {
                // Nothing more can become durable; sleep until shutdown.
                s.wait_for_shutdown();
            }
            return;
        }
        if !stopping {
            let fsync_us = shared
                .counters
                .last_fsync_duration_us
                .load(Ordering::Relaxed);
            s.gather(last_batch, fsync_us);
        }
        if let Err(e) = sync_now(&shared) {
            tracing::error!(error = %e, "fsync failed; the engine refuses writes from now on");
            shared.counters.write_errors.fetch_add(1, Ordering::Relaxed);
            shared.poison(e.to_string());
        }
        last_batch = s.wake(shared.is_poisoned());
        if stopping {
            return;
        }
    }
}

/// Syncs every segment with unsynced writes and advances the durable sequence number.
pub(crate) fn sync_now(shared: &Shared) -> Result<()> {
    let (segments, seq, dir) = shared.log.unsynced();
    let started = Instant::now();
    if dir {
        // A segment renamed into place by a roll: its name first, or a crash could leave its
        // records synced under the `.tmp` name that the next open removes.
        crate::failpoint::eio("roll-dir-sync-eio", "fsync directory", &shared.dir)?;
        crate::segment::sync_dir(&shared.dir)?;
    }
    // Group commit (`Always`) syncs many times a second; only the once-a-second sync keeps
    // the pages ahead of the writer mapped through it (see `Segment::sync_periodic`).
    let periodic = shared.fsync() == Fsync::EverySec;
    for seg in &segments {
        crate::failpoint::fsync(&seg.path())?;
        if periodic {
            seg.sync_periodic()?;
        } else {
            seg.sync()?;
        }
    }
    shared.syncer.advance_durable(seq);
    shared.counters.note_fsync(started.elapsed());
    if shared
        .registry
        .retiring_up_to()
        .is_some_and(|waits| waits <= seq)
    {
        // Compaction inputs waited for this sync: the maintenance thread retires them.
        shared.syncer.kick_maintenance();
    }
    Ok(())
}
