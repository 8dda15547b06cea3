//! Helpers shared by the engine's integration tests. Most serve the tests that run part of
//! themselves in a child process (crash, failpoint and fsync-failure tests): the child is this
//! same test binary, told by an environment variable to run one test that does the dangerous
//! part.

// Each test file uses the helpers it needs.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use std::collections::BTreeMap;

use flin_engine::{Engine, Fsync, Options};

/// This test binary, set to run only the test named `test`, printing as it goes. The caller
/// adds the environment that makes that test do its work.
pub fn child(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    cmd
}

/// Copies the files of store directory `from` into `to` (created if missing), leaving out
/// the directory lock: a copy a test can open as a store of its own.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && p.file_name().unwrap() != "LOCK" {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// "ACK t i" anywhere in a line of a child's output (the harness may have printed before it
/// on the same line): thread `t` saw its write `i` acknowledged.
pub fn parse_ack(line: &str) -> Option<(usize, u64)> {
    let rest = &line[line.find("ACK ")? + 4..];
    let mut parts = rest.split(' ');
    let t = parts.next()?.parse().ok()?;
    let i = parts.next()?.trim().parse().ok()?;
    Some((t, i))
}

/// Options for a test store: `fsync`, segments of `segment_size_bytes` (small ones make the log
/// roll and give compaction work), and no background compaction: a test compacts when it means
/// to.
pub fn options(fsync: Fsync, segment_size_bytes: u64) -> Options {
    Options {
        fsync,
        segment_size_bytes,
        compaction: false,
        ..Options::default()
    }
}

/// Small segments (4 KiB: the log rolls, compaction has work), no fsync, hint files on or off
/// (off: every reopen scans).
pub fn small_segments(hints: bool) -> Options {
    Options {
        hints,
        ..options(Fsync::Never, 4096)
    }
}

/// Every live key of database `db`, with its value (a whole SCAN).
pub fn db_contents(e: &Engine, db: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut cursor = 0;
    loop {
        cursor = e.db(db).scan(cursor, 100, |k, v| {
            out.insert(k.to_vec(), v.value.to_vec());
        });
        if cursor == 0 {
            return out;
        }
    }
}
