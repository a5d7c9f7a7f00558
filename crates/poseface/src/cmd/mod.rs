//! One module per command.

pub mod align;
pub mod bench;
pub mod data;
pub mod device;
pub mod embed;
pub mod eval;
pub mod lae;
pub mod pose;
pub mod probe;
pub mod report;
pub mod synth;
pub mod train;
pub mod verify;

use anyhow::{Context, Result, bail};
use poseface_data::Point;

/// Parses `x1,y1,x2,y2,…` into 5 or 68 points.
pub fn parse_points(text: &str) -> Result<Vec<Point>> {
    let values: Vec<f32> = text
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| {
            s.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .with_context(|| format!("--points value {} ({s:?}) is not a finite number", i + 1))
        })
        .collect::<Result<_>>()?;
    if values.len() != 10 && values.len() != 136 {
        bail!(
            "--points needs 5 or 68 x,y pairs (10 or 136 numbers), got {} numbers",
            values.len()
        );
    }
    Ok(values.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
}

/// A progress bar with rate and ETA on stderr, hidden when `quiet` (e.g. JSON output). Its
/// length is set by the first progress report.
pub fn progress_bar(what: &str, quiet: bool) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} [{{elapsed_precise}} < {{eta_precise}}, {{per_sec}}]"
        ))
        .expect("valid template"),
    );
    bar
}

/// Advances `bar` from a library `progress(done, total)` report.
pub fn advance(bar: &indicatif::ProgressBar, done: u64, total: u64) {
    bar.set_length(total);
    bar.inc(done);
}
