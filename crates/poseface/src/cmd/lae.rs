//! `poseface lae train --out FILE …` and `poseface lae eval --lae FILE …`: the landmark
//! autoencoder that supervises PoseFace's pose branch.
//!
//! Training shapes are drawn from poseface-synth's landmark sampler (uniform yaw, pitch
//! ±25°, roll ±15°, random identities and expressions); with `--landmarks`, every eighth
//! shape comes from the given files instead (and, with `--mirror`, from their mirror images
//! as well). Every shape, synthetic or read, is put in the ArcFace-aligned 112×112 frame by
//! the 5-point similarity alignment first, exactly as the landmarks of training batches are.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Args, Subcommand};
use poseface_data::Point;
use poseface_data::align::arcface_transform;
use poseface_data::landmarks::{flip_points, read_dlib_xml, read_pts};
use poseface_data::sidecar::PoseSidecar;
use poseface_landmark::{
    LandmarkAutoencoder, LandmarkAutoencoderConfig, LandmarkSource, NmeReport, PretrainConfig,
    Weighting,
};
use poseface_synth::landmark_sampler::LandmarkSampler;
use serde::Serialize;

use super::device::parse_device;

/// Added to the training seed to draw held-out shapes.
const HELD_OUT_SEED: u64 = 1_000_003;

/// `poseface lae …`.
#[derive(Subcommand)]
pub enum LaeCommand {
    /// Pretrain a landmark autoencoder and report its NME.
    Train(TrainArgs),
    /// Report the NME of a trained autoencoder.
    Eval(EvalArgs),
}

/// Where test shapes come from.
#[derive(Args)]
pub struct TestArgs {
    /// Held-out synthetic shapes (other identities than training) to report NME on.
    #[arg(long, default_value_t = 5000)]
    held_out: usize,
    /// Real landmark files to report NME on: `.pts`, dlib `*.xml`, or a dataset's `pose.sidecar`.
    #[arg(long = "test-landmarks", value_name = "PATH")]
    test_landmarks: Vec<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Device (`cpu`, `cuda:N`, … among those compiled in).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Arguments of `poseface lae train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Where to write the weights (safetensors; the configuration goes in its metadata).
    #[arg(long)]
    out: PathBuf,
    /// Latent code size (the pose code's size in PoseFace).
    #[arg(long, default_value_t = 16)]
    latent: usize,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Optimisation steps.
    #[arg(long, default_value_t = PretrainConfig::default().steps)]
    steps: usize,
    /// Shapes per step.
    #[arg(long, default_value_t = PretrainConfig::default().batch_size)]
    batch_size: usize,
    /// Peak Adam learning rate.
    #[arg(long, default_value_t = PretrainConfig::default().lr)]
    lr: f64,
    /// Seed of the synthetic shapes and of the initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Extra training landmarks: `.pts`, dlib `*.xml`, or a dataset's `pose.sidecar`.
    #[arg(long = "landmarks", value_name = "PATH")]
    landmarks: Vec<PathBuf>,
    /// Also train on the mirror image of every `--landmarks` shape (left and right swapped
    /// with the iBUG permutation), doubling the real shapes.
    #[arg(long, requires = "landmarks")]
    mirror: bool,
    /// How shapes count in the loss: `uniform` (mean squared error) or `inter-ocular` (each
    /// shape's error over its squared inter-ocular distance, as NME by IOD scores it).
    #[arg(long, default_value = "uniform", value_parser = parse_weighting)]
    weighting: Weighting,
    #[command(flatten)]
    test: TestArgs,
}

fn parse_weighting(text: &str) -> Result<Weighting, String> {
    match text {
        "uniform" => Ok(Weighting::Uniform),
        "inter-ocular" => Ok(Weighting::InterOcular),
        other => Err(format!("`{other}`: expected uniform or inter-ocular")),
    }
}

/// Arguments of `poseface lae eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The weights written by `poseface lae train`.
    #[arg(long)]
    lae: PathBuf,
    /// Seed the autoencoder was trained with (held-out shapes use another one).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    test: TestArgs,
}

/// What `lae train` and `lae eval` report.
#[derive(Serialize)]
struct LaeReport {
    latent: usize,
    hidden: usize,
    /// The pretraining loss's weighting, when this command trained the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    weighting: Option<Weighting>,
    /// Whether mirror images of the real training shapes were added, when this command
    /// trained the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    mirror: Option<bool>,
    /// Held-out synthetic shapes, all poses.
    synthetic: Option<NmeReport>,
    /// The same, by |yaw| bucket: `< 30°`, `30–60°`, `≥ 60°`.
    synthetic_by_yaw: Vec<(String, f64, usize)>,
    /// Real landmark files.
    real: Option<NmeReport>,
    /// The same, file by file: path, mean NME of the inter-ocular distance, shapes.
    real_by_file: Vec<(String, f64, usize)>,
}

/// Runs `poseface lae …`.
pub fn run(command: LaeCommand) -> Result<()> {
    match command {
        LaeCommand::Train(args) => train(args),
        LaeCommand::Eval(args) => {
            let device = parse_device(&args.test.device)?;
            let ae = poseface_landmark::load(&args.lae, &device)?;
            report(&ae, None, args.seed, &args.test, &device)
        }
    }
}

/// Synthetic shapes, with every eighth taken from files when there are any.
struct Mixed {
    sampler: LandmarkSampler,
    files: Vec<Vec<Point>>,
}

impl LandmarkSource for Mixed {
    fn draw(&self, start: u64, count: usize) -> Vec<Vec<Point>> {
        let mut shapes: Vec<Vec<Point>> = self
            .sampler
            .batch(start, count)
            .into_iter()
            .map(|s| s.landmarks)
            .collect();
        if !self.files.is_empty() {
            for (k, shape) in shapes.iter_mut().enumerate() {
                let i = start + k as u64;
                if i % 8 == 7 {
                    *shape = self.files[((i / 8) % self.files.len() as u64) as usize].clone();
                }
            }
        }
        shapes
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let device = parse_device(&args.test.device)?;
    let files = read_shapes(&args.landmarks, args.mirror)?;
    let source = Mixed {
        sampler: LandmarkSampler {
            seed: args.seed,
            ..LandmarkSampler::default()
        },
        files,
    };
    let model = LandmarkAutoencoderConfig::new()
        .with_hidden(args.hidden)
        .with_latent(args.latent);
    let config = PretrainConfig {
        steps: args.steps,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        weighting: args.weighting,
    };
    let bar = indicatif::ProgressBar::new(config.steps as u64);
    if args.test.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "lae {bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}, {per_sec}] {msg}",
        )
        .expect("valid template"),
    );
    let ae = poseface_landmark::pretrain(&model, &config, &source, &device, &mut |s| {
        bar.set_position(s.step as u64);
        bar.set_message(format!("loss {:.2e} lr {:.1e}", s.loss, s.lr));
    })?;
    bar.finish_and_clear();
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    poseface_landmark::save(&ae, &args.out)?;
    if !args.test.json {
        println!("wrote {}", args.out.display());
    }
    let training = Training {
        weighting: args.weighting,
        mirror: args.mirror,
    };
    report(&ae, Some(training), args.seed, &args.test, &device)
}

/// How `lae train` trained the model it reports on.
struct Training {
    weighting: Weighting,
    mirror: bool,
}

fn report(
    ae: &LandmarkAutoencoder,
    training: Option<Training>,
    seed: u64,
    test: &TestArgs,
    device: &Device,
) -> Result<()> {
    let config = ae.config();
    let mut out = LaeReport {
        latent: config.latent,
        hidden: config.hidden,
        weighting: training.as_ref().map(|t| t.weighting),
        mirror: training.as_ref().map(|t| t.mirror),
        synthetic: None,
        synthetic_by_yaw: Vec::new(),
        real: None,
        real_by_file: Vec::new(),
    };
    if test.held_out > 0 {
        // Another seed: identities, expressions and poses the training never drew.
        let sampler = LandmarkSampler {
            seed: seed.wrapping_add(HELD_OUT_SEED),
            ..LandmarkSampler::default()
        };
        let samples = sampler.batch(0, test.held_out);
        let shapes: Vec<Vec<Point>> = samples.iter().map(|s| s.landmarks.clone()).collect();
        let r = poseface_landmark::evaluate(ae, &shapes, device)?;
        for (name, lo, hi) in [
            ("|yaw| < 30", 0.0, 30.0),
            ("30 ≤ |yaw| < 60", 30.0, 60.0),
            ("|yaw| ≥ 60", 60.0, 181.0),
        ] {
            let v: Vec<f64> = samples
                .iter()
                .zip(&r.per_shape)
                .filter(|(s, _)| (lo..hi).contains(&s.angles.yaw.abs()))
                .map(|(_, &e)| e)
                .collect();
            if !v.is_empty() {
                out.synthetic_by_yaw.push((
                    name.to_string(),
                    v.iter().sum::<f64>() / v.len() as f64,
                    v.len(),
                ));
            }
        }
        out.synthetic = Some(r);
    }
    let mut real = Vec::new();
    let mut per_file = Vec::new();
    for path in &test.test_landmarks {
        let shapes = read_shapes(std::slice::from_ref(path), false)?;
        per_file.push((path.display().to_string(), shapes.len()));
        real.extend(shapes);
    }
    if !real.is_empty() {
        let r = poseface_landmark::evaluate(ae, &real, device)?;
        let mut start = 0;
        for (name, n) in per_file {
            let errors = &r.per_shape[start..start + n];
            start += n;
            if n > 0 {
                let mean = errors.iter().sum::<f64>() / n as f64;
                out.real_by_file.push((name, mean, n));
            }
        }
        out.real = Some(r);
    }
    if test.json {
        let mut value = serde_json::to_value(&out)?;
        // Per-shape errors make the JSON long; the summary keeps the means.
        for key in ["synthetic", "real"] {
            if let Some(r) = value.get_mut(key).and_then(|r| r.as_object_mut()) {
                r.remove("per_shape");
            }
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "landmark autoencoder: latent {}, hidden {}",
        out.latent, out.hidden
    );
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.2}%", 100.0 * v));
    if let Some(r) = &out.synthetic {
        println!(
            "held-out synthetic ({} shapes): NME {} of the inter-ocular distance (median {}), {:.2}% of the box size",
            r.count,
            pct(r.iod_mean),
            pct(r.iod_median),
            100.0 * r.box_mean
        );
        for (name, nme, n) in &out.synthetic_by_yaw {
            println!("  {name:<16} {:>7.2}%  ({n} shapes)", 100.0 * nme);
        }
    }
    if let Some(r) = &out.real {
        println!(
            "real landmark files ({} shapes): NME {} of the inter-ocular distance (median {}), {:.2}% of the box size",
            r.count,
            pct(r.iod_mean),
            pct(r.iod_median),
            100.0 * r.box_mean
        );
        if out.real_by_file.len() > 1 {
            for (name, nme, n) in &out.real_by_file {
                println!("  {:>7.2}%  ({n} shapes)  {name}", 100.0 * nme);
            }
        }
    }
    Ok(())
}

/// 68-point shapes from `.pts`, dlib XML and pose sidecars, in the aligned 112×112 frame;
/// with `mirror`, followed by their mirror images (left and right swapped).
fn read_shapes(paths: &[PathBuf], mirror: bool) -> Result<Vec<Vec<Point>>> {
    let mut shapes = Vec::new();
    let mut mirrored = Vec::new();
    for path in paths {
        let raw = read_file_shapes(path)?;
        for (i, shape) in raw.into_iter().enumerate() {
            let context = || format!("{}: shape {i}", path.display());
            shapes.push(aligned(&shape).with_context(context)?);
            if mirror {
                // Mirrored about x = 0 (an image "1 pixel wide"): any axis would do, the
                // alignment removes the offset.
                mirrored.push(aligned(&flip_points(&shape, 1)).with_context(context)?);
            }
        }
    }
    shapes.append(&mut mirrored);
    Ok(shapes)
}

fn read_file_shapes(path: &Path) -> Result<Vec<Vec<Point>>> {
    let name = path.to_string_lossy();
    let shapes: Vec<Vec<Point>> = if name.ends_with(".pts") {
        vec![read_pts(path)?]
    } else if name.ends_with(".xml") {
        read_dlib_xml(path)?
            .into_iter()
            .filter(|f| !f.ignore)
            .map(|f| f.points)
            .collect()
    } else {
        let sidecar = if path.is_dir() {
            path.join("pose.sidecar")
        } else {
            path.to_path_buf()
        };
        let s = PoseSidecar::open(&sidecar)?;
        (0..s.len())
            .filter_map(|i| s.record(i).and_then(|r| r.landmarks))
            .collect()
    };
    if let Some(bad) = shapes.iter().find(|s| s.len() != 68) {
        bail!(
            "{}: a shape has {} points, expected 68",
            path.display(),
            bad.len()
        );
    }
    Ok(shapes)
}

/// Maps a 68-point shape into the ArcFace-aligned frame by its 5-point similarity.
fn aligned(points: &[Point]) -> Result<Vec<Point>> {
    Ok(arcface_transform(points)?.apply_points(points))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mirrored training shapes are faces turned the other way, with left and right
    /// swapped: outer eye corners stay in iBUG order (36 on the image's left) and the
    /// nose tip's offset from between the eyes changes sign.
    #[test]
    fn mirrored_shapes_turn_the_other_way_with_left_and_right_swapped() {
        let sampler = LandmarkSampler::default();
        let turned = (0..200)
            .map(|i| sampler.sample(i))
            .find(|s| (30.0..60.0).contains(&s.angles.yaw.abs()) && s.angles.pitch.abs() < 10.0)
            .expect("a turned face among 200");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turned.pts");
        let body: String = turned
            .landmarks
            .iter()
            .map(|p| format!("{} {}\n", p[0] + 300.0, p[1] + 40.0))
            .collect();
        std::fs::write(&path, format!("version: 1\nn_points: 68\n{{\n{body}}}\n")).unwrap();
        let shapes = read_shapes(&[path], true).unwrap();
        assert_eq!(shapes.len(), 2);
        let (plain, mirrored) = (&shapes[0], &shapes[1]);
        let nose_offset = |s: &[Point]| s[30][0] - 0.5 * (s[36][0] + s[45][0]);
        for s in [plain, mirrored] {
            assert!(s[36][0] + 20.0 < s[45][0], "{:?} {:?}", s[36], s[45]);
        }
        let (a, b) = (nose_offset(plain), nose_offset(mirrored));
        assert!(a.abs() > 3.0, "the face is turned: nose offset {a}");
        // The ArcFace template is almost symmetric (its eye midpoint sits 0.11 px left of its
        // nose), so the mirrored offset is the negated one to well within a pixel.
        assert!((a + b).abs() < 1.0, "{a} against {b}");
    }
}
