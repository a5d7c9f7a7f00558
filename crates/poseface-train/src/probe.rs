//! How much head pose an identity embedding still carries: ridge-regression probes from the
//! (single-view, L2-normalised) embedding to yaw, |yaw| and pitch, fitted on one half of a
//! face set and scored (held-out R²) on the other — the measure of PoseFace's
//! disentanglement (`poseface probe`, and the `probe` section of a run's report).
//!
//! Single views, not the flip-summed embedding of verification: the sum of a face's and its
//! mirror's embeddings is blind to the sign of yaw by construction, which would hide what the
//! network itself encodes.

use std::path::Path;

use poseface_data::augment::{AugmentConfig, normalise_chw};
use poseface_data::dataset::FaceDataset;
use poseface_eval::probe::ridge_probe;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::embed::{ALIGNED, Embedder};
use crate::verifier::VerificationSet;

/// Ridge penalty on standardised features.
pub const PROBE_ALPHA: f64 = 1.0;

/// Held-out R² of pose probes on one face set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoseProbe {
    /// The face set.
    pub set: String,
    /// Faces fitted on.
    pub fit: usize,
    /// Faces scored.
    pub scored: usize,
    /// R² of signed yaw.
    pub yaw_r2: f64,
    /// R² of |yaw| (what survives a flip-invariant embedding).
    pub abs_yaw_r2: f64,
    /// R² of pitch, when the set has pitch.
    pub pitch_r2: Option<f64>,
}

/// Faces with known pose, ready to probe.
pub struct ProbeFaces {
    /// Name for reports.
    pub name: String,
    /// `[n, 3, 112, 112]` normalised images, concatenated.
    pub images: Vec<f32>,
    /// Yaw per face (degrees).
    pub yaw: Vec<f64>,
    /// Pitch per face, when known.
    pub pitch: Option<Vec<f64>>,
    /// Faces `..fit` are fitted on, the rest scored.
    pub fit: usize,
}

impl ProbeFaces {
    /// The faces of at most `limit / 2` pairs of a verification set with a `.yaws.txt` (yaw
    /// only), taken evenly across the set. The first half of those pairs fits, the second
    /// half scores.
    pub fn from_verification_set(set: &VerificationSet, limit: usize) -> Result<Self, TrainError> {
        let yaws = set.yaws.as_ref().ok_or_else(|| {
            TrainError::Data(format!(
                "{}: no .yaws.txt beside the set, so there is no pose to probe for",
                set.name
            ))
        })?;
        let pairs = yaws.len();
        let take = (limit / 2).clamp(2, pairs.max(2)).min(pairs);
        // Pairs spread evenly over the set (its folds are contiguous).
        let chosen: Vec<usize> = (0..take).map(|k| k * pairs / take).collect();
        let per = 3 * ALIGNED * ALIGNED;
        let all = set.images();
        let mut images = Vec::with_capacity(2 * take * per);
        let mut yaw = Vec::with_capacity(2 * take);
        for &k in &chosen {
            images.extend_from_slice(&all[2 * k * per..(2 * k + 2) * per]);
            yaw.extend(yaws[k].iter().map(|&y| f64::from(y)));
        }
        Ok(Self {
            name: set.name.clone(),
            images,
            yaw,
            pitch: None,
            fit: 2 * (take / 2),
        })
    }

    /// The faces of a RecordIO or ImageFolder dataset with a pose sidecar (yaw and pitch), at
    /// most `limit` of them. Identities with an even label fit, odd ones score, so the two
    /// halves share no identity.
    pub fn from_dataset(path: &Path, limit: usize) -> Result<Self, TrainError> {
        let data = FaceDataset::open(path, AugmentConfig::none(), 0)?;
        let n = data.len().min(limit);
        let samples = data.samples(&(0..n).collect::<Vec<_>>())?;
        let (mut fit, mut score): (Vec<_>, Vec<_>) = samples
            .into_iter()
            .filter(|s| s.angles.is_some())
            .partition(|s| s.label % 2 == 0);
        let fit_len = fit.len();
        fit.append(&mut score);
        let per = 3 * ALIGNED * ALIGNED;
        let mut images = vec![0f32; fit.len() * per];
        for (s, out) in fit.iter().zip(images.chunks_exact_mut(per)) {
            if s.image.dimensions() != (ALIGNED as u32, ALIGNED as u32) {
                return Err(TrainError::Data(format!(
                    "{}: faces must be aligned 112×112",
                    path.display()
                )));
            }
            normalise_chw(&s.image, out);
        }
        let angles: Vec<_> = fit.iter().filter_map(|s| s.angles).collect();
        Ok(Self {
            name: path.display().to_string(),
            images,
            yaw: angles.iter().map(|a| f64::from(a.yaw)).collect(),
            pitch: Some(angles.iter().map(|a| f64::from(a.pitch)).collect()),
            fit: fit_len,
        })
    }

    /// Embeds the faces and fits the probes.
    pub fn probe(&self, embedder: &Embedder, batch: usize) -> Result<PoseProbe, TrainError> {
        let dim = embedder.dim();
        let mut e = embedder.embed_normalised(&self.images, false, batch);
        for row in e.chunks_exact_mut(dim) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        let r2 = |target: &[f64]| -> Result<f64, TrainError> {
            Ok(ridge_probe(&e, dim, target, self.fit, PROBE_ALPHA)?.r2)
        };
        let abs: Vec<f64> = self.yaw.iter().map(|y| y.abs()).collect();
        Ok(PoseProbe {
            set: self.name.clone(),
            fit: self.fit,
            scored: self.yaw.len() - self.fit,
            yaw_r2: r2(&self.yaw)?,
            abs_yaw_r2: r2(&abs)?,
            pitch_r2: self.pitch.as_deref().map(r2).transpose()?,
        })
    }
}

/// The probe as a Markdown section for `report.md`.
pub fn markdown(probe: &PoseProbe, orthogonality: Option<f64>) -> String {
    let mut s = String::from("\n## Pose left in the identity embedding\n\n");
    s.push_str(&format!(
        "Ridge probes (α = {PROBE_ALPHA}, standardised features) from the single-view identity \
         embedding, fitted on {} faces of `{}` and scored on {} others (held-out R²; 0 = no \
         pose information a linear map can read).\n\n| target | R² |\n|---|---:|\n",
        probe.fit, probe.set, probe.scored
    ));
    s.push_str(&format!(
        "| yaw | {:.3} |\n| \\|yaw\\| | {:.3} |\n",
        probe.yaw_r2, probe.abs_yaw_r2
    ));
    if let Some(p) = probe.pitch_r2 {
        s.push_str(&format!("| pitch | {p:.3} |\n"));
    }
    if let Some(o) = orthogonality {
        s.push_str(&format!(
            "\nOrthogonality residual ‖Ŵ_id Ŵ_pᵀ‖²_F = {o:.3e}.\n"
        ));
    }
    s
}
