//! `poseface embed (--run DIR | --weights FILE --arch A) (--bin FILE | --images DIR | --rec DIR)
//! --out E.npy [--flip]`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use poseface_data::augment::AugmentConfig;
use poseface_data::dataset::FaceDataset;
use poseface_data::decode::decode_rgb;
use poseface_data::verification_bin::VerificationBin;
use poseface_model::backbone::BackboneConfig;
use poseface_train::Embedder;

use super::device::parse_device;

/// Arguments of `poseface embed`.
#[derive(Args)]
pub struct EmbedArgs {
    /// A training run directory (its `config.toml` and `model.safetensors`).
    #[arg(long, conflicts_with = "weights", required_unless_present = "weights")]
    run: Option<PathBuf>,
    /// insightface weights (`backbone.pth` or `.safetensors`); needs `--arch`.
    #[arg(long, requires = "arch")]
    weights: Option<PathBuf>,
    /// Backbone of `--weights`: r18, r34, r50, r100, r200 or mbf.
    #[arg(long)]
    arch: Option<String>,
    /// Width multiplier of `--weights`' network.
    #[arg(long, default_value_t = 1.0)]
    width: f64,
    /// Input size of `--weights`' network.
    #[arg(long, default_value_t = 112)]
    input_size: usize,
    /// Embedding size of `--weights`' network (default 512, 128 for mbf).
    #[arg(long)]
    embedding_size: Option<usize>,
    /// A verification `.bin`: embeds its images in order (pair k = rows 2k, 2k+1) and
    /// writes `<out>.issame.txt` beside the output.
    #[arg(long, group = "input")]
    bin: Option<PathBuf>,
    /// An ImageFolder of faces (aligned with its pose sidecar's landmarks, else resized to
    /// 112×112); writes `<out>.labels.txt`.
    #[arg(long, group = "input")]
    images: Option<PathBuf>,
    /// A RecordIO directory; writes `<out>.labels.txt`.
    #[arg(long, group = "input")]
    rec: Option<PathBuf>,
    /// Output `.npy` (float32, `[faces, dim]`; float64 with `--float64`).
    #[arg(long)]
    out: PathBuf,
    /// Each row is the sum of the face's and its mirror's embeddings (insightface's test
    /// time); the verification protocol normalises it.
    #[arg(long)]
    flip: bool,
    /// Write float64 rows; with `--flip`, the mirror sum taken in double precision as
    /// insightface's `test()` holds it, so that `verify` on the file decides every pair as
    /// `eval` does.
    #[arg(long)]
    float64: bool,
    /// Faces per forward pass.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Device: `cpu`, or a GPU backend compiled in.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Runs `poseface embed`.
pub fn run(a: EmbedArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let embedder = match (&a.run, &a.weights) {
        (Some(run), _) => Embedder::from_run(run, &device)?,
        (None, Some(weights)) => {
            let arch = a.arch.clone().context("--weights needs --arch")?;
            let mut backbone = BackboneConfig::named(&arch);
            backbone.width = a.width;
            backbone.input_size = a.input_size;
            if let Some(e) = a.embedding_size {
                backbone.embedding_size = e;
            }
            if backbone.width.is_nan()
                || backbone.width <= 0.0
                || ![56, 112].contains(&backbone.input_size)
            {
                bail!("--width must be > 0 and --input-size 112 or 56");
            }
            Embedder::from_weights(weights, &backbone, &device)?
        }
        (None, None) => bail!("give --run DIR or --weights FILE --arch A"),
    };
    let (faces, side_file) = if let Some(bin) = &a.bin {
        let set = VerificationBin::read(bin)?;
        let faces = set
            .images
            .iter()
            .enumerate()
            .map(|(k, bytes)| Ok(decode_rgb(bytes, &format!("{} image {k}", bin.display()))?))
            .collect::<Result<Vec<_>>>()?;
        let issame: String = set
            .issame
            .iter()
            .map(|&s| if s { "1\n" } else { "0\n" })
            .collect();
        (faces, ("issame", issame))
    } else {
        let dir = a
            .images
            .as_ref()
            .or(a.rec.as_ref())
            .context("give --bin FILE, --images DIR or --rec DIR")?;
        let data = FaceDataset::open(dir, AugmentConfig::none(), 0)?;
        let all: Vec<usize> = (0..data.len()).collect();
        let samples = data.samples(&all)?;
        let labels: String = samples.iter().map(|s| format!("{}\n", s.label)).collect();
        (
            samples.into_iter().map(|s| s.image).collect(),
            ("labels", labels),
        )
    };
    if faces.is_empty() {
        bail!("no faces to embed");
    }
    let rows = faces.len();
    let bar = super::progress_bar("embedding", false);
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let dim = embedder.dim();
    if a.float64 && a.flip {
        let (plain, mirror) = embedder.embed_images_with_mirror(&faces, a.batch, &progress)?;
        let values: Vec<f64> = plain
            .iter()
            .zip(&mirror)
            .map(|(&x, &y)| f64::from(x) + f64::from(y))
            .collect();
        write_npy(&a.out, &values, rows, dim)?;
    } else if a.float64 {
        let values = embedder.embed_images_with_progress(&faces, false, a.batch, &progress)?;
        let values: Vec<f64> = values.into_iter().map(f64::from).collect();
        write_npy(&a.out, &values, rows, dim)?;
    } else {
        let values = embedder.embed_images_with_progress(&faces, a.flip, a.batch, &progress)?;
        write_npy(&a.out, &values, rows, dim)?;
    }
    bar.finish_and_clear();
    let side = a.out.with_extension(format!("{}.txt", side_file.0));
    poseface_data::fsutil::write_atomic(&side, side_file.1.as_bytes())?;
    println!(
        "{rows} embeddings of {} dimensions → {} (and {})",
        embedder.dim(),
        a.out.display(),
        side.display()
    );
    Ok(())
}

fn write_npy<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    values: &[T],
    rows: usize,
    dim: usize,
) -> Result<()> {
    use npyz::WriterBuilder;
    let mut bytes = Vec::new();
    {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[rows as u64, dim as u64])
            .writer(&mut bytes)
            .begin_nd()?;
        w.extend(values.iter().copied())?;
        w.finish()?;
    }
    poseface_data::fsutil::write_atomic(path, &bytes)
        .with_context(|| format!("writing {}", path.display()))
}
