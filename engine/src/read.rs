//! The read path: lookups of one key or several at one instant, prefetching, SCAN and
//! RANDOMKEY. A read takes its key's shard read lock, finds the slots whose tag matches, checks
//! the key against the record in the mapped segment and hands the caller the value in place.
//! No system call, and never a wait behind an fsync.

use crate::clock::{expired_now, is_expired, now_ms};
use crate::format::{self, RecordHeader};
use crate::index::{KeyHash, Loc, Table, SHARD_COUNT};
use crate::registry::SegmentMap;
use crate::shared::Shared;

/// A live value, as a read sees it. `value` borrows the mapped segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The value's bytes.
    pub value: &'a [u8],
    /// Expiry as Unix time in milliseconds; 0 = never.
    pub expire_at_ms: u64,
}

/// Position of a scan (`Engine::scan`): 0 starts a scan, and a scan that returns 0 is complete.
pub type ScanCursor = u64;

/// Most keys one prefetch (`Engine::prefetch`) looks at: enough to keep a core's outstanding
/// memory reads busy, few enough that the first prefetched lines are still in cache when used.
pub const PREFETCH_BATCH: usize = 32;

/// Calls `f` with the key's live value (see `Engine::get_with`); a hit stamps the key's
/// access clock when `touch`.
pub(crate) fn get_with<R>(
    sh: &Shared,
    ns: u32,
    key: &[u8],
    touch: bool,
    f: impl FnOnce(Option<Entry<'_>>) -> R,
) -> R {
    let h = KeyHash::of_ns(ns, key);
    let shard = sh.index.shard(h.shard()).read();
    // Load the registry after taking the shard lock: every segment the shard points at was
    // registered before the write that made it point there released the lock.
    let segs = sh.registry.load();
    let mut hit = None;
    let slot = shard.find(h, |loc| {
        let Some((hdr, rec)) = segs.record(loc) else {
            return false;
        };
        let same = hdr.ns == ns && format::record_key(&hdr, rec) == key;
        if same {
            hit = Some((hdr, rec));
        }
        same
    });
    match (hit, slot) {
        (Some((hdr, rec)), Some(i)) if !expired_now(hdr.expire_at_ms) => {
            if touch {
                shard.touch(i, sh.access_clock());
            }
            f(Some(Entry {
                value: format::record_value(&hdr, rec),
                expire_at_ms: hdr.expire_at_ms,
            }))
        }
        _ => f(None),
    }
}

/// The sequence number of the key's live record, or `None` (see `Engine::version`).
pub(crate) fn version(sh: &Shared, ns: u32, key: &[u8]) -> Option<u64> {
    with_current(sh, ns, key, |_, _, current| {
        current
            .filter(|(_, hdr, _)| !expired_now(hdr.expire_at_ms))
            .map(|(_, hdr, _)| hdr.seq)
    })
}

/// True when the key has a record, live or past its expiry but not yet removed (see
/// `Db::holds`).
pub(crate) fn holds(sh: &Shared, ns: u32, key: &[u8]) -> bool {
    with_current(sh, ns, key, |_, _, current| current.is_some())
}

/// Calls `f` with the key's shard (read-locked), its slot there and the record it points at
/// (see [`find_current`]): a lookup that changes nothing but the access clock.
pub(crate) fn with_current<R>(
    sh: &Shared,
    ns: u32,
    key: &[u8],
    f: impl FnOnce(&Table, Option<usize>, Current<'_>) -> R,
) -> R {
    let h = KeyHash::of_ns(ns, key);
    let shard = sh.index.shard(h.shard()).read();
    let segs = sh.registry.load();
    let (slot, current) = find_current(&shard, &segs, ns, key, h);
    f(&shard, slot, current)
}

/// Brings the slots and records of `keys` into the CPU cache (see `Engine::prefetch`).
pub(crate) fn prefetch(sh: &Shared, ns: u32, keys: &[&[u8]]) {
    let mut hashes = [KeyHash::of(b""); PREFETCH_BATCH];
    let n = keys.len().min(PREFETCH_BATCH);
    for (h, key) in hashes.iter_mut().zip(keys) {
        *h = KeyHash::of_ns(ns, key);
    }
    let segs = sh.registry.load();
    prefetch_keys(&hashes[..n], &segs, |h| sh.index.shard(h.shard()).read());
}

/// Calls `f` with several keys' live values read at one instant (see `Engine::get_many_with`).
pub(crate) fn get_many_with<R>(
    sh: &Shared,
    ns: u32,
    keys: &[&[u8]],
    touch: bool,
    f: impl FnOnce(&[Option<Entry<'_>>]) -> R,
) -> R {
    let hashes: Vec<KeyHash> = keys.iter().map(|k| KeyHash::of_ns(ns, k)).collect();
    let shard_nos = distinct_shards(&hashes);
    // Ascending shard order, as every holder of several shard locks takes them.
    let guards: Vec<_> = shard_nos
        .iter()
        .map(|&i| sh.index.shard(i).read())
        .collect();
    let segs = sh.registry.load();
    let entries: Vec<Option<Entry<'_>>> = find_all(
        &guards,
        &shard_nos,
        |_| ns,
        keys,
        &hashes,
        &segs,
        touch.then(|| sh.access_clock()),
    )
    .into_iter()
    .map(live_entry)
    .collect();
    f(&entries)
}

/// One batch of a scan over the live keys (see `Engine::scan`).
pub(crate) fn scan(
    sh: &Shared,
    ns: u32,
    cursor: ScanCursor,
    count: usize,
    mut f: impl FnMut(&[u8], Entry<'_>),
) -> ScanCursor {
    let count = count.max(1);
    let mut shard_no = (cursor >> 32) as usize;
    let mut tag_from = cursor as u32;
    let mut seen = 0usize;
    let now = now_ms();
    while shard_no < SHARD_COUNT {
        let shard = sh.index.shard(shard_no).read();
        let segs = sh.registry.load();
        let mut tags = shard.tags_from(tag_from);
        // Take whole groups of equal tags so a resumed scan never splits one.
        let mut cut = tags.len();
        let want = count - seen;
        if tags.len() > want {
            tags.select_nth_unstable_by_key(want, |t| t.0);
            let boundary = tags[want].0;
            tags.retain(|t| t.0 < boundary);
            tags.sort_unstable_by_key(|t| t.0);
            cut = tags.len();
            for &(_, i) in &tags {
                emit(&shard, &segs, ns, i, now, &mut f);
            }
            if boundary == tag_from || cut == 0 {
                // One tag group larger than `count`: emit it whole and move past it.
                let group: Vec<usize> = shard
                    .tags_from(boundary)
                    .into_iter()
                    .filter(|t| t.0 == boundary)
                    .map(|t| t.1)
                    .collect();
                for i in group {
                    emit(&shard, &segs, ns, i, now, &mut f);
                }
                return next_cursor(shard_no, boundary);
            }
            return (shard_no as u64) << 32 | u64::from(boundary);
        }
        for &(_, i) in &tags {
            emit(&shard, &segs, ns, i, now, &mut f);
        }
        seen += cut;
        shard_no += 1;
        tag_from = 0;
        if seen >= count {
            break;
        }
    }
    if shard_no >= SHARD_COUNT {
        0
    } else {
        (shard_no as u64) << 32
    }
}

/// A random live key (see `Engine::random_key`).
pub(crate) fn random_key(sh: &Shared, ns: u32, mut random: impl FnMut() -> u64) -> Option<Vec<u8>> {
    let now = now_ms();
    if sh.index.ns_len(ns) == 0 {
        return None;
    }
    for _ in 0..64 {
        let r = random();
        let start = (r >> 56) as usize;
        for k in 0..SHARD_COUNT {
            let shard = sh.index.shard((start + k) % SHARD_COUNT).read();
            let Some(i) = shard.occupied_from(r as usize) else {
                continue;
            };
            let segs = sh.registry.load();
            match segs.record(shard.loc(i)) {
                Some((hdr, rec)) if hdr.ns == ns && !is_expired(hdr.expire_at_ms, now) => {
                    return Some(format::record_key(&hdr, rec).to_vec());
                }
                _ => break,
            }
        }
    }
    // A namespace with few of the keys: random slots rarely land in it. Take the first
    // live key a scan from a random place finds instead.
    let start = (random() % SHARD_COUNT as u64) << 32;
    let mut found = None;
    for from in [start, 0] {
        let mut cursor = from;
        loop {
            cursor = scan(sh, ns, cursor, 256, |key, _| {
                if found.is_none() {
                    found = Some(key.to_vec());
                }
            });
            if found.is_some() || cursor == 0 {
                break;
            }
        }
        if found.is_some() {
            break;
        }
    }
    found
}

/// The distinct index shards of `hashes`, ascending: the order in which every holder of
/// several shard locks takes them, so two such holders never deadlock.
pub(crate) fn distinct_shards(hashes: &[KeyHash]) -> Vec<usize> {
    let mut shards: Vec<usize> = hashes.iter().map(|h| h.shard()).collect();
    shards.sort_unstable();
    shards.dedup();
    shards
}

/// Where the guard of `h`'s shard sits among guards taken in `distinct_shards` order.
pub(crate) fn guard_of(shard_nos: &[usize], h: &KeyHash) -> usize {
    shard_nos
        .binary_search(&h.shard())
        .expect("every key's shard is locked")
}

/// Prefetches the record of the first slot whose tag matches `h` (see [`Engine::prefetch`]).
pub(crate) fn prefetch_record(shard: &Table, segs: &SegmentMap, h: KeyHash) {
    if let Some(loc) = shard.first_match(h) {
        if let Some(seg) = segs.get(loc.seg) {
            seg.prefetch(u64::from(loc.off));
        }
    }
}

/// Prefetches every key's home slot, then every key's record, so the misses of a batch
/// overlap. `table_of` gives the shard table of a hash (a fresh read lock, or one held).
pub(crate) fn prefetch_keys<T: std::ops::Deref<Target = Table>>(
    hashes: &[KeyHash],
    segs: &SegmentMap,
    table_of: impl Fn(&KeyHash) -> T,
) {
    for h in hashes {
        table_of(h).prefetch(*h);
    }
    for h in hashes {
        prefetch_record(&table_of(h), segs, *h);
    }
}

/// The current record of every key (see `find_current`), each shard locked in `guards`; each
/// key found has its access clock stamped with `touch`, if any. Each
/// chunk of keys has its slots, then its records, prefetched first (as in
/// [`Engine::prefetch`]) so their memory reads overlap.
pub(crate) fn find_all<'a, G: std::ops::Deref<Target = Table>>(
    guards: &[G],
    shard_nos: &[usize],
    ns_of: impl Fn(usize) -> u32,
    keys: &[&[u8]],
    hashes: &[KeyHash],
    segs: &'a SegmentMap,
    touch: Option<u32>,
) -> Vec<Current<'a>> {
    let mut found = Vec::with_capacity(keys.len());
    for (chunk, (keys, hashes)) in keys
        .chunks(PREFETCH_BATCH)
        .zip(hashes.chunks(PREFETCH_BATCH))
        .enumerate()
    {
        if keys.len() > 1 {
            prefetch_keys(hashes, segs, |h| &*guards[guard_of(shard_nos, h)]);
        }
        found.extend(keys.iter().zip(hashes).enumerate().map(|(j, (key, h))| {
            let ns = ns_of(chunk * PREFETCH_BATCH + j);
            let shard = &guards[guard_of(shard_nos, h)];
            let (slot, current) = find_current(shard, segs, ns, key, *h);
            if let (Some(i), Some(clock)) = (slot, touch) {
                shard.touch(i, clock);
            }
            current
        }));
    }
    found
}

pub(crate) type Current<'a> = Option<(Loc, RecordHeader, &'a [u8])>;

/// The key's slot in its shard and the record it points at (live, expired or unreadable).
pub(crate) fn find_current<'a>(
    shard: &Table,
    segs: &'a SegmentMap,
    ns: u32,
    key: &[u8],
    h: KeyHash,
) -> (Option<usize>, Current<'a>) {
    let slot = shard.find(h, |loc| segs.key_matches(loc, ns, key));
    let current = slot.and_then(|i| {
        let loc = shard.loc(i);
        segs.record(loc).map(|(hdr, rec)| (loc, hdr, rec))
    });
    (slot, current)
}

/// The value a read sees in `current`: none when absent, expired or unreadable.
pub(crate) fn live_entry(current: Current<'_>) -> Option<Entry<'_>> {
    current
        .filter(|(_, hdr, _)| !expired_now(hdr.expire_at_ms))
        .map(|(_, hdr, rec)| Entry {
            value: format::record_value(&hdr, rec),
            expire_at_ms: hdr.expire_at_ms,
        })
}

fn emit(
    shard: &Table,
    segs: &SegmentMap,
    ns: u32,
    i: usize,
    now: u64,
    f: &mut impl FnMut(&[u8], Entry<'_>),
) {
    let Some((hdr, rec)) = segs.record(shard.loc(i)) else {
        return;
    };
    let key = format::record_key(&hdr, rec);
    if hdr.ns == ns
        && !is_expired(hdr.expire_at_ms, now)
        && !shard.displaced_by_own_key(i, || KeyHash::of_ns(ns, key))
    {
        f(
            key,
            Entry {
                value: format::record_value(&hdr, rec),
                expire_at_ms: hdr.expire_at_ms,
            },
        );
    }
}

fn next_cursor(shard_no: usize, tag: u32) -> ScanCursor {
    match tag.checked_add(1) {
        Some(t) => (shard_no as u64) << 32 | u64::from(t),
        None if shard_no + 1 < SHARD_COUNT => ((shard_no + 1) as u64) << 32,
        None => 0,
    }
}
