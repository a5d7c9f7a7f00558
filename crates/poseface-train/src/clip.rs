//! Gradient clipping by the norm of all of a module's gradients together, as PyTorch's
//! `clip_grad_norm_` (which `arcface_torch` applies to the backbone) does.
//!
//! burn's own `GradientClipping::Norm` clips each parameter tensor by its own norm, which
//! leaves the update's direction alone only when a single tensor is clipped; PyTorch scales
//! every gradient by one factor, `min(1, max_norm / (‖g‖ + 1e-6))`, `‖g‖` the L2 norm of all
//! of them as one vector.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, Tensor};

/// The L2 norm of the gradients in `grads` of `module`'s parameters, taken together.
pub fn gradient_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    struct SumOfSquares<'a> {
        grads: &'a GradientsParams,
        sum: f64,
    }
    impl ModuleVisitor for SumOfSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                // Summed in f32 whatever the training precision (half types overflow).
                let g = g.cast(DType::F32);
                self.sum += f64::from(g.powi_scalar(2).sum().into_scalar::<f32>());
            }
        }
    }
    let mut visitor = SumOfSquares { grads, sum: 0.0 };
    module.visit(&mut visitor);
    visitor.sum.sqrt()
}

/// Scales every gradient of `module`'s parameters in `grads` by
/// `min(1, max_norm / (‖g‖ + 1e-6))` and returns `‖g‖`, the norm before clipping. A
/// non-finite norm leaves the gradients as they are (the caller's NaN guard reports it).
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let norm = gradient_norm(module, grads);
    let factor = max_norm / (norm + 1e-6);
    if norm.is_finite() && factor < 1.0 {
        module.visit(&mut Scale { grads, factor });
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    /// A 2→2 linear layer whose weight gradient is `[[3, 0], [0, 0]]` and bias gradient
    /// `[0, 4]`: norms 3 and 4 alone, 5 together.
    fn layer_and_grads() -> (Linear, GradientsParams) {
        let device = Device::default().autodiff();
        let layer = LinearConfig::new(2, 2).init(&device);
        let mut grads = GradientsParams::new();
        let weight = Tensor::<2>::from_data(
            TensorData::new(vec![3.0f32, 0.0, 0.0, 0.0], [2, 2]),
            &device,
        );
        grads.register(layer.weight.id, weight);
        let bias = layer.bias.as_ref().expect("a bias");
        grads.register(
            bias.id,
            Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 4.0], [2]), &device),
        );
        (layer, grads)
    }

    fn values<const D: usize>(grads: &GradientsParams, param: &Param<Tensor<D>>) -> Vec<f32> {
        grads
            .get::<D>(param.id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn every_gradient_is_scaled_by_one_factor_from_the_total_norm() {
        let (layer, mut grads) = layer_and_grads();
        assert_eq!(gradient_norm(&layer, &grads), 5.0);
        // Clipped to 2.5: both halve (per tensor, the weight would keep 2.5 of 3 and the bias
        // 2.5 of 4, changing the direction).
        let norm = clip_grad_norm(&layer, &mut grads, 2.5);
        assert_eq!(norm, 5.0);
        let f = (2.5 / (5.0 + 1e-6)) as f32;
        assert_eq!(values(&grads, &layer.weight), vec![3.0 * f, 0.0, 0.0, 0.0]);
        assert_eq!(
            values(&grads, layer.bias.as_ref().unwrap()),
            vec![0.0, 4.0 * f]
        );
        // Under the limit: untouched.
        let (layer, mut grads) = layer_and_grads();
        clip_grad_norm(&layer, &mut grads, 10.0);
        assert_eq!(values(&grads, &layer.weight), vec![3.0, 0.0, 0.0, 0.0]);
    }
}
