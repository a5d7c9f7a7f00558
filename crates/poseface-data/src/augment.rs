//! Training-time augmentation of aligned faces: horizontal flip (mirroring landmarks with the
//! iBUG permutation and negating yaw and roll), scale/translation jitter, brightness and
//! contrast jitter — and the `(x − 127.5) / 127.5` CHW normalisation.

use image::RgbImage;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::align::{Affine2, warp_affine};
use crate::landmarks::{Point, flip_points};
use crate::pose::EulerAngles;

/// One face with everything training may use.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceSample {
    /// The (aligned) face, RGB.
    pub image: RgbImage,
    /// Identity label.
    pub label: u32,
    /// Landmarks in `image` pixels (5 or 68), when known.
    pub landmarks: Option<Vec<Point>>,
    /// Head pose, when known.
    pub angles: Option<EulerAngles>,
}

/// How strongly to augment. The default is insightface's: a random horizontal flip only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Probability of a horizontal flip.
    pub flip_prob: f32,
    /// Relative scale jitter: the scale is drawn from `[1 − s, 1 + s]`.
    pub scale_jitter: f32,
    /// Translation jitter in pixels, drawn from `[−t, t]` on each axis.
    pub shift_jitter: f32,
    /// Brightness jitter: adds `b · 255` with `b` drawn from `[−b, b]`.
    pub brightness: f32,
    /// Contrast jitter: scales deviations from the mean grey by `[1 − c, 1 + c]`.
    pub contrast: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            flip_prob: 0.5,
            scale_jitter: 0.0,
            shift_jitter: 0.0,
            brightness: 0.0,
            contrast: 0.0,
        }
    }
}

impl AugmentConfig {
    /// Checks that every strength is finite and in range (probability in `[0, 1]`, scale
    /// jitter in `[0, 1)`, the others non-negative).
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |what: &str, v: f32| {
            crate::DataError::Invalid(format!("augmentation {what} = {v} is out of range"))
        };
        if !(0.0..=1.0).contains(&self.flip_prob) {
            return Err(bad("flip_prob", self.flip_prob));
        }
        if !(0.0..1.0).contains(&self.scale_jitter) {
            return Err(bad("scale_jitter", self.scale_jitter));
        }
        for (what, v) in [
            ("shift_jitter", self.shift_jitter),
            ("brightness", self.brightness),
            ("contrast", self.contrast),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(what, v));
            }
        }
        Ok(())
    }

    /// No augmentation at all (evaluation).
    pub fn none() -> Self {
        Self {
            flip_prob: 0.0,
            ..Self::default()
        }
    }
}

/// Mirrors a sample horizontally: pixels, landmarks (with the semantic permutation), yaw and roll.
pub fn flip(sample: &FaceSample) -> FaceSample {
    let w = sample.image.width();
    FaceSample {
        image: image::imageops::flip_horizontal(&sample.image),
        label: sample.label,
        landmarks: sample.landmarks.as_ref().map(|l| flip_points(l, w)),
        angles: sample.angles.map(EulerAngles::flipped),
    }
}

/// Applies the configured random augmentation.
pub fn augment<R: Rng + ?Sized>(
    sample: FaceSample,
    cfg: &AugmentConfig,
    rng: &mut R,
) -> FaceSample {
    let mut s = if cfg.flip_prob > 0.0 && rng.random::<f32>() < cfg.flip_prob {
        flip(&sample)
    } else {
        sample
    };
    if cfg.scale_jitter > 0.0 || cfg.shift_jitter > 0.0 {
        let k = 1.0 + cfg.scale_jitter as f64 * rng.random_range(-1.0..=1.0);
        let (dx, dy) = (
            cfg.shift_jitter as f64 * rng.random_range(-1.0..=1.0),
            cfg.shift_jitter as f64 * rng.random_range(-1.0..=1.0),
        );
        let (cx, cy) = (
            (s.image.width() as f64 - 1.0) / 2.0,
            (s.image.height() as f64 - 1.0) / 2.0,
        );
        // Scale about the centre, then shift.
        let m = Affine2([[k, 0.0, cx - k * cx + dx], [0.0, k, cy - k * cy + dy]]);
        let (w, h) = s.image.dimensions();
        // `k > 0` for a validated config; an unvalidated one leaves the image as it is.
        if let Ok(warped) = warp_affine(&s.image, &m, w, h) {
            s.image = warped;
        } else {
            return s;
        }
        if let Some(l) = s.landmarks.as_mut() {
            for p in l.iter_mut() {
                let q = m.apply([p[0] as f64, p[1] as f64]);
                *p = [q[0] as f32, q[1] as f32];
            }
        }
    }
    if cfg.brightness > 0.0 || cfg.contrast > 0.0 {
        let b = 255.0 * cfg.brightness * rng.random_range(-1.0f32..=1.0);
        let c = 1.0 + cfg.contrast * rng.random_range(-1.0f32..=1.0);
        let raw = s.image.as_raw();
        let mean = raw.iter().map(|&v| v as f32).sum::<f32>() / raw.len().max(1) as f32;
        for v in s.image.iter_mut() {
            *v = ((*v as f32 - mean) * c + mean + b)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    s
}

/// Writes `image` into `out` as `[3, h, w]` floats `(x − 127.5) / 127.5` (RGB planes).
pub fn normalise_chw(image: &RgbImage, out: &mut [f32]) {
    let (w, h) = image.dimensions();
    let plane = (w * h) as usize;
    assert_eq!(
        out.len(),
        3 * plane,
        "output buffer must hold 3 × h × w floats"
    );
    for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px[c] as f32 - 127.5) / 127.5;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sample() -> FaceSample {
        FaceSample {
            image: RgbImage::from_fn(6, 4, |x, y| image::Rgb([(40 * x) as u8, (60 * y) as u8, 7])),
            label: 3,
            landmarks: Some(vec![
                [1.0, 1.0],
                [4.0, 1.0],
                [2.5, 2.0],
                [1.5, 3.0],
                [3.5, 3.0],
            ]),
            angles: Some(EulerAngles {
                yaw: 20.0,
                pitch: 5.0,
                roll: -3.0,
            }),
        }
    }

    #[test]
    fn flip_mirrors_pixels_landmarks_and_pose() {
        let s = sample();
        let f = flip(&s);
        assert_eq!(f.image.get_pixel(0, 2), s.image.get_pixel(5, 2));
        // Image-left eye of the flip = mirrored image-right eye of the original: 5 − 4 = 1.
        assert_eq!(f.landmarks.as_ref().unwrap()[0], [1.0, 1.0]);
        assert_eq!(f.landmarks.as_ref().unwrap()[3], [1.5, 3.0]);
        assert_eq!(
            f.angles,
            Some(EulerAngles {
                yaw: -20.0,
                pitch: 5.0,
                roll: 3.0
            })
        );
        assert_eq!(flip(&f), s);
    }

    #[test]
    fn jitter_moves_landmarks_with_pixels() {
        let mut s = sample();
        s.image = RgbImage::new(41, 41);
        s.image.put_pixel(10, 30, image::Rgb([255, 255, 255]));
        s.landmarks = Some(vec![[10.0, 30.0]; 5]);
        let cfg = AugmentConfig {
            flip_prob: 0.0,
            scale_jitter: 0.2,
            shift_jitter: 3.0,
            ..AugmentConfig::none()
        };
        let out = augment(s, &cfg, &mut rand_chacha::ChaCha8Rng::seed_from_u64(5));
        let p = out.landmarks.unwrap()[0];
        let (x, y) = (p[0].round() as u32, p[1].round() as u32);
        let brightest = out
            .image
            .enumerate_pixels()
            .max_by_key(|(_, _, v)| v.0[0])
            .unwrap();
        assert!(
            (brightest.0 as i64 - x as i64).abs() <= 1
                && (brightest.1 as i64 - y as i64).abs() <= 1
        );
    }

    #[test]
    fn normalisation_range() {
        let img = RgbImage::from_raw(1, 1, vec![0, 255, 128]).unwrap();
        let mut out = [0f32; 3];
        normalise_chw(&img, &mut out);
        assert_eq!(out, [-1.0, 1.0, 0.5 / 127.5]);
    }
}
