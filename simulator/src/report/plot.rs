//! SVG line plots: series, point markers where a series is sparse, shaded fault windows.
//!
//! Contract: [`line_plot`] draws every series as a line; a series of at most
//! [`SPARSE_POINTS`] points also gets a marker per point (three sweep values drawn as a bare
//! line hide where the samples are). [`Band`]s (partitions, offline windows, churn, crashes)
//! are shaded x-ranges with their own legend entries, drawn under the lines. Axis labels are
//! the caller's words, with units.

use crate::scenario::FaultKind;
use plotters::prelude::*;
use std::path::Path;

/// Points drawn at most per line (curves are thinned evenly beyond it; SVG size stays small).
pub const MAX_PLOT_POINTS: usize = 2_000;

/// A series with at most this many points gets a marker at each.
pub const SPARSE_POINTS: usize = 50;

/// Plot size in pixels.
const PLOT_SIZE: (u32, u32) = (800, 500);

/// A shaded x-range: one fault window.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Legend text.
    pub label: String,
    /// Start, in x units.
    pub from: f64,
    /// End, in x units.
    pub to: f64,
    /// Its kind (its colour).
    pub kind: FaultKind,
}

fn band_color(kind: FaultKind) -> RGBColor {
    match kind {
        FaultKind::Partition => RGBColor(230, 120, 0),
        FaultKind::Offline => RGBColor(90, 90, 200),
        FaultKind::Churn => RGBColor(120, 120, 120),
        FaultKind::Crash => RGBColor(200, 0, 0),
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e:?}")
}

/// Evenly thinned to at most [`MAX_PLOT_POINTS`] (the last point kept).
pub fn thin<T: Copy>(v: &[T]) -> Vec<T> {
    if v.len() <= MAX_PLOT_POINTS {
        return v.to_vec();
    }
    let step = v.len().div_ceil(MAX_PLOT_POINTS);
    let mut out: Vec<T> = v.iter().step_by(step).copied().collect();
    if let Some(&last) = v.last() {
        out.push(last);
    }
    out
}

/// Draws lines `(label, points)` over shaded `bands` into an SVG at `path`.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    bands: &[Band],
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    for b in bands {
        x0 = x0.min(b.from);
        x1 = x1.max(b.to);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    y0 = y0.min(0.0);
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let top = y1 * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..top)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(plot_err)?;
    for b in bands {
        let color = band_color(b.kind);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(b.from, y0), (b.to.max(b.from), top)],
                color.mix(0.15).filled(),
            )))
            .map_err(plot_err)?
            .label(b.label.as_str())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], color.mix(0.3).filled())
            });
    }
    for (i, (label, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        if points.len() <= SPARSE_POINTS {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(plot_err)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}
