//! The SVG chart of a [`Report`]: for each metric, one bar per peer showing flin's lead over
//! it (flin's ops/s over the peer's, or the peer's bytes or milliseconds over flin's), on a log
//! scale around a 1.0 line, so a bar above the line is a cell flin leads whichever way the
//! metric is better, and a 3x lead looks as tall as a 3x deficit looks deep.

use std::path::Path;

use flin_bench::chart::{CHART_HEIGHT_PX, CHART_WIDTH_MIN_PX};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::{Report, METRICS};
use super::store::Result;

/// Pixels per metric; the chart widens with the number of peers.
const BAR_WIDTH_PX: u32 = 34;
/// Peer colours, in the order the peers ran.
const PEER_COLORS: [RGBColor; 4] = [
    RGBColor(0xD8, 0x2C, 0x20),
    RGBColor(0x2C, 0xA0, 0x2C),
    RGBColor(0x94, 0x67, 0xBD),
    RGBColor(0xFF, 0x7F, 0x0E),
];

/// Draws `report` into the SVG file `out`.
///
/// # Errors
/// No flin column or no peer to compare with, or drawing or writing fails.
pub fn draw(report: &Report, out: &Path, caption: &str) -> Result<()> {
    let peers: Vec<&str> = report.peers(0).map(|(name, _)| name).collect();
    if peers.is_empty() || report.lead(0, 1.0).is_none() {
        return Err("the chart needs flin and at least one peer".into());
    }
    // lead[metric][peer]; a missing or zero value is left out of the chart.
    let leads: Vec<Vec<Option<f64>>> = (0..METRICS.len())
        .map(|index| {
            report
                .peers(index)
                .map(|(_, value)| report.lead(index, value).filter(|l| *l > 0.0))
                .collect()
        })
        .collect();
    let (lowest, highest) = leads
        .iter()
        .flatten()
        .flatten()
        .fold((1.0f64, 1.0f64), |(lo, hi), l| (lo.min(*l), hi.max(*l)));
    let groups = METRICS.len();
    let group_px = BAR_WIDTH_PX * peers.len() as u32 + 24;
    let width = (group_px * groups as u32 + 160).max(CHART_WIDTH_MIN_PX);
    let root = SVGBackend::new(out, (width, CHART_HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(20)
        .margin_right(40)
        .x_label_area_size(50)
        .y_label_area_size(80)
        // Headroom above the tallest bar for the legend.
        .build_cartesian_2d(
            0f64..groups as f64,
            (lowest / 1.6..highest * 6.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("flin's lead (x, log scale; > 1: flin better)")
        .y_label_formatter(&|lead| format!("{lead}x"))
        .draw()?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 1.0), (groups as f64, 1.0)],
        BLACK.stroke_width(2),
    )))?;
    let bar = 0.9 / peers.len() as f64;
    let value_style = TextStyle::from(("sans-serif", 11));
    for (p, peer) in peers.iter().enumerate() {
        let color = PEER_COLORS[p % PEER_COLORS.len()];
        let x_of = |metric: usize| metric as f64 + 0.05 + bar * p as f64;
        let bars = leads.iter().enumerate().filter_map(|(metric, row)| {
            let lead = row[p]?;
            let x = x_of(metric);
            Some(Rectangle::new(
                [(x, 1.0), (x + bar * 0.9, lead)],
                color.filled(),
            ))
        });
        chart
            .draw_series(bars)?
            .label(format!("vs {peer}"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled()));
        for (metric, row) in leads.iter().enumerate() {
            let Some(lead) = row[p] else { continue };
            let vpos = if lead >= 1.0 { VPos::Bottom } else { VPos::Top };
            chart.draw_series(std::iter::once(Text::new(
                lead_label(lead),
                (x_of(metric) + bar * 0.45, lead),
                value_style.clone().pos(Pos::new(HPos::Center, vpos)),
            )))?;
        }
    }
    let label_style = TextStyle::from(("sans-serif", 13)).pos(Pos::new(HPos::Center, VPos::Top));
    for (metric, info) in METRICS.iter().enumerate() {
        let (x, _) = chart.backend_coord(&(metric as f64 + 0.5, 1.0));
        let (_, y) = chart.backend_coord(&(0.0, lowest / 1.6));
        root.draw(&Text::new(info.short, (x, y + 8), label_style.clone()))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Two significant digits at least: `2.31`, `0.21`, `0.0042`.
fn lead_label(lead: f64) -> String {
    let decimals = (-lead.log10().floor()).max(0.0) as usize + 1;
    format!("{lead:.*}", decimals.max(2))
}

#[cfg(test)]
mod tests {
    use super::super::report::Metrics;
    use super::*;

    #[test]
    fn draws_every_metric_and_peer() {
        let m = |scale: f64| Metrics {
            put_ops_s: 1e6 * scale,
            put_2t_ops_s: 1e6,
            get_ops_s: 2e6 * scale,
            get_2t_ops_s: 1e6,
            get_absent_ops_s: 1e6,
            get_absent_2t_ops_s: 1e6,
            durable_put_16w_ops_s: 1e3,
            load_ops_s: 1e6,
            disk_bytes_after_load: 1 << 27,
            disk_bytes_after_overwrite: 1 << 28,
            rss_bytes_after_load: 1 << 25,
            rss_bytes_after_open: 1 << 24,
            open_ms: 30.0 * scale,
        };
        let report = Report {
            engines: vec![
                ("flin".into(), m(1.0)),
                ("fjall".into(), m(0.5)),
                ("redb".into(), m(3.0)),
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.svg");
        draw(&report, &path, "test").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "vs fjall",
            "vs redb",
            "durable 16w",
            "open time",
            "2.00",
            "0.33",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        let alone = Report {
            engines: vec![("flin".into(), m(1.0))],
        };
        assert!(draw(&alone, &path, "test").is_err());
    }

    #[test]
    fn lead_labels_keep_two_significant_digits() {
        assert_eq!(lead_label(25.01), "25.01");
        assert_eq!(lead_label(1.0), "1.00");
        assert_eq!(lead_label(0.21), "0.21");
        assert_eq!(lead_label(0.0042), "0.0042");
    }
}
