//! `cargo xtask train`: synthetic data if absent, then the default training run.

use std::process::Command;

use anyhow::Result;
use clap::Args;

/// Where the default synthetic dataset is generated.
pub const SYNTH_DIR: &str = "datasets/generated/synth-small";

/// Arguments of `cargo xtask train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The experiment config.
    #[arg(long, default_value = "configs/synth-paa.toml")]
    config: std::path::PathBuf,
    /// Synthetic preset to generate when the data is absent (tiny, small, medium).
    #[arg(long, default_value = "small")]
    preset: String,
    /// Device (`cpu`, or a GPU backend compiled in with `--features`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Config overrides passed on to `poseface train --set`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Generates the built-in synthetic dataset when it is absent, shows what it holds, and
/// trains the default config on it with `poseface train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let root = crate::workspace_root();
    let dir = if args.preset == "small" {
        root.join(SYNTH_DIR)
    } else {
        root.join(format!("datasets/generated/synth-{}", args.preset))
    };
    let poseface = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["run", "--release", "--quiet", "-p", "poseface", "--"]);
        cmd.args(extra);
        cmd
    };
    if dir.join("synth.json").exists() {
        println!("synthetic data present: {}", dir.display());
    } else {
        println!(
            "generating the built-in synthetic dataset ({}) …",
            args.preset
        );
        let out = dir.to_string_lossy().into_owned();
        crate::run_cmd(&mut poseface(&[
            "data",
            "synth",
            "--preset",
            &args.preset,
            "--out",
            &out,
        ]))?;
    }
    crate::run_cmd(&mut poseface(&["data", "inspect", &dir.to_string_lossy()]))?;
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
