//! Shared pieces of flin's fuzz targets.
//!
//! # Layout
//! - `fuzz_targets/engine_open.rs`: hostile segment, hint and other files in a data directory;
//!   `Engine::open` with and without repair returns the store or an error, never panics, and a
//!   store it returns reads back consistently and survives a write and a reopen.
//! - `fuzz_targets/engine_damage.rs`: valid stores built by the engine itself, then damaged
//!   (bit flips, truncation, zeroed ranges, lost files, in segments and hints); a reopened
//!   store never serves a value that was not written for that key, and a power-cut tail never
//!   loses a synced write.
//! - `fuzz_targets/engine_model.rs`: [`model`]: random operations, reopens, compactions and
//!   FLUSHALL on 4 KiB segments, checked against a `BTreeMap` (also run by proptest in
//!   `engine/tests/model.rs`).
//! - `fuzz_targets/resp_parse.rs`: the server's RESP2 parser on arbitrary bytes, whole and
//!   chunked; same commands either way, limits held, heap bounded, re-encoding round-trips.
//! - [`files`]: the grammar that turns fuzz input into directory entries (segment headers,
//!   records and hint files with correct checksums, raw bytes, lying lengths, odd names).
//! - [`scratch`]: throw-away data directories (on tmpfs when there is one).
//! - [`check`]: reading a whole store through `scan` and `get` and checking they agree.
//! - [`known_bugs`]: inputs that hit engine bugs already reported, skipped until fixed.
//! - [`alloc`]: the global allocator of every target, which aborts on any allocation over
//!   64 MiB (no length read from the input may size an allocation) and tracks the heap's peak.
//!
//! Seeds live in `fuzz/seeds/<target>/`, the dictionary for the parser in `fuzz/resp.dict`;
//! `fuzz/run.sh` runs every target.

pub mod alloc;
pub mod check;
pub mod files;
pub mod known_bugs;
pub mod model;
pub mod scratch;

use flin_engine::{Fsync, Options};

/// The smallest segment the engine accepts, so a few records roll the log and compaction has
/// sealed segments to work on.
pub const SEGMENT_SIZE_BYTES: u64 = flin_engine::testing::SEGMENT_SIZE_MIN_BYTES;

/// Engine options for fuzzing: no background compaction (runs are deterministic), no fsync
/// (durability is the crash tests' concern, and fsync would dominate the run time).
pub fn options(repair: bool) -> Options {
    Options {
        fsync: Fsync::Never,
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        repair,
        compaction: false,
        ..Options::default()
    }
}
