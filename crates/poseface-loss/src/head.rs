//! Margin-softmax heads behind one API: cosine logits between normalised embeddings and
//! normalised class centres, the labels, optionally the embeddings' norms and the samples'
//! Euler angles, in; scaled logits (plus a regulariser for MagFace) out.
//!
//! With `θ` the angle to the sample's own class and `s` the scale, the target logit becomes:
//!
//! | head | target logit / s | notes |
//! |---|---|---|
//! | `softmax` | `cos θ` | normalised softmax |
//! | `sphereface` | `ψ(θ) = (−1)^k cos(mθ) − 2k`, `k = ⌊mθ/π⌋` | monotone extension of SphereFace's `cos(mθ)` |
//! | `cosface` | `cos θ − m` | |
//! | `arcface` | `cos(θ + m)` | |
//! | `combined` | `cos(m1·θ + m2) − m3` | insightface's combined margin |
//! | `curricularface` | `cos(θ + m)`; hard negatives `cos θ_j (t + cos θ_j)` | `t` follows the batch's mean target cosine |
//! | `magface` | `cos(θ + m(a))`, `m(a)` linear in the clamped norm `a` | adds `λ_g·g(a)`, `g(a) = a/u_a² + 1/a` |
//! | `adaface` | `cos(θ − m·ŝ) − (m + m·ŝ)` | `ŝ` the norm's batch z-score × h, clipped to ±1 |
//! | `paa` | `cos(θ + m_i)`, `m_i = m_b + r_i·δm` | PoseFace's Pose-Adaptive ArcFace |
//!
//! **θ + m > π.** `cos(θ + m)` stops decreasing once `θ + m` passes π, which would reward a
//! sample for moving *away* from its class. Wherever a margin is added to the angle
//! (`arcface`, `curricularface`, `magface`, `paa`) the target falls back, for
//! `cos θ ≤ cos(π − m)`, to `cos θ − m·sin m`, the rule of insightface's ArcFace; `combined`
//! falls back, when `m1·θ + m2 > π`, to `cos θ − m3 − m2·sin m2` for `m1 = 1` and to the
//! continuous `cos θ − cos θ_b − 1 − m3` (`θ_b = (π − m2)/m1`) otherwise. SphereFace's `ψ` is monotone
//! by construction and AdaFace clips its angle to `[ε, π − ε]` as its paper does.
//!
//! **Gradient of the margin.** insightface's `arcface_torch` computes the angular margin
//! under `no_grad` (a straight-through estimate: the target's gradient is that of the plain
//! cosine). Our default, [`MarginGradient::Full`], differentiates the margin formula itself,
//! as the ArcFace paper writes it; [`MarginGradient::StraightThrough`] reproduces
//! insightface. Both are tested against PyTorch autograd (`scripts/heads_reference.py`).

use std::f64::consts::PI;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::LossError;
use crate::cross_entropy::cross_entropy;
use crate::pose_margin::PoseMapping;

/// Whether the margin's own derivative takes part in back-propagation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarginGradient {
    /// Differentiate the margin formula (e.g. `∂cos(θ+m)/∂cos θ = sin(θ+m)/sin θ`).
    #[default]
    Full,
    /// Forward with the margin, backward as if the target were the plain cosine:
    /// `target = cos θ + stop_gradient(f(cos θ) − cos θ)` (insightface's `no_grad` margin).
    StraightThrough,
}

macro_rules! head_config {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty = $default:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }
        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }
    };
}

head_config!(
    /// Normalised softmax: `s·cos θ` for every class.
    SoftmaxConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
    }
);
head_config!(
    /// SphereFace's multiplicative angular margin on normalised features.
    SphereFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Angle multiplier `m` (SphereFace-R's 1.5 by default).
        m: f64 = 1.5,
        /// Margin gradient.
        gradient: MarginGradient = MarginGradient::Full,
    }
);
head_config!(
    /// CosFace (large-margin cosine loss).
    CosFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Cosine margin `m`.
        m: f64 = 0.4,
    }
);
head_config!(
    /// ArcFace (additive angular margin).
    ArcFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Angular margin `m` in radians.
        m: f64 = 0.5,
        /// Margin gradient.
        gradient: MarginGradient = MarginGradient::Full,
    }
);
head_config!(
    /// insightface's combined margin `cos(m1·θ + m2) − m3`.
    CombinedConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Multiplicative angular margin.
        m1: f64 = 1.0,
        /// Additive angular margin (radians).
        m2: f64 = 0.3,
        /// Additive cosine margin.
        m3: f64 = 0.2,
        /// Margin gradient.
        gradient: MarginGradient = MarginGradient::Full,
    }
);
head_config!(
    /// CurricularFace: ArcFace target, hard negatives re-weighted by the running `t`.
    CurricularFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Angular margin `m`.
        m: f64 = 0.5,
        /// Weight of the current batch in `t`'s moving average.
        momentum: f64 = 0.01,
    }
);
head_config!(
    /// MagFace: the margin grows with the embedding norm, which a regulariser pulls up.
    MagFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Lower norm bound `l_a`.
        l_a: f64 = 10.0,
        /// Upper norm bound `u_a`.
        u_a: f64 = 110.0,
        /// Margin at `l_a`.
        l_m: f64 = 0.45,
        /// Margin at `u_a`.
        u_m: f64 = 0.8,
        /// Weight `λ_g` of the regulariser `g(a) = a/u_a² + 1/a`.
        lambda_g: f64 = 35.0,
    }
);
head_config!(
    /// AdaFace: angular and additive margins steered by the norm's batch z-score.
    AdaFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Margin `m`.
        m: f64 = 0.4,
        /// Concentration `h` of the norm z-score.
        h: f64 = 0.333,
        /// Weight of the current batch in the norm statistics' moving average.
        t_alpha: f64 = 0.01,
    }
);
head_config!(
    /// PoseFace's Pose-Adaptive ArcFace: `m_i = base_margin + r_i·delta_margin`.
    PaaConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Margin `m_b` of the easiest pose (radians).
        base_margin: f64 = 0.5,
        /// Extra margin `δm` at `r = 1` (radians). The paper gives no value; 0.2 is our
        /// starting point, measured in the ablation study.
        delta_margin: f64 = 0.2,
        /// How Euler angles become `r`.
        mapping: PoseMapping = PoseMapping::default(),
        /// Margin gradient.
        gradient: MarginGradient = MarginGradient::Full,
    }
);

/// AdaFace's `ε`, used for the z-score and the angle clip.
const ADAFACE_EPS: f64 = 1e-3;
/// SphereFace / combined: angles come from `acos` of cosines clamped this far inside ±1.
const ANGLE_EPS: f64 = 1e-7;

/// Which head to train with, and its parameters. In TOML:
/// `[head] kind = "paa"`, `base_margin = 0.5`, `mapping = { kind = "threshold" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum MarginHeadConfig {
    /// Normalised softmax.
    #[serde(rename = "softmax")]
    Softmax(SoftmaxConfig),
    /// SphereFace.
    #[serde(rename = "sphereface")]
    SphereFace(SphereFaceConfig),
    /// CosFace.
    #[serde(rename = "cosface")]
    CosFace(CosFaceConfig),
    /// ArcFace.
    #[serde(rename = "arcface")]
    ArcFace(ArcFaceConfig),
    /// Combined margin.
    #[serde(rename = "combined")]
    Combined(CombinedConfig),
    /// CurricularFace.
    #[serde(rename = "curricularface")]
    CurricularFace(CurricularFaceConfig),
    /// MagFace.
    #[serde(rename = "magface")]
    MagFace(MagFaceConfig),
    /// AdaFace.
    #[serde(rename = "adaface")]
    AdaFace(AdaFaceConfig),
    /// Pose-Adaptive ArcFace.
    #[serde(rename = "paa")]
    Paa(PaaConfig),
}

impl Default for MarginHeadConfig {
    fn default() -> Self {
        Self::ArcFace(ArcFaceConfig::default())
    }
}

impl MarginHeadConfig {
    /// The head's name as written in configs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Softmax(_) => "softmax",
            Self::SphereFace(_) => "sphereface",
            Self::CosFace(_) => "cosface",
            Self::ArcFace(_) => "arcface",
            Self::Combined(_) => "combined",
            Self::CurricularFace(_) => "curricularface",
            Self::MagFace(_) => "magface",
            Self::AdaFace(_) => "adaface",
            Self::Paa(_) => "paa",
        }
    }

    /// The logit scale `s`.
    pub fn scale(&self) -> f64 {
        match self {
            Self::Softmax(c) => c.scale,
            Self::SphereFace(c) => c.scale,
            Self::CosFace(c) => c.scale,
            Self::ArcFace(c) => c.scale,
            Self::Combined(c) => c.scale,
            Self::CurricularFace(c) => c.scale,
            Self::MagFace(c) => c.scale,
            Self::AdaFace(c) => c.scale,
            Self::Paa(c) => c.scale,
        }
    }

    /// Whether the head reads the embeddings' norms.
    pub fn needs_norms(&self) -> bool {
        matches!(self, Self::MagFace(_) | Self::AdaFace(_))
    }

    /// Whether the head reads the samples' Euler angles.
    pub fn needs_pose(&self) -> bool {
        matches!(self, Self::Paa(_))
    }

    /// Checks every parameter's range and names the first one out of it.
    pub fn validate(&self) -> Result<(), LossError> {
        let name = self.name();
        let check = |field: &str, value: f64, ok: bool| {
            if value.is_finite() && ok {
                Ok(())
            } else {
                Err(LossError::Config(format!(
                    "{name}.{field} = {value} is out of range"
                )))
            }
        };
        let s = self.scale();
        check("scale", s, s > 0.0)?;
        let margin = |field: &str, m: f64| check(field, m, (0.0..PI).contains(&m));
        match self {
            Self::Softmax(_) => Ok(()),
            Self::SphereFace(c) => check("m", c.m, c.m >= 1.0),
            Self::CosFace(c) => check("m", c.m, (0.0..2.0).contains(&c.m)),
            Self::ArcFace(c) => margin("m", c.m),
            Self::Combined(c) => {
                check("m1", c.m1, c.m1 > 0.0)?;
                margin("m2", c.m2)?;
                check("m3", c.m3, (0.0..2.0).contains(&c.m3))
            }
            Self::CurricularFace(c) => {
                margin("m", c.m)?;
                check("momentum", c.momentum, (0.0..=1.0).contains(&c.momentum))
            }
            Self::MagFace(c) => {
                check("l_a", c.l_a, c.l_a > 0.0)?;
                check("u_a", c.u_a, c.u_a > c.l_a)?;
                margin("l_m", c.l_m)?;
                margin("u_m", c.u_m)?;
                check("lambda_g", c.lambda_g, c.lambda_g >= 0.0)
            }
            Self::AdaFace(c) => {
                margin("m", c.m)?;
                check("h", c.h, c.h >= 0.0)?;
                check("t_alpha", c.t_alpha, (0.0..=1.0).contains(&c.t_alpha))
            }
            Self::Paa(c) => {
                margin("base_margin", c.base_margin)?;
                check("delta_margin", c.delta_margin, c.delta_margin >= 0.0)?;
                margin("base_margin + delta_margin", c.base_margin + c.delta_margin)?;
                c.mapping.validate()
            }
        }
    }
}

/// The running statistics of the stateful heads, to save in checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadState {
    /// CurricularFace's `t` (starts at 0).
    pub t: f64,
    /// AdaFace's moving mean of the embedding norm (starts at 20).
    pub norm_mean: f64,
    /// AdaFace's moving standard deviation of the norm (starts at 100).
    pub norm_std: f64,
}

impl Default for HeadState {
    fn default() -> Self {
        Self {
            t: 0.0,
            norm_mean: 20.0,
            norm_std: 100.0,
        }
    }
}

/// What a head reads for one batch.
#[derive(Debug, Clone)]
pub struct HeadInput<'a> {
    /// Cosines between normalised embeddings and normalised centres, `[batch, classes]`.
    pub cosine: Tensor<2>,
    /// Class of each sample, `[batch]`, in `0..classes`.
    pub labels: Tensor<1, Int>,
    /// Embedding norms `‖x‖`, `[batch]` (MagFace, AdaFace).
    pub norms: Option<Tensor<1>>,
    /// `[yaw, pitch, roll]` in degrees per sample (PAA).
    pub pose: Option<&'a [[f32; 3]]>,
}

/// What a head produces for one batch.
#[derive(Debug, Clone)]
pub struct HeadOutput {
    /// Scaled logits for the cross-entropy, `[batch, classes]`.
    pub logits: Tensor<2>,
    /// An extra loss term to add (MagFace's `λ_g·mean g(a)`), `[1]`.
    pub regularizer: Option<Tensor<1>>,
    /// The per-sample margins used (PAA and MagFace), for logging.
    pub margins: Option<Vec<f32>>,
}

impl HeadOutput {
    /// Cross-entropy of the logits plus the regulariser, `[1]`.
    pub fn loss(&self, labels: Tensor<1, Int>) -> Tensor<1> {
        let ce = cross_entropy(self.logits.clone(), labels);
        match &self.regularizer {
            Some(r) => ce + r.clone(),
            None => ce,
        }
    }
}

/// A configured head with its running state.
#[derive(Debug, Clone)]
pub struct MarginHead {
    config: MarginHeadConfig,
    state: HeadState,
}

impl MarginHead {
    /// Builds a head after checking its configuration.
    pub fn new(config: MarginHeadConfig) -> Result<Self, LossError> {
        config.validate()?;
        Ok(Self {
            config,
            state: HeadState::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MarginHeadConfig {
        &self.config
    }

    /// The running state (for checkpoints).
    pub fn state(&self) -> HeadState {
        self.state
    }

    /// Restores a saved running state.
    pub fn set_state(&mut self, state: HeadState) {
        self.state = state;
    }

    /// Computes the logits for one training batch, updating the running state of
    /// CurricularFace and AdaFace.
    pub fn forward(&mut self, input: HeadInput<'_>) -> Result<HeadOutput, LossError> {
        let HeadInput {
            cosine,
            labels,
            norms,
            pose,
        } = input;
        let [batch, classes] = cosine.dims();
        let [label_count] = labels.dims();
        if label_count != batch {
            return Err(LossError::Shape(format!(
                "{batch} rows of cosines but {label_count} labels"
            )));
        }
        let device = cosine.device();
        let head = self.config.name();
        let host_labels = labels
            .clone()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .map_err(|e| LossError::Shape(format!("labels: {e:?}")))?;
        if let Some((row, &label)) = host_labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l < 0 || **l as usize >= classes)
        {
            return Err(LossError::Label {
                row,
                label,
                classes,
            });
        }
        let onehot = one_hot(labels.clone(), classes); // [B, C]
        let tc = cosine
            .clone()
            .gather(1, labels.reshape([batch, 1]))
            .reshape([batch]); // [B]
        let mut regularizer = None;
        let mut margins = None;
        let mut out = cosine.clone();
        let target = match &self.config {
            MarginHeadConfig::Softmax(_) => tc,
            MarginHeadConfig::SphereFace(c) => {
                let m = c.m;
                with_gradient(tc, c.gradient, |tc| {
                    let theta = tc.clamp(-1.0 + ANGLE_EPS, 1.0 - ANGLE_EPS).acos();
                    let k = (theta.clone().detach() * (m / PI)).floor();
                    let odd = k.clone() - (k.clone() * 0.5).floor() * 2.0;
                    let sign = odd.neg() * 2.0 + 1.0;
                    sign * (theta * m).cos() - k * 2.0
                })
            }
            MarginHeadConfig::CosFace(c) => tc - c.m,
            MarginHeadConfig::ArcFace(c) => {
                let m = Tensor::full([batch], c.m, &device);
                with_gradient(tc, c.gradient, |tc| arc_target(tc, m))
            }
            MarginHeadConfig::Combined(c) => {
                let (m1, m2, m3) = (c.m1, c.m2, c.m3);
                // Past θ_b = (π − m2)/m1: with m1 = 1, insightface's `cos θ − m3 − m2·sin m2`;
                // otherwise the continuous, monotone `cos θ − cos θ_b − 1 − m3`.
                let shift = if m1 == 1.0 {
                    m3 + m2 * m2.sin()
                } else {
                    ((PI - m2) / m1).cos() + 1.0 + m3
                };
                with_gradient(tc, c.gradient, |tc| {
                    let theta = tc.clone().clamp(-1.0 + ANGLE_EPS, 1.0 - ANGLE_EPS).acos();
                    let past_pi = (theta.clone().detach() * m1 + m2).greater_elem(PI);
                    let main = (theta * m1 + m2).cos() - m3;
                    let fallback = tc - shift;
                    main.mask_where(past_pi, fallback)
                })
            }
            MarginHeadConfig::CurricularFace(c) => {
                let m = Tensor::full([batch], c.m, &device);
                let ctm = arc_target(tc.clone(), m); // [B]
                let mean = tc.detach().mean().into_scalar::<f32>() as f64;
                self.state.t = c.momentum * mean + (1.0 - c.momentum) * self.state.t;
                let threshold = ctm
                    .clone()
                    .detach()
                    .reshape([batch, 1])
                    .expand([batch, classes]);
                let hard = cosine
                    .clone()
                    .detach()
                    .greater(threshold)
                    .bool_and(onehot.clone().bool_not());
                let reweighted = cosine.clone() * (cosine.clone() + self.state.t);
                out = cosine.clone().mask_where(hard, reweighted);
                ctm
            }
            MarginHeadConfig::MagFace(c) => {
                let a = norms.ok_or(LossError::MissingInput {
                    head,
                    what: "the embedding norms",
                })?;
                check_len(&a, batch, "norms")?;
                let a = a.clamp(c.l_a, c.u_a); // [B]
                let m = (a.clone() - c.l_a) * ((c.u_m - c.l_m) / (c.u_a - c.l_a)) + c.l_m;
                margins = Some(
                    m.clone()
                        .into_data()
                        .try_to_vec::<f32>()
                        .unwrap_or_default(),
                );
                let g = a.clone() / (c.u_a * c.u_a) + a.recip();
                regularizer = Some(g.mean() * c.lambda_g);
                arc_target(tc, m)
            }
            MarginHeadConfig::AdaFace(c) => {
                let a = norms.ok_or(LossError::MissingInput {
                    head,
                    what: "the embedding norms",
                })?;
                check_len(&a, batch, "norms")?;
                let n: Vec<f64> = a
                    .detach()
                    .clamp(0.001, 100.0)
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .map_err(|e| LossError::Shape(format!("norms: {e:?}")))?
                    .into_iter()
                    .map(f64::from)
                    .collect();
                let mean = n.iter().sum::<f64>() / n.len() as f64;
                let std = if n.len() > 1 {
                    (n.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n.len() - 1) as f64)
                        .sqrt()
                } else {
                    0.0
                };
                self.state.norm_mean = c.t_alpha * mean + (1.0 - c.t_alpha) * self.state.norm_mean;
                self.state.norm_std = c.t_alpha * std + (1.0 - c.t_alpha) * self.state.norm_std;
                let z: Vec<f32> = n
                    .iter()
                    .map(|v| {
                        ((v - self.state.norm_mean) / (self.state.norm_std + ADAFACE_EPS) * c.h)
                            .clamp(-1.0, 1.0) as f32
                    })
                    .collect();
                let z = Tensor::<1>::from_data(TensorData::new(z, [batch]), &device)
                    .reshape([batch, 1]); // [B, 1]
                let hot = onehot.clone().float(); // [B, C]
                let theta = cosine.clamp(-1.0 + ADAFACE_EPS, 1.0 - ADAFACE_EPS).acos();
                let angular = hot.clone() * (z.clone() * -c.m);
                let theta = (theta + angular).clamp(ADAFACE_EPS, PI - ADAFACE_EPS);
                out = theta.cos() - hot * (z * c.m + c.m);
                return Ok(HeadOutput {
                    logits: out * c.scale,
                    regularizer: None,
                    margins: None,
                });
            }
            MarginHeadConfig::Paa(c) => {
                let pose = pose.ok_or(LossError::MissingInput {
                    head,
                    what: "each sample's Euler angles",
                })?;
                if pose.len() != batch {
                    return Err(LossError::Shape(format!(
                        "{batch} samples but {} poses",
                        pose.len()
                    )));
                }
                let m: Vec<f32> = pose
                    .iter()
                    .map(|&[yaw, pitch, _]| {
                        (c.base_margin + f64::from(c.mapping.ratio(yaw, pitch)) * c.delta_margin)
                            as f32
                    })
                    .collect();
                let margin = Tensor::from_data(TensorData::new(m.clone(), [batch]), &device);
                margins = Some(m);
                with_gradient(tc, c.gradient, |tc| arc_target(tc, margin))
            }
        };
        let target = target.reshape([batch, 1]).expand([batch, classes]);
        let logits = out.mask_where(onehot, target) * self.config.scale();
        Ok(HeadOutput {
            logits,
            regularizer,
            margins,
        })
    }
}

fn check_len(t: &Tensor<1>, batch: usize, what: &str) -> Result<(), LossError> {
    let [n] = t.dims();
    if n == batch {
        Ok(())
    } else {
        Err(LossError::Shape(format!("{batch} samples but {n} {what}")))
    }
}

/// `[batch] → [batch, classes]`, true at each sample's label.
fn one_hot(labels: Tensor<1, Int>, classes: usize) -> Tensor<2, Bool> {
    let [batch] = labels.dims();
    let device: Device = labels.device();
    let ids = Tensor::<1, Int>::arange(0..classes as i64, &device)
        .reshape([1, classes])
        .expand([batch, classes]);
    labels
        .reshape([batch, 1])
        .expand([batch, classes])
        .equal(ids)
}

/// Applies `f` to the target cosines with the chosen gradient rule.
fn with_gradient(
    tc: Tensor<1>,
    gradient: MarginGradient,
    f: impl FnOnce(Tensor<1>) -> Tensor<1>,
) -> Tensor<1> {
    match gradient {
        MarginGradient::Full => f(tc),
        MarginGradient::StraightThrough => {
            let shifted = f(tc.clone().detach());
            tc.clone() + (shifted - tc.detach())
        }
    }
}

/// `cos(θ + m)` from the target cosines, per-sample margins `m` (gradient flows through `m`
/// where it has one), with insightface's fallback `cos θ − m·sin m` past `θ + m = π`.
///
/// `sin θ = √max(1 − cos²θ, 1e-12)`: the floor keeps the gradient finite at `cos θ = ±1`.
fn arc_target(tc: Tensor<1>, m: Tensor<1>) -> Tensor<1> {
    let sin = (tc.clone().powi_scalar(2).neg() + 1.0)
        .clamp_min(1e-12)
        .sqrt();
    let main = tc.clone() * m.clone().cos() - sin * m.clone().sin();
    let fallback = tc.clone() - m.clone() * m.clone().sin();
    let limit = (m.detach().neg() + PI).cos();
    let past_pi = tc.lower_equal(limit);
    main.mask_where(past_pi, fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_names_every_head_and_rejects_unknown_fields() {
        let c: MarginHeadConfig =
            toml::from_str("kind = \"paa\"\nbase_margin = 0.4\nmapping = { kind = \"linear\" }")
                .unwrap();
        let MarginHeadConfig::Paa(paa) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(paa.base_margin, 0.4);
        assert_eq!(paa.delta_margin, 0.2);
        assert_eq!(paa.mapping, PoseMapping::Linear);
        for kind in [
            "softmax",
            "sphereface",
            "cosface",
            "arcface",
            "combined",
            "curricularface",
            "magface",
            "adaface",
            "paa",
        ] {
            let c: MarginHeadConfig = toml::from_str(&format!("kind = \"{kind}\"")).unwrap();
            assert_eq!(c.name(), kind);
            c.validate().unwrap();
        }
        let e = toml::from_str::<MarginHeadConfig>("kind = \"arcface\"\nmargin = 0.5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `margin`"), "{e}");
        let e = toml::from_str::<MarginHeadConfig>("kind = \"arcface\"\ngradient = \"none\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("straight-through"), "{e}");
    }

    #[test]
    fn targets_decrease_monotonically_over_the_whole_angle_range() {
        let device = Device::default();
        let n = 2001;
        let cos: Vec<f32> = (0..n)
            .map(|i| (std::f64::consts::PI * i as f64 / (n - 1) as f64).cos() as f32)
            .collect();
        let cosine = Tensor::<2>::from_data(TensorData::new(cos, [n, 1]), &device);
        let labels = Tensor::<1, Int>::zeros([n], &device);
        for config in [
            MarginHeadConfig::ArcFace(ArcFaceConfig::default()),
            MarginHeadConfig::SphereFace(SphereFaceConfig::default()),
            MarginHeadConfig::Combined(CombinedConfig::default()),
            MarginHeadConfig::Combined(CombinedConfig {
                m1: 0.9,
                m2: 0.4,
                m3: 0.15,
                ..Default::default()
            }),
            MarginHeadConfig::Combined(CombinedConfig {
                m1: 1.5,
                m2: 0.3,
                m3: 0.0,
                ..Default::default()
            }),
        ] {
            let name = format!("{config:?}");
            let out = MarginHead::new(config)
                .unwrap()
                .forward(HeadInput {
                    cosine: cosine.clone(),
                    labels: labels.clone(),
                    norms: None,
                    pose: None,
                })
                .unwrap();
            let t = out.logits.into_data().try_to_vec::<f32>().unwrap();
            for w in t.windows(2) {
                assert!(w[1] <= w[0] + 1e-4, "{name}: {} then {}", w[0], w[1]);
            }
        }
    }

    #[test]
    fn out_of_range_labels_are_errors() {
        let device = Device::default();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 3], [2]), &device);
        let e = MarginHead::new(MarginHeadConfig::default())
            .unwrap()
            .forward(HeadInput {
                cosine: Tensor::<2>::zeros([2, 3], &device),
                labels,
                norms: None,
                pose: None,
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "label 3 at batch row 1 is outside 0..3");
    }

    #[test]
    fn out_of_range_parameters_are_named() {
        let c = MarginHeadConfig::ArcFace(ArcFaceConfig {
            m: 3.5,
            ..Default::default()
        });
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid loss configuration: arcface.m = 3.5 is out of range"
        );
        let c = MarginHeadConfig::MagFace(MagFaceConfig {
            u_a: 5.0,
            ..Default::default()
        });
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("magface.u_a")
        );
    }
}
