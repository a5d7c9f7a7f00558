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
//! | `combined` | `cos(m1·θ + m2) − m3` | the ArcFace paper's combined margin |
//! | `curricularface` | `cos(θ + m)`; hard negatives `cos θ_j (t + cos θ_j)` | `t` follows the batch's mean target cosine |
//! | `magface` | `cos(θ + m(a))`, `m(a)` linear in the clamped norm `a` | adds `λ_g·g(a)`, `g(a) = a/u_a² + 1/a` |
//! | `adaface` | `cos(θ − m·ŝ) − (m + m·ŝ)` | `ŝ` the norm's batch z-score × h, clipped to ±1 |
//! | `paa` | `cos(θ + m_i)`, `m_i = m_b + r_i·δm` | PoseFace's Pose-Adaptive ArcFace |
//!
//! **Gradient of the margin, and θ + m > π.** `cos(θ + m)` stops decreasing once `θ + m`
//! passes π, which would reward a sample for moving *away* from its class if the formula
//! were differentiated there. Two behaviours of insightface's `arcface_torch` are offered
//! ([`MarginGradient`]):
//! - [`MarginGradient::Full`] (our default) differentiates the margin formula, as the ArcFace
//!   paper writes it, and wherever a margin is added to the angle (`arcface`,
//!   `curricularface`, `magface`, `paa`) falls back, for `cos θ ≤ cos(π − m)`, to
//!   `cos θ − m·sin m`: exactly the fallback form of `arcface_torch`'s `ArcFace` class, the one
//!   its `CombinedMarginLoss` replaced. `combined` falls
//!   back, when `m1·θ + m2 > π`, to `cos θ − m3 − m2·sin m2` for `m1 = 1` and to the
//!   continuous `cos θ − cos θ_b − 1 − m3` (`θ_b = (π − m2)/m1`) otherwise; this fallback is
//!   ours (insightface's MXNet code has none), chosen to keep the target monotone.
//! - [`MarginGradient::StraightThrough`] computes the target `cos(acos(cos θ) + m)` without
//!   a gradient and without a fallback, and back-propagates as if it were the plain cosine:
//!   exactly `arcface_torch`'s current `CombinedMarginLoss` for `arcface` (and `paa`, its
//!   per-sample extension).
//!
//! SphereFace's `ψ` is monotone by construction and AdaFace clips its angle to
//! `[ε, π − ε]` as its paper does. `arcface`, `cosface`, `combined` and `paa` also take
//! `arcface_torch`'s `interclass_filtering_threshold`. All are tested against PyTorch
//! autograd (`scripts/heads_reference.py`), whose cases follow `arcface_torch`'s classes.

use std::f64::consts::PI;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

pub use crate::head_config::*;

use crate::LossError;
use crate::cross_entropy::cross_entropy;

/// AdaFace's `ε`, used for the z-score and the angle clip.
const ADAFACE_EPS: f64 = 1e-3;
/// SphereFace / combined: angles come from `acos` of cosines clamped this far inside ±1.
const ANGLE_EPS: f64 = 1e-7;

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
        if let MarginHeadConfig::Paa(paa) = &config
            && paa.mapping.needs_histogram()
        {
            return Err(LossError::Config(
                "pose mapping: a frequency mapping needs its histogram before the head is \
                 built (PoseMapping::with_histogram)"
                    .into(),
            ));
        }
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
        let filter = self.config.interclass_filtering_threshold();
        let mut out = if filter > 0.0 {
            // Non-target cosines above the threshold count as 0, without gradient.
            let dirty = cosine
                .clone()
                .detach()
                .greater_elem(filter)
                .bool_and(onehot.clone().bool_not());
            cosine.clone().mask_fill(dirty, 0.0)
        } else {
            cosine.clone()
        };
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
                margin_target(tc, m, c.gradient)
            }
            MarginHeadConfig::Combined(c) => {
                let (m1, m2, m3) = (c.m1, c.m2, c.m3);
                match c.gradient {
                    MarginGradient::Full => {
                        // Past θ_b = (π − m2)/m1 (our fallback, see the module docs): with
                        // m1 = 1, `cos θ − m3 − m2·sin m2`; otherwise the continuous
                        // `cos θ − cos θ_b − 1 − m3`.
                        let shift = if m1 == 1.0 {
                            m3 + m2 * m2.sin()
                        } else {
                            ((PI - m2) / m1).cos() + 1.0 + m3
                        };
                        let theta = tc.clone().clamp(-1.0 + ANGLE_EPS, 1.0 - ANGLE_EPS).acos();
                        let past_pi = (theta.clone().detach() * m1 + m2).greater_elem(PI);
                        let main = (theta * m1 + m2).cos() - m3;
                        let fallback = tc - shift;
                        main.mask_where(past_pi, fallback)
                    }
                    MarginGradient::StraightThrough => {
                        straight_through(tc, |tc| (tc.clamp(-1.0, 1.0).acos() * m1 + m2).cos() - m3)
                    }
                }
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
                        .convert::<f32>()
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
                margin_target(tc, margin, c.gradient)
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
        MarginGradient::StraightThrough => straight_through(tc, f),
    }
}

/// `f(cos θ)` forward, the plain cosine's gradient backward.
fn straight_through(tc: Tensor<1>, f: impl FnOnce(Tensor<1>) -> Tensor<1>) -> Tensor<1> {
    let shifted = f(tc.clone().detach());
    tc.clone() + (shifted - tc.detach())
}

/// The additive angular margin `m` (per sample) on the target cosines: with the full
/// gradient, [`arc_target`] (the fallback past π included); straight through,
/// `cos(acos(cos θ) + m)` as `arcface_torch` computes it under `no_grad`, no fallback.
fn margin_target(tc: Tensor<1>, m: Tensor<1>, gradient: MarginGradient) -> Tensor<1> {
    match gradient {
        MarginGradient::Full => arc_target(tc, m),
        MarginGradient::StraightThrough => {
            straight_through(tc, |tc| (tc.clamp(-1.0, 1.0).acos() + m).cos())
        }
    }
}

/// `cos(θ + m)` from the target cosines, per-sample margins `m` (gradient flows through `m`
/// where it has one), with the fallback `cos θ − m·sin m` past `θ + m = π` of
/// `arcface_torch`'s `ArcFace` class in its fallback form.
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
}
