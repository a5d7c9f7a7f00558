//! `poseface data synth`: write a synthetic dataset and/or a montage.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use poseface_synth::config::{Preset, SynthConfig};
use poseface_synth::generate::Generator;
use poseface_synth::montage::{montage, montage_yaws};
use poseface_synth::scene::PosePreset;
use poseface_synth::writer::{GENERATOR_VERSION, clear_dataset, write_dataset};

/// Arguments of `poseface data synth`.
#[derive(Args)]
pub struct SynthArgs {
    /// Dataset size: tiny (seconds, for tests), small (the CPU default), medium.
    #[arg(long, default_value = "small")]
    preset: String,
    /// Output directory (train.rec/.idx/property, pose.sidecar, synth_cplfw.bin,
    /// synth_lfw.bin, ijb/, synth.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Master seed; the same seed and options give the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also draw 8 identities × 9 yaws (−90°…90°) into this PNG.
    #[arg(long)]
    montage: Option<PathBuf>,
    /// Training yaw distribution: frontal-heavy or uniform.
    #[arg(long)]
    pose: Option<String>,
    /// How far apart identities are (1 = population spread; smaller is harder).
    #[arg(long)]
    identity_spread: Option<f32>,
    /// Training identities (overrides the preset).
    #[arg(long)]
    identities: Option<usize>,
    /// Images per training identity (overrides the preset).
    #[arg(long)]
    images_per_identity: Option<usize>,
    /// Keep OUT as it is when it already holds this dataset (its synth.json names the same
    /// generator version and configuration); otherwise, when OUT holds another synthetic
    /// dataset, remove that dataset's files (other files stay), and generate it.
    #[arg(long)]
    reuse: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The report recorded in `dir/synth.json` when it describes the dataset `config` made by
/// this generator version.
fn held_report(dir: &Path, config: &SynthConfig) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("synth.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let same = json.get("generator_version").and_then(|v| v.as_u64())
        == Some(GENERATOR_VERSION.into())
        && serde_json::to_value(config).ok().as_ref() == json.get("config");
    same.then(|| json.get("report").cloned()).flatten()
}

/// Runs `poseface data synth`.
pub fn run(a: SynthArgs) -> Result<()> {
    let preset: Preset = a.preset.parse()?;
    let mut config = SynthConfig::preset(preset, a.seed);
    if let Some(p) = &a.pose {
        config.pose.preset = p.parse::<PosePreset>()?;
    }
    if let Some(s) = a.identity_spread {
        config.identity_spread = s;
    }
    if let Some(n) = a.identities {
        config.identities = n;
    }
    if let Some(n) = a.images_per_identity {
        config.images_per_identity = n;
    }
    config.validate()?;
    if a.out.is_none() && a.montage.is_none() {
        bail!("nothing to do: give --out DIR and/or --montage OUT.png");
    }
    if let Some(path) = &a.montage {
        let g = Generator::new(config.clone())?;
        let ids: Vec<_> = (0..8).map(|i| g.identity(i)).collect();
        montage(&ids, &montage_yaws(), 128)
            .save(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if !a.json {
            println!("wrote montage {}", path.display());
        }
    }
    let Some(out) = &a.out else { return Ok(()) };
    if a.reuse {
        if let Some(mut report) = held_report(out, &config) {
            // The dataset may have been made at another path (moved, or named relatively
            // from elsewhere): report where it is now.
            if let Some(o) = report.get_mut("out") {
                *o = serde_json::Value::String(out.display().to_string());
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} already holds this dataset (generator version {GENERATOR_VERSION})",
                    out.display()
                );
            }
            return Ok(());
        }
        // A dataset of ours (it has a synth.json) of another version or configuration goes
        // first, so that none of it lingers beside the new one; other files stay, and a
        // directory without a synth.json is never cleared.
        if out.join("synth.json").exists() {
            if !a.json {
                println!(
                    "{} holds a dataset of another generator version or configuration: \
                     regenerating it",
                    out.display()
                );
            }
            clear_dataset(out)?;
        }
    }
    let bar = super::progress_bar("synth", a.json);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:6} {bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}, {per_sec}]",
        )
        .expect("valid template"),
    );
    let start = Instant::now();
    let report = write_dataset(&config, out, &|stage, done, total| {
        if done == 0 {
            bar.set_message(stage.to_string());
            bar.set_length(total);
            bar.set_position(0);
            bar.reset_eta();
        } else {
            bar.set_position(done);
        }
    })?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let s = report.train_yaw_shares;
    println!(
        "wrote {} in {:.1} s: {} training images of {} identities (|yaw| <30° {:.1}%, 30–60° {:.1}%, >60° {:.1}%)",
        out.display(),
        start.elapsed().as_secs_f32(),
        report.train_images,
        report.train_identities,
        100.0 * s[0],
        100.0 * s[1],
        100.0 * s[2]
    );
    for p in &report.pair_sets {
        println!(
            "  {:16} {} pairs, {} positive, {:.0}% of positives cross-pose",
            p.file,
            p.pairs,
            p.positives,
            100.0 * p.cross_pose_positive_share
        );
    }
    println!(
        "  ijb/             {} images, {} templates, {} template pairs",
        report.ijb[0], report.ijb[1], report.ijb[2]
    );
    Ok(())
}
