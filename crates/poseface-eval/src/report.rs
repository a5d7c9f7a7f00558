//! Evaluation reports people look at: a Markdown summary, the ROC curves of the pair sets
//! (`roc.svg`), the accuracy by pose bucket (`pose_accuracy.svg`) and the score
//! distributions (`scores_<set>.svg`), each plot also as PNG.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::histogram::ScoreHistogram;
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
    /// Genuine and impostor score distributions.
    #[serde(default)]
    pub histogram: Option<ScoreHistogram>,
}

/// Writes the ROC curves (true accept rate against false accept rate, log scale) of `sets`
/// as SVG (and PNG beside it).
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
    crate::plot::tar_far("ROC", &series, 1e-4, path)
}

/// Writes TAR-against-FAR curves of labelled series as SVG (and PNG); see
/// [`crate::plot::tar_far`].
pub fn tar_far_svg(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    min_far: f64,
    path: &Path,
) -> Result<(), EvalError> {
    crate::plot::tar_far(title, series, min_far, path)
}

/// Writes grouped bars of accuracy per pose bucket for each labelled series as SVG (and
/// PNG); see [`crate::plot::pose_accuracy`].
pub fn pose_accuracy_svg(
    series: &[(String, PoseStratified)],
    path: &Path,
) -> Result<(), EvalError> {
    crate::plot::pose_accuracy(series, path)
}

/// Writes each set's genuine/impostor score histogram as `scores_<set>.svg` (and PNG) into
/// `dir`; returns the files' names.
pub fn score_histograms(sets: &[SetReport], dir: &Path) -> Result<Vec<String>, EvalError> {
    let mut names = Vec::new();
    for set in sets {
        let Some(h) = &set.histogram else { continue };
        let name = format!("scores_{}.svg", set.name);
        crate::plot::score_histogram(&format!("{}: pair scores", set.name), h, &dir.join(&name))?;
        names.push(name);
    }
    Ok(names)
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
    md.push_str(
        "\nPlots (SVG, and PNG beside each): `roc.svg`, `pose_accuracy.svg`, `scores_<set>.svg`.\n",
    );
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
            histogram: Some(
                ScoreHistogram::from_distances(
                    &[0.2, 0.4, 1.8, 2.2],
                    &[true, true, false, false],
                    20,
                )
                .unwrap(),
            ),
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
        assert_eq!(
            score_histograms(&sets, &dir).unwrap(),
            vec!["scores_a.svg", "scores_b.svg"]
        );
        // Each plot has its PNG twin, which decodes to the plot's size with text drawn
        // (more than the few colours of axes and bars).
        for (name, size) in [
            ("roc", (720, 480)),
            ("pose", (960, 480)),
            ("scores_a", (720, 420)),
        ] {
            let png = image::open(dir.join(format!("{name}.png")))
                .unwrap()
                .to_rgb8();
            assert_eq!(png.dimensions(), size, "{name}");
            let colours: std::collections::HashSet<[u8; 3]> = png.pixels().map(|p| p.0).collect();
            assert!(colours.len() > 20, "{name}: {} colours", colours.len());
        }
        let md = markdown("run", &sets, &[]);
        assert!(md.contains("| a | 90.00% ± 1.00 | 50.00% |"), "{md}");
        assert!(md.contains("| Δyaw 0–15 | 0 | 0 | – |"), "{md}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
