//! A face dataset over RecordIO or ImageFolder storage, joined with its pose sidecar:
//! decoding (in parallel), alignment of unaligned images, augmentation and a seeded
//! per-epoch shuffle.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use image::RgbImage;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::align::{ALIGNED_SIZE, align_face};
use crate::augment::{AugmentConfig, FaceSample, augment};
use crate::decode::decode_rgb;
use crate::error::{DataError, Result};
use crate::face_rec::{FaceRecordSet, REC_FILE};
use crate::image_folder::ImageFolder;
use crate::pose::{EulerAngles, estimate_pose};
use crate::sidecar::{PoseSidecar, SIDECAR_FILE};

/// Where the images live.
#[derive(Debug)]
pub enum FaceStorage {
    /// insightface RecordIO (`train.rec` + `train.idx`).
    Record(FaceRecordSet),
    /// `root/<identity>/<image>`.
    Folder(ImageFolder),
}

impl FaceStorage {
    /// Opens a RecordIO directory (one holding `train.rec`) or an ImageFolder root.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.is_dir() {
            return Err(DataError::Invalid(format!(
                "{}: expected a RecordIO directory or an ImageFolder root",
                path.display()
            )));
        }
        if path.join(REC_FILE).exists() {
            Ok(FaceStorage::Record(FaceRecordSet::open(path)?))
        } else {
            Ok(FaceStorage::Folder(ImageFolder::open(path)?))
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        match self {
            FaceStorage::Record(r) => r.len(),
            FaceStorage::Folder(f) => f.len(),
        }
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sidecar key of the `i`-th image (RecordIO key, or position for an ImageFolder).
    pub fn sidecar_key(&self, i: usize) -> u64 {
        match self {
            FaceStorage::Record(r) => r.key(i).unwrap_or(u64::MAX),
            FaceStorage::Folder(_) => i as u64,
        }
    }

    /// Decodes the `i`-th image: `(label, RGB pixels)`.
    pub fn load(&self, i: usize) -> Result<(u32, RgbImage)> {
        match self {
            FaceStorage::Record(r) => {
                let (label, bytes) = r.image(i)?;
                let name = format!(
                    "{}[record {}]",
                    r.reader().path().display(),
                    r.key(i).unwrap_or_default()
                );
                Ok((label, decode_rgb(&bytes, &name)?))
            }
            FaceStorage::Folder(f) => f.load(i),
        }
    }
}

/// Faces ready for training: decoded, aligned to 112×112, with pose when the sidecar has it.
#[derive(Debug)]
pub struct FaceDataset {
    storage: FaceStorage,
    sidecar: Option<PoseSidecar>,
    augment: AugmentConfig,
    seed: u64,
    epoch: AtomicU64,
}

impl FaceDataset {
    /// Opens storage at `path` and its `pose.sidecar` when present.
    pub fn open(path: impl AsRef<Path>, augment: AugmentConfig, seed: u64) -> Result<Self> {
        let path = path.as_ref();
        let storage = FaceStorage::open(path)?;
        let sc = path.join(SIDECAR_FILE);
        let sidecar = if sc.exists() {
            Some(PoseSidecar::open(&sc)?)
        } else {
            None
        };
        Self::new(storage, sidecar, augment, seed)
    }

    /// Builds a dataset from parts; errors when `augment` is out of range.
    pub fn new(
        storage: FaceStorage,
        sidecar: Option<PoseSidecar>,
        augment: AugmentConfig,
        seed: u64,
    ) -> Result<Self> {
        augment.validate()?;
        Ok(Self {
            storage,
            sidecar,
            augment,
            seed,
            epoch: AtomicU64::new(0),
        })
    }

    /// The storage.
    pub fn storage(&self) -> &FaceStorage {
        &self.storage
    }

    /// Whether a pose sidecar is attached.
    pub fn has_pose(&self) -> bool {
        self.sidecar.is_some()
    }

    /// Landmarks per record of the pose sidecar (`None` without one).
    pub fn landmark_points(&self) -> Option<usize> {
        self.sidecar.as_ref().map(|s| s.points_per_record())
    }

    /// Number of faces.
    pub fn len(&self) -> usize {
        self.storage.len()
    }

    /// Whether there are no faces.
    pub fn is_empty(&self) -> bool {
        self.storage.is_empty()
    }

    /// The `i`-th face's Euler angles as its sidecar gives them (estimated from its landmarks
    /// when it has no angles), before augmentation and without decoding the image.
    pub fn angles(&self, i: usize) -> Option<EulerAngles> {
        let pose = self.sidecar.as_ref()?.get(self.storage.sidecar_key(i))?;
        pose.angles.or_else(|| {
            pose.landmarks
                .as_deref()
                .and_then(|l| estimate_pose(l).ok())
        })
    }

    /// Sets the epoch: augmentation draws depend on `(seed, epoch, index)` only, so a resumed
    /// run sees the same augmented faces.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// The `i`-th face, aligned (when its landmarks are in original-image pixels) or resized
    /// to 112×112, then augmented.
    pub fn sample(&self, i: usize) -> Result<FaceSample> {
        let (label, image) = self.storage.load(i)?;
        let pose = self
            .sidecar
            .as_ref()
            .and_then(|s| s.get(self.storage.sidecar_key(i)));
        let landmarks = pose.as_ref().and_then(|p| p.landmarks.clone());
        // A record with landmarks but no angles gets them estimated from its landmarks, so
        // pose-aware training works on data annotated with landmarks only.
        let angles = self.angles(i);
        let size = ALIGNED_SIZE;
        let (image, landmarks) = match landmarks {
            Some(l) if image.dimensions() != (size, size) => {
                let (crop, m) = align_face(&image, &l)?;
                let moved = m.apply_points(&l);
                (crop, Some(moved))
            }
            l if image.dimensions() != (size, size) => {
                let (w, h) = image.dimensions();
                let resized = image::imageops::resize(
                    &image,
                    size,
                    size,
                    image::imageops::FilterType::Triangle,
                );
                let sx = size as f32 / w as f32;
                let sy = size as f32 / h as f32;
                let moved = l.map(|l| {
                    l.iter()
                        .map(|p| [(p[0] + 0.5) * sx - 0.5, (p[1] + 0.5) * sy - 0.5])
                        .collect()
                });
                (resized, moved)
            }
            l => (image, l),
        };
        let sample = FaceSample {
            image,
            label,
            landmarks,
            angles,
        };
        let mut rng =
            ChaCha8Rng::seed_from_u64(mix(self.seed, self.epoch.load(Ordering::Relaxed), i as u64));
        Ok(augment(sample, &self.augment, &mut rng))
    }

    /// Several faces, decoded in parallel (rayon); the first error is returned.
    pub fn samples(&self, indices: &[usize]) -> Result<Vec<FaceSample>> {
        indices.par_iter().map(|&i| self.sample(i)).collect()
    }
}

/// Mixes seed, epoch and index into one RNG seed (SplitMix64 finaliser).
fn mix(seed: u64, epoch: u64, index: u64) -> u64 {
    let mut z = seed
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The sample order of `epoch`: a permutation of `0..len` that depends only on `(seed, epoch)`.
pub fn epoch_permutation(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, epoch, u64::MAX)));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_augmentation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaceStorage::open(dir.path()).unwrap();
        let cfg = AugmentConfig {
            scale_jitter: 1.5,
            ..AugmentConfig::default()
        };
        let e = FaceDataset::new(storage, None, cfg, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("scale_jitter = 1.5"), "{e}");
    }

    #[test]
    fn epoch_permutations_are_seeded() {
        let a = epoch_permutation(100, 7, 0);
        assert_eq!(a, epoch_permutation(100, 7, 0));
        assert_ne!(a, epoch_permutation(100, 7, 1));
        assert_ne!(a, epoch_permutation(100, 8, 0));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }
}
