//! The cold-read pool: threads that read queued records with `pread`, for callers without a
//! [`super::ColdRing`]; thread 0 also samples records for memory pressure.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{sample, ColdReads, Job, RecordRead, SAMPLE_INTERVAL};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::registry::Registry;
use crate::segment::Segment;

/// A pool thread's body: reads queued records; thread 0 also samples for memory pressure.
pub(crate) fn run(cold: &ColdReads, index: &Index, registry: &Registry, thread: usize) {
    let mut buf = Vec::new();
    let mut next_sample = Instant::now();
    loop {
        let job = {
            let mut q = cold.queue.lock();
            loop {
                if cold.stop.load(Ordering::Acquire) {
                    break None;
                }
                if let Some(job) = q.pop_front() {
                    break Some(job);
                }
                if thread == 0 {
                    let now = Instant::now();
                    if now >= next_sample {
                        break None;
                    }
                    cold.cond.wait_until(&mut q, next_sample);
                } else {
                    cold.cond.wait(&mut q);
                }
            }
        };
        if cold.stop.load(Ordering::Acquire) {
            fail_all(cold);
            return;
        }
        match job {
            Some(job) => read_one(cold, job, &mut buf),
            None => {
                sample(cold, index, registry);
                next_sample = Instant::now() + SAMPLE_INTERVAL;
            }
        }
    }
}

/// Answers every queued read with an error: the engine is closing.
fn fail_all(cold: &ColdReads) {
    let jobs: Vec<Job> = cold.queue.lock().drain(..).collect();
    for job in jobs {
        cold.finish(&job, &Err(Error::Closed));
    }
}

fn read_one(cold: &ColdReads, job: Job, buf: &mut Vec<u8>) {
    cold.wait_while_held();
    let result = match cold.injected_failure(&job) {
        Some(e) => Err(e),
        None => read_record(&job.seg, job.off, buf),
    };
    cold.finish(&job, &result);
}

/// Reads the record at `off` from the file and checks both its checksums: after this its
/// pages are in the page cache, read by exactly the record's own pages.
fn read_record(seg: &Segment, off: u64, buf: &mut Vec<u8>) -> Result<()> {
    let mut read = RecordRead::new(seg, off)?;
    while let Some((at, n)) = read.next() {
        buf.resize(n.max(buf.len()), 0);
        seg.read_at(at, &mut buf[..n])?;
        read.feed(seg, &buf[..n])?;
    }
    read.finish(seg)
}
