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

/// The L2 norm of the gradients in `grads` of `module`'s parameters, taken together: each
/// tensor's norm on the device (in `f32` whatever the training precision: half types
/// overflow), then the norm of those, read back once as PyTorch computes it.
pub fn gradient_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    struct SumOfSquares<'a> {
        grads: &'a GradientsParams,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumOfSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let squares = g.cast(DType::F32).powi_scalar(2).sum();
                self.sum = Some(match self.sum.take() {
                    Some(sum) => sum + squares,
                    None => squares,
                });
            }
        }
    }
    let mut visitor = SumOfSquares { grads, sum: None };
    module.visit(&mut visitor);
    visitor
        .sum
        .map_or(0.0, |s| f64::from(s.into_scalar::<f32>()).sqrt())
}

/// Scales every gradient of `module`'s parameters in `grads` by
/// `min(1, max_norm / (norm + 1e-6))`, `norm` their joint norm from [`gradient_norm`]. A
/// non-finite norm leaves them as they are (callers stop on it first).
pub fn scale_to_norm<M: Module>(module: &M, grads: &mut GradientsParams, norm: f64, max_norm: f64) {
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
    let factor = max_norm / (norm + 1e-6);
    if norm.is_finite() && factor < 1.0 {
        module.visit(&mut Scale { grads, factor });
    }
}

/// PyTorch's `clip_grad_norm_`: [`gradient_norm`], then [`scale_to_norm`]; returns the norm
/// before clipping.
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = gradient_norm(module, grads);
    scale_to_norm(module, grads, norm, max_norm);
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
        // An infinite gradient: an infinite norm (the trainer stops on it), nothing scaled.
        let (layer, mut grads) = layer_and_grads();
        let device = layer.weight.val().device();
        let inf = Tensor::<1>::from_data(TensorData::new(vec![f32::INFINITY, 0.0], [2]), &device);
        grads.register(layer.bias.as_ref().unwrap().id, inf);
        assert_eq!(clip_grad_norm(&layer, &mut grads, 1.0), f64::INFINITY);
        assert_eq!(values(&grads, &layer.weight), vec![3.0, 0.0, 0.0, 0.0]);
    }
}
