//! Helpers shared by the tests that run part of themselves in a child process (crash,
//! failpoint and fsync-failure tests): the child is this same test binary, told by an
//! environment variable to run one test that does the dangerous part.

// Each test file uses the helpers it needs.
#![allow(dead_code)]

use std::process::Command;

/// This test binary, set to run only the test named `test`, printing as it goes. The caller
/// adds the environment that makes that test do its work.
pub fn child(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    cmd
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
