//! Verification during and after training: a `.bin` pair set decoded once, embedded with the
//! flip trick, scored by insightface's 10-fold protocol and split by pose when the set comes
//! with a `<stem>.yaws.txt` (one line per pair: the two faces' yaw in degrees).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use poseface_data::augment::normalise_chw;
use poseface_data::decode::decode_rgb;
use poseface_data::verification_bin::VerificationBin;
use poseface_eval::histogram::ScoreHistogram;
use poseface_eval::pose::{PROFILE_FROM, PoseStratified, pose_stratified};
use poseface_eval::report::SetReport;
use poseface_eval::roc::{Roc, roc_curve};
use poseface_eval::verification::{fuse_flip_f64, pair_distances, verify_distances};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::embed::{Embedder, resize};

/// A decoded pair set.
#[derive(Debug, Clone)]
pub struct VerificationSet {
    /// File stem, e.g. `synth_cplfw`.
    pub name: String,
    /// Images as `[3, 112, 112]` floats in `[-1, 1]`, concatenated.
    images: Vec<f32>,
    /// Whether pair `k` is genuine.
    pub issame: Vec<bool>,
    /// The two yaws of each pair, when known.
    pub yaws: Option<Vec<[f32; 2]>>,
}

/// One evaluation of a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Set name.
    pub name: String,
    /// Mean 10-fold accuracy.
    pub accuracy: f64,
    /// Standard deviation over folds.
    pub accuracy_std: f64,
    /// VAL at FAR = 1e-3.
    pub val_at_far: f64,
    /// Accuracy by pose bucket, when the set has yaws.
    pub by_pose: Option<PoseStratified>,
    /// Area under the ROC of the pair scores.
    pub auc: f64,
    /// The ROC itself (for plots; not written to logs).
    #[serde(skip)]
    pub roc: Option<Roc>,
    /// Genuine and impostor cosine distributions (for plots; not written to logs).
    #[serde(skip)]
    pub histogram: Option<ScoreHistogram>,
}

impl VerifyReport {
    /// The report-crate view of this evaluation.
    pub fn to_set_report(&self) -> Option<SetReport> {
        Some(SetReport {
            name: self.name.clone(),
            accuracy: self.accuracy,
            accuracy_std: self.accuracy_std,
            val_at_far: self.val_at_far,
            roc: self.roc.clone()?,
            by_pose: self.by_pose.clone(),
            histogram: self.histogram.clone(),
        })
    }
}

const SIDE: usize = 112;
/// Bins of the score histograms over cosine −1 … 1.
const HISTOGRAM_BINS: usize = 50;

impl VerificationSet {
    /// Reads and decodes a `.bin` file (112×112 images) and its optional `.yaws.txt`.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let bin = VerificationBin::read(path)?;
        let per = 3 * SIDE * SIDE;
        let mut images = vec![0f32; bin.images.len() * per];
        for (k, (bytes, out)) in bin
            .images
            .iter()
            .zip(images.chunks_exact_mut(per))
            .enumerate()
        {
            let source = format!("{} image {k}", path.display());
            let img = decode_rgb(bytes, &source)?;
            if img.dimensions() != (SIDE as u32, SIDE as u32) {
                return Err(TrainError::Data(format!(
                    "{source}: {}×{} pixels, verification images must be aligned 112×112",
                    img.width(),
                    img.height()
                )));
            }
            normalise_chw(&img, out);
        }
        let yaw_path = path.with_extension("yaws.txt");
        let yaws = if yaw_path.is_file() {
            Some(read_yaws(&yaw_path, bin.issame.len())?)
        } else {
            None
        };
        Ok(Self {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            images,
            issame: bin.issame,
            yaws,
        })
    }

    /// The images as `[3, 112, 112]` floats in `[-1, 1]`, concatenated (pair `k` is images
    /// `2k` and `2k + 1`).
    pub fn images(&self) -> &[f32] {
        &self.images
    }

    /// Number of images (two per pair).
    pub fn len(&self) -> usize {
        self.issame.len() * 2
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.issame.is_empty()
    }

    /// Embeds every image and its mirror and scores the pairs.
    pub fn evaluate(&self, embedder: &Embedder, batch: usize) -> Result<VerifyReport, TrainError> {
        self.evaluate_with_progress(embedder, batch, &|_, _| {})
    }

    /// [`VerificationSet::evaluate`], calling `progress(images embedded, images)` after each
    /// batch.
    pub fn evaluate_with_progress(
        &self,
        embedder: &Embedder,
        batch: usize,
        progress: &dyn Fn(usize, usize),
    ) -> Result<VerifyReport, TrainError> {
        let (plain, mirror) = embedder.try_embed_with_mirror(&self.images, batch, progress)?;
        self.score(
            &fuse_flip_f64(&plain, &mirror, embedder.dim())?,
            embedder.dim(),
        )
    }

    /// The raw-pixel baseline: each face's pixels (average-pooled to `input_size`) as its
    /// embedding, scored like a model's.
    pub fn pixel_baseline(
        &self,
        input_size: usize,
        device: &Device,
    ) -> Result<VerifyReport, TrainError> {
        let per = 3 * SIDE * SIDE;
        let n = self.images.len() / per;
        let x = Tensor::<4>::from_data(
            TensorData::new(self.images.clone(), [n, 3, SIDE, SIDE]),
            device,
        );
        let x: Tensor<2> = resize(x, input_size).flatten(1, 3);
        let dim = x.dims()[1];
        let values = x
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let zeros = vec![0f32; values.len()];
        self.score(&fuse_flip_f64(&values, &zeros, dim)?, dim)
    }

    fn score(&self, embeddings: &[f64], dim: usize) -> Result<VerifyReport, TrainError> {
        let dist = pair_distances(embeddings, dim)?;
        let result = verify_distances(&dist, &self.issame, 10, 1e-3)?;
        let by_pose = match &self.yaws {
            Some(yaws) => Some(pose_stratified(
                &dist,
                &self.issame,
                yaws,
                &result,
                PROFILE_FROM,
            )?),
            None => None,
        };
        let scores: Vec<f32> = dist.iter().map(|&d| -d as f32).collect();
        let roc = roc_curve(&self.issame, &scores)?;
        Ok(VerifyReport {
            name: self.name.clone(),
            accuracy: result.accuracy_mean,
            accuracy_std: result.accuracy_std,
            val_at_far: result.val,
            by_pose,
            auc: roc.auc(),
            roc: Some(roc),
            histogram: Some(ScoreHistogram::from_distances(
                &dist,
                &self.issame,
                HISTOGRAM_BINS,
            )?),
        })
    }
}

/// Writes `report.md`, `report.json` (`{"sets", "raw_pixels"}`), `roc.svg`,
/// `pose_accuracy.svg` and `scores_<set>.svg` (each plot with its PNG) into `dir`: the
/// model's reports beside the raw-pixel baseline's.
pub fn write_report(
    dir: &Path,
    title: &str,
    model: &[VerifyReport],
    baseline: &[VerifyReport],
) -> Result<(), TrainError> {
    let sets: Vec<SetReport> = model
        .iter()
        .filter_map(VerifyReport::to_set_report)
        .collect();
    let base: Vec<SetReport> = baseline
        .iter()
        .filter_map(VerifyReport::to_set_report)
        .collect();
    if sets.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| TrainError::Data(format!("{}: {e}", dir.display())))?;
    poseface_data::fsutil::write_atomic(
        &dir.join("report.md"),
        poseface_eval::report::markdown(title, &sets, &base).as_bytes(),
    )?;
    let json = serde_json::json!({"sets": model, "raw_pixels": baseline});
    poseface_data::fsutil::write_atomic(
        &dir.join("report.json"),
        serde_json::to_string_pretty(&json)
            .map_err(|e| TrainError::Data(format!("{}: {e}", dir.display())))?
            .as_bytes(),
    )?;
    poseface_eval::report::roc_svg(&sets, &dir.join("roc.svg"))?;
    if let Some(i) = sets.iter().position(|s| s.by_pose.is_some()) {
        let mut series = vec![(
            format!("{} (model)", sets[i].name),
            sets[i].by_pose.clone().expect("has poses"),
        )];
        if let Some(p) = base.get(i).and_then(|b| b.by_pose.clone()) {
            series.push(("raw pixels".to_string(), p));
        }
        poseface_eval::report::pose_accuracy_svg(&series, &dir.join("pose_accuracy.svg"))?;
    }
    poseface_eval::report::score_histograms(&sets, dir)?;
    Ok(())
}

fn read_yaws(path: &Path, pairs: usize) -> Result<Vec<[f32; 2]>, TrainError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
    let mut out = Vec::with_capacity(pairs);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Vec<f32> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| TrainError::Data(format!("{}:{}: {e}", path.display(), i + 1)))?;
        let [a, b] = v[..] else {
            return Err(TrainError::Data(format!(
                "{}:{}: expected two yaws, got {}",
                path.display(),
                i + 1,
                v.len()
            )));
        };
        out.push([a, b]);
    }
    if out.len() != pairs {
        return Err(TrainError::Data(format!(
            "{}: {} lines for {pairs} pairs",
            path.display(),
            out.len()
        )));
    }
    Ok(out)
}
