//! What a run measured: one [`Metrics`] per engine, printed as a table (a row per metric, a
//! column per engine, and flin against the best peer) and written as JSON:
//! `{"engines": {"flin": {"put_ops_s": .., ...}, "fjall": {...}, ...}}`.

use std::fmt::Write as _;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Which way a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// How a metric is named in the JSON, the table and the chart.
#[derive(Clone, Copy, Debug)]
pub struct MetricInfo {
    pub name: &'static str,
    pub label: &'static str,
    /// A few words for the chart's axis.
    pub short: &'static str,
    pub better: Better,
}

const fn info(
    name: &'static str,
    label: &'static str,
    short: &'static str,
    better: Better,
) -> MetricInfo {
    MetricInfo {
        name,
        label,
        short,
        better,
    }
}

/// Every metric, in the order of [`Metrics`]' fields (a test holds the two together).
pub const METRICS: [MetricInfo; 13] = [
    info("put_ops_s", "put ops/s, 1 thread", "put", Better::Higher),
    info(
        "put_2t_ops_s",
        "put ops/s, 2 threads",
        "put 2t",
        Better::Higher,
    ),
    info("get_ops_s", "get ops/s, 1 thread", "get", Better::Higher),
    info(
        "get_2t_ops_s",
        "get ops/s, 2 threads",
        "get 2t",
        Better::Higher,
    ),
    info(
        "get_absent_ops_s",
        "absent get ops/s, 1 thread",
        "absent",
        Better::Higher,
    ),
    info(
        "get_absent_2t_ops_s",
        "absent get ops/s, 2 threads",
        "absent 2t",
        Better::Higher,
    ),
    info(
        "durable_put_16w_ops_s",
        "durable put ops/s, 16 writers",
        "durable 16w",
        Better::Higher,
    ),
    info("load_ops_s", "load ops/s", "load", Better::Higher),
    info(
        "disk_bytes_after_load",
        "disk after load",
        "disk, loaded",
        Better::Lower,
    ),
    info(
        "disk_bytes_after_overwrite",
        "disk after overwrites",
        "disk, overwr.",
        Better::Lower,
    ),
    info(
        "rss_bytes_after_load",
        "RSS growth over the load",
        "RSS, loaded",
        Better::Lower,
    ),
    info(
        "rss_bytes_after_open",
        "RSS growth across open",
        "RSS at open",
        Better::Lower,
    ),
    info(
        "open_ms",
        "open time of the loaded store",
        "open time",
        Better::Lower,
    ),
];

/// One engine's figures; field names are the JSON's (units last).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub put_ops_s: f64,
    pub put_2t_ops_s: f64,
    pub get_ops_s: f64,
    pub get_2t_ops_s: f64,
    pub get_absent_ops_s: f64,
    pub get_absent_2t_ops_s: f64,
    pub durable_put_16w_ops_s: f64,
    pub load_ops_s: f64,
    pub disk_bytes_after_load: u64,
    pub disk_bytes_after_overwrite: u64,
    pub rss_bytes_after_load: u64,
    pub rss_bytes_after_open: u64,
    pub open_ms: f64,
}

impl Metrics {
    /// The values in [`METRICS`] order.
    pub fn values(&self) -> [f64; 13] {
        [
            self.put_ops_s,
            self.put_2t_ops_s,
            self.get_ops_s,
            self.get_2t_ops_s,
            self.get_absent_ops_s,
            self.get_absent_2t_ops_s,
            self.durable_put_16w_ops_s,
            self.load_ops_s,
            self.disk_bytes_after_load as f64,
            self.disk_bytes_after_overwrite as f64,
            self.rss_bytes_after_load as f64,
            self.rss_bytes_after_open as f64,
            self.open_ms,
        ]
    }
}

/// Every engine's metrics, in the order they ran.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub engines: Vec<(String, Metrics)>,
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct InOrder<'a>(&'a [(String, Metrics)]);
        impl Serialize for InOrder<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (name, metrics) in self.0 {
                    map.serialize_entry(name, metrics)?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("engines", &InOrder(&self.engines))?;
        map.end()
    }
}

impl Report {
    fn flin(&self) -> Option<&Metrics> {
        self.engines
            .iter()
            .find_map(|(name, m)| (name == "flin").then_some(m))
    }

    /// The peers' values of metric `index`, with their names.
    pub fn peers(&self, index: usize) -> impl Iterator<Item = (&str, f64)> {
        self.engines
            .iter()
            .filter(|(name, _)| name != "flin")
            .map(move |(name, m)| (name.as_str(), m.values()[index]))
    }

    /// The best peer's value of metric `index` and its name.
    pub fn best_peer(&self, index: usize) -> Option<(&str, f64)> {
        let better = METRICS[index].better;
        self.peers(index).reduce(|best, peer| {
            let peer_better = match better {
                Better::Higher => peer.1 > best.1,
                Better::Lower => peer.1 < best.1,
            };
            if peer_better {
                peer
            } else {
                best
            }
        })
    }

    /// flin's lead on metric `index` over a peer's `value`: above 1 when flin is better,
    /// whichever way the metric is better.
    pub fn lead(&self, index: usize, value: f64) -> Option<f64> {
        let flin = self.flin()?.values()[index];
        let lead = match METRICS[index].better {
            Better::Higher => flin / value,
            Better::Lower => value / flin,
        };
        lead.is_finite().then_some(lead)
    }

    /// The table: a row per metric, a column per engine, then flin's value divided by the best
    /// peer's and whether that is a lead.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "{:<32}", "metric");
        for (name, _) in &self.engines {
            let _ = write!(out, "{name:>12}");
        }
        let _ = writeln!(out, "  {:>14}  {:<10} flin", "flin/best peer", "best peer");
        for (index, metric) in METRICS.iter().enumerate() {
            let _ = write!(out, "{:<32}", metric.label);
            for (_, m) in &self.engines {
                let _ = write!(out, "{:>12}", format_value(metric, m.values()[index]));
            }
            let (Some(flin), Some((peer, best))) = (self.flin(), self.best_peer(index)) else {
                let _ = writeln!(out);
                continue;
            };
            let ratio = flin.values()[index] / best;
            let verdict = match self.lead(index, best) {
                Some(lead) if lead >= 1.0 => "leads",
                Some(_) => "behind",
                None => "-",
            };
            let _ = writeln!(out, "  {ratio:>13.2}x  {peer:<10} {verdict}");
        }
        out
    }
}

/// A metric's value as the table shows it.
pub fn format_value(metric: &MetricInfo, value: f64) -> String {
    if metric.name.ends_with("_ops_s") {
        short_number(value)
    } else if metric.name.contains("bytes") {
        format!("{:.1} MiB", value / (1024.0 * 1024.0))
    } else {
        format!("{value:.1} ms")
    }
}

/// `1234567.0` as `1.23M`, `45600.0` as `45.6k`.
pub fn short_number(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(scale: f64) -> Metrics {
        Metrics {
            put_ops_s: 100.0 * scale,
            put_2t_ops_s: 1.0,
            get_ops_s: 1.0,
            get_2t_ops_s: 1.0,
            get_absent_ops_s: 1.0,
            get_absent_2t_ops_s: 1.0,
            durable_put_16w_ops_s: 1.0,
            load_ops_s: 1.0,
            disk_bytes_after_load: (1000.0 * scale) as u64,
            disk_bytes_after_overwrite: 1,
            rss_bytes_after_load: 1,
            rss_bytes_after_open: 1,
            open_ms: 1.0,
        }
    }

    #[test]
    fn json_names_follow_the_metric_list_and_engine_order() {
        let report = Report {
            engines: vec![
                ("flin".into(), metrics(2.0)),
                ("fjall".into(), metrics(1.0)),
            ],
        };
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            json.starts_with(r#"{"engines":{"flin":{"put_ops_s":200.0"#),
            "{json}"
        );
        assert!(json.find("\"flin\"") < json.find("\"fjall\""), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let fields: Vec<&String> = value["engines"]["fjall"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        assert_eq!(fields.len(), names.len());
        for (index, name) in names.iter().enumerate() {
            let field = value["engines"]["fjall"][name].as_f64().unwrap();
            assert_eq!(field, metrics(1.0).values()[index], "{name}");
        }
    }

    #[test]
    fn lead_is_above_one_when_flin_is_better_either_way() {
        let report = Report {
            engines: vec![
                ("flin".into(), metrics(2.0)),
                ("fjall".into(), metrics(1.0)),
                ("redb".into(), metrics(1.5)),
            ],
        };
        // put: higher is better, flin 200 against the best peer's 150.
        assert_eq!(report.best_peer(0), Some(("redb", 150.0)));
        assert!((report.lead(0, 150.0).unwrap() - 200.0 / 150.0).abs() < 1e-9);
        // disk after load: lower is better, flin 2000 against the best peer's 1000.
        assert_eq!(report.best_peer(8), Some(("fjall", 1000.0)));
        assert!((report.lead(8, 1000.0).unwrap() - 0.5).abs() < 1e-9);
        let table = report.table();
        assert!(table.contains("put ops/s, 1 thread"), "{table}");
        assert!(
            table.contains("leads") && table.contains("behind"),
            "{table}"
        );
    }
}
