//! The in-memory hash index: key hash -> location of the key's newest record.
//!
//! Keys are not stored in memory. A slot is 16 bytes: a 32-bit tag and an 8-bit check taken
//! from the key's 128-bit xxh3 hash, the key's access clock (24 bits of seconds, Redis's LRU
//! clock, for OBJECT IDLETIME), the segment id and the offset of the record. A lookup
//! compares tags and checks and reads the key from the mapped segment only for a slot whose
//! 40 bits both match (the approach of FASTER): with the 8 shard bits, two keys share a
//! fingerprint one time in 2^48, and a lookup in a shard of `n` keys meets a slot of another
//! key with its fingerprint `n / 2^40` times (a record read, from disk if it is not in
//! memory): one lookup in 10^6 for 4 billion keys. A blind write (SET) whose old record is not in
//! memory takes the key's one matching slot without reading the record and has it checked
//! afterwards, off the writer's path (see `verify`); it keeps what the slot held visible
//! meanwhile, so a different key that shared the fingerprint is never hidden. The top byte of
//! the hash picks one of [`SHARD_COUNT`] shards, each
//! behind its own `RwLock`, so writers on different keys rarely meet and a table grows one
//! shard at a time: a resize moves 1/256 of the keys and never doubles the whole index's
//! memory.
//!
//! The access clock is stamped by writes and, under the shard's read lock, by reads: the
//! word that holds it is an `AtomicU32`, stored (relaxed) only when the second changed, so a
//! hot key read by every worker costs a compare, not a cache line passed between cores.
//!
//! Inside a shard: open addressing with linear probing and backward-shift deletion. The home
//! slot of a tag is `tag * slots / 2^32`, so the order of tags follows the order of slots at
//! any table size; that keeps a resize a monotone remap and lets `Engine::scan` walk tags in
//! order.
//!
//! Memory: at most 80% load, and a table grows by half, so between 16 / 0.8 = 20 and
//! 16 / 0.53 = 30 bytes per key; after `open`, tables are cut to their keys (20-25 bytes).

use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::RwLock;
use xxhash_rust::xxh3::{xxh3_128, xxh3_128_with_seed};

use crate::clock::{access_idle_s, ACCESS_CLOCK_BITS, ACCESS_CLOCK_MAX};

pub const SHARD_COUNT: usize = 256;
const SHARD_BITS: u32 = 8;
/// Smallest table per shard (slots); tables are sized in multiples of it.
const TABLE_SLOTS_MIN: usize = 8;
/// Load factor numerator/denominator: a shard grows past 80% full.
const LOAD_NUM: usize = 4;
const LOAD_DEN: usize = 5;
/// Offsets are below 2^31 (see `format::SEGMENT_SIZE_MAX_BYTES`), so the top bit of a slot's
/// offset is a mark. During recovery it marks a slot that holds a tombstone (or an expired
/// record) until the sweep at the end of `open`; at run time it marks a slot whose record
/// carries an expiry, so the expiry sweep reads only those records.
pub const OFFSET_MARK: u32 = 1 << 31;

/// Segment ids are at most `format::SEGMENT_ID_MAX`, so the top bit of a slot's segment is a
/// mark too: the slot keeps a record that a blind write displaced (see [`Table::take_blind`]).
/// It is no key of the table (not counted, not scanned) until `verify` says whose record it
/// is, but lookups of any key other than the writer's still find it.
const SEG_DISPLACED: u32 = 1 << 31;
const _: () = assert!(crate::format::SEGMENT_ID_MAX < SEG_DISPLACED);

/// Where a record lives. `seg == 0` never names a segment: it marks an empty slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub seg: u32,
    pub off: u32,
}

/// Bits of a slot's check: what the access clock leaves of the word they share.
pub const CHECK_BITS: u32 = 32 - ACCESS_CLOCK_BITS;
const CHECK_MASK: u32 = (1 << CHECK_BITS) - 1;

#[derive(Debug, Default)]
#[repr(C)]
struct Slot {
    tag: u32,
    /// The check (low [`CHECK_BITS`]) and the access clock (the rest). Readers under the
    /// shard's read lock store the clock, so every access to this word while the shard can be
    /// shared is atomic; the check bits change only under the write lock.
    stamp: AtomicU32,
    seg: u32,
    off: u32,
}
const _: () = assert!(std::mem::size_of::<Slot>() == 16);
const _: () =
    assert!(CHECK_BITS >= 8 && ACCESS_CLOCK_MAX << CHECK_BITS >> CHECK_BITS == ACCESS_CLOCK_MAX);

impl Clone for Slot {
    fn clone(&self) -> Slot {
        Slot {
            tag: self.tag,
            stamp: AtomicU32::new(self.stamp.load(Ordering::Relaxed)),
            seg: self.seg,
            off: self.off,
        }
    }
}

impl Slot {
    fn loc(&self) -> Loc {
        Loc {
            seg: self.seg & !SEG_DISPLACED,
            off: self.off & !OFFSET_MARK,
        }
    }

    /// Occupied by a key (not empty, not displaced).
    fn is_key(&self) -> bool {
        self.seg != 0 && self.seg & SEG_DISPLACED == 0
    }

    fn check(&self) -> u32 {
        self.stamp.load(Ordering::Relaxed) & CHECK_MASK
    }

    fn clock(&self) -> u32 {
        self.stamp.load(Ordering::Relaxed) >> CHECK_BITS
    }

    fn stamp_word(check: u32, clock: u32) -> u32 {
        debug_assert!(check <= CHECK_MASK && clock <= ACCESS_CLOCK_MAX);
        check | clock << CHECK_BITS
    }
}

/// A key's 128-bit hash: the shard (top 8 bits), the tag (the next 32) and the check (the
/// low [`CHECK_BITS`]), which slots keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyHash(u128);

impl KeyHash {
    /// The hash of `key` in namespace `ns`: namespace 0 hashes the key alone (as version 1
    /// did), any other seeds the hash with the namespace, so the same key in two namespaces
    /// has two unrelated fingerprints.
    #[inline]
    pub fn of_ns(ns: u32, key: &[u8]) -> KeyHash {
        if ns == 0 {
            KeyHash::of(key)
        } else {
            KeyHash(xxh3_128_with_seed(key, u64::from(ns)))
        }
    }

    /// The hash of `key` in namespace 0.
    pub fn of(key: &[u8]) -> KeyHash {
        #[cfg(test)]
        if let Some(rest) = key.strip_prefix(COLLIDE_PREFIX) {
            // Unit tests' keys with one fingerprint (shard, tag, check), which xxh3 would take
            // 2^48 tries to find; the bits between stay the key's own.
            let shard = rest.first().copied().unwrap_or(0) & 1;
            let own = xxh3_128(key) & (((1u128 << 56) - 1) << 32);
            return KeyHash(KeyHash::from_parts(shard, 0xC011_1DE0, 0x5E).0 | own);
        }
        KeyHash(xxh3_128(key))
    }
    pub fn shard(self) -> usize {
        (self.0 >> (128 - SHARD_BITS)) as usize
    }
    /// The 32 bits below the shard bits: the slot's position in its table follows it.
    pub fn tag(self) -> u32 {
        (self.0 >> (128 - SHARD_BITS - 32)) as u32
    }
    /// [`CHECK_BITS`] more bits, compared with the tag before any record is read.
    pub fn check(self) -> u32 {
        self.0 as u32 & CHECK_MASK
    }
    /// A hash with these parts (tests that need colliding keys).
    #[cfg(test)]
    pub fn from_parts(shard: u8, tag: u32, check: u32) -> KeyHash {
        assert!(check <= CHECK_MASK, "a check of {CHECK_BITS} bits");
        KeyHash(
            (u128::from(shard) << (128 - SHARD_BITS))
                | (u128::from(tag) << (128 - SHARD_BITS - 32))
                | u128::from(check),
        )
    }
}

/// Keys starting with this share one fingerprint in unit tests (see [`KeyHash::of`]).
#[cfg(test)]
pub const COLLIDE_PREFIX: &[u8] = b"\xffcollide-";

/// Asks the CPU to bring the cache line holding `p` closer. A hint: it reads nothing
/// architecturally and cannot fault, whatever `p` points at.
pub fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` never faults and has no architectural effect.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The table size for `keys` keys under the load limit.
fn slots_for(keys: usize) -> usize {
    let n = (keys * LOAD_DEN).div_ceil(LOAD_NUM).max(TABLE_SLOTS_MIN);
    n.div_ceil(TABLE_SLOTS_MIN) * TABLE_SLOTS_MIN
}

pub struct Index {
    shards: Box<[RwLock<Table>]>,
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

impl Index {
    pub fn new() -> Index {
        Index {
            shards: (0..SHARD_COUNT)
                .map(|_| RwLock::new(Table::with_slots(TABLE_SLOTS_MIN)))
                .collect(),
        }
    }

    pub fn shard(&self, i: usize) -> &RwLock<Table> {
        &self.shards[i]
    }

    /// Keys in the index (expired keys not yet removed included).
    pub fn len(&self) -> u64 {
        self.shards.iter().map(|s| s.read().len() as u64).sum()
    }

    /// Keys of namespace `ns` (expired keys not yet removed included).
    pub fn ns_len(&self, ns: u32) -> u64 {
        self.shards.iter().map(|s| s.read().ns_len(ns) as u64).sum()
    }

    /// Keys, and keys with an expiry, of every namespace that has any key, by namespace.
    pub fn ns_lens(&self) -> std::collections::BTreeMap<u32, NsCounts> {
        let mut out = std::collections::BTreeMap::<u32, NsCounts>::new();
        for s in self.shards.iter() {
            let t = s.read();
            let mut others = 0;
            for (ns, n) in t.ns_lens() {
                out.entry(ns).or_default().keys += n as u64;
                others += n;
            }
            if t.len() > others {
                out.entry(0).or_default().keys += (t.len() - others) as u64;
            }
            for (ns, n) in t.ns_expires() {
                out.entry(ns).or_default().expires += n as u64;
            }
        }
        out
    }

    /// Bytes of memory held by the tables.
    pub fn memory_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| (s.read().slots.len() * std::mem::size_of::<Slot>()) as u64)
            .sum::<u64>()
            + (SHARD_COUNT * std::mem::size_of::<RwLock<Table>>()) as u64
    }
}

/// A namespace's key counts (Redis's INFO keyspace `keys` and `expires`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsCounts {
    /// Keys, expired ones not yet removed included.
    pub keys: u64,
    /// Of those, the keys whose record carries an expiry (marked slots).
    pub expires: u64,
}

/// One shard's open-addressed table.
pub struct Table {
    slots: Vec<Slot>,
    len: usize,
    /// Keys of each namespace other than 0 (slots do not say their namespace: the callers
    /// that insert and remove do). Namespace 0 has `len` minus the sum.
    ns_len: std::collections::BTreeMap<u32, usize>,
    /// Marked slots (keys with an expiry at run time) of namespace 0, and of each other
    /// namespace that has any. Kept beside `len` under the same shard lock, so counting costs
    /// the write path no shared memory; only a change of mark touches it.
    expires0: usize,
    expires_ns: std::collections::BTreeMap<u32, usize>,
    /// Displaced slots (see [`SEG_DISPLACED`]): the record each keeps and the hash of the key
    /// whose blind write displaced it, which must not find it. As many as blind writes wait
    /// for their check in this shard (at most `verify::VERIFY_PENDING_MAX` in all).
    displaced: Vec<(Loc, KeyHash)>,
}

impl Table {
    fn with_slots(n: usize) -> Table {
        assert!(n >= TABLE_SLOTS_MIN && n % TABLE_SLOTS_MIN == 0);
        Table {
            slots: vec![Slot::default(); n],
            len: 0,
            ns_len: Default::default(),
            expires0: 0,
            expires_ns: Default::default(),
            displaced: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Keys of namespace `ns` in this shard.
    pub fn ns_len(&self, ns: u32) -> usize {
        if ns == 0 {
            self.len - self.ns_len.values().sum::<usize>()
        } else {
            self.ns_len.get(&ns).copied().unwrap_or(0)
        }
    }

    /// Keys of each namespace other than 0 that has any.
    pub fn ns_lens(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        self.ns_len.iter().map(|(&ns, &n)| (ns, n))
    }

    /// Marked slots of each namespace that has any.
    pub fn ns_expires(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        (self.expires0 > 0)
            .then_some((0, self.expires0))
            .into_iter()
            .chain(self.expires_ns.iter().map(|(&ns, &n)| (ns, n)))
    }

    /// Counts a slot of namespace `ns` becoming marked (`up`) or unmarked. A decrement below
    /// zero can only follow a fingerprint collision's blind write (see `verify`) across
    /// namespaces, which counts the displaced key's mark in the writer's namespace: it
    /// saturates there instead of taking the server down.
    fn count_expires(&mut self, ns: u32, up: bool) {
        let n = if ns == 0 {
            &mut self.expires0
        } else {
            self.expires_ns.entry(ns).or_default()
        };
        if up {
            *n += 1;
        } else {
            debug_assert!(*n > 0, "namespace {ns} expires count below zero");
            *n = n.saturating_sub(1);
        }
        if ns != 0 && *n == 0 {
            self.expires_ns.remove(&ns);
        }
    }

    /// Counts every key's namespace again, `ns_of` telling it from the key's location
    /// (recovery, after its sweep removed slots without knowing their namespace).
    pub fn recount_ns(&mut self, mut ns_of: impl FnMut(Loc) -> u32) {
        self.ns_len.clear();
        for s in self.slots.iter().filter(|s| s.is_key()) {
            let ns = ns_of(s.loc());
            if ns != 0 {
                *self.ns_len.entry(ns).or_default() += 1;
            }
        }
    }

    fn count_ns(&mut self, ns: u32, up: bool) {
        if ns == 0 {
            return;
        }
        let n = self.ns_len.entry(ns).or_default();
        if up {
            *n += 1;
        } else {
            assert!(*n > 0, "namespace {ns} count below zero");
            *n -= 1;
            if *n == 0 {
                self.ns_len.remove(&ns);
            }
        }
    }

    pub fn capacity_slots(&self) -> usize {
        self.slots.len()
    }

    fn home(&self, tag: u32) -> usize {
        ((u64::from(tag) * self.slots.len() as u64) >> 32) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Asks the CPU to fetch the home slot of `h` into cache ahead of a lookup.
    pub fn prefetch(&self, h: KeyHash) {
        prefetch_line((&self.slots[self.home(h.tag())] as *const Slot).cast());
    }

    /// The location in the first slot, from the home slot of `h` on, whose tag and check
    /// match: the record most likely to hold the key (unchecked; for prefetching).
    pub fn first_match(&self, h: KeyHash) -> Option<Loc> {
        let mut first = None;
        self.find(h, |loc| {
            first = Some(loc);
            true
        });
        first
    }

    /// The slot holding the key, if any. `is_key` is asked only about slots whose tag and
    /// check match; it reads the record at the location and compares keys.
    pub fn find(&self, h: KeyHash, mut is_key: impl FnMut(Loc) -> bool) -> Option<usize> {
        let (tag, check) = (h.tag(), h.check());
        let mut i = self.home(tag);
        loop {
            let s = &self.slots[i];
            if s.seg == 0 {
                return None;
            }
            if s.tag == tag
                && s.check() == check
                && !(s.seg & SEG_DISPLACED != 0 && self.displaced_by(s.loc()) == Some(h))
                && is_key(s.loc())
            {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    /// The hash of the key whose blind write displaced the record at `loc`.
    fn displaced_by(&self, loc: Loc) -> Option<KeyHash> {
        self.displaced
            .iter()
            .find(|(l, _)| *l == loc)
            .map(|&(_, h)| h)
    }

    /// The slot of a key with tag `tag` that points at `loc` (compaction, expiry).
    pub fn find_loc(&self, tag: u32, loc: Loc) -> Option<usize> {
        let mut i = self.home(tag);
        loop {
            let s = &self.slots[i];
            if s.seg == 0 {
                return None;
            }
            if s.tag == tag && s.loc() == loc {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    pub fn loc(&self, i: usize) -> Loc {
        let s = &self.slots[i];
        debug_assert!(s.seg != 0);
        s.loc()
    }

    /// Notes an access to slot `i` at `clock`: stores the clock only when it changed, so a
    /// key read many times a second costs a load and a compare. Takes `&self`: a reader
    /// holds the shard's read lock, other readers may stamp the same slot at once (each
    /// store keeps the check bits, which only a writer changes), and no writer runs meanwhile.
    #[inline]
    pub fn touch(&self, i: usize, clock: u32) {
        let stamp = &self.slots[i].stamp;
        let old = stamp.load(Ordering::Relaxed);
        let new = Slot::stamp_word(old & CHECK_MASK, clock);
        if old != new {
            stamp.store(new, Ordering::Relaxed);
        }
    }

    /// Seconds since slot `i` was last accessed, at access clock `now`.
    pub fn idle_s(&self, i: usize, now: u32) -> u32 {
        access_idle_s(self.slots[i].clock(), now)
    }

    /// True when slot `i` keeps the old record of a blind write of its own key, whose hash
    /// `owner` gives (asked only of a displaced slot): a stale version, which a scan skips. A
    /// displaced record of another key is that key's only one, which a scan must see.
    pub fn displaced_by_own_key(&self, i: usize, owner: impl FnOnce() -> KeyHash) -> bool {
        self.is_displaced(i) && self.displaced_by(self.slots[i].loc()) == Some(owner())
    }

    /// True when the slot keeps a displaced record (see [`Table::take_blind`]).
    pub fn is_displaced(&self, i: usize) -> bool {
        self.slots[i].seg & SEG_DISPLACED != 0
    }

    /// True when the slot is marked (see [`OFFSET_MARK`]).
    pub fn is_marked(&self, i: usize) -> bool {
        self.slots[i].off & OFFSET_MARK != 0
    }

    /// Points slot `i`, a key of namespace `ns`, at `loc`, marked or not, accessed at `clock`
    /// (a write: a new value, as a new object in Redis has a fresh LRU clock).
    #[inline]
    pub fn set(&mut self, i: usize, loc: Loc, marked: bool, ns: u32, clock: u32) {
        if self.slots[i].seg & SEG_DISPLACED != 0 {
            // A write of a key that found its record displaced: the slot is its key's again.
            self.undisplace(i, ns);
        }
        let was = self.is_marked(i);
        self.move_to(i, loc);
        let s = &mut self.slots[i];
        s.off = loc.off | if marked { OFFSET_MARK } else { 0 };
        let stamp = s.stamp.get_mut();
        *stamp = Slot::stamp_word(*stamp & CHECK_MASK, clock);
        if was != marked {
            self.count_expires(ns, marked);
        }
    }

    /// Points slot `i` at `loc`, keeping its mark and access clock (a record moved by
    /// compaction).
    pub fn move_to(&mut self, i: usize, loc: Loc) {
        assert!(loc.seg != 0 && loc.off & OFFSET_MARK == 0);
        let s = &mut self.slots[i];
        assert!(s.is_key(), "set on an empty or displaced slot");
        s.seg = loc.seg;
        s.off = loc.off | (s.off & OFFSET_MARK);
    }

    /// A blind write of the key hashed `h` (see `verify`): points slot `i`, the one slot
    /// matching `h`, at the key's new record `loc`, and keeps the record the slot held in a
    /// displaced slot until `verify` says whose it was. The write's key never finds the
    /// displaced slot; any other key does, so a key whose fingerprint `h` shares is not hidden
    /// meanwhile. Returns the displaced location.
    pub fn take_blind(
        &mut self,
        i: usize,
        h: KeyHash,
        loc: Loc,
        marked: bool,
        ns: u32,
        clock: u32,
    ) -> Loc {
        let old = self.slots[i].clone();
        assert!(old.is_key() && old.tag == h.tag() && old.check() == h.check());
        self.set(i, loc, marked, ns, clock);
        self.grow_for_one();
        let kept = old.loc();
        self.place(Slot {
            seg: old.seg | SEG_DISPLACED,
            ..old
        });
        self.displaced.push((kept, h));
        kept
    }

    /// The displaced slot keeping `old` for the blind write of the key hashed `h`, if it is
    /// still displaced (a write or a delete of its key, or a flush, may have resolved it).
    pub fn find_displaced(&self, h: KeyHash, old: Loc) -> Option<usize> {
        if self.displaced_by(old) != Some(h) {
            return None;
        }
        let i = self.find_loc(h.tag(), old)?;
        (self.slots[i].seg & SEG_DISPLACED != 0).then_some(i)
    }

    /// Makes displaced slot `i` a key of namespace `ns` again (its record was another key's).
    pub fn undisplace(&mut self, i: usize, ns: u32) {
        let s = &mut self.slots[i];
        assert!(s.seg & SEG_DISPLACED != 0, "not displaced");
        s.seg &= !SEG_DISPLACED;
        let loc = s.loc();
        self.forget_displaced(loc);
        self.len += 1;
        self.count_ns(ns, true);
        if self.is_marked(i) {
            self.count_expires(ns, true);
        }
    }

    /// Settles displaced slot `i` once its record is known to hold the key hashed `owner`, of
    /// namespace `ns`: the writer's own old record is dropped (false: it is dead), another
    /// key's record makes the slot that key's again (true; a fingerprint collision).
    pub fn settle_displaced(&mut self, i: usize, owner: KeyHash, ns: u32) -> bool {
        let writer = self.displaced_by(self.slots[i].loc());
        assert!(self.is_displaced(i) && writer.is_some(), "a displaced slot");
        if writer == Some(owner) {
            self.remove_at(i, ns);
            false
        } else {
            self.undisplace(i, ns);
            true
        }
    }

    fn forget_displaced(&mut self, loc: Loc) {
        let at = self.displaced.iter().position(|(l, _)| *l == loc);
        self.displaced
            .swap_remove(at.expect("a displaced slot is listed"));
    }

    /// Grows the table if one more slot would pass the load limit.
    fn grow_for_one(&mut self) {
        if (self.len + self.displaced.len() + 1) * LOAD_DEN > self.slots.len() * LOAD_NUM {
            let n = self.slots.len() + self.slots.len() / 2;
            self.grow_to(n.div_ceil(TABLE_SLOTS_MIN) * TABLE_SLOTS_MIN);
        }
    }

    /// Inserts a key of namespace `ns` that [`Table::find`] just reported absent, accessed at
    /// `clock`.
    pub fn insert_absent(&mut self, h: KeyHash, loc: Loc, marked: bool, ns: u32, clock: u32) {
        assert!(loc.seg != 0 && loc.seg & SEG_DISPLACED == 0 && loc.off & OFFSET_MARK == 0);
        self.grow_for_one();
        let off = loc.off | if marked { OFFSET_MARK } else { 0 };
        self.place(Slot {
            tag: h.tag(),
            stamp: AtomicU32::new(Slot::stamp_word(h.check(), clock)),
            seg: loc.seg,
            off,
        });
        self.len += 1;
        self.count_ns(ns, true);
        if marked {
            self.count_expires(ns, true);
        }
    }

    fn place(&mut self, slot: Slot) {
        let mut i = self.home(slot.tag);
        while self.slots[i].seg != 0 {
            i = self.next(i);
        }
        self.slots[i] = slot;
    }

    pub fn reserve(&mut self, keys: usize) {
        let n = slots_for(keys + self.displaced.len());
        if n > self.slots.len() {
            self.grow_to(n);
        }
    }

    /// Rehashes every key into a table of `n` slots (larger or smaller).
    fn grow_to(&mut self, n: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); n]);
        for s in old.into_iter().filter(|s| s.seg != 0) {
            self.place(s);
        }
    }

    /// Removes slot `i`, a key of namespace `ns` (or a displaced slot: its record is dead),
    /// shifting later members of its probe run back so lookups stay correct.
    pub fn remove_at(&mut self, i: usize, ns: u32) {
        assert!(self.slots[i].seg != 0, "remove of an empty slot");
        let displaced = self.slots[i].seg & SEG_DISPLACED != 0;
        if displaced {
            self.forget_displaced(self.slots[i].loc());
        } else if self.is_marked(i) {
            self.count_expires(ns, false);
        }
        let mut hole = i;
        let mut j = self.next(i);
        loop {
            if self.slots[j].seg == 0 {
                break;
            }
            let home = self.home(self.slots[j].tag);
            // Move s into the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = std::mem::take(&mut self.slots[j]);
                hole = j;
            }
            j = self.next(j);
        }
        self.slots[hole] = Slot::default();
        if !displaced {
            self.len -= 1;
            self.count_ns(ns, false);
        }
    }

    /// Removes every marked slot (recovery's tombstones); returns how many. No slot is marked
    /// afterwards, so no key counts as expiring.
    pub fn sweep_marked(&mut self) -> usize {
        self.expires0 = 0;
        self.expires_ns.clear();
        if !self
            .slots
            .iter()
            .any(|s| s.seg != 0 && s.off & OFFSET_MARK != 0)
        {
            return 0;
        }
        let before = self.len;
        let slots_before = self.slots.len();
        let kept: Vec<Slot> = std::mem::take(&mut self.slots)
            .into_iter()
            .filter(|s| s.seg != 0 && s.off & OFFSET_MARK == 0)
            .collect();
        let n = slots_for(kept.len()).max(slots_before);
        self.slots = vec![Slot::default(); n];
        self.len = kept.len();
        for s in kept {
            self.place(s);
        }
        before - self.len
    }

    /// Shrinks the table to the smallest size that holds its keys under the load limit:
    /// recovery sizes tables for every record it will meet, of which overwrites and deletes
    /// leave fewer live keys (a store restarted after heavy overwrites held 40 bytes per live
    /// key instead of at most 30).
    pub fn shrink_to_fit(&mut self) {
        let n = slots_for(self.len + self.displaced.len());
        if n < self.slots.len() {
            self.grow_to(n);
        }
    }

    /// Removes every key of namespace `ns` (`ns_of` tells a slot's namespace from its
    /// location) and returns their locations, each with its slot's mark.
    pub fn remove_ns(&mut self, ns: u32, mut ns_of: impl FnMut(Loc) -> u32) -> Vec<(Loc, bool)> {
        let mut gone = Vec::new();
        let mut kept = Vec::with_capacity(self.len);
        let (mut keys_gone, mut expiring) = (0, 0);
        for s in self.slots.iter().filter(|s| s.seg != 0) {
            let loc = s.loc();
            if ns_of(loc) == ns {
                // A displaced record of the namespace is gone with it (its blind write's
                // check then finds nothing to settle).
                let marked = s.off & OFFSET_MARK != 0;
                keys_gone += usize::from(s.is_key());
                expiring += usize::from(marked && s.is_key());
                gone.push((loc, marked));
            } else {
                kept.push(s.clone());
            }
        }
        if gone.is_empty() {
            return gone;
        }
        self.displaced
            .retain(|(l, _)| !gone.iter().any(|(g, _)| g == l));
        self.slots = vec![Slot::default(); slots_for(kept.len())];
        self.len = kept.iter().filter(|s| s.is_key()).count();
        for s in kept {
            self.place(s);
        }
        // By one per slot: a slot of `ns` that `ns_of` did not name (a write the caller did
        // not see yet) stays counted. Displaced slots were never counted.
        for _ in 0..keys_gone {
            self.count_ns(ns, false);
        }
        for _ in 0..expiring {
            self.count_expires(ns, false);
        }
        gone
    }

    /// Drops every key and shrinks to the minimum size.
    pub fn clear(&mut self) {
        *self = Table::with_slots(TABLE_SLOTS_MIN);
    }

    /// The tag and location held by slot `i`, if a key occupies it.
    pub fn slot_at(&self, i: usize) -> Option<(u32, Loc)> {
        let s = self.slots.get(i)?;
        s.is_key().then_some((s.tag, s.loc()))
    }

    /// Where every key's record is.
    pub fn locs(&self) -> Vec<Loc> {
        (0..self.slots.len())
            .filter_map(|i| self.slot_at(i).map(|(_, loc)| loc))
            .collect()
    }

    /// Pushes onto `out` the location of every record a slot points at (keys and displaced
    /// records) in a segment `wanted` accepts: compaction's inputs, found with one sequential
    /// pass over the table instead of one lookup per record of the inputs.
    pub fn locs_in(&self, wanted: impl Fn(u32) -> bool, out: &mut Vec<Loc>) {
        for s in &self.slots {
            if s.seg != 0 {
                let loc = s.loc();
                if wanted(loc.seg) {
                    out.push(loc);
                }
            }
        }
    }

    /// A slot at or after position `from` (wrapping), for RANDOMKEY.
    pub fn occupied_from(&self, from: usize) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut i = from % self.slots.len();
        while !self.slots[i].is_key() {
            i = self.next(i);
        }
        Some(i)
    }

    /// Slot numbers and tags of every key whose tag is at least `tag_from`, displaced slots
    /// included (see [`Table::displaced_by_own_key`]).
    pub fn tags_from(&self, tag_from: u32) -> Vec<(u32, usize)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.seg != 0 && s.tag >= tag_from)
            .map(|(i, s)| (s.tag, i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A model where keys are u64s whose "record" lives at off = key.
    fn tag_of(k: u64) -> KeyHash {
        KeyHash::of(&k.to_le_bytes())
    }

    #[test]
    fn insert_find_remove_match_a_hashmap() {
        let mut t = Table::with_slots(TABLE_SLOTS_MIN);
        let mut model = HashMap::new();
        let mut x: u64 = 12345;
        for step in 0..20_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (x >> 33) % 3000;
            let tag = tag_of(k);
            let found = t.find(tag, |l| u64::from(l.off) == k);
            if step % 3 == 0 {
                if let Some(i) = found {
                    t.remove_at(i, 0);
                }
                model.remove(&k);
            } else {
                let loc = Loc {
                    seg: 1 + step,
                    off: k as u32,
                };
                match found {
                    Some(i) => t.set(i, loc, false, 0, 0),
                    None => t.insert_absent(tag, loc, false, 0, 0),
                }
                model.insert(k, loc.seg);
            }
            assert_eq!(t.len(), model.len());
        }
        for k in 0..3000u64 {
            let got = t
                .find(tag_of(k), |l| u64::from(l.off) == k)
                .map(|i| t.loc(i).seg);
            assert_eq!(got, model.get(&k).copied(), "key {k}");
        }
    }

    #[test]
    fn colliding_tags_are_told_apart_by_the_key_check() {
        let mut t = Table::with_slots(TABLE_SLOTS_MIN);
        let same = KeyHash::from_parts(0, 7, 9);
        for k in 0..5u32 {
            t.insert_absent(same, Loc { seg: 1, off: k }, false, 0, 0);
        }
        for k in 0..5u32 {
            let i = t.find(same, |l| l.off == k).expect("present");
            assert_eq!(t.loc(i).off, k);
        }
        let i = t.find(same, |l| l.off == 2).unwrap();
        t.remove_at(i, 0);
        assert!(t.find(same, |l| l.off == 2).is_none());
        for k in [0u32, 1, 3, 4] {
            assert!(t.find(same, |l| l.off == k).is_some());
        }
        // Another check with the same tag is never asked about.
        let other = KeyHash::from_parts(0, 7, 10);
        assert!(t
            .find(other, |_| panic!("compared a different check"))
            .is_none());
        assert_eq!(
            t.find_loc(7, Loc { seg: 1, off: 3 }).map(|i| t.loc(i).off),
            Some(3)
        );
    }

    #[test]
    fn namespaces_are_counted_and_removed_alone() {
        let mut t = Table::with_slots(TABLE_SLOTS_MIN);
        for k in 0..300u32 {
            let ns = k % 3;
            let h = KeyHash::of_ns(ns, &k.to_le_bytes());
            t.insert_absent(
                h,
                Loc {
                    seg: 1 + ns,
                    off: k,
                },
                false,
                ns,
                0,
            );
        }
        assert_eq!((t.ns_len(0), t.ns_len(1), t.ns_len(2)), (100, 100, 100));
        let gone = t.remove_ns(1, |l| l.seg - 1);
        assert_eq!(gone.len(), 100);
        assert_eq!((t.ns_len(0), t.ns_len(1), t.ns_len(2)), (100, 0, 100));
        for k in 0..300u32 {
            let ns = k % 3;
            let h = KeyHash::of_ns(ns, &k.to_le_bytes());
            assert_eq!(t.find(h, |l| l.off == k).is_some(), ns != 1, "key {k}");
        }
        assert_ne!(KeyHash::of_ns(1, b"k"), KeyHash::of_ns(2, b"k"));
        assert_eq!(KeyHash::of_ns(0, b"k"), KeyHash::of(b"k"));
    }

    #[test]
    fn marked_slots_are_swept() {
        let mut t = Table::with_slots(TABLE_SLOTS_MIN);
        for k in 0..100u32 {
            t.insert_absent(
                tag_of(u64::from(k)),
                Loc { seg: 1, off: k },
                k % 2 == 0,
                0,
                0,
            );
        }
        assert_eq!(t.sweep_marked(), 50);
        assert_eq!(t.len(), 50);
        for k in 0..100u32 {
            let found = t.find(tag_of(u64::from(k)), |l| l.off == k).is_some();
            assert_eq!(found, k % 2 == 1);
        }
    }

    #[test]
    fn load_stays_under_eighty_percent() {
        let mut t = Table::with_slots(TABLE_SLOTS_MIN);
        for k in 0..10_000u32 {
            t.insert_absent(tag_of(u64::from(k)), Loc { seg: 1, off: k }, false, 0, 0);
            assert!(t.len() * 5 <= t.capacity_slots() * 4);
        }
    }

    #[test]
    fn shrink_to_fit_keeps_every_key_and_the_load_limit() {
        let mut t = Table::with_slots(TABLE_SLOTS_MIN);
        t.reserve(40_000);
        for k in 0..5_000u32 {
            t.insert_absent(tag_of(u64::from(k)), Loc { seg: 1, off: k }, false, 0, 0);
        }
        let before = t.capacity_slots();
        t.shrink_to_fit();
        assert!(
            t.capacity_slots() < before / 4,
            "{} of {before}",
            t.capacity_slots()
        );
        assert!(t.len() * 5 <= t.capacity_slots() * 4);
        assert!(
            t.len() * 5 * 2 > t.capacity_slots() * 4,
            "not more than twice the need"
        );
        for k in 0..5_000u32 {
            assert!(
                t.find(tag_of(u64::from(k)), |l| l.off == k).is_some(),
                "key {k}"
            );
        }
    }

    #[test]
    fn reserve_sizes_up_front() {
        let mut t = Table::with_slots(TABLE_SLOTS_MIN);
        t.reserve(40_000);
        let slots = t.capacity_slots();
        assert!(slots * 4 >= 40_000 * 5, "{slots} slots");
        for k in 0..40_000u32 {
            t.insert_absent(tag_of(u64::from(k)), Loc { seg: 1, off: k }, false, 0, 0);
        }
        assert_eq!(t.capacity_slots(), slots, "no growth after reserving");
    }

    #[test]
    fn the_access_clock_is_kept_beside_the_check_and_stamped_only_when_it_changed() {
        let mut t = Table::with_slots(TABLE_SLOTS_MIN);
        let h = KeyHash::from_parts(0, 7, CHECK_MASK);
        t.insert_absent(h, Loc { seg: 1, off: 0 }, false, 0, 100);
        let i = t.find(h, |_| true).unwrap();
        assert_eq!(t.idle_s(i, 130), 30);
        t.touch(i, 125);
        assert_eq!(t.idle_s(i, 130), 5);
        assert_eq!(
            t.slots[i].check(),
            CHECK_MASK,
            "the check survives the stamp"
        );
        t.touch(i, ACCESS_CLOCK_MAX);
        assert_eq!(t.idle_s(i, 4), 5, "across the wrap");
        // A write stamps; compaction's move keeps the stamp.
        t.set(i, Loc { seg: 2, off: 0 }, false, 0, 50);
        t.move_to(i, Loc { seg: 3, off: 0 });
        assert_eq!(t.idle_s(i, 60), 10);
        assert!(t.find(h, |l| l.seg == 3).is_some());
        // Growth keeps every stamp.
        for k in 0..100u32 {
            t.insert_absent(tag_of(u64::from(k)), Loc { seg: 9, off: k }, false, 0, 7);
        }
        let i = t.find(h, |_| true).unwrap();
        assert_eq!(t.idle_s(i, 60), 10);
    }

    #[test]
    fn a_displaced_record_is_found_by_every_key_but_its_writer() {
        let mut t = Table::with_slots(TABLE_SLOTS_MIN);
        let writer = KeyHash::from_parts(0, 7, 9);
        let other = KeyHash(writer.0 ^ (1 << 40)); // same tag and check, another key
        assert_ne!(writer, other);
        assert_eq!((writer.tag(), writer.check()), (other.tag(), other.check()));
        let old = Loc { seg: 1, off: 10 };
        t.insert_absent(other, old, true, 0, 0);
        let i = t.find(writer, |_| true).unwrap();
        let new = Loc { seg: 2, off: 20 };
        assert_eq!(t.take_blind(i, writer, new, false, 0, 5), old);
        assert_eq!(t.len(), 1, "a displaced slot is no key");
        assert_eq!(t.ns_expires().count(), 0, "nor an expiring one");
        assert_eq!(t.tags_from(0).len(), 2, "a scan sees both records");
        assert!(t
            .tags_from(0)
            .iter()
            .all(|&(_, i)| t.displaced_by_own_key(i, || writer) == (t.loc(i) == old)));
        assert_eq!(t.occupied_from(0).map(|i| t.loc(i)), Some(new));
        // The writer meets only its new record; the other key still finds its own.
        let mut seen = Vec::new();
        t.find(writer, |l| {
            seen.push(l);
            false
        });
        assert_eq!(seen, vec![new]);
        let j = t.find(other, |l| l == old).expect("not hidden");
        assert!(t.is_displaced(j));
        assert_eq!(t.find_displaced(writer, old), Some(j));
        // The check finds it was the other key's: a key again, counted.
        t.undisplace(j, 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t.ns_expires().collect::<Vec<_>>(), vec![(0, 1)]);
        assert_eq!(t.find_displaced(writer, old), None);

        // Again, and this time the record was the writer's own: the check drops it.
        let i = t.find(writer, |l| l == new).unwrap();
        let newer = Loc { seg: 3, off: 30 };
        t.take_blind(i, writer, newer, false, 0, 6);
        let d = t.find_displaced(writer, new).unwrap();
        t.remove_at(d, 0);
        assert_eq!(t.len(), 2);
        assert!(t.find(writer, |l| l == new).is_none());
        assert!(t.find(writer, |l| l == newer).is_some());

        // The writer deleted, its next blind write takes the other key's slot; a write of the
        // other key into the displaced slot makes it its key's again.
        let i = t.find(writer, |l| l == newer).unwrap();
        t.remove_at(i, 0);
        let i = t.find(other, |l| l == old).unwrap();
        t.take_blind(i, writer, Loc { seg: 4, off: 0 }, false, 0, 7);
        assert_eq!(t.len(), 1);
        let d = t.find(other, |l| l == old).unwrap();
        t.set(d, Loc { seg: 5, off: 0 }, false, 0, 8);
        assert_eq!(t.len(), 2);
        assert!(t.find(other, |l| l.seg == 5).is_some());
        assert_eq!(t.find_displaced(writer, old), None);
        assert!(t.displaced.is_empty());
    }

    #[test]
    fn blind_takes_among_colliding_keys_match_a_hashmap() {
        // Keys 0..24 on four tags with one check: fingerprints collide all the time. A key's
        // "record" is its number in `off`, so `is_key` compares offsets.
        let hash = |k: u32| KeyHash(KeyHash::from_parts(0, k % 4, 1).0 | u128::from(k) << 40);
        let mut t = Table::with_slots(TABLE_SLOTS_MIN);
        let mut model: HashMap<u32, Loc> = HashMap::new();
        let mut pending: Vec<(KeyHash, Loc)> = Vec::new();
        let (mut blind, mut collided) = (0, 0);
        let mut x: u64 = 99;
        for step in 1..20_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (x >> 33) as u32 % 24;
            let h = hash(k);
            let found = t.find(h, |l| l.off == k);
            match (x >> 20) % 8 {
                0 | 1 => {
                    if let Some(i) = found {
                        t.remove_at(i, 0);
                    }
                    model.remove(&k);
                }
                2 | 3 => {
                    // Settle the oldest blind write: the record's key is its offset.
                    if !pending.is_empty() {
                        let (writer, old) = pending.remove(0);
                        if let Some(d) = t.find_displaced(writer, old) {
                            collided += usize::from(t.settle_displaced(d, hash(old.off), 0));
                        }
                    }
                }
                _ => {
                    let loc = Loc { seg: step, off: k };
                    let mut candidates = 0;
                    t.find(h, |_| {
                        candidates += 1;
                        false
                    });
                    let first = t.find(h, |_| true);
                    match first.filter(|&i| candidates == 1 && !t.is_displaced(i)) {
                        // What `put` does when memory is short: take it unread.
                        Some(i) if x >> 40 & 1 == 0 => {
                            pending.push((h, t.take_blind(i, h, loc, false, 0, 0)));
                            blind += 1;
                        }
                        _ => match found {
                            Some(i) => t.set(i, loc, false, 0, 0),
                            None => t.insert_absent(h, loc, false, 0, 0),
                        },
                    }
                    model.insert(k, loc);
                }
            }
            for k in 0..24u32 {
                let got = t.find(hash(k), |l| l.off == k).map(|i| t.loc(i));
                assert_eq!(got, model.get(&k).copied(), "key {k} at step {step}");
            }
        }
        for (writer, old) in pending.drain(..) {
            if let Some(d) = t.find_displaced(writer, old) {
                t.settle_displaced(d, hash(old.off), 0);
            }
        }
        assert!(t.displaced.is_empty());
        assert!(
            blind > 50 && collided > 20,
            "{blind} blind writes, {collided} collisions"
        );
        assert_eq!(t.len(), model.len());
        assert_eq!(t.tags_from(0).len(), model.len());
    }
}
