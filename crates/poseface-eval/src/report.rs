//! Evaluation reports people look at: a Markdown summary, the ROC curves of the pair sets
//! (`roc.svg`) and the accuracy by pose bucket (`pose_accuracy.svg`).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::pose::PoseStratified;
use crate::roc::Roc;

/// Everything the report shows about one pair set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetReport {
    /// Set name (e.g. `synth_cplfw`).
    pub name: String,
    /// Mean 10-fold accuracy.
    pub accuracy: f64,
    /// Its standard deviation over folds.
    pub accuracy_std: f64,
    /// VAL at FAR = 1e-3.
    pub val_at_far: f64,
    /// ROC of the pair scores.
    pub roc: Roc,
    /// Accuracy by pose bucket, when the set has yaws.
    pub by_pose: Option<PoseStratified>,
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Io(format!("{}: {e}", path.display()))
}

/// Writes the ROC curves (true accept rate against false accept rate, log scale) of `sets`
/// as an SVG file.
pub fn roc_svg(sets: &[SetReport], path: &Path) -> Result<(), EvalError> {
    let series: Vec<(String, Vec<(f64, f64)>)> = sets
        .iter()
        .map(|set| {
            let points = set.roc.fpr.iter().copied().zip(set.roc.tpr.iter().copied());
            (
                format!("{} (AUC {:.4})", set.name, set.roc.auc()),
                points.collect(),
            )
        })
        .collect();
    tar_far_svg("ROC", &series, 1e-4, path)
}

/// Writes TAR-against-FAR curves (log FAR axis from `min_far` to 1; smaller FARs are drawn
/// at `min_far`), one per labelled series of `(far, tar)` points, as an SVG file.
pub fn tar_far_svg(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    min_far: f64,
    path: &Path,
) -> Result<(), EvalError> {
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((min_far..1f64).log_scale(), 0f64..1.0f64)
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("false accept rate")
        .y_desc("true accept rate")
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for (i, (label, points)) in series.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = points.iter().map(|&(f, t)| (f.max(min_far), t)).collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// Writes grouped bars of accuracy per pose bucket (frontal–frontal, frontal–profile,
/// profile–profile, then the |Δyaw| bins) for each set that has poses, as an SVG file.
/// Each entry of `series` is a label (e.g. a model) and its stratified accuracies.
pub fn pose_accuracy_svg(
    series: &[(String, PoseStratified)],
    path: &Path,
) -> Result<(), EvalError> {
    let Some((_, first)) = series.first() else {
        return Err(EvalError::TooFew("no set with poses to plot".into()));
    };
    let buckets: Vec<String> = first
        .by_pose
        .iter()
        .chain(&first.by_yaw_difference)
        .map(|b| b.bucket.clone())
        .collect();
    let n = buckets.len();
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let labels = buckets.clone();
    let mut chart = ChartBuilder::on(&root)
        .caption("verification accuracy by pose", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..100f64)
        .map_err(|e| plot_error(path, e))?;
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
        .draw()
        .map_err(|e| plot_error(path, e))?;
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
            .map_err(|e| plot_error(path, e))?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// A Markdown summary of the sets: accuracy, VAL@FAR, AUC, and the pose tables.
pub fn markdown(title: &str, sets: &[SetReport], baseline: &[SetReport]) -> String {
    let mut md = format!("# {title}\n\n| set | accuracy | VAL@FAR=1e-3 | AUC |");
    if !baseline.is_empty() {
        md.push_str(" raw pixels |");
    }
    md.push_str("\n|---|---|---|---|");
    if !baseline.is_empty() {
        md.push_str("---|");
    }
    md.push('\n');
    for (i, s) in sets.iter().enumerate() {
        let _ = write!(
            md,
            "| {} | {:.2}% ± {:.2} | {:.2}% | {:.4} |",
            s.name,
            100.0 * s.accuracy,
            100.0 * s.accuracy_std,
            100.0 * s.val_at_far,
            s.roc.auc()
        );
        if let Some(b) = baseline.get(i) {
            let _ = write!(md, " {:.2}% |", 100.0 * b.accuracy);
        }
        md.push('\n');
    }
    for s in sets {
        let Some(p) = &s.by_pose else { continue };
        let _ = write!(
            md,
            "\n## {} by pose\n\n| bucket | pairs | genuine | accuracy |\n|---|---|---|---|\n",
            s.name
        );
        for b in p.by_pose.iter().chain(&p.by_yaw_difference) {
            let acc = b
                .accuracy
                .map_or("–".to_string(), |a| format!("{:.2}%", 100.0 * a));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {acc} |",
                b.bucket, b.pairs, b.positives
            );
        }
    }
    md.push_str("\nPlots: `roc.svg`, `pose_accuracy.svg`.\n");
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::BucketAccuracy;

    fn set(name: &str) -> SetReport {
        SetReport {
            name: name.into(),
            accuracy: 0.9,
            accuracy_std: 0.01,
            val_at_far: 0.5,
            roc: Roc {
                fpr: vec![0.0, 0.001, 0.1, 1.0],
                tpr: vec![0.0, 0.5, 0.9, 1.0],
                thresholds: vec![f32::INFINITY, 0.9, 0.5, 0.0],
            },
            by_pose: Some(PoseStratified {
                by_pose: vec![BucketAccuracy {
                    bucket: "frontal-frontal".into(),
                    pairs: 10,
                    positives: 5,
                    accuracy: Some(0.8),
                }],
                by_yaw_difference: vec![BucketAccuracy {
                    bucket: "Δyaw 0–15".into(),
                    pairs: 0,
                    positives: 0,
                    accuracy: None,
                }],
            }),
        }
    }

    #[test]
    fn writes_both_plots_and_the_markdown() {
        let dir = std::env::temp_dir().join(format!("poseface-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sets = [set("a"), set("b")];
        roc_svg(&sets, &dir.join("roc.svg")).unwrap();
        let series: Vec<(String, PoseStratified)> = sets
            .iter()
            .map(|s| (s.name.clone(), s.by_pose.clone().unwrap()))
            .collect();
        pose_accuracy_svg(&series, &dir.join("pose.svg")).unwrap();
        let roc = std::fs::read_to_string(dir.join("roc.svg")).unwrap();
        assert!(
            roc.starts_with("<svg") && roc.contains("a (AUC"),
            "{}",
            &roc[..200]
        );
        let pose = std::fs::read_to_string(dir.join("pose.svg")).unwrap();
        assert!(pose.contains("frontal-frontal"));
        let md = markdown("run", &sets, &[]);
        assert!(md.contains("| a | 90.00% ± 1.00 | 50.00% |"), "{md}");
        assert!(md.contains("| Δyaw 0–15 | 0 | 0 | – |"), "{md}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
