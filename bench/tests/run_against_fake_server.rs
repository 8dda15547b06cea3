//! Guards the load generator's accounting against a correct server: exact request counts,
//! the SET:GET mix, every GET of a written key checked, zero errors.

mod common;

use common::{config, FakeServer, Fault};
use flin_bench::{run, Progress};

#[test]
fn counts_are_exact_and_nothing_fails() {
    let server = FakeServer::start(Fault::None);
    let config = config(
        server.addr,
        &[
            "--clients",
            "7",
            "--threads",
            "2",
            "--pipeline",
            "5",
            "--requests",
            "3001",
            "--keyspace",
            "50",
            "--seed",
            "9",
        ],
    );
    let report = run(&config, Progress::Off).expect("run completes");
    assert_eq!(report.errors, 0, "{:?}", report.first_error);
    assert!(report.passed());
    assert_eq!(report.total.requests, 3001);
    assert_eq!(report.set.requests + report.get.requests, 3001);
    assert_eq!(server.sets(), report.set.requests);
    assert_eq!(server.gets(), report.get.requests);
    assert_eq!(report.get_hits + report.get_misses, report.get.requests);
    // 1:1 over 3001 requests: both commands well represented.
    assert!(report.set.requests > 1200 && report.get.requests > 1200);
    // A 50-key space is written long before 1500 SETs are done: most GETs hit.
    assert!(report.get_hits > report.get_misses);
    assert!(server.keys() <= 50);
    assert!(report.total.ops_per_sec > 0.0 && report.elapsed_secs > 0.0);
    assert!(report.total.latency_us.p50 <= report.total.latency_us.max);
}

#[test]
fn only_sets_and_zipf() {
    let server = FakeServer::start(Fault::None);
    let config = config(
        server.addr,
        &[
            "--clients",
            "3",
            "--requests",
            "1000",
            "--ratio",
            "1:0",
            "--distribution",
            "zipf",
            "--value-size",
            "100",
        ],
    );
    let report = run(&config, Progress::Off).expect("run completes");
    assert!(report.passed(), "{:?}", report.first_error);
    assert_eq!((report.set.requests, report.get.requests), (1000, 0));
    assert_eq!(server.gets(), 0);
}

#[test]
fn duration_with_warmup_stops_by_itself() {
    let server = FakeServer::start(Fault::None);
    let config = config(
        server.addr,
        &[
            "--clients",
            "2",
            "--duration",
            "0.3",
            "--warmup",
            "0.1",
            "--keyspace",
            "10",
        ],
    );
    let report = run(&config, Progress::Off).expect("run completes");
    assert!(report.passed(), "{:?}", report.first_error);
    assert!(report.total.requests > 0);
    // Warmup requests reach the server but are not in the report.
    assert!(server.sets() + server.gets() > report.total.requests);
    assert!(
        report.elapsed_secs >= 0.3 && report.elapsed_secs < 10.0,
        "{}",
        report.elapsed_secs
    );
}
