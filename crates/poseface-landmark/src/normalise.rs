//! Landmark normalisation: what the autoencoder sees.
//!
//! A shape of `P` points is centred on the mean of its points and divided by its RMS radius
//! `s = sqrt(mean_i ‖p_i − c‖²)`, so the normalised shape has zero mean and unit RMS radius.
//! Translation and scale are removed; rotation is kept (in-plane roll is pose). PoseFace feeds
//! landmarks in the aligned 112×112 frame, where the 5-point similarity alignment has already
//! removed most of the roll, so the autoencoder's code describes yaw, pitch, expression and
//! face shape. The same normalisation exists twice, once on host slices (for files and
//! metrics) and once on tensors (for training batches), and a test holds them equal.

use burn::tensor::Tensor;
use poseface_data::landmarks::Point;

use crate::LandmarkError;

/// The centre and scale [`normalise`] removed, to map reconstructions back to pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Mean of the points.
    pub centre: Point,
    /// RMS distance of the points from `centre`.
    pub scale: f32,
}

impl Frame {
    /// Maps a normalised point back to the original coordinates.
    pub fn restore(&self, p: Point) -> Point {
        [
            p[0] * self.scale + self.centre[0],
            p[1] * self.scale + self.centre[1],
        ]
    }
}

/// Centres `points` on their mean and scales them to unit RMS radius.
///
/// Errors when a coordinate is not finite or all points coincide (nothing to normalise).
pub fn normalise(points: &[Point]) -> Result<(Vec<Point>, Frame), LandmarkError> {
    if points.is_empty() || points.iter().flatten().any(|v| !v.is_finite()) {
        return Err(LandmarkError::Shape(format!(
            "{} points, expected finite coordinates",
            points.len()
        )));
    }
    let n = points.len() as f64;
    let cx = points.iter().map(|p| f64::from(p[0])).sum::<f64>() / n;
    let cy = points.iter().map(|p| f64::from(p[1])).sum::<f64>() / n;
    let ms = points
        .iter()
        .map(|p| (f64::from(p[0]) - cx).powi(2) + (f64::from(p[1]) - cy).powi(2))
        .sum::<f64>()
        / n;
    let scale = ms.sqrt();
    if scale < 1e-9 {
        return Err(LandmarkError::Shape(
            "all points coincide: the shape has no extent".into(),
        ));
    }
    let out = points
        .iter()
        .map(|p| {
            [
                ((f64::from(p[0]) - cx) / scale) as f32,
                ((f64::from(p[1]) - cy) / scale) as f32,
            ]
        })
        .collect();
    Ok((
        out,
        Frame {
            centre: [cx as f32, cy as f32],
            scale: scale as f32,
        },
    ))
}

/// [`normalise`] on a batch of shapes, flattened to the autoencoder's input.
///
/// # Shapes
/// - `points`: `[batch, P, 2]`
/// - output: `[batch, 2P]` as `x0, y0, x1, y1, …`
pub fn normalise_tensor(points: Tensor<3>) -> Tensor<2> {
    let [b, p, _] = points.dims();
    let centred = points.clone() - points.mean_dim(1); // [B, P, 2]
    let radius = centred
        .clone()
        .powf_scalar(2.0)
        .sum_dim(2)
        .mean_dim(1)
        .sqrt()
        .clamp_min(1e-6); // [B, 1, 1]
    (centred / radius).reshape([b, 2 * p])
}

/// Flattens host shapes of `points` points each into `x0, y0, …` rows after [`normalise`].
pub fn normalise_rows(
    shapes: &[Vec<Point>],
    points: usize,
) -> Result<(Vec<f32>, Vec<Frame>), LandmarkError> {
    let mut rows = Vec::with_capacity(shapes.len() * points * 2);
    let mut frames = Vec::with_capacity(shapes.len());
    for (i, shape) in shapes.iter().enumerate() {
        if shape.len() != points {
            return Err(LandmarkError::Shape(format!(
                "shape {i} has {} points, expected {points}",
                shape.len()
            )));
        }
        let (n, frame) =
            normalise(shape).map_err(|e| LandmarkError::Shape(format!("shape {i}: {e}")))?;
        rows.extend(n.iter().flatten());
        frames.push(frame);
    }
    Ok((rows, frames))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    #[test]
    fn host_normalisation_is_centred_unit_rms_and_invertible() {
        // Hand derivation: a 2×1 rectangle's corners (0,0) (2,0) (2,1) (0,1) have mean (1, 0.5)
        // and squared distances 1.25 each, so the RMS radius is sqrt(1.25).
        let pts = [[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0]];
        let (n, f) = normalise(&pts).unwrap();
        assert_eq!(f.centre, [1.0, 0.5]);
        assert!((f.scale - 1.25f32.sqrt()).abs() < 1e-7);
        let r = 1.0 / 1.25f32.sqrt();
        assert!((n[0][0] + r).abs() < 1e-6 && (n[0][1] + 0.5 * r).abs() < 1e-6);
        for (p, q) in pts.iter().zip(&n) {
            let back = f.restore(*q);
            assert!((back[0] - p[0]).abs() < 1e-6 && (back[1] - p[1]).abs() < 1e-6);
        }
        assert!(normalise(&[[1.0, 1.0], [1.0, 1.0]]).is_err());
        assert!(normalise(&[[f32::NAN, 1.0], [1.0, 2.0]]).is_err());
    }

    #[test]
    fn tensor_normalisation_matches_the_host_one() {
        let shapes = vec![
            vec![[10.0, 20.0], [30.0, 25.0], [22.0, 60.0]],
            vec![[-1.0, 4.0], [3.0, 3.5], [0.5, -2.0]],
        ];
        let (rows, _) = normalise_rows(&shapes, 3).unwrap();
        let flat: Vec<f32> = shapes.iter().flatten().flatten().copied().collect();
        let device = Device::default();
        let t = Tensor::<3>::from_data(TensorData::new(flat, [2, 3, 2]), &device);
        let got = normalise_tensor(t).into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in got.iter().zip(&rows) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(normalise_rows(&shapes, 4).is_err());
    }
}
