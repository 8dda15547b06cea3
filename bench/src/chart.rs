//! `flin-bench chart`: the table `compare.sh --json` writes, drawn in SVG as one bar per test
//! and cell: flin's ops/s as a ratio of redis's, against a line at 1.0 (redis), each bar
//! labelled with both servers' ops/s.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

use crate::error::BenchError;

/// Pixels per bar; the chart widens with the table.
pub const GROUP_WIDTH_PX: u32 = 110;
/// Narrowest chart.
pub const CHART_WIDTH_MIN_PX: u32 = 800;
/// Height of every chart.
pub const CHART_HEIGHT_PX: u32 = 520;
/// Most rows drawn: past this the labels would not fit any screen.
pub const CHART_ROWS_MAX: usize = 200;

/// What `compare.sh --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareTable {
    /// `redis-benchmark` or `flin-bench`: what generated the load.
    pub tool: String,
    /// Requests per unpipelined test (pipelined tests send a multiple).
    pub requests: u64,
    /// One row per test and cell.
    pub rows: Vec<CompareRow>,
}

/// One test in one cell of the matrix, on both servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// `SET` or `GET`.
    pub test: String,
    /// `c16 P1` and the like.
    pub cell: String,
    /// `everysec` or `always`: both servers' fsync policy.
    #[serde(default)]
    pub fsync: String,
    /// redis-server's median ops/s.
    pub redis_ops_per_sec: f64,
    /// flin's median ops/s.
    pub flin_ops_per_sec: f64,
    /// flin's ops/s over redis's.
    #[serde(default)]
    pub ratio: Option<f64>,
    /// redis-server's CPU time (user + system) per operation.
    #[serde(default)]
    pub redis_cpu_us_per_op: Option<f64>,
    /// flin's CPU time (user + system) per operation.
    #[serde(default)]
    pub flin_cpu_us_per_op: Option<f64>,
}

impl CompareRow {
    fn label(&self) -> String {
        let fsync = match self.fsync.as_str() {
            "" | "everysec" => String::new(),
            other => format!(" fsync={other}"),
        };
        format!("{} {}{fsync}", self.test, self.cell)
    }
}

/// Reads a compare table from `path`.
///
/// # Errors
/// [`BenchError::Read`] or [`BenchError::Json`] with the path.
pub fn read_table(path: &Path) -> Result<CompareTable, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| BenchError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Draws `table` into the SVG file `out`.
///
/// # Errors
/// [`BenchError::Chart`] when the table is empty or too long, or drawing/writing fails.
pub fn draw(table: &CompareTable, out: &Path) -> Result<(), BenchError> {
    let chart_error = |message: String| BenchError::Chart {
        path: out.to_path_buf(),
        message,
    };
    if table.rows.is_empty() {
        return Err(chart_error("the table has no rows".to_string()));
    }
    if table.rows.len() > CHART_ROWS_MAX {
        return Err(chart_error(format!(
            "{} rows, more than the {CHART_ROWS_MAX} a chart can show",
            table.rows.len()
        )));
    }
    draw_svg(table, out).map_err(|e| chart_error(e.to_string()))
}

const REDIS_COLOR: RGBColor = RGBColor(0xD8, 0x2C, 0x20);
const FLIN_COLOR: RGBColor = RGBColor(0x1F, 0x6F, 0xB4);
/// Cells where flin trails redis.
const BEHIND_COLOR: RGBColor = RGBColor(0xE8, 0x9A, 0x3C);

/// The ratio axis reaches at least this far, so a table of ratios near 1.0 still shows the
/// redis line well below the top.
const RATIO_AXIS_MIN: f64 = 1.25;
/// The axis runs this far past the tallest bar: room for its label and, above every bar, the
/// legend.
const TOP_HEADROOM: f64 = 1.35;

impl CompareRow {
    /// flin's ops/s over redis's: the table's `ratio`, else computed; 0 when redis has none.
    pub fn flin_over_redis(&self) -> f64 {
        match self.ratio {
            Some(ratio) => ratio,
            None if self.redis_ops_per_sec > 0.0 => self.flin_ops_per_sec / self.redis_ops_per_sec,
            None => 0.0,
        }
    }
}

/// One bar per row: flin's ops/s as a ratio of redis's, against a line at 1.0 (redis). Ratios
/// keep the unpipelined cells (tens of thousands of ops/s) as readable as the pipelined ones
/// (millions); each bar's label gives both servers' ops/s.
fn draw_svg(table: &CompareTable, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let groups = table.rows.len();
    let width = (GROUP_WIDTH_PX * groups as u32 + 160).max(CHART_WIDTH_MIN_PX);
    let root = SVGBackend::new(out, (width, CHART_HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = table
        .rows
        .iter()
        .map(CompareRow::flin_over_redis)
        .fold(RATIO_AXIS_MIN, f64::max)
        * TOP_HEADROOM;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "flin ops/s as a ratio of redis's, per cell ({}, {} requests)",
                table.tool, table.requests
            ),
            ("sans-serif", 22),
        )
        .margin(20)
        .margin_right(60)
        .x_label_area_size(70)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..groups as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(0)
        .y_desc("flin / redis (ops/s)")
        .y_label_formatter(&|ratio| format!("{ratio:.1}x"))
        .draw()?;
    // Bars ahead of redis and behind it: one series each, so each has its legend entry.
    for (ahead, color, label) in [
        (true, FLIN_COLOR, "flin at or ahead of redis"),
        (false, BEHIND_COLOR, "flin behind redis"),
    ] {
        let bars = table.rows.iter().enumerate().filter_map(|(i, row)| {
            let ratio = row.flin_over_redis();
            let x = i as f64;
            ((ratio >= 1.0) == ahead)
                .then(|| Rectangle::new([(x + 0.2, 0.0), (x + 0.8, ratio)], color.filled()))
        });
        chart
            .draw_series(bars)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], color.filled()));
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            [(0.0, 1.0), (groups as f64, 1.0)],
            REDIS_COLOR.stroke_width(2),
        )))?
        .label("redis = 1.0")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], REDIS_COLOR.stroke_width(2)));
    let ratio_style = TextStyle::from(("sans-serif", 13)).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (i, row) in table.rows.iter().enumerate() {
        let ratio = row.flin_over_redis();
        chart.draw_series(std::iter::once(Text::new(
            format!("{ratio:.2}x"),
            (i as f64 + 0.5, ratio),
            ratio_style.clone(),
        )))?;
    }
    let label_style = TextStyle::from(("sans-serif", 13)).pos(Pos::new(HPos::Center, VPos::Top));
    let ops_style = TextStyle::from(("sans-serif", 11)).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, row) in table.rows.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        root.draw(&Text::new(row.label(), (x, y + 8), label_style.clone()))?;
        let flin = format!("flin {}", short_number(row.flin_ops_per_sec));
        let redis = format!("redis {}", short_number(row.redis_ops_per_sec));
        root.draw(&Text::new(flin, (x, y + 26), ops_style.clone()))?;
        root.draw(&Text::new(redis, (x, y + 40), ops_style.clone()))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// `1234567.0` as `1.23M`, `45600.0` as `45.6k`.
fn short_number(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(test: &str, cell: &str, redis: f64, flin: f64) -> CompareRow {
        CompareRow {
            test: test.into(),
            cell: cell.into(),
            fsync: "everysec".into(),
            redis_ops_per_sec: redis,
            flin_ops_per_sec: flin,
            ratio: Some(flin / redis),
            redis_cpu_us_per_op: Some(3.0),
            flin_cpu_us_per_op: None,
        }
    }

    #[test]
    fn draws_an_svg_with_every_group() {
        let table = CompareTable {
            tool: "redis-benchmark".into(),
            requests: 1000,
            rows: vec![
                row("SET", "c1 P1", 40_000.0, 50_000.0),
                row("GET", "c16 P16", 1.2e6, 0.9e6),
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("t.json");
        std::fs::write(&json, serde_json::to_string(&table).unwrap()).unwrap();
        let back = read_table(&json).unwrap();
        assert_eq!(back, table);
        let svg_path = dir.path().join("t.svg");
        draw(&back, &svg_path).unwrap();
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for text in [
            "SET c1 P1",
            "GET c16 P16",
            "redis = 1.0",
            "1.25x",
            "0.75x",
            "flin 50.0k",
            "redis 40.0k",
            "flin 900.0k",
            "redis 1.20M",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
    }

    #[test]
    fn empty_or_bad_tables_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let table = CompareTable {
            tool: "x".into(),
            requests: 1,
            rows: vec![],
        };
        let err = draw(&table, &dir.path().join("e.svg"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no rows"), "{err}");
        let json = dir.path().join("bad.json");
        std::fs::write(&json, "{").unwrap();
        assert!(matches!(read_table(&json), Err(BenchError::Json { .. })));
        assert!(matches!(
            read_table(&dir.path().join("missing.json")),
            Err(BenchError::Read { .. })
        ));
    }

    #[test]
    fn ratio_comes_from_the_table_or_the_rates() {
        let mut r = row("SET", "c1 P1", 40_000.0, 50_000.0);
        r.ratio = Some(1.3);
        assert_eq!(r.flin_over_redis(), 1.3);
        r.ratio = None;
        assert_eq!(r.flin_over_redis(), 1.25);
        r.redis_ops_per_sec = 0.0;
        assert_eq!(r.flin_over_redis(), 0.0);
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(1_234_567.0), "1.23M");
        assert_eq!(short_number(45_600.0), "45.6k");
        assert_eq!(short_number(12.0), "12");
    }
}
