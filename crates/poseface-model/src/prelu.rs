//! PReLU recorded as one operation, with a fused backward pass on the `flex` CPU backend.
//!
//! burn's autodiff builds PReLU out of a comparison, a multiplication and a masked select,
//! each recorded with its own backward: about eleven passes over the activation map per
//! training step, and a tenth of the CPU time of the default backbone's step. [`prelu`]
//! records a single operation instead: one pass forward, and one pass backward that gives
//! both the input's gradient and, per channel, the slope's. It applies to `f32` tensors on
//! `flex` with autodiff whose slopes are one per channel; everywhere else it is burn's
//! [`activation::prelu`](burn::tensor::activation::prelu), with the same result: without
//! autodiff `flex` already runs PReLU in one pass, and the GPU backends fuse element-wise
//! work themselves.
//!
//! Gradient convention (burn's, kept so both paths agree): at `x = 0` the input's gradient is
//! the incoming one, where PyTorch's PReLU takes the slope's share. Everywhere else the two
//! agree; `scripts/prelu_reference.py` checks this against PyTorch.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::default();
//! let x = Tensor::<4>::from_floats([[[[-2.0, 3.0]], [[4.0, -1.0]]]], &device); // [1, 2, 1, 2]
//! let alpha = Tensor::<1>::from_floats([0.25, 0.5], &device);
//! let y = poseface_model::prelu::prelu(x, alpha);
//! assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), vec![-0.5, 3.0, 4.0, -0.5]);
//! ```

use burn::backend::Backend;
use burn::backend::backend_extension;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Tensor};

/// A backend that runs PReLU with one slope per channel (dimension 1) as a single operation.
///
/// Implemented for `flex` and for autodiff over it; [`prelu`] routes other devices to
/// burn's composed PReLU, so calling this directly on them is a programming error.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff: cfg(feature = "flex"))]
pub trait FusedPreluBackend: Backend {
    /// `x ≥ 0 ? x : α_c·x` elementwise, `c` the index along dimension 1.
    ///
    /// # Shapes
    /// - `x`: `[n, c, …]`; `alpha`: `[c]`; output: the shape of `x`
    fn fused_prelu(x: FloatTensor<Self>, alpha: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The backward kernel of [`FusedPreluBackend::fused_prelu`] on a backend without autodiff.
pub trait PreluBackwardKernel: Backend {
    /// Gradients of the loss for the input and the slopes, from the output's gradient:
    /// `dx = x ≥ 0 ? g : α_c·g` and `dα_c = Σ_{x<0, channel c} g·x`.
    ///
    /// # Shapes
    /// - `x`, `grad`: `[n, c, …]`; `alpha`: `[c]`; outputs: `[n, c, …]` and `[c]`
    fn prelu_backward(
        x: FloatTensor<Self>,
        alpha: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// PReLU with one slope per channel (or one shared slope), as
/// [`activation::prelu`](burn::tensor::activation::prelu), recorded as a single operation
/// where the backend supports it (see the module's documentation).
///
/// # Shapes
/// - `x`: `[n, c, …]`; `alpha`: `[c]` or `[1]`; output: the shape of `x`
pub fn prelu<const D: usize>(x: Tensor<D>, alpha: Tensor<1>) -> Tensor<D> {
    if fused_applies(&x, &alpha) {
        use burn::backend::Dispatch;
        let out =
            <Dispatch as FusedPreluBackend>::fused_prelu(x.into_dispatch(), alpha.into_dispatch());
        Tensor::from_dispatch(out)
    } else {
        burn::tensor::activation::prelu(x, alpha)
    }
}

/// Whether [`prelu`] takes the fused path for these tensors.
fn fused_applies<const D: usize>(x: &Tensor<D>, alpha: &Tensor<1>) -> bool {
    #[cfg(feature = "flex")]
    {
        // Without autodiff, `flex`'s own PReLU is already one pass (in place when it can).
        let on_flex = crate::flex_blocks::is_flex(&x.device());
        on_flex
            && x.is_autodiff()
            && D >= 2
            && x.dtype() == DType::F32
            && alpha.dtype() == DType::F32
            && alpha.dims()[0] == x.dims()[1]
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (x, alpha, DType::F32);
        false
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;

    use super::{FusedPreluBackend, PreluBackwardKernel};
    use crate::flex_blocks::{Blocks, channel_tensor, lane_sum2, values};

    impl FusedPreluBackend for Flex {
        fn fused_prelu(x: FlexTensor, alpha: FlexTensor) -> FlexTensor {
            let blocks = Blocks::of(&x);
            let slopes = values(&alpha);
            let (out, []) = blocks.update(x, &[], |channel, values, _| {
                let a = slopes[channel];
                for v in values {
                    *v = if *v >= 0.0 { *v } else { a * *v };
                }
                []
            });
            out
        }
    }

    impl PreluBackwardKernel for Flex {
        fn prelu_backward(
            x: FlexTensor,
            alpha: FlexTensor,
            grad: FlexTensor,
        ) -> (FlexTensor, FlexTensor) {
            let blocks = Blocks::of(&x);
            let (xs, slopes) = (values(&x), values(&alpha));
            // One pass: the input's gradient overwrites the output's (rarely needed again),
            // and the slope's gradient is summed on the way.
            let (dx, [dalpha]) = blocks.update(grad, &xs, |channel, grads, x| {
                let a = slopes[channel];
                let dalpha = lane_sum2(grads, x, |g, v| if v < 0.0 { g * v } else { 0.0 });
                for (g, &v) in grads.iter_mut().zip(x) {
                    *g = if v < 0.0 { a * *g } else { *g };
                }
                [dalpha]
            });
            let dalpha = dalpha.into_iter().map(|v| v as f32).collect();
            (dx, channel_tensor(dalpha))
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
    use burn::backend::tensor::FloatTensor;

    use super::{FusedPreluBackend, PreluBackwardKernel};

    /// The recorded operation: keeps the input and the slopes for the backward pass.
    #[derive(Debug)]
    struct PreluBackward;

    impl<B: Backend + PreluBackwardKernel> Backward<B, 2> for PreluBackward {
        type State = (FloatTensor<B>, FloatTensor<B>);

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x, node_alpha] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let (x, alpha) = ops.state;
            let (dx, dalpha) = B::prelu_backward(x, alpha, grad);
            if let Some(node) = node_x {
                grads.register::<B>(node.id, dx);
            }
            if let Some(node) = node_alpha {
                grads.register::<B>(node.id, dalpha);
            }
        }
    }

    impl<B, C> FusedPreluBackend for Autodiff<B, C>
    where
        B: Backend + FusedPreluBackend + PreluBackwardKernel,
        C: CheckpointStrategy,
    {
        fn fused_prelu(x: FloatTensor<Self>, alpha: FloatTensor<Self>) -> FloatTensor<Self> {
            let guards = [x.node(), alpha.node()];
            let (x, alpha) = (x.into_primitive(), alpha.into_primitive());
            let out = B::fused_prelu(x.clone(), alpha.clone());
            match PreluBackward
                .prepare::<C>(guards)
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((x, alpha), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::{Device, Tensor};

    use super::fused_applies;

    #[test]
    fn the_fused_path_is_taken_on_flex_for_per_channel_f32_slopes() {
        assert!(!fused_applies(
            &Tensor::<4>::zeros([2, 3, 4, 4], &Device::flex()),
            &Tensor::<1>::zeros([3], &Device::flex())
        ));
        {
            let device = Device::flex().autodiff();
            let x = Tensor::<4>::zeros([2, 3, 4, 4], &device);
            let x2 = Tensor::<2>::zeros([2, 3], &device);
            assert!(fused_applies(&x, &Tensor::<1>::zeros([3], &device)));
            assert!(fused_applies(&x2, &Tensor::<1>::zeros([3], &device)));
            // One shared slope: burn's composed PReLU broadcasts it.
            assert!(!fused_applies(&x, &Tensor::<1>::zeros([1], &device)));
            assert!(!fused_applies(
                &x.cast(burn::tensor::DType::F16),
                &Tensor::zeros([3], &device)
            ));
        }
    }
}
