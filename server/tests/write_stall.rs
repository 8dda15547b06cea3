//! Writers that outrun compaction past the space bound wait for it, per connection and
//! without blocking a worker: a write stops its connection's batch, is parsed again once the
//! stall ends, and runs exactly once. Compaction is held to 4 MiB/s and segments are 64 KiB,
//! so a pipelining client outruns it.

mod common;

use common::start_with;

const KEYS: usize = 5_000;
const PIPELINE: usize = 500;

#[test]
fn pipelined_writes_wait_for_compaction_and_each_runs_once() {
    let srv = start_with(|c| {
        c.segment_size = 64 << 10;
        c.compaction_rate = 4 << 20;
    });
    let mut con = srv.client();
    let value = vec![b'v'; 100];
    let mut worst = 0f64;
    let mut incrs = 0i64;
    for pass in 0..5usize {
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(PIPELINE) {
            let mut p = redis::pipe();
            for &k in chunk {
                p.cmd("SET")
                    .arg(format!("key-{:05}", (k * 7 + pass) % KEYS))
                    .arg(&value)
                    .ignore();
            }
            // Writes whose count tells whether a stopped request ran twice or never.
            p.cmd("INCR").arg("counter").ignore();
            p.cmd("INCR").arg("counter").ignore();
            incrs += 2;
            let () = p.query(&mut con).expect("pipeline");
            let e = srv.handle().stats().engine;
            if pass > 0 {
                worst = worst.max(e.disk_bytes as f64 / e.live_bytes as f64);
            }
        }
    }
    let e = srv.handle().stats().engine;
    assert!(e.write_stalls > 0, "no connection waited: {e:?}");
    let allowed = 1.5 + 2.0 * (64 << 10) as f64 / e.live_bytes as f64;
    assert!(
        worst <= allowed,
        "disk reached {worst:.2}x live data (allowed {allowed:.2}x): {e:?}"
    );
    let counter: i64 = redis::cmd("GET").arg("counter").query(&mut con).unwrap();
    assert_eq!(counter, incrs);
    let last_pass = 4;
    for k in [0usize, 1, KEYS / 2, KEYS - 1] {
        let key = format!("key-{:05}", (k * 7 + last_pass) % KEYS);
        let v: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
        assert_eq!(v, value, "{key}");
    }
    let n: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, KEYS + 1);
}
