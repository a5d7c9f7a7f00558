//! What a synthetic dataset contains: presets and the full, serialisable configuration.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::SynthError;
use crate::scene::{PoseDistribution, Variation};

/// Dataset sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Seconds: for tests (24 identities × 6 images, 200-pair sets).
    Tiny,
    /// The CPU default: 1,000 identities × 20 images, 6,000-pair sets.
    Small,
    /// 10,000 identities × 30 images, 6,000-pair sets.
    Medium,
}

impl FromStr for Preset {
    type Err = SynthError;
    fn from_str(s: &str) -> Result<Self, SynthError> {
        match s {
            "tiny" => Ok(Self::Tiny),
            "small" => Ok(Self::Small),
            "medium" => Ok(Self::Medium),
            _ => Err(SynthError::Invalid(format!(
                "unknown preset {s:?}: expected tiny, small or medium"
            ))),
        }
    }
}

/// The verification pair sets (`synth_cplfw.bin`, `synth_lfw.bin`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairSetConfig {
    /// Number of folds (contiguous in the file).
    pub folds: usize,
    /// Pairs per fold, half positive (positives first within each fold).
    pub pairs_per_fold: usize,
    /// Evaluation identities, split evenly between the folds (disjoint from training).
    pub identities: usize,
    /// Minimum |yaw difference| of a cross-pose positive pair, degrees.
    pub min_yaw_difference: f32,
    /// Share of the cross-pose set's pairs drawn cross-pose (the rest: any two poses).
    pub cross_pose_share: f32,
}

/// The IJB-style template set (`ijb/`, IJB-C file layout).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IjbConfig {
    /// Identities (disjoint from training and from the pair sets).
    pub identities: usize,
    /// Templates per identity.
    pub templates_per_identity: usize,
    /// Media per template: 1 to this many.
    pub max_media: usize,
    /// Images per media: 1 to this many.
    pub max_images_per_media: usize,
    /// Impostor pairs per template.
    pub impostors_per_template: usize,
}

/// Everything that determines a synthetic dataset; with the same values, the output is the
/// same to the byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    /// Master seed.
    pub seed: u64,
    /// Training identities.
    pub identities: usize,
    /// Images per training identity.
    pub images_per_identity: usize,
    /// How far apart identities are (1 = the population spread; smaller is harder).
    pub identity_spread: f32,
    /// Pose distribution of the training set.
    pub pose: PoseDistribution,
    /// Expression, lighting, degradation and framing.
    pub variation: Variation,
    /// Verification pair sets.
    pub pairs: PairSetConfig,
    /// IJB-style set.
    pub ijb: IjbConfig,
    /// Mesh columns and rows.
    pub mesh: [usize; 2],
}

impl SynthConfig {
    /// The configuration of a preset with seed `seed`.
    pub fn preset(preset: Preset, seed: u64) -> Self {
        let (identities, images, folds_pairs, eval_ids, ijb_ids) = match preset {
            Preset::Tiny => (24, 6, 20, 60, 12),
            Preset::Small => (1000, 20, 600, 1000, 200),
            Preset::Medium => (10_000, 30, 600, 2000, 1000),
        };
        Self {
            seed,
            identities,
            images_per_identity: images,
            identity_spread: 1.0,
            pose: PoseDistribution::default(),
            variation: Variation::default(),
            pairs: PairSetConfig {
                folds: 10,
                pairs_per_fold: folds_pairs,
                identities: eval_ids,
                min_yaw_difference: 30.0,
                cross_pose_share: 0.9,
            },
            ijb: IjbConfig {
                identities: ijb_ids,
                templates_per_identity: 2,
                max_media: 3,
                max_images_per_media: 3,
                impostors_per_template: 4,
            },
            mesh: [64, 72],
        }
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::Invalid(m));
        if self.identities < 2 || self.images_per_identity < 1 {
            return bad(format!(
                "need at least 2 identities and 1 image each, got {} × {}",
                self.identities, self.images_per_identity
            ));
        }
        // Labels are u32 in RecordIO and image indices must not overflow.
        let images = (self.identities as u64).checked_mul(self.images_per_identity as u64);
        if self.identities as u64 >= crate::generate::EVAL_BASE
            || images.is_none_or(|n| n > u32::MAX as u64)
        {
            return bad(format!(
                "too many images: {} identities × {}",
                self.identities, self.images_per_identity
            ));
        }
        if !(self.identity_spread > 0.0 && self.identity_spread <= 3.0) {
            return bad(format!(
                "identity_spread must be in (0, 3], got {}",
                self.identity_spread
            ));
        }
        let p = &self.pairs;
        if p.folds < 2 || p.pairs_per_fold < 2 || !p.pairs_per_fold.is_multiple_of(2) {
            return bad(format!(
                "pair sets need ≥ 2 folds of an even number ≥ 2 of pairs, got {} × {}",
                p.folds, p.pairs_per_fold
            ));
        }
        if p.identities < 2 * p.folds {
            return bad(format!(
                "pair sets need at least 2 identities per fold, got {} for {} folds",
                p.identities, p.folds
            ));
        }
        if !(0.0..=90.0).contains(&p.min_yaw_difference)
            || !(0.0..=1.0).contains(&p.cross_pose_share)
        {
            return bad(
                "min_yaw_difference must be in 0..=90 and cross_pose_share in 0..=1".into(),
            );
        }
        let j = &self.ijb;
        if j.identities < 2
            || j.templates_per_identity < 2
            || j.max_media < 1
            || j.max_images_per_media < 1
        {
            return bad(
                "the IJB set needs ≥ 2 identities, ≥ 2 templates each, ≥ 1 media and image".into(),
            );
        }
        if self.mesh[0] < 16 || self.mesh[1] < 16 || self.mesh[0] > 1024 || self.mesh[1] > 1024 {
            return bad(format!(
                "mesh must be 16..=1024 each way, got {:?}",
                self.mesh
            ));
        }
        if !(0.0..=90.0).contains(&self.pose.max_pitch)
            || !(0.0..=90.0).contains(&self.pose.max_roll)
        {
            return bad("max_pitch and max_roll must be in 0..=90".into());
        }
        self.variation.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_bad_values_are_named() {
        for p in [Preset::Tiny, Preset::Small, Preset::Medium] {
            SynthConfig::preset(p, 0).validate().unwrap();
        }
        let mut c = SynthConfig::preset(Preset::Tiny, 0);
        c.pairs.pairs_per_fold = 7;
        assert!(c.validate().unwrap_err().to_string().contains("even"));
        let mut c = SynthConfig::preset(Preset::Tiny, 0);
        c.variation.lighting = 2.0;
        assert!(c.validate().unwrap_err().to_string().contains("lighting"));
        assert!("huge".parse::<Preset>().is_err());
        let mut c = SynthConfig::preset(Preset::Tiny, 0);
        c.images_per_identity = usize::MAX;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("too many images")
        );
        // The configuration round-trips through JSON, and unknown fields are refused.
        let c = SynthConfig::preset(Preset::Small, 3);
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<SynthConfig>(&s).unwrap(), c);
        let bad = s.replacen("\"seed\"", "\"sede\"", 1);
        assert!(serde_json::from_str::<SynthConfig>(&bad).is_err());
    }
}
