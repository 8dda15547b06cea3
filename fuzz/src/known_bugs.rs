//! Inputs that hit engine bugs already reported, each with a failing `#[ignore]`d regression
//! test in `engine/tests/fuzz_regressions.rs`. The fuzzers skip them so a run can find the next
//! bug instead of stopping at the same one. Delete a filter when its bug is fixed (and
//! un-ignore its test): the fuzzers then check the fix too.

use crate::files::{Chunk, DirSpec, HintLie, Name, Seq};

/// `engine_damage` does not check what a power cut leaves when a compaction ran since the last
/// sync: compaction deletes a synced value whose overwrite is not synced yet, so the key can
/// come back absent.
/// (fuzz_regressions::compaction_does_not_drop_the_synced_value_of_an_unsynced_overwrite)
pub const COMPACTION_BEFORE_SYNC: &str =
    "compaction deletes a synced value whose overwrite is not synced yet";

/// Ids the engine hands out after the highest one it finds (active, spare, compaction).
const ID_HEADROOM: u32 = 1024;

/// Ids up to here make the registry allocate at most 8 MiB (one 8-byte slot per id).
const ID_SPAN_MAX: u32 = 1 << 20;

/// Why `spec` is skipped, when it hits a reported bug.
pub fn in_dir(spec: &DirSpec) -> Option<&'static str> {
    let names = || spec.files.iter().map(|f| f.name);
    if names().any(|n| matches!(n, Name::SegmentId(id) if id > u32::MAX - ID_HEADROOM)) {
        // fuzz_regressions::segment_ids_near_u32_max_do_not_overflow
        return Some("a segment id near u32::MAX overflows the next segment id");
    }
    if names().any(|n| matches!(n, Name::SegmentId(id) if id > ID_SPAN_MAX)) {
        // fuzz_regressions::far_apart_segment_ids_do_not_size_an_allocation
        return Some(
            "the segment registry allocates a slot for every id between the lowest and highest",
        );
    }
    let seqs = spec
        .files
        .iter()
        .flat_map(|f| &f.chunks)
        .flat_map(chunk_seqs);
    if seqs
        .into_iter()
        .any(|s| matches!(s, Seq::Exact(v) if v > u64::MAX - SEQ_HEADROOM))
    {
        // fuzz_regressions::sequence_number_u64_max_does_not_overflow
        return Some("a record with sequence number near u64::MAX overflows the next one");
    }
    None
}

/// Sequence numbers an input can count up by after an exact one (one per chunk at most).
const SEQ_HEADROOM: u64 = 1 << 32;

fn chunk_seqs(c: &Chunk) -> Vec<Seq> {
    match c {
        Chunk::Record { seq, .. } | Chunk::LyingHeader { seq, .. } => vec![*seq],
        Chunk::Hint(h) => h
            .lies
            .iter()
            .filter_map(|(_, l)| match l {
                HintLie::Seq(s) => Some(*s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
