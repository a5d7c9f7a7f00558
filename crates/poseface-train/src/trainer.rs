//! The training loop: batches from a face dataset, backbone → embeddings → Partial FC
//! centres → margin head → cross-entropy, SGD on the backbone (burn's optimiser) and on the
//! sampled centres (Partial FC's sparse step), periodic verification, checkpoints.
//!
//! The loop owns no terminal output: it reports to a [`TrainObserver`], which the command
//! line turns into a progress bar and log lines.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::clip::{gradient_norm, scale_to_norm};
use burn::data::dataloader::batcher::Batcher;
use burn::module::Module;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{ModuleOptimizer, SgdConfig, decay::WeightDecayConfig};
use burn::tensor::Device;
use poseface_data::batch::FaceBatcher;
use poseface_data::dataset::{FaceDataset, FaceStorage, epoch_permutation};
use poseface_landmark::LandmarkAutoencoder;
use poseface_loss::head::ArcFaceConfig;
use poseface_loss::orthogonality;
use poseface_loss::{MarginHead, MarginHeadConfig, PartialFc, PartialFcConfig, SgdStep};
use poseface_model::backbone::{Backbone, BackboneConfig};
use poseface_model::{
    DisentangledHeadConfig, DreamConfig, PoseAwareHeadsConfig, PoseModule, PoseRegressorConfig,
    stable_param_ids,
};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::checkpoint::{Checkpoint, CheckpointState};
use crate::config::{ExperimentConfig, Precision};
use crate::embed::{Embedder, resize};
use crate::method::{MethodConfig, PoseFaceConfig};
use crate::probe::{PoseProbe, ProbeFaces};
use crate::step::{ShardGrads, ShardOutcome, scalar};
use crate::verifier::{VerificationSet, VerifyReport};

/// What the loop tells its observer after each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Steps done (1-based).
    pub step: usize,
    /// Total steps.
    pub steps: usize,
    /// Loss of this step (the weighted sum of `terms`).
    pub loss: f64,
    /// The loss terms, unweighted: `margin`, with PoseFace `orth` and `pose`, with the
    /// multi-task and DREAM methods `pose`.
    pub terms: Vec<(String, f64)>,
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
    /// What the run does differently from its config, and why.
    pub warnings: Vec<String>,
    /// The devices it trains on (several: data-parallel, the first holds the weights).
    #[serde(default)]
    pub devices: Vec<String>,
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
    /// Asked after each step: `true` ends the session there, as an interruption would
    /// (the run continues from its latest checkpoint with `resume`).
    fn should_stop(&mut self, _step: usize) -> bool {
        false
    }
}

/// An observer that ignores everything.
impl TrainObserver for () {}

/// The outcome of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Run directory.
    pub run_dir: PathBuf,
    /// Steps completed (the run's total when it finished).
    pub steps: usize,
    /// Whether the run reached `optim.steps` (false when stopped early).
    pub finished: bool,
    /// Mean loss over the last 10% of steps of this session (`None` when it trained none).
    pub final_loss: Option<f64>,
    /// Training throughput.
    pub images_per_second: f64,
    /// Wall-clock seconds of this session.
    pub seconds: f64,
    /// Seconds spent in training steps over every session of the run (the training cost;
    /// evaluation and checkpoints not included).
    #[serde(default)]
    pub train_seconds: f64,
    /// Final verification of each set.
    pub verification: Vec<VerifyReport>,
    /// Raw-pixel baseline on each set.
    pub pixel_baseline: Vec<VerifyReport>,
    /// PoseFace: `‖Ŵ_id Ŵ_pᵀ‖²_F` of the final weights (`None` for other methods).
    pub orthogonality: Option<f64>,
    /// Pose left in the identity embedding, probed on the first validation set with yaws.
    pub probe: Option<PoseProbe>,
    /// PoseFace: how well the frozen decoder turns the pose branch into landmarks.
    pub pose_landmarks: Option<PoseLandmarkNme>,
}

/// NME (by inter-ocular distance, in the normalised landmark frame) of `D(z_p)` against the
/// faces' landmarks, beside the autoencoder's own reconstruction `D(E(l))` of the same faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoseLandmarkNme {
    /// Faces measured (training faces with landmarks, as augmented).
    pub faces: usize,
    /// Mean NME of `D(z_p)`.
    pub pose_branch: f64,
    /// Mean NME of `D(E(l))`: the floor the pose branch can reach.
    pub autoencoder: f64,
}

/// PoseFace's pose target: the frozen landmark autoencoder and how it is used.
struct PoseTargetModel {
    config: PoseFaceConfig,
    lae: LandmarkAutoencoder,
}

/// A configured training run.
pub struct Trainer {
    config: ExperimentConfig,
    /// The first of `devices`: where the weights live and are updated, and where evaluation runs.
    device: Device,
    /// The devices a batch is split across (one shard each); one for plain training.
    devices: Vec<Device>,
    dataset: FaceDataset,
    classes: usize,
    backbone: BackboneConfig,
    model: Option<Backbone>,
    head: MarginHead,
    /// The method's module after the backbone (absent for `plain`, or when switched off).
    pose: Option<PoseModule>,
    /// PoseFace's frozen autoencoder.
    target: Option<PoseTargetModel>,
    centres: PartialFc,
    optim: ModuleOptimizer,
    optim_pose: ModuleOptimizer,
    start_step: usize,
    /// Seconds spent in training steps by earlier sessions of the run.
    prior_train_seconds: f64,
    val: Vec<VerificationSet>,
    /// [`data_fingerprint`] of the training data, saved with each checkpoint.
    data_fingerprint: u64,
    warnings: Vec<String>,
}

/// Sets the float type of tensors made on `device` to `precision`'s, or says why it
/// cannot: the device does not compute in it, or its float type was fixed earlier (burn fixes
/// it once per device and process, at the first tensor made there).
pub fn set_precision(device: &mut Device, precision: Precision) -> Result<(), TrainError> {
    let want = precision.dtype();
    if device.settings().float_dtype == want {
        return Ok(());
    }
    let fail = |message: String| TrainError::Config {
        path: "optim.precision".into(),
        message,
    };
    if !device.supports_dtype(want) {
        return Err(fail(format!(
            "{precision:?}: this device ({device:?}) does not compute in {want:?}; use f32"
        )));
    }
    device.configure(want).map_err(|e| {
        fail(format!(
            "{precision:?}: the device's float type is already {:?} ({e:?}); the precision must be set before any tensor is made on the device, in a fresh process",
            device.settings().float_dtype
        ))
    })
}

impl Trainer {
    /// Opens the data, builds the model, and resumes from the run's latest checkpoint when
    /// `resume` is set and one exists. Trains on `device` (made an autodiff device if it is
    /// not one).
    ///
    /// The initial weights come from the device's random generator, seeded with the config's
    /// seed; trainers built at the same time in one process take turns, but any other draw
    /// from that generator while one is built (a module initialised elsewhere) changes them.
    pub fn new(
        config: ExperimentConfig,
        device: &Device,
        resume: bool,
    ) -> Result<Self, TrainError> {
        Self::with_devices(config, std::slice::from_ref(device), resume)
    }

    /// [`Trainer::new`] with data parallelism over `devices`: each batch is split into one
    /// shard per device, the shards' forward and backward passes run at the same time (a
    /// thread per device, each on a replica of the weights), and their gradients are added on
    /// the first device, which holds the weights, takes the optimiser step and runs the
    /// evaluations. This is burn-train's multi-device strategy with the optimiser on the main
    /// device (`MultiDeviceOptim::OptimMainDevice`), written into this loop because burn-train's
    /// `Learner` takes one loss from one model output, where a step here also updates the
    /// host-side Partial FC centres and the margin head's running state. With one device it is
    /// exactly [`Trainer::new`].
    ///
    /// Each shard's loss terms are scaled by its share of the batch (the pose term by its
    /// share of the faces that have a pose), so the summed gradient is the whole batch's
    /// except where a statistic of the batch enters the forward pass: BatchNorm's, and the
    /// CurricularFace and AdaFace heads' running statistics, are each shard's own (as in
    /// PyTorch's DDP without SyncBatchNorm); afterwards BatchNorm's running statistics and
    /// the head's state become the shards' averages.
    pub fn with_devices(
        config: ExperimentConfig,
        devices: &[Device],
        resume: bool,
    ) -> Result<Self, TrainError> {
        if devices.is_empty() {
            return Err(TrainError::Config {
                path: PathBuf::from("devices"),
                message: "no device to train on".into(),
            });
        }
        if devices.len() > 1 && config.optim.batch_size < 2 * devices.len() {
            return Err(TrainError::Config {
                path: PathBuf::from("optim.batch_size"),
                message: format!(
                    "{} faces per batch cannot be split across {} devices: each needs at \
                     least 2 (BatchNorm's batch statistics)",
                    config.optim.batch_size,
                    devices.len()
                ),
            });
        }
        let mut configured: Vec<Device> = Vec::with_capacity(devices.len());
        for d in devices {
            let mut d = if d.is_autodiff() {
                d.clone()
            } else {
                d.clone().autodiff()
            };
            // burn fixes a device's float type once; a device named twice is set up once.
            if !configured.contains(&d) {
                set_precision(&mut d, config.optim.precision)?;
            }
            configured.push(d);
        }
        let devices = configured;
        let device = devices[0].clone();
        let dataset = FaceDataset::open(&config.data.train, config.data.augment, config.seed)?;
        if dataset.is_empty() {
            return Err(TrainError::Data(format!(
                "{}: no images",
                config.data.train.display()
            )));
        }
        let classes = class_count(dataset.storage())?;
        let data_fingerprint = data_fingerprint(dataset.storage(), &config.data.train)?;
        // Weight initialisation draws from the device's generator, which every user of the
        // device shares: seeding and drawing happen under one lock so that trainers built
        // concurrently in one process still start from their seed's weights. Draws made
        // outside a trainer at the same time (a module built directly, a random tensor, a
        // landmark autoencoder pretrained) are not under this lock and would change them.
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let init_guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        device.seed(config.seed);
        let backbone = BackboneConfig {
            name: config.model.backbone.clone(),
            width: config.model.width,
            input_size: config.data.input_size,
            embedding_size: config.model.embedding_size,
            dropout: config.model.dropout,
        };
        let model = backbone.init(&device).map_err(|e| TrainError::Config {
            path: PathBuf::from("model.backbone"),
            message: e.to_string(),
        })?;
        // Ids from parameter paths, so optimiser state saved by one process fits the next.
        let mut model = stable_param_ids(model, BACKBONE_IDS);
        let mut warnings = Vec::new();
        let mut target = None;
        let e = config.model.embedding_size;
        let pose = match &config.method {
            MethodConfig::Plain => None,
            // Without landmarks and angles there is nothing to supervise the pose branch with.
            m if !dataset.has_pose() => {
                warnings.push(format!(
                    "{} has no pose sidecar (no landmarks, no angles): the {} pose branch is \
                     switched off and the backbone embedding is trained directly",
                    config.data.train.display(),
                    m.name()
                ));
                None
            }
            MethodConfig::Multitask(_) => Some(PoseModule::Regressor(
                PoseRegressorConfig::new(e).init(&device),
            )),
            MethodConfig::Dream(_) => Some(PoseModule::Dream(DreamConfig::new(e).init(&device))),
            MethodConfig::Pams(p) => Some(PoseModule::PoseAware(
                PoseAwareHeadsConfig::new(e, p.splits.len() + 1).init(&device),
            )),
            MethodConfig::PoseFace(_) if dataset.landmark_points() != Some(68) => {
                warnings.push(format!(
                    "{}'s pose sidecar holds {} landmarks per face, not 68: the poseface pose \
                     branch is switched off and the backbone embedding is trained directly",
                    config.data.train.display(),
                    dataset.landmark_points().unwrap_or(0)
                ));
                None
            }
            MethodConfig::PoseFace(p) => {
                let lae = poseface_landmark::load(&p.lae, &device)?;
                let lae = poseface_landmark::frozen(lae, &device);
                let latent = lae.config().latent;
                if lae.config().points != 68 {
                    return Err(TrainError::Config {
                        path: p.lae.clone(),
                        message: format!(
                            "the autoencoder takes {} points; training batches carry 68",
                            lae.config().points
                        ),
                    });
                }
                target = Some(PoseTargetModel {
                    config: p.clone(),
                    lae,
                });
                Some(PoseModule::Disentangled(
                    DisentangledHeadConfig::new(e, config.identity_size(), latent).init(&device),
                ))
            }
        };
        let mut pose = pose.map(|m| stable_param_ids(m, POSE_HEAD_IDS));
        drop(init_guard);
        let identity_size = pose.as_ref().map_or(e, |m| m.identity_size(e));
        // Without poses PAA cannot adapt its margin: it trains as ArcFace with the base
        // margin, and says so, rather than with made-up angles.
        let head_config = match &config.head {
            MarginHeadConfig::Paa(paa) if !dataset.has_pose() => {
                warnings.push(format!(
                    "{} has no pose sidecar: the paa head is switched off and trains as arcface \
                     with m = base_margin = {}",
                    config.data.train.display(),
                    paa.base_margin
                ));
                MarginHeadConfig::ArcFace(ArcFaceConfig {
                    scale: paa.scale,
                    m: paa.base_margin,
                    gradient: paa.gradient,
                    interclass_filtering_threshold: paa.interclass_filtering_threshold,
                })
            }
            // A `frequency` mapping without a histogram takes the training set's.
            MarginHeadConfig::Paa(paa) if paa.mapping.needs_histogram() => {
                let yaws: Vec<f32> = (0..dataset.len())
                    .filter_map(|i| dataset.angles(i).map(|a| a.yaw))
                    .collect();
                let mut paa = paa.clone();
                paa.mapping = paa.mapping.with_histogram(&yaws)?;
                MarginHeadConfig::Paa(paa)
            }
            other => other.clone(),
        };
        let mut head = MarginHead::new(head_config)?;
        let mut centres = PartialFc::new(&PartialFcConfig {
            classes,
            dim: identity_size,
            sample_rate: config.partial_fc.sample_rate,
            seed: config.seed,
        })?;
        let mut optim = sgd(&config.optim).init();
        let mut optim_pose = sgd(&config.optim).init();
        let mut start_step = 0;
        let mut prior_train_seconds = 0.0;
        let run_dir = config.run_dir();
        match Checkpoint::latest(&run_dir)? {
            Some(ckpt) if resume => {
                let saved = ExperimentConfig::from_toml(&ckpt.config()?, &[]).map_err(|e| {
                    TrainError::Data(format!("{}: {e}", ckpt.dir.join("config.toml").display()))
                })?;
                if let Some(section) = changed_section(&saved, &config) {
                    return Err(TrainError::Data(format!(
                        "cannot resume {}: `{section}); resume with the same config or start a \
                         new run under another name",
                        run_dir.display()
                    )));
                }
                let (loaded, loaded_pose, state) = ckpt.load(model, pose.take(), &mut centres)?;
                model = stable_param_ids(loaded, BACKBONE_IDS);
                pose = loaded_pose.map(|m| stable_param_ids(m, POSE_HEAD_IDS));
                match ckpt.load_optimizer(BACKBONE_IDS, optim)? {
                    Some(loaded) => optim = loaded,
                    None => {
                        warnings.push(format!(
                            "{} holds no optimiser state (written by an older version): the \
                             backbone's SGD momentum restarts from zero",
                            ckpt.dir.display()
                        ));
                        optim = sgd(&config.optim).init();
                    }
                }
                if pose.is_some() {
                    optim_pose = ckpt
                        .load_optimizer(POSE_HEAD_IDS, optim_pose)?
                        .unwrap_or_else(|| sgd(&config.optim).init());
                }
                if let Some(saved) = state.data
                    && saved != data_fingerprint
                {
                    return Err(TrainError::Data(format!(
                        "cannot resume {}: the training data in {} is not what {} was trained \
                         on (fingerprint {saved:016x}, now {data_fingerprint:016x}; a \
                         regenerated synthetic set, or another dataset at that path); start a \
                         new run under another name, or remove the run directory",
                        run_dir.display(),
                        config.data.train.display(),
                        ckpt.dir.display(),
                    )));
                }
                head.set_state(state.head);
                start_step = state.step;
                prior_train_seconds = state.train_seconds;
            }
            Some(ckpt) => {
                return Err(TrainError::Data(format!(
                    "{} already holds a run (checkpoint {}); pass --resume to continue it, or \
                     choose another name or remove the directory to start afresh",
                    run_dir.display(),
                    ckpt.dir.display()
                )));
            }
            None => {}
        }
        // An unwritable run directory is reported now, not after the first training steps.
        std::fs::create_dir_all(&run_dir)
            .and_then(|_| {
                let probe = run_dir.join(".write-test");
                std::fs::write(&probe, b"ok")?;
                std::fs::remove_file(&probe)
            })
            .map_err(|e| {
                TrainError::Data(format!(
                    "cannot write the run directory {}: {e}",
                    run_dir.display()
                ))
            })?;
        let val = config
            .data
            .val
            .iter()
            .map(|p| VerificationSet::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            config,
            device,
            devices,
            dataset,
            classes,
            backbone,
            model: Some(model),
            head,
            pose,
            target,
            centres,
            optim,
            optim_pose,
            start_step,
            prior_train_seconds,
            data_fingerprint,
            val,
            warnings,
        })
    }

    /// The step training starts from.
    pub fn start_step(&self) -> usize {
        self.start_step
    }

    /// Trains to `optim.steps` (or until the observer asks to stop), evaluating and
    /// checkpointing on the way.
    pub fn run(&mut self, observer: &mut dyn TrainObserver) -> Result<TrainSummary, TrainError> {
        let run_dir = self.config.run_dir();
        std::fs::create_dir_all(&run_dir).map_err(|e| io(&run_dir, e))?;
        poseface_data::fsutil::write_atomic(
            &run_dir.join("config.toml"),
            self.config.to_toml().as_bytes(),
        )?;
        // Records past the checkpoint we resume from were written by the interrupted session
        // and are about to be written again.
        let mut metrics =
            crate::metrics::MetricsLog::open_at(&run_dir.join("metrics.jsonl"), self.start_step)?;
        observer.started(&RunInfo {
            run_dir: run_dir.clone(),
            images: self.dataset.len(),
            classes: self.classes,
            backbone: self.backbone.describe(),
            start_step: self.start_step,
            warnings: self.warnings.clone(),
            devices: self.devices.iter().map(describe_device).collect(),
        });

        let o = self.config.optim.clone();
        let n = self.dataset.len();
        let mut train_seconds = 0.0;
        let started = Instant::now();
        let mut losses = Vec::new();
        let mut perm_epoch = u64::MAX;
        let mut perm = Vec::new();
        let mut last_checkpoint: Option<PathBuf> = Checkpoint::latest(&run_dir)?.map(|c| c.dir);
        let needs_pose = self.head.config().needs_pose();
        let mut done = self.start_step;

        for step in self.start_step..o.steps {
            let step_started = Instant::now();
            let lr = o.lr_of_step(step);
            // Sample order and negatives are functions of the seed and the step, so a
            // resumed run sees the batches the uninterrupted run would have seen.
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
            self.centres.seek(step as u64);
            let samples = self.dataset.samples(&indices)?;
            if needs_pose && let Some(k) = samples.iter().position(|s| s.angles.is_none()) {
                return Err(TrainError::Data(format!(
                    "{}: image {} has no pose in the sidecar, which the {} head needs",
                    self.config.data.train.display(),
                    indices[k],
                    self.head.config().name()
                )));
            }
            let labels: Vec<i64> = samples.iter().map(|s| i64::from(s.label)).collect();
            let sampled = self.centres.sample(&labels)?;
            let mut shards = Vec::with_capacity(self.devices.len());
            for outcome in self.forward_backward(samples, &sampled)? {
                match outcome {
                    ShardOutcome::Done(grads) => shards.push(*grads),
                    // Stops before any weight moves: the last checkpoint is the last good state.
                    ShardOutcome::NonFinite { loss, term } => {
                        return Err(TrainError::NonFinite {
                            step: step + 1,
                            loss,
                            term,
                            lr,
                            last_checkpoint,
                        });
                    }
                }
            }
            let ShardGrads {
                loss: loss_value,
                terms,
                model: grads,
                pose: pose_grads,
                centres: centre_grad,
                head,
                ..
            } = self.combine(shards);
            // A gradient that is not finite under a finite loss (an overflow, most likely in
            // half precision) stops the run before anything moves, as a non-finite loss does.
            let model_ref = self.model.as_ref().expect("model present between steps");
            let backbone_norm = gradient_norm(model_ref, &grads);
            let pose_norm = match (&self.pose, &pose_grads) {
                (Some(module), Some(g)) => gradient_norm(module, g),
                _ => 0.0,
            };
            let centre_norm = f64::from(
                centre_grad
                    .clone()
                    .cast(burn::tensor::DType::F32)
                    .powi_scalar(2)
                    .sum()
                    .into_scalar::<f32>(),
            );
            for (term, norm) in [
                ("backbone gradient", backbone_norm),
                ("pose module gradient", pose_norm),
                ("class centres gradient", centre_norm),
            ] {
                if !norm.is_finite() {
                    return Err(TrainError::NonFinite {
                        step: step + 1,
                        loss: loss_value,
                        term: term.to_string(),
                        lr,
                        last_checkpoint,
                    });
                }
            }
            self.centres.step(
                &sampled,
                centre_grad,
                SgdStep {
                    lr,
                    momentum: o.momentum,
                    weight_decay: o.weight_decay,
                },
            )?;
            self.head.set_state(head);
            // Nothing below can fail: the modules are moved through the optimisers and back.
            // Clipping as arcface_torch's `clip_grad_norm_(backbone.parameters(), 5)`: one
            // factor for all of a module's gradients (the pose module's apart).
            if let (Some(module), Some(mut module_grads)) = (self.pose.take(), pose_grads) {
                if o.clip_grad_norm > 0.0 {
                    scale_to_norm(&module, &mut module_grads, pose_norm, o.clip_grad_norm);
                }
                self.pose = Some(self.optim_pose.step(lr, module, module_grads));
            }
            let model = self.model.take().expect("model present between steps");
            let mut grads = grads;
            if o.clip_grad_norm > 0.0 {
                scale_to_norm(&model, &mut grads, backbone_norm, o.clip_grad_norm);
            }
            self.model = Some(self.optim.step(lr, model, grads));
            train_seconds += step_started.elapsed().as_secs_f64();

            losses.push(loss_value);
            done = step + 1;
            let log = StepLog {
                step: done,
                steps: o.steps,
                loss: loss_value,
                terms: terms.clone(),
                lr,
                images_per_second: ((done - self.start_step) * o.batch_size) as f64
                    / train_seconds.max(1e-9),
            };
            let terms_json: serde_json::Map<String, serde_json::Value> = terms
                .iter()
                .map(|(k, v)| (k.clone(), (*v).into()))
                .collect();
            metrics.write(&serde_json::json!({"kind": "step", "step": done, "loss": loss_value, "terms": terms_json, "lr": lr, "images_per_second": log.images_per_second}))?;
            observer.step(&log);

            let e = self.config.eval.every_steps;
            if e > 0 && done.is_multiple_of(e) && done < o.steps {
                let sets = self.config.eval.periodic_sets.unwrap_or(self.val.len());
                for report in self.evaluate_first(sets)? {
                    metrics.write(
                        &serde_json::json!({"kind": "eval", "step": done, "report": report}),
                    )?;
                    observer.evaluated(done, &report);
                }
            }
            let c = self.config.checkpoint.every_steps;
            if (c > 0 && done.is_multiple_of(c)) || done == o.steps {
                let dir = self.save_checkpoint(done, self.prior_train_seconds + train_seconds)?;
                observer.checkpointed(done, &dir);
                last_checkpoint = Some(dir);
            }
            if done < o.steps && observer.should_stop(done) {
                break;
            }
        }

        let finished = done == o.steps;
        let verification = self.evaluate()?;
        for report in &verification {
            metrics.write(&serde_json::json!({"kind": "eval", "step": done, "report": report}))?;
            observer.evaluated(done, report);
        }
        let inner = self.device.clone().inner();
        let pixel_baseline = self
            .val
            .iter()
            .map(|v| v.pixel_baseline(self.config.data.input_size, &inner))
            .collect::<Result<Vec<_>, _>>()?;
        if finished {
            // The exported weights are what embeds at test time: the backbone (with
            // PoseFace's W_id folded in), and DREAM's block beside it.
            poseface_model::save_insightface(
                &self.inference_model(),
                &run_dir.join("model.safetensors"),
            )?;
            let dream = matches!(self.pose, Some(PoseModule::Dream(_)));
            if let Some(PoseModule::Dream(d)) = &self.pose {
                crate::embed::save_dream(&d.valid(), &run_dir.join(crate::embed::DREAM_FILE))?;
            }
            let mut pose_aware_heads = 0;
            if let Some(PoseModule::PoseAware(h)) = &self.pose {
                pose_aware_heads = h.len();
                crate::embed::save_pose_aware(
                    &h.valid(),
                    &run_dir.join(crate::embed::POSE_AWARE_FILE),
                )?;
            }
            let export = crate::embed::Exported {
                embedding_size: self.identity_size(),
                dream,
                pose_aware_heads,
            };
            poseface_data::fsutil::write_atomic(
                &run_dir.join(crate::embed::Exported::FILE),
                &serde_json::to_vec(&export).unwrap_or_default(),
            )?;
        }
        let orthogonality = self.orthogonality();
        // Diagnostics: a face set they cannot use leaves them out of the report, it does not
        // fail a finished run.
        let probe = self.probe().ok().flatten();
        let pose_landmarks = self
            .pose_landmark_nme(self.config.eval.probe_faces.min(2000))
            .ok()
            .flatten();
        crate::verifier::write_report(
            &run_dir,
            &format!("{} after {done} steps", self.config.name),
            &verification,
            &pixel_baseline,
        )?;
        // After write_report, which writes report.md afresh.
        if let Some(p) = &probe {
            metrics.write(&serde_json::json!({"kind": "probe", "step": done, "probe": p, "orthogonality": orthogonality}))?;
            let path = run_dir.join("report.md");
            if let Ok(mut text) = std::fs::read_to_string(&path) {
                text.push_str(&crate::probe::markdown(p, orthogonality));
                if let Some(n) = &pose_landmarks {
                    text.push_str(&format!(
                        "\nThe frozen decoder turns the pose branch into landmarks with NME {:.2}% \
                         of the inter-ocular distance on {} training faces (its own \
                         reconstruction of their landmarks: {:.2}%).\n",
                        100.0 * n.pose_branch,
                        n.faces,
                        100.0 * n.autoencoder
                    ));
                }
                poseface_data::fsutil::write_atomic(&path, text.as_bytes())?;
            }
        }
        let tail = (losses.len() / 10).max(1);
        let final_loss = (!losses.is_empty())
            .then(|| losses.iter().rev().take(tail).sum::<f64>() / tail.min(losses.len()) as f64);
        let summary = TrainSummary {
            run_dir: run_dir.clone(),
            steps: done,
            finished,
            final_loss,
            images_per_second: (losses.len() * o.batch_size) as f64 / train_seconds.max(1e-9),
            seconds: started.elapsed().as_secs_f64(),
            train_seconds: self.prior_train_seconds + train_seconds,
            verification,
            pixel_baseline,
            orthogonality,
            probe,
            pose_landmarks,
        };
        poseface_data::fsutil::write_atomic(
            &run_dir.join("summary.json"),
            serde_json::to_string_pretty(&summary)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        Ok(summary)
    }

    /// The margin head as built: a `frequency` PAA mapping given without a histogram has the
    /// training set's.
    pub fn head(&self) -> &MarginHead {
        &self.head
    }

    /// The inference backbone: PoseFace's `W_id` folded into it so that its output is the
    /// identity embedding; as trained for the other methods.
    pub fn inference_model(&self) -> Backbone {
        let model = self.model.as_ref().expect("model present").valid();
        match &self.pose {
            Some(PoseModule::Disentangled(head)) => head.valid().fold_into(model),
            _ => model,
        }
    }

    /// What embeds faces at test time with the current weights.
    pub fn embedder(&self) -> Embedder {
        let embedder = Embedder::new(
            self.inference_model(),
            self.config.data.input_size,
            self.identity_size(),
            &self.device,
        );
        match &self.pose {
            Some(PoseModule::Dream(d)) => embedder.with_dream(d.valid()),
            Some(PoseModule::PoseAware(h)) => embedder.with_pose_aware(h.valid()),
            _ => embedder,
        }
    }

    /// Size of the identity embedding.
    pub fn identity_size(&self) -> usize {
        let e = self.config.model.embedding_size;
        self.pose.as_ref().map_or(e, |m| m.identity_size(e))
    }

    /// PoseFace: `‖Ŵ_id Ŵ_pᵀ‖²_F` of the current weights.
    pub fn orthogonality(&self) -> Option<f64> {
        let Some(PoseModule::Disentangled(head)) = &self.pose else {
            return None;
        };
        let head = head.valid();
        Some(scalar(&orthogonality(
            head.w_id.weight.val(),
            head.w_p.weight.val(),
        )))
    }

    /// PoseFace: NME of the decoded pose branch on up to `faces` training faces.
    pub fn pose_landmark_nme(&self, faces: usize) -> Result<Option<PoseLandmarkNme>, TrainError> {
        let (Some(PoseModule::Disentangled(head)), Some(target)) = (&self.pose, &self.target)
        else {
            return Ok(None);
        };
        let n = faces.min(self.dataset.len());
        if n == 0 {
            return Ok(None);
        }
        let inner = self.device.clone().inner();
        let model = self.model.as_ref().expect("model present").valid();
        let head = head.valid();
        let lae = target.lae.valid();
        let samples = self.dataset.samples(&(0..n).collect::<Vec<_>>())?;
        let samples: Vec<_> = samples
            .into_iter()
            .filter(|s| s.landmarks.as_ref().is_some_and(|l| l.len() == 68))
            .collect();
        if samples.is_empty() {
            return Ok(None);
        }
        let truth: Vec<Vec<[f32; 2]>> = samples
            .iter()
            .map(|s| s.landmarks.clone().expect("filtered"))
            .collect();
        let (rows, _) = poseface_landmark::normalise::normalise_rows(&truth, 68)?;
        let normalised: Vec<Vec<[f32; 2]>> = rows
            .chunks(136)
            .map(|r| r.chunks(2).map(|c| [c[0], c[1]]).collect())
            .collect();
        let mut decoded = Vec::with_capacity(samples.len());
        let batcher = FaceBatcher::default();
        let bs = self.config.eval.batch_size.max(1);
        for chunk in samples.chunks(bs) {
            let batch = batcher.batch(chunk.to_vec(), &inner);
            let feature = model.forward(resize(batch.images, self.config.data.input_size));
            let (_, z_p) = head.forward(feature);
            let v = lae
                .decode(z_p)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            decoded.extend(
                v.chunks(136)
                    .map(|r| r.chunks(2).map(|c| [c[0], c[1]]).collect::<Vec<_>>()),
            );
        }
        let pose_branch = poseface_landmark::metrics::nme(&normalised, &decoded).iod_mean;
        // NME is invariant to centring and scaling, so the autoencoder's own error on the
        // shapes in pixels is its error in the normalised frame.
        let autoencoder = poseface_landmark::evaluate(&lae, &truth, &inner)?.iod_mean;
        Ok(Some(PoseLandmarkNme {
            faces: samples.len(),
            pose_branch: pose_branch.unwrap_or(f64::NAN),
            autoencoder: autoencoder.unwrap_or(f64::NAN),
        }))
    }

    /// Probes the identity embedding for pose on the first validation set that has yaws.
    pub fn probe(&self) -> Result<Option<PoseProbe>, TrainError> {
        let limit = self.config.eval.probe_faces;
        let Some(set) = self
            .val
            .iter()
            .find(|v| v.yaws.is_some())
            .filter(|_| limit > 0)
        else {
            return Ok(None);
        };
        let embedder = self.embedder();
        let faces = ProbeFaces::from_verification_set(set, limit)?;
        faces
            .probe(&embedder, self.config.eval.batch_size)
            .map(Some)
    }

    /// Verifies every validation set with the current weights.
    pub fn evaluate(&self) -> Result<Vec<VerifyReport>, TrainError> {
        self.evaluate_first(self.val.len())
    }

    /// Verifies the first `sets` validation sets.
    fn evaluate_first(&self, sets: usize) -> Result<Vec<VerifyReport>, TrainError> {
        let embedder = self.embedder();
        self.val
            .iter()
            .take(sets)
            .map(|v| v.evaluate(&embedder, self.config.eval.batch_size))
            .collect()
    }

    fn save_checkpoint(&self, step: usize, train_seconds: f64) -> Result<PathBuf, TrainError> {
        let model = self.model.as_ref().expect("model present");
        let state = CheckpointState {
            step,
            head: self.head.state(),
            train_seconds,
            data: Some(self.data_fingerprint),
        };
        let pose_head = self.pose.as_ref().map(|m| m.valid());
        let optimizers = [
            (BACKBONE_IDS, &self.optim),
            (POSE_HEAD_IDS, &self.optim_pose),
        ];
        Checkpoint::write(
            &self.config.run_dir(),
            &crate::checkpoint::Contents {
                model: &model.valid(),
                pose_head: pose_head.as_ref(),
                optimizers: if pose_head.is_some() {
                    &optimizers
                } else {
                    &optimizers[..1]
                },
                centres: &self.centres,
                state: &state,
                config: &self.config.to_toml(),
            },
            self.config.checkpoint.keep,
        )
    }
}

/// The first config section whose change alters what a resumed run trains, if any
/// (`eval`, `checkpoint` and `runs_dir` may change between sessions).
fn changed_section(saved: &ExperimentConfig, now: &ExperimentConfig) -> Option<String> {
    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    let sections = [
        ("name", json(&saved.name), json(&now.name)),
        ("seed", json(&saved.seed), json(&now.seed)),
        ("data", json(&saved.data), json(&now.data)),
        ("model", json(&saved.model), json(&now.model)),
        ("method", json(&saved.method), json(&now.method)),
        ("head", json(&saved.head), json(&now.head)),
        ("partial_fc", json(&saved.partial_fc), json(&now.partial_fc)),
        ("optim", json(&saved.optim), json(&now.optim)),
    ];
    sections
        .into_iter()
        .find(|(_, a, b)| a != b)
        .map(|(name, a, b)| {
            format!("{name}` differs from the checkpoint's config (was {a}, now {b}")
        })
}

/// A fingerprint of the training data at `path`, so that a run is not resumed on other
/// data (a regenerated synthetic set, another copy of a dataset): the CRC-32 of a RecordIO
/// index with the length of its record file, or of an ImageFolder's image paths and labels.
/// Cheap next to training: it reads the index, not the records.
fn data_fingerprint(storage: &FaceStorage, path: &Path) -> Result<u64, TrainError> {
    let mut crc = crc32fast::Hasher::new();
    let length = match storage {
        FaceStorage::Record(_) => {
            let (idx, rec) = (path.join("train.idx"), path.join("train.rec"));
            crc.update(&std::fs::read(&idx).map_err(|e| io(&idx, e))?);
            std::fs::metadata(&rec).map_err(|e| io(&rec, e))?.len()
        }
        FaceStorage::Folder(f) => {
            for image in f.images() {
                let relative = image.path.strip_prefix(f.root()).unwrap_or(&image.path);
                crc.update(relative.to_string_lossy().as_bytes());
                crc.update(&image.label.to_le_bytes());
            }
            f.len() as u64
        }
    };
    Ok(length << 32 | u64::from(crc.finalize()))
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

/// Namespaces of the stable parameter ids (and names of the optimiser-state files).
const BACKBONE_IDS: &str = "backbone";
const POSE_HEAD_IDS: &str = "pose_head";

/// SGD as PyTorch's (and arcface_torch's): momentum without dampening and L2 weight decay.
/// Gradients are clipped before the step, by [`clip_grad_norm`].
fn sgd(o: &crate::config::OptimConfig) -> SgdConfig {
    let momentum = MomentumConfig::new()
        .with_momentum(o.momentum)
        .with_dampening(0.0);
    SgdConfig::new()
        .with_momentum(Some(momentum))
        .with_weight_decay(Some(WeightDecayConfig::new(o.weight_decay as f32)))
}

/// A device in words: burn's debug form of the device without its `Device<…>` wrapper
/// (`Flex(Cpu)` for the CPU).
fn describe_device(device: &Device) -> String {
    let text = format!("{:?}", device.clone().inner());
    text.strip_prefix("Device<")
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(&text)
        .to_string()
}

pub(crate) fn io(path: &Path, e: std::io::Error) -> TrainError {
    TrainError::Data(format!("{}: {e}", path.display()))
}

mod parallel;

#[cfg(test)]
mod parallel_tests;
