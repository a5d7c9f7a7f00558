//! `poseface train --config FILE [--device D[,D…]] [--resume] [--set key=value …]`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use poseface_train::{
    ExperimentConfig, RunInfo, StepLog, TrainObserver, TrainSummary, Trainer, VerifyReport,
};

use super::device::parse_device;

/// Arguments of `poseface train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The experiment config (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Device: `cpu` (flex), `cuda[:N]`, `wgpu`, `vulkan`, `tch[-cuda:N]`, among those compiled in.
    /// Several, comma-separated (`cuda:0,cuda:1`), train data-parallel: each batch is split
    /// across them and their gradients added on the first.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Continue from the run's latest checkpoint.
    #[arg(long)]
    resume: bool,
    /// Override a config value, e.g. `--set optim.lr=0.05` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Progress bar with the loss, lr and img/s, plus insightface-style log lines.
struct Console {
    bar: ProgressBar,
    log_every: usize,
}

impl Console {
    /// A log line above the bar, or on stderr when the bar is hidden (not a terminal).
    fn line(&self, text: String) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }
}

impl TrainObserver for Console {
    fn started(&mut self, info: &RunInfo) {
        for w in &info.warnings {
            self.line(format!("warning: {w}"));
        }
        self.line(format!(
            "training {} on {} images of {} identities{} → {}{}",
            info.backbone,
            info.images,
            info.classes,
            if info.devices.len() > 1 {
                format!(
                    ", data-parallel over {} devices ({})",
                    info.devices.len(),
                    info.devices.join(", ")
                )
            } else {
                String::new()
            },
            info.run_dir.display(),
            if info.start_step > 0 {
                format!(" (resumed at step {})", info.start_step)
            } else {
                String::new()
            }
        ));
        self.bar.set_position(info.start_step as u64);
    }

    fn step(&mut self, log: &StepLog) {
        self.bar.set_length(log.steps as u64);
        self.bar.set_position(log.step as u64);
        // With several terms (PoseFace), each is shown beside the total.
        let terms: String = if log.terms.len() > 1 {
            log.terms
                .iter()
                .map(|(name, v)| format!(" {name} {v:.3}"))
                .collect()
        } else {
            String::new()
        };
        self.bar.set_message(format!(
            "loss {:.3}{terms} lr {:.4} {:.0} img/s",
            log.loss, log.lr, log.images_per_second
        ));
        if log.step.is_multiple_of(self.log_every) {
            self.line(format!(
                "Speed {:.1} samples/sec   Loss {:.4}{terms}   LearningRate {:.6}   Global Step: {}/{}",
                log.images_per_second, log.loss, log.lr, log.step, log.steps
            ));
        }
    }

    fn evaluated(&mut self, step: usize, r: &VerifyReport) {
        self.line(format!(
            "[{}][{step}]Accuracy-Flip: {:.5}+-{:.5}",
            r.name, r.accuracy, r.accuracy_std
        ));
    }

    fn checkpointed(&mut self, step: usize, dir: &Path) {
        self.line(format!("checkpoint at step {step}: {}", dir.display()));
    }
}

/// Runs `poseface train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let devices = args
        .device
        .split(',')
        .map(|name| parse_device(name.trim()).map(|d| d.autodiff()))
        .collect::<Result<Vec<_>>>()?;
    let config = ExperimentConfig::load(&args.config, &args.overrides)?;
    let mut trainer = Trainer::with_devices(config, &devices, args.resume)
        .with_context(|| format!("setting up {}", args.config.display()))?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .expect("valid template"),
    );
    let mut console = Console { bar, log_every: 50 };
    let summary = trainer.run(&mut console)?;
    console.bar.finish_and_clear();
    print_summary(&summary);
    Ok(())
}

fn print_summary(s: &TrainSummary) {
    // A resumed run that had already reached its last step trains nothing in this session.
    let rate = if s.final_loss.is_some() {
        format!("{:.0} img/s while training", s.images_per_second)
    } else {
        "no step left to train".to_string()
    };
    println!(
        "\n{} at step {} after {:.0} s ({rate}), final loss {}",
        if s.finished { "finished" } else { "stopped" },
        s.steps,
        s.seconds,
        s.final_loss.map_or("–".to_string(), |l| format!("{l:.3}"))
    );
    println!("{:<14} {:>18} {:>18}", "set", "accuracy", "raw pixels");
    for (r, p) in s.verification.iter().zip(&s.pixel_baseline) {
        println!(
            "{:<14} {:>9.2}% ± {:<5.2} {:>9.2}% ± {:<5.2}",
            r.name,
            100.0 * r.accuracy,
            100.0 * r.accuracy_std,
            100.0 * p.accuracy,
            100.0 * p.accuracy_std
        );
    }
    for (r, p) in s.verification.iter().zip(&s.pixel_baseline) {
        let (Some(model), Some(pixels)) = (&r.by_pose, &p.by_pose) else {
            continue;
        };
        println!("\n{} by pose (model / raw pixels):", r.name);
        for (m, b) in model.by_pose.iter().zip(&pixels.by_pose) {
            let pct =
                |a: Option<f64>| a.map_or("–".to_string(), |a| format!("{:.1}%", 100.0 * a));
            println!(
                "  {:<18} {:>6} pairs  {:>7} / {:>7}",
                m.bucket,
                m.pairs,
                pct(m.accuracy),
                pct(b.accuracy)
            );
        }
    }
    if let Some(p) = &s.probe {
        println!(
            "\npose left in the identity embedding (held-out R² of ridge probes on {} faces of {}): yaw {:.3}, |yaw| {:.3}",
            p.scored, p.set, p.yaw_r2, p.abs_yaw_r2
        );
    }
    if let Some(o) = s.orthogonality {
        println!("orthogonality residual ‖Ŵ_id Ŵ_pᵀ‖²_F = {o:.2e}");
    }
    if let Some(n) = &s.pose_landmarks {
        println!(
            "pose branch → landmarks through the frozen decoder: NME {:.2}% (the autoencoder's own: {:.2}%) on {} training faces",
            100.0 * n.pose_branch,
            100.0 * n.autoencoder,
            n.faces
        );
    }
    println!(
        "\nrun files: {} (config.toml, metrics.jsonl, checkpoints/, model.safetensors, summary.json)",
        s.run_dir.display()
    );
}
