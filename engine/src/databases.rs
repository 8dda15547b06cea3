//! Databases (Redis's numbered keyspaces) and the namespaces that hold them.
//!
//! Every record names a namespace (`format::RecordHeader::ns`); database `d` is the namespace
//! `map[d]`. The map starts as the identity and changes only by swapping two entries
//! (SWAPDB), which moves no record: O(1) however many keys the two hold. A map that is not
//! the identity is kept in the file `DATABASES` beside the segments:
//!
//! ```text
//! 0   8  magic "FLINDBS\x01"
//! 8   4  version (1: the map is a permutation of 0..count; 2: any distinct namespaces)
//! 12  4  count: databases in the map
//! 16  4  namespace of database 0, then of database 1, ... (count entries)
//! ..  4  CRC32 of every byte before it
//! ```
//!
//! FLUSHDB beside other databases' keys points its database at a fresh namespace (at least
//! [`DATABASES_MAX`], so never one a database had at open) instead of finding the old
//! namespace's keys with every index shard locked; the maintenance thread then removes the
//! old namespace's slots (see `write::remap_ns`). Such a map is written as version 2, which
//! older builds refuse by its version number.
//!
//! A swap writes `DATABASES.tmp`, syncs it, renames it over `DATABASES` and syncs the
//! directory before the map in memory changes, so after a crash the map is the old one or
//! the new one, whole. The log is synced first: every write acknowledged before the swap
//! survives any crash the swap survives.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::{get_u32, put_u32, DATABASES_MAX, NS_MAX};

/// The file that holds the database -> namespace map when it is not the identity.
pub const DATABASES_FILE: &str = "DATABASES";
const MAGIC: [u8; 8] = *b"FLINDBS\x01";
/// A permutation of `0..count` (SWAPDB only): what builds before FLUSHDB remapped read.
const VERSION_PERMUTATION: u32 = 1;
/// Any distinct namespaces up to `NS_MAX`.
const VERSION: u32 = 2;
const HEADER_LEN: usize = 16;
const _: () = assert!(DATABASES_MAX - 1 <= NS_MAX);

/// Database -> namespace.
pub(crate) struct Databases {
    map: Box<[AtomicU32]>,
    /// Serialises swaps (and the reads of the whole map that must not see half of one).
    lock: Mutex<()>,
    /// Namespaces FLUSHDB took away from their database (see `write::remap_ns`) whose index
    /// slots the maintenance thread has still to remove.
    retired: Mutex<Vec<u32>>,
}

impl Databases {
    /// Reads the map in `dir`, or the identity when there is none; it covers at least
    /// `count` databases.
    ///
    /// # Errors
    /// An unreadable or damaged `DATABASES` file.
    pub(crate) fn load(dir: &Path, count: u32) -> Result<Databases> {
        let path = dir.join(DATABASES_FILE);
        let stored = match std::fs::read(&path) {
            Ok(b) => decode(&b).map_err(|reason| Error::Corrupt {
                path: path.clone(),
                offset: 0,
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("read databases file", &path, e)),
        };
        let n = (count as usize).max(stored.len());
        let map: Box<[AtomicU32]> = (0..n)
            .map(|d| AtomicU32::new(stored.get(d).copied().unwrap_or(d as u32)))
            .collect();
        Ok(Databases {
            map,
            lock: Mutex::new(()),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// Databases in the map.
    pub(crate) fn count(&self) -> u32 {
        self.map.len() as u32
    }

    /// The namespace of database `db`.
    ///
    /// # Panics
    /// When `db` is not below [`Databases::count`]: callers check client input first.
    #[inline]
    pub(crate) fn ns(&self, db: u32) -> u32 {
        self.map[db as usize].load(Ordering::Relaxed)
    }

    /// The database that has namespace `ns` now, if any.
    pub(crate) fn db_of(&self, ns: u32) -> Option<u32> {
        self.map
            .iter()
            .position(|a| a.load(Ordering::Relaxed) == ns)
            .map(|d| d as u32)
    }

    /// The whole map, as of one moment.
    pub(crate) fn snapshot(&self) -> Vec<u32> {
        let _g = self.lock.lock();
        self.map.iter().map(|a| a.load(Ordering::Relaxed)).collect()
    }

    /// The whole map, with swaps held off until the guard is dropped (checkpoints).
    pub(crate) fn hold(&self) -> (parking_lot::MutexGuard<'_, ()>, Vec<u32>) {
        let g = self.lock.lock();
        let map = self.map.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        (g, map)
    }

    /// A namespace for a database to start afresh in (FLUSHDB): never one a database could
    /// have had at open (those are below [`DATABASES_MAX`]), not in the map, not waiting to be
    /// cleaned, and one `unused` says holds no key.
    pub(crate) fn fresh_ns(&self, unused: impl Fn(u32) -> bool) -> Option<u32> {
        let map = self.snapshot();
        let retired = self.retired.lock();
        (DATABASES_MAX..=NS_MAX).find(|n| !map.contains(n) && !retired.contains(n) && unused(*n))
    }

    /// Points database `db` at namespace `fresh` durably, and retires its old namespace: the
    /// caller made the log durable with flush records for both (see `write::remap_ns`).
    pub(crate) fn remap(&self, dir: &Path, db: u32, fresh: u32) -> Result<()> {
        let _g = self.lock.lock();
        let mut next: Vec<u32> = self.map.iter().map(|x| x.load(Ordering::Relaxed)).collect();
        let old = std::mem::replace(&mut next[db as usize], fresh);
        write(dir, &next)?;
        self.map[db as usize].store(fresh, Ordering::Relaxed);
        self.retire(old);
        Ok(())
    }

    /// Marks `ns` for the maintenance thread to remove from the index.
    pub(crate) fn retire(&self, ns: u32) {
        let mut retired = self.retired.lock();
        if !retired.contains(&ns) {
            retired.push(ns);
        }
    }

    /// Namespaces whose index slots are still to be removed.
    pub(crate) fn retired(&self) -> Vec<u32> {
        self.retired.lock().clone()
    }

    /// True while `ns` is retired and its slots not all removed yet (compaction copies none
    /// of its records).
    pub(crate) fn is_retired(&self, ns: u32) -> bool {
        let retired = self.retired.lock();
        !retired.is_empty() && retired.contains(&ns)
    }

    /// `ns`'s slots are gone from the index.
    pub(crate) fn retired_cleaned(&self, ns: u32) {
        self.retired.lock().retain(|&n| n != ns);
    }

    /// Swaps databases `a` and `b` durably; `sync_log` makes the log durable first.
    pub(crate) fn swap(
        &self,
        dir: &Path,
        a: u32,
        b: u32,
        sync_log: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let _g = self.lock.lock();
        if a == b {
            return Ok(());
        }
        let mut next: Vec<u32> = self.map.iter().map(|x| x.load(Ordering::Relaxed)).collect();
        next.swap(a as usize, b as usize);
        sync_log()?;
        write(dir, &next)?;
        self.map[a as usize].store(next[a as usize], Ordering::Relaxed);
        self.map[b as usize].store(next[b as usize], Ordering::Relaxed);
        Ok(())
    }
}

/// Writes `map` as `dir/DATABASES`, durably (temporary file, sync, rename, directory sync);
/// an identity map removes the file instead.
pub(crate) fn write(dir: &Path, map: &[u32]) -> Result<()> {
    let path = dir.join(DATABASES_FILE);
    if map.iter().enumerate().all(|(d, &ns)| d as u32 == ns) {
        match std::fs::remove_file(&path) {
            Ok(()) => return crate::segment::sync_dir(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("remove databases file", &path, e)),
        }
    }
    let tmp: PathBuf = dir.join(format!("{DATABASES_FILE}.tmp"));
    let bytes = encode(map);
    let made = (|| {
        use std::io::Write;
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| Error::io("create databases file", &tmp, e))?;
        f.write_all(&bytes)
            .map_err(|e| Error::io("write databases file", &tmp, e))?;
        f.sync_data()
            .map_err(|e| Error::io("fdatasync databases file", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename databases file", &tmp, e))?;
        crate::segment::sync_dir(dir)
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    made
}

/// True when `map` holds each of `0..map.len()` once.
fn is_permutation(map: &[u32]) -> bool {
    let mut seen = vec![false; map.len()];
    map.iter().all(|&ns| {
        seen.get_mut(ns as usize)
            .is_some_and(|s| !std::mem::replace(s, true))
    })
}

fn encode(map: &[u32]) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_LEN + 4 * map.len() + 4];
    b[..8].copy_from_slice(&MAGIC);
    let version = if is_permutation(map) {
        VERSION_PERMUTATION
    } else {
        VERSION
    };
    put_u32(&mut b, 8, version);
    put_u32(&mut b, 12, map.len() as u32);
    for (d, &ns) in map.iter().enumerate() {
        put_u32(&mut b, HEADER_LEN + 4 * d, ns);
    }
    let end = b.len() - 4;
    let crc = crc32fast::hash(&b[..end]);
    put_u32(&mut b, end, crc);
    b
}

/// The map in `b`, checked: a permutation of `0..count` (version 1), or distinct namespaces
/// up to `NS_MAX` (version 2).
fn decode(b: &[u8]) -> std::result::Result<Vec<u32>, String> {
    if b.len() < HEADER_LEN + 4 || b[..8] != MAGIC {
        return Err("not a flin databases file (bad magic or too short)".into());
    }
    let version = get_u32(b, 8);
    if !(VERSION_PERMUTATION..=VERSION).contains(&version) {
        return Err(format!(
            "databases file version {version}, this build reads versions \
             {VERSION_PERMUTATION} to {VERSION}"
        ));
    }
    let count = get_u32(b, 12);
    if count > DATABASES_MAX || b.len() != HEADER_LEN + 4 * count as usize + 4 {
        return Err(format!(
            "databases file length does not fit {count} databases"
        ));
    }
    let end = b.len() - 4;
    if get_u32(b, end) != crc32fast::hash(&b[..end]) {
        return Err("databases file checksum mismatch".into());
    }
    let map: Vec<u32> = (0..count as usize)
        .map(|d| get_u32(b, HEADER_LEN + 4 * d))
        .collect();
    if version == VERSION_PERMUTATION {
        if !is_permutation(&map) {
            return Err("databases file map is not a permutation".into());
        }
    } else {
        let mut sorted = map.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) || sorted.last().is_some_and(|&n| n > NS_MAX) {
            return Err("databases file map names a namespace twice or past the limit".into());
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trips_and_damage_is_refused() {
        let map = vec![1, 0, 2, 5, 4, 3];
        let b = encode(&map);
        assert_eq!(decode(&b).unwrap(), map);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x04;
            assert!(decode(&c).is_err(), "flip in byte {i}");
        }
        assert!(decode(&encode(&[0, 0])).is_err());
        assert!(decode(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn swaps_survive_a_reload_and_the_identity_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = Databases::load(dir.path(), 4).unwrap();
        d.swap(dir.path(), 0, 3, || Ok(())).unwrap();
        assert_eq!(
            Databases::load(dir.path(), 4).unwrap().snapshot(),
            [3, 1, 2, 0]
        );
        assert_eq!(
            Databases::load(dir.path(), 6).unwrap().snapshot(),
            [3, 1, 2, 0, 4, 5]
        );
        d.swap(dir.path(), 3, 0, || Ok(())).unwrap();
        assert!(!dir.path().join(DATABASES_FILE).exists());
        assert_eq!(d.ns(0), 0);
    }
}
