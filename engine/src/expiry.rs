//! Active expiry: removes keys whose expiry has passed from the index without a read asking
//! for them, so they leave memory (and DBSIZE) and compaction reclaims their records. The
//! maintenance thread sweeps a slice of the index each interval; reads hide expired keys
//! on their own (lazy expiry).

use std::collections::BTreeMap;
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
    if !shared.has_expiring.load(Ordering::Relaxed)
        || !shared.expire_keys.load(Ordering::Relaxed)
        || shared.hooks.sweep_paused.load(Ordering::Relaxed)
    {
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
            let mut ttls = TtlSamples::default();
            let expired: Vec<Expired> = marked
                .into_iter()
                .filter_map(|(tag, loc)| {
                    // Compaction may have moved the record and retired its segment meanwhile.
                    segs.get(loc.seg)?;
                    let (h, rec) = segs.record(loc)?;
                    if !is_expired(h.expire_at_ms, now) {
                        ttls.add(h.ns, h.expire_at_ms.saturating_sub(now));
                        return None;
                    }
                    let key = (hook.is_some() || locked_hook.is_some())
                        .then(|| crate::format::record_key(&h, rec).to_vec());
                    Some((tag, loc, h.record_len(), h.ns, key))
                })
                .collect();
            ttls.fold_into(&mut shared.ttl_avg_ms.lock());
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

/// The remaining times to live one step of the sweep met, by namespace.
#[derive(Default)]
struct TtlSamples(BTreeMap<u32, (u64, u64)>);

impl TtlSamples {
    fn add(&mut self, ns: u32, ttl_ms: u64) {
        let (sum, n) = self.0.entry(ns).or_default();
        *sum = sum.saturating_add(ttl_ms);
        *n += 1;
    }

    /// Folds each namespace's mean into its running average as Redis's `activeExpireCycle`
    /// does: the first sample sets it, each later one weighs 1/50.
    fn fold_into(self, avg_ms: &mut BTreeMap<u32, u64>) {
        for (ns, (sum, n)) in self.0 {
            let mean = sum / n;
            let avg = avg_ms.entry(ns).or_insert(0);
            *avg = if *avg == 0 {
                mean
            } else {
                (*avg / 50) * 49 + mean / 50
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_average_starts_at_the_first_mean_and_then_moves_by_a_fiftieth() {
        let mut avg = BTreeMap::new();
        let mut s = TtlSamples::default();
        s.add(3, 1000);
        s.add(3, 3000);
        s.fold_into(&mut avg);
        assert_eq!(avg[&3], 2000);
        let mut s = TtlSamples::default();
        s.add(3, 7000);
        s.fold_into(&mut avg);
        assert_eq!(avg[&3], 40 * 49 + 140);
        assert!(!avg.contains_key(&0));
    }
}
