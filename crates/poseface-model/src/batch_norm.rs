//! Batch normalisation with fused kernels on the `flex` CPU backend.
//!
//! burn records a training batch norm as one autodiff operation, but `flex` computes it,
//! and its backward, out of generic tensor operations: a transposed copy of the activation
//! for each statistic, then one pass per subtraction, division, multiplication and addition
//! (about a dozen passes and three copies per layer and step). [`batch_norm`] runs the same
//! [`BatchNorm`] module through kernels of our own on `f32` tensors on `flex`: in training,
//! three passes forward (mean, variance, output) and two backward (the two per-channel sums,
//! then the input's gradient); in inference, one pass, in place when the input is not held
//! elsewhere. Elsewhere, training runs burn's `batch_norm_train` operation and inference the
//! module's own `forward`.
//!
//! The outputs are burn's up to rounding: the inference output is computed with the same
//! operations in the same order (bit-identical), the training statistics are summed in
//! another order. The running statistics are updated as PyTorch's `BatchNorm` (and so
//! insightface's `arcface_torch`) updates them, on every device: `running ← (1 − momentum)
//! · running + momentum · batch statistic` with the batch's *unbiased* variance
//! (`n/(n − 1)` times the one it normalised with). burn's own `BatchNorm::forward` uses the
//! biased one there, which differs by 1/(n − 1): 1.6% for a 1-D feature layer at batch 64.
//!
//! ```
//! use burn::nn::BatchNormConfig;
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::default();
//! let bn = BatchNormConfig::new(2).init(&device);
//! let x = Tensor::<4>::from_floats([[[[1.0, 3.0]], [[-2.0, 2.0]]]], &device); // [1, 2, 1, 2]
//! let y = poseface_model::batch_norm::batch_norm(&bn, x.clone());
//! // Inference (no autodiff): running statistics 0 and 1, so y ≈ x.
//! let diff = (y - x).abs().max().into_scalar::<f32>();
//! assert!(diff < 1e-4);
//! ```

// Without `flex`, the backend extension's generated dispatch has no kernel to hand the
// scalar arguments to.
#![cfg_attr(not(feature = "flex"), allow(unused_variables))]

use burn::backend::Backend;
use burn::backend::backend_extension;
use burn::backend::tensor::FloatTensor;
use burn::nn::BatchNorm;
use burn::tensor::{DType, Tensor};

/// A backend with batch-norm kernels of one pass per statistic.
///
/// Implemented for `flex` and for autodiff over it; [`batch_norm`] routes other devices to
/// burn's batch norm, so calling this directly on them is a programming error.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff: cfg(feature = "flex"))]
pub trait FusedBatchNormBackend: Backend {
    /// Normalises with the batch's statistics: `(output, mean, biased variance)`.
    ///
    /// # Shapes
    /// - `x`: `[n, c, …]`; `gamma`, `beta`: `[c]`; outputs: the shape of `x`, `[c]`, `[c]`
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Normalises with given statistics: `((x − mean) / √(variance + ε))·γ + β`.
    ///
    /// # Shapes
    /// - `x`: `[n, c, …]`; the others: `[c]`; output: the shape of `x`
    fn fused_batch_norm_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// The backward kernel of [`FusedBatchNormBackend::fused_batch_norm_train`] on a backend
/// without autodiff.
pub trait BatchNormBackwardKernel: Backend {
    /// Gradients for the input, γ and β from the output's gradient, given the statistics
    /// the forward pass used: `(dx, dγ, dβ)`.
    ///
    /// # Shapes
    /// - `x`, `grad`: `[n, c, …]`; the others: `[c]`; outputs: `[n, c, …]`, `[c]`, `[c]`
    fn batch_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// `bn.forward(x)`, through the fused kernels where they apply (see the module's
/// documentation): batch statistics (and a running-statistics update) when `x` is on an
/// autodiff device and `bn` is training, the running statistics otherwise.
///
/// # Shapes
/// - `x`: `[n, c, …]` with `c` the module's features; output: the shape of `x`
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    use burn::backend::Dispatch;
    let training = x.device().is_autodiff() && bn.training.is_enabled();
    if !fused_applies(bn, &x) {
        return if training {
            composed_train(bn, x)
        } else {
            bn.forward(x)
        };
    }
    if training {
        let (out, mean, variance) = <Dispatch as FusedBatchNormBackend>::fused_batch_norm_train(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            bn.epsilon,
        );
        let out = Tensor::<D>::from_dispatch(out);
        let (mean, variance) = (
            Tensor::<1>::from_dispatch(mean),
            Tensor::from_dispatch(variance),
        );
        let per_channel = out.dims().iter().product::<usize>() / out.dims()[1];
        update_running(bn, mean, variance, per_channel);
        out
    } else if !x.is_autodiff() {
        let device = x.device();
        let out = <Dispatch as FusedBatchNormBackend>::fused_batch_norm_eval(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            bn.running_mean.value().to_device(&device).into_dispatch(),
            bn.running_var.value().to_device(&device).into_dispatch(),
            bn.epsilon,
        );
        Tensor::from_dispatch(out)
    } else {
        // A frozen layer inside a differentiated graph: burn's differentiable composition.
        bn.forward(x)
    }
}

/// Updates the running statistics from a training batch's mean and biased variance over
/// `per_channel` values, as PyTorch does: the variance made unbiased (left as it is for a
/// single value, where PyTorch refuses to train).
fn update_running(bn: &BatchNorm, mean: Tensor<1>, variance: Tensor<1>, per_channel: usize) {
    let device = mean.device();
    let momentum = bn.momentum;
    let unbiased = if per_channel > 1 {
        per_channel as f64 / (per_channel - 1) as f64
    } else {
        1.0
    };
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    let running_mean = running_mean
        .mul_scalar(1.0 - momentum)
        .add(mean.detach().mul_scalar(momentum));
    let running_var = running_var
        .mul_scalar(1.0 - momentum)
        .add(variance.detach().mul_scalar(momentum * unbiased));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
}

/// Training batch norm on any device and dtype: burn's `batch_norm_train` operation (the
/// backend's own kernel where it has one), then the running statistics updated by
/// [`update_running`] from the batch mean and biased variance it returns.
fn composed_train<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let dims = x.dims();
    let per_channel = dims.iter().product::<usize>() / dims[1].max(1);
    let result =
        burn::tensor::module::batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    update_running(bn, result.mean, result.variance, per_channel);
    result.output
}

/// Whether [`batch_norm`] takes a fused path for this module and input.
fn fused_applies<const D: usize>(bn: &BatchNorm, x: &Tensor<D>) -> bool {
    #[cfg(feature = "flex")]
    {
        let on_flex = crate::flex_blocks::is_flex(&x.device());
        on_flex
            && D >= 2
            && x.dtype() == DType::F32
            && bn.gamma.val().dtype() == DType::F32
            && bn.beta.val().dtype() == DType::F32
            && bn.running_mean.value().dtype() == DType::F32
            && bn.running_var.value().dtype() == DType::F32
            && bn.gamma.dims()[0] == x.dims()[1]
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (bn, x, DType::F32);
        false
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Flex, TensorMetadata};

    use super::{BatchNormBackwardKernel, FusedBatchNormBackend};
    use crate::flex_blocks::{Blocks, channel_tensor, lane_sum, lane_sum2, values};

    /// `√(variance + ε)` per channel, in f32 as burn computes it.
    fn std_devs(variance: &[f32], epsilon: f64) -> Vec<f32> {
        variance
            .iter()
            .map(|&v| (v + epsilon as f32).sqrt())
            .collect()
    }

    impl FusedBatchNormBackend for Flex {
        fn fused_batch_norm_train(
            x: FlexTensor,
            gamma: FlexTensor,
            beta: FlexTensor,
            epsilon: f64,
        ) -> (FlexTensor, FlexTensor, FlexTensor) {
            let blocks = Blocks::of(&x);
            let xs = values(&x);
            let count = blocks.per_channel() as f64;
            let [sums] = blocks.channel_sums(&xs, &xs, |_, x, _| [lane_sum(x, |v| v)]);
            let mean: Vec<f32> = sums.iter().map(|s| (s / count) as f32).collect();
            let [squares] = blocks.channel_sums(&xs, &xs, |c, x, _| {
                let m = mean[c];
                [lane_sum(x, |v| (v - m) * (v - m))]
            });
            let variance: Vec<f32> = squares.iter().map(|s| (s / count) as f32).collect();
            let out = normalise(
                blocks,
                &xs,
                x.shape(),
                &gamma,
                &beta,
                &mean,
                &variance,
                epsilon,
            );
            (out, channel_tensor(mean), channel_tensor(variance))
        }

        fn fused_batch_norm_eval(
            x: FlexTensor,
            gamma: FlexTensor,
            beta: FlexTensor,
            mean: FlexTensor,
            variance: FlexTensor,
            epsilon: f64,
        ) -> FlexTensor {
            let blocks = Blocks::of(&x);
            let (gamma, beta) = (values(&gamma), values(&beta));
            let mean = values(&mean);
            let std = std_devs(&values(&variance), epsilon);
            let (out, []) = blocks.update(x, &[], |c, x, _| {
                let (m, s, g, b) = (mean[c], std[c], gamma[c], beta[c]);
                for v in x {
                    *v = ((*v - m) / s) * g + b;
                }
                []
            });
            out
        }
    }

    /// `((x − mean) / std)·γ + β` into a new tensor (the forward keeps `x` for backward).
    #[allow(clippy::too_many_arguments)]
    fn normalise(
        blocks: Blocks,
        xs: &[f32],
        shape: burn::tensor::Shape,
        gamma: &FlexTensor,
        beta: &FlexTensor,
        mean: &[f32],
        variance: &[f32],
        epsilon: f64,
    ) -> FlexTensor {
        let (gamma, beta) = (values(gamma), values(beta));
        let std = std_devs(variance, epsilon);
        blocks.map(xs, shape, |c, x, out| {
            let (m, s, g, b) = (mean[c], std[c], gamma[c], beta[c]);
            for (o, &v) in out.iter_mut().zip(x) {
                *o = ((v - m) / s) * g + b;
            }
        })
    }

    impl BatchNormBackwardKernel for Flex {
        fn batch_norm_backward(
            x: FlexTensor,
            gamma: FlexTensor,
            mean: FlexTensor,
            variance: FlexTensor,
            epsilon: f64,
            grad: FlexTensor,
        ) -> (FlexTensor, FlexTensor, FlexTensor) {
            let blocks = Blocks::of(&x);
            let xs = values(&x);
            let (gamma, mean) = (values(&gamma), values(&mean));
            let inv_std: Vec<f32> = std_devs(&values(&variance), epsilon)
                .iter()
                .map(|s| s.recip())
                .collect();
            let count = blocks.per_channel() as f64;
            // Pass 1: Σ g and Σ g·(x − mean) per channel.
            let gs = values(&grad);
            let [grad_sums, centred_sums] = blocks.channel_sums(&gs, &xs, |c, g, x| {
                let m = mean[c];
                [lane_sum(g, |g| g), lane_sum2(g, x, |g, v| g * (v - m))]
            });
            drop(gs);
            let dbeta: Vec<f32> = grad_sums.iter().map(|&s| s as f32).collect();
            let dgamma: Vec<f32> = centred_sums
                .iter()
                .zip(&inv_std)
                .map(|(&s, &i)| (s * f64::from(i)) as f32)
                .collect();
            let mean_grad: Vec<f32> = grad_sums.iter().map(|s| (s / count) as f32).collect();
            let mean_projection: Vec<f32> = dgamma
                .iter()
                .map(|&s| (f64::from(s) / count) as f32)
                .collect();
            // Pass 2: dx = γ/std · (g − mean(g) − x̂·mean(g·x̂)), over the output's gradient.
            let (dx, []) = blocks.update(grad, &xs, |c, g, x| {
                let (m, i) = (mean[c], inv_std[c]);
                let (mg, mp, scale) = (mean_grad[c], mean_projection[c], gamma[c] * inv_std[c]);
                for (g, &v) in g.iter_mut().zip(x) {
                    let normalised = (v - m) * i;
                    *g = scale * ((*g - mg) - normalised * mp);
                }
                []
            });
            (dx, channel_tensor(dgamma), channel_tensor(dbeta))
        }
    }
}

#[cfg(feature = "flex")]
mod autodiff {
    use burn::backend::Backend;
    use burn::backend::autodiff::Autodiff;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::ops::ModuleOps;
    use burn::backend::tensor::FloatTensor;

    use super::{BatchNormBackwardKernel, FusedBatchNormBackend};

    /// The recorded operation: keeps the input, γ and the batch statistics for backward.
    #[derive(Debug)]
    struct BatchNormBackward;

    impl<B: Backend + BatchNormBackwardKernel> Backward<B, 3> for BatchNormBackward {
        type State = (
            FloatTensor<B>,
            FloatTensor<B>,
            FloatTensor<B>,
            FloatTensor<B>,
            f64,
        );

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x, node_gamma, node_beta] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let (x, gamma, mean, variance, epsilon) = ops.state;
            let (dx, dgamma, dbeta) =
                B::batch_norm_backward(x, gamma, mean, variance, epsilon, grad);
            for (node, grad) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
                if let Some(node) = node {
                    grads.register::<B>(node.id, grad);
                }
            }
        }
    }

    impl<B, C> FusedBatchNormBackend for Autodiff<B, C>
    where
        B: Backend + FusedBatchNormBackend + BatchNormBackwardKernel,
        C: CheckpointStrategy,
    {
        fn fused_batch_norm_train(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
            let guards = [x.node(), gamma.node(), beta.node()];
            let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
            let (out, mean, variance) =
                B::fused_batch_norm_train(x.clone(), gamma.clone(), beta.into_primitive(), epsilon);
            // The statistics leave untracked, as burn's batch norm returns them.
            let stats = (
                FloatTensor::<Self>::new(mean.clone()),
                FloatTensor::<Self>::new(variance.clone()),
            );
            let out = match BatchNormBackward
                .prepare::<C>(guards)
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((x, gamma, mean, variance, epsilon), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            (out, stats.0, stats.1)
        }

        fn fused_batch_norm_eval(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            mean: FloatTensor<Self>,
            variance: FloatTensor<Self>,
            epsilon: f64,
        ) -> FloatTensor<Self> {
            // Differentiable as burn composes it (`batch_norm` does not route here).
            <Self as ModuleOps<Self>>::batch_norm(x, gamma, beta, mean, variance, epsilon)
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Tensor};

    use super::fused_applies;

    #[test]
    fn the_fused_path_is_taken_on_flex_for_f32_inputs() {
        for device in [Device::flex(), Device::flex().autodiff()] {
            let bn = BatchNormConfig::new(3).init(&device);
            assert!(fused_applies(
                &bn,
                &Tensor::<4>::zeros([2, 3, 4, 4], &device)
            ));
            assert!(fused_applies(&bn, &Tensor::<2>::zeros([2, 3], &device)));
            let half = Tensor::<4>::zeros([2, 3, 4, 4], &device).cast(burn::tensor::DType::F16);
            assert!(!fused_applies(&bn, &half));
        }
    }
}
