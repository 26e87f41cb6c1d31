//! The report's pictures, drawn by plotters into SVG strings: a timeline per scenario run (one row per
//! process, its phases as bars, what the harness and the server did as markers on the same time axis),
//! a latency histogram per scenario, and the nightly trend of a scenario's figures.
//!
//! Every row of a timeline carries a text label `#<row> <role> pid <pid>`: the browser test counts
//! them to check that no process is missing from the picture.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use stress_cache_metadata::{EventKind, ScenarioRecord};

/// Width of every chart, in pixels.
const WIDTH: u32 = 1100;
/// Height of one process row of a timeline.
const ROW_PX: u32 = 22;

/// A drawing failure (plotters reports it as a backend error); the report shows the message instead
/// of the picture.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {what}: {message}")]
pub struct ChartError {
    what: &'static str,
    message: String,
}

fn chart_error<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> ChartError {
    move |e| ChartError { what, message: format!("{e:?}") }
}

/// Colour of a process phase bar: fixed for the phases beaker and most targets report, else from a
/// small palette by name.
pub fn phase_color(name: &str) -> RGBColor {
    match name {
        "lock_wait" | "lock" => RGBColor(0x9e, 0x9e, 0x9e),
        "download" | "fetch" => RGBColor(0x1f, 0x77, 0xb4),
        "verify" | "hash" => RGBColor(0x17, 0xbe, 0xcf),
        "compile" => RGBColor(0x94, 0x67, 0xbd),
        "load" => RGBColor(0x2c, 0xa0, 0x2c),
        "inference" | "infer" => RGBColor(0xbc, 0xbd, 0x22),
        other => {
            const PALETTE: [RGBColor; 5] = [
                RGBColor(0x8c, 0x56, 0x4b),
                RGBColor(0xe3, 0x77, 0xc2),
                RGBColor(0x7f, 0x7f, 0x7f),
                RGBColor(0xff, 0xbb, 0x78),
                RGBColor(0x98, 0xdf, 0x8a),
            ];
            let hash = other.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
            PALETTE[hash % PALETTE.len()]
        }
    }
}

/// Colour of a process's exit marker by outcome class.
pub fn class_color(class: &str) -> RGBColor {
    match class {
        "ok" => RGBColor(0x2c, 0xa0, 0x2c),
        "crashed" | "signal" | "panicked" | "hung" => RGBColor(0xd6, 0x27, 0x28),
        _ => RGBColor(0xff, 0x7f, 0x0e),
    }
}

/// Colour of an event marker.
pub fn event_color(kind: EventKind) -> RGBColor {
    match kind {
        EventKind::GateRelease => RGBColor(0x75, 0x3f, 0xb0),
        EventKind::Sigstop => RGBColor(0x1f, 0x4e, 0xb4),
        EventKind::Sigcont => RGBColor(0x17, 0xa7, 0xcf),
        EventKind::Sigkill => RGBColor(0xd6, 0x27, 0x28),
        EventKind::Fault => RGBColor(0xff, 0x7f, 0x0e),
    }
}

/// One row of a timeline: a process, where its bar starts and ends, and its phases (ms from the axis
/// origin).
struct Row {
    label: String,
    pid: u32,
    start: f64,
    end: f64,
    class: String,
    phases: Vec<(String, f64, f64)>,
}

/// The rows of a record's timeline and the time origin (unix ms), in record order.
fn rows_of(record: &ScenarioRecord) -> (Vec<Row>, u64) {
    let start_of =
        |r: &stress_cache_metadata::ProcessRun| r.started_unix_ms.unwrap_or(record.started_unix_ms);
    let mut origin = record.process_runs.iter().map(start_of).filter(|s| *s > 0).min();
    for e in &record.events {
        origin = Some(origin.map_or(e.unix_ms, |o| o.min(e.unix_ms)));
    }
    let origin = origin.unwrap_or(record.started_unix_ms);
    let rel = |unix_ms: u64| unix_ms as f64 - origin as f64;
    let rows = record
        .process_runs
        .iter()
        .enumerate()
        .map(|(row, r)| {
            let start = rel(start_of(r));
            Row {
                label: format!("#{row} {} pid {}", r.role, r.pid),
                pid: r.pid,
                start,
                end: start + r.wall_ms,
                class: r.class.clone(),
                phases: r
                    .phases
                    .iter()
                    .map(|p| (p.name.clone(), rel(p.start_unix_ms), rel(p.end_unix_ms.max(p.start_unix_ms))))
                    .collect(),
            }
        })
        .collect();
    (rows, origin)
}

/// The SVG timeline of one scenario run.
pub fn timeline(record: &ScenarioRecord) -> Result<String, ChartError> {
    let (rows, origin) = rows_of(record);
    let n = rows.len().max(1);
    let event_end = record.events.iter().map(|e| e.unix_ms as f64 - origin as f64).fold(0.0, f64::max);
    let x_max = rows.iter().map(|r| r.end).fold(event_end, f64::max).max(1.0) * 1.02;
    let height = ROW_PX * n as u32 + 70;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error("timeline"))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .margin_left(230)
            .x_label_area_size(35)
            .build_cartesian_2d(0f64..x_max, 0f64..n as f64)
            .map_err(chart_error("timeline"))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc("ms since the first process was released")
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(chart_error("timeline axes"))?;
        // Row r is drawn from the top: its centre is at y = n - r - 0.5.
        let y_of = |row: usize| n as f64 - row as f64 - 0.5;
        let label_style = TextStyle::from(("monospace", 12).into_font()).color(&BLACK);
        for (i, row) in rows.iter().enumerate() {
            let y = y_of(i);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(row.start, y - 0.35), (row.end, y + 0.35)],
                    RGBColor(0xe4, 0xe4, 0xe4).filled(),
                )))
                .map_err(chart_error("process bar"))?;
            chart
                .draw_series(row.phases.iter().map(|(name, from, to)| {
                    Rectangle::new([(*from, y - 0.25), (*to, y + 0.25)], phase_color(name).filled())
                }))
                .map_err(chart_error("phase bars"))?;
            chart
                .draw_series(std::iter::once(Circle::new((row.end, y), 5, class_color(&row.class).filled())))
                .map_err(chart_error("exit marker"))?;
            if row.class != "ok" {
                chart
                    .draw_series(std::iter::once(Text::new(
                        row.class.clone(),
                        (row.end, y + 0.45),
                        ("sans-serif", 11).into_font().color(&class_color(&row.class)),
                    )))
                    .map_err(chart_error("exit class"))?;
            }
            // The label sits left of the plot, at the row's centre.
            let (_, py) = chart.backend_coord(&(0.0, y));
            root.draw(&Text::new(row.label.clone(), (8, py - 6), label_style.clone()))
                .map_err(chart_error("row label"))?;
        }
        for event in &record.events {
            let x = event.unix_ms as f64 - origin as f64;
            let color = event_color(event.kind);
            let row = event.pid.and_then(|pid| rows.iter().position(|r| r.pid == pid));
            match row {
                // Signals on the process's own row.
                Some(i) => {
                    let y = y_of(i);
                    let marker: Vec<(f64, f64)> = vec![(x, y + 0.45), (x, y - 0.45)];
                    chart
                        .draw_series(std::iter::once(PathElement::new(marker, color.stroke_width(3))))
                        .map_err(chart_error("signal marker"))?;
                    chart
                        .draw_series(std::iter::once(TriangleMarker::new((x, y + 0.3), 5, color.filled())))
                        .map_err(chart_error("signal marker"))?;
                }
                // Server events (and signals to processes not in the record) across every row.
                None => {
                    let line: Vec<(f64, f64)> = vec![(x, 0.0), (x, n as f64)];
                    let width = if event.kind == EventKind::GateRelease { 2 } else { 1 };
                    chart
                        .draw_series(std::iter::once(PathElement::new(line, color.stroke_width(width))))
                        .map_err(chart_error("server event"))?;
                }
            }
        }
        root.present().map_err(chart_error("timeline"))?;
    }
    Ok(svg)
}

/// A histogram of process latencies (ms), `buckets` wide.
pub fn latency_histogram(latencies_ms: &[f64], buckets: usize) -> Result<String, ChartError> {
    let buckets = buckets.max(1);
    let max = latencies_ms.iter().copied().fold(1.0, f64::max);
    let width = max / buckets as f64;
    let mut counts = vec![0u32; buckets];
    for l in latencies_ms {
        let b = ((l / width) as usize).min(buckets - 1);
        counts[b] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 220)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error("histogram"))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..max, 0u32..top + 1)
            .map_err(chart_error("histogram"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("process latency (ms, release to exit)")
            .y_desc("processes")
            .draw()
            .map_err(chart_error("histogram axes"))?;
        chart
            .draw_series(counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| {
                let from = i as f64 * width;
                Rectangle::new([(from, 0), (from + width * 0.95, *c)], RGBColor(0x1f, 0x77, 0xb4).filled())
            }))
            .map_err(chart_error("histogram bars"))?;
        root.present().map_err(chart_error("histogram"))?;
    }
    Ok(svg)
}

/// One figure's values over the nightly runs, oldest first (`None`: the scenario did not run then).
pub type Trend = BTreeMap<&'static str, Vec<Option<f64>>>;

/// Lines of a scenario's figures over `runs` nightly runs (x: the run's position, oldest first).
pub fn trend(scenario: &str, figures: &Trend, runs: usize) -> Result<String, ChartError> {
    let top = figures.values().flatten().flatten().copied().fold(1.0, f64::max) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 220)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error("trend"))?;
        draw_trend(&root, scenario, figures, runs.max(2), top)?;
        root.present().map_err(chart_error("trend"))?;
    }
    Ok(svg)
}

fn draw_trend(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    scenario: &str,
    figures: &Trend,
    runs: usize,
    top: f64,
) -> Result<(), ChartError> {
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .caption(scenario, ("sans-serif", 13))
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(0f64..(runs - 1) as f64, 0f64..top)
        .map_err(chart_error("trend"))?;
    chart.configure_mesh().x_desc("nightly run (oldest first)").draw().map_err(chart_error("trend axes"))?;
    const COLORS: [RGBColor; 4] =
        [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28), RGBColor(0x2c, 0xa0, 0x2c), BLACK];
    for (i, (name, values)) in figures.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> =
            values.iter().enumerate().filter_map(|(x, v)| v.map(|v| (x as f64, v))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(chart_error("trend line"))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(chart_error("trend points"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(chart_error("trend legend"))?;
    Ok(())
}
