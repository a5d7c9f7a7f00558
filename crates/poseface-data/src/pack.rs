//! ImageFolder → RecordIO packing in insightface's layout, carrying the pose sidecar along.

use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::decode::probe;
use crate::error::Result;
use crate::face_rec::FaceRecordWriter;
use crate::image_folder::ImageFolder;
use crate::inspect::CorruptEntry;
use crate::sidecar::{PoseSidecar, PoseSidecarWriter, SIDECAR_FILE};

/// What [`pack_image_folder`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PackReport {
    /// Images written.
    pub images: usize,
    /// Identities written (identities left without a readable image are dropped).
    pub identities: usize,
    /// Images left out because they could not be read or decoded.
    pub skipped: Vec<CorruptEntry>,
    /// Pose sidecar records carried over.
    pub pose_records: usize,
}

/// Packs the ImageFolder at `src` into `out/train.rec`, `train.idx`, `property` (and
/// `pose.sidecar` when `src` has one). Images are stored byte for byte as found; unreadable
/// ones are skipped and listed. `progress(done, total)` is called as images are checked.
pub fn pack_image_folder(
    src: &Path,
    out: &Path,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<PackReport> {
    let folder = ImageFolder::open(src)?;
    let total = folder.len() as u64;
    // Validate every image first: record 0 must announce the final counts.
    type Checked = std::result::Result<(Vec<u8>, (u32, u32)), CorruptEntry>;
    let checked: Vec<Checked> = folder
        .images()
        .par_iter()
        .map(|img| {
            let name = img.path.display().to_string();
            let r = std::fs::read(&img.path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    crate::decode_rgb(&b, &name)
                        .map(|_| b)
                        .map_err(|e| e.to_string())
                })
                .and_then(|b| {
                    probe(&b, &name)
                        .map(|(w, h, _)| (b, (w, h)))
                        .map_err(|e| e.to_string())
                })
                .map_err(|error| CorruptEntry { entry: name, error });
            progress(1, total);
            r
        })
        .collect();
    let mut report = PackReport::default();
    let mut good = Vec::new();
    for (i, r) in checked.into_iter().enumerate() {
        match r {
            Ok(v) => good.push((i, v)),
            Err(c) => report.skipped.push(c),
        }
    }
    let mut labels: Vec<u32> = good
        .iter()
        .map(|(i, _)| folder.images()[*i].label)
        .collect();
    labels.dedup();
    let mut sizes = std::collections::HashMap::<(u32, u32), usize>::new();
    for (_, (_, s)) in &good {
        *sizes.entry(*s).or_default() += 1;
    }
    let (w, h) = sizes
        .into_iter()
        .max_by_key(|&(s, n)| (n, s))
        .map_or((0, 0), |(s, _)| s);
    let mut writer = FaceRecordWriter::create(out, good.len() as u64, labels.len() as u64, (h, w))?;
    let sidecar_in = src.join(SIDECAR_FILE);
    let sidecar = if sidecar_in.exists() {
        Some(PoseSidecar::open(&sidecar_in)?)
    } else {
        None
    };
    let mut sidecar_out = match &sidecar {
        Some(s) => Some(PoseSidecarWriter::create(
            out.join(SIDECAR_FILE),
            s.points_per_record(),
        )?),
        None => None,
    };
    let mut new_label = 0u32;
    let mut last: Option<u32> = None;
    for (i, (bytes, _)) in &good {
        let old = folder.images()[*i].label;
        if last.is_some_and(|l| l != old) {
            new_label += 1;
        }
        last = Some(old);
        let key = writer.push(new_label, bytes)?;
        if let (Some(s), Some(w)) = (&sidecar, sidecar_out.as_mut())
            && let Some(mut rec) = s.get(*i as u64)
        {
            rec.key = key;
            w.push(&rec)?;
            report.pose_records += 1;
        }
    }
    writer.finish()?;
    if let Some(w) = sidecar_out {
        w.finish()?;
    }
    report.images = good.len();
    report.identities = labels.len();
    Ok(report)
}
