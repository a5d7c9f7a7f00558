//! The fused PReLU against PyTorch (`scripts/prelu_reference.py`, committed under
//! `tests/fixtures/prelu`) and against burn's composed PReLU, forward and backward.

mod common;

use burn::tensor::{Device, Distribution, Tensor};
use common::{max_abs_diff, values};
use poseface_model::prelu::prelu;

fn read_npy(name: &str) -> (Vec<usize>, Vec<f32>) {
    common::read_npy("prelu", name)
}

fn tensor<const D: usize>(name: &str, device: &Device) -> Tensor<D> {
    common::tensor("prelu", name, device)
}

/// Output and gradients of `sum(prelu(x, alpha) · g)` for x and alpha.
fn forward_backward(
    f: impl Fn(Tensor<4>, Tensor<1>) -> Tensor<4>,
    x: &Tensor<4>,
    alpha: &Tensor<1>,
    g: &Tensor<4>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = x.clone().require_grad();
    let alpha = alpha.clone().require_grad();
    let y = f(x.clone(), alpha.clone());
    let grads = (y.clone() * g.clone()).sum().backward();
    let dx = x.grad(&grads).expect("x takes part in the loss");
    let dalpha = alpha.grad(&grads).expect("alpha takes part in the loss");
    (values(y), values(dx), values(dalpha))
}

#[test]
fn fused_prelu_matches_pytorch_forward_and_backward() {
    let device = Device::flex().autodiff();
    let x = tensor::<4>("x", &device);
    let alpha = tensor::<1>("alpha", &device);
    let g = tensor::<4>("grad", &device);
    let (y, dx, dalpha) = forward_backward(prelu, &x, &alpha, &g);

    // Forward and input gradient: one multiplication each, so exact.
    assert_eq!(max_abs_diff(&y, &read_npy("y").1), 0.0);
    assert_eq!(max_abs_diff(&dx, &read_npy("dx").1), 0.0);
    // Slope gradient: a sum of ~38 products per channel (the negative inputs among 72), in
    // another order than PyTorch's.
    let reference = read_npy("dalpha").1;
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        scale > 1.0,
        "the fixture's slope gradients are not trivially small"
    );
    let err = max_abs_diff(&dalpha, &reference);
    assert!(
        err <= 1e-5 * scale,
        "dalpha differs by {err} (scale {scale})"
    );

    // Without autodiff (inference, burn's single-pass PReLU on `flex`), the same output.
    let plain = Device::flex();
    let y_plain = prelu(tensor::<4>("x", &plain), tensor::<1>("alpha", &plain));
    assert_eq!(values(y_plain), y);
}

#[test]
fn fused_prelu_agrees_with_burns_composed_prelu_including_zeros() {
    let device = Device::flex().autodiff();
    // Enough elements to be split across threads, with exact zeros in the input.
    let x = Tensor::<4>::random([4, 8, 20, 20], Distribution::Uniform(-1.0, 1.0), &device)
        .mul_scalar(4.0)
        .round()
        .div_scalar(4.0);
    let zeros = x.clone().equal_elem(0.0).int().sum().into_scalar::<i64>();
    assert!(zeros > 100, "the input has {zeros} exact zeros");
    let alpha = Tensor::<1>::random([8], Distribution::Uniform(0.05, 0.4), &device);
    let g = Tensor::<4>::random([4, 8, 20, 20], Distribution::Normal(0.0, 1.0), &device);

    let ours = forward_backward(prelu, &x, &alpha, &g);
    let burns = forward_backward(burn::tensor::activation::prelu, &x, &alpha, &g);
    assert_eq!(ours.0, burns.0);
    assert_eq!(ours.1, burns.1);
    let scale = burns.2.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = max_abs_diff(&ours.2, &burns.2);
    assert!(
        err <= 1e-5 * scale,
        "dalpha differs by {err} (scale {scale})"
    );
}

#[test]
fn a_single_shared_slope_takes_burns_path() {
    let device = Device::flex().autodiff();
    let x = tensor::<4>("x", &device);
    let alpha = Tensor::<1>::from_floats([0.25], &device);
    let g = tensor::<4>("grad", &device);
    let (y, dx, dalpha) = forward_backward(prelu, &x, &alpha, &g);
    let (xs, gs) = (read_npy("x").1, read_npy("grad").1);
    let expected_y: Vec<f32> = xs
        .iter()
        .map(|&v| if v >= 0.0 { v } else { 0.25 * v })
        .collect();
    let expected_dx: Vec<f32> = xs
        .iter()
        .zip(&gs)
        .map(|(&v, &g)| if v >= 0.0 { g } else { 0.25 * g })
        .collect();
    let expected_dalpha: f64 = xs
        .iter()
        .zip(&gs)
        .map(|(&v, &g)| if v < 0.0 { f64::from(v * g) } else { 0.0 })
        .sum();
    assert_eq!(y, expected_y);
    assert_eq!(dx, expected_dx);
    assert!((f64::from(dalpha[0]) - expected_dalpha).abs() < 1e-4);
}
