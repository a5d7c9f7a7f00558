//! PoseFace's disentangled training: where each loss sends gradient, orthogonality on a toy
//! problem, and a whole run on the tiny synthetic set (exact resume, exported identity
//! branch, switched off without landmarks).

mod common;

use common::{tiny_config, tiny_data};
use std::path::{Path, PathBuf};

use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use poseface_landmark::{LandmarkAutoencoderConfig, PretrainConfig, frozen, normalise_tensor};
use poseface_loss::cross_entropy::{cross_entropy, normalized_cosine};
use poseface_loss::{orthogonality, pose_loss};
use poseface_model::{BackboneConfig, DisentangledHeadConfig};
use poseface_synth::landmark_sampler::LandmarkSampler;
use poseface_train::{Embedder, ExperimentConfig, StepLog, TrainObserver, Trainer};

/// The device's random generator is one per process. A `Trainer` seeds it and draws its
/// initial weights under a lock of its own, but the tests here that build modules directly
/// draw from it without that lock, and a draw landing inside another test's seeded
/// initialisation changes that run's weights (seen on a loaded machine: two runs of one
/// config parted at the first step). Every test holds this lock from start to end.
static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    DEVICE_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sum of |gradient| of a parameter tensor, 0 when it has none.
fn grad_mass(grads: &burn::tensor::Gradients, p: &Tensor<2>) -> f32 {
    p.grad(grads)
        .map_or(0.0, |g| g.abs().sum().into_scalar::<f32>())
}

fn grad_mass4(grads: &burn::tensor::Gradients, p: &Tensor<4>) -> f32 {
    p.grad(grads)
        .map_or(0.0, |g| g.abs().sum().into_scalar::<f32>())
}

#[test]
fn each_loss_reaches_exactly_the_parameters_it_should() {
    let _rng = exclusive();
    let device = Device::default().autodiff();
    device.seed(3);
    let mut bc = BackboneConfig::named("r18");
    bc.width = 0.0625;
    bc.input_size = 32;
    bc.embedding_size = 16;
    let backbone = bc.init(&device).unwrap();
    let head = DisentangledHeadConfig::new(16, 12, 4).init(&device);
    let lae = frozen(
        LandmarkAutoencoderConfig::new()
            .with_hidden(16)
            .with_latent(4)
            .init(&device),
        &device,
    );
    let images = Tensor::<4>::random([6, 3, 32, 32], Distribution::Default, &device);
    let landmarks = Tensor::<3>::random([6, 68, 2], Distribution::Uniform(20.0, 90.0), &device);
    let labels =
        Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 0, 1, 2], [6]), &device);
    let centres = Tensor::<2>::random([3, 12], Distribution::Default, &device).require_grad();
    let mask = Tensor::<1>::ones([6], &device);
    let Some(conv1) = (match &backbone {
        poseface_model::Backbone::IResNet(n) => Some(n.conv1.weight.val()),
        _ => None,
    }) else {
        panic!("r18 is an IResNet")
    };
    let (w_id, w_p) = (head.w_id.weight.val(), head.w_p.weight.val());
    let (enc, dec) = (lae.enc1.weight.val(), lae.dec1.weight.val());

    let forward = || {
        let (z_id, z_p) = head.forward(backbone.forward(images.clone()));
        (z_id, z_p)
    };
    // Margin loss: backbone and W_id, not W_p.
    let (z_id, _) = forward();
    let (cos, _) = normalized_cosine(z_id, centres.clone());
    let g = cross_entropy(cos * 16.0, labels).backward();
    assert!(grad_mass4(&g, &conv1) > 0.0);
    assert!(grad_mass(&g, &w_id) > 0.0);
    assert_eq!(grad_mass(&g, &w_p), 0.0);
    // Orthogonality: the two projections only (it is a function of their weights alone).
    let g = orthogonality(w_id.clone(), w_p.clone()).backward();
    assert!(grad_mass(&g, &w_id) > 0.0 && grad_mass(&g, &w_p) > 0.0);
    assert_eq!(grad_mass4(&g, &conv1), 0.0);
    // Pose loss through the frozen encoder: backbone and W_p; the encoder none.
    let (_, z_p) = forward();
    // No detach here: `frozen` alone must keep the encoder's parameters out of the graph.
    let target = lae.encode_points(landmarks.clone());
    let g = pose_loss(z_p, target, mask.clone()).backward();
    assert!(grad_mass4(&g, &conv1) > 0.0 && grad_mass(&g, &w_p) > 0.0);
    assert_eq!(grad_mass(&g, &w_id), 0.0);
    assert_eq!(grad_mass(&g, &enc), 0.0);
    // Through the frozen decoder: gradient crosses the decoder but does not change it.
    let (_, z_p) = forward();
    let g = pose_loss(lae.decode(z_p), normalise_tensor(landmarks), mask).backward();
    assert!(grad_mass4(&g, &conv1) > 0.0 && grad_mass(&g, &w_p) > 0.0);
    assert_eq!(grad_mass(&g, &dec), 0.0);
}

#[test]
fn orthogonality_converges_while_identity_and_pose_are_both_learned() {
    let _rng = exclusive();
    // Toy problem: 8-d features; the class is the sign pattern of features 0..2, the "pose"
    // target is features 5..7. Both fit in orthogonal subspaces, so training must reach
    // L_orth ≈ 0 without giving up either task.
    let device = Device::default().autodiff();
    device.seed(11);
    let mut head = DisentangledHeadConfig::new(8, 6, 3).init(&device);
    let mut centres_w = Tensor::<2>::random([4, 6], Distribution::Default, &device);
    let mut optim = SgdConfig::new().init();
    let n = 256;
    let feats = Tensor::<2>::random(
        [n, 8],
        Distribution::Normal(0.0, 1.0),
        &device.clone().inner(),
    );
    let host: Vec<f32> = feats.to_data().try_to_vec().unwrap();
    let labels: Vec<i64> = (0..n)
        .map(|r| i64::from(host[r * 8] > 0.0) + 2 * i64::from(host[r * 8 + 1] > 0.0))
        .collect();
    let target: Vec<f32> = (0..n)
        .flat_map(|r| host[r * 8 + 5..r * 8 + 8].to_vec())
        .collect();
    let f = Tensor::<2>::from_data(TensorData::new(host, [n, 8]), &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);
    let target = Tensor::<2>::from_data(TensorData::new(target, [n, 3]), &device);
    let mask = Tensor::<1>::ones([n], &device);
    let mut first = None;
    let mut last = (0.0, 0.0, 0.0);
    for _ in 0..600 {
        let centres = centres_w.clone().require_grad();
        let (z_id, z_p) = head.forward(f.clone());
        let (cos, _) = normalized_cosine(z_id, centres.clone());
        let ce = cross_entropy(cos * 8.0, labels.clone());
        let orth = orthogonality(head.w_id.weight.val(), head.w_p.weight.val());
        let pose = pose_loss(z_p, target.clone(), mask.clone());
        let scalar = |t: &Tensor<1>| t.clone().into_scalar::<f32>();
        last = (scalar(&ce), scalar(&orth), scalar(&pose));
        first.get_or_insert(last);
        let mut grads = (ce + orth + pose).backward();
        let gc = centres.grad_remove(&mut grads).unwrap();
        centres_w = (centres.inner() - gc * 0.1).detach().to_device(&device);
        centres_w = Tensor::from_inner(centres_w.inner());
        let g = GradientsParams::from_grads(grads, &head);
        head = optim.step(0.1, head, g);
    }
    let first = first.unwrap();
    assert!(
        first.1 > 0.1,
        "random projections start far from orthogonal: {first:?}"
    );
    assert!(last.1 < 1e-3, "L_orth {} → {}", first.1, last.1);
    assert!(last.2 < 0.05 * first.2, "pose {} → {}", first.2, last.2);
    assert!(last.0 < 0.5 * first.0, "ce {} → {}", first.0, last.0);
}

/// A small autoencoder pretrained on synthetic landmarks.
fn tiny_lae(path: &Path) {
    let sampler = LandmarkSampler::default();
    let shapes: Vec<Vec<[f32; 2]>> = sampler
        .batch(0, 512)
        .into_iter()
        .map(|s| s.landmarks)
        .collect();
    let config = PretrainConfig {
        steps: 200,
        batch_size: 64,
        lr: 3e-3,
        seed: 0,
        ..PretrainConfig::default()
    };
    let ae = poseface_landmark::pretrain(
        &LandmarkAutoencoderConfig::new()
            .with_hidden(32)
            .with_latent(4),
        &config,
        &shapes,
        &Device::default(),
        &mut |_| {},
    )
    .unwrap();
    poseface_landmark::save(&ae, path).unwrap();
}

fn config(data: &Path, runs: &Path, lae: &Path, overrides: &[&str]) -> ExperimentConfig {
    let method = format!(
        "kind = \"poseface\"\nlae = \"{}\"\nidentity_size = 24\nlambda_orth = 0.3\nlambda_pose = 2.0",
        lae.display()
    );
    config_with(data, runs, &method, overrides)
}

fn config_with(data: &Path, runs: &Path, method: &str, overrides: &[&str]) -> ExperimentConfig {
    let tables = format!("[method]\n{method}\n[head]\nkind = \"paa\"\nscale = 16.0");
    let mut all = vec!["optim.steps=10"];
    all.extend_from_slice(overrides);
    tiny_config(data, runs, "tiny-poseface", 2, &tables, &all)
}

#[derive(Default)]
struct Record {
    logs: Vec<StepLog>,
    warnings: Vec<String>,
    stop_after: Option<usize>,
}

impl TrainObserver for Record {
    fn started(&mut self, info: &poseface_train::RunInfo) {
        self.warnings = info.warnings.clone();
    }
    fn step(&mut self, log: &StepLog) {
        self.logs.push(log.clone());
    }
    fn should_stop(&mut self, step: usize) -> bool {
        self.stop_after == Some(step)
    }
}

fn losses(r: &Record) -> Vec<f64> {
    r.logs.iter().map(|l| l.loss).collect()
}

#[test]
fn a_poseface_run_resumes_exactly_and_exports_its_identity_branch() {
    let _rng = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    let lae: PathBuf = tmp.path().join("lae.safetensors");
    tiny_lae(&lae);
    let runs = tmp.path().join("runs");
    let device = Device::default().autodiff();

    let mut whole = Record::default();
    let summary = Trainer::new(
        config(&data, &runs, &lae, &["name=\"whole\""]),
        &device,
        false,
    )
    .unwrap()
    .run(&mut whole)
    .unwrap();
    assert!(summary.finished);
    for log in &whole.logs {
        let names: Vec<&str> = log.terms.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["margin", "orth", "pose"]);
        assert!(log.terms.iter().all(|(_, v)| v.is_finite()));
        // λ_orth = 0.3, λ_pose = 2.
        let sum = log.terms[0].1 + 0.3 * log.terms[1].1 + 2.0 * log.terms[2].1;
        assert!(
            (sum - log.loss).abs() < 1e-4 * sum.abs().max(1.0),
            "{log:?}"
        );
    }
    let orth: Vec<f64> = whole.logs.iter().map(|l| l.terms[1].1).collect();
    assert!(orth[9] < orth[0], "L_orth {orth:?}");
    assert!(summary.orthogonality.is_some());
    let n = summary
        .pose_landmarks
        .clone()
        .expect("a PoseFace run decodes its pose branch");
    assert!(
        n.faces > 0 && n.pose_branch.is_finite() && n.autoencoder.is_finite(),
        "{n:?}"
    );
    // The autoencoder reconstructs landmarks it sees better than a 10-step pose branch
    // predicts them from pixels.
    assert!(n.autoencoder < n.pose_branch, "{n:?}");
    let report = std::fs::read_to_string(runs.join("whole/report.md")).unwrap();
    assert!(
        report.contains("## Pose left in the identity embedding")
            && report.contains("frozen decoder turns the pose branch"),
        "{report}"
    );

    // Interrupted after step 6 (checkpoint at 4), resumed: the same losses.
    let mut first = Record {
        stop_after: Some(6),
        ..Default::default()
    };
    Trainer::new(config(&data, &runs, &lae, &[]), &device, false)
        .unwrap()
        .run(&mut first)
        .unwrap();
    let mut second = Record::default();
    let mut resumed = Trainer::new(config(&data, &runs, &lae, &[]), &device, true).unwrap();
    assert_eq!(resumed.start_step(), 4);
    resumed.run(&mut second).unwrap();
    // Step by step, so that a mismatch says which run left the common path: the
    // interrupted run up to its stop, then the resumed one.
    assert_eq!(losses(&first), losses(&whole)[..6]);
    assert_eq!(losses(&second)[..2], losses(&first)[4..6]);
    assert_eq!(losses(&second), losses(&whole)[4..]);

    // The exported weights are an ordinary backbone whose embedding is z_id (24-d).
    let run_dir = runs.join("tiny-poseface");
    assert!(
        run_dir
            .join("checkpoints/step-00000010/pose_head.safetensors")
            .is_file()
    );
    let embedder = Embedder::from_run(&run_dir, &Device::default()).unwrap();
    assert_eq!(embedder.dim(), 24);
    let in_memory = Embedder::new(resumed.inference_model(), 56, 24, &Device::default());
    let face = image::RgbImage::from_fn(112, 112, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 2) as u8, 90])
    });
    let a = embedder
        .embed_images(std::slice::from_ref(&face), false, 1)
        .unwrap();
    let b = in_memory
        .embed_images(std::slice::from_ref(&face), false, 1)
        .unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn without_landmarks_the_pose_branch_is_switched_off_with_a_warning() {
    let _rng = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    std::fs::remove_file(data.join("pose.sidecar")).unwrap();
    let lae = tmp.path().join("missing-is-fine.safetensors");
    let c = config(
        &data,
        &tmp.path().join("runs"),
        &lae,
        &["optim.steps=3", "head.kind=\"arcface\"", "head.scale=16.0"],
    );
    let mut rec = Record::default();
    let summary = Trainer::new(c, &Device::default().autodiff(), false)
        .unwrap()
        .run(&mut rec)
        .unwrap();
    assert_eq!(rec.warnings.len(), 1);
    assert!(
        rec.warnings[0].contains("pose branch is switched off"),
        "{:?}",
        rec.warnings
    );
    assert_eq!(rec.logs[0].terms.len(), 1);
    assert_eq!(summary.orthogonality, None);
    // The run exported the plain 32-d backbone, not the configured 24-d identity branch.
    let embedder = Embedder::from_run(&summary.run_dir, &Device::default()).unwrap();
    assert_eq!(embedder.dim(), 32);
}

#[test]
fn the_multitask_and_dream_baselines_train_and_export() {
    let _rng = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    let runs = tmp.path().join("runs");
    let device = Device::default().autodiff();
    for kind in ["multitask", "dream"] {
        let method = format!("kind = \"{kind}\"\nlambda_pose = 0.5");
        let name = format!("name=\"{kind}\"");
        let c = config_with(&data, &runs, &method, &[&name, "optim.steps=4"]);
        let mut rec = Record::default();
        let summary = Trainer::new(c, &device, false)
            .unwrap()
            .run(&mut rec)
            .unwrap();
        assert!(summary.finished, "{kind}");
        for log in &rec.logs {
            let names: Vec<&str> = log.terms.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["margin", "pose"], "{kind}");
            let total = log.terms[0].1 + 0.5 * log.terms[1].1;
            assert!(
                (total - log.loss).abs() < 1e-4 * total.max(1.0),
                "{kind}: {log:?}"
            );
        }
        assert_eq!(summary.orthogonality, None);
        assert!(summary.probe.is_some());
        let run_dir = runs.join(kind);
        assert_eq!(run_dir.join("dream.safetensors").is_file(), kind == "dream");
        // The exported run embeds faces on its own (DREAM with its yaw estimate).
        let embedder = Embedder::from_run(&run_dir, &Device::default()).unwrap();
        let face = image::RgbImage::from_fn(112, 112, |x, y| image::Rgb([(x + y) as u8, 60, 200]));
        let e = embedder
            .embed_images(std::slice::from_ref(&face), true, 1)
            .unwrap();
        assert_eq!(e.len(), 32);
        assert!(e.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn a_sidecar_with_landmarks_only_gets_its_angles_estimated() {
    let _rng = exclusive();
    use poseface_data::augment::AugmentConfig;
    use poseface_data::dataset::FaceDataset;
    use poseface_data::sidecar::{PoseRecord, PoseSidecar, PoseSidecarWriter};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    let path = data.join("pose.sidecar");
    let original = PoseSidecar::open(&path).unwrap();
    let records: Vec<PoseRecord> = (0..original.len())
        .map(|i| original.record(i).unwrap())
        .collect();
    drop(original);
    let mut writer = PoseSidecarWriter::create(&path, 68).unwrap();
    for r in &records {
        writer
            .push(&PoseRecord {
                angles: None,
                ..r.clone()
            })
            .unwrap();
    }
    writer.finish().unwrap();

    let ds = FaceDataset::open(&data, AugmentConfig::none(), 0).unwrap();
    let mut errors = Vec::new();
    for (i, r) in records.iter().enumerate().take(ds.len()) {
        let truth = r.angles.unwrap();
        let got = ds
            .sample(i)
            .unwrap()
            .angles
            .expect("estimated from the landmarks");
        if truth.yaw.abs() < 60.0 {
            errors.push((got.yaw - truth.yaw).abs());
        }
    }
    let mean = errors.iter().sum::<f32>() / errors.len() as f32;
    eprintln!("mean |Δyaw| {mean:.2}° over {} faces", errors.len());
    // The rendered landmarks fit the mean face to within a few degrees of yaw.
    assert!(
        errors.len() > 50 && mean < 3.0,
        "mean |Δyaw| {mean} over {}",
        errors.len()
    );
}

#[test]
fn pams_heads_resume_exactly_and_export_fused_embeddings() {
    let _rng = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    let device = Device::default().autodiff();
    let method = "kind = \"pams\"\nsplits = [20.0, 50.0]";
    let run = |runs: &Path, stop_after: Option<usize>, resume: bool| {
        let c = config_with(&data, runs, method, &["name=\"pams\"", "optim.steps=6"]);
        let mut trainer = Trainer::new(c, &device, resume).unwrap();
        let mut rec = Record {
            stop_after,
            ..Record::default()
        };
        trainer.run(&mut rec).unwrap();
        (trainer, rec)
    };
    let (whole, uninterrupted) = run(&tmp.path().join("a"), None, false);
    let runs = tmp.path().join("b");
    run(&runs, Some(4), false);
    let (_, resumed) = run(&runs, None, true);
    // The heads' weights and optimiser state come back with the checkpoint at step 4.
    assert_eq!(losses(&resumed), losses(&uninterrupted)[4..]);
    for log in &uninterrupted.logs {
        assert_eq!(log.terms.len(), 1, "{log:?}");
    }
    // Three heads exported; the fused embedding is three unit-normalised 32-d parts scaled
    // by 1/√3, the same from the files as from the trainer.
    let run_dir = tmp.path().join("a/pams");
    assert!(run_dir.join("pose_aware.safetensors").is_file());
    let from_files = Embedder::from_run(&run_dir, &Device::default()).unwrap();
    assert_eq!(from_files.dim(), 96);
    let face = image::RgbImage::from_fn(112, 112, |x, y| image::Rgb([(x * y) as u8, 90, 30]));
    let face = std::slice::from_ref(&face);
    let e = from_files.embed_images(face, false, 1).unwrap();
    for part in e.chunks(32) {
        let norm: f32 = part.iter().map(|v| v * v).sum();
        assert!((norm - 1.0 / 3.0).abs() < 1e-4, "{norm}");
    }
    let live = whole.embedder().embed_images(face, false, 1).unwrap();
    for (a, b) in e.iter().zip(&live) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
