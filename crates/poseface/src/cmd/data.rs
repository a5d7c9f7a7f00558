//! `poseface data`: inspect and pack datasets.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use poseface_data::folder_pairs::{PairsConfig, folder_pairs};
use poseface_data::inspect::inspect;
use poseface_data::pack::pack_image_folder;

/// `poseface data …`
#[derive(Subcommand)]
pub enum DataCommand {
    /// Count images, identities, pairs, sizes and pose, and list corrupt entries of a
    /// RecordIO directory, an ImageFolder or a verification `.bin`.
    Inspect(InspectArgs),
    /// Pack an ImageFolder into RecordIO (`train.rec`, `train.idx`, `property`, pose sidecar).
    Pack(PackArgs),
    /// Verification pairs (a `.bin`) from an ImageFolder of unaligned faces: a fixed crop
    /// resized to 112×112; all pairs within identities, or a gallery image against probes.
    Pairs(PairsArgs),
    /// Render a synthetic dataset with ground-truth identity, landmarks and pose (RecordIO +
    /// sidecar, verification .bin pair sets, an IJB-style set), and/or a montage.
    Synth(super::synth::SynthArgs),
}

/// Arguments of `poseface data inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// A RecordIO directory, an ImageFolder root or a `.bin` file.
    path: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `poseface data pack`.
#[derive(Args)]
pub struct PackArgs {
    /// The ImageFolder root.
    #[arg(long)]
    images: PathBuf,
    /// The output directory.
    #[arg(long)]
    out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `poseface data pairs`.
#[derive(Args)]
pub struct PairsArgs {
    /// The ImageFolder root (`root/<identity>/<image>`).
    #[arg(long)]
    images: PathBuf,
    /// The output `.bin`.
    #[arg(long)]
    out: PathBuf,
    /// `x,y,width,height` cut from every image before resizing to 112×112.
    #[arg(long, value_delimiter = ',')]
    crop: Option<Vec<u32>>,
    /// File stem of each identity's gallery image (e.g. `00`); without it, all pairs.
    #[arg(long, requires = "probes")]
    gallery: Option<String>,
    /// File stems of the probe images, comma-separated (e.g. `02,03`).
    #[arg(long, value_delimiter = ',')]
    probes: Vec<String>,
    /// Seed of the impostor draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs a `data` subcommand.
pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Inspect(a) => run_inspect(a),
        DataCommand::Pack(a) => run_pack(a),
        DataCommand::Pairs(a) => run_pairs(a),
        DataCommand::Synth(a) => super::synth::run(a),
    }
}

fn run_pairs(a: PairsArgs) -> Result<()> {
    let crop = match a.crop.as_deref() {
        None => None,
        Some(&[x, y, w, h]) => Some([x, y, w, h]),
        Some(c) => anyhow::bail!("--crop takes x,y,width,height; got {} values", c.len()),
    };
    let folder = poseface_data::image_folder::ImageFolder::open(&a.images)?;
    let config = PairsConfig {
        crop,
        gallery: a.gallery,
        probes: a.probes,
        seed: a.seed,
    };
    let set = folder_pairs(&folder, &config)?;
    set.write(&a.out)?;
    println!(
        "{} pairs ({} genuine) of {} identities → {}",
        set.pairs(),
        set.positives(),
        folder.identities().len(),
        a.out.display()
    );
    Ok(())
}

fn run_inspect(a: InspectArgs) -> Result<()> {
    let bar = super::progress_bar("decoding", a.json);
    let r = inspect(&a.path, &|n, total| super::advance(&bar, n, total))?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("{} ({})", r.path, r.kind.replace('_', " "));
    println!("  images      {}", r.images);
    if let Some(n) = r.identities {
        println!("  identities  {n}");
    }
    if let (Some(p), Some(pos)) = (r.pairs, r.positives) {
        println!("  pairs       {p} ({pos} positive, {} negative)", p - pos);
    }
    let sizes: Vec<String> = r
        .image_sizes
        .iter()
        .map(|(s, n)| format!("{s} ×{n}"))
        .collect();
    println!("  sizes       {}", sizes.join(", "));
    match &r.pose {
        Some(h) if h.with_pose > 0 => {
            let pct = |n: usize| 100.0 * n as f64 / h.with_pose as f64;
            println!(
                "  pose        {} with pose: |yaw|<30° {:.1}%, 30–60° {:.1}%, >60° {:.1}%",
                h.with_pose,
                pct(h.frontal),
                pct(h.half_profile),
                pct(h.profile)
            );
        }
        _ => println!("  pose        unknown (no pose sidecar)"),
    }
    println!("  corrupt     {}", r.corrupt.len());
    for c in &r.corrupt {
        println!("    {}: {}", c.entry, c.error);
    }
    Ok(())
}

fn run_pack(a: PackArgs) -> Result<()> {
    let bar = super::progress_bar("packing", a.json);
    let r = pack_image_folder(&a.images, &a.out, &|n, total| {
        super::advance(&bar, n, total)
    })?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "wrote {} images of {} identities to {} ({} pose records); skipped {}",
            r.images,
            r.identities,
            a.out.display(),
            r.pose_records,
            r.skipped.len()
        );
        for s in &r.skipped {
            println!("  skipped {}: {}", s.entry, s.error);
        }
    }
    Ok(())
}
