//! Space use: what the store takes on disk against what it holds live, and the bound the
//! options set on their ratio. One reckoning serves both compaction's choice of work
//! (`compaction::pick`) and the write stall (writers wait when they outrun compaction past the
//! bound, see `stall`).

use crate::options::Options;
use crate::registry::SegmentMap;
use crate::segment::{Segment, ALLOC_CHUNK};

/// When writers are held back (see `stall`): disk use is within a chunk and a run's
/// output of the space bound (or past it), the store holds at least
/// [`STALL_MIN_LIVE_SEGMENTS`] of live data, and some sealed segment is dead enough for
/// compaction to take under pressure (not one a run already took, waiting to be retired).
pub(crate) fn over_bound_with_work(options: &Options, segs: &SegmentMap, spare_bytes: u64) -> bool {
    let space = SpaceUse::of(options, segs, spare_bytes);
    let work = segs
        .iter()
        .any(|s| s.is_sealed() && !s.is_retiring() && dead_ratio(s) >= AMP_PICK_DEAD_RATIO_MIN);
    let segment = options.segment_size_bytes as f64;
    // Room for the chunk a writer may add before it sees the stall, and for the output of
    // the run in progress (up to a segment's live bytes when a run takes its one segment),
    // which the segment map does not list until the run ends.
    let room = alloc_chunk(options) + segment;
    work && space.live >= STALL_MIN_LIVE_SEGMENTS * segment && space.disk + room > space.limit
}

/// What the store takes on disk (every segment's allocated chunks and the prepared spare's)
/// and holds live, and the space bound that sets: as both `compaction::pick` and the write stall see it.
pub(crate) struct SpaceUse {
    pub disk: f64,
    pub live: f64,
    pub limit: f64,
}

impl SpaceUse {
    /// Space use of the segments in `segs` and of a prepared spare of `spare_bytes`.
    pub(crate) fn of(options: &Options, segs: &SegmentMap, spare_bytes: u64) -> SpaceUse {
        let (mut disk, mut live) = (spare_bytes, 0u64);
        for s in segs.iter() {
            disk += s.allocated();
            live += s.live_bytes();
        }
        SpaceUse {
            disk: disk as f64,
            live: live as f64,
            limit: options.compaction_space_amplification_max * live.max(1) as f64,
        }
    }
}

/// The share of a segment's bytes that is dead.
pub(crate) fn dead_ratio(s: &Segment) -> f64 {
    (s.len() - s.live_bytes()) as f64 / s.len().max(1) as f64
}

/// How much a segment file grows at a time.
pub(crate) fn alloc_chunk(options: &Options) -> f64 {
    ALLOC_CHUNK.min(options.segment_size_bytes) as f64
}

/// Writers are held back only for stores of at least this many segments of live data. In a
/// smaller one the active segment, the spare and one compaction output alone can exceed the
/// bound, and stalling would make every write wait for rewrites that cannot meet it.
const STALL_MIN_LIVE_SEGMENTS: f64 = 8.0;

/// Under space pressure, the least dead share a segment must have to be rewritten.
pub(crate) const AMP_PICK_DEAD_RATIO_MIN: f64 = 0.2;
