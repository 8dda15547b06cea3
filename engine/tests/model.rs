//! Random operations, reopens and compactions checked against a `BTreeMap`: guards against
//! any divergence between what the engine returns and what was written, across restarts and
//! segment rewrites. The model is the `engine_model` fuzz target's (`fuzz/src/model.rs`),
//! driven here by proptest so `cargo test` runs it; inputs are bytes the model decodes.

// The fuzz crate's shared files, compiled into this test: one model for both drivers.
#[path = "../../fuzz/src/check.rs"]
#[allow(dead_code)]
mod check;
#[path = "../../fuzz/src/model.rs"]
mod model;

use arbitrary::Unstructured;
use flin_engine::{Fsync, Options};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_btreemap(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let ops = model::Ops::dense(&mut Unstructured::new(&bytes)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            fsync: Fsync::Never,
            segment_size_bytes: 4096,
            compaction: false,
            ..Options::default()
        };
        model::run(dir.path(), &options, ops);
    }
}
