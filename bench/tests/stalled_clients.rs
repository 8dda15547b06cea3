//! `--stalled-clients` against flin-server in-process: the stalled connections really send
//! GETs of the large value and never read (the server ends up holding their replies, bounded
//! by its output limit), closing them releases that, and a run with them passes and reports
//! them.

mod common;

use std::time::{Duration, Instant};

use flin_bench::options::Stalled as StalledConfig;
use flin_bench::run::stalled;
use flin_bench::{run, Progress};
use flin_server::{Config, Server, ServerHandle};

const OUTPUT_LIMIT: u64 = 64 * 1024;

fn server(dir: &std::path::Path) -> ServerHandle {
    let mut c = Config::with_dir(dir);
    c.port = 0;
    c.threads = 2;
    c.pin_cores = false;
    c.client_output_limit = OUTPUT_LIMIT;
    Server::start(c).expect("server starts")
}

/// Polls `cond` until it holds or `timeout` passes.
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

#[test]
fn stalled_clients_send_gets_and_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path());
    let config = StalledConfig {
        clients: 2,
        value_size_bytes: 100_000,
        requests: 10_000,
    };
    let stalled = stalled::start(
        srv.local_addr(),
        &config,
        Duration::from_secs(5),
        Duration::from_secs(10),
    )
    .expect("stalled clients start");
    // Replies to 2 x 10,000 GETs of 100 KB do not fit in socket buffers: unless the clients
    // read them, the server must hold some for each.
    wait_for(
        "the server to hold replies for both stalled clients",
        Duration::from_secs(30),
        || srv.stats().output_queued_bytes >= 2 * OUTPUT_LIMIT / 2,
    );
    let s = srv.stats();
    assert!(s.ops_processed < 2 * 10_000, "{s:?}");
    drop(stalled);
    wait_for(
        "the stalled clients' replies to be released",
        Duration::from_secs(30),
        || srv.stats().output_queued_bytes == 0,
    );
    srv.shutdown().unwrap();
}

#[test]
fn a_run_beside_stalled_clients_passes_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path());
    let config = common::config(
        srv.local_addr(),
        &[
            "--clients",
            "2",
            "--requests",
            "2000",
            "--stalled-clients",
            "3",
            "--stalled-value-size",
            "100000",
        ],
    );
    let report = run(&config, Progress::Off).expect("run completes");
    assert!(report.passed(), "{:?}", report.first_error);
    assert_eq!(report.total.requests, 2000);
    assert_eq!(
        (
            report.stalled_clients,
            report.stalled_value_size_bytes,
            report.stalled_requests
        ),
        (3, 100_000, 64)
    );
    let mut text = Vec::new();
    report.print_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("beside 3 stalled clients"), "{text}");
    // The run closed its stalled connections.
    wait_for(
        "the stalled connections to close",
        Duration::from_secs(30),
        || srv.stats().active_connections == 0,
    );
    srv.shutdown().unwrap();
}
