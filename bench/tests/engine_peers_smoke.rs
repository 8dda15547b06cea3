//! Guards `flin-engine-peers` against rotting: at tiny sizes it runs every engine through
//! every phase and writes a JSON report with every metric above zero, and a chart.

use std::process::Command;

const ENGINES: [&str; 4] = ["flin", "fjall", "redb", "sled"];
const METRICS: [&str; 13] = [
    "put_ops_s",
    "put_2t_ops_s",
    "get_ops_s",
    "get_2t_ops_s",
    "get_absent_ops_s",
    "get_absent_2t_ops_s",
    "durable_put_16w_ops_s",
    "load_ops_s",
    "disk_bytes_after_load",
    "disk_bytes_after_overwrite",
    "rss_bytes_after_load",
    "rss_bytes_after_open",
    "open_ms",
];

#[test]
fn every_engine_reports_every_metric() {
    let scratch = tempfile::tempdir().unwrap();
    let json = scratch.path().join("peers.json");
    let svg = scratch.path().join("peers.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_flin-engine-peers"))
        .args(["--keys", "1000", "--seconds", "0.1", "--ops", "500"])
        .args(["--overwrites", "500", "--engines", &ENGINES.join(",")])
        .arg("--dir")
        .arg(scratch.path())
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("flin/best peer"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let engines = report["engines"].as_object().unwrap();
    assert_eq!(report.as_object().unwrap().len(), 1, "{report}");
    assert_eq!(engines.len(), ENGINES.len(), "{report}");
    for engine in ENGINES {
        let metrics = engines[engine].as_object().unwrap();
        assert_eq!(metrics.len(), METRICS.len(), "{engine}: {metrics:?}");
        for metric in METRICS {
            let value = metrics[metric].as_f64().unwrap_or(0.0);
            assert!(value > 0.0, "{engine} {metric} = {:?}", metrics[metric]);
        }
    }
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("vs redb"));
    // Each engine's directory is removed after its run; the scratch directory under --dir too.
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}
