//! IJB-B/C 1:1 verification of a model: the loose crops aligned with their five points,
//! embedded with their mirror images, aggregated into templates (insightface's protocol, see
//! [`poseface_eval::ijb`]) and scored pair by pair into TAR at each FAR.

use std::path::Path;

use poseface_data::{IjbMeta, IjbTarget, align_face, decode_rgb};
use poseface_eval::ijb::{Templates, aggregate};
use poseface_eval::roc::{IJB_FARS, roc_curve};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Embedder, TrainError};

/// Images decoded, aligned and embedded per chunk (bounds memory on IJB-C's 227k images).
const CHUNK: usize = 1024;

/// Which template pairs are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IjbPairs {
    /// The pairs of `ijbX_template_pair_label.txt` (insightface's protocol).
    #[default]
    Listed,
    /// Every pair of distinct templates. Templates joined by the list's genuine pairs are one
    /// subject (transitively); every other pair is an impostor. Exact when the list links all
    /// templates of each subject, as the synthetic IJB-style set's list does; it gives far
    /// more impostor pairs, so that TAR at small FARs is resolved on a small set.
    All,
}

/// TAR at one FAR.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TarAtFar {
    /// False accept rate.
    pub far: f64,
    /// True accept rate at the threshold that first reaches it.
    pub tar: f64,
}

/// The result of [`evaluate_ijb`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IjbReport {
    /// `IJBB` or `IJBC`.
    pub target: String,
    /// Which pairs were scored.
    pub pairs_mode: IjbPairs,
    /// Images embedded.
    pub images: usize,
    /// Templates aggregated.
    pub templates: usize,
    /// Genuine pairs scored.
    pub genuine: usize,
    /// Impostor pairs scored.
    pub impostors: usize,
    /// TAR at FAR = 1e-6 … 1e-1.
    pub tar_at_far: Vec<TarAtFar>,
    /// Area under the ROC.
    pub auc: f64,
    /// The ROC sampled at [`CURVE_POINTS`] FARs spaced evenly on a log axis from 1e-5 to 1
    /// (for plots).
    #[serde(default)]
    pub curve: Vec<TarAtFar>,
}

/// Points of [`IjbReport::curve`].
pub const CURVE_POINTS: usize = 41;

/// The FARs of [`IjbReport::curve`]: `10^(-5 + 5k/(CURVE_POINTS-1))`.
pub fn curve_fars() -> Vec<f64> {
    (0..CURVE_POINTS)
        .map(|k| 10f64.powf(-5.0 + 5.0 * k as f64 / (CURVE_POINTS - 1) as f64))
        .collect()
}

impl IjbReport {
    /// TAR at `far` when it was computed.
    pub fn tar(&self, far: f64) -> Option<f64> {
        self.tar_at_far
            .iter()
            .find(|t| (t.far - far).abs() <= far * 1e-9)
            .map(|t| t.tar)
    }
}

/// Embeds every image of an IJB root (`meta/` + `loose_crop/`) with `embedder` and scores its
/// template pairs. `progress(done, total)` is called after each chunk of images.
pub fn evaluate_ijb(
    embedder: &Embedder,
    root: &Path,
    target: IjbTarget,
    pairs: IjbPairs,
    batch: usize,
    progress: &dyn Fn(usize, usize),
) -> Result<IjbReport, TrainError> {
    let meta = IjbMeta::open(root, target)?;
    let names = &meta.faces.names;
    let n = names.len();
    if n == 0 {
        return Err(TrainError::Data(format!("{}: no images", root.display())));
    }
    let dim = embedder.dim();
    let crops = root.join("loose_crop");
    let mut features = Vec::with_capacity(n * dim);
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let faces = (start..end)
            .into_par_iter()
            .map(|i| {
                // The meta reader checked that both files list the same names in order.
                let path = crops.join(&names[i]);
                let bytes = std::fs::read(&path)
                    .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
                let image = decode_rgb(&bytes, &path.display().to_string())?;
                let (face, _) = align_face(&image, &meta.landmarks.points[i])?;
                Ok(face)
            })
            .collect::<Result<Vec<_>, TrainError>>()?;
        features.extend(embedder.embed_images(&faces, true, batch)?);
        progress(end, n);
    }
    let templates = aggregate(
        &features,
        dim,
        &meta.landmarks.scores,
        &meta.faces.templates,
        &meta.faces.medias,
    )?;
    let (roc, labels) = match pairs {
        IjbPairs::Listed => {
            let labels: Vec<bool> = meta.pairs.labels.iter().map(|&l| l == 1).collect();
            let roc = templates.roc(&meta.pairs.t1, &meta.pairs.t2, &labels)?;
            (roc, labels)
        }
        IjbPairs::All => {
            let (scores, labels) = all_pairs(&templates, &meta)?;
            (roc_curve(&labels, &scores)?, labels)
        }
    };
    let genuine = labels.iter().filter(|&&l| l).count();
    Ok(IjbReport {
        target: target.prefix().to_uppercase(),
        pairs_mode: pairs,
        images: n,
        templates: templates.ids.len(),
        genuine,
        impostors: labels.len() - genuine,
        tar_at_far: IJB_FARS
            .iter()
            .zip(roc.tar_at_far(&IJB_FARS))
            .map(|(&far, tar)| TarAtFar { far, tar })
            .collect(),
        auc: roc.auc(),
        curve: curve_fars()
            .iter()
            .zip(roc.tar_at_far(&curve_fars()))
            .map(|(&far, tar)| TarAtFar { far, tar })
            .collect(),
    })
}

/// Scores every pair of distinct templates; subjects from the listed genuine pairs.
fn all_pairs(templates: &Templates, meta: &IjbMeta) -> Result<(Vec<f32>, Vec<bool>), TrainError> {
    let p = &meta.pairs;
    let subject = subjects(&templates.ids, &p.t1, &p.t2, &p.labels)?;
    let (t, dim) = (templates.ids.len(), templates.dim);
    let feature = |i: usize| &templates.features[i * dim..(i + 1) * dim];
    let rows: Vec<(Vec<f32>, Vec<bool>)> = (0..t)
        .into_par_iter()
        .map(|i| {
            let scores = (i + 1..t)
                .map(|j| poseface_eval::ijb::dot(feature(i), feature(j)))
                .collect();
            let labels = (i + 1..t).map(|j| subject[i] == subject[j]).collect();
            (scores, labels)
        })
        .collect();
    let mut scores = Vec::with_capacity(t * t.saturating_sub(1) / 2);
    let mut labels = Vec::with_capacity(scores.capacity());
    for (s, l) in rows {
        scores.extend(s);
        labels.extend(l);
    }
    Ok((scores, labels))
}

/// A subject number per template (`ids` increasing): templates joined, directly or through
/// others, by a pair labelled 1 share one.
fn subjects(ids: &[u64], t1: &[u64], t2: &[u64], labels: &[u8]) -> Result<Vec<usize>, TrainError> {
    let index = |id: u64| {
        ids.binary_search(&id).map_err(|_| {
            TrainError::Data(format!(
                "the pair list names template {id}, which has no image"
            ))
        })
    };
    // Union-find with path halving.
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..ids.len()).collect();
    for ((&a, &b), &label) in t1.iter().zip(t2).zip(labels) {
        if label == 1 {
            let (ra, rb) = (root(&mut parent, index(a)?), root(&mut parent, index(b)?));
            parent[ra] = rb;
        }
    }
    Ok((0..ids.len()).map(|i| root(&mut parent, i)).collect())
}

/// Markdown lines for a report: TAR at 1e-6 … 1e-1 and the AUC, and how small a FAR the
/// impostor pairs resolve.
pub fn markdown(report: &IjbReport) -> String {
    let mut text = format!(
        "\n## {} 1:1 ({} images, {} templates, {} genuine and {} impostor pairs, {} pairs)\n\n\
         | FAR | 1e-6 | 1e-5 | 1e-4 | 1e-3 | 1e-2 | 1e-1 | AUC |\n\
         |---|---|---|---|---|---|---|---|\n| TAR |",
        report.target,
        report.images,
        report.templates,
        report.genuine,
        report.impostors,
        match report.pairs_mode {
            IjbPairs::Listed => "listed",
            IjbPairs::All => "all template",
        }
    );
    for far in IJB_FARS {
        let cell = report
            .tar(far)
            .map_or("–".into(), |t| format!("{:.2}%", 100.0 * t));
        text.push_str(&format!(" {cell} |"));
    }
    text.push_str(&format!(" {:.4} |\n", report.auc));
    if report.impostors > 0 {
        text.push_str(&format!(
            "\nOne impostor pair is a FAR of {:.1e}: a TAR at a smaller FAR is read at the \
             curve's first step and means little.\n",
            1.0 / report.impostors as f64
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genuine_pairs_join_templates_into_subjects() {
        // 10–20–30 chained by two genuine pairs, 40 alone, 50–60 joined; impostor pairs
        // join nothing.
        let ids = [10, 20, 30, 40, 50, 60];
        let s = subjects(
            &ids,
            &[10, 30, 40, 60, 10],
            &[20, 20, 50, 50, 60],
            &[1, 1, 0, 1, 0],
        )
        .unwrap();
        assert!(s[0] == s[1] && s[1] == s[2]);
        assert!(s[4] == s[5]);
        let distinct: std::collections::BTreeSet<_> = s.iter().collect();
        assert_eq!(distinct.len(), 3);
        let e = subjects(&ids, &[10], &[70], &[1]).unwrap_err();
        assert!(e.to_string().contains("template 70"), "{e}");
    }

    #[test]
    fn a_report_finds_its_far() {
        let r = IjbReport {
            target: "IJBC".into(),
            pairs_mode: IjbPairs::All,
            images: 4,
            templates: 2,
            genuine: 1,
            impostors: 0,
            tar_at_far: vec![
                TarAtFar {
                    far: 1e-4,
                    tar: 0.5,
                },
                TarAtFar {
                    far: 1e-3,
                    tar: 0.75,
                },
            ],
            auc: 0.9,
            curve: Vec::new(),
        };
        assert_eq!(r.tar(1e-3), Some(0.75));
        assert_eq!(r.tar(1e-2), None);
        assert!(markdown(&r).contains("| TAR | – | – | 50.00% | 75.00% | – | – | 0.9000 |"));
    }
}
