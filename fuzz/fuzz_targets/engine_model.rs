//! Random puts, deletes, gets, read-modify-writes, expiries, scans, reopens, compactions and
//! FLUSHALL on 4 KiB segments (so the log rolls and compaction has work), checked against a
//! `BTreeMap` after every step that reads (the model is `flin_fuzz::model`).

#![no_main]

use flin_fuzz::model::{run, Ops};
use flin_fuzz::{options, scratch};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: flin_fuzz::alloc::CappedAlloc = flin_fuzz::alloc::CappedAlloc;

fuzz_target!(|ops: Ops| {
    let dir = scratch::dir();
    run(dir.path(), &options(false), ops);
});
