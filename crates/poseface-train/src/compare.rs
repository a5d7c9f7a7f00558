//! Runs side by side: each run's `summary.json` and the evaluation reports written under it
//! (`<run>/<dir>/report.json` by `poseface eval`), grouped into methods across seeds, as
//! Markdown tables (mean ± standard deviation over seeds) and plots.
//!
//! A run named `<method>-s<seed>` belongs to group `<method>`; any other name is a group of
//! its own. The first group is the baseline the others' accuracy differences are taken
//! against, paired by seed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use poseface_eval::pose::PoseStratified;
use serde::Deserialize;

use crate::ijb::IjbReport;
use crate::{TrainError, TrainSummary, VerifyReport};

/// One run and what was measured on it.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Run directory.
    pub dir: PathBuf,
    /// Group (method) name.
    pub group: String,
    /// Seed parsed from a `-s<seed>` suffix.
    pub seed: Option<u64>,
    /// The run's summary.
    pub summary: TrainSummary,
    /// Pair sets evaluated after training (`poseface eval --bin`), model and raw pixels.
    pub sets: Vec<(VerifyReport, Option<VerifyReport>)>,
    /// IJB 1:1 (`poseface eval --ijb`).
    pub ijb: Option<IjbReport>,
}

#[derive(Deserialize)]
struct EvalJson {
    #[serde(default)]
    sets: Vec<VerifyReport>,
    #[serde(default)]
    raw_pixels: Vec<VerifyReport>,
    #[serde(default)]
    ijb: Option<IjbReport>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
}

/// Splits `<group>-s<seed>`.
pub fn group_and_seed(name: &str) -> (String, Option<u64>) {
    if let Some((group, seed)) = name.rsplit_once("-s")
        && !group.is_empty()
        && let Ok(seed) = seed.parse()
    {
        return (group.to_string(), Some(seed));
    }
    (name.to_string(), None)
}

impl RunRecord {
    /// Reads a finished run: `summary.json` and every `*/report.json` one level below.
    pub fn load(dir: &Path) -> Result<Self, TrainError> {
        let summary: TrainSummary = read_json(&dir.join("summary.json"))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (group, seed) = group_and_seed(&name);
        let mut sets = Vec::new();
        let mut ijb = None;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| TrainError::Data(format!("{}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path().join("report.json")))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        for path in entries {
            let eval: EvalJson = read_json(&path)?;
            let mut baselines = eval.raw_pixels.into_iter();
            for set in eval.sets {
                sets.push((set, baselines.next()));
            }
            ijb = ijb.or(eval.ijb);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            group,
            seed,
            summary,
            sets,
            ijb,
        })
    }

    /// Final accuracy on a validation set of the run, or a set evaluated afterwards.
    pub fn accuracy(&self, set: &str) -> Option<f64> {
        self.verification(set).map(|r| r.accuracy)
    }

    fn verification(&self, set: &str) -> Option<&VerifyReport> {
        self.summary
            .verification
            .iter()
            .chain(self.sets.iter().map(|(m, _)| m))
            .find(|r| r.name == set)
    }

    fn pixels(&self, set: &str) -> Option<&VerifyReport> {
        self.summary
            .verification
            .iter()
            .zip(&self.summary.pixel_baseline)
            .map(|(m, b)| (m, Some(b)))
            .chain(self.sets.iter().map(|(m, b)| (m, b.as_ref())))
            .find(|(m, _)| m.name == set)
            .and_then(|(_, b)| b)
    }

    fn bucket(&self, set: &str, bucket: usize) -> Option<f64> {
        let p: &PoseStratified = self.verification(set)?.by_pose.as_ref()?;
        p.by_pose.get(bucket)?.accuracy
    }
}

/// Mean and sample standard deviation of the values present.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1; 0 for one value).
    pub std: f64,
    /// Values.
    pub n: usize,
}

impl Stat {
    /// Of the values that are `Some`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = Option<f64>>) -> Option<Self> {
        let v: Vec<f64> = values.into_iter().flatten().collect();
        if v.is_empty() {
            return None;
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Self {
            mean,
            std: var.sqrt(),
            n,
        })
    }

    /// `mean ± std` of a fraction, in percent (the mean alone for one value).
    pub fn percent(this: Option<Self>) -> String {
        Self::plain(
            this.map(|s| Self {
                mean: 100.0 * s.mean,
                std: 100.0 * s.std,
                ..s
            }),
            2,
        )
    }

    /// `mean ± std` with `digits` decimals (the mean alone for one value).
    pub fn plain(this: Option<Self>, digits: usize) -> String {
        match this {
            None => "–".into(),
            Some(s) if s.n == 1 => format!("{:.digits$}", s.mean),
            Some(s) => format!("{:.digits$} ± {:.digits$}", s.mean, s.std),
        }
    }
}

/// Runs of one group.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// Group name.
    pub name: String,
    /// Its runs, by seed.
    pub runs: Vec<&'a RunRecord>,
}

impl Group<'_> {
    /// Statistic of `f` over the group's runs.
    pub fn stat(&self, f: impl Fn(&RunRecord) -> Option<f64>) -> Option<Stat> {
        Stat::of(self.runs.iter().map(|r| f(r)))
    }

    /// Seeds, comma-separated.
    pub fn seeds(&self) -> String {
        let s: Vec<String> = self
            .runs
            .iter()
            .map(|r| r.seed.map_or("–".into(), |s| s.to_string()))
            .collect();
        s.join(", ")
    }
}

/// Groups runs by method, in order of first appearance, each group's runs by seed.
pub fn groups(runs: &[RunRecord]) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    for r in runs {
        match out.iter_mut().find(|g| g.name == r.group) {
            Some(g) => g.runs.push(r),
            None => out.push(Group {
                name: r.group.clone(),
                runs: vec![r],
            }),
        }
    }
    for g in &mut out {
        g.runs.sort_by_key(|r| r.seed);
    }
    out
}

/// The difference `group − baseline` of `f`, paired by seed (seeds both have).
pub fn paired_difference(
    group: &Group<'_>,
    baseline: &Group<'_>,
    f: impl Fn(&RunRecord) -> Option<f64>,
) -> Option<Stat> {
    Stat::of(group.runs.iter().map(|r| {
        let b = baseline.runs.iter().find(|b| b.seed == r.seed)?;
        Some(f(r)? - f(b)?)
    }))
}

/// Names of the pair sets evaluated after training, in order of first appearance.
pub fn evaluated_sets(runs: &[RunRecord]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in runs {
        for (m, _) in &r.sets {
            if !names.contains(&m.name) {
                names.push(m.name.clone());
            }
        }
    }
    names
}

/// Markdown tables of the groups: verification on `cross_pose` (overall, by pose bucket, and
/// the difference to the first group), the other validation sets, IJB 1:1, pose left in the
/// identity embedding, the sets evaluated after training beside raw pixels, and the cost.
pub fn markdown(runs: &[RunRecord], cross_pose: &str) -> String {
    let groups = groups(runs);
    let Some(base) = groups.first() else {
        return "No runs.\n".into();
    };
    let mut md = format!(
        "_{} runs of {} methods; a cell is the mean ± sample standard deviation over the \
         seeds listed (the value alone for one seed)._\n\n",
        runs.len(),
        groups.len()
    );
    let frontal = |set: &str| {
        let set = set.to_string();
        move |r: &RunRecord| r.accuracy(&set)
    };
    let _ = writeln!(
        md,
        "## Cross-pose verification ({cross_pose}, 10-fold accuracy %, mean ± std over seeds)\n\n\
         | method | seeds | accuracy | Δ vs {} (paired) | frontal–frontal | frontal–profile | profile–profile | VAL@FAR=1e-3 |\n\
         |---|---|---|---|---|---|---|---|",
        base.name
    );
    for g in &groups {
        let delta = if g.name == base.name {
            "–".to_string()
        } else {
            Stat::percent(paired_difference(g, base, frontal(cross_pose)))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {delta} | {} | {} | {} | {} |",
            g.name,
            g.seeds(),
            Stat::percent(g.stat(frontal(cross_pose))),
            Stat::percent(g.stat(|r| r.bucket(cross_pose, 0))),
            Stat::percent(g.stat(|r| r.bucket(cross_pose, 1))),
            Stat::percent(g.stat(|r| r.bucket(cross_pose, 2))),
            Stat::percent(g.stat(|r| r.verification(cross_pose).map(|v| v.val_at_far))),
        );
    }
    let others: Vec<String> = runs
        .iter()
        .flat_map(|r| r.summary.verification.iter().map(|v| v.name.clone()))
        .filter(|n| n != cross_pose)
        .fold(Vec::new(), |mut acc, n| {
            if !acc.contains(&n) {
                acc.push(n);
            }
            acc
        });
    if runs.iter().any(|r| r.ijb.is_some()) || !others.is_empty() {
        let _ = write!(
            md,
            "\n## Other verification sets and IJB-style 1:1\n\n| method |"
        );
        for o in &others {
            let _ = write!(md, " {o} accuracy |");
        }
        let _ = writeln!(md, " TAR@FAR=1e-4 | TAR@FAR=1e-3 | IJB AUC |");
        let _ = writeln!(md, "|---|{}---|---|---|", "---|".repeat(others.len()));
        for g in &groups {
            let _ = write!(md, "| {} |", g.name);
            for o in &others {
                let _ = write!(md, " {} |", Stat::percent(g.stat(frontal(o))));
            }
            let tar = |far: f64| g.stat(|r| r.ijb.as_ref().and_then(|i| i.tar(far)));
            let _ = writeln!(
                md,
                " {} | {} | {} |",
                Stat::percent(tar(1e-4)),
                Stat::percent(tar(1e-3)),
                Stat::plain(g.stat(|r| r.ijb.as_ref().map(|i| i.auc)), 4)
            );
        }
        if let Some(i) = runs.iter().find_map(|r| r.ijb.as_ref()) {
            let _ = writeln!(
                md,
                "\nIJB-style: {} images in {} templates; {} genuine and {} impostor pairs \
                 ({}).",
                i.images,
                i.templates,
                i.genuine,
                i.impostors,
                match i.pairs_mode {
                    crate::ijb::IjbPairs::Listed => "the listed pairs",
                    crate::ijb::IjbPairs::All => "every pair of templates",
                }
            );
        }
    }
    let _ = writeln!(
        md,
        "\n## Pose left in the identity embedding (held-out R² of ridge probes; lower is more \
         pose-invariant)\n\n| method | yaw R² | abs(yaw) R² | orthogonality ‖Ŵ_id Ŵ_pᵀ‖² |\n|---|---|---|---|"
    );
    for g in &groups {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            g.name,
            Stat::plain(g.stat(|r| r.summary.probe.as_ref().map(|p| p.yaw_r2)), 3),
            Stat::plain(
                g.stat(|r| r.summary.probe.as_ref().map(|p| p.abs_yaw_r2)),
                3
            ),
            g.stat(|r| r.summary.orthogonality)
                .map_or("–".into(), |s| format!("{:.2e}", s.mean)),
        );
    }
    let sets = evaluated_sets(runs);
    if !sets.is_empty() {
        let _ = write!(
            md,
            "\n## Faces evaluated after training (10-fold accuracy %)\n\n| method |"
        );
        for s in &sets {
            let _ = write!(md, " {s} |");
        }
        let _ = writeln!(md, "\n|---|{}", "---|".repeat(sets.len()));
        for g in &groups {
            let _ = write!(md, "| {} |", g.name);
            for s in &sets {
                let _ = write!(md, " {} |", Stat::percent(g.stat(frontal(s))));
            }
            md.push('\n');
        }
        let _ = write!(md, "| raw pixels |");
        for s in &sets {
            let px = runs.iter().find_map(|r| r.pixels(s)).map(|b| b.accuracy);
            let _ = write!(
                md,
                " {} |",
                px.map_or("–".into(), |a| format!("{:.2}", 100.0 * a))
            );
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\n## Training cost (seconds in training steps per run, throughput)\n\n\
         | method | steps | seconds | images/s |\n|---|---|---|---|"
    );
    for g in &groups {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            g.name,
            g.runs.first().map_or(0, |r| r.summary.steps),
            Stat::plain(
                g.stat(|r| (r.summary.train_seconds > 0.0).then_some(r.summary.train_seconds)),
                0
            ),
            Stat::plain(
                g.stat(|r| {
                    let s = r.summary.train_seconds;
                    if s > 0.0 {
                        Some(r.summary.steps as f64 * batch_of(r)? / s)
                    } else {
                        None
                    }
                }),
                1
            ),
        );
    }
    md
}

/// Writes `accuracy_by_pose.svg` (mean accuracy per pose bucket of `cross_pose`, one bar
/// per group) and, when the runs have IJB reports, `ijb_roc.svg` (mean TAR at each FAR per
/// group) into `dir`; returns the files written.
pub fn plots(runs: &[RunRecord], cross_pose: &str, dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| TrainError::Data(format!("{}: {e}", dir.display())))?;
    let groups = groups(runs);
    let mut written = Vec::new();
    let series: Vec<(String, PoseStratified)> = groups
        .iter()
        .filter_map(|g| {
            let first = g
                .runs
                .iter()
                .find_map(|r| r.verification(cross_pose)?.by_pose.clone())?;
            let by_pose = first
                .by_pose
                .iter()
                .enumerate()
                .map(|(b, bucket)| poseface_eval::pose::BucketAccuracy {
                    accuracy: g.stat(|r| r.bucket(cross_pose, b)).map(|s| s.mean),
                    ..bucket.clone()
                })
                .collect();
            Some((
                g.name.clone(),
                PoseStratified {
                    by_pose,
                    by_yaw_difference: Vec::new(),
                },
            ))
        })
        .collect();
    if !series.is_empty() {
        let path = dir.join("accuracy_by_pose.svg");
        poseface_eval::report::pose_accuracy_svg(&series, &path)?;
        written.push(path);
    }
    let curves: Vec<(String, Vec<(f64, f64)>)> = groups
        .iter()
        .filter_map(|g| {
            let reports: Vec<&IjbReport> = g.runs.iter().filter_map(|r| r.ijb.as_ref()).collect();
            let first = reports.first()?;
            let points = (0..first.curve.len())
                .map(|k| {
                    let tar = reports.iter().filter_map(|i| i.curve.get(k)).map(|t| t.tar);
                    let n = reports.len() as f64;
                    (first.curve[k].far, tar.sum::<f64>() / n)
                })
                .collect();
            Some((g.name.clone(), points))
        })
        .collect();
    if curves.iter().any(|(_, p)| !p.is_empty()) {
        let path = dir.join("ijb_roc.svg");
        poseface_eval::report::tar_far_svg(
            "IJB-style 1:1 ROC (mean over seeds)",
            &curves,
            1e-5,
            &path,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// The batch size from the run's saved config.
fn batch_of(r: &RunRecord) -> Option<f64> {
    let text = std::fs::read_to_string(r.dir.join("config.toml")).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table
        .get("optim")?
        .get("batch_size")?
        .as_integer()
        .map(|b| b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_group_and_seed() {
        assert_eq!(
            group_and_seed("paa-linear-s2"),
            ("paa-linear".into(), Some(2))
        );
        assert_eq!(
            group_and_seed("synth-poseface"),
            ("synth-poseface".into(), None)
        );
        assert_eq!(group_and_seed("-s3"), ("-s3".into(), None));
    }

    #[test]
    fn stats_are_sample_statistics() {
        // 0.90, 0.92, 0.94: mean 0.92, sample std 0.02.
        let s = Stat::of([Some(0.90), None, Some(0.92), Some(0.94)]).unwrap();
        assert!((s.mean - 0.92).abs() < 1e-12 && (s.std - 0.02).abs() < 1e-12 && s.n == 3);
        assert_eq!(Stat::percent(Some(s)), "92.00 ± 2.00");
        assert_eq!(Stat::of([None]), None);
        let one = Stat::of([Some(0.015)]);
        assert_eq!(one.unwrap().std, 0.0);
        assert_eq!(Stat::percent(one), "1.50");
    }
}
