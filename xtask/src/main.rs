//! Project automation: `cargo xtask train | ablation | bench | ci`.
//!
//! Thin drivers over the workspace crates and scripts; one module per command.

use clap::{Parser, Subcommand};

mod ablation;
mod bench;
mod ci;
mod train;

/// PoseFace-rs project tasks.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Train PoseFace on the built-in synthetic data.
    Train(train::TrainArgs),
    /// Run the ablation study (configs/ablation × seeds), resumable, and write docs/RESULTS.md.
    Ablation(ablation::AblationArgs),
    /// Run the benchmark suite and write docs/BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Run the CI checks: fmt, clippy, tests.
    Ci,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Train(a) => train::run(a),
        Task::Ablation(a) => ablation::run(a),
        Task::Bench(a) => bench::run(a),
        Task::Ci => ci::run(),
    }
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // A prebuilt xtask copied to another machine (say, a GPU host without a Rust toolchain,
    // run as `xtask bench --device cuda --poseface BIN` from a checkout) finds the workspace
    // in its working directory instead.
    if !root.join("Cargo.toml").is_file()
        && let Ok(here) = std::env::current_dir()
    {
        return here;
    }
    root.canonicalize().unwrap_or(root)
}

/// Runs a command in the workspace root, failing on a non-zero exit.
fn run_cmd(cmd: &mut std::process::Command) -> anyhow::Result<()> {
    let status = cmd.current_dir(workspace_root()).status()?;
    anyhow::ensure!(status.success(), "{cmd:?} failed with {status}");
    Ok(())
}
