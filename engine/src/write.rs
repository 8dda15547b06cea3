//! The write path: one key ([`put`], [`update`]), several keys as one atomic batch
//! ([`update_many`]), and FLUSHALL ([`clear`]). A write takes its key's shard write lock,
//! appends a record to the log (a `memcpy` into the mapped active segment), then points the
//! index slot at it and counts the record it replaces as dead, before releasing the lock.

use std::sync::atomic::Ordering;

use parking_lot::RwLockWriteGuard;

use crate::error::{Error, Result};
use crate::format::{
    self, FLAG_FLUSH, FLAG_FLUSH_NS, FLAG_TOMBSTONE, KEY_LEN_MAX, RECORD_HEADER_LEN, VALUE_LEN_MAX,
};
use crate::index::{KeyHash, Loc, Table, SHARD_COUNT};
use crate::log::Append;
use crate::read::{
    distinct_shards, find_all, find_current, guard_of, live_entry, prefetch_record, Current, Entry,
};
use crate::registry::SegmentMap;
use crate::shared::Shared;
use crate::verify::Pending;

/// What an update's closure (`Engine::update`) decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update<'v> {
    /// Write nothing.
    Keep,
    /// Write this value and expiry.
    Put {
        /// The new value.
        value: &'v [u8],
        /// Expiry as Unix time in milliseconds; 0 = never.
        expire_at_ms: u64,
    },
    /// Keep the current value, change its expiry. Does nothing when the key is absent.
    SetExpiry {
        /// Expiry as Unix time in milliseconds; 0 = never.
        expire_at_ms: u64,
    },
    /// Delete the key. Does nothing when the key is absent.
    Delete,
}

/// Names a write for durability: see `Engine::durable` and `Engine::wait_durable`.
/// Tokens are ordered: waiting for a later token covers every earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WriteToken(pub(crate) u64);

impl WriteToken {
    /// The record's sequence number.
    pub fn seq(self) -> u64 {
        self.0
    }
}

/// Writes `value` under `key` (see `Engine::put`).
pub(crate) fn put(
    sh: &Shared,
    ns: u32,
    key: &[u8],
    value: &[u8],
    expire_at_ms: u64,
) -> Result<WriteToken> {
    // What `update` does for a decision known in advance, reordered so the two memory
    // reads a put waits on (the key's slot, then its old record) overlap with work that
    // does not need them: the checksum, then the append.
    check_sizes(key, value)?;
    let h = KeyHash::of_ns(ns, key);
    sh.wait_out_write_stall();
    let mut shard = sh.index.shard(h.shard()).write();
    shard.prefetch(h);
    let body_crc = format::body_crc(key, value);
    let segs = sh.registry.load();
    prefetch_record(&shard, &segs, h);
    let (seq, loc) = sh.append_value(ns, key, value, expire_at_ms, body_crc)?;
    let expires = expire_at_ms != 0;
    // Memory is short and the key's one candidate is on disk: take it without reading it
    // (see `verify`), and have it checked later, off this thread.
    if sh.cold.checking() {
        if let Some(i) = blind_candidate(&shard, &segs, h) {
            let old = shard.loc(i);
            if sh.verifier.push(Pending { hash: h, old }) {
                shard.take_blind(i, h, loc, expires, ns, sh.access_clock());
                return Ok(WriteToken(seq));
            }
        }
    }
    // `segs` predates the append: it holds every record the shard points at.
    let found = find_current(&shard, &segs, ns, key, h);
    let clock = sh.access_clock();
    let written = Written {
        loc,
        expires,
        ns,
        clock,
    };
    point_at(&mut shard, &segs, found, h, written);
    Ok(WriteToken(seq))
}

/// The slot a blind write may take without reading its record: the only one matching the
/// key's fingerprint, with a record not in memory, and holding a key (a displaced record is
/// not taken again). With two candidates (keys whose fingerprints collided) the keys are
/// compared: taking the wrong one would leave the key's own slot behind it.
fn blind_candidate(shard: &Table, segs: &SegmentMap, h: KeyHash) -> Option<usize> {
    let mut candidates = 0;
    let mut cold = false;
    shard.find(h, |loc| {
        candidates += 1;
        cold = segs
            .get(loc.seg)
            .is_some_and(|s| !crate::cold::record_resident(s, u64::from(loc.off)));
        false
    });
    if candidates == 1 && cold {
        shard.find(h, |_| true).filter(|&i| !shard.is_displaced(i))
    } else {
        None
    }
}

/// Reads the key's live value and applies `f`'s decision atomically (see `Engine::update`).
/// A write stamps the key's access clock; a decision to keep the key as it is stamps it when
/// `touch` (Redis's `lookupKeyWrite`).
pub(crate) fn update<'v, R>(
    sh: &Shared,
    ns: u32,
    key: &[u8],
    touch: bool,
    f: impl FnOnce(Option<Entry<'_>>) -> (Update<'v>, R),
) -> Result<(R, Option<WriteToken>)> {
    if key.len() > KEY_LEN_MAX {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: KEY_LEN_MAX,
        });
    }
    let h = KeyHash::of_ns(ns, key);
    sh.wait_out_write_stall();
    let mut shard = sh.index.shard(h.shard()).write();
    let segs = sh.registry.load();
    let (slot, current) = find_current(&shard, &segs, ns, key, h);
    let entry = live_entry(current);
    let live = entry.is_some();
    let (decision, result) = f(entry);
    let (value, expire_at_ms) = match decision {
        Update::Keep => {
            if let Some(i) = slot.filter(|_| touch && live) {
                shard.touch(i, sh.access_clock());
            }
            return Ok((result, None));
        }
        Update::Put {
            value,
            expire_at_ms,
        } => (value, expire_at_ms),
        Update::SetExpiry { expire_at_ms } => match entry {
            Some(e) => (e.value, expire_at_ms),
            None => return Ok((result, None)),
        },
        Update::Delete => {
            let Some(i) = slot else {
                return Ok((result, None));
            };
            let (loc, hdr, _) = current.expect("slot found");
            if entry.is_none() {
                // Expired: drop it from memory; its record stays invisible on disk.
                shard.remove_at(i, ns);
                segs.add_dead(loc, hdr.record_len());
                return Ok((result, None));
            }
            let (seq, tomb) = sh.append(&Append {
                ns,
                key,
                value: &[],
                expire_at_ms: 0,
                flags: FLAG_TOMBSTONE,
                body_crc: format::body_crc(key, &[]),
            })?;
            shard.remove_at(i, ns);
            segs.add_dead(loc, hdr.record_len());
            // The tombstone is dead weight from birth; compaction keeps it only while an
            // older segment may still hold the key.
            sh.registry
                .load()
                .add_dead(tomb, RECORD_HEADER_LEN + key.len());
            return Ok((result, Some(WriteToken(seq))));
        }
    };
    check_sizes(key, value)?;
    let body_crc = format::body_crc(key, value);
    let (seq, loc) = sh.append_value(ns, key, value, expire_at_ms, body_crc)?;
    let written = Written {
        loc,
        expires: expire_at_ms != 0,
        ns,
        clock: sh.access_clock(),
    };
    point_at(&mut shard, &segs, (slot, current), h, written);
    Ok((result, Some(WriteToken(seq))))
}
/// Drops `key` from memory when its record has expired (see `Engine::remove_expired`).
pub(crate) fn remove_expired(sh: &Shared, ns: u32, key: &[u8]) -> bool {
    if !sh.expire_keys.load(Ordering::Relaxed) {
        return false;
    }
    let h = KeyHash::of_ns(ns, key);
    let mut shard = sh.index.shard(h.shard()).write();
    let segs = sh.registry.load();
    let (slot, current) = find_current(&shard, &segs, ns, key, h);
    match (slot, current) {
        (Some(i), Some((loc, hdr, _))) if live_entry(current).is_none() => {
            shard.remove_at(i, ns);
            segs.add_dead(loc, hdr.record_len());
            true
        }
        _ => false,
    }
}

/// Reads several keys and applies `f`'s decisions as one atomic batch (see
/// `Engine::update_many`). Every key found has its access clock stamped when `touch`, every
/// key written whatever `touch` says.
pub(crate) fn update_many<'v, R>(
    sh: &Shared,
    ns_of: impl Fn(usize) -> u32 + Copy,
    keys: &[&[u8]],
    touch: bool,
    f: impl FnOnce(&[Option<Entry<'_>>]) -> (Vec<Update<'v>>, R),
) -> Result<(R, Option<WriteToken>)> {
    if let Some(key) = keys.iter().find(|k| k.len() > KEY_LEN_MAX) {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: KEY_LEN_MAX,
        });
    }
    sh.wait_out_write_stall();
    let hashes: Vec<KeyHash> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| KeyHash::of_ns(ns_of(i), k))
        .collect();
    let shard_nos = distinct_shards(&hashes);
    let mut guards: Vec<_> = shard_nos
        .iter()
        .map(|&i| sh.index.shard(i).write())
        .collect();
    let segs = sh.registry.load();
    let clock = sh.access_clock();
    let current = find_all(
        &guards,
        &shard_nos,
        ns_of,
        keys,
        &hashes,
        &segs,
        touch.then_some(clock),
    );
    let entries: Vec<Option<Entry<'_>>> = current.iter().map(|&c| live_entry(c)).collect();
    let (decisions, result) = f(&entries);
    assert_eq!(
        decisions.len(),
        keys.len(),
        "update_many: one decision per key"
    );

    // What each key's last decision does: a record to append, or only an index change.
    let superseded = superseded(keys, ns_of);
    let mut appends = Vec::new();
    let mut changes = Vec::new();
    for (i, decision) in decisions.iter().enumerate() {
        let key = keys[i];
        if superseded[i] {
            continue;
        }
        let (value, expire_at_ms, flags) = match (*decision, entries[i], current[i]) {
            (Update::Keep, ..) => continue,
            (
                Update::Put {
                    value,
                    expire_at_ms,
                },
                ..,
            ) => (value, expire_at_ms, 0),
            (Update::SetExpiry { expire_at_ms }, Some(e), _) => (e.value, expire_at_ms, 0),
            (Update::SetExpiry { .. }, None, _) | (Update::Delete, None, None) => continue,
            (Update::Delete, Some(_), _) => (&[][..], 0, FLAG_TOMBSTONE),
            (Update::Delete, None, Some(_)) => {
                // Expired: drop it from memory; its record stays invisible on disk.
                changes.push((i, None));
                continue;
            }
        };
        check_sizes(key, value)?;
        changes.push((i, Some(appends.len())));
        appends.push(Append {
            ns: ns_of(i),
            key,
            value,
            expire_at_ms,
            flags,
            body_crc: format::body_crc(key, value),
        });
    }
    let total: usize = appends
        .iter()
        .map(|a| RECORD_HEADER_LEN + a.key.len() + a.value.len())
        .sum();
    if total > format::BATCH_LEN_MAX {
        return Err(Error::BatchTooLarge {
            len: total,
            max: format::BATCH_LEN_MAX,
        });
    }
    if appends.iter().any(|a| a.expire_at_ms != 0) {
        sh.has_expiring.store(true, Ordering::Relaxed);
    }
    let written = if appends.is_empty() {
        Vec::new()
    } else {
        sh.append_batch(&appends)?
    };

    // The batch may have rolled to a segment registered since `segs` was loaded, and
    // earlier changes may have moved slots: look each key up again.
    let segs_now = sh.registry.load();
    for (i, append) in changes {
        let (key, h, ns) = (keys[i], hashes[i], ns_of(i));
        let shard = &mut guards[guard_of(&shard_nos, &h)];
        let (slot, old) = find_current(shard, &segs_now, ns, key, h);
        let old = slot.zip(old);
        let new = append.map(|a| (appends[a].flags, written[a].1));
        let expires = append.is_some_and(|a| appends[a].expire_at_ms != 0);
        match (old, new) {
            (Some((slot, (loc, hdr, _))), Some((flags, new))) if flags & FLAG_TOMBSTONE != 0 => {
                shard.remove_at(slot, ns);
                segs_now.add_dead(loc, hdr.record_len());
                segs_now.add_dead(new, RECORD_HEADER_LEN + key.len());
            }
            (Some((slot, (loc, hdr, _))), Some((_, new))) => {
                shard.set(slot, new, expires, ns, clock);
                segs_now.add_dead(loc, hdr.record_len());
            }
            (None, Some((flags, new))) if flags & FLAG_TOMBSTONE != 0 => {
                segs_now.add_dead(new, RECORD_HEADER_LEN + key.len());
            }
            (None, Some((_, new))) => shard.insert_absent(h, new, expires, ns, clock),
            (Some((slot, (loc, hdr, _))), None) => {
                shard.remove_at(slot, ns);
                segs_now.add_dead(loc, hdr.record_len());
            }
            (None, None) => {}
        }
    }
    let token = written.last().map(|&(seq, _)| WriteToken(seq));
    Ok((result, token))
}

/// Deletes every key (FLUSHALL), durably.
pub(crate) fn clear(sh: &Shared) -> Result<()> {
    let _c = sh.compaction_lock.lock();
    let shards: Vec<_> = (0..SHARD_COUNT)
        .map(|i| sh.index.shard(i).write())
        .collect();
    sh.check_poison()?;
    clear_locked(sh, shards)
}

/// [`clear`], with the compaction lock and every shard held by the caller.
fn clear_locked(sh: &Shared, mut shards: Vec<RwLockWriteGuard<'_, Table>>) -> Result<()> {
    let env = sh.log_env();
    let (seq, old) = {
        let mut st = sh.log.lock();
        // The flush record opens a fresh segment, so every older segment can go.
        sh.log
            .roll_locked(&mut st, RECORD_HEADER_LEN as u64, &env)
            .map_err(|e| sh.note_write_error(e))?;
        let flush = sh
            .log
            .append_locked(
                &mut st,
                &Append {
                    ns: 0,
                    key: &[],
                    value: &[],
                    expire_at_ms: 0,
                    flags: FLAG_FLUSH,
                    body_crc: format::body_crc(&[], &[]),
                },
                &env,
            )
            .map_err(|e| sh.note_write_error(e))?;
        // Every segment but the one holding the flush record predates it.
        let active = st.active.id;
        let old: Vec<u32> = sh
            .registry
            .load()
            .iter()
            .filter(|s| s.id != active)
            .map(|s| s.id)
            .collect();
        (flush.seq, old)
    };
    sh.on_log_grew();
    for s in shards.iter_mut() {
        s.clear();
    }
    // Every key is gone, and every record a blind write replaced with it.
    sh.verifier.clear();
    drop(shards);
    crate::wait::wait_durable(sh, seq)?;
    // In a transaction (FLUSHALL inside EXEC) the flush counts only once committed: until
    // then the old segments hold what recovery would serve.
    if !sh.log.retire_after_txn(&old).0 {
        sh.registry.retire(&old);
        crate::segment::sync_dir(&sh.dir)?;
    }
    Ok(())
}

/// Deletes every key of database `db`, namespace `ns` (FLUSHDB), durably: a namespace flush
/// record voids the namespace's older records wherever they lie, and the index forgets its
/// keys. Other namespaces' records stay where they are: compaction reclaims the voided ones
/// as it would any dead record.
pub(crate) fn clear_ns(sh: &Shared, db: u32, ns: u32) -> Result<()> {
    let _c = sh.compaction_lock.lock();
    let mut shards: Vec<_> = (0..SHARD_COUNT)
        .map(|i| sh.index.shard(i).write())
        .collect();
    sh.check_poison()?;
    if shards.iter().all(|s| s.len() == s.ns_len(ns)) {
        // Every key is this namespace's (the usual store, with one database in use): flush
        // everything, which reads no record. Telling a key's namespace below reads its
        // record's header, which on a store larger than memory is a disk read per key with
        // every shard held.
        return clear_locked(sh, shards);
    }
    if !sh.log.in_txn() {
        return remap_ns(sh, db, ns, shards);
    }
    // Inside EXEC: the flush must count only if the transaction commits, which a change of
    // the databases file could not follow; so the keys are found here, by their headers.
    let (seq, flush) = sh.append(&flush_ns_record(ns))?;
    let segs = sh.registry.load();
    // Headers only: no value is read. A slot whose header is damaged is left alone (its key
    // reads as absent).
    let ns_of = |loc: Loc| segs.header(loc).map_or(u32::MAX, |h| h.ns);
    for s in shards.iter_mut() {
        for (loc, _) in s.remove_ns(ns, ns_of) {
            if let Some(h) = segs.header(loc) {
                segs.add_dead(loc, h.record_len());
            }
        }
    }
    segs.add_dead(flush, RECORD_HEADER_LEN);
    // Blind writes of the namespace's keys are checked against records now void: the check
    // finds no slot pointing at the new record and leaves it (see `verify`).
    drop(shards);
    crate::wait::wait_durable(sh, seq)
}

/// The record that voids every older record of namespace `ns`.
fn flush_ns_record(ns: u32) -> Append<'static> {
    Append {
        ns,
        key: &[],
        value: &[],
        expire_at_ms: 0,
        flags: FLAG_FLUSH | FLAG_FLUSH_NS,
        body_crc: format::body_crc(&[], &[]),
    }
}

/// FLUSHDB beside other databases' keys, without telling them apart: telling a key's
/// namespace reads its record's header, a disk read per key on a store larger than memory,
/// which must not happen with every shard held. Instead `db` moves to a fresh namespace
/// (empty, so the database is empty at once) and the maintenance thread removes the old
/// namespace's slots afterwards ([`clean_retired`]).
///
/// Order, for crashes: flush records for the old namespace and for the fresh one (voiding
/// anything older of it) are made durable, then the databases file points `db` at the fresh
/// namespace. A crash in between leaves `db` on its old namespace, emptied by its flush
/// record. A write that resolved `db` to the old namespace before the switch lands there
/// and is gone with it, as if it had run before the FLUSHDB.
fn remap_ns(sh: &Shared, db: u32, ns: u32, shards: Vec<RwLockWriteGuard<'_, Table>>) -> Result<()> {
    let fresh = sh
        .databases
        .fresh_ns(|n| shards.iter().all(|s| s.ns_len(n) == 0))
        .ok_or_else(|| {
            Error::InvalidOptions("no namespace left for FLUSHDB; restart to reclaim them".into())
        })?;
    let (_, old_flush) = sh.append(&flush_ns_record(ns))?;
    let (seq, fresh_flush) = sh.append(&flush_ns_record(fresh))?;
    drop(shards);
    let segs = sh.registry.load();
    segs.add_dead(old_flush, RECORD_HEADER_LEN);
    segs.add_dead(fresh_flush, RECORD_HEADER_LEN);
    crate::wait::wait_durable(sh, seq)?;
    sh.databases.remap(&sh.dir, db, fresh)?;
    sh.syncer.kick_maintenance();
    Ok(())
}

/// Removes the index slots of the namespaces FLUSHDB retired (see [`remap_ns`]), a shard at
/// a time: each slot's record header is read with no lock held (a disk read per key on a
/// store larger than memory, on the maintenance thread, at its I/O priority), then the
/// shard is locked for writing only to drop the slots found. A slot that changed meanwhile
/// (rewritten, moved by compaction) has its header read again under the lock.
pub(crate) fn clean_retired(sh: &Shared) {
    for ns in sh.databases.retired() {
        for i in 0..SHARD_COUNT {
            if sh.syncer.is_shutdown() || sh.is_poisoned() {
                return;
            }
            let before: std::collections::HashSet<Loc> =
                sh.index.shard(i).read().locs().into_iter().collect();
            let segs = sh.registry.load();
            let gone: std::collections::HashSet<Loc> = before
                .iter()
                .copied()
                .filter(|&loc| segs.header(loc).is_some_and(|h| h.ns == ns))
                .collect();
            drop(segs);
            let mut shard = sh.index.shard(i).write();
            // After the lock: every segment the shard points at is registered.
            let segs = sh.registry.load();
            let ns_of = |loc: Loc| {
                if gone.contains(&loc) {
                    ns
                } else if before.contains(&loc) {
                    u32::MAX // looked at above: another namespace's
                } else {
                    segs.header(loc).map_or(u32::MAX, |h| h.ns)
                }
            };
            let removed = shard.remove_ns(ns, ns_of);
            drop(shard);
            for (loc, _) in removed {
                if let Some(h) = segs.header(loc) {
                    segs.add_dead(loc, h.record_len());
                }
            }
        }
        sh.databases.retired_cleaned(ns);
    }
}

/// Fails for a key or value over the limits.
pub(crate) fn check_sizes(key: &[u8], value: &[u8]) -> Result<()> {
    if key.len() > KEY_LEN_MAX {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: KEY_LEN_MAX,
        });
    }
    if value.len() > VALUE_LEN_MAX {
        return Err(Error::ValueTooLarge {
            len: value.len(),
            max: VALUE_LEN_MAX,
        });
    }
    Ok(())
}

/// For each key, whether the same key (in the same namespace) appears again later (its later
/// decision wins).
fn superseded(keys: &[&[u8]], ns_of: impl Fn(usize) -> u32) -> Vec<bool> {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    let mut out = vec![false; keys.len()];
    for (i, key) in keys.iter().enumerate().rev() {
        out[i] = !seen.insert((ns_of(i), *key));
    }
    out
}

/// A record just appended for a key of namespace `ns`, as its slot is to hold it: where it is,
/// whether it carries an expiry (the slot is marked for the expiry sweep), and the access
/// clock of the write.
#[derive(Clone, Copy)]
struct Written {
    loc: Loc,
    expires: bool,
    ns: u32,
    clock: u32,
}

/// Points the key's slot (found by `find_current`) at its new record, counting the old record
/// dead, or adds a slot when the key had none.
fn point_at(
    shard: &mut Table,
    segs: &SegmentMap,
    found: (Option<usize>, Current<'_>),
    h: KeyHash,
    w: Written,
) {
    match found {
        (Some(i), Some((old, hdr, _))) => {
            shard.set(i, w.loc, w.expires, w.ns, w.clock);
            segs.add_dead(old, hdr.record_len());
        }
        _ => shard.insert_absent(h, w.loc, w.expires, w.ns, w.clock),
    }
}
