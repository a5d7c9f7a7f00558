//! Landmark-only sampling: (68 landmarks, Euler angles, identity and expression
//! parameters) without rasterising, for pretraining the landmark autoencoder on millions of
//! poses.
//!
//! Each sample projects a random identity's surface landmarks through the same camera as
//! the renderer and maps them into the 112×112 ArcFace-aligned frame with the same 5-point
//! alignment, so the points look exactly like the sidecar landmarks of rendered training
//! data. Sample `i` depends only on `(seed, i)`: any range can be drawn in any order.

use poseface_data::align::similarity_transform;
use poseface_data::landmarks::{ARCFACE_TEMPLATE, Point, five_from_68};
use poseface_data::pose::EulerAngles;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::face::FaceShape;
use crate::generate::identity_code;
use crate::identity::{Expression, Identity};
use crate::render::{Camera, project_points};
use crate::scene::{PoseDistribution, PosePreset, stratified, stream_rng};

/// Random stream of landmark samples (identity indices are drawn from it too).
const STREAM: u64 = 30;

/// One landmark sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandmarkSample {
    /// 68 landmarks in the 112×112 aligned frame, iBUG order.
    pub landmarks: Vec<Point>,
    /// Which of them are visible (not hidden by the head).
    pub visible: Vec<bool>,
    /// Head pose.
    pub angles: EulerAngles,
    /// Identity scores ([`crate::identity::IdentityCode::z`]).
    pub identity: Vec<f32>,
    /// Expression.
    pub expression: Expression,
}

/// Draws landmark samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandmarkSampler {
    /// Master seed.
    pub seed: u64,
    /// Identity spread (see [`Identity::new`]).
    pub identity_spread: f32,
    /// Pose distribution (default: uniform yaw, pitch ±25°, roll ±15°).
    pub pose: PoseDistribution,
    /// Expression strength `0..=1`.
    pub expression: f32,
}

impl Default for LandmarkSampler {
    fn default() -> Self {
        Self {
            seed: 0,
            identity_spread: 1.0,
            pose: PoseDistribution {
                preset: PosePreset::Uniform,
                max_pitch: 25.0,
                max_roll: 15.0,
            },
            expression: 0.5,
        }
    }
}

impl LandmarkSampler {
    /// Sample `index`.
    pub fn sample(&self, index: u64) -> LandmarkSample {
        let mut rng = stream_rng(self.seed, STREAM, index);
        let code = identity_code(self.seed ^ 0x5EED_1A4D, index);
        let shape = FaceShape::new(&Identity::new(&code, self.identity_spread));
        let angles = self.pose.sample(stratified(index), &mut rng);
        let expression = Expression::sample(&mut rng, self.expression);
        let lm3 = shape.landmarks(&expression);
        let camera = Camera::loose_crop(160, 42.0);
        let projected = project_points(&lm3, angles, &camera);
        let pts: Vec<Point> = projected.iter().map(|p| [p[0], p[1]]).collect();
        let five = five_from_68(&pts).expect("68 points");
        let m = similarity_transform(&five, &ARCFACE_TEMPLATE).expect("non-degenerate points");
        let landmarks = m.apply_points(&pts);
        let visible = shape.landmark_visibility(&expression, angles);
        LandmarkSample {
            landmarks,
            visible,
            angles,
            identity: code.z,
            expression,
        }
    }

    /// Samples `start .. start + count`, in parallel.
    pub fn batch(&self, start: u64, count: usize) -> Vec<LandmarkSample> {
        (start..start + count as u64)
            .into_par_iter()
            .map(|i| self.sample(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_aligned_reproducible_and_cover_the_pose_range() {
        let s = LandmarkSampler::default();
        let batch = s.batch(0, 400);
        assert_eq!(batch[17], s.sample(17));
        let yaws: Vec<f32> = batch.iter().map(|b| b.angles.yaw).collect();
        assert!(yaws.iter().any(|&y| y < -80.0) && yaws.iter().any(|&y| y > 80.0));
        for b in &batch {
            // Eye centres and mouth corners land near the template (alignment residuals).
            let five = five_from_68(&b.landmarks).unwrap();
            let err: f32 = five
                .iter()
                .zip(&ARCFACE_TEMPLATE)
                .map(|(p, t)| ((p[0] - t[0]).powi(2) + (p[1] - t[1]).powi(2)).sqrt())
                .sum::<f32>()
                / 5.0;
            // The template is frontal: the further the yaw, the worse a similarity fits it.
            if b.angles.yaw.abs() < 30.0 && b.angles.pitch.abs() < 15.0 {
                assert!(
                    err < 5.0,
                    "mean 5-point residual {err} at yaw {}",
                    b.angles.yaw
                );
            }
            // At large yaw the far eye's outer corner is hidden.
            // Positive yaw turns the image-right half of the face (the subject's left)
            // away from the camera.
            if b.angles.yaw > 75.0 {
                assert!(
                    !b.visible[45] && b.visible[36],
                    "yaw {} {:?}",
                    b.angles.yaw,
                    b.visible
                );
            }
            if b.angles.yaw < -75.0 {
                assert!(
                    !b.visible[36] && b.visible[45],
                    "yaw {} {:?}",
                    b.angles.yaw,
                    b.visible
                );
            }
            if b.angles.yaw.abs() < 20.0 && b.angles.pitch.abs() < 20.0 {
                assert!(b.visible[17..].iter().all(|&v| v), "yaw {}", b.angles.yaw);
            }
        }
    }
}
