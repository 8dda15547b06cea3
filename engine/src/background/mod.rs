//! The engine's background threads, each started by [`spawn`] and stopped by the syncer's
//! shutdown flag:
//! - [`sync`]: group commit and the once-a-second sync;
//! - [`prealloc`]: the next log segment, and the active segment's pages ahead of its writer;
//! - [`maintenance`]: expiry sweep, hint files, checks of hinted segments, compaction;
//! - [`verify`]: checks blind overwrites whose old record was not read;
//! - `flin-io-N`: the cold-read pool (`cold`), reading records not in memory for callers
//!   that must not wait for the disk.
//!
//! A panic in any of them poisons the engine with its cause: writers waiting for durability get
//! the error at once, later writes fail saying what happened, reads go on.

pub(crate) mod maintenance;
pub(crate) mod prealloc;
pub(crate) mod sync;
pub(crate) mod verify;

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::shared::Shared;

/// Starts the sync, prealloc and maintenance threads. The maintenance thread lowers its own
/// priority before this returns, so background work never starts at the clients' priority.
///
/// # Errors
/// A thread could not be started; the ones already started are stopped first.
pub(crate) fn spawn(shared: &Arc<Shared>) -> Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    let (niced_tx, niced) = std::sync::mpsc::channel();
    let started = spawn_guarded("flin-sync", shared, sync::run)
        .map(|t| threads.push(t))
        .and_then(|()| spawn_guarded("flin-prealloc", shared, prealloc::run))
        .map(|t| threads.push(t))
        .and_then(|()| spawn_guarded("flin-verify", shared, verify::run))
        .map(|t| threads.push(t))
        .and_then(|()| {
            spawn_guarded("flin-maint", shared, move |s| {
                maintenance::lower_priority(&s);
                let _ = niced_tx.send(());
                maintenance::run(s)
            })
        })
        .map(|t| threads.push(t));
    let started = started.and_then(|()| {
        for i in 0..shared.options.cold_read_threads {
            let t = spawn_guarded(COLD_READ_THREAD_NAMES[i % 16], shared, move |s| {
                crate::cold::run(&s.cold, &s.index, &s.registry, i)
            })?;
            threads.push(t);
        }
        Ok(())
    });
    if let Err(e) = started {
        shared.syncer.shutdown();
        shared.cold.shutdown();
        for t in threads {
            let _ = t.join();
        }
        return Err(e);
    }
    // Dropped unsent if the thread panicked first: recv returns at once then too.
    let _ = niced.recv();
    Ok(threads)
}

/// Thread names (static, for the panic message): the pool's threads share sixteen names.
const COLD_READ_THREAD_NAMES: [&str; 16] = [
    "flin-io-0",
    "flin-io-1",
    "flin-io-2",
    "flin-io-3",
    "flin-io-4",
    "flin-io-5",
    "flin-io-6",
    "flin-io-7",
    "flin-io-8",
    "flin-io-9",
    "flin-io-10",
    "flin-io-11",
    "flin-io-12",
    "flin-io-13",
    "flin-io-14",
    "flin-io-15",
];

/// Starts `body` on a thread named `name`; a panic in it poisons the engine.
fn spawn_guarded(
    name: &'static str,
    shared: &Arc<Shared>,
    body: impl FnOnce(Arc<Shared>) + Send + 'static,
) -> Result<JoinHandle<()>> {
    let s = shared.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let guard = s.clone();
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| body(s))) {
                let e = Error::Panicked {
                    thread: name,
                    message: panic_message(&*payload),
                };
                tracing::error!(error = %e, "the engine refuses writes from now on; reads go on");
                guard.poison(e.to_string());
            }
        })
        .map_err(|e| Error::io("spawn thread", &shared.dir, e))
}

/// The text a panic was raised with.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".into()
    }
}
