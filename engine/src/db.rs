//! [`Db`]: one database of the store (Redis's SELECT), as [`crate::Engine::db`] hands it out.
//! Its calls are the engine's key calls, confined to the database's namespace (see
//! `databases`): the same key in two databases is two keys.

use std::sync::Arc;

use crate::access;
use crate::cold::{ColdRing, Fetch};
use crate::error::Result;
use crate::read::{self, Entry, ScanCursor};
use crate::shared::Shared;
use crate::write::{self, Update, WriteToken};

/// One database: the key calls of [`crate::Engine`], in this database only. Cheap to make
/// (it resolves the database's namespace once) and to copy; make a new one after
/// [`crate::Engine::swap_databases`] to see the swap.
///
/// Its reads and writes stamp each key they find with the access clock (OBJECT IDLETIME),
/// unless made with [`Db::touching`]`(false)`; writes stamp what they write either way.
#[derive(Clone, Copy)]
pub struct Db<'a> {
    shared: &'a Arc<Shared>,
    db: u32,
    touch: bool,
}

impl std::fmt::Debug for Db<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("db", &self.db)
            .field("ns", &self.ns())
            .finish()
    }
}

impl<'a> Db<'a> {
    pub(crate) fn new(shared: &'a Arc<Shared>, db: u32) -> Db<'a> {
        Db {
            shared,
            db,
            touch: true,
        }
    }

    /// The namespace holding this database now: looked up at each call, so a handle kept
    /// across a SWAPDB or a FLUSHDB (which may move the database to a fresh namespace) still
    /// names the database.
    #[inline]
    fn ns(&self) -> u32 {
        self.shared.databases.ns(self.db)
    }

    /// This database, whose lookups stamp the keys they find with the access clock (`on`,
    /// the default) or leave it (Redis's `LOOKUP_NOTOUCH`: TTL, OBJECT, a client in
    /// CLIENT NO-TOUCH mode).
    #[inline]
    pub fn touching(self, on: bool) -> Db<'a> {
        Db { touch: on, ..self }
    }

    /// Seconds since the key was last read or written (OBJECT IDLETIME), without counting
    /// this as an access; `None` when the key is absent or expired. Every key starts at 0
    /// when the store opens; the clock wraps after 2^24 s (194 days), as Redis's does.
    pub fn idle_s(&self, key: &[u8]) -> Option<u64> {
        access::idle_s(self.shared, self.ns(), key)
    }

    /// Makes the key look last accessed `idle_s` seconds ago (RESTORE ... IDLETIME); false when
    /// the key is absent. Idle times beyond the clock's range wrap as in Redis.
    pub fn set_idle_s(&self, key: &[u8], idle_s: u64) -> bool {
        access::set_idle_s(self.shared, self.ns(), key, idle_s)
    }

    /// As [`crate::Engine::get_with`].
    #[inline]
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(Option<Entry<'_>>) -> R) -> R {
        read::get_with(self.shared, self.ns(), key, self.touch, f)
    }

    /// As [`crate::Engine::get`].
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get_with(key, |e| e.map(|e| e.value.to_vec()))
    }

    /// As [`crate::Engine::contains`].
    pub fn contains(&self, key: &[u8]) -> bool {
        self.get_with(key, |e| e.is_some())
    }

    /// True when the key has a record, live or past its expiry time but not removed yet:
    /// what a write just did to the key, whatever the clock did since (a key written with
    /// a 1 ms time to live may be expired by the time the caller looks).
    pub fn holds(&self, key: &[u8]) -> bool {
        read::holds(self.shared, self.ns(), key)
    }

    /// As [`crate::Engine::version`].
    pub fn version(&self, key: &[u8]) -> Option<u64> {
        read::version(self.shared, self.ns(), key)
    }

    /// As [`crate::Engine::remove_expired`].
    pub fn remove_expired(&self, key: &[u8]) -> bool {
        write::remove_expired(self.shared, self.ns(), key)
    }

    /// As [`crate::Engine::prefetch`].
    pub fn prefetch(&self, keys: &[&[u8]]) {
        read::prefetch(self.shared, self.ns(), keys)
    }

    /// As [`crate::Engine::fetch_cold`].
    pub fn fetch_cold(&self, keys: &[&[u8]]) -> Option<Fetch> {
        self.fetch_cold_for(keys, |_| false)
    }

    /// As [`crate::Engine::fetch_cold_for`].
    pub fn fetch_cold_for(&self, keys: &[&[u8]], blind: impl Fn(usize) -> bool) -> Option<Fetch> {
        self.fetch_cold_with(None, keys, blind)
    }

    /// As [`Db::fetch_cold_for`], with the reads on `ring` (the caller's own io_uring, from
    /// [`crate::Engine::cold_ring`]) instead of the engine's thread pool.
    pub fn fetch_cold_on(
        &self,
        ring: &mut ColdRing,
        keys: &[&[u8]],
        blind: impl Fn(usize) -> bool,
    ) -> Option<Fetch> {
        self.fetch_cold_with(Some(ring), keys, blind)
    }

    fn fetch_cold_with(
        &self,
        ring: Option<&mut ColdRing>,
        keys: &[&[u8]],
        blind: impl Fn(usize) -> bool,
    ) -> Option<Fetch> {
        let sh = self.shared;
        let full = sh.verifier.is_full();
        let blind = |i| !full && blind(i);
        let records = crate::cold::check(&sh.cold, &sh.index, &sh.registry, self.ns(), keys, blind);
        if records.is_empty() {
            return None;
        }
        Some(match ring {
            Some(ring) => ring.submit(records),
            None => sh.cold.submit(records),
        })
    }

    /// As [`crate::Engine::would_block`].
    pub fn would_block(&self, key: &[u8]) -> bool {
        let sh = self.shared;
        !crate::cold::check(&sh.cold, &sh.index, &sh.registry, self.ns(), &[key], |_| {
            false
        })
        .is_empty()
    }

    /// As [`crate::Engine::put`].
    ///
    /// # Errors
    /// As for [`crate::Engine::put`].
    #[inline]
    pub fn put(&self, key: &[u8], value: &[u8], expire_at_ms: u64) -> Result<WriteToken> {
        write::put(self.shared, self.ns(), key, value, expire_at_ms)
    }

    /// As [`crate::Engine::delete`].
    ///
    /// # Errors
    /// As for [`crate::Engine::put`].
    pub fn delete(&self, key: &[u8]) -> Result<Option<WriteToken>> {
        Ok(self.update(key, |_| (Update::Delete, ()))?.1)
    }

    /// As [`crate::Engine::update`].
    ///
    /// # Errors
    /// As for [`crate::Engine::put`].
    pub fn update<'v, R>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<Entry<'_>>) -> (Update<'v>, R),
    ) -> Result<(R, Option<WriteToken>)> {
        write::update(self.shared, self.ns(), key, self.touch, f)
    }

    /// As [`crate::Engine::get_many_with`].
    pub fn get_many_with<R>(&self, keys: &[&[u8]], f: impl FnOnce(&[Option<Entry<'_>>]) -> R) -> R {
        read::get_many_with(self.shared, self.ns(), keys, self.touch, f)
    }

    /// As [`crate::Engine::update_many`]: every key in this database, one atomic batch.
    ///
    /// # Errors
    /// As for [`crate::Engine::update_many`].
    ///
    /// # Panics
    /// When `f` returns a different number of decisions than there are keys.
    pub fn update_many<'v, R>(
        &self,
        keys: &[&[u8]],
        f: impl FnOnce(&[Option<Entry<'_>>]) -> (Vec<Update<'v>>, R),
    ) -> Result<(R, Option<WriteToken>)> {
        let ns = self.ns();
        write::update_many(self.shared, |_| ns, keys, self.touch, f)
    }

    /// Keys in this database, including expired keys not yet removed (Redis's DBSIZE).
    pub fn len(&self) -> u64 {
        self.shared.index.ns_len(self.ns())
    }

    /// True when the database holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// As [`crate::Engine::scan`], over this database's keys.
    pub fn scan(
        &self,
        cursor: ScanCursor,
        count: usize,
        f: impl FnMut(&[u8], Entry<'_>),
    ) -> ScanCursor {
        read::scan(self.shared, self.ns(), cursor, count, f)
    }

    /// A random live key of this database, or `None` when there is none.
    pub fn random_key(&self, random: impl FnMut() -> u64) -> Option<Vec<u8>> {
        read::random_key(self.shared, self.ns(), random)
    }

    /// Deletes every key of this database (FLUSHDB), durably when this returns. The other
    /// databases' records are not rewritten, nor read: when they hold keys, the database
    /// moves to a fresh namespace and the maintenance thread removes the old one's index
    /// slots afterwards (until then `Engine::len` still counts them).
    ///
    /// # Errors
    /// The write or fsync error.
    pub fn clear(&self) -> Result<()> {
        write::clear_ns(self.shared, self.db, self.ns())
    }
}
