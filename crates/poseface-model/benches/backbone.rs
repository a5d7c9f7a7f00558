//! Backbone speed on the default CPU backend (`flex`): inference forward, and a training step
//! (forward, backward, SGD with momentum and weight decay) with a mean-squared loss against a
//! fixed target, the same work `scripts/backbone_bench.py` times in PyTorch.
//!
//! `POSEFACE_BENCH_MODELS` picks the networks (comma-separated, default
//! `r18-w0.25-s56,r18`; add `r50` for the full suite) and `POSEFACE_BENCH_BATCH` the batch
//! size (default 32). Names are `flex/<model>/b<batch>/forward` and `…/train_step`.

use std::time::Duration;

use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig, decay::WeightDecayConfig};
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use poseface_model::iresnet::{IResNetConfig, IResNetDepth};

/// Parses `r50`, `r18-w0.25`, `r18-w0.25-s56`.
fn config_of(name: &str) -> IResNetConfig {
    let mut parts = name.split('-');
    let depth = IResNetDepth::parse(parts.next().unwrap_or_default())
        .unwrap_or_else(|| panic!("unknown model {name}"));
    let mut config = IResNetConfig::depth(depth);
    for part in parts {
        if let Some(w) = part.strip_prefix('w') {
            config.width = w.parse().expect("width");
        } else if let Some(s) = part.strip_prefix('s') {
            config.input_size = s.parse().expect("input size");
        }
    }
    config
}

fn bench(c: &mut Criterion) {
    let models =
        std::env::var("POSEFACE_BENCH_MODELS").unwrap_or_else(|_| "r18-w0.25-s56,r18".into());
    let batch: usize = std::env::var("POSEFACE_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(32);
    let device = Device::default();
    let mut group = c.benchmark_group("flex");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    for name in models.split(',').filter(|n| !n.is_empty()) {
        let config = config_of(name);
        let s = config.input_size;
        let images =
            Tensor::<4>::random([batch, 3, s, s], Distribution::Uniform(-1.0, 1.0), &device);

        let model = config.init(&device);
        group.bench_function(format!("{name}/b{batch}/forward"), |b| {
            b.iter(|| {
                let e = model.forward(images.clone());
                e.sum().into_scalar::<f32>()
            })
        });

        let ad = device.clone().autodiff();
        let mut model = Some(config.init(&ad));
        let mut optim = SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
            ))
            .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
            .init();
        let x = images.clone().to_device(&ad);
        let target = Tensor::<2>::random(
            [batch, config.embedding_size],
            Distribution::Normal(0.0, 1.0),
            &ad,
        );
        group.bench_function(format!("{name}/b{batch}/train_step"), |b| {
            b.iter(|| {
                let m = model.take().expect("model");
                let loss = (m.forward(x.clone()) - target.clone())
                    .powi_scalar(2)
                    .mean();
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                let m = optim.step(0.1, m, grads);
                // Reading one weight back waits for the step to finish on any backend.
                let done =
                    m.fc.bias
                        .as_ref()
                        .map(|b| b.val().sum().into_scalar::<f32>());
                model = Some(m);
                done
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
