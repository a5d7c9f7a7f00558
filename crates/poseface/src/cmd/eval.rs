//! `poseface eval --run DIR (--bin FILE.bin … | --ijb ROOT --target IJBB|IJBC [--all-pairs])
//! [--report DIR] [--json]`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use poseface_train::ijb::{IjbPairs, IjbReport, evaluate_ijb, markdown};
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
    #[arg(long = "bin", required_unless_present = "ijb")]
    bins: Vec<PathBuf>,
    /// An IJB-B/C root (`meta/` and `loose_crop/`): 1:1 verification of its template pairs.
    #[arg(long, requires = "target")]
    ijb: Option<PathBuf>,
    /// Which IJB meta files: IJBB or IJBC.
    #[arg(long)]
    target: Option<String>,
    /// Score every pair of distinct IJB templates (subjects from the listed genuine pairs),
    /// not just the listed pairs: resolves small FARs on a small set.
    #[arg(long, requires = "ijb")]
    all_pairs: bool,
    /// Where `report.md`, `report.json` and the plots go (default: `RUN/eval`).
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
    let dir = a.report.clone().unwrap_or_else(|| a.run.join("eval"));
    let mut reports = Vec::new();
    let mut baselines = Vec::new();
    for bin in &a.bins {
        let set = VerificationSet::load(bin)?;
        if set.is_empty() {
            bail!("{}: no pairs", bin.display());
        }
        let name = bin
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let bar = super::progress_bar(&format!("embedding {name}"), a.json);
        reports.push(
            set.evaluate_with_progress(&embedder, a.batch, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?,
        );
        bar.finish_and_clear();
        baselines.push(set.pixel_baseline(input_size, &device)?);
    }
    if !reports.is_empty() {
        write_report(
            &dir,
            &format!("{} evaluated", a.run.display()),
            &reports,
            &baselines,
        )?;
    }
    let ijb = match (&a.ijb, &a.target) {
        (Some(root), Some(target)) => Some(run_ijb(&embedder, root, target, &a, &dir)?),
        _ => None,
    };
    let json =
        serde_json::json!({"sets": reports, "raw_pixels": baselines, "ijb": ijb, "report": dir});
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    poseface_data::fsutil::write_atomic(
        &dir.join("report.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    if a.json {
        println!("{json}");
        return Ok(());
    }
    if let Some(r) = &ijb {
        println!(
            "{} 1:1: {} images, {} templates, {} genuine / {} impostor pairs ({})",
            r.target,
            r.images,
            r.templates,
            r.genuine,
            r.impostors,
            if a.all_pairs {
                "all template pairs"
            } else {
                "listed pairs"
            }
        );
        for t in &r.tar_at_far {
            println!("  TAR @ FAR {:>5.0e}  {:6.2}%", t.far, 100.0 * t.tar);
        }
        println!("  AUC {:.4}", r.auc);
    }
    if reports.is_empty() {
        println!("report: {}", dir.join("report.md").display());
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

/// IJB 1:1 of the run; adds its table to `dir/report.md` and its ROC as `dir/ijb_roc.svg`
/// (and PNG).
fn run_ijb(
    embedder: &Embedder,
    root: &std::path::Path,
    target: &str,
    a: &EvalArgs,
    dir: &std::path::Path,
) -> Result<IjbReport> {
    let target: poseface_data::IjbTarget = target.parse()?;
    let pairs = if a.all_pairs {
        IjbPairs::All
    } else {
        IjbPairs::Listed
    };
    let bar = super::progress_bar("embedding IJB images", a.json);
    let report = evaluate_ijb(embedder, root, target, pairs, a.batch, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("report.md");
    // After the pair sets' report when there is one; a report of its own otherwise.
    let fresh = format!("# {} evaluated\n", a.run.display());
    let mut text = if a.bins.is_empty() {
        fresh
    } else {
        std::fs::read_to_string(&path).unwrap_or(fresh)
    };
    text.push_str(&markdown(&report));
    let plot = "ijb_roc.svg";
    let curve: Vec<(f64, f64)> = report.curve.iter().map(|t| (t.far, t.tar)).collect();
    if !curve.is_empty() {
        let series = [(format!("{} (AUC {:.4})", report.target, report.auc), curve)];
        let title = format!("{} 1:1 ROC", report.target);
        poseface_eval::report::tar_far_svg(&title, &series, 1e-5, &dir.join(plot))?;
        text.push_str(&format!("\n![{} ROC]({plot})\n", report.target));
    }
    poseface_data::fsutil::write_atomic(&path, text.as_bytes())?;
    Ok(report)
}
