//! The image-by-image convolution against PyTorch (`scripts/conv_reference.py`, committed
//! under `tests/fixtures/conv`) and against burn's convolution, forward and backward.

mod common;

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor};
use common::{relative_error, values};
use poseface_model::conv::conv2d;

/// A bias-free convolution with the given weights, stride and symmetric padding.
fn layer(weight: Tensor<4>, stride: usize, padding: usize) -> Conv2d {
    let [c_out, c_in, k, _] = weight.dims();
    let mut conv = Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(false)
        .init(&weight.device());
    conv.weight = Param::from_tensor(weight);
    conv
}

/// Output, then the gradients of `sum(y · g)` for the input and the weights.
fn forward_backward(
    forward: impl Fn(&Conv2d, Tensor<4>) -> Tensor<4>,
    conv: &Conv2d,
    x: &Tensor<4>,
    g: &Tensor<4>,
) -> [Vec<f32>; 3] {
    let x = x.clone().require_grad();
    let weight = conv.weight.val();
    let y = forward(conv, x.clone());
    let grads = (y.clone() * g.clone()).sum().backward();
    [
        values(y),
        values(x.grad(&grads).unwrap()),
        values(weight.grad(&grads).unwrap()),
    ]
}

#[test]
fn convolutions_match_pytorch_forward_and_backward() {
    let device = Device::flex().autodiff();
    let cases = [
        ("k3s1", 1, 1),
        ("k3s2", 2, 1),
        ("k1s2", 2, 0),
        ("k1s1", 1, 0),
    ];
    for (case, stride, padding) in cases {
        let tensor = |name: &str| common::tensor::<4>("conv", &format!("{case}_{name}"), &device);
        let reference = |name: &str| common::read_npy("conv", &format!("{case}_{name}")).1;
        let conv = layer(tensor("weight"), stride, padding);
        let [y, dx, dweight] = forward_backward(conv2d, &conv, &tensor("x"), &tensor("grad"));
        for (name, ours) in [("y", y), ("dx", dx), ("dweight", dweight)] {
            let err = relative_error(&ours, &reference(name));
            assert!(err < 2e-6, "{case} {name}: relative error {err}");
        }
        // Without autodiff (inference), the same output.
        let plain = Device::flex();
        let x = common::tensor::<4>("conv", &format!("{case}_x"), &plain);
        let conv = layer(
            common::tensor("conv", &format!("{case}_weight"), &plain),
            stride,
            padding,
        );
        let err = relative_error(&values(conv2d(&conv, x)), &reference("y"));
        assert!(err < 2e-6, "{case} inference: relative error {err}");
    }
}

#[test]
fn convolutions_agree_with_burn_on_a_batch_wider_than_the_weight_gradient_groups() {
    let device = Device::flex().autodiff();
    // 19 images: more than the fixed groups the weight gradient is summed over, unevenly.
    let x = Tensor::<4>::random([19, 8, 12, 12], Distribution::Normal(0.0, 1.0), &device);
    for (stride, padding, kernel) in [(1, 1, 3), (2, 1, 3), (2, 0, 1)] {
        let weight = Tensor::random(
            [16, 8, kernel, kernel],
            Distribution::Normal(0.0, 0.1),
            &device,
        );
        let conv = layer(weight, stride, padding);
        let out = 12usize.div_ceil(stride);
        let g = Tensor::<4>::random([19, 16, out, out], Distribution::Normal(0.0, 1.0), &device);
        let ours = forward_backward(conv2d, &conv, &x, &g);
        let burns = forward_backward(|c, x| c.forward(x), &conv, &x, &g);
        for (name, (a, b)) in ["y", "dx", "dweight"].iter().zip(ours.iter().zip(&burns)) {
            let err = relative_error(a, b);
            assert!(
                err < 1e-5,
                "stride {stride} kernel {kernel} {name}: relative error {err}"
            );
        }
    }
}

#[test]
fn the_weight_gradient_does_not_depend_on_the_thread_count() {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random([13, 4, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let g = Tensor::<4>::random([13, 6, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let conv = layer(
        Tensor::random([6, 4, 3, 3], Distribution::Normal(0.0, 0.2), &device),
        1,
        1,
    );
    // 13 images make 7 groups: on 8 threads the products themselves run in parallel too.
    let on_threads = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| forward_backward(conv2d, &conv, &x, &g))
    };
    assert_eq!(on_threads(1), on_threads(8));
}

#[test]
fn grouped_or_biased_convolutions_take_burns_path() {
    let device = Device::flex();
    let x = Tensor::<4>::random([2, 4, 6, 6], Distribution::Normal(0.0, 1.0), &device);
    for config in [
        Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(4)
            .with_bias(false),
        Conv2dConfig::new([4, 4], [3, 3]).with_bias(true),
        Conv2dConfig::new([4, 4], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .with_bias(false),
    ] {
        let conv = config.init(&device);
        assert_eq!(
            values(conv2d(&conv, x.clone())),
            values(conv.forward(x.clone()))
        );
    }
}

#[test]
fn large_images_convolved_band_by_band_agree_with_burn() {
    // 64 channels × 3×3 patches over 48 columns: the output rows are built in bands of 9,
    // the last one shorter; the stride-2 case in bands too.
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random([2, 64, 48, 48], Distribution::Normal(0.0, 1.0), &device);
    for stride in [1, 2] {
        let weight = Tensor::random([8, 64, 3, 3], Distribution::Normal(0.0, 0.05), &device);
        let conv = layer(weight, stride, 1);
        let out = 48 / stride;
        let g = Tensor::<4>::random([2, 8, out, out], Distribution::Normal(0.0, 1.0), &device);
        let ours = forward_backward(conv2d, &conv, &x, &g);
        let burns = forward_backward(|c, x| c.forward(x), &conv, &x, &g);
        for (name, (a, b)) in ["y", "dx", "dweight"].iter().zip(ours.iter().zip(&burns)) {
            let err = relative_error(a, b);
            assert!(err < 1e-5, "stride {stride} {name}: relative error {err}");
        }
    }
}

#[test]
fn a_frozen_convolution_still_passes_the_input_gradient_back() {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random([3, 4, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let g = Tensor::<4>::random([3, 5, 9, 9], Distribution::Normal(0.0, 1.0), &device);
    let weight = Tensor::random([5, 4, 3, 3], Distribution::Normal(0.0, 0.2), &device);
    let mut conv = layer(weight, 1, 1);
    conv.weight = conv.weight.set_require_grad(false);
    let dx = |forward: &dyn Fn(&Conv2d, Tensor<4>) -> Tensor<4>| {
        let x = x.clone().require_grad();
        let grads = (forward(&conv, x.clone()) * g.clone()).sum().backward();
        assert!(conv.weight.val().grad(&grads).is_none());
        values(x.grad(&grads).unwrap())
    };
    let err = relative_error(&dx(&conv2d), &dx(&|c, x| c.forward(x)));
    assert!(err < 1e-5, "relative error {err}");
}
