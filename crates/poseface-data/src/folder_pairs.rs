//! Verification pairs from an ImageFolder of unaligned faces: a fixed crop resized to
//! 112×112, genuine and impostor pairs in a deterministic order, written as a verification
//! `.bin` so that every tool that reads insightface's sets evaluates it unchanged.
//!
//! Two layouts, chosen by [`PairsConfig::gallery`]:
//!
//! - **all pairs** (no gallery): every two images of an identity form a genuine pair, each
//!   followed by an impostor pair (its first image against a random image of a random other
//!   identity);
//! - **gallery against probes**: each identity's gallery image (file stem, e.g. `00`) against
//!   its probe images (e.g. `02`, `03`), each genuine pair followed by the gallery image
//!   against the same probe stem of a random other identity.
//!
//! Pairs are grouped by identity, so the 10 contiguous folds of the protocol hold disjoint
//! identities' genuine pairs and as many impostors as genuine pairs.

use std::collections::BTreeMap;
use std::path::Path;

use image::RgbImage;
use image::imageops::FilterType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::align::ALIGNED_SIZE;
use crate::decode::decode_rgb;
use crate::error::{DataError, Result};
use crate::image_folder::ImageFolder;
use crate::verification_bin::VerificationBin;

/// How pairs are drawn and faces cut.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PairsConfig {
    /// `[x, y, width, height]` in pixels, cut from every image before resizing to 112×112
    /// (the whole image when `None`).
    pub crop: Option<[u32; 4]>,
    /// File stem of each identity's gallery image; `None` pairs all images.
    pub gallery: Option<String>,
    /// File stems of the probe images matched against the gallery image.
    pub probes: Vec<String>,
    /// Seed of the impostor draws.
    pub seed: u64,
}

/// One face, cut and resized to 112×112.
fn face(path: &Path, crop: Option<[u32; 4]>) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let image = decode_rgb(&bytes, &path.display().to_string())?;
    let image = match crop {
        Some([x, y, w, h]) => {
            let (iw, ih) = image.dimensions();
            if w == 0 || h == 0 || x.saturating_add(w) > iw || y.saturating_add(h) > ih {
                return Err(DataError::Invalid(format!(
                    "{}: the crop {w}×{h} at ({x}, {y}) does not fit the {iw}×{ih} image",
                    path.display()
                )));
            }
            image::imageops::crop_imm(&image, x, y, w, h).to_image()
        }
        None => image,
    };
    Ok(image::imageops::resize(
        &image,
        ALIGNED_SIZE,
        ALIGNED_SIZE,
        FilterType::Triangle,
    ))
}

fn png(image: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| DataError::Invalid(format!("{}: cannot encode: {e}", path.display())))?;
    Ok(out.into_inner())
}

/// The pairs of `folder` as a verification set (faces PNG-encoded, lossless).
pub fn folder_pairs(folder: &ImageFolder, config: &PairsConfig) -> Result<VerificationBin> {
    // Images by identity, then by file stem.
    let mut by_id: Vec<BTreeMap<String, &Path>> = vec![BTreeMap::new(); folder.identities().len()];
    for image in folder.images() {
        let stem = image
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        by_id[image.label as usize].insert(stem, &image.path);
    }
    let ids: Vec<usize> = (0..by_id.len()).filter(|&i| !by_id[i].is_empty()).collect();
    if ids.len() < 2 {
        return Err(DataError::Invalid(format!(
            "{}: impostor pairs need at least two identities with images",
            folder.root().display()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let other = |rng: &mut ChaCha8Rng, i: usize, wanted: Option<&str>| -> Option<&Path> {
        let candidates: Vec<usize> = ids
            .iter()
            .copied()
            .filter(|&j| j != i && wanted.is_none_or(|s| by_id[j].contains_key(s)))
            .collect();
        let j = *candidates.get(rng.random_range(0..candidates.len().max(1)))?;
        match wanted {
            Some(stem) => by_id[j].get(stem).copied(),
            None => {
                let k = rng.random_range(0..by_id[j].len());
                by_id[j].values().nth(k).copied()
            }
        }
    };
    let mut pairs: Vec<(&Path, &Path, bool)> = Vec::new();
    for &i in &ids {
        match &config.gallery {
            None => {
                let images: Vec<&Path> = by_id[i].values().copied().collect();
                for a in 0..images.len() {
                    for b in a + 1..images.len() {
                        pairs.push((images[a], images[b], true));
                        if let Some(o) = other(&mut rng, i, None) {
                            pairs.push((images[a], o, false));
                        }
                    }
                }
            }
            Some(g) => {
                // Identities without the gallery image take no part.
                let Some(&gallery) = by_id[i].get(g) else {
                    continue;
                };
                for p in &config.probes {
                    let Some(&probe) = by_id[i].get(p) else {
                        continue;
                    };
                    pairs.push((gallery, probe, true));
                    if let Some(o) = other(&mut rng, i, Some(p)) {
                        pairs.push((gallery, o, false));
                    }
                }
            }
        }
    }
    if pairs.is_empty() {
        return Err(DataError::Invalid(format!(
            "{}: no pairs (gallery {:?}, probes {:?})",
            folder.root().display(),
            config.gallery,
            config.probes
        )));
    }
    // Each image is cut and encoded once.
    let mut encoded: BTreeMap<&Path, Vec<u8>> = BTreeMap::new();
    let mut images = Vec::with_capacity(2 * pairs.len());
    let mut issame = Vec::with_capacity(pairs.len());
    for (a, b, same) in pairs {
        for path in [a, b] {
            if !encoded.contains_key(path) {
                encoded.insert(path, png(&face(path, config.crop)?, path)?);
            }
            images.push(encoded[path].clone());
        }
        issame.push(same);
    }
    Ok(VerificationBin { images, issame })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(dir: &Path, ids: usize, stems: &[&str]) -> ImageFolder {
        for i in 0..ids {
            let d = dir.join(format!("s{i}"));
            std::fs::create_dir_all(&d).unwrap();
            for (k, stem) in stems.iter().enumerate() {
                let mut image = RgbImage::new(40, 30);
                image
                    .pixels_mut()
                    .for_each(|p| *p = image::Rgb([(10 * i + k) as u8; 3]));
                image.save(d.join(format!("{stem}.png"))).unwrap();
            }
        }
        ImageFolder::open(dir).unwrap()
    }

    #[test]
    fn all_pairs_interleave_genuine_and_impostor_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path(), 3, &["1", "2", "3"]);
        let set = folder_pairs(&f, &PairsConfig::default()).unwrap();
        // 3 identities × C(3, 2) genuine pairs, each with one impostor.
        assert_eq!(set.pairs(), 18);
        assert_eq!(set.positives(), 9);
        assert!(set.issame.iter().step_by(2).all(|&s| s));
        let decoded = decode_rgb(&set.images[0], "face").unwrap();
        assert_eq!(decoded.dimensions(), (112, 112));
        // A genuine pair holds two images of the first identity (values 0 and 1), its
        // impostor the first image against another identity's (≥ 10).
        let value = |k: usize| decode_rgb(&set.images[k], "face").unwrap().get_pixel(5, 5)[0];
        assert_eq!((value(0), value(1)), (0, 1));
        assert_eq!(value(2), 0);
        assert!(value(3) >= 10, "{}", value(3));
    }

    #[test]
    fn gallery_against_probes_and_crops() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path(), 4, &["00", "01", "02", "03"]);
        let config = PairsConfig {
            crop: Some([10, 5, 20, 20]),
            gallery: Some("00".into()),
            probes: vec!["02".into(), "03".into()],
            seed: 7,
        };
        let set = folder_pairs(&f, &config).unwrap();
        assert_eq!(set.pairs(), 16);
        assert_eq!(set.positives(), 8);
        let value = |k: usize| decode_rgb(&set.images[k], "face").unwrap().get_pixel(5, 5)[0];
        // Identity 0: 00 against 02 (values 0, 2), then 00 against another's 02 (10j + 2).
        assert_eq!((value(0), value(1), value(2)), (0, 2, 0));
        assert_eq!(value(3) % 10, 2);
        assert_ne!(value(3), 2);
        // A crop that does not fit names the file.
        let bad = PairsConfig {
            crop: Some([30, 0, 20, 20]),
            ..config
        };
        let e = folder_pairs(&f, &bad).unwrap_err().to_string();
        assert!(e.contains("does not fit the 40×30 image"), "{e}");
    }
}
