//! `poseface verify`: the 10-fold verification protocol on given embeddings.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use poseface_eval::verification::verify;

/// Arguments of `poseface verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// Embeddings as a 2-D `.npy` array (float32 or float64), rows `2k` and `2k+1` forming
    /// pair `k`. Rows are L2-normalised first (a no-op for normalised embeddings).
    #[arg(long)]
    embeddings: PathBuf,
    /// One label per pair and line: 1/0 or true/false (same identity or not).
    #[arg(long)]
    issame: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Reads a 2-D float `.npy` file into rows × columns values.
pub fn read_npy(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let open = || -> Result<npyz::NpyFile<std::io::BufReader<std::fs::File>>> {
        let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        npyz::NpyFile::new(std::io::BufReader::new(f))
            .with_context(|| format!("{}: not a .npy file", path.display()))
    };
    let npy = open()?;
    let shape = npy.shape().to_vec();
    if shape.len() != 2 {
        bail!(
            "{}: expected a 2-D array, got shape {shape:?}",
            path.display()
        );
    }
    let (rows, cols) = (shape[0] as usize, shape[1] as usize);
    let values: Vec<f32> = match npy.into_vec::<f32>() {
        Ok(v) => v,
        Err(_) => open()?
            .into_vec::<f64>()
            .with_context(|| format!("{}: expected float32 or float64 values", path.display()))?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
    };
    Ok((values, rows, cols))
}

fn read_labels(path: &Path) -> Result<Vec<bool>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| match l.trim().to_ascii_lowercase().as_str() {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            other => bail!(
                "{} line {}: expected 1/0 or true/false, got {other:?}",
                path.display(),
                i + 1
            ),
        })
        .collect()
}

/// Runs `poseface verify`.
pub fn run(a: VerifyArgs) -> Result<()> {
    let (mut emb, rows, dim) = read_npy(&a.embeddings)?;
    let issame = read_labels(&a.issame)?;
    if rows != 2 * issame.len() {
        bail!(
            "{} has {rows} rows but {} lists {} pairs (needs {} rows)",
            a.embeddings.display(),
            a.issame.display(),
            issame.len(),
            2 * issame.len()
        );
    }
    for (r, row) in emb.chunks_exact_mut(dim).enumerate() {
        if row.iter().any(|v| !v.is_finite()) {
            bail!("{}: row {r} is not finite", a.embeddings.display());
        }
        let n = row
            .iter()
            .map(|v| (*v as f64).powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        row.iter_mut().for_each(|v| *v = (*v as f64 / n) as f32);
    }
    let r = verify(&emb, dim, &issame)?;
    if a.json {
        let v = serde_json::json!({
            "pairs": issame.len(),
            "accuracy_mean": r.accuracy_mean,
            "accuracy_std": r.accuracy_std,
            "threshold_mean": r.threshold_mean,
            "fold_accuracy": r.fold_accuracy,
            "fold_threshold": r.fold_threshold,
            "val_at_far_1e-3": r.val,
            "val_std": r.val_std,
            "far": r.far,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} pairs: accuracy {:.2}% ± {:.2}, threshold {:.3}, VAL {:.2}% ± {:.2} @ FAR {:.5}",
            issame.len(),
            100.0 * r.accuracy_mean,
            100.0 * r.accuracy_std,
            r.threshold_mean,
            100.0 * r.val,
            100.0 * r.val_std,
            r.far
        );
    }
    Ok(())
}
