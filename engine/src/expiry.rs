//! Active expiry: removes keys whose expiry has passed from the index without a read asking
//! for them, so they leave memory (and DBSIZE) and compaction reclaims their records. The
//! maintenance thread sweeps a slice of the index each interval; reads hide expired keys
//! on their own (lazy expiry).

use std::sync::atomic::Ordering;

use crate::clock::{is_expired, now_ms};
use crate::index::{Loc, SHARD_COUNT};
use crate::shared::Shared;

/// Slots examined per step of the expiry sweep (a read lock held over them, about 0.1 ms of
/// cache misses).
const EXPIRE_SLOTS_PER_LOCK: usize = 1024;

/// Active expiry: examines about `budget` index slots from `cursor` onward and removes the
/// entries whose records have expired, so they leave memory (and DBSIZE) without being read and
/// compaction reclaims their records. No tombstone is needed: an expired record stays invisible
/// on disk. Returns how many keys were removed.
pub(crate) fn sweep(shared: &Shared, cursor: &mut u64, budget: usize) -> u64 {
    if !shared.has_expiring.load(Ordering::Relaxed) {
        return 0;
    }
    let now = now_ms();
    let mut removed = 0u64;
    let mut examined = 0usize;
    while examined < budget {
        let shard_no = ((*cursor >> 32) as usize) % SHARD_COUNT;
        let pos = (*cursor as u32) as usize;
        // The slots marked as holding a record with an expiry; their records are read with
        // no lock held (a record not in memory is read from disk on this thread, and writers
        // of the shard must not wait for that), then removed if their slot still holds them.
        let (marked, start, end, cap) = {
            let shard = shared.index.shard(shard_no).read();
            let cap = shard.capacity_slots();
            let start = pos.min(cap);
            let end = (start + EXPIRE_SLOTS_PER_LOCK).min(cap);
            let marked: Vec<(u32, Loc)> = (start..end)
                .filter(|&i| shard.slot_at(i).is_some() && shard.is_marked(i))
                .filter_map(|i| shard.slot_at(i))
                .collect();
            (marked, start, end, cap)
        };
        if !marked.is_empty() {
            let segs = shared.registry.load();
            let hook = shared.expired_hook.get();
            let locked_hook = shared.expiring_hook.get();
            // Per expired record: tag, location, length, namespace, key (for the hook).
            type Expired = (u32, Loc, usize, u32, Option<Vec<u8>>);
            let expired: Vec<Expired> = marked
                .into_iter()
                .filter_map(|(tag, loc)| {
                    // Compaction may have moved the record and retired its segment meanwhile.
                    segs.get(loc.seg)?;
                    let (h, rec) = segs.record(loc)?;
                    if !is_expired(h.expire_at_ms, now) {
                        return None;
                    }
                    let key = (hook.is_some() || locked_hook.is_some())
                        .then(|| crate::format::record_key(&h, rec).to_vec());
                    Some((tag, loc, h.record_len(), h.ns, key))
                })
                .collect();
            if !expired.is_empty() {
                let mut gone = Vec::new();
                {
                    let mut shard = shared.index.shard(shard_no).write();
                    for (tag, loc, len, ns, key) in expired {
                        if let Some(i) = shard.find_loc(tag, loc) {
                            shard.remove_at(i, ns);
                            segs.add_dead(loc, len);
                            removed += 1;
                            // Under the lock: no write of the key comes in between.
                            if let (Some(h), Some(key)) = (locked_hook, &key) {
                                if let Some(db) = shared.databases.db_of(ns) {
                                    h(db, key);
                                }
                            }
                            if let Some(key) = key {
                                gone.push((ns, key));
                            }
                        }
                    }
                }
                // Outside the shard lock: the hook may take locks of its own. A namespace no
                // database maps to any more (a SWAPDB meanwhile) is reported by the database
                // that has it now.
                if let Some(hook) = hook {
                    for (ns, key) in &gone {
                        if let Some(db) = shared.databases.db_of(*ns) {
                            hook(db, key);
                        }
                    }
                }
            }
        }
        examined += (end - start).max(1);
        *cursor = if end >= cap {
            (((shard_no + 1) % SHARD_COUNT) as u64) << 32
        } else {
            (shard_no as u64) << 32 | end as u64
        };
    }
    shared
        .counters
        .expired_keys
        .fetch_add(removed, Ordering::Relaxed);
    removed
}
