//! Background compaction: rewrite the live records of sealed segments into new segments and
//! retire the old files.
//!
//! A run holds `compaction_lock` (FLUSHALL takes it too) and goes:
//! 1. pick sealed segments by dead-byte ratio, or by dead bytes when the whole store's disk use
//!    exceeds the allowed space amplification;
//! 2. copy each record the index still points at into `<id>.seg.tmp` outputs, with its sequence
//!    number; copy tombstones (and expired records) only while a segment outside the run may
//!    still hold an older version of their key, so a deleted key never comes back;
//! 3. sync the outputs, rename them to `<id>.seg`, sync the directory: from here a crash leaves
//!    duplicates with equal sequence numbers, which recovery resolves;
//! 4. switch each index entry that still points at the old record (a write that landed meanwhile
//!    wins), then retire the inputs: their files are removed once no reader holds them.
//!
//! A crash before step 3 leaves `.tmp` files, which `open` removes.
//!
//! The thread runs at `Options::background_nice`, and writers that outrun it past the space
//! bound wait for it (see [`crate::stall`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{is_expired, now_ms};
use crate::engine::Shared;
use crate::error::Result;
use crate::failpoint;
use crate::format::{self, RecordHeader, SegmentKind, SEGMENT_HEADER_LEN};
use crate::index::{KeyHash, Loc};
use crate::recovery::{scan_records, ScanEnd};
use crate::segment::{sync_dir, Segment, ALLOC_CHUNK};

/// Index slots the active-expiry sweep examines per maintenance cycle (all 10M slots of a big
/// store in about a minute at the default interval).
const EXPIRE_SLOTS_PER_CYCLE: usize = 64 * 1024;

/// When writers are held back (see [`crate::stall`]): disk use is within a chunk and a run's
/// output of the space bound (or past it), the store holds at least
/// [`STALL_MIN_LIVE_SEGMENTS`] of live data, and some sealed segment is dead enough for
/// compaction to take under pressure.
fn over_bound_with_work(shared: &Shared) -> bool {
    let segs = shared.segments.load();
    let space = SpaceUse::of(shared, &segs);
    let work = segs
        .iter()
        .any(|s| s.is_sealed() && dead_ratio(s) >= AMP_PICK_DEAD_RATIO_MIN);
    let segment = shared.options.segment_size_bytes as f64;
    // Room for the chunk a writer may add before it sees the stall, and for the output of
    // the run in progress (up to a segment's live bytes when a run takes its one segment),
    // which the segment map does not list until the run ends.
    let room = alloc_chunk(shared) + segment;
    work && space.live >= STALL_MIN_LIVE_SEGMENTS * segment && space.disk + room > space.limit
}

/// What the store takes on disk (every segment's allocated chunks and the prepared spare's)
/// and holds live, and the space bound that sets: as both [`pick`] and the write stall see it.
struct SpaceUse {
    disk: f64,
    live: f64,
    limit: f64,
}

impl SpaceUse {
    fn of(shared: &Shared, segs: &crate::engine::SegmentMap) -> SpaceUse {
        let (mut disk, mut live) = (shared.spare_allocated(), 0u64);
        for s in segs.iter() {
            disk += s.allocated();
            live += s.live_bytes();
        }
        SpaceUse {
            disk: disk as f64,
            live: live as f64,
            limit: shared.options.compaction_space_amplification_max * live.max(1) as f64,
        }
    }
}

/// The share of a segment's bytes that is dead.
fn dead_ratio(s: &Segment) -> f64 {
    (s.len() - s.live_bytes()) as f64 / s.len().max(1) as f64
}

/// How much a segment file grows at a time.
fn alloc_chunk(shared: &Shared) -> f64 {
    ALLOC_CHUNK.min(shared.options.segment_size_bytes) as f64
}

/// Writers are held back only for stores of at least this many segments of live data. In a
/// smaller one the active segment, the spare and one compaction output alone can exceed the
/// bound, and stalling would make every write wait for rewrites that cannot meet it.
const STALL_MIN_LIVE_SEGMENTS: f64 = 8.0;

/// Called as the log grows (with the log lock held: takes no lock the log's writers wait on).
pub(crate) fn stall_writers_if_over_bound(shared: &Shared) {
    if over_bound_with_work(shared) {
        shared.write_stall.set();
    }
}

/// Called by the maintenance thread after a run, and when it finds no run worth doing.
fn lift_stall_unless_over_bound(shared: &Shared, work_left: bool) {
    if !work_left || !over_bound_with_work(shared) {
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

/// Under space pressure, the least dead share a segment must have to be rewritten.
const AMP_PICK_DEAD_RATIO_MIN: f64 = 0.2;

/// Most input bytes one run takes, in segment sizes.
const RUN_INPUT_SEGMENTS_MAX: u64 = 8;

/// Under the space bound, the room kept free for a run's outputs and for what the log writes
/// while the run goes, in segment sizes. With 1.0 the sampled peak reached 1.48-1.51x live
/// data on a 1.5x bound (write amplification 2.13); 1.25 gave 1.42-1.46x at 2.28, and 1.5
/// gave 1.43-1.44x at 2.42 (`flin-engine-churn --keys 1000000 --passes 4 --rate 300000`).
const RUN_OUTPUT_RESERVE_SEGMENTS: f64 = 1.25;

/// Most live bytes one run copies, in segment sizes (a run takes at least one segment): half
/// the reserve, leaving the other half for the log's growth during the run.
const RUN_OUTPUT_MAX_SEGMENTS: f64 = 0.5;

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
            crate::engine::expire_sweep(&shared, &mut expire_cursor, EXPIRE_SLOTS_PER_CYCLE);
            next_sweep = Instant::now() + shared.options.compaction_interval;
        }
        if shared.options.hints {
            write_missing_hints(&shared);
        }
        verify_hinted_segments(&shared);
        if !shared.options.compaction || shared.is_poisoned() {
            continue;
        }
        // Keep going while there is work: under heavy overwrites, waiting an interval between
        // runs lets the dead bytes pile up.
        loop {
            let plan = pick(&shared);
            if plan.is_empty() || shared.syncer.is_shutdown() {
                lift_stall_unless_over_bound(&shared, false);
                break;
            }
            if let Err(e) = compact(&shared, &plan) {
                tracing::error!(error = %e, "compaction failed; the input segments are kept");
                lift_stall_unless_over_bound(&shared, false);
                break;
            }
            lift_stall_unless_over_bound(&shared, true);
        }
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

fn write_hints(shared: &Shared, skip: Option<u32>) {
    let segs = shared.segments.load();
    for seg in segs.iter() {
        if seg.is_hinted() || !seg.is_sealed() || Some(seg.id) == skip || seg.is_obsolete() {
            continue;
        }
        if skip.is_some() && shared.syncer.is_shutdown() {
            return;
        }
        match crate::hint::write_hint(&shared.dir, seg) {
            Ok(()) => seg.mark_hinted(),
            Err(e @ crate::Error::Corrupt { .. }) => {
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
}

/// Checks every segment loaded from a hint: each record's checksum, and that the hint agrees
/// with the records. Until then reads verify each record of the segment themselves.
pub(crate) fn verify_hinted_segments(shared: &Shared) {
    let segs = shared.segments.load();
    for seg in segs.iter().filter(|s| !s.is_verified() && !s.is_obsolete()) {
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
    let end = scan_records(
        seg.bytes_from(0),
        SEGMENT_HEADER_LEN as u64,
        |off, h, rec| {
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
        },
    );
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

/// Sealed segments worth compacting, most dead first.
///
/// Disk use counts what the files take (the active segment's and the spare's allocated chunks
/// too). Space amplification is a bound on that, so a run starts *before* the bound, early
/// enough that its outputs, which exist beside its inputs until the run ends, fit under it:
/// a run's inputs hold at most the headroom's live bytes, and never more than
/// [`RUN_OUTPUT_MAX_SEGMENTS`] of a segment (at least one segment is taken), and pressure
/// starts when the headroom falls below [`RUN_OUTPUT_RESERVE_SEGMENTS`] of a segment.
pub(crate) fn pick(shared: &Shared) -> Vec<Arc<Segment>> {
    let segs = shared.segments.load();
    let active = shared.log.active_id();
    let mut sealed: Vec<Arc<Segment>> = segs
        .iter()
        .filter(|s| s.is_sealed() && s.id != active)
        .cloned()
        .collect();
    let space = SpaceUse::of(shared, &segs);
    let segment = shared.options.segment_size_bytes as f64;
    // What may appear on disk during a run besides its outputs: a chunk of output slack, and
    // the next spare segment's first chunk if the log rolls meanwhile.
    let slack = 2.0 * alloc_chunk(shared);
    let headroom = space.limit - space.disk - slack;
    let over_amp = headroom < RUN_OUTPUT_RESERVE_SEGMENTS * segment;
    // Small runs: the log keeps growing while one runs, and its outputs stand beside its
    // inputs until it ends.
    let output_budget = headroom.min(RUN_OUTPUT_MAX_SEGMENTS * segment);
    sealed.sort_by(|a, b| dead_ratio(b).total_cmp(&dead_ratio(a)));
    let budget = shared.options.segment_size_bytes * RUN_INPUT_SEGMENTS_MAX;
    let (mut taken, mut taken_live) = (0u64, 0u64);
    let mut plan = Vec::new();
    for s in sealed {
        let r = dead_ratio(&s);
        // Under space pressure take any segment worth the rewrite, but never one that is
        // mostly live: rewriting it would reclaim little and could repeat forever when the
        // bound cannot be met (a small store beside a preallocated segment).
        let wanted =
            r >= shared.options.compaction_dead_ratio || (over_amp && r >= AMP_PICK_DEAD_RATIO_MIN);
        let fits =
            taken + s.len() <= budget && (taken_live + s.live_bytes()) as f64 <= output_budget;
        if !wanted || (!plan.is_empty() && !fits) {
            break;
        }
        taken += s.len();
        taken_live += s.live_bytes();
        plan.push(s);
    }
    plan
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    pub segments_in: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub records_copied: u64,
}

/// Compacts every sealed segment with dead bytes now, whatever the thresholds (tests, tools).
pub(crate) fn compact_all(shared: &Arc<Shared>) -> Result<RunReport> {
    let segs = shared.segments.load();
    let active = shared.log.active_id();
    let plan: Vec<Arc<Segment>> = segs
        .iter()
        .filter(|s| s.is_sealed() && s.id != active && s.dead_bytes() > 0)
        .cloned()
        .collect();
    compact(shared, &plan)
}

pub(crate) fn compact(shared: &Arc<Shared>, inputs: &[Arc<Segment>]) -> Result<RunReport> {
    if inputs.is_empty() {
        return Ok(RunReport::default());
    }
    let _run = shared.compaction_lock.lock();
    // FLUSHALL may have retired the inputs while we waited for the lock.
    if inputs.iter().any(|s| s.is_obsolete()) {
        return Ok(RunReport::default());
    }
    shared.compaction_running.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let result = compact_locked(shared, inputs);
    shared.compaction_running.store(false, Ordering::Relaxed);
    if let Ok(r) = &result {
        let reclaimed = r.bytes_in.saturating_sub(r.bytes_out);
        shared.counters.compactions.fetch_add(1, Ordering::Relaxed);
        shared
            .counters
            .compaction_bytes_written
            .fetch_add(r.bytes_out, Ordering::Relaxed);
        shared
            .counters
            .compaction_bytes_reclaimed
            .fetch_add(reclaimed, Ordering::Relaxed);
        tracing::info!(
            segments_in = r.segments_in,
            bytes_in = r.bytes_in,
            bytes_out = r.bytes_out,
            bytes_reclaimed = reclaimed,
            records = r.records_copied,
            took_ms = started.elapsed().as_millis() as u64,
            "compaction finished"
        );
    }
    result
}

struct Copied {
    key_hash: KeyHash,
    from: Loc,
    to: Loc,
    len: u64,
    tombstone: bool,
}

fn compact_locked(shared: &Arc<Shared>, inputs: &[Arc<Segment>]) -> Result<RunReport> {
    let input_ids: Vec<u32> = inputs.iter().map(|s| s.id).collect();
    // A tombstone may go only if no segment outside this run holds anything older than it.
    let oldest_elsewhere = shared
        .segments
        .load()
        .iter()
        .filter(|s| !input_ids.contains(&s.id))
        .map(|s| s.min_seq())
        .filter(|&m| m != 0)
        .min()
        .unwrap_or(u64::MAX);
    let now = now_ms();
    let mut outputs: Vec<Arc<Segment>> = Vec::new();
    let mut copied: Vec<Copied> = Vec::new();
    let mut report = RunReport {
        segments_in: inputs.len() as u64,
        ..RunReport::default()
    };
    let mut limiter = RateLimiter::new(shared.options.compaction_rate_bytes_per_sec);
    let made = (|| -> Result<()> {
        for seg in inputs {
            report.bytes_in += seg.len();
            for_each_record(seg, &mut |off, h, rec| {
                if !keep_record(shared, seg, off, h, rec, oldest_elsewhere, now) {
                    return Ok(());
                }
                let to = append(shared, &mut outputs, rec)?;
                limiter.spent(rec.len() as u64);
                copied.push(Copied {
                    key_hash: KeyHash::of(format::record_key(h, rec)),
                    from: Loc {
                        seg: seg.id,
                        off: off as u32,
                    },
                    to,
                    len: rec.len() as u64,
                    tombstone: h.is_tombstone() || h.is_flush(),
                });
                Ok(())
            })?;
        }
        for out in &outputs {
            out.seal()?;
            failpoint::eio("compaction-sync-eio", "fdatasync", &out.path())?;
            out.sync()?;
        }
        failpoint::crash("compaction-before-rename");
        for out in &outputs {
            out.rename(shared.dir.join(format::segment_file_name(out.id)))?;
        }
        failpoint::eio("compaction-dir-sync-eio", "fsync directory", &shared.dir)?;
        sync_dir(&shared.dir)?;
        failpoint::crash("compaction-after-rename");
        Ok(())
    })();
    if let Err(e) = made {
        for out in &outputs {
            out.mark_obsolete();
        }
        return Err(e);
    }
    for out in &outputs {
        out.mark_sealed();
        report.bytes_out += out.len();
    }
    for seg in &outputs {
        shared.register(seg.clone());
    }
    let segs = shared.segments.load();
    for c in &copied {
        report.records_copied += 1;
        let out = segs.get(c.to.seg).expect("output registered");
        if c.tombstone {
            // Kept because an older version may still exist: live until that is gone, so a
            // segment of needed tombstones is not picked again and again.
            continue;
        }
        let mut shard = shared.index.shard(c.key_hash.shard()).write();
        let i = shard.find(c.key_hash.tag(), |l| l == c.from);
        match i {
            Some(i) => shard.set(i, c.to, false),
            None => out.add_dead(c.len),
        }
    }
    failpoint::crash("compaction-after-switch");
    // The inputs hold older versions of keys whose newest version may still be only in the page
    // cache (not yet synced under EverySec or Never, or in flight under Always). Deleting the
    // inputs first would let a power cut lose the key entirely, a state it never had. So the log
    // is made durable up to now before any input file goes (found by the engine_damage fuzzer).
    crate::sync::wait_durable(shared, shared.log.last_seq())?;
    shared.retire(&input_ids);
    drop(segs);
    failpoint::crash("compaction-after-retire");
    Ok(report)
}

type RecordFn<'a> = dyn FnMut(u64, &RecordHeader, &[u8]) -> Result<()> + 'a;

/// Calls `f` for every valid record of a sealed segment, stepping over damage (recovery's
/// repair rewrites segments without theirs, so only a segment damaged since open has any);
/// stops at the first error `f` returns.
fn for_each_record(seg: &Segment, f: &mut RecordFn<'_>) -> Result<()> {
    let bytes = seg.bytes_from(0);
    let mut start = SEGMENT_HEADER_LEN as u64;
    loop {
        let mut failure = None;
        let end = scan_records(bytes, start, |off, h, rec| {
            if failure.is_none() {
                failure = f(off, h, rec).err();
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        match end {
            ScanEnd::Corrupt { next_valid, .. } => start = next_valid,
            ScanEnd::Clean { .. } | ScanEnd::Torn { .. } => return Ok(()),
        }
    }
}

/// True when the record must survive compaction.
fn keep_record(
    shared: &Shared,
    seg: &Segment,
    off: u64,
    h: &RecordHeader,
    rec: &[u8],
    oldest_elsewhere: u64,
    now: u64,
) -> bool {
    let older_may_exist = oldest_elsewhere < h.seq;
    if h.is_flush() {
        // Needed only while a segment older than the flush survives.
        return older_may_exist;
    }
    if h.is_tombstone() {
        return older_may_exist;
    }
    let key = format::record_key(h, rec);
    let kh = KeyHash::of(key);
    let here = Loc {
        seg: seg.id,
        off: off as u32,
    };
    let mut shard = shared.index.shard(kh.shard()).write();
    let Some(i) = shard.find(kh.tag(), |l| l == here) else {
        return false;
    };
    if !is_expired(h.expire_at_ms, now) || older_may_exist {
        return true;
    }
    // Expired, and nothing older can resurface: forget it here, so the index never points
    // into a retired segment.
    shard.remove_at(i);
    false
}

/// Appends a whole record to the current output, opening a new one when it is full.
fn append(shared: &Shared, outputs: &mut Vec<Arc<Segment>>, rec: &[u8]) -> Result<Loc> {
    let need = rec.len() as u64;
    let full = outputs.last().is_none_or(|o| o.len() + need > o.capacity());
    if full {
        if let Some(last) = outputs.last() {
            last.seal()?;
        }
        let id = shared.allocate_segment_id()?;
        let tmp_path = shared
            .dir
            .join(format!("{}.tmp", format::segment_file_name(id)));
        let capacity = shared
            .options
            .segment_size_bytes
            .max(SEGMENT_HEADER_LEN as u64 + need);
        let seg = Segment::create(tmp_path, id, SegmentKind::Compacted, capacity)?;
        // Registered only after the copy is complete and renamed; nothing reads it before.
        outputs.push(Arc::new(seg));
    }
    let out = outputs.last().expect("an output exists");
    let off = out.len();
    // Grown a chunk at a time (so the output takes about the disk its records need while the
    // run's inputs still exist), each chunk faulted in at once rather than page by page.
    if out.reserve(off + need)? {
        out.populate_to(out.allocated());
    }
    // SAFETY: the compaction thread is the only writer of its outputs, and nothing reads them
    // before they are registered.
    unsafe { out.write_at(off, rec) };
    out.set_len(off + need);
    let h = crate::format::trusted_header(rec);
    out.note_seq(h.seq);
    Ok(Loc {
        seg: out.id,
        off: off as u32,
    })
}

/// Paces compaction's writes to a byte rate (0 = unlimited). Sleeping here is pacing, not
/// synchronisation: nothing waits on it.
struct RateLimiter {
    bytes_per_sec: u64,
    started: Instant,
    spent: u64,
}

impl RateLimiter {
    fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            bytes_per_sec,
            started: Instant::now(),
            spent: 0,
        }
    }

    fn spent(&mut self, bytes: u64) {
        if self.bytes_per_sec == 0 {
            return;
        }
        self.spent += bytes;
        let due = Duration::from_secs_f64(self.spent as f64 / self.bytes_per_sec as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}
