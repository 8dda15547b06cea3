//! The prealloc thread: keeps one log segment created and preallocated, named `<id>.seg.tmp`
//! until the log takes it (an unused one is removed at the next open), and faults the active
//! segment's pages in a chunk ahead of its writer, so appends do not wait for page faults.

use std::sync::Arc;

use crate::format;
use crate::options::Fsync;
use crate::segment::{Segment, POPULATE_CHUNK};
use crate::shared::Shared;
use crate::testing_hooks::Thread;

pub(crate) fn run(shared: Arc<Shared>) {
    let ahead = shared.options.fsync != Fsync::Always;
    loop {
        let populate = {
            let mut p = shared.prepared.state.lock();
            while p.spare.is_some()
                && p.populate.is_none()
                && !shared.syncer.is_shutdown()
                && !shared.hooks.panic_pending(Thread::Prealloc)
            {
                shared.prepared.cond.wait(&mut p);
            }
            p.populate.take()
        };
        if shared.syncer.is_shutdown() {
            return;
        }
        shared.hooks.maybe_panic(Thread::Prealloc);
        if let Some(seg) = populate {
            let end = (seg.len() + 2 * POPULATE_CHUNK).min(seg.capacity());
            // Grow the file first (pages past its end cannot be faulted in). On failure (a
            // full disk) the writer meets the error itself when it gets there.
            match seg.reserve(end) {
                Ok(true) => shared.on_log_grew(),
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "could not grow the active segment ahead of its writer")
                }
            }
            seg.populate_to(end);
            if shared.cold.checking() {
                // Memory is short: written pages must not pile up dirty until the next sync,
                // since reclaim cannot free them and stalls whoever needs memory meanwhile.
                seg.release_written_pages();
                seg.start_writeback(0, seg.len());
            }
            continue;
        }
        let id = match shared.registry.allocate_id() {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot prepare the next segment");
                return;
            }
        };
        let path = shared
            .dir
            .join(format!("{}.tmp", format::segment_file_name(id)));
        match Segment::create(
            path,
            id,
            format::SegmentKind::Log,
            shared.options.segment_size_bytes,
        ) {
            Ok(seg) => {
                if ahead {
                    seg.populate_to(2 * POPULATE_CHUNK);
                }
                shared.prepared.state.lock().spare = Some(Arc::new(seg));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not prepare the next segment; will retry");
                if shared
                    .syncer
                    .wait_shutdown(std::time::Duration::from_secs(1))
                {
                    return;
                }
            }
        }
    }
}
