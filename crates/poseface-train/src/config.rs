//! Experiment configuration: one TOML file per experiment, deserialised into typed sections
//! with unknown keys rejected, `--set key=value` overrides applied before typing, and the
//! resolved result saved beside the run.

use std::path::{Path, PathBuf};

use poseface_data::augment::AugmentConfig;
use poseface_loss::MarginHeadConfig;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::method::MethodConfig;

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Run name; the run directory is `<runs_dir>/<name>`.
    pub name: String,
    /// Where runs are written (relative paths are taken from the working directory).
    #[serde(default = "default_runs_dir")]
    pub runs_dir: PathBuf,
    /// Seed of initialisation, sampling and augmentation.
    #[serde(default)]
    pub seed: u64,
    /// Training and validation data.
    pub data: DataConfig,
    /// The backbone.
    #[serde(default)]
    pub model: ModelConfig,
    /// Between backbone and head: `plain`, or PoseFace's disentangled head.
    #[serde(default)]
    pub method: MethodConfig,
    /// The margin head (`kind = "arcface" | "paa" | …`).
    #[serde(default)]
    pub head: MarginHeadConfig,
    /// Class-centre sampling.
    #[serde(default)]
    pub partial_fc: PartialFcSection,
    /// Optimiser and schedule.
    #[serde(default)]
    pub optim: OptimConfig,
    /// Periodic verification.
    #[serde(default)]
    pub eval: EvalConfig,
    /// Checkpointing.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
}

fn default_runs_dir() -> PathBuf {
    PathBuf::from("runs")
}

/// Where the faces come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training set: a RecordIO directory (`train.rec`, `train.idx`, optional
    /// `pose.sidecar`) or an ImageFolder.
    pub train: PathBuf,
    /// Verification `.bin` files evaluated during and after training.
    #[serde(default)]
    pub val: Vec<PathBuf>,
    /// Side the aligned 112×112 faces are average-pooled to before the backbone (112 or 56).
    #[serde(default = "default_input_size")]
    pub input_size: usize,
    /// Augmentation (insightface's default: a horizontal flip half the time).
    #[serde(default)]
    pub augment: AugmentConfig,
}

fn default_input_size() -> usize {
    112
}

/// The backbone network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `r18`, `r34`, `r50`, `r100`, `r200` or `mbf` (MobileFaceNet).
    pub backbone: String,
    /// Width multiplier.
    pub width: f64,
    /// Embedding size.
    pub embedding_size: usize,
    /// Dropout before the embedding layer (IResNet).
    pub dropout: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            backbone: "r50".into(),
            width: 1.0,
            embedding_size: 512,
            dropout: 0.0,
        }
    }
}

/// Partial FC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartialFcSection {
    /// Share of class centres sampled per step, in `(0, 1]`.
    pub sample_rate: f64,
}

impl Default for PartialFcSection {
    fn default() -> Self {
        Self { sample_rate: 1.0 }
    }
}

/// SGD with warmup and polynomial decay, as `arcface_torch` trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Total optimisation steps.
    pub steps: usize,
    /// Linear warmup steps from 0 to `lr`.
    pub warmup_steps: usize,
    /// Exponent of the polynomial decay after warmup (`arcface_torch`: 2).
    pub decay_power: f64,
    /// Gradient clipping as PyTorch's `clip_grad_norm_` (arcface_torch clips the backbone
    /// at 5): all of the backbone's gradients are scaled by one factor so that their joint
    /// L2 norm is at most this, and the pose module's apart (0 disables it). Partial FC's
    /// class centres are not clipped, as in arcface_torch.
    pub clip_grad_norm: f64,
    /// Float type of the network's tensors on the training device: `f32` (default), `f16`
    /// or `bf16`. A reduced type applies to the whole network, weights and optimiser state
    /// included (burn sets the device's float type; there is no float32 master copy and no
    /// loss scaling as in PyTorch's AMP, so small updates can round away, and in f16 small
    /// gradients underflow), and only where the device computes in it. The loss is computed
    /// on the device in this type; the class centres and their SGD state stay float32 on the
    /// host, and weight files are written in float32.
    pub precision: Precision,
}

/// Float type of the network on the training device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl Precision {
    /// burn's float type for this precision.
    pub fn dtype(self) -> burn::tensor::FloatDType {
        match self {
            Self::F32 => burn::tensor::FloatDType::F32,
            Self::F16 => burn::tensor::FloatDType::F16,
            Self::Bf16 => burn::tensor::FloatDType::BF16,
        }
    }
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
            batch_size: 128,
            steps: 10_000,
            warmup_steps: 0,
            decay_power: 2.0,
            clip_grad_norm: 5.0,
            precision: Precision::F32,
        }
    }
}

impl OptimConfig {
    /// The value of `arcface_torch`'s polynomial schedule at scheduler position `step`:
    /// `lr · step / warmup` during warmup, then
    /// `lr · (1 − (step − warmup) / (steps − warmup))^power`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * step as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let done = (step - self.warmup_steps) as f64 / span;
        self.lr * (1.0 - done).max(0.0).powf(self.decay_power)
    }

    /// The learning rate optimisation step `step` (0-based) takes, as in `arcface_torch`:
    /// PyTorch's scheduler sets the rate of position 0 when it is built and then starts
    /// counting from there again, so the first two steps both take position 0's rate and
    /// step `k` takes position `k − 1`'s (`lr_at(max(step − 1, 0))`).
    pub fn lr_of_step(&self, step: usize) -> f64 {
        self.lr_at(step.saturating_sub(1))
    }
}

/// Periodic verification during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Verify every this many steps (0: only at the end).
    pub every_steps: usize,
    /// How many of `data.val` (the first ones) are verified periodically; all of them are
    /// verified at the end. Absent: all.
    pub periodic_sets: Option<usize>,
    /// Images per embedding batch.
    pub batch_size: usize,
    /// Faces of the first validation set with yaws used by the closing pose probe, and (at
    /// most 2,000) training faces for PoseFace's decoded-landmark NME; 0 skips both.
    pub probe_faces: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            every_steps: 2000,
            periodic_sets: None,
            batch_size: 64,
            probe_faces: 4000,
        }
    }
}

/// Checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Write a checkpoint every this many steps (and always at the end).
    pub every_steps: usize,
    /// Checkpoints kept besides the latest.
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every_steps: 1000,
            keep: 1,
        }
    }
}

impl ExperimentConfig {
    /// Reads a TOML file and applies `key=value` overrides (dotted keys, TOML values; a value
    /// that does not parse as TOML is taken as a string).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text, overrides).map_err(|message| TrainError::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text with overrides; the error names the key and the nearest valid one.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Self, String> {
        let mut value: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        for item in overrides {
            let (key, raw) = item
                .split_once('=')
                .ok_or_else(|| format!("override `{item}` is not key=value"))?;
            let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.to_string()));
            set_dotted(&mut value, key.trim(), parsed)?;
        }
        let config: Self = toml::Value::Table(value)
            .try_into()
            .map_err(|e: toml::de::Error| explain_unknown_field(&e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Range checks that serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        let o = &self.optim;
        // Training-mode batch norm over one sample outputs its shift alone: nothing would train.
        if o.batch_size < 2 || o.steps == 0 {
            return Err("optim.batch_size must be ≥ 2 and optim.steps ≥ 1".into());
        }
        for (key, value) in [
            ("optim.momentum", o.momentum),
            ("optim.weight_decay", o.weight_decay),
            ("optim.decay_power", o.decay_power),
            ("optim.clip_grad_norm", o.clip_grad_norm),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(format!("{key} = {value} must be finite and ≥ 0"));
            }
        }
        let m = &self.model;
        if !(m.width > 0.0 && m.width.is_finite()) {
            return Err(format!("model.width = {} must be > 0", m.width));
        }
        if m.embedding_size == 0 {
            return Err("model.embedding_size must be ≥ 1".into());
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return Err(format!("model.dropout = {} must be in [0, 1)", m.dropout));
        }
        if o.warmup_steps >= o.steps && o.warmup_steps > 0 {
            return Err(format!(
                "optim.warmup_steps ({}) must be below optim.steps ({})",
                o.warmup_steps, o.steps
            ));
        }
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return Err(format!("optim.lr = {} must be > 0", o.lr));
        }
        if ![56, 112].contains(&self.data.input_size) {
            return Err(format!(
                "data.input_size = {} (112, or 56 for CPU-sized runs)",
                self.data.input_size
            ));
        }
        self.head.validate().map_err(|e| e.to_string())?;
        self.method.validate()
    }

    /// Size of the identity embedding: what the margin head trains and evaluation uses.
    pub fn identity_size(&self) -> usize {
        match &self.method {
            MethodConfig::PoseFace(p) => p.identity_size.unwrap_or(self.model.embedding_size),
            _ => self.model.embedding_size,
        }
    }

    /// The resolved configuration as TOML (what the run saves as `config.toml`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configs serialise")
    }

    /// The run directory.
    pub fn run_dir(&self) -> PathBuf {
        self.runs_dir.join(&self.name)
    }
}

fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|k| !k.is_empty())
        .ok_or("empty override key")?;
    let mut at = table;
    for part in parts {
        at = at
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("override `{key}`: `{part}` is not a table"))?;
    }
    at.insert(last.to_string(), value);
    Ok(())
}

/// Adds "did you mean" to serde's "unknown field `x`, expected one of `a`, `b`" messages.
fn explain_unknown_field(message: &str) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return message.to_string();
    };
    let unknown = rest.split('`').next().unwrap_or_default();
    let expected: Vec<&str> = rest
        .split("expected")
        .nth(1)
        .map(|e| e.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    match expected
        .iter()
        .min_by_key(|candidate| edit_distance(unknown, candidate))
    {
        Some(nearest) => format!("{message} (did you mean `{nearest}`?)"),
        None => message.to_string(),
    }
}

/// Levenshtein distance, for suggestions (small strings; no crate needed for 15 lines).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name = \"t\"\n[data]\ntrain = \"d\"\n";

    #[test]
    fn defaults_follow_arcface_torch() {
        let c = ExperimentConfig::from_toml(MINIMAL, &[]).unwrap();
        assert_eq!(c.optim.lr, 0.1);
        assert_eq!(c.optim.weight_decay, 5e-4);
        assert_eq!(c.optim.clip_grad_norm, 5.0);
        assert_eq!(c.head.name(), "arcface");
        assert_eq!(c.model.backbone, "r50");
        assert_eq!(c.optim.precision, Precision::F32);
        let half = ExperimentConfig::from_toml(MINIMAL, &["optim.precision=bf16".into()]).unwrap();
        assert_eq!(half.optim.precision, Precision::Bf16);
        let e = ExperimentConfig::from_toml(MINIMAL, &["optim.precision=fp8".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("fp8"), "{e}");
    }

    #[test]
    fn overrides_are_typed_and_nested() {
        let c = ExperimentConfig::from_toml(
            MINIMAL,
            &[
                "optim.lr=0.05".into(),
                "head.kind=\"paa\"".into(),
                "head.delta_margin=0.3".into(),
                "model.backbone=r18".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.optim.lr, 0.05);
        assert_eq!(c.model.backbone, "r18");
        let MarginHeadConfig::Paa(p) = &c.head else {
            panic!("{:?}", c.head)
        };
        assert_eq!(p.delta_margin, 0.3);
    }

    #[test]
    fn unknown_keys_name_the_nearest_valid_one() {
        let e = ExperimentConfig::from_toml(MINIMAL, &["optim.warmup_step=10".into()]).unwrap_err();
        assert!(e.contains("unknown field `warmup_step`"), "{e}");
        assert!(e.contains("did you mean `warmup_steps`?"), "{e}");
    }

    #[test]
    fn steps_take_the_rates_pytorchs_scheduler_gives_them() {
        // arcface_torch's PolyScheduler (lr 0.1, 110 steps, 10 warm-up) under PyTorch 2.9, the
        // rate each optimiser step used: 0, 0, 0.01, 0.02, …, 0.09, 0.1, 0.09801, 0.09604;
        // the last two steps 9e-5 and 4e-5.
        let o = OptimConfig {
            lr: 0.1,
            steps: 110,
            warmup_steps: 10,
            ..Default::default()
        };
        let first: Vec<f64> = (0..14).map(|k| o.lr_of_step(k)).collect();
        let want = [
            0.0, 0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.09801, 0.09604,
        ];
        for (k, (a, b)) in first.iter().zip(want).enumerate() {
            assert!((a - b).abs() < 1e-12, "step {k}: {a} vs {b}");
        }
        assert!((o.lr_of_step(108) - 9e-5).abs() < 1e-12);
        assert!((o.lr_of_step(109) - 4e-5).abs() < 1e-12);
    }

    #[test]
    fn schedule_warms_up_then_decays_polynomially() {
        let o = OptimConfig {
            lr: 0.1,
            steps: 110,
            warmup_steps: 10,
            ..Default::default()
        };
        assert_eq!(o.lr_at(0), 0.0);
        assert!((o.lr_at(9) - 0.09).abs() < 1e-12);
        assert!((o.lr_at(10) - 0.1).abs() < 1e-12);
        // Halfway through the decay: 0.1 · 0.5² = 0.025.
        assert!((o.lr_at(60) - 0.025).abs() < 1e-12);
        assert_eq!(o.lr_at(110), 0.0);
    }

    #[test]
    fn out_of_range_values_are_named() {
        for (set, key) in [
            ("optim.batch_size=1", "optim.batch_size"),
            ("model.dropout=1.5", "model.dropout"),
            ("optim.momentum=-1", "optim.momentum"),
            ("model.width=0", "model.width"),
        ] {
            let e = ExperimentConfig::from_toml(MINIMAL, &[set.into()]).unwrap_err();
            assert!(e.contains(key), "{set}: {e}");
        }
    }

    #[test]
    fn edit_distance_by_hand() {
        assert_eq!(edit_distance("warmup_step", "warmup_steps"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
