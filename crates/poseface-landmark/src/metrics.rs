//! Reconstruction error of the autoencoder, as the landmark literature reports it.
//!
//! NME (normalised mean error) is the mean point-to-point distance between reconstructed
//! and given landmarks divided by a face size: the inter-ocular distance (outer eye corners,
//! points 36 and 45, as in 300-W) and, because that distance collapses in profile, also
//! the square root of the landmarks' bounding-box area (as AFLW2000-3D reports).

use burn::tensor::{Device, Tensor, TensorData};
use poseface_data::landmarks::Point;
use serde::{Deserialize, Serialize};

use crate::LandmarkError;
use crate::model::LandmarkAutoencoder;
use crate::normalise::normalise_rows;

/// NME over a set of shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NmeReport {
    /// Shapes evaluated.
    pub count: usize,
    /// Mean NME normalised by the inter-ocular distance (68-point shapes only).
    pub iod_mean: Option<f64>,
    /// Median of the same.
    pub iod_median: Option<f64>,
    /// Mean NME normalised by `sqrt(width · height)` of the landmarks' bounding box.
    pub box_mean: f64,
    /// Per-shape NME by inter-ocular distance (by box when not 68 points).
    pub per_shape: Vec<f64>,
}

/// Mean distance between `a` and `b`, point by point.
pub fn mean_point_error(a: &[Point], b: &[Point]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (f64::from(p[0] - q[0]).powi(2) + f64::from(p[1] - q[1]).powi(2)).sqrt())
        .sum::<f64>()
        / a.len().max(1) as f64
}

/// Distance between the outer eye corners of a 68-point shape.
pub fn inter_ocular(points: &[Point]) -> Option<f64> {
    (points.len() == 68).then(|| {
        let (a, b) = (points[36], points[45]);
        (f64::from(a[0] - b[0]).powi(2) + f64::from(a[1] - b[1]).powi(2)).sqrt()
    })
}

/// `sqrt(width · height)` of the points' bounding box.
pub fn box_size(points: &[Point]) -> f64 {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in points {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    (f64::from(x1 - x0) * f64::from(y1 - y0)).sqrt()
}

/// Reconstructs `shapes` (landmarks in pixels) through the autoencoder, in batches on
/// `device`, and maps the reconstructions back to pixels.
pub fn reconstruct_shapes(
    ae: &LandmarkAutoencoder,
    shapes: &[Vec<Point>],
    device: &Device,
) -> Result<Vec<Vec<Point>>, LandmarkError> {
    let p = ae.config().points;
    let mut out = Vec::with_capacity(shapes.len());
    for chunk in shapes.chunks(1024) {
        let (rows, frames) = normalise_rows(chunk, p)?;
        let x = Tensor::<2>::from_data(TensorData::new(rows, [chunk.len(), 2 * p]), device);
        let y = ae
            .reconstruct(x)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| LandmarkError::Shape(format!("{e:?}")))?;
        for (row, frame) in y.chunks(2 * p).zip(&frames) {
            out.push(row.chunks(2).map(|c| frame.restore([c[0], c[1]])).collect());
        }
    }
    Ok(out)
}

/// NME of the autoencoder's reconstruction of `shapes`.
pub fn evaluate(
    ae: &LandmarkAutoencoder,
    shapes: &[Vec<Point>],
    device: &Device,
) -> Result<NmeReport, LandmarkError> {
    if shapes.is_empty() {
        return Err(LandmarkError::Shape("no shapes to evaluate".into()));
    }
    let recon = reconstruct_shapes(ae, shapes, device)?;
    Ok(nme(shapes, &recon))
}

/// NME of `predicted` against `truth`.
pub fn nme(truth: &[Vec<Point>], predicted: &[Vec<Point>]) -> NmeReport {
    let mut iod = Vec::new();
    let mut by_box = Vec::new();
    for (t, p) in truth.iter().zip(predicted) {
        let e = mean_point_error(t, p);
        by_box.push(e / box_size(t).max(1e-9));
        if let Some(d) = inter_ocular(t) {
            iod.push(e / d.max(1e-9));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let iod_ok = iod.len() == truth.len() && !iod.is_empty();
    let mut sorted = iod.clone();
    sorted.sort_by(f64::total_cmp);
    NmeReport {
        count: truth.len(),
        iod_mean: iod_ok.then(|| mean(&iod)),
        iod_median: iod_ok.then(|| {
            let m = sorted.len() / 2;
            if sorted.len() % 2 == 0 {
                0.5 * (sorted[m - 1] + sorted[m])
            } else {
                sorted[m]
            }
        }),
        box_mean: mean(&by_box),
        per_shape: if iod_ok { iod } else { by_box },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nme_by_hand() {
        // A 68-point shape whose outer eye corners are 40 px apart and whose box is 40 × 90.
        let mut truth = vec![[20.0f32, 50.0]; 68];
        truth[36] = [0.0, 0.0];
        truth[45] = [40.0, 0.0];
        truth[8] = [20.0, 90.0];
        // Every point moved by (3, 4): error 5 px everywhere.
        let moved: Vec<Point> = truth.iter().map(|p| [p[0] + 3.0, p[1] + 4.0]).collect();
        let r = nme(std::slice::from_ref(&truth), &[moved]);
        assert!((r.iod_mean.unwrap() - 5.0 / 40.0).abs() < 1e-12);
        assert!((r.box_mean - 5.0 / 3600f64.sqrt()).abs() < 1e-12);
        // Five points: no inter-ocular normalisation.
        let five = vec![
            [0.0f32, 0.0],
            [4.0, 0.0],
            [2.0, 2.0],
            [0.0, 4.0],
            [4.0, 4.0],
        ];
        let r = nme(std::slice::from_ref(&five), std::slice::from_ref(&five));
        assert_eq!((r.iod_mean, r.box_mean), (None, 0.0));
    }
}
