//! `cargo xtask train`: synthetic data if absent, then the default PoseFace training run.

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
    /// Synthetic preset to generate when the data is absent (tiny, small, medium).
    #[arg(long, default_value = "small")]
    preset: String,
}

/// Generates the built-in synthetic dataset when it is absent and shows what it holds.
///
/// The training stack (backbones, margin heads, the training loop) is not part of this
/// version yet; the command says so plainly after preparing the data instead of pretending
/// to train.
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
    println!(
        "\nthe data is ready; training with {} needs the model, loss and training crates, \
         which this version does not contain yet (see README.md, \"What works now\").",
        args.config.display()
    );
    Ok(())
}
