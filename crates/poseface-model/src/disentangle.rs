//! PoseFace's disentangled head: two linear maps split the backbone feature `f` into an
//! identity embedding `z_id = W_id f` and a pose code `z_p = W_p f`.
//!
//! Training keeps the two subspaces orthogonal (`poseface_loss::orthogonality`) and pulls
//! `z_p` onto the landmark autoencoder's code; at test time only `z_id` is used. Because the
//! backbone ends in a linear layer and a batch norm, which are affine at inference, `W_id`
//! folds into them exactly ([`DisentangledHead::fold_into`]): the exported model is an
//! ordinary backbone whose embedding is `z_id`, loadable by any tool that loads the
//! backbone, with the pose branch dropped.
//!
//! burn stores a `Linear` weight as `[in, out]`; the paper's `W_id` (`identity × feature`)
//! is its transpose, so a *row* of `W_id` is a *column* of [`DisentangledHead::w_id`]'s
//! weight.

use burn::config::Config;
use burn::module::{Module, Param, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::backbone::Backbone;

/// Sizes of the two projections.
#[derive(Config, Debug, PartialEq)]
pub struct DisentangledHeadConfig {
    /// Size of the backbone feature `f`.
    pub feature_size: usize,
    /// Size of the identity embedding `z_id`.
    pub identity_size: usize,
    /// Size of the pose code `z_p` (the landmark autoencoder's latent size).
    pub pose_size: usize,
}

impl DisentangledHeadConfig {
    /// Builds both projections without bias, with PyTorch's default `Linear` initialisation.
    pub fn init(&self, device: &Device) -> DisentangledHead {
        let linear = |out| {
            LinearConfig::new(self.feature_size, out)
                .with_bias(false)
                .init(device)
        };
        DisentangledHead {
            w_id: linear(self.identity_size),
            w_p: linear(self.pose_size),
        }
    }
}

/// The identity and pose projections.
#[derive(Module, Debug)]
pub struct DisentangledHead {
    /// Identity projection, weight `[feature, identity]`.
    pub w_id: Linear,
    /// Pose projection, weight `[feature, pose]`.
    pub w_p: Linear,
}

impl DisentangledHead {
    /// Splits the feature.
    ///
    /// # Shapes
    /// - `feature`: `[batch, feature_size]`
    /// - output: (`[batch, identity_size]`, `[batch, pose_size]`)
    pub fn forward(&self, feature: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        (
            self.w_id.forward(feature.clone()),
            self.w_p.forward(feature),
        )
    }

    /// Size of `z_id`.
    pub fn identity_size(&self) -> usize {
        self.w_id.weight.dims()[1]
    }

    /// Size of `z_p`.
    pub fn pose_size(&self) -> usize {
        self.w_p.weight.dims()[1]
    }

    /// The backbone with `W_id` folded into its final linear layer and batch norm: its
    /// output is `z_id` (up to float rounding) and its embedding size `identity_size`.
    /// Meant for inference weights: the batch norm's running statistics are used.
    pub fn fold_into(&self, backbone: Backbone) -> Backbone {
        let w = self.w_id.weight.val(); // [E, I]
        match backbone {
            Backbone::IResNet(mut net) => {
                let (scale, shift) = bn_affine(&net.features); // [E], [E]
                // z = (x·A + b)·diag(scale)·W + shift·W
                let a = net.fc.weight.val(); // [K, E]
                let new_a = (a * scale.clone().unsqueeze_dim(0)).matmul(w.clone()); // [K, I]
                net.fc.weight = Param::from_tensor(new_a);
                if let Some(b) = net.fc.bias.take() {
                    let b = (b.val() * scale).unsqueeze_dim::<2>(0).matmul(w.clone());
                    net.fc.bias = Some(Param::from_tensor(b.squeeze_dim(0)));
                }
                net.features = identity_bn(&net.features, shift.unsqueeze_dim(0).matmul(w));
                Backbone::IResNet(net)
            }
            Backbone::MobileFaceNet(mut net) => {
                let (scale, shift) = bn_affine(&net.embedding.bn);
                let conv = net.embedding.conv.weight.val(); // [E, C, 1, 1]
                let [e, c, kh, kw] = conv.dims();
                let i = w.dims()[1];
                // z = diag(scale)·conv·h projected by Wᵀ, plus shift·W.
                let folded = w
                    .clone()
                    .transpose()
                    .matmul(conv.reshape([e, c * kh * kw]) * scale.unsqueeze_dim(1))
                    .reshape([i, c, kh, kw]);
                net.embedding.conv.weight = Param::from_tensor(folded);
                net.embedding.bn = identity_bn(&net.embedding.bn, shift.unsqueeze_dim(0).matmul(w));
                Backbone::MobileFaceNet(net)
            }
        }
    }
}

/// A batch norm's inference map `x ↦ x·scale + shift`.
fn bn_affine(bn: &BatchNorm) -> (Tensor<1>, Tensor<1>) {
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    (scale, shift)
}

/// A batch norm that adds `shift` (`[1, I]`) at inference and is otherwise the identity.
fn identity_bn(like: &BatchNorm, shift: Tensor<2>) -> BatchNorm {
    let shift: Tensor<1> = shift.squeeze_dim(0);
    let n = shift.dims()[0];
    let device = shift.device();
    let mut bn = BatchNormConfig::new(n)
        .with_epsilon(like.epsilon)
        .with_momentum(like.momentum)
        .init(&device);
    bn.beta = Param::from_tensor(shift);
    // sqrt(var + eps) = 1.
    bn.running_var = RunningState::new(Tensor::ones([n], &device) * (1.0 - like.epsilon));
    bn.gamma = bn.gamma.set_require_grad(false);
    bn
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::backbone::BackboneConfig;

    fn max_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Non-trivial batch-norm statistics so that folding them is really tested.
    fn perturb(bn: &mut BatchNorm, device: &Device) {
        let n = bn.gamma.dims()[0];
        bn.running_mean =
            RunningState::new(Tensor::random([n], Distribution::Normal(0.0, 0.5), device));
        bn.running_var =
            RunningState::new(Tensor::random([n], Distribution::Uniform(0.5, 2.0), device));
        bn.beta = Param::from_tensor(Tensor::random([n], Distribution::Normal(0.0, 0.3), device));
        bn.gamma = Param::from_tensor(Tensor::random([n], Distribution::Uniform(0.5, 1.5), device));
    }

    #[test]
    fn folding_w_id_gives_the_identity_branch() {
        let device = Device::default();
        for name in ["r18", "mbf"] {
            let mut c = BackboneConfig::named(name);
            c.width = 0.0625;
            c.input_size = 32;
            c.embedding_size = 12;
            let mut backbone = c.init(&device).unwrap();
            match &mut backbone {
                Backbone::IResNet(n) => perturb(&mut n.features, &device),
                Backbone::MobileFaceNet(n) => perturb(&mut n.embedding.bn, &device),
            }
            let head = DisentangledHeadConfig::new(12, 7, 3).init(&device);
            let images = Tensor::<4>::random([3, 3, 32, 32], Distribution::Default, &device);
            let (z_id, z_p) = head.forward(backbone.forward(images.clone()));
            assert_eq!(z_p.dims(), [3, 3]);
            let folded = head.fold_into(backbone);
            let direct = folded.forward(images);
            assert_eq!(direct.dims(), [3, 7]);
            let scale = z_id.clone().abs().max().into_scalar::<f32>();
            let diff = max_diff(direct, z_id);
            assert!(
                diff < 1e-5 * scale.max(1.0),
                "{name}: {diff} (scale {scale})"
            );
        }
    }
}
