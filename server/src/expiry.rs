//! Active expiry: each worker remembers the keys its clients gave an expiry (a min-heap by
//! expiry time) and its cron removes those that are due, a bounded number per tick, so
//! expired keys leave memory (and DBSIZE) without being read, and compaction can reclaim
//! their records.
//!
//! A heap entry is only a hint: removal goes through `Engine::remove_expired`, which drops
//! the key only if its record has expired (a key written again since keeps its new value).
//! Keys that came back from disk with an expiry are not in any heap: the engine's own sweep
//! (its maintenance thread) removes those, any this queue dropped past its bound, and those
//! whose records are not in memory when they fall due (reading one here would stall the
//! worker).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use flin_engine::Engine;

/// Entries one worker remembers at most; beyond, new expiries are left to lazy expiry.
pub const EXPIRY_QUEUE_LEN_MAX: usize = 1_000_000;
/// Keys one cron tick may remove (Redis samples 20 keys a round for up to 25 ms).
const EXPIRE_PER_TICK_MAX: usize = 2_000;

/// (expiry in Unix ms, database, key), earliest first.
type Due = Reverse<(u64, u32, Box<[u8]>)>;

#[derive(Default)]
pub struct ExpiryQueue {
    heap: RefCell<BinaryHeap<Due>>,
}

impl ExpiryQueue {
    /// Remembers that `key` of database `db` expires at `at_ms` (Unix ms). After a SWAPDB
    /// the entry names the other database's key: removal only deletes an expired key, so
    /// that costs a look-up, and the engine's sweep takes the one it missed.
    pub fn track(&self, db: u32, key: &[u8], at_ms: u64) {
        let mut heap = self.heap.borrow_mut();
        if heap.len() < EXPIRY_QUEUE_LEN_MAX {
            heap.push(Reverse((at_ms, db, key.into())));
        }
    }

    /// Removes due keys, at most a tick's budget, calling `expired` with each (its database and
    /// key); returns how many were expired.
    pub fn run(&self, engine: &Engine, now_ms: u64, mut expired: impl FnMut(u32, &[u8])) -> u64 {
        if self
            .heap
            .borrow()
            .peek()
            .is_none_or(|Reverse((at, _, _))| *at > now_ms)
        {
            return 0;
        }
        let mut removed = 0;
        let memory_short = engine.memory_short();
        for _ in 0..EXPIRE_PER_TICK_MAX {
            let key = {
                let mut heap = self.heap.borrow_mut();
                match heap.peek() {
                    Some(Reverse((at, _, _))) if *at <= now_ms => {
                        heap.pop().map(|Reverse((_, db, k))| (db, k))
                    }
                    _ => None,
                }
            };
            let Some((db, key)) = key else {
                break;
            };
            let engine = engine.db(db);
            // Its record is not in memory: reading it here would stall every client of this
            // worker. The engine's own sweep, on its maintenance thread, removes it instead.
            if memory_short && engine.would_block(&key) {
                continue;
            }
            // Drops an expired key from memory without writing; a live key (written again
            // since) is kept.
            if engine.remove_expired(&key) {
                removed += 1;
                expired(db, &key);
            }
        }
        removed
    }
}
