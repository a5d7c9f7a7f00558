//! `poseface bench backbone --model NAME [--batch B] [--device D] [--precision P] [--iters N]
//! [--warmup N] [--json FILE]`:
//! how fast a backbone runs on one device. Three measurements, each the median of `--iters`
//! timed repetitions after `--warmup` (one by default) untimed:
//!
//! - `forward`: inference on a batch already on the device (running batch-norm statistics,
//!   no autodiff);
//! - `embed_flip`: what `poseface embed --flip` does per batch: aligned 112×112 faces from
//!   host memory, uploaded, resized to the network's input, embedded with their mirror
//!   images, summed and read back;
//! - `train_step`: forward, mean squared error to a fixed target, backward, SGD with
//!   momentum 0.9 and weight decay 5e-4.
//!
//! `scripts/backbone_bench.py` does the same work in PyTorch; `cargo xtask bench` runs both
//! and writes the comparison to `docs/BENCHMARKS.md`. A command of the binary rather than a
//! criterion bench so that a prebuilt `poseface` (for instance one built with
//! `--features cuda`) can be measured on a machine without a Rust toolchain.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig, decay::WeightDecayConfig};
use burn::tensor::{Device, Distribution, Tensor};
use clap::{Args, Subcommand};
use poseface_model::{Backbone, BackboneConfig};
use poseface_train::{Embedder, Precision, set_precision};
use serde::Serialize;

use super::device::parse_device;

/// Side of the aligned faces `embed_flip` starts from.
const ALIGNED: usize = 112;

/// Largest width multiplier `--model` takes (a 16× IResNet-18 already has 8192 channels).
const MAX_WIDTH: f64 = 16.0;

/// `poseface bench …`.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Forward, embedding with flip and training-step speed of one backbone.
    Backbone(BackboneArgs),
}

/// Arguments of `poseface bench backbone`.
#[derive(Args)]
pub struct BackboneArgs {
    /// `r18`, `r34`, `r50`, `r100`, `r200` or `mbf`, optionally followed by `-w<width>` and
    /// `-s<input side>`: `r18-w0.25-s56` is the CPU-sized default of the synthetic runs.
    #[arg(long)]
    model: String,
    /// Images per batch (at least 2: batch norm trains on batch statistics).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Device (`cpu`, `cuda:N`, … among those compiled in).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Timed repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed repetitions before them (a GPU backend tunes its kernels on the first runs).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Float type of the network on the device: `f32`, `f16` or `bf16` (as the training
    /// config's `optim.precision`).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What `poseface bench backbone` measured (seconds per batch).
#[derive(Debug, Serialize)]
pub struct BackboneTimes {
    /// The model as named on the command line.
    pub model: String,
    /// Images per batch.
    pub batch: usize,
    /// The device as named on the command line.
    pub device: String,
    /// The network's float type (`f32`, `f16`, `bf16`).
    pub precision: Precision,
    /// Timed repetitions behind each median.
    pub iters: usize,
    /// Untimed repetitions before them.
    pub warmup: usize,
    /// Median seconds of an inference forward.
    pub forward_s: f64,
    /// Median seconds of embedding a batch of host faces with their flips.
    pub embed_flip_s: f64,
    /// Median seconds of a training step.
    pub train_step_s: f64,
    /// Peak resident memory of the process (Linux `VmHWM`), if known.
    pub peak_rss_bytes: Option<u64>,
}

/// Runs `poseface bench`.
pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Backbone(args) => backbone(args),
    }
}

fn parse_precision(text: &str) -> Result<Precision, String> {
    match text {
        "f32" => Ok(Precision::F32),
        "f16" => Ok(Precision::F16),
        "bf16" => Ok(Precision::Bf16),
        other => Err(format!("`{other}`: expected f32, f16 or bf16")),
    }
}

/// Parses `r18`, `r50-w0.5`, `r18-w0.25-s56`, `mbf-s112` into a backbone config.
pub fn parse_model(name: &str) -> Result<BackboneConfig> {
    let mut parts = name.split('-');
    let mut config = BackboneConfig::named(parts.next().unwrap_or_default());
    for part in parts {
        let bad = || format!("--model {name}: `{part}` is neither -w<width> nor -s<input side>");
        if let Some(w) = part.strip_prefix('w') {
            config.width = w
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w > 0.0 && *w <= MAX_WIDTH)
                .with_context(|| format!("{}, a width in (0, {MAX_WIDTH}]", bad()))?;
        } else if let Some(s) = part.strip_prefix('s') {
            config.input_size = s.parse().ok().filter(|s| *s > 0).with_context(bad)?;
        } else {
            bail!(bad());
        }
    }
    if !ALIGNED.is_multiple_of(config.input_size) {
        bail!(
            "--model {name}: the input side must divide {ALIGNED} (faces are average-pooled from 112×112)"
        );
    }
    Ok(config)
}

fn backbone(args: BackboneArgs) -> Result<()> {
    let config = parse_model(&args.model)?;
    if args.batch < 2 || args.iters == 0 {
        bail!(
            "--batch must be at least 2 and --iters at least 1 (got {} and {})",
            args.batch,
            args.iters
        );
    }
    let mut device = parse_device(&args.device)?;
    set_precision(&mut device, args.precision).context("--precision")?;
    let model = config.init(&device)?;
    let s = config.input_size;
    let b = args.batch;
    let bar = super::progress_bar(&format!("{} b{b}", args.model), false);
    bar.set_length(3 * (args.iters + args.warmup) as u64);
    let mut time = |f: &mut dyn FnMut()| -> f64 {
        for _ in 0..args.warmup {
            f();
            bar.inc(1);
        }
        let mut times: Vec<f64> = (0..args.iters)
            .map(|_| {
                let t = Instant::now();
                f();
                let secs = t.elapsed().as_secs_f64();
                bar.inc(1);
                secs
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let n = times.len();
        // The median as Python's `statistics.median` takes it.
        if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2.0
        }
    };

    // A device error is kept and reported after the clock stops, never a panic.
    let mut failed: Option<String> = None;
    let images = Tensor::<4>::random([b, 3, s, s], Distribution::Uniform(-1.0, 1.0), &device);
    let forward_s = time(&mut || {
        if let Err(e) = model.forward(images.clone()).sum().try_into_scalar::<f32>() {
            failed.get_or_insert(format!("forward: {e:?}"));
        }
    });
    check(&mut failed)?;

    let faces: Vec<f32> = Tensor::<4>::random(
        [b, 3, ALIGNED, ALIGNED],
        Distribution::Uniform(-1.0, 1.0),
        &device,
    )
    .try_into_data()
    .map_err(|e| anyhow::anyhow!("making random faces on the device: {e:?}"))?
    .convert::<f32>()
    .try_to_vec::<f32>()
    .map_err(|e| anyhow::anyhow!("reading random faces back: {e:?}"))?;
    let embedder = Embedder::new(model.clone(), s, config.embedding_size, &device);
    let embed_flip_s = time(&mut || {
        if let Err(e) = embedder.try_embed_normalised(&faces, true, b) {
            failed.get_or_insert(format!("embedding: {e}"));
        }
    });
    drop(embedder);
    check(&mut failed)?;

    let train_step_s = train_step_time(model, &images, &device, &mut time)?;
    bar.finish_and_clear();

    let result = BackboneTimes {
        model: args.model,
        batch: b,
        device: args.device,
        precision: args.precision,
        iters: args.iters,
        warmup: args.warmup,
        forward_s,
        embed_flip_s,
        train_step_s,
        peak_rss_bytes: peak_rss_bytes(),
    };
    for (what, secs) in [
        ("forward", forward_s),
        ("embed_flip", embed_flip_s),
        ("train_step", train_step_s),
    ] {
        println!(
            "{} b{} on {}: {what} {:.1} ms ({:.1} img/s)",
            result.model,
            b,
            result.device,
            secs * 1e3,
            b as f64 / secs
        );
    }
    if let Some(peak) = result.peak_rss_bytes {
        println!("peak resident memory: {} MB", peak / 1_000_000);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Times training steps of `model` (moved to the autodiff form of `device`) on `images`.
fn train_step_time(
    model: Backbone,
    images: &Tensor<4>,
    device: &Device,
    time: &mut dyn FnMut(&mut dyn FnMut()) -> f64,
) -> Result<f64> {
    let ad = device.clone().autodiff();
    let mut model = Some(model.to_device(&ad).train());
    let mut optim = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
        .init();
    let x = images.clone().to_device(&ad);
    let [b, ..] = x.dims();
    let dim = model.as_ref().map_or(0, |m| m.forward(x.clone()).dims()[1]);
    let target = Tensor::<2>::random([b, dim], Distribution::Normal(0.0, 1.0), &ad);
    let mut failed = None;
    let secs = time(&mut || {
        let Some(m) = model.take() else { return };
        let loss = (m.forward(x.clone()) - target.clone())
            .powi_scalar(2)
            .mean();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        model = Some(optim.step(0.1, m, grads));
        // A GPU queues the work: wait for the step to finish before the clock stops.
        if let Err(e) = ad.sync() {
            failed.get_or_insert(format!("training step: {e:?}"));
        }
    });
    check(&mut failed)?;
    Ok(secs)
}

/// The first device error a measurement met, as an error.
fn check(failed: &mut Option<String>) -> Result<()> {
    match failed.take() {
        Some(e) => bail!("the device failed during the {e}"),
        None => Ok(()),
    }
}

/// Peak resident memory of this process, from `/proc/self/status` (Linux only).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_parse_and_bad_ones_are_named() {
        let c = parse_model("r18-w0.25-s56").unwrap();
        assert_eq!((c.name.as_str(), c.width, c.input_size), ("r18", 0.25, 56));
        assert_eq!(parse_model("r50").unwrap().input_size, 112);
        assert_eq!(parse_model("mbf").unwrap().embedding_size, 128);
        let e = parse_model("r18-x3").unwrap_err().to_string();
        assert!(e.contains("`x3`"), "{e}");
        assert!(parse_model("r18-w0").is_err());
        assert!(parse_model("r18-winf").is_err());
        assert!(parse_model("r18-w1e6").is_err());
        assert!(
            parse_model("r18-s50")
                .unwrap_err()
                .to_string()
                .contains("divide")
        );
    }
}
