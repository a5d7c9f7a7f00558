//! The training loop: batches from a face dataset, backbone → embeddings → Partial FC
//! centres → margin head → cross-entropy, SGD on the backbone (burn's optimiser) and on the
//! sampled centres (Partial FC's sparse step), periodic verification, checkpoints.
//!
//! The loop owns no terminal output: it reports to a [`TrainObserver`], which the command
//! line turns into a progress bar and log lines.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig, decay::WeightDecayConfig};
use burn::tensor::Device;
use poseface_data::batch::FaceBatcher;
use poseface_data::dataset::{FaceDataset, FaceStorage, epoch_permutation};
use poseface_loss::cross_entropy::normalized_cosine;
use poseface_loss::{HeadInput, MarginHead, PartialFc, PartialFcConfig, SgdStep};
use poseface_model::backbone::{Backbone, BackboneConfig};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::checkpoint::{Checkpoint, CheckpointState};
use crate::config::ExperimentConfig;
use crate::verifier::{VerificationSet, VerifyReport, resize};

/// What the loop tells its observer after each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Steps done (1-based).
    pub step: usize,
    /// Total steps.
    pub steps: usize,
    /// Loss of this step.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Training images per second over the run so far.
    pub images_per_second: f64,
}

/// Where a run stands, for observers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run directory.
    pub run_dir: PathBuf,
    /// Training images.
    pub images: usize,
    /// Classes.
    pub classes: usize,
    /// Backbone description.
    pub backbone: String,
    /// Step the run starts from (non-zero after a resume).
    pub start_step: usize,
}

/// Receives progress from [`Trainer::run`].
pub trait TrainObserver {
    /// The run is set up.
    fn started(&mut self, _info: &RunInfo) {}
    /// One optimisation step finished.
    fn step(&mut self, _log: &StepLog) {}
    /// A verification set was evaluated after `step` steps.
    fn evaluated(&mut self, _step: usize, _report: &VerifyReport) {}
    /// A checkpoint was written.
    fn checkpointed(&mut self, _step: usize, _dir: &Path) {}
}

/// An observer that ignores everything.
impl TrainObserver for () {}

/// The outcome of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Run directory.
    pub run_dir: PathBuf,
    /// Steps trained.
    pub steps: usize,
    /// Mean loss over the last 10% of steps of this session.
    pub final_loss: f64,
    /// Training throughput.
    pub images_per_second: f64,
    /// Wall-clock seconds of this session.
    pub seconds: f64,
    /// Final verification of each set.
    pub verification: Vec<VerifyReport>,
    /// Raw-pixel baseline on each set.
    pub pixel_baseline: Vec<VerifyReport>,
}

/// A configured training run.
pub struct Trainer {
    config: ExperimentConfig,
    device: Device,
    dataset: FaceDataset,
    classes: usize,
    backbone: BackboneConfig,
    model: Option<Backbone>,
    head: MarginHead,
    centres: PartialFc,
    start_step: usize,
    val: Vec<VerificationSet>,
}

impl Trainer {
    /// Opens the data, builds the model, and resumes from the run's latest checkpoint when
    /// `resume` is set and one exists. `device` must be an autodiff device.
    pub fn new(
        config: ExperimentConfig,
        device: &Device,
        resume: bool,
    ) -> Result<Self, TrainError> {
        let device = if device.is_autodiff() {
            device.clone()
        } else {
            device.clone().autodiff()
        };
        let dataset = FaceDataset::open(&config.data.train, config.data.augment, config.seed)?;
        if dataset.is_empty() {
            return Err(TrainError::Data(format!(
                "{}: no images",
                config.data.train.display()
            )));
        }
        let classes = class_count(dataset.storage())?;
        let backbone = BackboneConfig {
            name: config.model.backbone.clone(),
            width: config.model.width,
            input_size: config.data.input_size,
            embedding_size: config.model.embedding_size,
            dropout: config.model.dropout,
        };
        let mut model = backbone.init(&device).map_err(|e| TrainError::Config {
            path: PathBuf::from("model.backbone"),
            message: e.to_string(),
        })?;
        let head = MarginHead::new(config.head.clone())?;
        if head.config().needs_pose() && !dataset.has_pose() {
            return Err(TrainError::Data(format!(
                "the {} head needs poses but {} has no pose sidecar",
                head.config().name(),
                config.data.train.display()
            )));
        }
        let mut head = head;
        let mut centres = PartialFc::new(&PartialFcConfig {
            classes,
            dim: config.model.embedding_size,
            sample_rate: config.partial_fc.sample_rate,
            seed: config.seed,
        })?;
        let mut start_step = 0;
        let run_dir = config.run_dir();
        if resume && let Some(ckpt) = Checkpoint::latest(&run_dir)? {
            let (loaded, state) = ckpt.load(model, &mut centres)?;
            model = loaded;
            head.set_state(state.head);
            start_step = state.step;
        }
        let val = config
            .data
            .val
            .iter()
            .map(|p| VerificationSet::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            config,
            device,
            dataset,
            classes,
            backbone,
            model: Some(model),
            head,
            centres,
            start_step,
            val,
        })
    }

    /// The step training starts from.
    pub fn start_step(&self) -> usize {
        self.start_step
    }

    /// Trains to `optim.steps`, evaluating and checkpointing on the way.
    pub fn run(&mut self, observer: &mut dyn TrainObserver) -> Result<TrainSummary, TrainError> {
        let run_dir = self.config.run_dir();
        std::fs::create_dir_all(&run_dir).map_err(|e| io(&run_dir, e))?;
        poseface_data::fsutil::write_atomic(
            &run_dir.join("config.toml"),
            self.config.to_toml().as_bytes(),
        )?;
        let mut metrics = crate::metrics::MetricsLog::open(&run_dir.join("metrics.jsonl"))?;
        observer.started(&RunInfo {
            run_dir: run_dir.clone(),
            images: self.dataset.len(),
            classes: self.classes,
            backbone: self.backbone.describe(),
            start_step: self.start_step,
        });

        let o = self.config.optim.clone();
        let mut sgd = SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(o.momentum)))
            .with_weight_decay(Some(WeightDecayConfig::new(o.weight_decay as f32)));
        if o.clip_grad_norm > 0.0 {
            sgd = sgd.with_gradient_clipping(Some(GradientClippingConfig::Norm(
                o.clip_grad_norm as f32,
            )));
        }
        let mut optim = sgd.init();
        let batcher = FaceBatcher::default();
        let n = self.dataset.len();
        let started = Instant::now();
        let mut losses = Vec::new();
        let mut perm_epoch = u64::MAX;
        let mut perm = Vec::new();
        let mut last_checkpoint: Option<PathBuf> = Checkpoint::latest(&run_dir)?.map(|c| c.dir);

        for step in self.start_step..o.steps {
            let lr = o.lr_at(step);
            // Sample order is a function of the step, so a resumed run sees the same batches.
            let first = step * o.batch_size;
            let mut indices = Vec::with_capacity(o.batch_size);
            for g in first..first + o.batch_size {
                let epoch = (g / n) as u64;
                if epoch != perm_epoch {
                    perm = epoch_permutation(n, self.config.seed, epoch);
                    perm_epoch = epoch;
                    self.dataset.set_epoch(epoch);
                }
                indices.push(perm[g % n]);
            }
            let samples = self.dataset.samples(&indices)?;
            let labels: Vec<i64> = samples.iter().map(|s| i64::from(s.label)).collect();
            let pose: Vec<[f32; 3]> = samples
                .iter()
                .map(|s| s.angles.map_or([0.0; 3], |a| [a.yaw, a.pitch, a.roll]))
                .collect();
            let batch = batcher.batch(samples, &self.device);
            let images = resize(batch.images, self.config.data.input_size);

            let model = self.model.take().expect("model present between steps");
            let embeddings = model.forward(images); // [B, E]
            let sampled = self.centres.sample(&labels)?;
            let (centres, remapped) = self.centres.gather(&sampled, &self.device);
            let (cosine, norms) = normalized_cosine(embeddings, centres.clone());
            let out = self.head.forward(HeadInput {
                cosine,
                labels: remapped.clone(),
                norms: Some(norms),
                pose: Some(&pose),
            })?;
            let loss = out.loss(remapped);
            let loss_value = f64::from(loss.clone().into_scalar::<f32>());
            if !loss_value.is_finite() {
                return Err(TrainError::NonFinite {
                    step: step + 1,
                    loss: loss_value,
                    lr,
                    last_checkpoint,
                });
            }
            let mut grads = loss.backward();
            let centre_grad = centres
                .grad_remove(&mut grads)
                .ok_or_else(|| TrainError::Data("class centres received no gradient".into()))?;
            self.centres.step(
                &sampled,
                centre_grad,
                SgdStep {
                    lr,
                    momentum: o.momentum,
                    weight_decay: o.weight_decay,
                },
            )?;
            let grads = GradientsParams::from_grads(grads, &model);
            self.model = Some(optim.step(lr, model, grads));

            losses.push(loss_value);
            let done = step + 1;
            let seconds = started.elapsed().as_secs_f64();
            let log = StepLog {
                step: done,
                steps: o.steps,
                loss: loss_value,
                lr,
                images_per_second: ((done - self.start_step) * o.batch_size) as f64
                    / seconds.max(1e-9),
            };
            metrics.write(&serde_json::json!({"kind": "step", "step": done, "loss": loss_value, "lr": lr, "images_per_second": log.images_per_second}))?;
            observer.step(&log);

            let e = self.config.eval.every_steps;
            if e > 0 && done % e == 0 && done < o.steps {
                for report in self.evaluate()? {
                    metrics.write(
                        &serde_json::json!({"kind": "eval", "step": done, "report": report}),
                    )?;
                    observer.evaluated(done, &report);
                }
            }
            let c = self.config.checkpoint.every_steps;
            if (c > 0 && done % c == 0) || done == o.steps {
                let dir = self.save_checkpoint(done)?;
                observer.checkpointed(done, &dir);
                last_checkpoint = Some(dir);
            }
        }

        let verification = self.evaluate()?;
        for report in &verification {
            metrics
                .write(&serde_json::json!({"kind": "eval", "step": o.steps, "report": report}))?;
            observer.evaluated(o.steps, report);
        }
        let inner = self.device.clone().inner();
        let pixel_baseline = self
            .val
            .iter()
            .map(|v| v.pixel_baseline(self.config.data.input_size, &inner))
            .collect::<Result<Vec<_>, _>>()?;
        let model = self.model.as_ref().expect("model present");
        poseface_model::save_insightface(&model.valid(), &run_dir.join("model.safetensors"))?;
        let tail = (losses.len() / 10).max(1).min(losses.len().max(1));
        let final_loss = losses.iter().rev().take(tail).sum::<f64>() / tail as f64;
        let seconds = started.elapsed().as_secs_f64();
        let summary = TrainSummary {
            run_dir: run_dir.clone(),
            steps: o.steps,
            final_loss,
            images_per_second: (losses.len() * o.batch_size) as f64 / seconds.max(1e-9),
            seconds,
            verification,
            pixel_baseline,
        };
        poseface_data::fsutil::write_atomic(
            &run_dir.join("summary.json"),
            serde_json::to_string_pretty(&summary)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        Ok(summary)
    }

    /// Verifies every validation set with the current weights.
    pub fn evaluate(&self) -> Result<Vec<VerifyReport>, TrainError> {
        let model = self.model.as_ref().expect("model present").valid();
        let inner = self.device.clone().inner();
        self.val
            .iter()
            .map(|v| {
                v.evaluate(
                    &model,
                    self.config.data.input_size,
                    self.config.eval.batch_size,
                    &inner,
                )
            })
            .collect()
    }

    fn save_checkpoint(&self, step: usize) -> Result<PathBuf, TrainError> {
        let model = self.model.as_ref().expect("model present");
        let state = CheckpointState {
            step,
            head: self.head.state(),
        };
        Checkpoint::write(
            &self.config.run_dir(),
            &model.valid(),
            &self.centres,
            &state,
            self.config.checkpoint.keep,
        )
    }
}

fn class_count(storage: &FaceStorage) -> Result<usize, TrainError> {
    match storage {
        FaceStorage::Record(r) => {
            if let Some(p) = r.property() {
                return Ok(p.num_classes as usize);
            }
            if let Some(ranges) = r.identity_ranges() {
                return Ok(ranges.len());
            }
            let groups = r.group_by_label()?;
            Ok(groups.keys().next_back().map_or(0, |&l| l as usize + 1))
        }
        FaceStorage::Folder(f) => Ok(f.identities().len()),
    }
}

pub(crate) fn io(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::Data(format!("{}: {e}", path.display()))
}
