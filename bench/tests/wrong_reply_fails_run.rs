//! Guards against a broken server looking fast: one wrong GET value, or one error reply, must
//! be counted and fail the run with a message naming the request.

mod common;

use common::{config, FakeServer, Fault};
use flin_bench::{run, Progress};

#[test]
fn one_corrupted_get_value_fails_the_run() {
    let server = FakeServer::start(Fault::CorruptFirstGetHit);
    // One connection without pipelining: every SET is acknowledged before any later GET is
    // sent, so the first GET that finds a value is one the generator checks.
    let config = config(
        server.addr,
        &[
            "--clients",
            "1",
            "--pipeline",
            "1",
            "--requests",
            "400",
            "--keyspace",
            "5",
        ],
    );
    let report = run(&config, Progress::Off).expect("run completes");
    assert!(!report.passed());
    assert_eq!(report.errors, 1);
    let first = report.first_error.expect("first error kept");
    assert!(first.contains("GET key:00000000"), "{first}");
    assert!(first.contains("expected the 16-byte value"), "{first}");
    // The run still finished its work.
    assert_eq!(report.total.requests, 399);
}

#[test]
fn an_error_reply_to_set_fails_the_run() {
    let server = FakeServer::start(Fault::ErrorOnFirstSet);
    let config = config(
        server.addr,
        &[
            "--clients",
            "4",
            "--pipeline",
            "8",
            "--requests",
            "500",
            "--ratio",
            "1:0",
        ],
    );
    let report = run(&config, Progress::Off).expect("run completes");
    assert_eq!(report.errors, 1);
    let first = report.first_error.expect("first error kept");
    assert!(
        first.contains("SET key:") && first.contains("expected +OK"),
        "{first}"
    );
    assert!(first.contains("-ERR injected fault"), "{first}");
}

#[test]
fn a_dead_server_is_an_error_not_a_hang() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = config(addr, &["--clients", "1", "--requests", "10"]);
    let err = run(&config, Progress::Off).unwrap_err().to_string();
    assert!(err.contains("cannot connect client 0"), "{err}");
}
