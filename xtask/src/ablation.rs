//! `cargo xtask ablation`: every config of `configs/ablation/` trained with each seed, each
//! run evaluated on the synthetic IJB-style set and the real faces at hand, and
//! `docs/RESULTS.md` generated from the runs' reports.
//!
//! Resumable: a finished run (`summary.json`) is not trained again, a run with checkpoints
//! continues from its latest one, and an evaluation whose `report.json` exists is skipped. So
//! the command can be stopped at any time and started again.
//!
//! Each finished and evaluated run leaves a record of a few kilobytes under
//! `docs/results/runs/<run>/` (its summary, evaluation reports and resolved config). The report
//! is generated from those records, so it survives a clean checkout, and a run whose record is
//! complete is not redone: the runs can be spread over several invocations or machines. A
//! record is complete when it holds every report this machine can make (the real-face report
//! only where `../shared/data` is present). Editing a config does not invalidate its records:
//! delete them to rerun.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::train::{SYNTH_DIR, ensure_lae, ensure_synth};

/// Where the runs go (the configs' `runs_dir`).
const RUNS: &str = "runs/ablation";
/// The kept records of finished runs, read by the report.
const RECORDS: &str = "docs/results/runs";
/// What a record keeps of a run, relative to the run's directory.
const RECORD_FILES: [&str; 4] = [
    "summary.json",
    "config.toml",
    "ijb/report.json",
    "real/report.json",
];
/// Verification sets built from the real faces beside the checkout.
const REAL: &str = "datasets/generated/real";

/// A real-face pair set: name, ImageFolder under `../shared/data`, `poseface data pairs`
/// options. The crops put the eyes near the ArcFace template's; see docs/RESULTS.md.
const REAL_SETS: [(&str, &str, &[&str]); 2] = [
    ("orl", "orl", &["--crop", "0,9,92,92"]),
    (
        "imm",
        "imm",
        &[
            "--crop",
            "16,8,32,32",
            "--gallery",
            "00",
            "--probes",
            "02,03",
        ],
    ),
];

/// Arguments of `cargo xtask ablation`.
#[derive(Args)]
pub struct AblationArgs {
    /// The study's configs, one method each, in table order: directories (every `*.toml` in
    /// name order) or single files, comma-separated; the first directory's `README.md` heads
    /// the report.
    #[arg(long, value_delimiter = ',', default_value = "configs/ablation")]
    configs: Vec<PathBuf>,
    /// The report to write; its plots go to the directory of the same name in lower case
    /// beside it (`docs/RESULTS.md` → `docs/results/`), whose `conclusion.md` is the footer.
    #[arg(long, default_value = "docs/RESULTS.md")]
    report: PathBuf,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// Only these methods (config names without the order prefix; repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Train nothing: evaluate the finished runs and write the report.
    #[arg(long)]
    no_train: bool,
    /// Device (`cpu`, or a GPU backend compiled in with `--features`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// One config of the study.
struct Method {
    /// `configs/ablation/NN-name.toml`.
    config: PathBuf,
    /// The config's `name`.
    name: String,
}

fn methods(paths: &[PathBuf], only: &[String]) -> Result<Vec<Method>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(path.clone());
        }
    }
    let mut out: Vec<Method> = Vec::new();
    for config in files {
        let text = std::fs::read_to_string(&config)?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}", config.display()))?;
        let name = table
            .get("name")
            .and_then(|n| n.as_str())
            .with_context(|| format!("{}: no name", config.display()))?
            .to_string();
        if out.iter().any(|m| m.name == name) {
            bail!("{}: a second config named {name}", config.display());
        }
        if only.is_empty() || only.contains(&name) {
            out.push(Method { config, name });
        }
    }
    if out.is_empty() {
        bail!("no configs in {paths:?} (or none named by --only)");
    }
    Ok(out)
}

/// Runs the study (see the module docs).
pub fn run(a: AblationArgs) -> Result<()> {
    let root = crate::workspace_root();
    std::env::set_current_dir(&root)?;
    let methods = methods(&a.configs, &a.only)?;
    ensure_synth(&root.join(SYNTH_DIR), "small", false)?;
    for m in &methods {
        ensure_lae(&m.config)?;
    }
    // One build, then the binary itself: editing sources while the study runs does not
    // rebuild under it.
    crate::run_cmd(Command::new(env!("CARGO")).args(["build", "--release", "-p", "poseface"]))?;
    let bin = root.join("target/release/poseface");
    let real = real_sets(&bin)?;
    let total = methods.len() * a.seeds.len();
    let mut k = 0;
    for &seed in &a.seeds {
        for m in &methods {
            k += 1;
            let name = format!("{}-s{seed}", m.name);
            let record = root.join(RECORDS).join(&name);
            if is_complete(&record, !real.is_empty()) {
                continue;
            }
            let run = root.join(RUNS).join(&name);
            if !run.join("summary.json").is_file() {
                if a.no_train {
                    continue;
                }
                println!("\n[{k}/{total}] training {name} …");
                crate::run_cmd(Command::new(&bin).args([
                    "train",
                    "--config",
                    &m.config.to_string_lossy(),
                    "--set",
                    &format!("seed={seed}"),
                    "--set",
                    &format!("name={name}"),
                    "--device",
                    &a.device,
                    "--resume",
                ]))?;
            }
            evaluate(
                &bin,
                &run,
                &real,
                &a.device,
                &format!("[{k}/{total}] {name}"),
            )?;
            keep_record(&run, &record)?;
        }
    }
    let header = a
        .configs
        .iter()
        .find(|p| p.is_dir())
        .map(|d| d.join("README.md"));
    report(&bin, &methods, &a.seeds, &a.report, header.as_deref())
}

/// The plots directory of a report: `docs/RESULTS.md` → `docs/results`.
fn plots_dir(report: &Path) -> PathBuf {
    let stem = report.file_stem().map_or_else(
        || "report".to_string(),
        |s| s.to_string_lossy().to_lowercase(),
    );
    report.with_file_name(stem)
}

/// Whether a record holds everything the report reads (the real-face report only when
/// those sets exist here).
fn is_complete(record: &Path, real: bool) -> bool {
    RECORD_FILES
        .iter()
        .filter(|f| real || !f.starts_with("real/"))
        .all(|f| record.join(f).is_file())
}

/// Copies a run's summary, evaluation reports and config into its record.
fn keep_record(run: &Path, record: &Path) -> Result<()> {
    for file in RECORD_FILES {
        let from = run.join(file);
        if from.is_file() {
            let to = record.join(file);
            std::fs::create_dir_all(to.parent().expect("a file in the record"))?;
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(())
}

/// Builds the real-face pair sets whose images are at hand; returns those that exist.
fn real_sets(bin: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(REAL).with_context(|| format!("creating {REAL}"))?;
    let mut out = Vec::new();
    for (name, folder, options) in REAL_SETS {
        let set = PathBuf::from(REAL).join(format!("{name}.bin"));
        let images = PathBuf::from("../shared/data").join(folder);
        if !set.is_file() {
            if !images.is_dir() {
                println!(
                    "{} is absent: the runs are not evaluated on {name}",
                    images.display()
                );
                continue;
            }
            let mut cmd = Command::new(bin);
            cmd.args(["data", "pairs", "--images"]).arg(&images);
            cmd.arg("--out").arg(&set).args(options);
            crate::run_cmd(&mut cmd)?;
        }
        out.push(set);
    }
    Ok(out)
}

/// IJB-style 1:1 on every template pair, then the real-face sets; each skipped when done.
fn evaluate(bin: &Path, run: &Path, real: &[PathBuf], device: &str, label: &str) -> Result<()> {
    let ijb = run.join("ijb");
    if !ijb.join("report.json").is_file() {
        println!("{label}: IJB-style 1:1 …");
        let mut cmd = Command::new(bin);
        cmd.args(["eval", "--run"]).arg(run);
        cmd.args(["--ijb", &format!("{SYNTH_DIR}/ijb"), "--target", "IJBC"]);
        cmd.args(["--all-pairs", "--device", device, "--report"])
            .arg(&ijb);
        crate::run_cmd(&mut cmd)?;
    }
    let dir = run.join("real");
    if !real.is_empty() && !dir.join("report.json").is_file() {
        println!("{label}: real faces …");
        let mut cmd = Command::new(bin);
        cmd.args(["eval", "--run"]).arg(run);
        for set in real {
            cmd.arg("--bin").arg(set);
        }
        cmd.args(["--device", device, "--report"]).arg(&dir);
        crate::run_cmd(&mut cmd)?;
    }
    Ok(())
}

/// The report and its plots from every kept record, methods in config order.
fn report(
    bin: &Path,
    methods: &[Method],
    seeds: &[u64],
    out: &Path,
    header: Option<&Path>,
) -> Result<()> {
    let mut runs = Vec::new();
    for m in methods {
        for seed in seeds {
            let record = PathBuf::from(RECORDS).join(format!("{}-s{seed}", m.name));
            if record.join("summary.json").is_file() {
                runs.push(record);
            }
        }
    }
    if runs.is_empty() {
        bail!("no finished runs in {RECORDS}");
    }
    let mut cmd = Command::new(bin);
    cmd.arg("report").args(&runs);
    let plots = plots_dir(out);
    cmd.arg("--out").arg(out).arg("--plots").arg(&plots);
    let footer = plots.join("conclusion.md");
    for (flag, file) in [("--header", header), ("--footer", Some(footer.as_path()))] {
        if let Some(file) = file.filter(|f| f.is_file()) {
            cmd.arg(flag).arg(file);
        }
    }
    crate::run_cmd(&mut cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_has_its_plots_in_the_directory_of_its_name() {
        assert_eq!(
            plots_dir(Path::new("docs/RESULTS.md")),
            PathBuf::from("docs/results")
        );
        assert_eq!(
            plots_dir(Path::new("docs/SWEEPS.md")),
            PathBuf::from("docs/sweeps")
        );
    }

    #[test]
    fn a_record_keeps_what_the_report_reads_and_completes_the_run() {
        let tmp = std::env::temp_dir().join(format!("poseface-record-{}", std::process::id()));
        let (run, record) = (tmp.join("run"), tmp.join("record"));
        for file in [
            "summary.json",
            "config.toml",
            "ijb/report.json",
            "checkpoints/x",
        ] {
            std::fs::create_dir_all(run.join(file).parent().unwrap()).unwrap();
            std::fs::write(run.join(file), file).unwrap();
        }
        assert!(!is_complete(&record, false));
        keep_record(&run, &record).unwrap();
        // Without real-face sets the record is complete; with them it lacks real/report.json.
        assert!(is_complete(&record, false));
        assert!(!is_complete(&record, true));
        assert!(!record.join("checkpoints").exists());
        assert_eq!(
            std::fs::read_to_string(record.join("ijb/report.json")).unwrap(),
            "ijb/report.json"
        );
        std::fs::create_dir_all(run.join("real")).unwrap();
        std::fs::write(run.join("real/report.json"), "{}").unwrap();
        keep_record(&run, &record).unwrap();
        assert!(is_complete(&record, true));
        std::fs::remove_dir_all(tmp).unwrap();
    }
}
