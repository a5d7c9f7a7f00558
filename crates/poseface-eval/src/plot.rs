//! Plots of evaluation results, each written twice: as SVG at the given path and as PNG
//! beside it (same name, `.png`). Drawn with plotters; text is set in the Ubuntu Light face
//! bundled by the `epaint_default_fonts` crate, so PNGs render the same on a machine with no
//! fonts installed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::EvalError;
use crate::histogram::ScoreHistogram;
use crate::pose::PoseStratified;

/// Result of one drawing pass (the backend's error as text).
type Drawn = Result<(), String>;

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn ensure_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // Registration fails only for bytes that are not a font; these are.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

/// A white drawing with `title` above and room for axis labels: every plot's frame.
fn frame<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
) -> Result<ChartBuilder<'a, 'a, DB>, String> {
    root.fill(&WHITE).map_err(text)?;
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56);
    Ok(builder)
}

/// Draws the series' legend boxed at `position`.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(position)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(text)
}

/// Draws with `$draw(&root, args…)` on an SVG backend at `$path` and on a bitmap written as
/// PNG beside it. A macro because the drawing functions are generic over the backend.
macro_rules! svg_and_png {
    ($path:expr, $size:expr, $draw:ident ( $($arg:expr),* )) => {{
        let path: &Path = $path;
        let size: (u32, u32) = $size;
        let fail = |p: &Path, e: String| EvalError::Io(format!("{}: {e}", p.display()));
        ensure_font();
        {
            let root = SVGBackend::new(path, size).into_drawing_area();
            $draw(&root, $($arg),*).map_err(|e| fail(path, e))?;
            root.present().map_err(|e| fail(path, text(e)))?;
        }
        let png = path.with_extension("png");
        let mut buffer = vec![0u8; size.0 as usize * size.1 as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
            $draw(&root, $($arg),*).map_err(|e| fail(&png, e))?;
            root.present().map_err(|e| fail(&png, text(e)))?;
        }
        let image = image::RgbImage::from_raw(size.0, size.1, buffer)
            .ok_or_else(|| fail(&png, "bitmap size mismatch".into()))?;
        image.save(&png).map_err(|e| fail(&png, text(e)))
    }};
}

/// Writes TAR-against-FAR curves (log FAR axis from `min_far` to 1; smaller FARs are drawn
/// at `min_far`), one per labelled series of `(far, tar)` points, as SVG and PNG.
pub fn tar_far(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    min_far: f64,
    path: &Path,
) -> Result<(), EvalError> {
    if !(min_far > 0.0 && min_far < 1.0) {
        return Err(EvalError::Mismatch(format!(
            "{}: the smallest FAR drawn must lie in (0, 1), not {min_far}",
            path.display()
        )));
    }
    svg_and_png!(path, (720, 480), draw_tar_far(title, series, min_far))
}

fn draw_tar_far<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    min_far: f64,
) -> Drawn {
    let mut chart = frame(root, title)?
        .build_cartesian_2d((min_far..1f64).log_scale(), 0f64..1.0f64)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("false accept rate")
        .y_desc("true accept rate")
        .draw()
        .map_err(text)?;
    for (i, (label, points)) in series.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = points.iter().map(|&(f, t)| (f.max(min_far), t)).collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(text)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// Writes grouped bars of accuracy per pose bucket (frontal–frontal, frontal–profile,
/// profile–profile, then the |Δyaw| bins) for each labelled series, as SVG and PNG.
pub fn pose_accuracy(series: &[(String, PoseStratified)], path: &Path) -> Result<(), EvalError> {
    if series.is_empty() {
        return Err(EvalError::TooFew("no set with poses to plot".into()));
    }
    // Taller with more series, so the legend above the bars never squeezes them.
    let height = 480 + 16 * series.len().saturating_sub(2) as u32;
    svg_and_png!(path, (960, height), draw_pose_accuracy(series))
}

fn draw_pose_accuracy<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[(String, PoseStratified)],
) -> Drawn {
    let first = &series[0].1;
    let labels: Vec<String> = first
        .by_pose
        .iter()
        .chain(&first.by_yaw_difference)
        .map(|b| b.bucket.clone())
        .collect();
    let n = labels.len();
    let mut chart = frame(root, "verification accuracy by pose")?
        // Room above 100% for the legend (about 16 pixels a row and 24 of frame), so that it
        // never covers a bar: the axis top in percent for a plotting area of `plot` pixels
        // (the drawing's height less caption, margins and labels).
        .build_cartesian_2d(
            -0.5f64..(n as f64 - 0.5),
            0f64..{
                let plot = root.dim_in_pixel().1 as f64 - 100.0;
                let legend = 16.0 * series.len() as f64 + 24.0;
                100.0 * plot / (plot - legend).max(plot / 3.0)
            },
        )
        .map_err(text)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc("accuracy (%)")
        .y_label_formatter(&|y| {
            if *y <= 100.0 {
                format!("{y:.0}")
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(text)?;
    let width = 0.8 / series.len() as f64;
    for (s, (label, strat)) in series.iter().enumerate() {
        let colour = Palette99::pick(s).to_rgba();
        let bars: Vec<Rectangle<(f64, f64)>> = strat
            .by_pose
            .iter()
            .chain(&strat.by_yaw_difference)
            .enumerate()
            .filter_map(|(i, b)| {
                let acc = b.accuracy? * 100.0;
                let x0 = i as f64 - 0.4 + s as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, acc)],
                    colour.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(text)?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// Writes the genuine and impostor score distributions of one set (shares of each class per
/// bin, outlined), as SVG and PNG.
pub fn score_histogram(
    title: &str,
    histogram: &ScoreHistogram,
    path: &Path,
) -> Result<(), EvalError> {
    histogram.check()?;
    svg_and_png!(path, (720, 420), draw_histogram(title, histogram))
}

fn draw_histogram<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    h: &ScoreHistogram,
) -> Drawn {
    let genuine = ScoreHistogram::shares(&h.genuine);
    let impostor = ScoreHistogram::shares(&h.impostor);
    let top = genuine
        .iter()
        .chain(&impostor)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let (lo, hi) = (h.edges[0], h.edges[h.edges.len() - 1]);
    let mut chart = frame(root, title)?
        .build_cartesian_2d(lo..hi, 0f64..top)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("cosine similarity")
        .y_desc("share of pairs")
        .draw()
        .map_err(text)?;
    for (i, (label, shares)) in [("genuine", &genuine), ("impostor", &impostor)]
        .into_iter()
        .enumerate()
    {
        let colour = Palette99::pick(i).to_rgba();
        let bars: Vec<Rectangle<(f64, f64)>> = shares
            .iter()
            .enumerate()
            .map(|(b, &v)| {
                Rectangle::new(
                    [(h.edges[b], 0.0), (h.edges[b + 1], v)],
                    colour.mix(0.35).filled(),
                )
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(text)?
            .label(format!(
                "{label} ({})",
                if i == 0 {
                    ScoreHistogram::total(&h.genuine)
                } else {
                    ScoreHistogram::total(&h.impostor)
                }
            ))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}
