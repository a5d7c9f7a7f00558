//! 2-D convolution through im2col and one matrix product per image, on the `flex` CPU backend.
//!
//! `flex` convolves by converting the whole batch to channels-last on one thread, building
//! column tiles of 512 output pixels and scattering each tile's product back channel by
//! channel; its backward pass runs a transposed convolution for the input and a convolution
//! of the batch-transposed tensors for the weights. On the default backbone that layout work
//! took a third of a training step. [`conv2d`] runs the same [`Conv2d`] module the classic
//! way instead, image by image in parallel: the image's patches laid out as rows
//! (`[c·kh·kw, out_h·out_w]`, each row a shifted copy of one input row), one product with
//! the weights written straight into the output (`[c_out, out_h·out_w]` is already the NCHW
//! layout), and backward the two products of the same patches (recomputed, not stored) with
//! the output's gradient, the input's gradient folded back from its patch rows.
//!
//! It applies to `f32` tensors on `flex` for convolutions without groups, dilation, bias or
//! `Same` padding, which is every convolution of the IResNets; anything else is the module's
//! own `forward`. Matrix products are the `gemm` crate's (which `flex` uses too). Results
//! equal burn's up to the order of summation.
//!
//! ```
//! use burn::nn::PaddingConfig2d;
//! use burn::nn::conv::Conv2dConfig;
//! use burn::tensor::{Device, Distribution, Tensor};
//!
//! let device = Device::default();
//! let conv = Conv2dConfig::new([3, 8], [3, 3])
//!     .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
//!     .with_bias(false)
//!     .init(&device);
//! let x = Tensor::<4>::random([2, 3, 10, 10], Distribution::Normal(0.0, 1.0), &device);
//! let ours = poseface_model::conv::conv2d(&conv, x.clone());
//! let burns = conv.forward(x);
//! assert_eq!(ours.dims(), [2, 8, 10, 10]);
//! assert!((ours - burns).abs().max().into_scalar::<f32>() < 1e-4);
//! ```

// Without `flex`, the backend extension's generated dispatch has no kernel to hand the
// scalar arguments to.
#![cfg_attr(not(feature = "flex"), allow(unused_variables))]

use burn::backend::Backend;
use burn::backend::backend_extension;
use burn::backend::tensor::FloatTensor;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Tensor};

/// Stride and padding of a convolution run by [`FusedConvBackend`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Rows and columns between neighbouring output pixels' windows.
    pub stride: [usize; 2],
    /// Zero rows above and columns left of the input.
    pub padding_begin: [usize; 2],
    /// Zero rows below and columns right of the input.
    pub padding_end: [usize; 2],
}

impl ConvGeometry {
    /// Output rows and columns for an input of `[h, w]` and a kernel of `[kh, kw]`, or `None`
    /// when the kernel does not fit in the padded input.
    pub fn output_size(&self, input: [usize; 2], kernel: [usize; 2]) -> Option<[usize; 2]> {
        let side = |d: usize| {
            let padded = input[d] + self.padding_begin[d] + self.padding_end[d];
            (padded >= kernel[d] && self.stride[d] > 0)
                .then(|| (padded - kernel[d]) / self.stride[d] + 1)
        };
        Some([side(0)?, side(1)?])
    }
}

/// A backend with the image-by-image convolution above.
///
/// Implemented for `flex` and for autodiff over it; [`conv2d`] routes other devices to
/// burn's convolution, so calling this directly on them is a programming error.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff: cfg(feature = "flex"))]
pub trait FusedConvBackend: Backend {
    /// Cross-correlation of `x` with `weight`, no bias.
    ///
    /// # Panics
    /// On `flex`, if `weight`'s input channels differ from `x`'s or the kernel does not fit
    /// the padded input ([`conv2d`] checks both before calling it).
    ///
    /// # Shapes
    /// - `x`: `[n, c, h, w]`; `weight`: `[c_out, c, kh, kw]`; output: `[n, c_out, oh, ow]`
    fn fused_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self>;
}

/// The backward kernel of [`FusedConvBackend::fused_conv2d`] on a backend without autodiff.
pub trait ConvBackwardKernel: Backend {
    /// Gradients for the input (when `input_grad`) and the weights (when `weight_grad`) from
    /// the output's.
    ///
    /// # Shapes
    /// - `x`: `[n, c, h, w]`; `weight`: `[c_out, c, kh, kw]`; `grad`: `[n, c_out, oh, ow]`;
    ///   outputs: the shapes of `x` and `weight`
    fn fused_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: ConvGeometry,
        input_grad: bool,
        weight_grad: bool,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>);
}

/// `conv.forward(x)`, through the image-by-image kernels where they apply (see the module's
/// documentation).
///
/// # Shapes
/// - `x`: `[n, c_in, h, w]`; output: `[n, c_out, oh, ow]`
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match fused_geometry(conv, &x) {
        Some(geometry) => {
            use burn::backend::Dispatch;
            let out = <Dispatch as FusedConvBackend>::fused_conv2d(
                x.into_dispatch(),
                conv.weight.val().into_dispatch(),
                geometry,
            );
            Tensor::from_dispatch(out)
        }
        None => conv.forward(x),
    }
}

/// The geometry [`conv2d`] runs this module and input with, or `None` for burn's path.
fn fused_geometry(conv: &Conv2d, x: &Tensor<4>) -> Option<ConvGeometry> {
    #[cfg(feature = "flex")]
    {
        let on_flex = crate::flex_blocks::is_flex(&x.device());
        let [_, channels, h, w] = x.dims();
        let weight = conv.weight.val();
        let [_, weight_channels, kh, kw] = weight.dims();
        let (padding_begin, padding_end) = match conv.padding {
            PaddingConfig2d::Valid => ([0, 0], [0, 0]),
            PaddingConfig2d::Explicit(top, left, bottom, right) => ([top, left], [bottom, right]),
            PaddingConfig2d::Same => return None,
        };
        let geometry = ConvGeometry {
            stride: conv.stride,
            padding_begin,
            padding_end,
        };
        let plain = conv.groups == 1 && conv.dilation == [1, 1] && conv.bias.is_none();
        (on_flex
            && plain
            && x.dtype() == DType::F32
            && weight.dtype() == DType::F32
            && weight_channels == channels
            && geometry.output_size([h, w], [kh, kw]).is_some())
        .then_some(geometry)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (conv, x, DType::F32, PaddingConfig2d::Valid);
        None
    }
}

#[cfg(feature = "flex")]
mod flex;

#[cfg(feature = "flex")]
mod autodiff {
    use burn::backend::Backend;
    use burn::backend::autodiff::Autodiff;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::tensor::FloatTensor;

    use super::{ConvBackwardKernel, ConvGeometry, FusedConvBackend};

    /// The recorded operation: keeps the input and the weights for the backward pass.
    #[derive(Debug)]
    struct ConvBackward;

    impl<B: Backend + ConvBackwardKernel> Backward<B, 2> for ConvBackward {
        type State = (FloatTensor<B>, FloatTensor<B>, ConvGeometry);

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x, node_weight] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let (x, weight, geometry) = ops.state;
            let (need_dx, need_dweight) = (node_x.is_some(), node_weight.is_some());
            let (dx, dweight) =
                B::fused_conv2d_backward(x, weight, grad, geometry, need_dx, need_dweight);
            if let (Some(node), Some(dx)) = (node_x, dx) {
                grads.register::<B>(node.id, dx);
            }
            if let (Some(node), Some(dweight)) = (node_weight, dweight) {
                grads.register::<B>(node.id, dweight);
            }
        }
    }

    impl<B, C> FusedConvBackend for Autodiff<B, C>
    where
        B: Backend + FusedConvBackend + ConvBackwardKernel,
        C: CheckpointStrategy,
    {
        fn fused_conv2d(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            geometry: ConvGeometry,
        ) -> FloatTensor<Self> {
            let guards = [x.node(), weight.node()];
            let (x, weight) = (x.into_primitive(), weight.into_primitive());
            let out = B::fused_conv2d(x.clone(), weight.clone(), geometry);
            match ConvBackward.prepare::<C>(guards).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, weight, geometry), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        }
    }
}
