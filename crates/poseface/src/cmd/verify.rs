//! `poseface verify`: the 10-fold verification protocol on given embeddings.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use poseface_eval::verification::verify;

/// Arguments of `poseface verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// Embeddings as a 2-D `.npy` array (float32 or float64). With `--issame`: rows `2k` and
    /// `2k+1` form pair `k` and are L2-normalised first. With `--ijb`: one row per image in
    /// the order of `ijbX_face_tid_mid.txt`, each the sum of the image's and its flip's
    /// embeddings (not normalised).
    #[arg(long)]
    embeddings: PathBuf,
    /// One label per pair and line: 1/0 or true/false (same identity or not).
    #[arg(long, conflicts_with = "ijb", required_unless_present = "ijb")]
    issame: Option<PathBuf>,
    /// Per pair and line, the two faces' yaws in degrees (`yaw_a yaw_b`): adds accuracy by
    /// pose class and by yaw difference (e.g. `synth_cplfw.yaws.txt` from `data synth`).
    #[arg(long, conflicts_with = "ijb")]
    pair_yaws: Option<PathBuf>,
    /// An IJB root (holding `meta/`): IJB 1:1 verification with template aggregation.
    #[arg(long)]
    ijb: Option<PathBuf>,
    /// Which IJB meta files: IJBB or IJBC.
    #[arg(long, default_value = "IJBC")]
    target: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Reads a 2-D float `.npy` file into rows × columns single-precision values.
pub fn read_npy(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    read_npy_as(path, |v: f64| v as f32)
}

/// Reads a 2-D float32 or float64 `.npy` file into rows × columns `f64` values (float32
/// values exactly).
pub fn read_npy_f64(path: &Path) -> Result<(Vec<f64>, usize, usize)> {
    read_npy_as(path, |v| v)
}

/// Reads a 2-D float `.npy` into `T` values: float32 files through `f64::from`, float64
/// files through `narrow`.
fn read_npy_as<T: From<f32>>(
    path: &Path,
    narrow: impl Fn(f64) -> T,
) -> Result<(Vec<T>, usize, usize)> {
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
    let values: Vec<T> = match npy.into_vec::<f32>() {
        Ok(v) => v.into_iter().map(T::from).collect(),
        Err(_) => open()?
            .into_vec::<f64>()
            .with_context(|| format!("{}: expected float32 or float64 values", path.display()))?
            .into_iter()
            .map(narrow)
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
    if let Some(root) = &a.ijb {
        return run_ijb(root, &a);
    }
    // Double precision from here on, as insightface's `test()` normalises and measures.
    let (mut emb, rows, dim) = read_npy_f64(&a.embeddings)?;
    if dim == 0 {
        bail!("{}: embeddings have no columns", a.embeddings.display());
    }
    let labels = a
        .issame
        .as_ref()
        .expect("clap requires --issame without --ijb");
    let issame = read_labels(labels)?;
    if rows != 2 * issame.len() {
        bail!(
            "{} has {rows} rows but {} lists {} pairs (needs {} rows)",
            a.embeddings.display(),
            labels.display(),
            issame.len(),
            2 * issame.len()
        );
    }
    for (r, row) in emb.chunks_exact_mut(dim).enumerate() {
        if row.iter().any(|v| !v.is_finite()) {
            bail!("{}: row {r} is not finite", a.embeddings.display());
        }
        poseface_eval::verification::normalise_f64(row);
    }
    let r = verify(&emb, dim, &issame)?;
    let stratified = match &a.pair_yaws {
        Some(p) => {
            let yaws = read_yaws(p)?;
            let dist = poseface_eval::verification::pair_distances(&emb, dim)?;
            Some(poseface_eval::pose::pose_stratified(
                &dist,
                &issame,
                &yaws,
                &r,
                poseface_eval::pose::PROFILE_FROM,
            )?)
        }
        None => None,
    };
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
            "by_pose": stratified.as_ref().map(|s| &s.by_pose),
            "by_yaw_difference": stratified.as_ref().map(|s| &s.by_yaw_difference),
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
        if let Some(s) = &stratified {
            for b in s.by_pose.iter().chain(&s.by_yaw_difference) {
                let acc = b
                    .accuracy
                    .map_or("–".to_string(), |a| format!("{:.2}%", 100.0 * a));
                println!(
                    "  {:16} {:5} pairs ({} genuine)  {acc}",
                    b.bucket, b.pairs, b.positives
                );
            }
        }
    }
    Ok(())
}

fn read_yaws(path: &Path) -> Result<Vec<[f32; 2]>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Vec<f32> = l
                .split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect();
            match v.as_slice() {
                [a, b] if a.is_finite() && b.is_finite() => Ok([*a, *b]),
                _ => bail!(
                    "{} line {}: expected two yaws in degrees, got {l:?}",
                    path.display(),
                    i + 1
                ),
            }
        })
        .collect()
}

fn run_ijb(root: &Path, a: &VerifyArgs) -> Result<()> {
    use poseface_eval::ijb::aggregate;
    use poseface_eval::roc::IJB_FARS;
    let target: poseface_data::IjbTarget = a.target.parse()?;
    let meta = poseface_data::IjbMeta::open(root, target)?;
    let (emb, rows, dim) = read_npy(&a.embeddings)?;
    if rows != meta.faces.names.len() {
        bail!(
            "{} has {rows} rows but {} lists {} images",
            a.embeddings.display(),
            root.display(),
            meta.faces.names.len()
        );
    }
    let templates = aggregate(
        &emb,
        dim,
        &meta.landmarks.scores,
        &meta.faces.templates,
        &meta.faces.medias,
    )?;
    let labels: Vec<bool> = meta.pairs.labels.iter().map(|&l| l == 1).collect();
    let roc = templates.roc(&meta.pairs.t1, &meta.pairs.t2, &labels)?;
    let pairs = labels.len();
    let tar = roc.tar_at_far(&IJB_FARS);
    let names = ["1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1"];
    if a.json {
        let map: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(&tar)
            .map(|(n, t)| (n.to_string(), serde_json::json!(t)))
            .collect();
        let v = serde_json::json!({
            "images": rows,
            "templates": templates.ids.len(),
            "pairs": pairs,
            "tar_at_far": map,
            "auc": roc.auc(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} images, {} templates, {} pairs; TAR @ FAR:",
            rows,
            templates.ids.len(),
            pairs
        );
        for (n, t) in names.iter().zip(&tar) {
            println!("  {n:>5}  {:.2}%", 100.0 * t);
        }
    }
    Ok(())
}
