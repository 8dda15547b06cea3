//! Checking blind overwrites afterwards.
//!
//! A blind write (`Engine::put`: SET, whatever the key held) must find the slot of the key's
//! old record. When that record is not in memory, reading it to compare keys would make the
//! writer wait for the disk, and a load of overwrites under a memory limit did little else.
//! So when exactly one slot matches the key's 40-bit fingerprint (tag and check, see `index`)
//! and its record is not in memory, `put` takes it as the key's and leaves the proof to this
//! module: the old record's key is compared off the writer's path, and its bytes are counted
//! dead only then.
//!
//! Meanwhile the index keeps the old record in a displaced slot (`Table::take_blind`) that
//! the writer's key never finds and every other key does. Should the old record hold another
//! key after all (a new key sharing an existing key's fingerprint: with `n` keys, one write of
//! a new key in `2^48 / n`), that key was never hidden: reads find it, a write or delete of
//! it takes the displaced slot as its own, and the check makes the slot a key again and logs
//! the event. Compaction checks a segment's pending entries before it rewrites the segment
//! ([`Verifier::take_segment`]), so a displaced record is never moved or dropped unchecked.
//!
//! Pending entries are kept by segment, and a segment's entries are checked together: from
//! its hint file (keys and lengths, read sequentially, no value read) when it has one, else
//! from the records themselves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::format::RecordHeader;
use crate::index::{KeyHash, Loc};

/// Most entries waiting to be checked. Beyond, `put` compares keys before it writes (reading
/// the old record), as it does for every key while memory is not short.
pub const VERIFY_PENDING_MAX: usize = 1 << 18;

/// A blind overwrite to check: the key's hash and the record it replaced.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    pub hash: KeyHash,
    pub old: Loc,
}

#[derive(Default)]
pub(crate) struct Verifier {
    /// By the segment of the old record.
    pending: Mutex<HashMap<u32, Vec<Pending>>>,
    count: AtomicUsize,
    pushes: AtomicU64,
    pub(crate) checked: AtomicU64,
    pub(crate) repaired: AtomicU64,
}

impl Verifier {
    /// Queues an entry; false (nothing queued) when the queue is full.
    pub(crate) fn push(&self, p: Pending) -> bool {
        if self.count.load(Ordering::Relaxed) >= VERIFY_PENDING_MAX {
            return false;
        }
        self.pending.lock().entry(p.old.seg).or_default().push(p);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.pushes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// True when a `push` would be refused.
    pub(crate) fn is_full(&self) -> bool {
        self.count.load(Ordering::Relaxed) >= VERIFY_PENDING_MAX
    }

    /// Entries waiting.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Takes every entry whose old record is in segment `seg` (compaction is about to
    /// rewrite it, or the checker's turn came). They count as pending until [`Verifier::done`].
    fn take_segment(&self, seg: u32) -> Vec<Pending> {
        self.pending.lock().remove(&seg).unwrap_or_default()
    }

    /// `n` taken entries are checked.
    fn done(&self, n: usize) {
        self.checked.fetch_add(n as u64, Ordering::Relaxed);
        self.count.fetch_sub(n, Ordering::Relaxed);
    }

    /// The segment with the most entries waiting, with their number, if any.
    pub(crate) fn busiest_segment(&self) -> Option<(u32, usize)> {
        self.pending
            .lock()
            .iter()
            .max_by_key(|(_, v)| v.len())
            .map(|(id, v)| (*id, v.len()))
    }

    /// Entries queued since the engine opened (a clock of blind writes still arriving).
    pub(crate) fn pushes(&self) -> u64 {
        self.pushes.load(Ordering::Relaxed)
    }

    /// Drops every entry (FLUSHALL: every key is gone, and so is every old record).
    pub(crate) fn clear(&self) {
        let mut p = self.pending.lock();
        let n: usize = p.values().map(Vec::len).sum();
        p.clear();
        self.count.fetch_sub(n, Ordering::Relaxed);
    }
}

/// What checking needs of the engine.
pub(crate) struct Env<'a> {
    pub dir: &'a std::path::Path,
    pub index: &'a crate::index::Index,
    pub registry: &'a crate::registry::Registry,
    pub verifier: &'a Verifier,
}

/// Checks every pending entry of segment `seg`. Call with the compaction lock held: a key put
/// back points into `seg`, which a compaction running meanwhile could retire.
pub(crate) fn check_segment(env: &Env<'_>, seg_id: u32) {
    let entries = env.verifier.take_segment(seg_id);
    if entries.is_empty() {
        return;
    }
    let n = entries.len();
    check_entries(env, seg_id, entries);
    env.verifier.done(n);
}

fn check_entries(env: &Env<'_>, seg_id: u32, entries: Vec<Pending>) {
    let segs = env.registry.load();
    let Some(seg) = segs.get(seg_id) else {
        // Retired without being checked: only FLUSHALL does that, and it drops every key.
        return;
    };
    // Many entries: the hint file (keys and lengths only, read in one go) beats reading each
    // record; a few: read the records.
    let hint = (entries.len() >= HINT_WORTH_ENTRIES && seg.is_hinted())
        .then(|| {
            crate::hint::Hint::load(env.dir, seg_id, seg.len())
                .ok()
                .flatten()
        })
        .flatten();
    for p in entries {
        let old = match &hint {
            Some(h) => h
                .entry_at_offset(p.old.off)
                .map(|e| (e.key.to_vec(), e.header)),
            _ => read_key(seg, p.old.off),
        };
        settle(env, &segs, p, old);
    }
}

/// A segment's entries are checked from its hint file from this many on.
const HINT_WORTH_ENTRIES: usize = 64;

/// While blind writes keep arriving, a segment's entries wait until there is about one per
/// this many bytes of the segment (at least [`HINT_WORTH_ENTRIES`]): each check of a hinted
/// segment reads and parses its whole hint file (a 16 MiB segment of 1 KB records: 16K
/// entries), so checking 64 at a time under a steady load of overwrites spent more CPU than
/// the writes themselves (measured in `docs/perf/HISTORY.md`).
const SEGMENT_BYTES_PER_BATCH_ENTRY: u64 = 32 << 10;

/// The entries of segment `seg` worth checking together while blind writes keep arriving (see
/// [`SEGMENT_BYTES_PER_BATCH_ENTRY`]).
pub(crate) fn batch_worth(registry: &crate::registry::Registry, seg: u32) -> usize {
    let seg_bytes = registry.load().get(seg).map_or(0, |s| s.len());
    usize::try_from(seg_bytes / SEGMENT_BYTES_PER_BATCH_ENTRY)
        .unwrap_or(usize::MAX)
        .max(HINT_WORTH_ENTRIES)
}

/// The key and header of the record at `off`: from the map when it is in memory, else read
/// from the file (this runs off the clients' threads, but a fault would still hold the
/// compaction lock longer than a read).
fn read_key(seg: &crate::segment::Segment, off: u32) -> Option<(Vec<u8>, RecordHeader)> {
    let off = u64::from(off);
    let head_len = crate::format::RECORD_HEADER_LEN;
    let mut head = [0u8; crate::format::RECORD_HEADER_LEN];
    if seg.resident(off, head_len as u64) {
        head.copy_from_slice(seg.bytes(off, head_len));
    } else {
        seg.read_at(off, &mut head).ok()?;
    }
    let h = RecordHeader::decode(&head).ok()?;
    let key_at = off + head_len as u64;
    let key_len = h.key_len as usize;
    let mut key = vec![0u8; key_len];
    if seg.resident(key_at, key_len as u64) {
        key.copy_from_slice(seg.bytes(key_at, key_len));
    } else {
        seg.read_at(key_at, &mut key).ok()?;
    }
    Some((key, h))
}

fn settle(
    env: &Env<'_>,
    segs: &crate::registry::SegmentMap,
    p: Pending,
    old: Option<(Vec<u8>, RecordHeader)>,
) {
    let Some((old_key, header)) = old else {
        tracing::error!(
            segment = p.old.seg,
            offset = p.old.off,
            "could not read the record a blind write replaced, to check its key; it stays in \
             the index until the next restart, found by any key but the writer's"
        );
        return;
    };
    let mut shard = env.index.shard(p.hash.shard()).write();
    let Some(i) = shard.find_displaced(p.hash, p.old) else {
        // A write or a delete of the record's key, or a flush of its database, resolved the
        // displaced slot and counted the record dead.
        return;
    };
    // The write's key is compared by its whole 128-bit hash (the slot kept 40 of its bits):
    // no need to read the new record, which compaction may have moved meanwhile. Two keys
    // with one 128-bit hash are beyond anything that happens.
    let owner = KeyHash::of_ns(header.ns, &old_key);
    if shard.settle_displaced(i, owner, header.ns) {
        collided(env.verifier, p.old);
    } else {
        segs.add_dead(p.old, header.record_len());
    }
}

/// Counts and logs a displaced record that turned out to be another key's than its writer's.
pub(crate) fn collided(verifier: &Verifier, old: Loc) {
    verifier.repaired.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        segment = old.seg,
        offset = old.off,
        "two keys share a 40-bit index fingerprint (a write of a new key meets one among 2^48 \
         / keys); the blind write of one displaced the other's slot, which is its own again"
    );
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::index::COLLIDE_PREFIX;
    use crate::{Engine, Fsync, Options};

    fn open(dir: &std::path::Path) -> Engine {
        let options = Options {
            fsync: Fsync::Never,
            segment_size_bytes: 64 * 1024,
            compaction: false,
            hints: false,
            ..Options::default()
        };
        Engine::open(dir, options).unwrap()
    }

    /// Waits (bounded) for the verify thread to check every pending blind write.
    fn settled(e: &Engine) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while e.stats().blind_writes_pending > 0 {
            assert!(Instant::now() < deadline, "blind writes never checked");
            std::thread::yield_now();
        }
    }

    /// Every key a full SCAN returns, with its value; a key returned twice must have one value.
    fn scan_all(e: &Engine) -> std::collections::HashMap<Vec<u8>, Vec<u8>> {
        let mut out = std::collections::HashMap::new();
        let mut cursor = 0;
        loop {
            cursor = e.scan(cursor, 50, |k, v| {
                let old = out.insert(k.to_vec(), v.value.to_vec());
                assert!(old.is_none_or(|o| o == v.value), "two values for one key");
            });
            if cursor == 0 {
                return out;
            }
        }
    }

    /// Writes `a`, then enough after it that the next append lands pages away from it,
    /// evicts it, holds the checks, and writes `b`, whose fingerprint is a's: b's only
    /// candidate is a's slot, on disk, so the write takes it blindly.
    fn displace(e: &Engine, a: &[u8], value_of_a: &[u8], b: &[u8]) {
        e.put(a, value_of_a, 0).unwrap();
        for i in 0..300u32 {
            e.put(format!("k{i}").as_bytes(), &[b'v'; 400], 0).unwrap();
        }
        e.evict_for_tests().unwrap();
        e.pause_verify_for_tests(true);
        e.put(b, b"value of b", 0).unwrap();
        assert_eq!(e.stats().blind_writes_pending, 1);
    }

    fn collide(name: &str) -> Vec<u8> {
        [COLLIDE_PREFIX, name.as_bytes()].concat()
    }

    #[test]
    fn a_blind_overwrite_of_a_cold_key_is_checked_later_and_counted_dead() {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path());
        for i in 0..300u32 {
            e.put(format!("k{i}").as_bytes(), &[b'v'; 400], 0).unwrap();
        }
        e.evict_for_tests().unwrap();
        let dead_before = e.stats().dead_bytes;
        e.pause_verify_for_tests(true);
        e.put(b"k17", b"new", 0).unwrap();
        let st = e.stats();
        assert_eq!(
            st.blind_writes_pending, 1,
            "taken without reading the old record"
        );
        assert_eq!(
            st.dead_bytes, dead_before,
            "not counted before it is checked"
        );
        assert_eq!(e.get(b"k17").as_deref(), Some(&b"new"[..]));
        assert_eq!(e.len(), 300);
        let scanned = scan_all(&e);
        assert_eq!(scanned.len(), 300, "the displaced old record is no key");
        assert_eq!(scanned[&b"k17"[..]], b"new");
        e.pause_verify_for_tests(false);
        settled(&e);
        let st = e.stats();
        assert_eq!(st.blind_writes_checked, 1);
        assert_eq!(st.fingerprint_collisions, 0);
        let old_record = crate::format::RECORD_HEADER_LEN + 3 + 400;
        assert_eq!(st.dead_bytes, dead_before + old_record as u64);
        assert_eq!(e.len(), 300);
    }

    #[test]
    fn a_key_whose_slot_a_colliding_blind_write_took_is_never_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (collide("a"), collide("a2"));
        {
            let e = open(dir.path());
            displace(&e, &a, b"value of a", &b);
            assert_eq!(e.get(&b).as_deref(), Some(&b"value of b"[..]));
            assert_eq!(
                e.get(&a).as_deref(),
                Some(&b"value of a"[..]),
                "its displaced record is found before the check"
            );
            assert_eq!(e.len(), 301, "counted once the check has run");
            let scanned = scan_all(&e);
            assert_eq!(scanned.get(&a).map(Vec::as_slice), Some(&b"value of a"[..]));
            assert_eq!(scanned.get(&b).map(Vec::as_slice), Some(&b"value of b"[..]));
            e.pause_verify_for_tests(false);
            settled(&e);
            assert_eq!(e.stats().fingerprint_collisions, 1);
            assert_eq!(e.get(&a).as_deref(), Some(&b"value of a"[..]));
            assert_eq!(e.get(&b).as_deref(), Some(&b"value of b"[..]));
            // Two candidates now: the next write of either compares keys, never blind.
            e.put(&a, b"a again", 0).unwrap();
            assert_eq!(e.stats().blind_writes_pending, 0);
            assert_eq!(e.get(&a).as_deref(), Some(&b"a again"[..]));
            assert_eq!(e.get(&b).as_deref(), Some(&b"value of b"[..]));
            assert_eq!(e.len(), 302);
        }
        let e = open(dir.path());
        assert_eq!(e.get(&a).as_deref(), Some(&b"a again"[..]));
        assert_eq!(e.get(&b).as_deref(), Some(&b"value of b"[..]));
    }

    #[test]
    fn a_write_and_a_delete_of_a_displaced_key_before_the_check_see_its_value() {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path());
        let (a, b, c) = (collide("p"), collide("p2"), collide("p3"));
        displace(&e, &a, b"1", &b);
        // A read-modify-write of a (INCR) sees its value: no update is lost.
        let (seen, _) = e
            .update(&a, |cur| {
                let seen = cur.map(|c| c.value.to_vec());
                (
                    crate::Update::Put {
                        value: b"2",
                        expire_at_ms: 0,
                    },
                    seen,
                )
            })
            .unwrap();
        assert_eq!(seen.as_deref(), Some(&b"1"[..]));
        assert_eq!(e.len(), 302);
        e.pause_verify_for_tests(false);
        settled(&e);
        assert_eq!(e.stats().fingerprint_collisions, 0, "the write settled it");
        assert_eq!(e.get(&a).as_deref(), Some(&b"2"[..]));
        assert_eq!(e.get(&b).as_deref(), Some(&b"value of b"[..]));

        // Again with c displacing b, then b deleted before the check.
        e.delete(&a).unwrap();
        for i in 0..300u32 {
            e.put(format!("f{i}").as_bytes(), &[b'w'; 400], 0).unwrap();
        }
        e.evict_for_tests().unwrap();
        e.pause_verify_for_tests(true);
        e.put(&c, b"value of c", 0).unwrap();
        assert_eq!(e.stats().blind_writes_pending, 1);
        // b's slot is c's now; b's record, displaced, is not counted until checked.
        assert_eq!(e.len(), 601);
        assert!(e.delete(&b).unwrap().is_some(), "b was found");
        assert_eq!(e.get(&b), None);
        assert_eq!(e.len(), 601);
        e.pause_verify_for_tests(false);
        settled(&e);
        assert_eq!(e.get(&b), None, "not brought back by the check");
        assert_eq!(e.get(&c).as_deref(), Some(&b"value of c"[..]));
        assert_eq!(e.len(), 601);
    }

    #[test]
    fn a_collision_unchecked_at_a_crash_is_resolved_by_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (collide("x"), collide("x2"));
        {
            let e = open(dir.path());
            displace(&e, &a, b"value of a", &b);
            e.sync().unwrap();
            assert_eq!(
                e.get(&a).as_deref(),
                Some(&b"value of a"[..]),
                "never hidden"
            );
            // Closed without the check: the next open reads both keys' records.
        }
        let e = open(dir.path());
        assert_eq!(e.get(&a).as_deref(), Some(&b"value of a"[..]));
        assert_eq!(e.get(&b).as_deref(), Some(&b"value of b"[..]));
    }
}
