//! A pose regression side head on the shared feature: `f ↦ (yaw, pitch, roll) / 90°`.
//!
//! The p-CNN-style multi-task baseline trains it beside the identity loss (the opposite of
//! disentanglement: the feature is asked to *encode* pose), and DREAM uses it to estimate the
//! yaw that gates its residual when no external pose estimator is at hand.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Angles are regressed in units of this many degrees.
pub const ANGLE_UNIT: f32 = 90.0;

/// Size of the regressor.
#[derive(Config, Debug, PartialEq)]
pub struct PoseRegressorConfig {
    /// Size of the feature it reads.
    pub feature_size: usize,
}

impl PoseRegressorConfig {
    /// A linear map to the three angles.
    pub fn init(&self, device: &Device) -> PoseRegressor {
        PoseRegressor {
            linear: LinearConfig::new(self.feature_size, 3).init(device),
        }
    }
}

/// Linear pose regressor.
#[derive(Module, Debug)]
pub struct PoseRegressor {
    /// `[feature, 3]`.
    pub linear: Linear,
}

impl PoseRegressor {
    /// Predicted angles in units of [`ANGLE_UNIT`] degrees (yaw, pitch, roll).
    ///
    /// # Shapes
    /// - `feature`: `[batch, feature_size]`
    /// - output: `[batch, 3]`
    pub fn forward(&self, feature: Tensor<2>) -> Tensor<2> {
        self.linear.forward(feature)
    }

    /// Predicted yaw in degrees.
    ///
    /// # Shapes
    /// - `feature`: `[batch, feature_size]`
    /// - output: `[batch, 1]`
    pub fn yaw_degrees(&self, feature: Tensor<2>) -> Tensor<2> {
        self.forward(feature).narrow(1, 0, 1) * ANGLE_UNIT
    }
}
