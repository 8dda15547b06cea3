//! Inputs that hit engine bugs already reported, each with a failing `#[ignore]`d regression
//! test in `engine/tests/fuzz_regressions.rs`. The fuzzers skip them so a run can find the next
//! bug instead of stopping at the same one. Delete a filter when its bug is fixed (and
//! un-ignore its test): the fuzzers then check the fix too.
//!
//! None today. The bugs found so far (listed in `docs/ROBUSTNESS.md`, "Fuzzing") are fixed,
//! and their tests run in the normal suite.

use crate::files::DirSpec;

/// Why `spec` is skipped, when it hits a reported bug.
pub fn in_dir(_spec: &DirSpec) -> Option<&'static str> {
    None
}
