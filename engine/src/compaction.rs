//! Background compaction: rewrite the live records of sealed segments into new segments and
//! retire the old files.
//!
//! A run holds `compaction_lock` (FLUSHALL takes it too) and goes:
//! 1. pick sealed segments by dead-byte ratio (once four are sealed; before that only those
//!    with nothing live), or by dead bytes when the whole store's disk use exceeds the allowed
//!    space amplification and the store is large enough to meet that bound;
//! 2. copy each record the index still points at into `<id>.seg.tmp` outputs, with its sequence
//!    number; copy tombstones (and expired records) only while a segment outside the run may
//!    still hold an older version of their key, so a deleted key never comes back. Inputs
//!    that hold no tombstone, flush or commit record (most, under SETs) are not read whole:
//!    one pass over the index finds the records it points at, and only those are read
//!    (`walks_index`); under random overwrites they are a small share of the inputs;
//! 3. sync the outputs, rename them to `<id>.seg`, sync the directory: from here a crash leaves
//!    duplicates with equal sequence numbers, which recovery resolves;
//! 4. switch each index entry that still points at the old record (a write that landed meanwhile
//!    wins), then retire the inputs: their files are removed once no reader holds them.
//!
//! A crash before step 3 leaves `.tmp` files, which `open` removes.
//!
//! The thread runs at `Options::background_nice`, and writers that outrun it past the space
//! bound wait for it (see `stall` and `space`). The maintenance thread runs it
//! (`background::maintenance`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{is_expired, now_ms};
use crate::error::Result;
use crate::failpoint;
use crate::format::{self, RecordHeader, SegmentKind, SEGMENT_HEADER_LEN};
use crate::index::{KeyHash, Loc};
use crate::options::Fsync;
use crate::scan::{for_each_record_at, for_each_valid_record};
use crate::segment::{sync_dir, Segment};
use crate::shared::Shared;
use crate::space::{alloc_chunk, dead_ratio, SpaceUse, AMP_PICK_DEAD_RATIO_MIN};

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

/// Sealed segments a store holds before compaction takes them by dead ratio (see [`pick`]):
/// 64 MiB at the default segment size, Redis's `auto-aof-rewrite-min-size`.
const DEAD_RATIO_MIN_SEALED: usize = 4;

/// Sealed segments worth compacting, most dead first.
///
/// Disk use counts what the files take (the active segment's and the spare's allocated chunks
/// too). Space amplification is a bound on that, so a run starts *before* the bound, early
/// enough that its outputs, which exist beside its inputs until the run ends, fit under it:
/// a run's inputs hold at most the headroom's live bytes, and never more than
/// [`RUN_OUTPUT_MAX_SEGMENTS`] of a segment (at least one segment is taken), and pressure
/// starts when the headroom falls below [`RUN_OUTPUT_RESERVE_SEGMENTS`] of a segment.
pub(crate) fn pick(shared: &Shared) -> Vec<Arc<Segment>> {
    let segs = shared.registry.load();
    let active = shared.log.active_id();
    let sealed: Vec<Arc<Segment>> = segs
        .iter()
        .filter(|s| s.is_sealed() && s.id != active && !s.is_retiring())
        .cloned()
        .collect();
    let space = SpaceUse::of(&shared.options, &segs, shared.prepared.spare_allocated());
    let segment = shared.options.segment_size_bytes as f64;
    // What may appear on disk during a run besides its outputs: a chunk of output slack, and
    // the next spare segment's first chunk if the log rolls meanwhile.
    let slack = 2.0 * alloc_chunk(&shared.options);
    let headroom = space.limit - space.disk - slack;
    // A store too small for its bound cannot meet it: the active segment, the prepared spare
    // and a run's reserve take their room whatever compaction does. Pressure there rewrote
    // mostly live segments over and over (a 15 MB store of 100K keys overwritten at 45K
    // SET/s copied each record three times before it died: 16 MiB in, 12.7 MB out, then 7.2
    // MB, 3.0 MB, 6 KB, a run every 0.6 s), so only dead-enough segments are taken.
    let fixed = (2.0 + RUN_OUTPUT_RESERVE_SEGMENTS) * segment + slack;
    let reachable = space.limit - space.live >= fixed;
    let over_amp = reachable && headroom < RUN_OUTPUT_RESERVE_SEGMENTS * segment;
    // A run's outputs wait for its inputs to be on disk. Under EverySec a sealed segment gets
    // there with the next periodic sync (the roll asks for none): until then it is left out
    // rather than have the run force a sync, unless the space bound presses (writers may be
    // waiting for this run).
    let pressed = over_amp
        || crate::space::over_bound_with_work(
            &shared.options,
            &segs,
            shared.prepared.spare_allocated(),
        );
    let wait_for_tick = shared.fsync() == Fsync::EverySec && !pressed;
    let durable = shared.syncer.durable();
    // Small runs: the log keeps growing while one runs, and its outputs stand beside its
    // inputs until it ends.
    let output_budget = headroom.min(RUN_OUTPUT_MAX_SEGMENTS * segment);
    // As Redis waits for its AOF to reach `auto-aof-rewrite-min-size` (64 MB) before any
    // rewrite: in a store of a few segments, rewriting by dead ratio copies records that the
    // next overwrites kill anyway (each 16 MiB segment of a 15 MB key space overwritten at
    // random went through three runs in 2.5 s: 7.1 MB copied, then 3.0 MB, then nothing left,
    // and the slowest replication-lag probes lined up with those runs). Until there are
    // [`DEAD_RATIO_MIN_SEALED`] sealed segments, only segments with nothing live go (removed
    // with nothing to copy), unless the space bound presses.
    let few = sealed.len() < DEAD_RATIO_MIN_SEALED;
    // Writers and compaction change live bytes while this sorts: a comparator reading them
    // afresh saw one order, then another, and the standard sort panicked ("does not correctly
    // implement a total order"), killing the maintenance thread. Sort a snapshot.
    let mut sealed: Vec<(f64, Arc<Segment>)> =
        sealed.into_iter().map(|s| (dead_ratio(&s), s)).collect();
    sealed.sort_by(|(a, _), (b, _)| b.total_cmp(a));
    let budget = shared.options.segment_size_bytes * RUN_INPUT_SEGMENTS_MAX;
    let (mut taken, mut taken_live) = (0u64, 0u64);
    // The newest sealed segment holds the keys written last, the likeliest to be written
    // again next: by dead ratio it waits for a newer one. Taken with the others, its live
    // records were copied only to die soon after (pipelined SETs over 100K keys: a fourth of
    // every run's input, 4.2 MB of 16 MiB, the latest version of 62K keys).
    let newest = sealed.iter().map(|(_, s)| s.max_seq()).max();
    let mut plan = Vec::new();
    for (r, s) in sealed {
        if wait_for_tick && s.max_seq() > durable {
            continue;
        }
        let young = Some(s.max_seq()) == newest;
        // Under space pressure take any segment worth the rewrite, but never one that is
        // mostly live: rewriting it would reclaim little and could repeat forever when the
        // bound cannot be met (a small store beside a preallocated segment).
        let by_ratio = if few {
            s.holds_nothing_live()
        } else {
            !young && r >= shared.options.compaction_dead_ratio
        };
        let wanted = by_ratio || (over_amp && r >= AMP_PICK_DEAD_RATIO_MIN);
        if !wanted && young {
            continue;
        }
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
    /// Segments rewritten.
    pub segments_in: u64,
    /// Bytes of the segments rewritten.
    pub bytes_in: u64,
    /// Bytes of the segments written in their place.
    pub bytes_out: u64,
    /// Records copied (still live, or tombstones still needed).
    pub records_copied: u64,
    /// The run found the records to copy by walking the index, reading only those, rather
    /// than reading every record of its inputs (see `walks_index`).
    pub index_walk: bool,
}

/// Compacts every sealed segment with dead bytes now, whatever the thresholds (tests, tools).
pub(crate) fn compact_all(shared: &Arc<Shared>) -> Result<RunReport> {
    retire_waiting_now(shared)?;
    let segs = shared.registry.load();
    let active = shared.log.active_id();
    let plan: Vec<Arc<Segment>> = segs
        .iter()
        .filter(|s| s.is_sealed() && s.id != active && s.dead_bytes() > 0)
        .cloned()
        .collect();
    compact(shared, &plan, Retire::Now)
}

/// When a run retires its inputs, which hold older versions of keys whose newest version may
/// not be on disk yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retire {
    /// Make the log durable and retire them before the run returns (runs a caller asked for,
    /// who expects the space back).
    Now,
    /// Leave them to the log's next sync (see `Registry::retire_when_durable`): background
    /// runs under `EverySec`, whose once-a-second sync comes anyway.
    WhenDurable,
}

/// Retires now the inputs of earlier runs still waiting for the log's next sync, making the
/// log durable for them.
///
/// # Errors
/// The fsync error, or `Closed`.
pub(crate) fn retire_waiting_now(shared: &Shared) -> Result<()> {
    if let Some(seq) = shared.registry.retiring_up_to() {
        crate::wait::wait_durable(shared, seq)?;
        shared.registry.retire_durable(shared.syncer.durable());
    }
    Ok(())
}

pub(crate) fn compact(
    shared: &Arc<Shared>,
    inputs: &[Arc<Segment>],
    retire: Retire,
) -> Result<RunReport> {
    if inputs.is_empty() {
        return Ok(RunReport::default());
    }
    let _run = shared.compaction_lock.lock();
    // FLUSHALL, or a run that took the lock first (the background thread's, beside
    // `Engine::compact_now`), may have retired some inputs while we waited: the rest still
    // go. Returning without a run here made a caller's compaction a no-op at random. Inputs
    // of an earlier run waiting to be retired have nothing left to copy.
    let inputs: Vec<Arc<Segment>> = inputs
        .iter()
        .filter(|s| !s.is_retiring())
        .cloned()
        .collect();
    // Compacted segments ignore the transaction flag, so no record of a transaction still
    // open may be copied: leave out the segments it wrote (sealed when it rolled the log).
    // One that opens from here writes only to the active segment, never an input.
    let inputs: Vec<Arc<Segment>> = match shared.log.open_txn_first_seq() {
        Some(Some(first)) => inputs.into_iter().filter(|s| s.max_seq() < first).collect(),
        _ => inputs,
    };
    if inputs.is_empty() {
        return Ok(RunReport::default());
    }
    let inputs = &inputs[..];
    shared.compaction_running.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut expired = Vec::new();
    let result = compact_locked(shared, inputs, retire, &mut expired);
    shared.compaction_running.store(false, Ordering::Relaxed);
    drop(_run);
    report_expired(shared, &expired);
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
            index_walk = r.index_walk,
            took_ms = started.elapsed().as_millis() as u64,
            "compaction finished"
        );
    }
    result
}

/// Reports the expired keys a run dropped (see [`keep_record`]) as the sweep reports its own:
/// counted in `expired_keys` and passed to `Engine::on_expired`'s hook. Called with no lock
/// of the engine held, since the hook may take locks of its own (a server's replication
/// stream, whose holder may be a write waiting for this very compaction under the space bound).
fn report_expired(shared: &Shared, expired: &[(u32, Vec<u8>)]) {
    if expired.is_empty() {
        return;
    }
    shared
        .counters
        .expired_keys
        .fetch_add(expired.len() as u64, Ordering::Relaxed);
    if let Some(hook) = shared.expired_hook.get() {
        for (ns, key) in expired {
            // A namespace no database maps to any more (SWAPDB meanwhile) is reported by the
            // database that has it now, as the sweep does.
            if let Some(db) = shared.databases.db_of(*ns) {
                hook(db, key);
            }
        }
    }
}

struct Copied {
    key_hash: KeyHash,
    ns: u32,
    from: Loc,
    to: Loc,
    len: u64,
    tombstone: bool,
}

/// `expired` collects the expired keys the run dropped from the index, for
/// [`report_expired`] once the run's lock is released.
fn compact_locked(
    shared: &Arc<Shared>,
    inputs: &[Arc<Segment>],
    retire: Retire,
    expired: &mut Vec<(u32, Vec<u8>)>,
) -> Result<RunReport> {
    let input_ids: Vec<u32> = inputs.iter().map(|s| s.id).collect();
    // A tombstone may go only if no segment outside this run holds anything older than it.
    let oldest_elsewhere = shared
        .registry
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
    report.index_walk = walks_index(shared, inputs);
    // Whether a record of a transaction was copied (see the wait before the outputs' rename).
    let mut copied_txn = false;
    let made = (|| -> Result<()> {
        // Blind overwrites of the inputs' records are checked first: a key whose fingerprint
        // collided gets its slot back, so its record is kept below.
        for seg in inputs {
            crate::verify::check_segment(&shared.verify_env(), seg.id);
        }
        let indexed = if report.index_walk {
            indexed_locs(shared, &input_ids)
        } else {
            Vec::new()
        };
        for seg in inputs {
            report.bytes_in += seg.len();
            let mut visit = |off: u64, h: &RecordHeader, rec: &[u8]| -> Result<()> {
                if !keep_record(shared, seg, off, h, rec, oldest_elsewhere, now, expired) {
                    return Ok(());
                }
                let to = append(shared, &mut outputs, rec)?;
                limiter.spent(rec.len() as u64);
                copied_txn |= h.flags & format::FLAG_TXN != 0;
                copied.push(Copied {
                    key_hash: KeyHash::of_ns(h.ns, format::record_key(h, rec)),
                    ns: h.ns,
                    from: Loc {
                        seg: seg.id,
                        off: off as u32,
                    },
                    to,
                    len: rec.len() as u64,
                    tombstone: h.is_tombstone() || h.is_flush() || h.is_txn_commit(),
                });
                Ok(())
            };
            if report.index_walk {
                let from = indexed.partition_point(|l| l.seg < seg.id);
                let to = indexed.partition_point(|l| l.seg <= seg.id);
                let offsets: Vec<u32> = indexed[from..to].iter().map(|l| l.off).collect();
                for_each_record_at(seg.bytes_from(0), &offsets, &mut visit)?;
            } else {
                let memory_short = shared.cold.checking();
                seg.scan(memory_short, |bytes| {
                    for_each_valid_record(bytes, &mut visit)
                })?;
            }
        }
        for out in &outputs {
            out.seal()?;
            failpoint::eio("compaction-sync-eio", "fdatasync", &out.path())?;
            out.sync()?;
        }
        // The copies may not reach the disk before the records they copy: a crash would
        // then recover a record without the older ones beside it, a state the store never
        // had. Inputs are sealed and their sync was asked for when the log rolled, so this
        // rarely waits. A copied record of a transaction counts only with its commit record,
        // which may not be on disk yet: it must be before the copies (which ignore the flag)
        // are.
        let needed = if copied_txn {
            shared.log.last_seq()
        } else {
            inputs.iter().map(|s| s.max_seq()).max().unwrap_or(0)
        };
        crate::wait::wait_durable(shared, needed)?;
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
        shared.registry.register(seg.clone());
    }
    let segs = shared.registry.load();
    for c in &copied {
        report.records_copied += 1;
        let out = segs.get(c.to.seg).expect("output registered");
        if c.tombstone {
            // Kept because an older version may still exist: live until that is gone, so a
            // segment of needed tombstones is not picked again and again.
            continue;
        }
        let mut shard = shared.index.shard(c.key_hash.shard()).write();
        let i = shard
            .find_loc(c.key_hash.tag(), c.from)
            .filter(|&i| !shard.is_displaced(i) || settle(shared, &mut shard, i, c));
        match i {
            // The same record moved: it keeps its expiry mark and access clock.
            Some(i) => shard.move_to(i, c.to),
            None => out.add_dead(c.len),
        }
    }
    failpoint::crash("compaction-after-switch");
    // The inputs hold older versions of keys whose newest version may still be only in the page
    // cache (not yet synced under EverySec or Never, or in flight under Always). Deleting the
    // inputs first would let a power cut lose the key entirely, a state it never had. So the log
    // is made durable up to now before any input file goes (found by the engine_damage fuzzer).
    // The same for records that a transaction's writes made dead (so they were not
    // copied): while it is open, its commit retires the inputs, once durable.
    // A background run under `EverySec` leaves that to the next periodic sync.
    let (deferred, last_seq) = shared.log.retire_after_txn(&input_ids);
    if !deferred {
        if retire == Retire::WhenDurable && shared.syncer.durable() < last_seq {
            shared.registry.retire_when_durable(last_seq, input_ids);
        } else {
            crate::wait::wait_durable(shared, last_seq)?;
            shared.registry.retire(&input_ids);
        }
    }
    drop(segs);
    failpoint::crash("compaction-after-retire");
    Ok(report)
}

/// A run finds its inputs' live records through the index (one sequential pass over it,
/// then a read of each record found) when the index takes at most this many bytes per byte
/// of input; otherwise it reads every record of the inputs and looks each up (a random
/// access into the index per record, dead or alive, and a checksum of every byte).
const INDEX_WALK_BYTES_PER_INPUT_BYTE: u64 = 4;

/// True when a run over `inputs` should find their live records by walking the index rather
/// than reading every record (see [`INDEX_WALK_BYTES_PER_INPUT_BYTE`]). Only for inputs that
/// hold no record the index does not point at but the run may have to keep (tombstones,
/// flush records, commits): a walk of the index cannot find those.
///
/// Under random overwrites most records of a segment are dead by the time it is compacted
/// (pipelined SETs over 100K keys: its 16 MiB held the newest version of a few hundred),
/// and looking every one up took 15% of the server's CPU.
///
/// Not while memory is short: the inputs' pages may then be out of memory, and a walk's reads,
/// one record here and one there through a map advised for random access, would each wait for
/// the disk, where a full read streams the file with read-ahead (and drops what it brought in).
fn walks_index(shared: &Shared, inputs: &[Arc<Segment>]) -> bool {
    if shared.cold.checking() || inputs.iter().any(|s| s.may_hold_unindexed()) {
        return false;
    }
    let input_bytes: u64 = inputs.iter().map(|s| s.len()).sum();
    shared.index.memory_bytes() <= input_bytes.saturating_mul(INDEX_WALK_BYTES_PER_INPUT_BYTE)
}

/// Where the index points into the segments `ids`: keys and displaced records, sorted by
/// segment and offset. Nothing points into a sealed segment afterwards that did not then
/// (writes go to the active segment, and this run holds the compaction lock), so any record
/// the run must keep is among them; some may be dead by the time the run reads them, which
/// [`keep_record`] sees.
fn indexed_locs(shared: &Shared, ids: &[u32]) -> Vec<Loc> {
    let (lo, hi) = (
        ids.iter().copied().min().unwrap_or(0),
        ids.iter().copied().max().unwrap_or(0),
    );
    let mut locs = Vec::new();
    for i in 0..crate::index::SHARD_COUNT {
        shared.index.shard(i).read().locs_in(
            |seg| (lo..=hi).contains(&seg) && ids.contains(&seg),
            &mut locs,
        );
    }
    locs.sort_unstable_by_key(|l| (l.seg, l.off));
    locs.dedup();
    locs
}

/// Settles displaced slot `i` (see `Table::take_blind`), whose record compaction read: the
/// blind write checked here rather than by `verify`, which finds the segment retired. True
/// when the record is another key's, whose slot it is again.
fn settle_displaced(
    shared: &Shared,
    shard: &mut crate::index::Table,
    i: usize,
    owner: KeyHash,
    ns: u32,
    at: Loc,
) -> bool {
    let kept = shard.settle_displaced(i, owner, ns);
    if kept {
        crate::verify::collided(&shared.verifier, at);
    }
    kept
}

/// [`settle_displaced`] for a copied record, displaced by a blind write after it was copied.
fn settle(shared: &Shared, shard: &mut crate::index::Table, i: usize, c: &Copied) -> bool {
    settle_displaced(shared, shard, i, c.key_hash, c.ns, c.from)
}

/// True when the record must survive compaction. An expired key it drops is pushed on
/// `expired` (for `Engine::on_expired`'s hook) after `Engine::on_expiring`'s hook ran under
/// the key's shard lock, as the sweep does: a primary sends its DEL to replicas, which keep
/// expired keys until their primary's DEL arrives.
#[allow(clippy::too_many_arguments)]
fn keep_record(
    shared: &Shared,
    seg: &Segment,
    off: u64,
    h: &RecordHeader,
    rec: &[u8],
    oldest_elsewhere: u64,
    now: u64,
    expired: &mut Vec<(u32, Vec<u8>)>,
) -> bool {
    let older_may_exist = oldest_elsewhere < h.seq;
    if h.is_flush() {
        // Needed only while a segment older than the flush survives.
        return older_may_exist;
    }
    if h.is_tombstone() {
        return older_may_exist;
    }
    if h.is_txn_commit() {
        // Needed while a log segment may hold its transaction's records (all older).
        return older_may_exist;
    }
    let key = format::record_key(h, rec);
    let kh = KeyHash::of_ns(h.ns, key);
    let here = Loc {
        seg: seg.id,
        off: off as u32,
    };
    let mut shard = shared.index.shard(kh.shard()).write();
    let Some(i) = shard.find_loc(kh.tag(), here) else {
        return false;
    };
    if shared.databases.is_retired(h.ns) {
        // A namespace FLUSHDB retired, whose slots the maintenance thread has not all removed
        // yet: its flush record voids this one, and may itself go in this run.
        shard.remove_at(i, h.ns);
        return false;
    }
    if shard.is_displaced(i) && !settle_displaced(shared, &mut shard, i, kh, h.ns, here) {
        // The old record of a blind write of its own key: dead.
        return false;
    }
    if !is_expired(h.expire_at_ms, now)
        || older_may_exist
        || !shared
            .expire_keys
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        return true;
    }
    // Expired, and nothing older can resurface: forget it here, so the index never points
    // into a retired segment. This is the key's expiry as much as the sweep's removal would
    // have been: reported the same way (a primary's replicas get its DEL; without it they
    // kept the key for ever).
    shard.remove_at(i, h.ns);
    let locked_hook = shared.expiring_hook.get();
    if let Some(hook) = locked_hook {
        if let Some(db) = shared.databases.db_of(h.ns) {
            hook(db, key);
        }
    }
    expired.push((h.ns, key.to_vec()));
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
        let id = shared.registry.allocate_id()?;
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
    out.note_flags(h.flags);
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
