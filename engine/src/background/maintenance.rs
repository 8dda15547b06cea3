//! The maintenance thread, at `Options::background_nice`: sweeps expired keys, writes missing
//! hint files, checks segments loaded from hints against their checksums, and compacts while
//! there is work. The log's growth wakes it early (see `Shared::on_log_grew`).

use std::sync::Arc;
use std::time::Instant;

use crate::compaction::{compact, pick, retire_waiting_now, Retire};
use crate::format::{self, SEGMENT_HEADER_LEN};
use crate::options::Fsync;
use crate::scan::{scan_records, ScanEnd};
use crate::segment::Segment;
use crate::shared::Shared;
use crate::testing_hooks::Thread;

/// Index slots the active-expiry sweep examines per maintenance cycle (all 10M slots of a big
/// store in about a minute at the default interval).
const EXPIRE_SLOTS_PER_CYCLE: usize = 64 * 1024;

/// Called by the maintenance thread after a run, and when it finds no run worth doing.
fn lift_stall_unless_over_bound(shared: &Shared, work_left: bool) {
    let over = || {
        let segs = shared.registry.load();
        crate::space::over_bound_with_work(
            &shared.options,
            &segs,
            shared.prepared.spare_allocated(),
        )
    };
    if !work_left || !over() {
        shared.write_stall.lift();
    }
}

/// Gives the calling thread niceness `nice` (Linux schedules threads, so this touches no
/// other thread of the process). 0 leaves the thread as it is.
///
/// # Errors
/// The `setpriority` error.
pub fn set_current_thread_nice(nice: i32) -> std::io::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    // SAFETY: gettid and setpriority take and return plain integers.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Gives the calling (maintenance) thread the configured niceness.
pub(crate) fn lower_priority(shared: &Shared) {
    if let Err(e) = set_current_thread_nice(shared.options.background_nice) {
        tracing::warn!(
            nice = shared.options.background_nice,
            error = %e,
            "could not lower the maintenance thread's priority; compaction competes with \
             clients for the CPU at normal priority"
        );
    }
    if shared.options.background_nice > 0 {
        if let Err(e) = set_current_thread_io_idle() {
            tracing::debug!(error = %e, "could not give the maintenance thread idle I/O priority");
        }
    }
}

/// Gives the calling thread the idle I/O class: the disk serves its reads (compaction's
/// input, hint checks) when no client read waits. Without it a compaction's megabytes of
/// read-ahead queued ahead of the clients' cold reads: their 99th percentile went from 0.8
/// to 7 ms on this machine's disk (mq-deadline honours the class; other schedulers may not,
/// and then nothing changes).
fn set_current_thread_io_idle() -> std::io::Result<()> {
    const IOPRIO_CLASS_SHIFT: u32 = 13;
    const IOPRIO_CLASS_IDLE: u32 = 3;
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: gettid and ioprio_set take and return plain integers; `who` 0 would mean the
    // calling process's first thread, so the thread id is passed.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid,
            (IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT) as libc::c_int,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The maintenance thread: writes missing hint files, checks segments loaded from hints
/// against their checksums, and compacts.
pub(crate) fn run(shared: Arc<Shared>) {
    let mut expire_cursor = 0u64;
    let mut next_sweep = Instant::now();
    while !shared
        .syncer
        .wait_maintenance(shared.options.compaction_interval)
    {
        // The log's growth wakes this thread early, for compaction; the expiry sweep keeps to
        // its interval so its work per second stays bounded.
        if Instant::now() >= next_sweep {
            crate::expiry::sweep(&shared, &mut expire_cursor, EXPIRE_SLOTS_PER_CYCLE);
            next_sweep = Instant::now() + shared.options.compaction_interval;
        }
        shared.hooks.maybe_panic(Thread::Maintenance);
        // Compaction inputs whose wait for the log's sync is over (the sync thread kicks).
        shared.registry.retire_durable(shared.syncer.durable());
        crate::write::clean_retired(&shared);
        if shared.options.hints {
            write_missing_hints(&shared);
        }
        // Checking a segment loaded from a hint reads all of it. While memory is short that
        // read would push what clients read out of memory, and doubled the disk reads of cold
        // GETs after an open under a cap; reads verify each record of an unchecked segment
        // themselves meanwhile, so the check waits until memory is not short.
        if !shared.cold.checking() {
            verify_hinted_segments(&shared);
        }
        if !shared.options.compaction || shared.is_poisoned() {
            continue;
        }
        // Keep going while there is work: under heavy overwrites, waiting an interval between
        // runs lets the dead bytes pile up.
        loop {
            shared.registry.retire_durable(shared.syncer.durable());
            let retire = retire_mode(&shared);
            if retire == Retire::Now {
                if let Err(e) = retire_waiting_now(&shared) {
                    if !matches!(e, crate::error::Error::Closed) {
                        tracing::error!(error = %e, "compacted segments could not be retired");
                    }
                    break;
                }
            }
            let plan = pick(&shared);
            if plan.is_empty() || shared.syncer.is_shutdown() {
                lift_stall_unless_over_bound(&shared, false);
                break;
            }
            if let Err(e) = compact(&shared, &plan, retire) {
                if matches!(e, crate::error::Error::Closed) {
                    // A close while a run waited for the log to be durable: nothing failed.
                    tracing::info!("compaction stopped by the engine's close; its inputs are kept");
                } else {
                    tracing::error!(error = %e, "compaction failed; the input segments are kept");
                }
                lift_stall_unless_over_bound(&shared, false);
                break;
            }
            lift_stall_unless_over_bound(&shared, true);
        }
    }
}

/// How a background run retires its inputs: under `EverySec` at the log's next periodic sync
/// (see `Registry::retire_when_durable`), unless the store is near its space bound, where
/// the room they take is wanted back at once (writers may be waiting for it).
pub(crate) fn retire_mode(shared: &Shared) -> Retire {
    if shared.fsync() != Fsync::EverySec {
        return Retire::Now;
    }
    let segs = shared.registry.load();
    let near_bound = crate::space::over_bound_with_work(
        &shared.options,
        &segs,
        shared.prepared.spare_allocated(),
    );
    if near_bound {
        Retire::Now
    } else {
        Retire::WhenDurable
    }
}

/// Writes a hint file for every sealed segment that lacks one.
pub(crate) fn write_missing_hints(shared: &Shared) {
    write_hints(shared, Some(shared.log.active_id()));
}

/// At close, when the active segment is sealed too.
pub(crate) fn write_missing_hints_including_active(shared: &Shared) {
    write_hints(shared, None);
}

/// True for a sealed segment whose hint file waits: compaction will take it by its dead
/// ratio (its outputs get hint files of their own), so reading all of it back to write one
/// (both checksums of every record) is work thrown away. Under pipelined
/// SETs over 100K keys every log segment is dead enough when it is sealed, and those hints
/// were more than half of this thread's time. Close writes the hints still missing; a crash
/// leaves such segments to be scanned at the next open.
pub(crate) fn hint_waits(shared: &Shared, seg: &Segment) -> bool {
    shared.options.compaction
        && crate::space::dead_ratio(seg) >= shared.options.compaction_dead_ratio
        && !shared.log.has_built_hint(seg.id)
}

fn write_hints(shared: &Shared, skip: Option<u32>) {
    let segs = shared.registry.load();
    for seg in segs.iter() {
        if seg.is_hinted() || !seg.is_sealed() || Some(seg.id) == skip || seg.is_retiring() {
            continue;
        }
        if skip.is_some() && hint_waits(shared, seg) {
            continue;
        }
        if skip.is_some() && shared.syncer.is_shutdown() {
            return;
        }
        let written = match shared.log.take_built_hint(seg.id) {
            // Collected as the records were appended: nothing to read back.
            Some(built) => crate::hint::write_hint(&shared.dir, seg, Some(built)),
            None => seg.scan(shared.cold.checking(), |_| {
                crate::hint::write_hint(&shared.dir, seg, None)
            }),
        };
        match written {
            Ok(()) => seg.mark_hinted(),
            Err(e @ crate::error::Error::Corrupt { .. }) => {
                // Damaged since it was written or opened: it never gets a hint (open scans it
                // and reports the damage), and the segments after it still get theirs.
                tracing::error!(error = %e, "segment damaged; no hint file for it");
                seg.mark_hinted();
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not write hint file; open will scan the segment");
                return;
            }
        }
    }
    shared
        .log
        .forget_built_hints(|id| segs.get(id).is_some_and(|s| !s.is_obsolete()));
}

/// Checks every segment loaded from a hint: each record's checksum, and that the hint agrees
/// with the records. Until then reads verify each record of the segment themselves.
pub(crate) fn verify_hinted_segments(shared: &Shared) {
    let segs = shared.registry.load();
    for seg in segs.iter().filter(|s| !s.is_verified() && !s.is_retiring()) {
        if shared.syncer.is_shutdown() {
            return;
        }
        match check_against_hint(shared, seg) {
            Ok(()) => seg.mark_verified(),
            Err(why) => {
                tracing::error!(
                    path = %seg.path().display(),
                    why,
                    "segment disagrees with its checksums or hint; reads keep verifying each \
                     record, and the next open scans it (restart with repair to quarantine)"
                );
                let _ = std::fs::remove_file(crate::hint::hint_path(&shared.dir, seg.id));
                // Stop checking it again and again; reads still verify every record.
                seg.mark_hinted();
                return;
            }
        }
    }
}

fn check_against_hint(shared: &Shared, seg: &Segment) -> std::result::Result<(), String> {
    let hint = crate::hint::Hint::load(&shared.dir, seg.id, seg.len())
        .map_err(|e| e.to_string())?
        .ok_or("hint file missing")?;
    let mut entries = hint.entries();
    let mut mismatch = None;
    let end = seg.scan(shared.cold.checking(), |bytes| {
        scan_records(bytes, SEGMENT_HEADER_LEN as u64, |off, h, rec| {
            if mismatch.is_some() {
                return;
            }
            match entries.next() {
                Some(Ok(e))
                    if u64::from(e.offset) == off
                        && e.header == *h
                        && e.key == format::record_key(h, rec) => {}
                _ => {
                    mismatch = Some(format!(
                        "hint entry differs from the record at offset {off}"
                    ))
                }
            }
        })
    });
    if let Some(m) = mismatch {
        return Err(m);
    }
    if entries.next().is_some() {
        return Err("hint lists records the segment does not hold".into());
    }
    match end {
        ScanEnd::Clean { end } if end == seg.len() => Ok(()),
        ScanEnd::Clean { end } => Err(format!("records end at {end}, the file at {}", seg.len())),
        ScanEnd::Torn { at, reason } | ScanEnd::Corrupt { at, reason, .. } => {
            Err(format!("{reason} at offset {at}"))
        }
    }
}
