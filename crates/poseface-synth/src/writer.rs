//! Writing a synthetic dataset in the formats real data comes in.
//!
//! Layout of the output directory (insightface's, plus the pose sidecar):
//!
//! | path | contents |
//! |---|---|
//! | `train.rec`, `train.idx`, `property` | aligned 112×112 JPEG faces, identity-ordered RecordIO |
//! | `pose.sidecar` | per record: yaw/pitch/roll and the 68 landmarks in the aligned face |
//! | `synth_cplfw.bin` | cross-pose verification pairs (see [`crate::pairs`]) |
//! | `synth_lfw.bin` | frontal verification pairs |
//! | `synth_cplfw.yaws.txt`, `synth_lfw.yaws.txt` | per pair: the two faces' yaws (degrees) |
//! | `ijb/meta/ijbc_*.txt`, `ijb/loose_crop/*.jpg` | the IJB-style template set |
//! | `synth.json` | the configuration and a summary |

use std::path::{Path, PathBuf};

use poseface_data::decode::encode_jpeg;
use poseface_data::face_rec::FaceRecordWriter;
use poseface_data::ijb::{IjbFaces, IjbLandmarks, IjbPairs, IjbTarget, write_meta};
use poseface_data::landmarks::five_from_68;
use poseface_data::sidecar::{PoseRecord, PoseSidecarWriter, SIDECAR_FILE};
use poseface_data::verification_bin::VerificationBin;
use serde::{Deserialize, Serialize};

use crate::config::SynthConfig;
use crate::error::SynthError;
use crate::generate::{Generator, ImagePlan, Ticker};
use crate::ijb::plan_ijb;
use crate::pairs::{PairKind, plan_pairs};
use crate::scene::stratified;

/// The version of what the generator draws. It changes whenever the same configuration and
/// seed would give different bytes (a new renderer, mesh or degradation), and is written
/// into `synth.json`.
///
/// 3: 64 × 72 mesh with its columns placed by region (ears kept), edge anti-aliasing
/// between 4-neighbours, xorshift sensor noise, 4:2:0 JPEG degradation with box-averaged
/// chroma by a scalar encoder. 2 (one development commit): the same with 8-neighbour edges
/// and point-sampled chroma from a CPU-dependent SIMD encoder. 1 (not recorded): 96 × 108
/// mesh, 2 × 2 supersampling everywhere, 4:4:4 JPEG degradation.
pub const GENERATOR_VERSION: u32 = 3;

/// Random stream of the training scenes.
const TRAIN_STREAM: u64 = 2;
/// Random stream of the training poses.
const TRAIN_POSE_STREAM: u64 = 3;
/// JPEG quality of stored faces (insightface's packs use 95).
pub const JPEG_QUALITY: u8 = 95;
/// Identities rendered per batch before their records are written.
const CHUNK: usize = 64;

/// Summary of one pair set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSetReport {
    /// File name.
    pub file: String,
    /// Pairs.
    pub pairs: usize,
    /// Positive pairs.
    pub positives: usize,
    /// Share of positives with |yaw difference| ≥ the configured minimum.
    pub cross_pose_positive_share: f32,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthReport {
    /// Output directory.
    pub out: PathBuf,
    /// Training images.
    pub train_images: usize,
    /// Training identities.
    pub train_identities: usize,
    /// Share of training images with |yaw| in 0–30°, 30–60°, 60–90°.
    pub train_yaw_shares: [f32; 3],
    /// The pair sets.
    pub pair_sets: Vec<PairSetReport>,
    /// IJB-style images, templates and template pairs.
    pub ijb: [usize; 3],
}

/// The training images' plans, identity by identity.
pub fn plan_train(config: &SynthConfig) -> Vec<ImagePlan> {
    let n = config.images_per_identity;
    (0..config.identities * n)
        .map(|i| {
            let mut rng = crate::scene::stream_rng(config.seed, TRAIN_POSE_STREAM, i as u64);
            ImagePlan {
                identity: (i / n) as u64,
                pose: config.pose.sample(stratified(i as u64), &mut rng),
                stream: TRAIN_STREAM,
                index: i as u64,
            }
        })
        .collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the whole dataset of `config` into `out`. `progress(stage, done, total)` is called
/// from worker threads as images are made.
///
/// Files of the layout above already in `out` are overwritten; others are left alone
/// ([`clear_dataset`] removes a dataset's files first). `synth.json` records [`GENERATOR_VERSION`], so that a dataset made by another version of
/// the generator can be told apart (and regenerated) without comparing its pictures.
pub fn write_dataset(
    config: &SynthConfig,
    out: &Path,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> Result<SynthReport, SynthError> {
    let generator = Generator::new(config.clone())?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    // `synth.json` is written last and says the dataset is whole: an older one goes first,
    // so that a run stopped half-way never passes for the dataset it overwrote.
    let summary = out.join("synth.json");
    match std::fs::remove_file(&summary) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&summary)(e)),
        _ => {}
    }
    let train = write_train(&generator, out, progress)?;
    let pair_sets = write_pairs(&generator, out, progress)?;
    let ijb = write_ijb(&generator, &out.join("ijb"), progress)?;
    let plans = plan_train(config);
    let mut shares = [0f32; 3];
    for p in &plans {
        shares[((p.pose.yaw.abs() / 30.0) as usize).min(2)] += 1.0 / plans.len() as f32;
    }
    let report = SynthReport {
        out: out.to_path_buf(),
        train_images: train,
        train_identities: config.identities,
        train_yaw_shares: shares,
        pair_sets,
        ijb,
    };
    let json = serde_json::json!({
        "generator_version": GENERATOR_VERSION,
        "config": config,
        "report": report,
    });
    let text = serde_json::to_string_pretty(&json).expect("plain data serialises");
    poseface_data::fsutil::write_atomic(&out.join("synth.json"), text.as_bytes())?;
    Ok(report)
}

/// The files and folders [`write_dataset`] writes, `synth.json` (the last written) first.
pub const DATASET_FILES: [&str; 10] = [
    "synth.json",
    "train.rec",
    "train.idx",
    "property",
    SIDECAR_FILE,
    "synth_cplfw.bin",
    "synth_lfw.bin",
    "synth_cplfw.yaws.txt",
    "synth_lfw.yaws.txt",
    "ijb",
];

/// Removes the files and folders of a synthetic dataset ([`DATASET_FILES`]) from `dir`,
/// `synth.json` first, so that an interrupted removal never leaves a dataset that looks
/// whole; anything else in `dir` stays.
pub fn clear_dataset(dir: &Path) -> Result<(), SynthError> {
    for name in DATASET_FILES {
        let path = dir.join(name);
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&path)(e)),
            _ => {}
        }
    }
    Ok(())
}

fn write_train(
    generator: &Generator,
    out: &Path,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> Result<usize, SynthError> {
    let config = generator.config();
    let plans = plan_train(config);
    let ticker = Ticker::new("train", plans.len() as u64, progress);
    let mut rec = FaceRecordWriter::create(
        out,
        plans.len() as u64,
        config.identities as u64,
        (112, 112),
    )?;
    let mut sidecar = PoseSidecarWriter::create(out.join(SIDECAR_FILE), 68)?;
    let per_chunk = CHUNK * config.images_per_identity;
    for chunk in plans.chunks(per_chunk) {
        let encoded = generator.render_map(
            chunk,
            |_, s| {
                let (face, points) = s.aligned()?;
                Ok((encode_jpeg(&face, JPEG_QUALITY), points, s.angles))
            },
            &|| ticker.tick(),
        )?;
        for (plan, (bytes, points, angles)) in chunk.iter().zip(encoded) {
            let key = rec.push(plan.identity as u32, &bytes)?;
            sidecar.push(&PoseRecord {
                key,
                angles: Some(angles),
                landmarks: Some(points),
            })?;
        }
    }
    rec.finish()?;
    sidecar.finish()?;
    Ok(plans.len())
}

/// Both pair sets share their evaluation identities, so they are rendered together (one
/// mesh per identity) and then split into their files.
fn write_pairs(
    generator: &Generator,
    out: &Path,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> Result<Vec<PairSetReport>, SynthError> {
    let config = generator.config();
    let kinds = [PairKind::CrossPose, PairKind::Frontal];
    let sets: Vec<_> = kinds.iter().map(|&k| plan_pairs(config, k)).collect();
    let plans: Vec<ImagePlan> = sets
        .iter()
        .flat_map(|pairs| pairs.iter().flat_map(|p| [p.a, p.b]))
        .collect();
    let ticker = Ticker::new("pairs", plans.len() as u64, progress);
    let mut images = generator
        .render_map(
            &plans,
            |_, s| Ok(encode_jpeg(&s.aligned()?.0, JPEG_QUALITY)),
            &|| ticker.tick(),
        )?
        .into_iter();
    let mut reports = Vec::new();
    for (kind, pairs) in kinds.iter().zip(&sets) {
        let bin = VerificationBin {
            images: images.by_ref().take(2 * pairs.len()).collect(),
            issame: pairs.iter().map(|p| p.same).collect(),
        };
        let file = kind.file_name();
        bin.write(out.join(file))?;
        // The pair's yaws, for pose-stratified evaluation (`poseface verify --pair-yaws`).
        let yaws: String = pairs
            .iter()
            .map(|p| format!("{:.3} {:.3}\n", p.a.pose.yaw, p.b.pose.yaw))
            .collect();
        let yaw_file = out.join(file.replace(".bin", ".yaws.txt"));
        poseface_data::fsutil::write_atomic(&yaw_file, yaws.as_bytes())?;
        let positives: Vec<_> = pairs.iter().filter(|p| p.same).collect();
        let cross = positives
            .iter()
            .filter(|p| (p.a.pose.yaw - p.b.pose.yaw).abs() >= config.pairs.min_yaw_difference)
            .count();
        reports.push(PairSetReport {
            file: file.to_string(),
            pairs: pairs.len(),
            positives: positives.len(),
            cross_pose_positive_share: cross as f32 / positives.len().max(1) as f32,
        });
    }
    Ok(reports)
}

fn write_ijb(
    generator: &Generator,
    root: &Path,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> Result<[usize; 3], SynthError> {
    let plan = plan_ijb(generator.config());
    let crops = root.join("loose_crop");
    std::fs::create_dir_all(&crops).map_err(io(&crops))?;
    let plans: Vec<ImagePlan> = plan.images.iter().map(|i| i.plan).collect();
    let ticker = Ticker::new("ijb", plans.len() as u64, progress);
    let fives = generator.render_map(
        &plans,
        |k, s| {
            let path = crops.join(&plan.images[k].name);
            poseface_data::fsutil::write_atomic(&path, &encode_jpeg(&s.image, 90))?;
            Ok(five_from_68(&s.landmarks)?)
        },
        &|| ticker.tick(),
    )?;
    let faces = IjbFaces {
        names: plan.images.iter().map(|i| i.name.clone()).collect(),
        templates: plan.images.iter().map(|i| i.template).collect(),
        medias: plan.images.iter().map(|i| i.media).collect(),
    };
    let pairs = IjbPairs {
        t1: plan.pairs.iter().map(|p| p.0).collect(),
        t2: plan.pairs.iter().map(|p| p.1).collect(),
        labels: plan.pairs.iter().map(|p| p.2).collect(),
    };
    let landmarks = IjbLandmarks {
        names: faces.names.clone(),
        points: fives,
        scores: plan.images.iter().map(|i| i.score).collect(),
    };
    write_meta(root, IjbTarget::IjbC, &faces, &pairs, &landmarks)?;
    let templates = plan.images.last().map_or(0, |i| i.template as usize);
    Ok([plan.images.len(), templates, plan.pairs.len()])
}
