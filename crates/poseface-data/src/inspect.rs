//! Dataset inspection: what a RecordIO directory, an ImageFolder or a verification `.bin`
//! holds — counts, image sizes, pose histogram, and every entry that fails to decode.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::decode::decode_rgb;
use crate::error::{DataError, Result};
use crate::face_rec::REC_FILE;
use crate::sidecar::{PoseSidecar, SIDECAR_FILE};
use crate::{FaceRecordSet, ImageFolder, VerificationBin};

/// One entry that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorruptEntry {
    /// A path, `FILE[record N]` or `FILE[image N]`.
    pub entry: String,
    /// Why it failed.
    pub error: String,
}

/// Yaw histogram over records with known pose: `|yaw| < 30°`, `30–60°`, `> 60°`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoseHistogram {
    /// Records with Euler angles.
    pub with_pose: usize,
    /// `|yaw| < 30°`.
    pub frontal: usize,
    /// `30° ≤ |yaw| ≤ 60°`.
    pub half_profile: usize,
    /// `|yaw| > 60°`.
    pub profile: usize,
}

/// What [`inspect`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inspection {
    /// `recordio`, `image_folder` or `verification_bin`.
    pub kind: String,
    /// The inspected path.
    pub path: String,
    /// Images that decoded.
    pub images: usize,
    /// Identities (RecordIO, ImageFolder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identities: Option<usize>,
    /// Pairs (`.bin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairs: Option<usize>,
    /// Positive pairs (`.bin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positives: Option<usize>,
    /// Decoded image sizes, `"WxH"` → count.
    pub image_sizes: BTreeMap<String, usize>,
    /// Pose histogram when a sidecar is present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pose: Option<PoseHistogram>,
    /// Entries that failed to read or decode.
    pub corrupt: Vec<CorruptEntry>,
}

/// Inspects `path`; `progress(done, total)` is called as entries are decoded.
pub fn inspect(path: &Path, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<Inspection> {
    let mut out = Inspection {
        path: path.display().to_string(),
        ..Default::default()
    };
    let decode_all = |n: usize,
                      load: &(dyn Fn(usize) -> Result<image::RgbImage> + Sync),
                      name: &(dyn Fn(usize) -> String + Sync)| {
        let results: Vec<std::result::Result<(u32, u32), CorruptEntry>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let r = load(i)
                    .map(|img| img.dimensions())
                    .map_err(|e| CorruptEntry {
                        entry: name(i),
                        error: e.to_string(),
                    });
                progress(1, n as u64);
                r
            })
            .collect();
        results
    };
    let tally = |results: Vec<std::result::Result<(u32, u32), CorruptEntry>>,
                 out: &mut Inspection| {
        for r in results {
            match r {
                Ok((w, h)) => {
                    out.images += 1;
                    *out.image_sizes.entry(format!("{w}x{h}")).or_default() += 1;
                }
                Err(c) => out.corrupt.push(c),
            }
        }
    };
    if path.is_dir() && path.join(REC_FILE).exists() {
        out.kind = "recordio".into();
        let set = FaceRecordSet::open(path)?;
        let rec = set.reader().path().display().to_string();
        let name = |i: usize| format!("{rec}[record {}]", set.key(i).unwrap_or_default());
        let results = decode_all(
            set.len(),
            &|i| {
                let (_, bytes) = set.image(i)?;
                decode_rgb(&bytes, &name(i))
            },
            &name,
        );
        // The header records give the identity count; only flat sets need a pass over labels.
        out.identities = Some(match set.identity_ranges() {
            Some(ranges) => ranges.len(),
            None => {
                let mut ids: Vec<u32> = (0..set.len())
                    .filter_map(|i| set.image(i).ok().map(|(l, _)| l))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                ids.len()
            }
        });
        tally(results, &mut out);
        out.pose = pose_histogram(&path.join(SIDECAR_FILE))?;
    } else if path.is_dir() {
        out.kind = "image_folder".into();
        let folder = ImageFolder::open(path)?;
        let results = decode_all(folder.len(), &|i| folder.load(i).map(|r| r.1), &|i| {
            folder.images()[i].path.display().to_string()
        });
        out.identities = Some(folder.identities().len());
        tally(results, &mut out);
        out.pose = pose_histogram(&path.join(SIDECAR_FILE))?;
    } else if path.is_file() {
        out.kind = "verification_bin".into();
        let bin = VerificationBin::read(path)?;
        out.pairs = Some(bin.pairs());
        out.positives = Some(bin.positives());
        let name = |i: usize| format!("{}[image {i}]", path.display());
        let results = decode_all(
            bin.images.len(),
            &|i| decode_rgb(&bin.images[i], &name(i)),
            &name,
        );
        tally(results, &mut out);
    } else {
        return Err(DataError::Invalid(format!(
            "{}: no such file or directory",
            path.display()
        )));
    }
    Ok(out)
}

fn pose_histogram(path: &Path) -> Result<Option<PoseHistogram>> {
    if !path.exists() {
        return Ok(None);
    }
    let s = PoseSidecar::open(path)?;
    let mut h = PoseHistogram::default();
    for a in (0..s.len())
        .filter_map(|i| s.record(i))
        .filter_map(|r| r.angles)
    {
        h.with_pose += 1;
        match a.yaw.abs() {
            y if y < 30.0 => h.frontal += 1,
            y if y <= 60.0 => h.half_profile += 1,
            _ => h.profile += 1,
        }
    }
    Ok(Some(h))
}
