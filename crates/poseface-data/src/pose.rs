//! Head pose (yaw, pitch, roll in degrees) from 68 or 5 2D landmarks, by fitting the 3D
//! [mean face](crate::mean_face) under a scaled-orthographic camera with Levenberg–Marquardt
//! from several starting yaws.
//!
//! # Sign convention (used everywhere in PoseFace)
//!
//! Angles describe how the face appears in the image (`x` right, `y` down):
//! - **yaw > 0**: the face turns towards the image's right — the nose tip moves right
//!   (the subject turns to their own left); ±90° is a full profile;
//! - **pitch > 0**: the face tilts up — the nose tip moves up in the image;
//! - **roll > 0**: the face rotates clockwise in the image — the eye on the image's right
//!   moves down.
//!
//! The rotation applied to model points is `R = Rz(roll) · Ry(yaw) · Rx(pitch)` (pitch first,
//! about the model's horizontal axis; then yaw about the vertical; then roll in the image
//! plane), with the signs chosen to give the motions above. A horizontal flip negates yaw
//! and roll and keeps pitch.

use nalgebra::{Matrix3, Matrix4, Vector4};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::landmarks::Point;
use crate::mean_face::{mean_face_5, mean_face_68};

/// Head pose in degrees (see the module docs for the sign convention).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EulerAngles {
    /// Turn left/right; positive towards the image's right.
    pub yaw: f32,
    /// Tilt up/down; positive up.
    pub pitch: f32,
    /// In-plane rotation; positive clockwise in the image.
    pub roll: f32,
}

impl EulerAngles {
    /// The pose of the horizontally mirrored face.
    pub fn flipped(self) -> Self {
        Self {
            yaw: -self.yaw,
            pitch: self.pitch,
            roll: -self.roll,
        }
    }
}

/// The rotation matrix for `yaw`, `pitch`, `roll` given in radians.
pub fn rotation(yaw: f64, pitch: f64, roll: f64) -> Matrix3<f64> {
    let (sy, cy) = yaw.sin_cos();
    let (sp, cp) = pitch.sin_cos();
    let (sr, cr) = roll.sin_cos();
    let rz = Matrix3::new(cr, -sr, 0.0, sr, cr, 0.0, 0.0, 0.0, 1.0);
    let ry = Matrix3::new(cy, 0.0, -sy, 0.0, 1.0, 0.0, sy, 0.0, cy);
    let rx = Matrix3::new(1.0, 0.0, 0.0, 0.0, cp, sp, 0.0, -sp, cp);
    rz * ry * rx
}

/// Projects model points with a scaled-orthographic camera: `s · (R·X)_xy + t`.
pub fn project(model: &[[f64; 3]], pose: EulerAngles, scale: f64, t: [f64; 2]) -> Vec<Point> {
    let r = rotation(
        (pose.yaw as f64).to_radians(),
        (pose.pitch as f64).to_radians(),
        (pose.roll as f64).to_radians(),
    );
    model
        .iter()
        .map(|q| {
            let v = r * nalgebra::Vector3::new(q[0], q[1], q[2]);
            [(scale * v[0] + t[0]) as f32, (scale * v[1] + t[1]) as f32]
        })
        .collect()
}

/// A fitted pose with the fit's scale, translation and residual.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoseFit {
    /// The head pose.
    pub angles: EulerAngles,
    /// Pixels per model millimetre.
    pub scale: f64,
    /// Image position of the model origin.
    pub translation: [f64; 2],
    /// Root-mean-square reprojection error in pixels.
    pub rms: f64,
}

/// Estimates the head pose from 68 (iBUG order) or 5 (eyes, nose, mouth corners) points.
pub fn estimate_pose(points: &[Point]) -> Result<EulerAngles> {
    fit_pose(points).map(|f| f.angles)
}

/// Fits the mean face to 68 or 5 points; see [`estimate_pose`].
pub fn fit_pose(points: &[Point]) -> Result<PoseFit> {
    let model: Vec<[f64; 3]> = match points.len() {
        68 => mean_face_68().to_vec(),
        5 => mean_face_5().to_vec(),
        n => {
            return Err(DataError::Invalid(format!(
                "pose needs 5 or 68 landmarks, got {n}"
            )));
        }
    };
    if points.iter().flatten().any(|v| !v.is_finite()) {
        return Err(DataError::Invalid(
            "landmarks contain a non-finite coordinate".into(),
        ));
    }
    let n = points.len() as f64;
    let c2 = points.iter().fold([0.0; 2], |a, p| {
        [a[0] + p[0] as f64 / n, a[1] + p[1] as f64 / n]
    });
    let c3 = model.iter().fold([0.0; 3], |a, q| {
        [a[0] + q[0] / n, a[1] + q[1] / n, a[2] + q[2] / n]
    });
    let uv: Vec<[f64; 2]> = points
        .iter()
        .map(|p| [p[0] as f64 - c2[0], p[1] as f64 - c2[1]])
        .collect();
    let xyz: Vec<nalgebra::Vector3<f64>> = model
        .iter()
        .map(|q| nalgebra::Vector3::new(q[0] - c3[0], q[1] - c3[1], q[2] - c3[2]))
        .collect();
    let spread2 = uv.iter().map(|p| p[0] * p[0] + p[1] * p[1]).sum::<f64>();
    let spread3 = xyz.iter().map(|q| q[0] * q[0] + q[1] * q[1]).sum::<f64>();
    if spread2 < 1e-9 {
        return Err(DataError::Invalid("landmarks all coincide".into()));
    }
    let s0 = (spread2 / spread3).sqrt();
    // In-plane angle of the eye line gives the starting roll.
    let (le, re) = if points.len() == 68 {
        let m = |r: std::ops::Range<usize>| {
            let k = r.len() as f64;
            r.fold([0.0; 2], |a, i| [a[0] + uv[i][0] / k, a[1] + uv[i][1] / k])
        };
        (m(36..42), m(42..48))
    } else {
        (uv[0], uv[1])
    };
    let roll0 = (re[1] - le[1]).atan2(re[0] - le[0]);

    let residuals = |p: &Vector4<f64>, out: &mut Vec<f64>| {
        out.clear();
        let r = rotation(p[0], p[1], p[2]);
        let s = p[3].exp();
        for (q, u) in xyz.iter().zip(&uv) {
            let v = r * q;
            out.push(s * v[0] - u[0]);
            out.push(s * v[1] - u[1]);
        }
    };
    let cost = |p: &Vector4<f64>, buf: &mut Vec<f64>| {
        residuals(p, buf);
        buf.iter().map(|r| r * r).sum::<f64>()
    };
    let mut best: Option<(f64, Vector4<f64>)> = None;
    let (mut r0, mut rp, mut rm) = (Vec::new(), Vec::new(), Vec::new());
    for yaw0 in [-75f64, -45.0, -15.0, 15.0, 45.0, 75.0] {
        for pitch0 in [-15f64, 15.0] {
            let mut p = Vector4::new(yaw0.to_radians(), pitch0.to_radians(), roll0, s0.ln());
            let mut c = cost(&p, &mut r0);
            let mut lambda = 1e-3;
            for _ in 0..100 {
                residuals(&p, &mut r0);
                // Central-difference Jacobian: four parameters, cheap and robust.
                let mut jtj = Matrix4::zeros();
                let mut jtr = Vector4::zeros();
                let mut jac: Vec<Vec<f64>> = Vec::with_capacity(4);
                for k in 0..4 {
                    let h = 1e-6;
                    let (mut pp, mut pm) = (p, p);
                    pp[k] += h;
                    pm[k] -= h;
                    residuals(&pp, &mut rp);
                    residuals(&pm, &mut rm);
                    jac.push(
                        rp.iter()
                            .zip(&rm)
                            .map(|(a, b)| (a - b) / (2.0 * h))
                            .collect(),
                    );
                }
                for a in 0..4 {
                    jtr[a] = jac[a].iter().zip(&r0).map(|(j, r)| j * r).sum();
                    for b in 0..4 {
                        jtj[(a, b)] = jac[a].iter().zip(&jac[b]).map(|(x, y)| x * y).sum();
                    }
                }
                let mut improved = false;
                for _ in 0..10 {
                    let mut m = jtj;
                    for d in 0..4 {
                        m[(d, d)] += lambda * (jtj[(d, d)] + 1e-9);
                    }
                    let Some(step) = m.lu().solve(&(-jtr)) else {
                        break;
                    };
                    let cand = p + step;
                    let cc = cost(&cand, &mut rp);
                    if cc < c {
                        let done = (c - cc) < 1e-12 * (1.0 + c) || step.norm() < 1e-10;
                        p = cand;
                        c = cc;
                        lambda = (lambda * 0.3).max(1e-12);
                        improved = !done;
                        break;
                    }
                    lambda *= 10.0;
                }
                if !improved {
                    break;
                }
            }
            if best.as_ref().is_none_or(|b| c < b.0) {
                best = Some((c, p));
            }
        }
    }
    let (c, p) = best.expect("at least one start");
    let wrap = |a: f64| {
        let d = a.to_degrees().rem_euclid(360.0);
        (if d > 180.0 { d - 360.0 } else { d }) as f32
    };
    let s = p[3].exp();
    let r = rotation(p[0], p[1], p[2]);
    let c3v = r * nalgebra::Vector3::new(c3[0], c3[1], c3[2]);
    Ok(PoseFit {
        angles: EulerAngles {
            yaw: wrap(p[0]),
            pitch: wrap(p[1]),
            roll: wrap(p[2]),
        },
        scale: s,
        translation: [c2[0] - s * c3v[0], c2[1] - s * c3v[1]],
        rms: (c / n).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn sign_convention_moves_the_nose_as_documented() {
        let nose = [[0.0, 0.0, -34.0]];
        let right = project(
            &nose,
            EulerAngles {
                yaw: 30.0,
                ..Default::default()
            },
            1.0,
            [0.0; 2],
        );
        assert!(right[0][0] > 10.0);
        let up = project(
            &nose,
            EulerAngles {
                pitch: 30.0,
                ..Default::default()
            },
            1.0,
            [0.0; 2],
        );
        assert!(up[0][1] < -10.0);
        let eye = [[31.5, 0.0, 0.0]];
        let cw = project(
            &eye,
            EulerAngles {
                roll: 30.0,
                ..Default::default()
            },
            1.0,
            [0.0; 2],
        );
        assert!(cw[0][1] > 10.0);
    }

    /// Random poses, projected at the scale of a 112-pixel crop (35 px between the eyes)
    /// with 1 px Gaussian noise; returns the yaw MAE in degrees.
    fn yaw_mae(model: &[[f64; 3]], n: usize, seed: u64) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = |rng: &mut ChaCha8Rng| {
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        };
        let (mut err, mut worst) = (0.0, 0.0f64);
        for _ in 0..n {
            let truth = EulerAngles {
                yaw: rng.random_range(-75.0..=75.0),
                pitch: rng.random_range(-20.0..=20.0),
                roll: rng.random_range(-20.0..=20.0),
            };
            let pts: Vec<Point> = project(model, truth, 35.0 / 63.0, [56.0, 60.0])
                .into_iter()
                .map(|p| {
                    [
                        p[0] + normal(&mut rng) as f32,
                        p[1] + normal(&mut rng) as f32,
                    ]
                })
                .collect();
            let est = estimate_pose(&pts).unwrap();
            let e = (est.yaw - truth.yaw).abs() as f64;
            err += e;
            worst = worst.max(e);
        }
        (err / n as f64, worst)
    }

    #[test]
    fn yaw_accuracy_with_68_points() {
        let (mae, worst) = yaw_mae(&mean_face_68(), 300, 1);
        assert!(mae <= 3.0, "68-point yaw MAE {mae:.2}° (worst {worst:.1}°)");
    }

    #[test]
    fn yaw_accuracy_with_5_points() {
        let (mae, worst) = yaw_mae(&mean_face_5(), 300, 2);
        assert!(mae <= 8.0, "5-point yaw MAE {mae:.2}° (worst {worst:.1}°)");
    }

    #[test]
    fn exact_points_give_exact_pose() {
        let truth = EulerAngles {
            yaw: -52.0,
            pitch: 11.0,
            roll: -7.0,
        };
        let pts = project(&mean_face_68(), truth, 0.8, [100.0, 80.0]);
        let fit = fit_pose(&pts).unwrap();
        assert!((fit.angles.yaw - truth.yaw).abs() < 0.01, "{fit:?}");
        assert!((fit.angles.pitch - truth.pitch).abs() < 0.01, "{fit:?}");
        assert!((fit.angles.roll - truth.roll).abs() < 0.01, "{fit:?}");
        assert!((fit.scale - 0.8).abs() < 1e-4 && (fit.translation[0] - 100.0).abs() < 1e-2);
        let flipped = crate::landmarks::flip_points(&pts, 200);
        let f = estimate_pose(&flipped).unwrap();
        assert!(
            (f.yaw + truth.yaw).abs() < 0.01 && (f.roll + truth.roll).abs() < 0.01,
            "{f:?}"
        );
    }
}
