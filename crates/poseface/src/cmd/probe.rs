//! `poseface probe --run DIR --data PATH [--json]`: how much head pose a run's identity
//! embedding still carries (held-out R² of ridge probes to yaw, |yaw| and pitch), and for a
//! PoseFace run the orthogonality residual of its final projections.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use poseface_train::probe::{PoseProbe, ProbeFaces};
use poseface_train::{Embedder, VerificationSet};

use super::device::parse_device;

/// Arguments of `poseface probe`.
#[derive(Args)]
pub struct ProbeArgs {
    /// A finished run directory (`config.toml` + `model.safetensors`).
    #[arg(long)]
    run: PathBuf,
    /// Faces with known pose: a RecordIO/ImageFolder dataset with a pose sidecar (yaw and
    /// pitch), or a verification `.bin` with its `.yaws.txt` (yaw only).
    #[arg(long)]
    data: PathBuf,
    /// Use at most this many faces (of a dataset, or from the pairs of a `.bin`).
    #[arg(long, default_value_t = 6000)]
    limit: usize,
    /// Faces per embedding batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Device (`cpu`, `cuda:N`, … among those compiled in).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `poseface probe`.
pub fn run(args: ProbeArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let embedder = Embedder::from_run(&args.run, &device)?;
    let faces = if args.data.extension().is_some_and(|e| e == "bin") {
        ProbeFaces::from_verification_set(&VerificationSet::load(&args.data)?, args.limit)?
    } else {
        ProbeFaces::from_dataset(&args.data, args.limit)?
    };
    let probe = faces
        .probe(&embedder, args.batch_size)
        .with_context(|| format!("probing {}", args.data.display()))?;
    let orthogonality = summary_orthogonality(&args.run);
    if args.json {
        let mut value = serde_json::to_value(&probe)?;
        value["orthogonality"] = serde_json::json!(orthogonality);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print(&probe, orthogonality);
    }
    Ok(())
}

/// The orthogonality residual recorded in the run's `summary.json`, if any.
fn summary_orthogonality(run: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(run.join("summary.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("orthogonality")?.as_f64()
}

fn print(p: &PoseProbe, orthogonality: Option<f64>) {
    println!(
        "pose probes on {} (fit on {} faces, scored on {}): held-out R²",
        p.set, p.fit, p.scored
    );
    println!("  yaw     {:>7.3}", p.yaw_r2);
    println!("  |yaw|   {:>7.3}", p.abs_yaw_r2);
    if let Some(r) = p.pitch_r2 {
        println!("  pitch   {r:>7.3}");
    }
    if let Some(o) = orthogonality {
        println!("orthogonality residual ‖Ŵ_id Ŵ_pᵀ‖²_F = {o:.3e}");
    }
}
