//! Runs that survive faults: the trainer is killed with SIGKILL at five random moments and
//! resumed each time; every checkpoint left on disk stays readable, the run completes, and
//! its per-step losses and final verification equal an uninterrupted run's exactly (the
//! default CPU backend is deterministic).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};

fn poseface() -> Command {
    Command::new(env!("CARGO_BIN_EXE_poseface"))
}

fn write_config(dir: &Path, data: &Path, runs: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\nruns_dir = \"{}\"\nseed = 4\n[data]\ntrain = \"{}\"\nval = [\"{}\"]\n\
             input_size = 56\n[model]\nbackbone = \"r18\"\nwidth = 0.0625\nembedding_size = 32\n\
             [head]\nkind = \"paa\"\nscale = 16.0\n[optim]\nbatch_size = 16\nsteps = 60\n\
             warmup_steps = 4\n[eval]\nevery_steps = 0\n[checkpoint]\nevery_steps = 3\nkeep = 1\n",
            runs.display(),
            data.display(),
            data.join("synth_cplfw.bin").display()
        ),
    )
    .unwrap();
    path
}

/// Trains (resuming when a checkpoint exists) until the run finishes.
fn train_to_end(config: &Path) {
    let out = poseface()
        .args(["train", "--config", config.to_str().unwrap(), "--resume"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(step, loss)` of every step record in a run's `metrics.jsonl`.
fn step_losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) // a line being written is skipped
        .filter(|v| v["kind"] == "step")
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

fn final_accuracy(run: &Path) -> f64 {
    let text = std::fs::read_to_string(run.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["verification"][0]["accuracy"].as_f64().unwrap()
}

/// The checkpoint `latest` names holds a readable state and backbone.
fn check_latest(run: &Path) {
    let latest = run.join("checkpoints/latest");
    if !latest.exists() {
        return;
    }
    let name = std::fs::read_to_string(&latest).unwrap();
    let dir = run.join("checkpoints").join(name.trim());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    assert!(state["step"].as_u64().unwrap() > 0);
    for file in [
        "backbone.safetensors",
        "centres.npy",
        "backbone.optim.bpk",
        "config.toml",
    ] {
        let len = std::fs::metadata(dir.join(file))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 0, "{} is missing or empty", dir.join(file).display());
    }
}

#[test]
fn killed_five_times_the_run_still_ends_exactly_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("synth");
    poseface_synth::writer::write_dataset(
        &poseface_synth::config::SynthConfig::preset(poseface_synth::config::Preset::Tiny, 2),
        &data,
        &|_, _, _| {},
    )
    .unwrap();
    let runs = tmp.path().join("runs");

    let whole = write_config(tmp.path(), &data, &runs, "whole");
    train_to_end(&whole);

    let faulty = write_config(tmp.path(), &data, &runs, "faulty");
    let run = runs.join("faulty");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Five kill points at random steps, each past the previous one; a session is killed as
    // soon as its log reaches the next point (wherever it is in the step, checkpoint
    // writing included), so the test does not depend on the machine's speed.
    let mut target = 0;
    for kill in 1..=5 {
        target += rng.random_range(3..11);
        let mut child = poseface()
            .args(["train", "--config", faulty.to_str().unwrap(), "--resume"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A random extra delay places the kill anywhere inside the following step.
        let extra = Duration::from_millis(rng.random_range(0..150));
        loop {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before kill {kill}"
            );
            let reached = run.join("metrics.jsonl").is_file()
                && step_losses(&run).last().is_some_and(|(s, _)| *s >= target);
            if reached {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(extra);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        check_latest(&run);
        let at = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap_or_default();
        eprintln!("kill {kill} after step {target}: latest checkpoint {at:?}");
    }
    train_to_end(&faulty);
    check_latest(&run);

    let reference = step_losses(&runs.join("whole"));
    assert_eq!(reference.len(), 60);
    assert_eq!(step_losses(&run), reference);
    assert_eq!(final_accuracy(&run), final_accuracy(&runs.join("whole")));
}
