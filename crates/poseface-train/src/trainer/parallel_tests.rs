//! Data parallelism checked against its definition. A batch split across two devices must
//! give the batch's gradient as its halves give it alone on one device (the halves' BatchNorm
//! and head statistics are their own either way): the terms that average over every face
//! weighted by the halves' shares of the faces, the pose term by their shares of the faces
//! that have a pose; the head state and BatchNorm's running statistics averaged.

use super::*;
use crate::step::{ShardGrads, ShardOutcome};
use burn::module::{ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use poseface_loss::Sampled;
use poseface_loss::head::HeadState;
use poseface_synth::config::{Preset, SynthConfig};

fn config(data: &Path, runs: &Path, lambda_pose: f32) -> ExperimentConfig {
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
lambda_pose = {lambda_pose}
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

/// Every float tensor of `module` (weights and BatchNorm running statistics), by id.
fn float_state<M: Module>(module: &M) -> Vec<(ParamId, Vec<f32>)> {
    struct Collect(Vec<(ParamId, Vec<f32>)>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param.val().into_data().convert::<f32>();
            self.0.push((param.id, values.try_to_vec::<f32>().unwrap()));
        }
    }
    // `valid()` folds pending running-statistics updates in first.
    let _ = module.valid();
    let mut c = Collect(vec![]);
    module.visit(&mut c);
    c.0
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// `got` is `want` to float rounding, relative to the largest magnitude in `want` (or to
/// `floor`, for tensors whose values are all rounding noise).
fn assert_close(what: &str, got: &[f32], want: &[f32], floor: f32) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().map(|v| v.abs()).fold(floor, f32::max);
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * scale + 1e-9,
            "{what}[{k}]: {g} against {w}"
        );
    }
}

/// `a · x + b · y`, element by element.
fn mix(a: f32, x: &[f32], b: f32, y: &[f32]) -> Vec<f32> {
    x.iter().zip(y).map(|(x, y)| a * x + b * y).collect()
}

fn done(outcomes: Vec<ShardOutcome>) -> Vec<ShardGrads> {
    outcomes
        .into_iter()
        .map(|o| match o {
            ShardOutcome::Done(g) => *g,
            ShardOutcome::NonFinite { loss, term } => panic!("{term} = {loss}"),
        })
        .collect()
}

#[test]
fn two_devices_give_the_batch_gradient_of_their_halves() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let synth = SynthConfig::preset(Preset::Tiny, 5);
    poseface_synth::writer::write_dataset(&synth, &data, &|_, _, _| {}).unwrap();
    let runs = tmp.path().join("runs");
    let device = Device::default().autodiff();
    // The same initial weights in each: the pose regression weighted 1, and 0 (the margin
    // alone, so that the pose term's gradient is the difference).
    let mut one = Trainer::new(config(&data, &runs, 1.0), &device, false).unwrap();
    let mut margin = Trainer::new(config(&data, &runs, 0.0), &device, false).unwrap();
    let mut two = Trainer::with_devices(
        config(&data, &runs, 1.0),
        &[device.clone(), device.clone()],
        false,
    )
    .unwrap();
    // A head state that moves, so that its combination is checked too.
    let state = HeadState {
        t: 0.2,
        ..HeadState::default()
    };
    for t in [&mut one, &mut margin, &mut two] {
        t.head.set_state(state);
    }

    let mut samples = one.dataset.samples(&(0..16).collect::<Vec<_>>()).unwrap();
    // Two faces of the first half without a pose: its pose term averages over 6 faces, the
    // second half's over 8, the batch's over 14.
    samples[0].angles = None;
    samples[3].angles = None;
    let labels: Vec<i64> = samples.iter().map(|s| i64::from(s.label)).collect();
    let sampled = one.centres.sample(&labels).unwrap();
    let half = |rows: std::ops::Range<usize>| Sampled {
        index: sampled.index.clone(),
        labels: sampled.labels[rows].to_vec(),
    };
    let (first, second) = (samples[..8].to_vec(), samples[8..].to_vec());
    // Each half alone (running statistics read after the first pass over each trainer's
    // weights, so that both start from the initial ones).
    let a = done(one.forward_backward(first.clone(), &half(0..8)).unwrap()).remove(0);
    let running_a = float_state(one.model.as_ref().unwrap());
    let mb = done(
        margin
            .forward_backward(second.clone(), &half(8..16))
            .unwrap(),
    )
    .remove(0);
    let running_b = float_state(margin.model.as_ref().unwrap());
    let b = done(one.forward_backward(second, &half(8..16)).unwrap()).remove(0);
    let ma = done(margin.forward_backward(first, &half(0..8)).unwrap()).remove(0);

    let shards = done(two.forward_backward(samples.clone(), &sampled).unwrap());
    let weights: Vec<_> = shards.iter().map(|s| s.weights.unwrap()).collect();
    assert_eq!((weights[0].rows, weights[1].rows), (0.5, 0.5));
    assert_eq!((weights[0].pose, weights[1].pose), (6.0 / 14.0, 8.0 / 14.0));
    let c = two.combine(shards);
    let (pa, pb) = (6.0 / 14.0, 8.0 / 14.0);

    // Loss terms (margin, pose) and the total.
    let term = |g: &ShardGrads, k: usize| g.terms[k].1;
    let margin_term = 0.5 * (term(&a, 0) + term(&b, 0));
    let pose_term = pa * term(&a, 1) + pb * term(&b, 1);
    assert!((c.terms[0].1 - margin_term).abs() < 1e-5 * margin_term);
    assert!((c.terms[1].1 - pose_term).abs() < 1e-5 * pose_term);
    assert!((c.loss - (margin_term + pose_term)).abs() < 1e-5 * c.loss);
    assert!((c.head.t - 0.5 * (a.head.t + b.head.t)).abs() < 1e-12);
    assert_ne!(a.head.t, b.head.t, "the halves move t differently");

    // Gradients: 0.5 of each half's margin gradient plus its pose share of its pose gradient.
    let expect = |g: &[f32], m: &[f32], h: &[f32], n: &[f32]| {
        let pose_a: Vec<f32> = g.iter().zip(m).map(|(g, m)| g - m).collect();
        let pose_b: Vec<f32> = h.iter().zip(n).map(|(h, n)| h - n).collect();
        let margins = mix(0.5, m, 0.5, n);
        let poses = mix(pa as f32, &pose_a, pb as f32, &pose_b);
        mix(1.0, &margins, 1.0, &poses)
    };
    let model = one.model.as_ref().unwrap();
    let [ga, gb, gma, gmb] =
        [&a.model, &b.model, &ma.model, &mb.model].map(|g| gradients(model, g));
    let gc = gradients(two.model.as_ref().unwrap(), &c.model);
    assert!(ga.len() > 20, "{} backbone gradients", ga.len());
    assert_eq!(gc.len(), ga.len());
    // A thousandth of the largest gradient: below it, a tensor's values are rounding noise.
    let floor = 1e-3
        * ga.iter()
            .flat_map(|g| &g.1)
            .fold(0f32, |m, v| m.max(v.abs()));
    for k in 0..ga.len() {
        assert_eq!(ga[k].0, gc[k].0, "parameter order");
        let want = expect(&ga[k].1, &gma[k].1, &gb[k].1, &gmb[k].1);
        assert_close(&format!("backbone {}", ga[k].0), &gc[k].1, &want, floor);
    }
    let pose = one.pose.as_ref().unwrap();
    let [pa_, pb_] = [&a, &b].map(|g| gradients(pose, g.pose.as_ref().unwrap()));
    let pc = gradients(two.pose.as_ref().unwrap(), c.pose.as_ref().unwrap());
    assert!(!pa_.is_empty());
    for k in 0..pa_.len() {
        // The regressor only sees the pose term.
        let want = mix(pa as f32, &pa_[k].1, pb as f32, &pb_[k].1);
        assert_close("pose regressor", &pc[k].1, &want, 0.0);
    }
    let want = mix(
        0.5,
        &values(a.centres.clone()),
        0.5,
        &values(b.centres.clone()),
    );
    assert_close("centres", &values(c.centres), &want, 0.0);

    // BatchNorm's running statistics: the average of the halves' updates.
    let running_c = float_state(two.model.as_ref().unwrap());
    let mut moved = 0;
    for ((x, y), z) in running_a.iter().zip(&running_b).zip(&running_c) {
        moved += usize::from(x.1 != y.1);
        assert_close("running statistics", &z.1, &mix(0.5, &x.1, 0.5, &y.1), 0.0);
    }
    assert!(
        moved > 10,
        "{moved} running statistics differ between the halves"
    );
}
