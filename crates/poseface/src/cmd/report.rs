//! `poseface report RUN… [--out FILE.md] [--plots DIR] [--cross-pose SET] [--header FILE]
//! [--footer FILE]`: runs side by side, grouped by method across seeds (`<method>-s<seed>`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use poseface_train::compare::{RunRecord, markdown, plots};

/// Arguments of `poseface report`.
#[derive(Args)]
pub struct ReportArgs {
    /// Finished run directories (with `summary.json`); evaluation reports written under
    /// them by `poseface eval --report RUN/<dir>` are included.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Write the Markdown here (default: print it).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the plots here (default: `<out without extension>/` beside `--out`).
    #[arg(long)]
    plots: Option<PathBuf>,
    /// The cross-pose validation set of the main table (default: the first one with yaws).
    #[arg(long)]
    cross_pose: Option<String>,
    /// Markdown placed above the tables.
    #[arg(long)]
    header: Option<PathBuf>,
    /// Markdown placed below the tables.
    #[arg(long)]
    footer: Option<PathBuf>,
}

/// Runs `poseface report`.
pub fn run(a: ReportArgs) -> Result<()> {
    let mut runs = Vec::new();
    for dir in &a.runs {
        if !dir.join("summary.json").is_file() {
            bail!("{}: no summary.json (not a finished run)", dir.display());
        }
        runs.push(RunRecord::load(dir)?);
    }
    let cross_pose = match a.cross_pose {
        Some(s) => s,
        None => runs
            .iter()
            .flat_map(|r| &r.summary.verification)
            .find(|v| v.by_pose.is_some())
            .map(|v| v.name.clone())
            .context("no validation set with yaws in these runs: give --cross-pose SET")?,
    };
    let read = |p: &Option<PathBuf>| -> Result<String> {
        p.as_ref().map_or(Ok(String::new()), |p| {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        })
    };
    let mut text = read(&a.header)?;
    if !text.is_empty() && !text.ends_with("\n\n") {
        text.push('\n');
    }
    text.push_str(&markdown(&runs, &cross_pose));
    let plot_dir = a
        .plots
        .clone()
        .or_else(|| a.out.as_ref().map(|o| o.with_extension("")));
    if let Some(dir) = &plot_dir {
        let files = plots(&runs, &cross_pose, dir)?;
        if !files.is_empty() {
            text.push_str("\n## Plots\n\n");
        }
        // Links relative to the Markdown file when it is written beside the plots.
        let base = a
            .out
            .as_ref()
            .and_then(|o| o.parent().map(|p| p.to_path_buf()));
        for f in files {
            let link = base
                .as_ref()
                .and_then(|b| f.strip_prefix(b).ok())
                .unwrap_or(&f)
                .display()
                .to_string();
            text.push_str(&format!(
                "![{}]({link})\n\n",
                f.file_stem().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    let footer = read(&a.footer)?;
    if !footer.is_empty() {
        text.push('\n');
        text.push_str(&footer);
    }
    match &a.out {
        Some(out) => {
            poseface_data::fsutil::write_atomic(out, text.as_bytes())?;
            println!("{} runs → {}", runs.len(), out.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
