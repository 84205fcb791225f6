//! `rpmem bench --plot FILE.svg`: the latency distribution of each persist
//! size beside its raw floor, and throughput per stream count.

use std::path::Path;

use plotters::prelude::*;

use super::report::Report;
use crate::error::{CliError, Result};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 520;
const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

fn plot_err(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!("cannot draw the plot: {e}"))
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)
}

/// Draws the report's plot into `path`.
pub fn draw(r: &Report, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (left, right) = root.split_horizontally(WIDTH * 3 / 5);

    let persists: Vec<_> = r
        .latency
        .iter()
        .filter(|l| l.name.starts_with("persist"))
        .collect();
    let top = persists
        .iter()
        .flat_map(|l| l.raw.curve.iter().chain(&l.rpmem.curve))
        .map(|p| p[1])
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("persist latency beside the raw floor", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.3f64..3.0f64, (1f64..top).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("µs")
        .x_label_formatter(&|x| {
            let p = format!("{:.1}", 100.0 - 100.0 * 10f64.powf(-x));
            format!("p{}", p.trim_end_matches(".0"))
        })
        .draw()
        .map_err(plot_err)?;
    for (i, l) in persists.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let rp = l.rpmem.curve.iter().map(|p| (p[0], p[1]));
        chart
            .draw_series(LineSeries::new(rp, color.stroke_width(2)))
            .map_err(plot_err)?
            .label(l.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        let raw = l.raw.curve.iter().map(|p| (p[0], p[1]));
        let dashed = color.mix(0.5);
        chart
            .draw_series(LineSeries::new(raw, dashed.stroke_width(1)))
            .map_err(plot_err)?
            .label(format!("{} (raw floor)", l.name))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], dashed.stroke_width(1)));
    }
    legend(&mut chart)?;

    let lanes: Vec<_> = r
        .throughput
        .iter()
        .filter(|t| !t.sessions && t.name.contains("relaxed"))
        .collect();
    let sessions: Vec<_> = r.throughput.iter().filter(|t| t.sessions).collect();
    let all = lanes.iter().chain(&sessions);
    let most = all.clone().map(|t| t.streams).max().unwrap_or(1) as f64;
    let peak = all
        .flat_map(|t| [t.raw.gib_per_s, t.rpmem.gib_per_s])
        .fold(0.1f64, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(&right)
        .caption("1 MiB persists per stream count", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(0.5f64..most + 0.5, 0f64..peak)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("lanes (sessions)")
        .y_desc("GiB/s")
        .draw()
        .map_err(plot_err)?;
    let series: [(&str, &[&super::report::ThroughputFigure], bool, RGBColor); 4] = [
        ("rpmem, lanes of one pool", &lanes, false, COLORS[0]),
        ("raw floor, streams", &lanes, true, COLORS[0]),
        ("rpmem, one session per pool", &sessions, false, COLORS[1]),
        (
            "raw floor, streams beside sessions",
            &sessions,
            true,
            COLORS[1],
        ),
    ];
    for (label, figs, raw, color) in series {
        if figs.is_empty() {
            continue;
        }
        let color = if raw { color.mix(0.5) } else { color.mix(1.0) };
        let pts: Vec<(f64, f64)> = figs
            .iter()
            .map(|t| {
                (
                    t.streams as f64,
                    if raw {
                        t.raw.gib_per_s
                    } else {
                        t.rpmem.gib_per_s
                    },
                )
            })
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(plot_err)?;
    }
    legend(&mut chart)?;
    root.present().map_err(plot_err)
}
