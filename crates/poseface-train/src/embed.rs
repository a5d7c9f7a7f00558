//! Embedding aligned faces with a trained or imported backbone: the test-time path of
//! `poseface embed` and of verification during training.
//!
//! Faces are aligned 112×112 RGB, normalised as `(pixel − 127.5) / 127.5`, average-pooled to
//! the backbone's input size, and embedded in batches on a non-autodiff device (batch norms
//! use their running statistics). With `flip`, each row is the sum of the face's and its
//! mirror's embeddings, as insightface's evaluation computes them (not normalised: the
//! verification protocol normalises).

use std::path::Path;

use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use poseface_data::augment::normalise_chw;
use poseface_model::backbone::{Backbone, BackboneConfig};

use crate::TrainError;
use crate::config::ExperimentConfig;
use crate::method::MethodConfig;
use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use poseface_model::{Dream, DreamConfig, PoseAwareHeads, PoseAwareHeadsConfig};

/// Side of the aligned faces the embedder takes.
pub const ALIGNED: usize = 112;

/// A backbone ready to embed faces.
#[derive(Debug)]
pub struct Embedder {
    model: Backbone,
    input_size: usize,
    embedding_size: usize,
    /// DREAM's residual block, applied to the backbone embedding.
    dream: Option<Dream>,
    /// PAMs-style pose-aware heads, fused after the backbone.
    pose_aware: Option<PoseAwareHeads>,
    device: Device,
}

impl Embedder {
    /// The final weights of a run directory (`config.toml` + `model.safetensors`).
    pub fn from_run(run_dir: &Path, device: &Device) -> Result<Self, TrainError> {
        let config = ExperimentConfig::load(&run_dir.join("config.toml"), &[])?;
        let backbone = BackboneConfig {
            name: config.model.backbone.clone(),
            width: config.model.width,
            input_size: config.data.input_size,
            // A PoseFace run exports its identity branch folded into the backbone.
            embedding_size: config.identity_size(),
            dropout: 0.0,
        };
        // What the run exported, which differs from its config when the data switched the
        // method off (`export.json`; runs without it export what their config says).
        let export = Exported::read(run_dir)?.unwrap_or(Exported {
            embedding_size: backbone.embedding_size,
            dream: matches!(config.method, MethodConfig::Dream(_)),
            pose_aware_heads: match &config.method {
                MethodConfig::Pams(p) => p.splits.len() + 1,
                _ => 0,
            },
        });
        let backbone = BackboneConfig {
            embedding_size: export.embedding_size,
            ..backbone
        };
        let embedder = Self::from_weights(&run_dir.join("model.safetensors"), &backbone, device)?;
        if export.dream {
            let dream = load_dream(
                &run_dir.join(DREAM_FILE),
                backbone.embedding_size,
                &embedder.device,
            )?;
            return Ok(embedder.with_dream(dream));
        }
        if export.pose_aware_heads > 0 {
            let heads = load_pose_aware(
                &run_dir.join(POSE_AWARE_FILE),
                backbone.embedding_size,
                export.pose_aware_heads,
                &embedder.device,
            )?;
            return Ok(embedder.with_pose_aware(heads));
        }
        Ok(embedder)
    }

    /// Weights in insightface's names (`backbone.pth` or safetensors) for a described network.
    pub fn from_weights(
        weights: &Path,
        backbone: &BackboneConfig,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let device = device.clone().inner();
        let model = backbone.init(&device).map_err(|e| TrainError::Config {
            path: weights.to_path_buf(),
            message: e.to_string(),
        })?;
        let model = poseface_model::load_insightface(model, weights, &backbone.describe())?;
        Ok(Self::new(
            model,
            backbone.input_size,
            backbone.embedding_size,
            &device,
        ))
    }

    /// Wraps a model already in memory (moved to the non-autodiff side of `device`).
    pub fn new(model: Backbone, input_size: usize, embedding_size: usize, device: &Device) -> Self {
        Self {
            model,
            input_size,
            embedding_size,
            dream: None,
            pose_aware: None,
            device: device.clone().inner(),
        }
    }

    /// Applies DREAM's block after the backbone (moved to the embedder's device).
    pub fn with_dream(mut self, dream: Dream) -> Self {
        self.dream = Some(dream.to_device(&self.device));
        self
    }

    /// Applies PAMs-style pose-aware heads after the backbone and fuses their outputs
    /// (moved to the embedder's device).
    pub fn with_pose_aware(mut self, heads: PoseAwareHeads) -> Self {
        self.pose_aware = Some(heads.to_device(&self.device));
        self
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.pose_aware
            .as_ref()
            .map_or(self.embedding_size, |h| h.fused_size(self.embedding_size))
    }

    /// Side of the square input the backbone takes (faces are pooled to it).
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Embeds aligned 112×112 faces; returns `[faces, dim]` row-major.
    pub fn embed_images(
        &self,
        faces: &[RgbImage],
        flip: bool,
        batch: usize,
    ) -> Result<Vec<f32>, TrainError> {
        self.embed_images_with_progress(faces, flip, batch, &|_, _| {})
    }

    /// [`Embedder::embed_images`], calling `progress(faces done, faces)` after each batch.
    pub fn embed_images_with_progress(
        &self,
        faces: &[RgbImage],
        flip: bool,
        batch: usize,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Vec<f32>, TrainError> {
        self.try_embed_normalised_with_progress(&normalised_faces(faces)?, flip, batch, progress)
    }

    /// The embeddings of aligned 112×112 faces and, apart, of their mirror images; see
    /// [`Embedder::try_embed_with_mirror`].
    pub fn embed_images_with_mirror(
        &self,
        faces: &[RgbImage],
        batch: usize,
        progress: &dyn Fn(usize, usize),
    ) -> Result<(Vec<f32>, Vec<f32>), TrainError> {
        self.try_embed_with_mirror(&normalised_faces(faces)?, batch, progress)
    }

    /// Backbone, then DREAM's block or the fused pose-aware heads when present.
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let e = self.model.forward(x);
        match (&self.dream, &self.pose_aware) {
            (Some(d), _) => d.forward(e),
            (None, Some(h)) => h.forward_fused(e),
            (None, None) => e,
        }
    }

    /// Embeds faces already normalised to `[3, 112, 112]` floats, concatenated.
    ///
    /// # Panics
    /// When the device fails; [`Embedder::try_embed_normalised`] returns the error instead.
    pub fn embed_normalised(&self, chw: &[f32], flip: bool, batch: usize) -> Vec<f32> {
        self.try_embed_normalised(chw, flip, batch)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Embedder::embed_normalised`], with a device failure as an error.
    pub fn try_embed_normalised(
        &self,
        chw: &[f32],
        flip: bool,
        batch: usize,
    ) -> Result<Vec<f32>, TrainError> {
        self.try_embed_normalised_with_progress(chw, flip, batch, &|_, _| {})
    }

    /// [`Embedder::try_embed_normalised`], calling `progress(faces done, faces)` after each
    /// batch.
    pub fn try_embed_normalised_with_progress(
        &self,
        chw: &[f32],
        flip: bool,
        batch: usize,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Vec<f32>, TrainError> {
        let mut out = Vec::with_capacity(chw.len() / (3 * ALIGNED * ALIGNED) * self.dim());
        self.embed_batches(chw, batch, progress, |x| {
            let mut e = self.forward(x.clone()); // [n, E]
            if flip {
                e = e + self.forward(x.flip([3]));
            }
            out.extend(to_vec(e)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The embeddings of the faces and, apart, of their mirror images (`[faces, dim]` each),
    /// for callers that add them in double precision as insightface's evaluation does.
    pub fn try_embed_with_mirror(
        &self,
        chw: &[f32],
        batch: usize,
        progress: &dyn Fn(usize, usize),
    ) -> Result<(Vec<f32>, Vec<f32>), TrainError> {
        let rows = chw.len() / (3 * ALIGNED * ALIGNED) * self.dim();
        let (mut plain, mut mirror) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        self.embed_batches(chw, batch, progress, |x| {
            plain.extend(to_vec(self.forward(x.clone()))?);
            mirror.extend(to_vec(self.forward(x.flip([3])))?);
            Ok(())
        })?;
        Ok((plain, mirror))
    }

    /// Cuts normalised faces into batches on the device, resized to the input size, and
    /// hands each to `each`; `progress(faces done, faces)` after each batch.
    fn embed_batches(
        &self,
        chw: &[f32],
        batch: usize,
        progress: &dyn Fn(usize, usize),
        mut each: impl FnMut(Tensor<4>) -> Result<(), TrainError>,
    ) -> Result<(), TrainError> {
        let per = 3 * ALIGNED * ALIGNED;
        let faces = chw.len() / per;
        let mut done = 0;
        for chunk in chw.chunks(per * batch.max(1)) {
            let n = chunk.len() / per;
            let x = Tensor::<4>::from_data(
                TensorData::new(chunk.to_vec(), [n, 3, ALIGNED, ALIGNED]),
                &self.device,
            );
            each(resize(x, self.input_size))?;
            done += n;
            progress(done, faces);
        }
        Ok(())
    }
}

/// What a finished run exported, written as `export.json` beside `model.safetensors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exported {
    /// Embedding size of `model.safetensors`.
    pub embedding_size: usize,
    /// Whether `dream.safetensors` follows the backbone.
    pub dream: bool,
    /// Number of PAMs-style heads in `pose_aware.safetensors` after the backbone (0: none).
    #[serde(default)]
    pub pose_aware_heads: usize,
}

impl Exported {
    /// File name in the run directory.
    pub const FILE: &'static str = "export.json";

    /// Reads `export.json` of a run, if present.
    pub fn read(run_dir: &Path) -> Result<Option<Self>, TrainError> {
        let path = run_dir.join(Self::FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path)
            .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
    }
}

/// File of a DREAM run's block, beside `model.safetensors`.
pub const DREAM_FILE: &str = "dream.safetensors";

/// File of a PAMs-style run's heads, beside `model.safetensors`.
pub const POSE_AWARE_FILE: &str = "pose_aware.safetensors";

/// Writes a block that follows the backbone (burn's tensor names).
fn save_block<M: Module>(block: &M, path: &Path) -> Result<(), TrainError> {
    let mut store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .with_to_adapter(poseface_model::cast_to_f32());
    block
        .save_into(&mut store)
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
}

/// Reads a block into `block`, built with the expected shapes; `what` names it in errors.
fn load_block<M: Module>(mut block: M, path: &Path, what: &str) -> Result<M, TrainError> {
    let bad = |m: String| TrainError::Data(format!("{}: {m}", path.display()));
    let mut store =
        SafetensorsStore::from_file(path).with_from_adapter(poseface_model::cast_to_module(&block));
    let result = block
        .load_from(&mut store)
        .map_err(|e| bad(e.to_string()))?;
    if !result.is_success() || !result.missing.is_empty() {
        return Err(bad(format!(
            "not {what}: missing {:?}, errors {:?}",
            result.missing, result.errors
        )));
    }
    Ok(block)
}

/// Writes DREAM's block (burn's tensor names).
pub fn save_dream(dream: &Dream, path: &Path) -> Result<(), TrainError> {
    save_block(dream, path)
}

/// Reads DREAM's block for embeddings of `embedding_size`.
pub fn load_dream(
    path: &Path,
    embedding_size: usize,
    device: &Device,
) -> Result<Dream, TrainError> {
    let what = format!("a DREAM block for {embedding_size}-d embeddings");
    load_block(DreamConfig::new(embedding_size).init(device), path, &what)
}

/// Writes PAMs-style pose-aware heads (burn's tensor names).
pub fn save_pose_aware(heads: &PoseAwareHeads, path: &Path) -> Result<(), TrainError> {
    save_block(heads, path)
}

/// Reads `heads` pose-aware heads for embeddings of `embedding_size`.
pub fn load_pose_aware(
    path: &Path,
    embedding_size: usize,
    heads: usize,
    device: &Device,
) -> Result<PoseAwareHeads, TrainError> {
    let what = format!("{heads} pose-aware heads for {embedding_size}-d embeddings");
    let block = PoseAwareHeadsConfig::new(embedding_size, heads).init(device);
    load_block(block, path, &what)
}

fn to_vec(t: Tensor<2>) -> Result<Vec<f32>, TrainError> {
    let data = t
        .try_into_data()
        .map_err(|e| TrainError::Data(format!("reading embeddings from the device: {e:?}")))?;
    Ok(data
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float32 after convert"))
}

/// Average-pools `[B, 3, 112, 112]` to `[B, 3, side, side]` (`side` divides 112).
pub fn resize(x: Tensor<4>, side: usize) -> Tensor<4> {
    let [_, _, h, _] = x.dims();
    if side == h {
        return x;
    }
    let k = h / side;
    burn::tensor::module::avg_pool2d(x, AvgPoolOptions::new([k, k]))
}

/// Aligned 112×112 faces as `[faces, 3, 112, 112]` floats normalised as in training; an error
/// names the first face of another size.
fn normalised_faces(faces: &[RgbImage]) -> Result<Vec<f32>, TrainError> {
    let per = 3 * ALIGNED * ALIGNED;
    let mut chw = vec![0f32; faces.len() * per];
    for (k, (face, out)) in faces.iter().zip(chw.chunks_exact_mut(per)).enumerate() {
        if face.dimensions() != (ALIGNED as u32, ALIGNED as u32) {
            return Err(TrainError::Data(format!(
                "face {k} is {}×{}; embedding needs aligned 112×112 faces",
                face.width(),
                face.height()
            )));
        }
        normalise_chw(face, out);
    }
    Ok(chw)
}
