//! End to end on the tiny synthetic set: train, checkpoint, stop, resume, and the NaN guard.

mod common;

use common::{tiny_config, tiny_data};
use std::path::Path;

use burn::tensor::Device;
use poseface_train::checkpoint::Checkpoint;
use poseface_train::{ExperimentConfig, StepLog, TrainError, TrainObserver, Trainer};

fn config(data: &Path, runs: &Path, head: &str, overrides: &[&str]) -> ExperimentConfig {
    tiny_config(data, runs, "tiny", 1, &format!("[head]\n{head}"), overrides)
}

#[derive(Default)]
struct Record {
    losses: Vec<f64>,
    checkpoints: Vec<usize>,
    stop_after: Option<usize>,
}

impl TrainObserver for Record {
    fn step(&mut self, log: &StepLog) {
        self.losses.push(log.loss);
    }
    fn checkpointed(&mut self, step: usize, _dir: &Path) {
        self.checkpoints.push(step);
    }
    fn should_stop(&mut self, step: usize) -> bool {
        self.stop_after == Some(step)
    }
}

#[test]
fn trains_checkpoints_and_resumes_on_tiny_synthetic_faces() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    let runs = tmp.path().join("runs");
    let device = Device::default().autodiff();

    let head = "kind = \"paa\"\nscale = 16.0";
    // An uninterrupted run, for reference.
    let whole = config(&data, &runs, head, &["name=\"whole\""]);
    let mut rec = Record::default();
    Trainer::new(whole, &device, false)
        .unwrap()
        .run(&mut rec)
        .unwrap();
    let uninterrupted = rec.losses;
    assert_eq!(uninterrupted.len(), 12);

    // A first session that stops after 10 of 12 steps, two steps past its checkpoint, as if
    // killed there.
    let first = config(&data, &runs, head, &[]);
    let mut trainer = Trainer::new(first, &device, false).unwrap();
    let mut rec = Record {
        stop_after: Some(10),
        ..Default::default()
    };
    let summary = trainer.run(&mut rec).unwrap();
    assert!(!summary.finished);
    assert_eq!(rec.losses.len(), 10);
    assert_eq!(rec.checkpoints, vec![4, 8]);
    assert!(rec.losses.iter().all(|l| l.is_finite()));
    // Same data order, negatives and initial weights: the same losses as the uninterrupted run.
    assert_eq!(rec.losses[..], uninterrupted[..10]);
    assert_eq!(summary.verification.len(), 1);
    let run_dir = runs.join("tiny");
    for file in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "report.md",
        "roc.svg",
        "pose_accuracy.svg",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }
    assert!(!run_dir.join("model.safetensors").exists());
    // Only the newest checkpoint and one more are kept.
    let latest = Checkpoint::latest(&run_dir).unwrap().unwrap();
    assert!(latest.dir.ends_with("step-00000008"));
    assert!(run_dir.join("checkpoints/step-00000004").is_dir());

    // Starting afresh over it is refused; so is resuming with a changed schedule.
    let again = config(&data, &runs, head, &[]);
    let e = Trainer::new(again, &device, false).err().expect("refused");
    assert!(e.to_string().contains("pass --resume"), "{e}");
    let changed = config(&data, &runs, head, &["optim.lr=0.2"]);
    let e = Trainer::new(changed, &device, true).err().expect("refused");
    assert!(e.to_string().contains("`optim` differs"), "{e}");

    // Other data at the same path (a regenerated set): resuming on it is refused, and
    // the original data, regenerated, is accepted again.
    let original = std::fs::read(data.join("train.idx")).unwrap();
    let other =
        poseface_synth::config::SynthConfig::preset(poseface_synth::config::Preset::Tiny, 6);
    poseface_synth::writer::write_dataset(&other, &data, &|_, _, _| {}).unwrap();
    assert_ne!(std::fs::read(data.join("train.idx")).unwrap(), original);
    let e = Trainer::new(config(&data, &runs, head, &[]), &device, true)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("is not what"), "{e}");
    tiny_data(&data);

    // The second session resumes at step 8 and runs the remaining 4 steps.
    let second = config(&data, &runs, head, &[]);
    let mut trainer = Trainer::new(second, &device, true).unwrap();
    assert_eq!(trainer.start_step(), 8);
    let mut rec = Record::default();
    let summary = trainer.run(&mut rec).unwrap();
    assert!(summary.finished);
    assert_eq!(rec.losses.len(), 4);
    assert_eq!(rec.checkpoints, vec![12]);
    assert!(run_dir.join("model.safetensors").is_file());
    assert!(!run_dir.join("checkpoints/step-00000004").exists());
    // Steps 9 and 10 of the interrupted session were dropped from the log and redone.
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = metrics
        .lines()
        .filter(|l| l.contains("\"kind\":\"step\""))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (1..=12).collect::<Vec<u64>>());
    // Weights, optimiser momentum, centres, head state, data order and negatives all come
    // back: the resumed steps repeat the uninterrupted run's exactly.
    assert_eq!(rec.losses[..], uninterrupted[8..]);
    // The training cost adds up over sessions: the checkpoint at step 8 carried the first
    // session's 8 steps, this session trained 4.
    let this_session = (4 * 16) as f64 / summary.images_per_second;
    assert!(
        summary.train_seconds > 1.5 * this_session,
        "{} s in all, {this_session} s in this session",
        summary.train_seconds
    );
}

#[test]
fn a_frequency_mapping_takes_the_training_sets_histogram() {
    use poseface_data::augment::AugmentConfig;
    use poseface_data::dataset::FaceDataset;
    use poseface_loss::{MarginHeadConfig, PoseMapping};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    let head =
        "kind = \"paa\"\nmapping = { kind = \"frequency\", edges = [0.0, 30.0, 60.0, 90.0] }";
    let trainer = Trainer::new(
        config(&data, &tmp.path().join("runs"), head, &[]),
        &Device::default(),
        false,
    )
    .unwrap();
    // Share of the training faces per |yaw| bin, counted here from the sidecar's angles.
    let set = FaceDataset::open(&data, AugmentConfig::none(), 0).unwrap();
    let mut counts = [0f32; 3];
    for i in 0..set.len() {
        let yaw = set.angles(i).unwrap().yaw.abs();
        counts[((yaw / 30.0) as usize).min(2)] += 1.0;
    }
    let want: Vec<f32> = counts.iter().map(|c| c / set.len() as f32).collect();
    let MarginHeadConfig::Paa(paa) = trainer.head().config() else {
        panic!("{:?}", trainer.head().config())
    };
    let PoseMapping::Frequency { probabilities, .. } = &paa.mapping else {
        panic!("{:?}", paa.mapping)
    };
    assert_eq!(probabilities, &want);
    assert!(want[2] < want[0], "the tiny set is frontal-heavy: {want:?}");
}

#[test]
fn a_diverging_loss_stops_with_a_diagnostic_and_keeps_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    let runs = tmp.path().join("runs");
    let device = Device::default().autodiff();
    let mut c = config(&data, &runs, "kind = \"arcface\"", &["optim.steps=40"]);
    // A learning rate this large makes the weights overflow within a few steps.
    c.optim.lr = 1e30;
    c.optim.warmup_steps = 0;
    c.optim.clip_grad_norm = 0.0;
    c.checkpoint.every_steps = 1;
    let mut trainer = Trainer::new(c, &device, false).unwrap();
    let err = trainer.run(&mut ()).unwrap_err();
    let TrainError::NonFinite {
        step,
        last_checkpoint,
        ..
    } = &err
    else {
        panic!("expected a non-finite loss, got {err}");
    };
    assert!(*step >= 2, "{err}");
    let kept = last_checkpoint.as_ref().expect("a checkpoint was written");
    assert!(kept.join("backbone.safetensors").is_file());
    assert!(err.to_string().contains("Last good checkpoint"), "{err}");
}

#[test]
fn paa_without_poses_trains_as_arcface_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    std::fs::remove_file(data.join("pose.sidecar")).unwrap();
    let c = config(
        &data,
        &tmp.path().join("runs"),
        "kind = \"paa\"\nbase_margin = 0.4",
        &["optim.steps=3"],
    );
    let mut trainer = Trainer::new(c, &Device::default().autodiff(), false).unwrap();
    #[derive(Default)]
    struct Warnings(Vec<String>);
    impl TrainObserver for Warnings {
        fn started(&mut self, info: &poseface_train::RunInfo) {
            self.0 = info.warnings.clone();
        }
    }
    let mut w = Warnings::default();
    trainer.run(&mut w).unwrap();
    assert_eq!(w.0.len(), 1);
    assert!(
        w.0[0].contains("paa head is switched off") && w.0[0].contains("m = base_margin = 0.4"),
        "{:?}",
        w.0
    );
}

#[test]
fn an_unwritable_run_directory_is_reported_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    // A file where the runs directory should be: no directory can be created under it
    // (permission bits would not stop root, which CI runs as).
    let blocker = tmp.path().join("runs");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let c = config(&data, &blocker, "kind = \"arcface\"", &[]);
    let err = Trainer::new(c, &Device::default().autodiff(), false)
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .starts_with("cannot write the run directory"),
        "{err}"
    );
}

#[test]
fn a_data_parallel_run_is_repeatable_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    tiny_data(&data);
    let runs = tmp.path().join("runs");
    let device = Device::default().autodiff();
    let two = [device.clone(), device.clone()];
    let head = "kind = \"curricularface\"\nscale = 16.0";

    // Two shards of 8 faces, each on its own thread, gradients added on the first device.
    let mut whole = Record::default();
    let summary =
        Trainer::with_devices(config(&data, &runs, head, &["name=\"whole\""]), &two, false)
            .unwrap()
            .run(&mut whole)
            .unwrap();
    assert!(summary.finished);
    assert_eq!(whole.losses.len(), 12);
    assert!(whole.losses.iter().all(|l| l.is_finite()));
    // BatchNorm sees 8 faces at a time instead of 16: not the one-device run's losses.
    let mut single = Record::default();
    Trainer::new(
        config(&data, &runs, head, &["name=\"single\""]),
        &device,
        false,
    )
    .unwrap()
    .run(&mut single)
    .unwrap();
    assert_ne!(single.losses[..], whole.losses[..]);
    // Run again: the same losses, bit for bit (the shards' gradients are added in device
    // order whichever thread finishes first).
    let mut again = Record::default();
    Trainer::with_devices(config(&data, &runs, head, &["name=\"again\""]), &two, false)
        .unwrap()
        .run(&mut again)
        .unwrap();
    assert_eq!(again.losses[..], whole.losses[..]);

    // Interrupted after 6 steps (checkpoint at 4), then resumed on two devices: the
    // uninterrupted run's losses, step by step.
    let mut first = Record {
        stop_after: Some(6),
        ..Default::default()
    };
    Trainer::with_devices(config(&data, &runs, head, &[]), &two, false)
        .unwrap()
        .run(&mut first)
        .unwrap();
    assert_eq!(first.losses[..], whole.losses[..6]);
    let mut second = Record::default();
    let mut trainer = Trainer::with_devices(config(&data, &runs, head, &[]), &two, true).unwrap();
    assert_eq!(trainer.start_step(), 4);
    trainer.run(&mut second).unwrap();
    for (k, (got, want)) in second.losses.iter().zip(&whole.losses[4..]).enumerate() {
        assert_eq!(got, want, "step {}", k + 5);
    }

    // Fewer than two faces per device is refused before anything is built.
    let many = vec![device.clone(); 9];
    let e = Trainer::with_devices(config(&data, &runs, head, &["name=\"many\""]), &many, false)
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains("cannot be split across 9 devices"),
        "{e}"
    );
}
