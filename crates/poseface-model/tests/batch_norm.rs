//! The fused batch norm against PyTorch (`scripts/batch_norm_reference.py`, committed under
//! `tests/fixtures/batch_norm`) and against burn's own batch norm, in training and inference.

mod common;

use burn::module::{Param, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Distribution, Tensor};
use common::{relative_error, values};
use poseface_model::batch_norm::batch_norm;

fn read_npy(name: &str) -> (Vec<usize>, Vec<f32>) {
    common::read_npy("batch_norm", name)
}

fn tensor<const D: usize>(name: &str, device: &Device) -> Tensor<D> {
    common::tensor("batch_norm", name, device)
}

/// The fixture's layer: its γ, β and running statistics, ε = 1e-5, momentum 0.1.
fn reference_layer(device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(read_npy("gamma").1.len()).init(device);
    bn.gamma = Param::from_tensor(tensor("gamma", device));
    bn.beta = Param::from_tensor(tensor("beta", device));
    bn.running_mean = burn::module::RunningState::new(tensor("running_mean", device));
    bn.running_var = burn::module::RunningState::new(tensor("running_var", device));
    bn
}

/// Output, then gradients of `sum(y · g)` for x, γ and β.
fn train_step(
    forward: impl Fn(&BatchNorm, Tensor<4>) -> Tensor<4>,
    bn: &BatchNorm,
    x: &Tensor<4>,
    g: &Tensor<4>,
) -> [Vec<f32>; 4] {
    let x = x.clone().require_grad();
    let (gamma, beta) = (bn.gamma.val(), bn.beta.val());
    let y = forward(bn, x.clone());
    let grads = (y.clone() * g.clone()).sum().backward();
    [
        values(y),
        values(x.grad(&grads).unwrap()),
        values(gamma.grad(&grads).unwrap()),
        values(beta.grad(&grads).unwrap()),
    ]
}

#[test]
fn training_batch_norm_matches_pytorch_and_updates_running_statistics_as_pytorch() {
    let device = Device::flex().autodiff();
    let bn = reference_layer(&device);
    let x = tensor::<4>("x", &device);
    let g = tensor::<4>("grad", &device);
    check_step(train_step(batch_norm, &bn, &x, &g));
    // running ← 0.9·running + 0.1·batch statistic, the variance unbiased: PyTorch's update.
    check_running(&bn);
}

/// Output and gradients of one training step against PyTorch's.
fn check_step(step: [Vec<f32>; 4]) {
    for (name, ours) in ["y", "dx", "dgamma", "dbeta"].iter().zip(&step) {
        let err = relative_error(ours, &read_npy(name).1);
        assert!(err < 2e-6, "{name}: relative error {err}");
    }
}

/// The layer's running statistics against PyTorch's after one training step.
fn check_running(bn: &BatchNorm) {
    let mean = values(bn.running_mean.value_sync());
    let var = values(bn.running_var.value_sync());
    let err = relative_error(&mean, &read_npy("running_mean_after").1);
    assert!(err < 1e-6, "running mean: relative error {err}");
    let err = relative_error(&var, &read_npy("running_var_after").1);
    assert!(err < 1e-6, "running variance: relative error {err}");
}

#[test]
fn the_composed_training_path_matches_pytorch_too() {
    // The path every device but flex takes (and flex for other dtypes), run here on flex
    // in float64 so that the fused kernels stand aside.
    let device = Device::flex().autodiff();
    let f64 = burn::tensor::DType::F64;
    let mut bn = reference_layer(&device);
    bn.gamma = Param::from_tensor(bn.gamma.val().cast(f64).detach());
    bn.beta = Param::from_tensor(bn.beta.val().cast(f64).detach());
    bn.running_mean = RunningState::new(bn.running_mean.value().cast(f64));
    bn.running_var = RunningState::new(bn.running_var.value().cast(f64));
    let x = tensor::<4>("x", &device).cast(f64);
    let g = tensor::<4>("grad", &device).cast(f64);
    check_step(train_step(batch_norm, &bn, &x, &g));
    check_running(&bn);
}

#[test]
fn inference_batch_norm_matches_pytorch_and_is_burns_to_the_bit() {
    let device = Device::flex();
    let bn = reference_layer(&device);
    let y = values(batch_norm(&bn, tensor::<4>("x", &device)));
    let err = relative_error(&y, &read_npy("y_eval").1);
    assert!(err < 1e-6, "relative error {err}");
    assert_eq!(y, values(bn.forward(tensor::<4>("x", &device))));
    // Running statistics are only read.
    assert_eq!(
        values(bn.running_mean.value_sync()),
        read_npy("running_mean").1
    );
}

#[test]
fn fused_training_agrees_with_burns_batch_norm_on_wide_tensors() {
    let device = Device::flex().autodiff();
    // Enough channels and rows to be split across threads; an offset so the mean matters.
    let x = Tensor::<4>::random([8, 16, 14, 14], Distribution::Normal(3.0, 2.0), &device);
    let g = Tensor::<4>::random([8, 16, 14, 14], Distribution::Normal(0.0, 1.0), &device);
    let mut bn = BatchNormConfig::new(16).init(&device);
    bn.gamma = Param::from_tensor(Tensor::random(
        [16],
        Distribution::Uniform(0.5, 1.5),
        &device,
    ));
    bn.beta = Param::from_tensor(Tensor::random(
        [16],
        Distribution::Normal(0.0, 0.1),
        &device,
    ));

    let ours = train_step(batch_norm, &bn, &x, &g);
    let burns = train_step(|bn, x| bn.forward(x), &bn, &x, &g);
    for (name, (a, b)) in ["y", "dx", "dgamma", "dbeta"]
        .iter()
        .zip(ours.iter().zip(&burns))
    {
        let err = relative_error(a, b);
        assert!(err < 1e-5, "{name}: relative error {err}");
    }
}
