//! DREAM (Cao et al., CVPR 2018, "Pose-Robust Face Recognition via Deep Residual Equivariant
//! Mapping"): a yaw-gated residual added to the embedding, `e = f + Y(yaw)·R(f)` with
//! `Y(yaw) = sigmoid(10·(|yaw|/45° − 1))` (about 0 for frontal faces, ½ at 45°, about 1 in
//! profile) and `R` two fully connected layers with a PReLU between them.
//!
//! The paper gates with yaw from an external 3D pose estimator. Here the yaw comes from a
//! linear regressor on the same feature ([`PoseRegressor`]), trained on the sidecar's yaw
//! beside the identity loss; during training the gate uses the known yaw, at inference the
//! estimate, so an exported DREAM model embeds images alone.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};

use crate::pose_regressor::{PoseRegressor, PoseRegressorConfig};
use crate::prelu::prelu;

/// Yaw (degrees) at which the gate is ½.
pub const GATE_YAW: f32 = 45.0;
/// Steepness of the gate.
pub const GATE_SLOPE: f32 = 10.0;

/// Size of the DREAM block.
#[derive(Config, Debug, PartialEq)]
pub struct DreamConfig {
    /// Size of the embedding it maps.
    pub embedding_size: usize,
}

impl DreamConfig {
    /// The residual branch (PyTorch's default `Linear` initialisation, PReLU slope 0.25) and
    /// the yaw regressor.
    pub fn init(&self, device: &Device) -> Dream {
        let e = self.embedding_size;
        Dream {
            fc1: LinearConfig::new(e, e).init(device),
            prelu: PReluConfig::new().with_num_parameters(e).init(device),
            fc2: LinearConfig::new(e, e).init(device),
            yaw: PoseRegressorConfig::new(e).init(device),
        }
    }
}

/// The residual equivariant mapping and its yaw estimator.
#[derive(Module, Debug)]
pub struct Dream {
    /// First layer of `R`.
    pub fc1: Linear,
    /// Activation of `R`.
    pub prelu: PRelu,
    /// Second layer of `R`.
    pub fc2: Linear,
    /// Yaw estimator on the input embedding.
    pub yaw: PoseRegressor,
}

/// `Y(yaw) = sigmoid(10·(|yaw|/45 − 1))`, elementwise on degrees.
pub fn yaw_gate(yaw_degrees: Tensor<2>) -> Tensor<2> {
    sigmoid((yaw_degrees.abs() / GATE_YAW - 1.0) * GATE_SLOPE)
}

impl Dream {
    /// `f + Y(yaw)·R(f)` with the given yaw.
    ///
    /// # Shapes
    /// - `embedding`: `[batch, E]`, `yaw_degrees`: `[batch, 1]`
    /// - output: `[batch, E]`
    pub fn forward_with_yaw(&self, embedding: Tensor<2>, yaw_degrees: Tensor<2>) -> Tensor<2> {
        let residual = self.fc2.forward(prelu(
            self.fc1.forward(embedding.clone()),
            self.prelu.alpha.val(),
        ));
        embedding + residual * yaw_gate(yaw_degrees)
    }

    /// `f + Y(ŷaw)·R(f)` with the yaw estimated from the embedding itself (inference).
    ///
    /// # Shapes
    /// - `embedding`: `[batch, E]`
    /// - output: `[batch, E]`
    pub fn forward(&self, embedding: Tensor<2>) -> Tensor<2> {
        let yaw = self.yaw.yaw_degrees(embedding.clone());
        self.forward_with_yaw(embedding, yaw)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    #[test]
    fn the_gate_follows_its_formula() {
        let device = Device::default();
        let yaw = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 45.0, -90.0, 30.0], [4, 1]),
            &device,
        );
        let got = yaw_gate(yaw).into_data().try_to_vec::<f32>().unwrap();
        // Hand values: sigmoid(-10), sigmoid(0), sigmoid(10), sigmoid(10·(30/45 − 1)).
        let s = |x: f32| 1.0 / (1.0 + (-x).exp());
        let want = [s(-10.0), 0.5, s(10.0), s(10.0 * (30.0 / 45.0 - 1.0))];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn frontal_faces_pass_almost_unchanged() {
        let device = Device::default();
        let dream = DreamConfig::new(8).init(&device);
        let f = Tensor::<2>::random([3, 8], burn::tensor::Distribution::Default, &device);
        let frontal = Tensor::<2>::zeros([3, 1], &device);
        let profile = Tensor::<2>::ones([3, 1], &device) * 90.0;
        let d0 = (dream.forward_with_yaw(f.clone(), frontal) - f.clone())
            .abs()
            .max()
            .into_scalar::<f32>();
        let d1 = (dream.forward_with_yaw(f.clone(), profile) - f.clone())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(d0 < 1e-3 * d1, "frontal change {d0}, profile change {d1}");
        assert_eq!(dream.forward(f).dims(), [3, 8]);
    }
}
