//! `cargo xtask train`: synthetic data if absent, then the default PoseFace training run.

use clap::Args;

/// Arguments of `cargo xtask train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The experiment config.
    #[arg(long, default_value = "configs/synth-poseface.toml")]
    config: std::path::PathBuf,
}

/// Reports what this version can do: the training stack (synthetic data, backbones, margin
/// heads, the training loop) is not part of it yet, so the command says so and fails rather
/// than pretending to train.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "training ({}) is not available in this version: the data layer (formats, alignment, pose, \
         batching) is. Try `cargo run -p poseface -- data inspect ../shared/data/orl`; see README.md \"What works now\"",
        args.config.display()
    )
}
