//! 5-point face alignment: a least-squares similarity transform (Umeyama, 1991) onto the
//! ArcFace template and a bilinear warp with a zero border — the same geometry as
//! scikit-image's `SimilarityTransform` followed by `cv2.warpAffine(..., INTER_LINEAR,
//! borderValue=0)`: integer coordinates are pixel centres in both images.

use image::RgbImage;
use nalgebra::{Matrix2, Vector2};
use wide::f32x8;

use crate::error::{DataError, Result};
use crate::landmarks::{ARCFACE_TEMPLATE, Point, five_points};

/// Side of the aligned face crop.
pub const ALIGNED_SIZE: u32 = 112;

/// A 2×3 affine map `[x', y'] = [[a, b, c], [d, e, f]] · [x, y, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine2(pub [[f64; 3]; 2]);

impl Affine2 {
    /// The identity map.
    pub const IDENTITY: Affine2 = Affine2([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);

    /// Applies the map to a point.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        let m = &self.0;
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
        ]
    }

    /// Applies the map to landmarks (`f32` points, computed in `f64`).
    pub fn apply_points(&self, points: &[Point]) -> Vec<Point> {
        points
            .iter()
            .map(|p| {
                let q = self.apply([p[0] as f64, p[1] as f64]);
                [q[0] as f32, q[1] as f32]
            })
            .collect()
    }

    /// The inverse map, or `None` when the linear part is singular.
    pub fn inverse(&self) -> Option<Affine2> {
        let m = &self.0;
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (a, b, d, e) = (m[1][1] / det, -m[0][1] / det, -m[1][0] / det, m[0][0] / det);
        Some(Affine2([
            [a, b, -(a * m[0][2] + b * m[1][2])],
            [d, e, -(d * m[0][2] + e * m[1][2])],
        ]))
    }

    /// `self ∘ first`: applies `first`, then `self`.
    pub fn compose(&self, first: &Affine2) -> Affine2 {
        let (a, b) = (&self.0, &first.0);
        let mut out = [[0.0; 3]; 2];
        for r in 0..2 {
            for c in 0..3 {
                out[r][c] =
                    a[r][0] * b[0][c] + a[r][1] * b[1][c] + if c == 2 { a[r][2] } else { 0.0 };
            }
        }
        Affine2(out)
    }
}

/// Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping
/// `src` onto `dst` (Umeyama's closed form). Errors when the points are degenerate.
pub fn similarity_transform(src: &[Point], dst: &[Point]) -> Result<Affine2> {
    let wide = |p: &[Point]| {
        p.iter()
            .map(|q| [q[0] as f64, q[1] as f64])
            .collect::<Vec<_>>()
    };
    similarity_transform_f64(&wide(src), &wide(dst))
}

/// [`similarity_transform`] on `f64` points.
pub fn similarity_transform_f64(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Result<Affine2> {
    if src.len() != dst.len() || src.len() < 2 {
        return Err(DataError::Invalid(format!(
            "similarity needs two equally long point lists of at least 2, got {} and {}",
            src.len(),
            dst.len()
        )));
    }
    if src.iter().chain(dst).flatten().any(|v| !v.is_finite()) {
        return Err(DataError::Invalid(
            "landmarks contain a non-finite coordinate".into(),
        ));
    }
    let n = src.len() as f64;
    let v = |p: &[f64; 2]| Vector2::new(p[0], p[1]);
    let mu_s = src.iter().map(v).sum::<Vector2<f64>>() / n;
    let mu_d = dst.iter().map(v).sum::<Vector2<f64>>() / n;
    // Cross-covariance A = Σ (d − μd)(s − μs)ᵀ / n and the source variance.
    let mut a = Matrix2::zeros();
    let mut var_s = 0.0;
    for (s, d) in src.iter().zip(dst) {
        let (ds, dd) = (v(s) - mu_s, v(d) - mu_d);
        a += dd * ds.transpose();
        var_s += ds.norm_squared();
    }
    a /= n;
    var_s /= n;
    if var_s < 1e-12 {
        return Err(DataError::Invalid("source landmarks all coincide".into()));
    }
    let svd = a.svd(true, true);
    let (mut u, mut vt, mut s) = (
        svd.u.expect("u"),
        svd.v_t.expect("v_t"),
        svd.singular_values,
    );
    if s[0] < s[1] {
        u.swap_columns(0, 1);
        vt.swap_rows(0, 1);
        s.swap_rows(0, 1);
    }
    if s[0] <= 1e-12 * (1.0 + var_s) {
        return Err(DataError::Invalid(
            "destination landmarks all coincide".into(),
        ));
    }
    // Umeyama's sign correction: reflections are not similarities.
    let rank_deficient = s[1] <= 1e-12 * s[0];
    let flip = if rank_deficient {
        u.determinant() * vt.determinant() < 0.0
    } else {
        a.determinant() < 0.0
    };
    let d = Vector2::new(1.0, if flip { -1.0 } else { 1.0 });
    let r = u * Matrix2::from_diagonal(&d) * vt;
    let scale = s.dot(&d) / var_s;
    let t = mu_d - scale * r * mu_s;
    Ok(Affine2([
        [scale * r[(0, 0)], scale * r[(0, 1)], t[0]],
        [scale * r[(1, 0)], scale * r[(1, 1)], t[1]],
    ]))
}

/// The transform from 5 (or 68) landmarks onto the ArcFace 112×112 template.
///
/// The 68 → 5 reduction is done in `f64`, as the reference implementations do, so the matrix
/// agrees with them to ~1e-9 even for faces far from the image origin.
pub fn arcface_transform(landmarks: &[Point]) -> Result<Affine2> {
    let wide = |p: &[Point]| {
        p.iter()
            .map(|q| [q[0] as f64, q[1] as f64])
            .collect::<Vec<_>>()
    };
    let src = match landmarks.len() {
        68 => {
            let p = wide(landmarks);
            let mean = |r: std::ops::Range<usize>| {
                let n = r.len() as f64;
                p[r].iter()
                    .fold([0.0; 2], |a, q| [a[0] + q[0] / n, a[1] + q[1] / n])
            };
            vec![mean(36..42), mean(42..48), p[30], p[48], p[54]]
        }
        _ => wide(&five_points(landmarks)?),
    };
    similarity_transform_f64(&src, &wide(&ARCFACE_TEMPLATE))
}

/// Warps `src` by `m` (source → destination) into a `width × height` image: bilinear
/// interpolation, pixels outside the source read as 0.
///
/// The arithmetic follows OpenCV 5's `warpAffine(INTER_LINEAR, BORDER_CONSTANT)`: the inverse
/// map is computed in `f64` and applied in `f32`, the interpolation is done in `f32`, and the
/// result is rounded half to even. On the same pixels the crops agree with OpenCV's to the
/// grey level, except for a handful of pixels per crop off by one.
pub fn warp_affine(src: &RgbImage, m: &Affine2, width: u32, height: u32) -> Result<RgbImage> {
    let inv = m
        .inverse()
        .ok_or_else(|| DataError::Invalid("alignment transform is singular".into()))?;
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw();
    let mut out = RgbImage::new(width, height);
    let dst = out.as_mut();
    let im = inv.0.map(|r| r.map(|v| v as f32));
    let fetch = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= sw || y >= sh {
            return [0.0; 3];
        }
        let o = 3 * (y * sw + x) as usize;
        [raw[o] as f32, raw[o + 1] as f32, raw[o + 2] as f32]
    };
    let w = width as usize;
    // The interpolation of one pixel's channels from its four neighbours (each `[r, g, b]`).
    let blend = |p: [[f32; 3]; 4], ax: f32, ay: f32, c: usize| {
        (p[0][c] * (1.0 - ax) + p[1][c] * ax) * (1.0 - ay)
            + (p[2][c] * (1.0 - ax) + p[3][c] * ax) * ay
    };
    let inside = |sx: f32, sy: f32| sx > -1.0 && sy > -1.0 && sx < sw as f32 && sy < sh as f32;
    let neighbours = |x0: i64, y0: i64| {
        [
            fetch(x0, y0),
            fetch(x0 + 1, y0),
            fetch(x0, y0 + 1),
            fetch(x0 + 1, y0 + 1),
        ]
    };
    // Eight pixels at a time: the same operations, in the same order, on each lane, so the
    // result is the scalar loop's to the bit; the source pixels are gathered one by one.
    let vectors = w / 8 * 8;
    let splat = f32x8::splat;
    let row = 3 * sw as usize;
    for y in 0..height as usize {
        let fy = y as f32;
        let (ry0, ry1) = (im[0][1] * fy, im[1][1] * fy);
        for x8 in (0..vectors).step_by(8) {
            let xs = f32x8::new(std::array::from_fn(|i| (x8 + i) as f32));
            let sx = (splat(im[0][0]) * xs + splat(ry0)) + splat(im[0][2]);
            let sy = (splat(im[1][0]) * xs + splat(ry1)) + splat(im[1][2]);
            let (x0, y0) = (floor8(sx), floor8(sy));
            let (ax, ay) = (sx - x0, sy - y0);
            let (bx, by) = (splat(1.0) - ax, splat(1.0) - ay);
            let (sxa, sya) = (sx.to_array(), sy.to_array());
            let (x0a, y0a) = (x0.to_array(), y0.to_array());
            // [neighbour][channel][lane]
            let mut p = [[[0f32; 8]; 3]; 4];
            let mut valid = [false; 8];
            for i in 0..8 {
                if !inside(sxa[i], sya[i]) {
                    continue;
                }
                valid[i] = true;
                let (xi, yi) = (x0a[i] as i64, y0a[i] as i64);
                if xi >= 0 && yi >= 0 && xi + 1 < sw && yi + 1 < sh {
                    // All four inside (nearly every pixel): two rows of two pixels.
                    let top = 3 * (yi * sw + xi) as usize;
                    let (t, b) = (&raw[top..top + 6], &raw[top + row..top + row + 6]);
                    for c in 0..3 {
                        p[0][c][i] = t[c] as f32;
                        p[1][c][i] = t[c + 3] as f32;
                        p[2][c][i] = b[c] as f32;
                        p[3][c][i] = b[c + 3] as f32;
                    }
                } else {
                    for (k, n) in neighbours(xi, yi).into_iter().enumerate() {
                        for c in 0..3 {
                            p[k][c][i] = n[c];
                        }
                    }
                }
            }
            for c in 0..3 {
                let v = (f32x8::new(p[0][c]) * bx + f32x8::new(p[1][c]) * ax) * by
                    + (f32x8::new(p[2][c]) * bx + f32x8::new(p[3][c]) * ax) * ay;
                for (i, v) in v.to_array().into_iter().enumerate() {
                    if valid[i] {
                        dst[3 * (y * w + x8 + i) + c] = round_to_u8(v);
                    }
                }
            }
        }
        for x in vectors..w {
            let sx = im[0][0] * x as f32 + ry0 + im[0][2];
            let sy = im[1][0] * x as f32 + ry1 + im[1][2];
            if !inside(sx, sy) {
                continue;
            }
            let (x0, y0) = (floor(sx), floor(sy));
            let (ax, ay) = (sx - x0, sy - y0);
            let p = neighbours(x0 as i64, y0 as i64);
            for c in 0..3 {
                dst[3 * (y * w + x) + c] = round_to_u8(blend(p, ax, ay, c));
            }
        }
    }
    Ok(out)
}

/// `x.floor()`, exactly, without the library call that x86-64's baseline instruction set
/// (no SSE4.1 rounding instruction) makes of it: a float below 2^23 in magnitude truncates to
/// an `i32` exactly, and integral values (−0.0 included) are returned as they are.
#[inline]
fn floor(x: f32) -> f32 {
    if x.abs() >= 8_388_608.0 || x.is_nan() {
        return x.floor();
    }
    let t = x as i32 as f32;
    if t == x {
        x
    } else if t > x {
        t - 1.0
    } else {
        t
    }
}

/// [`floor`] on eight lanes: exact where `|x| < 2^31` (the lanes the warp uses lie in
/// `(−1, source size)`), integral values (−0.0 included) returned as they are.
#[inline]
fn floor8(x: f32x8) -> f32x8 {
    let t = x.fast_trunc_int().round_float();
    let below = t.simd_gt(x).select(t - f32x8::splat(1.0), t);
    t.simd_eq(x).select(x, below)
}

/// `v.round_ties_even().clamp(0.0, 255.0) as u8`, exactly, without a library call: for
/// `0 ≤ v < 2^23`, adding and subtracting 2^23 rounds to an integer, ties to even, as IEEE
/// arithmetic does by default; every other value (negative, huge, NaN) ends as it did,
/// clamped (NaN to 0).
#[inline]
fn round_to_u8(v: f32) -> u8 {
    const SHIFT: f32 = 8_388_608.0;
    if (0.0..SHIFT).contains(&v) {
        ((v + SHIFT) - SHIFT).min(255.0) as u8
    } else {
        v.round_ties_even().clamp(0.0, 255.0) as u8
    }
}

/// Aligns a face: 5 or 68 landmarks in `image` → the 112×112 ArcFace crop and the transform.
pub fn align_face(image: &RgbImage, landmarks: &[Point]) -> Result<(RgbImage, Affine2)> {
    let m = arcface_transform(landmarks)?;
    Ok((warp_affine(image, &m, ALIGNED_SIZE, ALIGNED_SIZE)?, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warp written plainly, one pixel at a time with the library's floor and rounding.
    fn plain_warp(src: &RgbImage, m: &Affine2, width: u32, height: u32) -> RgbImage {
        let inv = m.inverse().unwrap();
        let im = inv.0.map(|r| r.map(|v| v as f32));
        let (sw, sh) = (src.width() as i64, src.height() as i64);
        let fetch = |x: i64, y: i64| -> [f32; 3] {
            if x < 0 || y < 0 || x >= sw || y >= sh {
                return [0.0; 3];
            }
            src.get_pixel(x as u32, y as u32).0.map(f32::from)
        };
        RgbImage::from_fn(width, height, |x, y| {
            let (x, fy) = (x as f32, y as f32);
            let sx = im[0][0] * x + im[0][1] * fy + im[0][2];
            let sy = im[1][0] * x + im[1][1] * fy + im[1][2];
            if !(sx > -1.0 && sy > -1.0 && sx < sw as f32 && sy < sh as f32) {
                return image::Rgb([0; 3]);
            }
            let (x0, y0) = (sx.floor(), sy.floor());
            let (ax, ay) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let p = [
                fetch(x0, y0),
                fetch(x0 + 1, y0),
                fetch(x0, y0 + 1),
                fetch(x0 + 1, y0 + 1),
            ];
            image::Rgb(std::array::from_fn(|c| {
                let v = (p[0][c] * (1.0 - ax) + p[1][c] * ax) * (1.0 - ay)
                    + (p[2][c] * (1.0 - ax) + p[3][c] * ax) * ay;
                v.round_ties_even().clamp(0.0, 255.0) as u8
            }))
        })
    }

    #[test]
    fn the_vectorised_warp_is_the_plain_warp_to_the_byte() {
        let src = RgbImage::from_fn(97, 61, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 13 % 256) as u8,
                ((x * y) % 251) as u8,
            ])
        });
        // Rotations, scales and shifts that put the crop inside, across the borders and
        // mostly outside the source; output widths with and without a tail of pixels.
        let mut s = 11u64;
        let mut next = |lo: f64, hi: f64| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        };
        let mut cases = vec![
            (0.0f64, 1.0f64, 0.0f64, 0.0f64),
            (0.3, 0.7, -5.0, 8.0),
            (2.5, 0.45, 90.0, 70.0),
            (0.01, 1.0, -60.0, -3.5),
        ];
        for _ in 0..40 {
            cases.push((
                next(-3.2, 3.2),
                next(0.3, 2.5),
                next(-60.0, 100.0),
                next(-40.0, 70.0),
            ));
        }
        for (k, (angle, scale, tx, ty)) in cases.into_iter().enumerate() {
            let (c, s) = (angle.cos() * scale, angle.sin() * scale);
            let m = Affine2([[c, -s, tx], [s, c, ty]]);
            for (w, h) in [(112, 112), (45, 30), (8, 3), (5, 9)] {
                let want = plain_warp(&src, &m, w, h);
                let got = warp_affine(&src, &m, w, h).unwrap();
                assert_eq!(got.as_raw(), want.as_raw(), "case {k}, {w}×{h}");
            }
        }
    }

    #[test]
    fn floor_and_rounding_match_the_library_calls_exactly() {
        let mut values = vec![
            -0.0,
            0.0,
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.0,
            -1.5,
            254.5,
            255.5,
            255.49998,
            0.49999997,
            -7.0e-8,
            8_388_607.5,
            8_388_608.0,
            1.0e10,
            -1.0e10,
            f32::NAN,
            f32::INFINITY,
        ];
        let mut s = 9u32;
        for _ in 0..200_000 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // Every bit pattern's neighbourhood near the image range, and a few far ones.
            values.push(f32::from_bits(s) % 600.0 - 100.0);
            values.push((s >> 8) as f32 / 65_536.0);
        }
        for chunk in values.chunks_exact(8) {
            let lanes = floor8(f32x8::new(chunk.try_into().unwrap())).to_array();
            for (v, f) in chunk.iter().zip(lanes) {
                if v.abs() < 2.0e9 {
                    assert_eq!(f.to_bits(), v.floor().to_bits(), "floor8({v})");
                }
            }
        }
        for v in values {
            assert_eq!(floor(v).to_bits(), v.floor().to_bits(), "floor({v})");
            let want = v.round_ties_even().clamp(0.0, 255.0) as u8;
            assert_eq!(round_to_u8(v), want, "round({v})");
        }
    }

    #[test]
    fn recovers_a_known_similarity() {
        // dst = 1.7 · R(25°) · src + (3, −4), derived by hand.
        let (s, th) = (1.7f64, 25f64.to_radians());
        let src: Vec<Point> = vec![[0.0, 0.0], [10.0, 1.0], [4.0, 9.0], [-3.0, 5.0]];
        let dst: Vec<Point> = src
            .iter()
            .map(|p| {
                let (x, y) = (p[0] as f64, p[1] as f64);
                [
                    (s * (th.cos() * x - th.sin() * y) + 3.0) as f32,
                    (s * (th.sin() * x + th.cos() * y) - 4.0) as f32,
                ]
            })
            .collect();
        let m = similarity_transform(&src, &dst).unwrap();
        let want = [
            [s * th.cos(), -s * th.sin(), 3.0],
            [s * th.sin(), s * th.cos(), -4.0],
        ];
        for (row, want_row) in m.0.iter().zip(&want) {
            for (v, w) in row.iter().zip(want_row) {
                assert!((v - w).abs() < 1e-5, "{m:?}");
            }
        }
        let back = m.inverse().unwrap().compose(&m);
        assert!((back.0[0][0] - 1.0).abs() < 1e-12 && back.0[0][2].abs() < 1e-12);
    }

    #[test]
    fn mirrored_points_give_a_rotation_not_a_reflection() {
        let src: Vec<Point> = vec![[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]];
        let dst: Vec<Point> = src.iter().map(|p| [-p[0], p[1]]).collect();
        let m = similarity_transform(&src, &dst).unwrap();
        let det = m.0[0][0] * m.0[1][1] - m.0[0][1] * m.0[1][0];
        assert!(det > 0.0);
        assert!(similarity_transform(&[[1.0, 1.0]; 3], &dst).is_err());
    }

    #[test]
    fn warp_translation_and_zero_border() {
        let src = RgbImage::from_fn(4, 3, |x, y| image::Rgb([(10 * x + y) as u8, 0, 200]));
        // Shift by +0.5 px in x: output(x) = mean of input(x − 1) and input(x − 0.5)…
        let m = Affine2([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]);
        let out = warp_affine(&src, &m, 4, 3).unwrap();
        // out(1, 1) samples src(0.5, 1) = (1 + 11) / 2 = 6.
        assert_eq!(out.get_pixel(1, 1).0, [6, 0, 200]);
        // out(0, 0) samples src(−0.5, 0): half of pixel 0 and half border → (0 + 0)/2, 200/2.
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 100]);
    }
}
