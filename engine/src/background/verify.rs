//! The verify thread: checks blind overwrites (see `verify`) a segment at a time, busiest
//! first, so their old records are counted dead soon (compaction picks segments by their dead
//! bytes) and a key whose fingerprint collided is back within moments.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::shared::Shared;
use crate::verify::VERIFY_PENDING_MAX;

/// How often the thread looks for work when there is none.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Segments checked per hold of the compaction lock, so compaction is never kept waiting long.
const SEGMENTS_PER_ROUND: usize = 4;

pub(crate) fn run(shared: Arc<Shared>) {
    let mut pushes_seen = shared.verifier.pushes();
    loop {
        let paused = || shared.hooks.verify_paused.load(Ordering::SeqCst);
        if (paused() || shared.verifier.len() == 0) && shared.syncer.wait_shutdown(IDLE_WAIT) {
            return;
        }
        if paused() {
            continue;
        }
        if shared.syncer.is_shutdown() {
            return;
        }
        // While blind writes keep coming (a load of overwrites), wait for batches worth a
        // hint file's read; once they stop, or the queue fills up, check whatever waits.
        let pushes = shared.verifier.pushes();
        let batching = pushes != pushes_seen && shared.verifier.len() < VERIFY_PENDING_MAX / 2;
        pushes_seen = pushes;
        let mut checked = 0;
        {
            // A key put back points into the segment checked: no compaction may retire it
            // meanwhile.
            let _c = shared.compaction_lock.lock();
            for _ in 0..SEGMENTS_PER_ROUND {
                let Some((seg, waiting)) = shared.verifier.busiest_segment() else {
                    break;
                };
                if batching && waiting < crate::verify::batch_worth(&shared.registry, seg) {
                    break;
                }
                crate::verify::check_segment(&shared.verify_env(), seg);
                checked += 1;
            }
        }
        if checked == 0 && shared.syncer.wait_shutdown(IDLE_WAIT) {
            return;
        }
    }
}
