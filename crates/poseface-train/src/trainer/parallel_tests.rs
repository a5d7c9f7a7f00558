//! Data parallelism checked against its definition: a batch split across two devices must
//! give the average of the gradients, losses and head states that its two halves give alone
//! on one device (the halves' BatchNorm statistics are their own either way).

use super::*;
use burn::module::{ModuleVisitor, Param, ParamId};
use poseface_synth::config::{Preset, SynthConfig};

fn config(data: &Path, runs: &Path) -> ExperimentConfig {
    let text = format!(
        r#"
name = "parallel"
runs_dir = "{runs}"
seed = 3
[data]
train = "{data}"
input_size = 56
[model]
backbone = "r18"
width = 0.0625
embedding_size = 32
[method]
kind = "multitask"
lambda_pose = 1.0
[head]
kind = "curricularface"
scale = 16.0
[optim]
lr = 0.1
batch_size = 16
steps = 4
[eval]
every_steps = 0
"#,
        runs = runs.display(),
        data = data.display()
    );
    ExperimentConfig::from_toml(&text, &[]).unwrap()
}

/// Every gradient of `grads` for the parameters of `module`, by parameter id.
fn gradients<M: Module>(module: &M, grads: &GradientsParams) -> Vec<(ParamId, Vec<f32>)> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        out: Vec<(ParamId, Vec<f32>)>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let values = g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
                self.out.push((param.id, values));
            }
        }
    }
    let mut c = Collect { grads, out: vec![] };
    module.visit(&mut c);
    c.out
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// `got` is `(a + b) / 2` to float rounding, relative to the largest magnitude involved.
fn assert_mean(what: &str, got: &[f32], a: &[f32], b: &[f32]) {
    assert_eq!(got.len(), a.len(), "{what}");
    let scale = a.iter().chain(b).map(|v| v.abs()).fold(0f32, f32::max);
    for (k, ((g, x), y)) in got.iter().zip(a).zip(b).enumerate() {
        let want = 0.5 * (x + y);
        assert!(
            (g - want).abs() <= 1e-5 * scale + 1e-9,
            "{what}[{k}]: {g} against ({x} + {y}) / 2 = {want}"
        );
    }
}

fn done(outcomes: Vec<(ShardOutcome, usize)>) -> Vec<(ShardGrads, usize)> {
    outcomes
        .into_iter()
        .map(|(o, rows)| match o {
            ShardOutcome::Done(g) => (*g, rows),
            ShardOutcome::NonFinite { loss, term } => panic!("{term} = {loss}"),
        })
        .collect()
}

#[test]
fn two_devices_average_the_gradients_of_the_two_halves() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    poseface_synth::writer::write_dataset(
        &SynthConfig::preset(Preset::Tiny, 5),
        &data,
        &|_, _, _| {},
    )
    .unwrap();
    let runs = tmp.path().join("runs");
    let device = Device::default().autodiff();
    let mut one = Trainer::new(config(&data, &runs), &device, false).unwrap();
    let two = Trainer::with_devices(
        config(&data, &runs),
        &[device.clone(), device.clone()],
        false,
    )
    .unwrap();
    // A head state that moves, so that its combination is checked too.
    let state = HeadState {
        t: 0.2,
        ..HeadState::default()
    };
    one.head.set_state(state);
    let mut two = two;
    two.head.set_state(state);

    let samples = one.dataset.samples(&(0..16).collect::<Vec<_>>()).unwrap();
    let labels: Vec<i64> = samples.iter().map(|s| i64::from(s.label)).collect();
    let sampled = one.centres.sample(&labels).unwrap();
    let half = |rows: std::ops::Range<usize>| Sampled {
        index: sampled.index.clone(),
        labels: sampled.labels[rows].to_vec(),
    };
    let a = done(
        one.forward_backward(samples[..8].to_vec(), &half(0..8))
            .unwrap(),
    );
    let b = done(
        one.forward_backward(samples[8..].to_vec(), &half(8..16))
            .unwrap(),
    );
    let (a, b) = (&a[0].0, &b[0].0);

    let shards = done(two.forward_backward(samples.clone(), &sampled).unwrap());
    assert_eq!(shards.iter().map(|s| s.1).collect::<Vec<_>>(), vec![8, 8]);
    let c = two.combine(shards, 16);

    assert!((c.loss - 0.5 * (a.loss + b.loss)).abs() < 1e-5 * c.loss.abs());
    assert_eq!(c.terms.len(), 2, "margin and pose");
    for ((name, v), ((_, x), (_, y))) in c.terms.iter().zip(a.terms.iter().zip(&b.terms)) {
        assert!(
            (v - 0.5 * (x + y)).abs() < 1e-5 * v.abs().max(1e-3),
            "{name}"
        );
    }
    assert!((c.head.t - 0.5 * (a.head.t + b.head.t)).abs() < 1e-12);
    assert_ne!(a.head.t, b.head.t, "the halves move t differently");

    let model = one.model.as_ref().unwrap();
    let (ga, gb) = (gradients(model, &a.model), gradients(model, &b.model));
    let gc = gradients(two.model.as_ref().unwrap(), &c.model);
    assert!(ga.len() > 20, "{} backbone gradients", ga.len());
    assert_eq!(gc.len(), ga.len());
    for (((id, x), (_, y)), (idc, g)) in ga.iter().zip(&gb).zip(&gc) {
        assert_eq!(id, idc, "parameter order");
        assert_mean(&format!("backbone {id}"), g, x, y);
    }
    let pose = one.pose.as_ref().unwrap();
    let (pa, pb) = (
        gradients(pose, a.pose.as_ref().unwrap()),
        gradients(pose, b.pose.as_ref().unwrap()),
    );
    let pc = gradients(two.pose.as_ref().unwrap(), c.pose.as_ref().unwrap());
    assert!(!pa.is_empty());
    for (((_, x), (_, y)), (_, g)) in pa.iter().zip(&pb).zip(&pc) {
        assert_mean("pose regressor", g, x, y);
    }
    assert_mean(
        "centres",
        &values(c.centres),
        &values(a.centres.clone()),
        &values(b.centres.clone()),
    );
}
