//! `--mode multi` and `--mode pubsub` against flin-server in-process: every transaction's
//! replies and every message of every subscriber check out, the counts add up, and a run
//! against a server that answers transactions wrongly fails.

mod common;

use flin_bench::{fanout, run, Progress};
use flin_server::{Config, Server, ServerHandle};

fn server(dir: &std::path::Path) -> ServerHandle {
    let mut c = Config::with_dir(dir);
    c.port = 0;
    c.threads = 2;
    c.pin_cores = false;
    Server::start(c).expect("server starts")
}

#[test]
fn transactions_are_counted_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path());
    let config = common::config(
        srv.local_addr(),
        &[
            "--mode",
            "multi",
            "--clients",
            "4",
            "--pipeline",
            "8",
            "-n",
            "2000",
        ],
    );
    let report = run(&config, Progress::Off).expect("run completes");
    assert!(report.passed(), "{:?}", report.first_error);
    assert_eq!((report.mode.as_str(), report.set.requests), ("multi", 2000));
    assert_eq!(report.get.requests, 0);
    srv.shutdown().unwrap();
}

#[test]
fn every_subscriber_gets_every_message_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path());
    let config = common::config(
        srv.local_addr(),
        &[
            "--mode",
            "pubsub",
            "--subscribers",
            "7",
            "--value-size",
            "64",
            "--pipeline",
            "16",
            "-n",
            "3000",
        ],
    );
    let report = fanout::run(&config).expect("run completes");
    assert!(report.passed(), "{:?}", report.first_error);
    assert_eq!((report.published, report.delivered), (3000, 7 * 3000));
    srv.shutdown().unwrap();
}

#[test]
fn a_server_that_is_not_redis_fails_a_transaction_run() {
    // The fake server answers MULTI with something other than +OK.
    let fake = common::FakeServer::start(common::Fault::None);
    let config = common::config(
        fake.addr,
        &[
            "--mode",
            "multi",
            "--clients",
            "1",
            "-n",
            "5",
            "--timeout",
            "2",
        ],
    );
    let report = run(&config, Progress::Off).expect("run completes");
    assert!(!report.passed());
}
