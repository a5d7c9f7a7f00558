//! `poseface align`: one aligned 112×112 crop.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

/// Arguments of `poseface align`.
#[derive(Args)]
pub struct AlignArgs {
    /// The input image (JPEG, PNG, PGM/PPM or BMP).
    #[arg(long)]
    image: PathBuf,
    /// Landmarks in the image as `x1,y1,…`: 5 or 68 points.
    #[arg(long, allow_hyphen_values = true)]
    points: String,
    /// Where to write the crop (format from the extension, e.g. `.png`).
    #[arg(long)]
    out: PathBuf,
}

/// Runs the command.
pub fn run(args: AlignArgs) -> Result<()> {
    let points = super::parse_points(&args.points)?;
    let bytes = std::fs::read(&args.image).with_context(|| format!("{}", args.image.display()))?;
    let img = poseface_data::decode_rgb(&bytes, &args.image.display().to_string())?;
    let (crop, m) = poseface_data::align_face(&img, &points)?;
    crop.save(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let m = m.0;
    println!(
        "wrote {} (112×112); transform [[{:.6}, {:.6}, {:.4}], [{:.6}, {:.6}, {:.4}]]",
        args.out.display(),
        m[0][0],
        m[0][1],
        m[0][2],
        m[1][0],
        m[1][1],
        m[1][2]
    );
    Ok(())
}
