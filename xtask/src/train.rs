//! `cargo xtask train`: synthetic data (if absent or of another generator version) and the
//! landmark autoencoder (if absent), then the
//! default training run (PoseFace on the built-in synthetic faces).

use std::process::Command;

use anyhow::Result;
use clap::Args;

/// Where the default synthetic dataset is generated.
pub const SYNTH_DIR: &str = "datasets/generated/synth-small";

/// Arguments of `cargo xtask train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The experiment config.
    #[arg(long, default_value = "configs/synth-poseface.toml")]
    config: std::path::PathBuf,
    /// Synthetic preset to generate when the data is absent or stale (tiny, small, medium).
    #[arg(long, default_value = "small")]
    preset: String,
    /// Device (`cpu`, or a GPU backend compiled in with `--features`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Config overrides passed on to `poseface train --set`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Generates the built-in synthetic dataset when it is absent or made by another generator
/// version, shows what it holds, and
/// trains the default config on it with `poseface train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let root = crate::workspace_root();
    let dir = if args.preset == "small" {
        root.join(SYNTH_DIR)
    } else {
        root.join(format!("datasets/generated/synth-{}", args.preset))
    };
    ensure_synth(&dir, &args.preset, true)?;
    ensure_lae(&root.join(&args.config))?;
    let config = root.join(&args.config).to_string_lossy().into_owned();
    let mut train: Vec<String> = vec![
        "train".into(),
        "--config".into(),
        config,
        "--device".into(),
        args.device.clone(),
    ];
    // A rerun continues the run from its latest checkpoint (or, when it finished, reports
    // it again); delete `runs/<name>` to start over.
    train.push("--resume".into());
    for o in &args.overrides {
        train.push("--set".into());
        train.push(o.clone());
    }
    let train: Vec<&str> = train.iter().map(String::as_str).collect();
    let mut cmd = poseface(&train);
    cmd.current_dir(&root);
    crate::run_cmd(&mut cmd)
}

/// `poseface ARGS` through `cargo run --release` (built when out of date).
pub fn poseface(extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["run", "--release", "--quiet", "-p", "poseface", "--"]);
    cmd.args(extra);
    cmd
}

/// Generates the synthetic dataset `preset` into `dir` unless it is there, made by this
/// version of the generator (`poseface data synth --reuse` decides and replaces a dataset
/// of another version); then, with `show`, shows what it holds.
pub fn ensure_synth(dir: &std::path::Path, preset: &str, show: bool) -> Result<()> {
    if !dir.join("synth.json").exists() {
        println!("generating the built-in synthetic dataset ({preset}) …");
    }
    let out = dir.to_string_lossy().into_owned();
    crate::run_cmd(&mut poseface(&[
        "data", "synth", "--preset", preset, "--out", &out, "--reuse",
    ]))?;
    if show {
        crate::run_cmd(&mut poseface(&["data", "inspect", &dir.to_string_lossy()]))?;
    }
    Ok(())
}

/// Pretrains the landmark autoencoder `config` trains with, unless it is there.
pub fn ensure_lae(config: &std::path::Path) -> Result<()> {
    let root = crate::workspace_root();
    let Some(lae) = lae_path(config)? else {
        return Ok(());
    };
    let lae = root.join(lae);
    if lae.is_file() {
        println!("landmark autoencoder present: {}", lae.display());
        return Ok(());
    }
    println!("pretraining the landmark autoencoder on synthetic landmarks …");
    let out = lae.to_string_lossy().into_owned();
    let mut cmd = poseface(&["lae", "train", "--out", &out]);
    // Real landmark files, when the shared test data sits beside the checkout, are only
    // reported on, never trained on.
    let dlib = root.join("../shared/golden/dlib_faces/testing_with_face_landmarks.xml");
    if dlib.is_file() {
        cmd.arg("--test-landmarks").arg(&dlib);
    }
    crate::run_cmd(&mut cmd)
}

/// The landmark autoencoder a config trains with (`method.lae` of a `poseface` method).
fn lae_path(config: &std::path::Path) -> Result<Option<String>> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let method = table.get("method").and_then(|m| m.as_table());
    Ok(method
        .filter(|m| m.get("kind").and_then(|k| k.as_str()) == Some("poseface"))
        .and_then(|m| m.get("lae"))
        .and_then(|l| l.as_str())
        .map(str::to_string))
}
