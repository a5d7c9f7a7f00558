//! The `[method]` section: what sits between the backbone and the margin head.
//!
//! - `plain`: the backbone's output is the identity embedding (ArcFace and its peers);
//! - `poseface`: PoseFace's disentangled head. The backbone feature `f` is split into
//!   `z_id = W_id f`, which the margin head trains and evaluation uses, and `z_p = W_p f`,
//!   pulled onto the frozen landmark autoencoder's code of the face's landmarks
//!   (`L_pose`), with the two projections kept orthogonal (`L_orth`):
//!   `L = L_margin + λ_orth·L_orth + λ_pose·L_pose`;
//! - `multitask`: a p-CNN-style baseline. A linear side head regresses (yaw, pitch, roll)/90°
//!   from the backbone embedding, `L = L_margin + λ_pose·‖â − a‖²`: the embedding is asked to
//!   encode pose, the opposite of disentanglement. Inference uses the embedding alone;
//! - `dream`: DREAM's yaw-gated residual `e = f + Y(yaw)·R(f)` on the embedding, the gate
//!   driven by the known yaw in training and by a linear yaw estimate (trained with
//!   `λ_pose·‖â − a‖²`) at inference;
//! - `pams`: PAMs-style pose-aware heads. One linear head per |yaw| group (split at
//!   `splits`, default 30° and 60°: frontal, half-profile, profile) on the shared embedding;
//!   a face trains through its group's head, and at test time the unit-normalised outputs of
//!   all heads are concatenated (scaled by 1/√K), so that a pair's cosine is the mean of the
//!   heads' cosines: PAMs' score fusion.
//!
//! Without poses in the training data (no sidecar), every method but `plain` is switched off
//! with a warning.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The training method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum MethodConfig {
    /// The backbone embedding is the identity embedding.
    #[default]
    #[serde(rename = "plain")]
    Plain,
    /// PoseFace's identity/pose split with orthogonality and landmark supervision.
    #[serde(rename = "poseface")]
    PoseFace(PoseFaceConfig),
    /// A pose regression side head trained beside the identity loss (p-CNN-style).
    #[serde(rename = "multitask")]
    Multitask(PoseRegressionConfig),
    /// DREAM's yaw-gated residual on the embedding.
    #[serde(rename = "dream")]
    Dream(PoseRegressionConfig),
    /// PAMs-style pose-aware heads with score fusion.
    #[serde(rename = "pams")]
    Pams(PamsConfig),
}

/// PAMs-style pose-aware heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PamsConfig {
    /// |yaw| limits in degrees between the pose groups, increasing; one head more than
    /// limits.
    #[serde(default = "default_splits")]
    pub splits: Vec<f32>,
}

fn default_splits() -> Vec<f32> {
    vec![30.0, 60.0]
}

/// The pose regression term of `multitask` and `dream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoseRegressionConfig {
    /// Weight of the angle regression loss (angles in units of 90°).
    #[serde(default = "one")]
    pub lambda_pose: f64,
}

/// What the pose branch is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PoseTarget {
    /// `‖z_p − E(l)‖²`: the pose code must equal the frozen encoder's code of the landmarks.
    #[default]
    Encoder,
    /// `‖D(z_p) − l̂‖²`: the frozen decoder must turn the pose code into the normalised
    /// landmarks.
    Decoder,
}

/// PoseFace's disentanglement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoseFaceConfig {
    /// The pretrained landmark autoencoder (`poseface lae train --out FILE`); its latent size
    /// is the pose code's size.
    pub lae: PathBuf,
    /// Size of the identity embedding `z_id` (default: `model.embedding_size`).
    #[serde(default)]
    pub identity_size: Option<usize>,
    /// Weight of `L_orth`.
    #[serde(default = "one")]
    pub lambda_orth: f64,
    /// Weight of `L_pose`.
    #[serde(default = "one")]
    pub lambda_pose: f64,
    /// Encoder-code or decoder-landmark supervision.
    #[serde(default)]
    pub pose_target: PoseTarget,
}

fn one() -> f64 {
    1.0
}

impl MethodConfig {
    /// Short name for messages and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::PoseFace(_) => "poseface",
            Self::Multitask(_) => "multitask",
            Self::Dream(_) => "dream",
            Self::Pams(_) => "pams",
        }
    }

    /// Range checks.
    pub fn validate(&self) -> Result<(), String> {
        if let Self::Pams(p) = self {
            let increasing = p.splits.windows(2).all(|w| w[0] < w[1]);
            if !increasing || p.splits.iter().any(|s| !(*s > 0.0 && *s < 90.0)) {
                return Err(format!(
                    "method.splits = {:?} must increase strictly within (0°, 90°)",
                    p.splits
                ));
            }
        }
        if let Self::PoseFace(p) = self {
            for (key, v) in [
                ("method.lambda_orth", p.lambda_orth),
                ("method.lambda_pose", p.lambda_pose),
            ] {
                if !(v >= 0.0 && v.is_finite()) {
                    return Err(format!("{key} = {v} must be finite and ≥ 0"));
                }
            }
            if p.identity_size == Some(0) {
                return Err("method.identity_size must be ≥ 1".into());
            }
        }
        if let Self::Multitask(p) | Self::Dream(p) = self
            && !(p.lambda_pose >= 0.0 && p.lambda_pose.is_finite())
        {
            return Err(format!(
                "method.lambda_pose = {} must be finite and ≥ 0",
                p.lambda_pose
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_methods_and_rejects_unknown_keys() {
        let plain: MethodConfig = toml::from_str("kind = \"plain\"").unwrap();
        assert_eq!(plain, MethodConfig::Plain);
        let p: MethodConfig =
            toml::from_str("kind = \"poseface\"\nlae = \"l.safetensors\"\nlambda_pose = 0.5\npose_target = \"decoder\"")
                .unwrap();
        let MethodConfig::PoseFace(p) = p else {
            panic!()
        };
        assert_eq!((p.lambda_orth, p.lambda_pose), (1.0, 0.5));
        assert_eq!(p.pose_target, PoseTarget::Decoder);
        let pams: MethodConfig = toml::from_str("kind = \"pams\"").unwrap();
        assert_eq!(
            pams,
            MethodConfig::Pams(PamsConfig {
                splits: vec![30.0, 60.0]
            })
        );
        let bad: MethodConfig = toml::from_str("kind = \"pams\"\nsplits = [60.0, 30.0]").unwrap();
        assert!(bad.validate().unwrap_err().contains("must increase"));
        assert!(
            toml::from_str::<MethodConfig>("kind = \"poseface\"\nlae = \"x\"\nlambda = 1").is_err()
        );
        assert!(toml::from_str::<MethodConfig>("kind = \"dreams\"").is_err());
        let d: MethodConfig = toml::from_str("kind = \"dream\"").unwrap();
        assert_eq!(
            d,
            MethodConfig::Dream(PoseRegressionConfig { lambda_pose: 1.0 })
        );
        let m: MethodConfig = toml::from_str("kind = \"multitask\"\nlambda_pose = 0.1").unwrap();
        assert_eq!(m.name(), "multitask");
        assert!(m.validate().is_ok());
    }
}
