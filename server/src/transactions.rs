//! What MULTI/EXEC shares between workers: the gate that makes EXEC atomic for every client
//! of every worker ([`ExecGate`]), and the watched keys that writes mark ([`Watches`]).
//!
//! # Why a gate per worker
//! Redis runs EXEC's commands back to back on its one thread, so nobody sees half of a
//! transaction. flin runs a worker per core, each executing its clients' batches against the
//! shared engine. The options weighed:
//! - A server-wide read-write lock every command takes: one shared atomic per request, a
//!   cache line bouncing between cores on the GET/SET path. Refused.
//! - The engine running a closure under all 256 shard locks: every command would need a
//!   second, lock-free way into the engine (its normal calls would deadlock on the locks
//!   held), a copy of every command's code path. Refused.
//! - Stopping the other workers at a batch boundary, which is what this does: each worker
//!   holds the read side of its own lock while it runs a batch of requests (`batch`), and
//!   EXEC takes the write side of every worker's lock (`exclusive`), so it waits for the
//!   batches in flight to finish and no batch starts until it is done. A worker's lock is
//!   touched only by its own thread until an EXEC comes: one uncontended atomic per batch,
//!   on a line no other core writes. A batch never waits inside (cold reads, write stalls
//!   and pauses are awaited between batches), so EXEC waits at most one batch per worker.
//!   Two EXECs on different workers queue on one mutex first; the worker waiting on it
//!   holds no gate (it left its batch to take the gate), so neither waits for the other.
//!
//! The cost is that an EXEC stops every worker for the time it runs, like Redis's single
//! thread does; the batches of its own worker wait anyway. Measured: the uncontended
//! `RwLock::read` and its release take about 9 ns, once per batch; `redis-benchmark -c 16
//! -t get,set` on a shared 2-core machine gave medians of five alternating runs of 30.5k
//! SET/s and 33.2k GET/s without the gate and 33.1k and 43.3k with it: the difference is
//! the machine's noise, the gate's share of a request's time is well under 1%.
//!
//! EXEC itself pays a handoff when another worker is mid-batch. A connection that took the
//! gate keeps it for the commands it pipelined after EXEC (up to
//! `connection::EXCLUSIVE_COMMANDS_MAX`), so pipelined transactions take it once per batch.
//! MULTI / SET / SET / EXEC from 16 connections (a Python client, same shared machine, two
//! runs each): one transaction per round trip 32-34k/s against Redis's 35-43k/s; 20
//! pipelined per round trip 273-365k/s against Redis's 409-464k/s (80-87k/s before the
//! gate was kept across the pipeline).
//!
//! # Watched keys
//! WATCH remembers each key's version (`flin_engine::Engine::version`: the sequence number
//! of its live record, which every write changes and compaction keeps), and EXEC compares:
//! a key written, deleted, expired or flushed has another version (or none). That misses a
//! key absent at WATCH, then written and deleted again: [`Watches::touch`] covers it, marking
//! the clients that watch a key a write command just wrote. Writers pay one relaxed load
//! ([`Watches::any`]) while nobody watches. A watch is registered before its version is read,
//! under the key's shard lock; a write the version does not show takes that lock afterwards,
//! so its `any` sees the registration.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// One worker's lock, alone on its cache lines.
#[repr(align(128))]
#[derive(Default)]
struct WorkerGate(RwLock<()>);

/// Makes EXEC atomic for every worker (see the module doc).
pub struct ExecGate {
    workers: Box<[WorkerGate]>,
    /// Taken first by an EXEC, so two never wait for each other's gates.
    exec: Mutex<()>,
}

/// Held while EXEC runs: no worker runs a batch meanwhile.
pub struct Exclusive<'a> {
    _workers: Vec<RwLockWriteGuard<'a, ()>>,
    _exec: MutexGuard<'a, ()>,
}

impl ExecGate {
    pub fn new(workers: usize) -> ExecGate {
        ExecGate {
            workers: (0..workers).map(|_| WorkerGate::default()).collect(),
            exec: Mutex::new(()),
        }
    }

    /// Held by `worker` while it runs a batch of requests.
    pub fn batch(&self, worker: usize) -> RwLockReadGuard<'_, ()> {
        self.workers[worker]
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for every worker's batch in flight, and keeps them from starting another until
    /// the result is dropped. Blocks the calling thread: call it holding no `batch` guard.
    pub fn exclusive(&self) -> Exclusive<'_> {
        let exec = self.exec.lock().unwrap_or_else(|e| e.into_inner());
        let workers = self
            .workers
            .iter()
            .map(|g| g.0.write().unwrap_or_else(|e| e.into_inner()))
            .collect();
        Exclusive {
            _workers: workers,
            _exec: exec,
        }
    }
}

/// A watching client's mark: set when a key it watches was written.
pub type Dirty = Arc<AtomicBool>;

/// The clients watching one key, by id.
type Watchers = Vec<(u64, Dirty)>;

/// The keys clients watch, and who watches each.
#[derive(Default)]
pub struct Watches {
    /// How many (client, key) watches exist: writers look at nothing else while it is 0.
    count: AtomicUsize,
    keys: Mutex<HashMap<Vec<u8>, Watchers>>,
}

impl Watches {
    /// True when some client watches some key. One relaxed load.
    #[inline]
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    /// Registers `client` as watching `key`; false when it already did.
    pub fn watch(&self, client: u64, dirty: &Dirty, key: &[u8]) -> bool {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let watchers = keys.entry(key.to_vec()).or_default();
        if watchers.iter().any(|(id, _)| *id == client) {
            return false;
        }
        watchers.push((client, dirty.clone()));
        self.count.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Forgets `client`'s watches of `keys`.
    pub fn unwatch<'k>(&self, client: u64, keys: impl IntoIterator<Item = &'k [u8]>) {
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            let Some(watchers) = map.get_mut(key) else {
                continue;
            };
            let before = watchers.len();
            watchers.retain(|(id, _)| *id != client);
            self.count
                .fetch_sub(before - watchers.len(), Ordering::Relaxed);
            if watchers.is_empty() {
                map.remove(key);
            }
        }
    }

    /// A command wrote `key`: marks the clients watching it.
    pub fn touch(&self, key: &[u8]) {
        let map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watchers) = map.get(key) {
            for (_, dirty) in watchers {
                dirty.store(true, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_marks_only_the_watchers_of_the_key() {
        let w = Watches::default();
        let (a, b) = (Dirty::default(), Dirty::default());
        assert!(!w.any());
        assert!(w.watch(1, &a, b"k"));
        assert!(!w.watch(1, &a, b"k"), "a second WATCH of a key counts once");
        assert!(w.watch(2, &b, b"j"));
        assert!(w.any());
        w.touch(b"j");
        assert!(!a.load(Ordering::Relaxed) && b.load(Ordering::Relaxed));
        w.unwatch(1, [&b"k"[..]]);
        w.unwatch(2, [&b"j"[..]]);
        assert!(!w.any());
        w.touch(b"k");
        assert!(!a.load(Ordering::Relaxed));
    }

    #[test]
    fn exclusive_waits_for_batches() {
        let gate = Arc::new(ExecGate::new(2));
        let batch = gate.batch(1);
        let taken = Arc::new(AtomicBool::new(false));
        let t = {
            let (gate, taken) = (gate.clone(), taken.clone());
            std::thread::spawn(move || {
                let _x = gate.exclusive();
                taken.store(true, Ordering::SeqCst);
            })
        };
        // The exclusive side cannot finish while the batch guard is held.
        assert!(!taken.load(Ordering::SeqCst));
        drop(batch);
        t.join().unwrap();
        assert!(taken.load(Ordering::SeqCst));
    }
}
