//! `poseface eval --run DIR --bin FILE.bin … [--report DIR] [--json]`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use poseface_train::verifier::write_report;
use poseface_train::{Embedder, VerificationSet};

use super::device::parse_device;

/// Arguments of `poseface eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// A training run directory (its `config.toml` and `model.safetensors`).
    #[arg(long)]
    run: PathBuf,
    /// Verification `.bin` files (repeatable); a `<stem>.yaws.txt` beside one adds the
    /// accuracy by pose bucket.
    #[arg(long = "bin", required = true)]
    bins: Vec<PathBuf>,
    /// Where `report.md`, `roc.svg` and `pose_accuracy.svg` go (default: `RUN/eval`).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Faces per forward pass.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Device: `cpu`, or a GPU backend compiled in.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `poseface eval`.
pub fn run(a: EvalArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let embedder = Embedder::from_run(&a.run, &device)?;
    let input_size = embedder.input_size();
    let mut reports = Vec::new();
    let mut baselines = Vec::new();
    for bin in &a.bins {
        let set = VerificationSet::load(bin)?;
        if set.is_empty() {
            bail!("{}: no pairs", bin.display());
        }
        reports.push(set.evaluate(&embedder, a.batch)?);
        baselines.push(set.pixel_baseline(input_size, &device)?);
    }
    let dir = a.report.clone().unwrap_or_else(|| a.run.join("eval"));
    write_report(
        &dir,
        &format!("{} evaluated", a.run.display()),
        &reports,
        &baselines,
    )?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"sets": reports, "raw_pixels": baselines, "report": dir})
        );
        return Ok(());
    }
    println!(
        "{:<14} {:>18} {:>12} {:>10}",
        "set", "accuracy", "VAL@1e-3", "raw pixels"
    );
    for (r, b) in reports.iter().zip(&baselines) {
        println!(
            "{:<14} {:>9.2}% ± {:<5.2} {:>11.2}% {:>9.2}%",
            r.name,
            100.0 * r.accuracy,
            100.0 * r.accuracy_std,
            100.0 * r.val_at_far,
            100.0 * b.accuracy
        );
        if let Some(p) = &r.by_pose {
            for bucket in &p.by_pose {
                let acc = bucket
                    .accuracy
                    .map_or("–".to_string(), |v| format!("{:.1}%", 100.0 * v));
                println!(
                    "    {:<18} {:>6} pairs  {acc:>7}",
                    bucket.bucket, bucket.pairs
                );
            }
        }
    }
    println!("report: {}", dir.join("report.md").display());
    Ok(())
}
