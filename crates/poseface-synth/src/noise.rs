//! Seeded value noise for skin and hair texture.
//!
//! Written here rather than taken from a noise crate because the texture must be a pure
//! function of `(seed, position)` that stays byte-identical across versions; this is a
//! dozen lines of hashing and interpolation.

/// A 64-bit mix of a seed and two lattice coordinates (SplitMix64 finaliser).
fn hash(seed: u64, x: i32, y: i32) -> u64 {
    let mut h = seed ^ (x as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= (y as u32 as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// A uniform value in `[-1, 1]` at a lattice point.
fn lattice(seed: u64, x: i32, y: i32) -> f32 {
    (hash(seed, x, y) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// `x.floor()`, exactly, without the library call that x86-64's baseline instruction set
/// makes of it (the noise is evaluated per vertex and per background pixel): a float below
/// 2^23 in magnitude truncates to an `i32` exactly; integral values are returned as they are.
#[inline]
fn floor(x: f32) -> f32 {
    if x.abs() >= 8_388_608.0 || x.is_nan() {
        return x.floor();
    }
    match x as i32 as f32 {
        t if t == x => x,
        t if t > x => t - 1.0,
        t => t,
    }
}

/// Smoothly interpolated value noise in `[-1, 1]`, one lattice cell per unit.
pub fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (fx, fy) = (floor(x), floor(y));
    let (ix, iy) = (fx as i32, fy as i32);
    let (tx, ty) = (x - fx, y - fy);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let a = lattice(seed, ix, iy);
    let b = lattice(seed, ix + 1, iy);
    let c = lattice(seed, ix, iy + 1);
    let d = lattice(seed, ix + 1, iy + 1);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Fractal noise: `octaves` layers of value noise, each at twice the frequency and half the
/// amplitude of the previous one, normalised to `[-1, 1]`.
pub fn fbm(seed: u64, x: f32, y: f32, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, 1.0);
    for o in 0..octaves {
        sum += amp * value_noise(seed.wrapping_add(o as u64 * 0x51ED), x * f, y * f);
        norm += amp;
        amp *= 0.5;
        f *= 2.0;
    }
    sum / norm
}

/// [`fbm`] at `(x, y)` for every `x` in `xs` (in increasing order), into `out`: the same
/// values, bit for bit, with each lattice value hashed once per run of points in its cell
/// instead of once per point.
pub fn fbm_row(seed: u64, xs: &[f32], y: f32, octaves: u32, out: &mut [f32]) {
    out.fill(0.0);
    let (mut amp, mut norm, mut f) = (1.0, 0.0, 1.0);
    for o in 0..octaves {
        let seed = seed.wrapping_add(o as u64 * 0x51ED);
        let y = y * f;
        let fy = floor(y);
        let iy = fy as i32;
        let ty = y - fy;
        let sy = ty * ty * (3.0 - 2.0 * ty);
        // The lattice values of the current cell, rehashed when a point leaves it.
        let mut cell = None;
        let (mut a, mut b, mut c, mut d) = (0.0, 0.0, 0.0, 0.0);
        for (x, o) in xs.iter().zip(out.iter_mut()) {
            let x = x * f;
            let fx = floor(x);
            let ix = fx as i32;
            if cell != Some(ix) {
                cell = Some(ix);
                (a, b) = (lattice(seed, ix, iy), lattice(seed, ix + 1, iy));
                (c, d) = (lattice(seed, ix, iy + 1), lattice(seed, ix + 1, iy + 1));
            }
            let tx = x - fx;
            let sx = tx * tx * (3.0 - 2.0 * tx);
            let top = a + (b - a) * sx;
            let bottom = c + (d - c) * sx;
            *o += amp * (top + (bottom - top) * sy);
        }
        norm += amp;
        amp *= 0.5;
        f *= 2.0;
    }
    for o in out.iter_mut() {
        *o /= norm;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_is_the_library_floor() {
        let mut s = 5u32;
        let mut values = vec![-0.0, 0.0, -0.5, -1.0, 3.0, 1e9, -1e9, f32::NAN, 8_388_607.5];
        for _ in 0..100_000 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            values.push((s as i32) as f32 / 1_000.0);
        }
        for v in values {
            assert_eq!(floor(v).to_bits(), v.floor().to_bits(), "floor({v})");
        }
    }

    #[test]
    fn a_row_of_fractal_noise_is_fbm_bit_for_bit() {
        for (seed, scale, y) in [(3u64, 6.0f32, 0.0f32), (99, 17.3, 41.0), (7, 40.0, -3.5)] {
            let xs: Vec<f32> = (0..90).map(|i| (i as f32 * 2.0 - 7.0) / scale).collect();
            let mut row = vec![0.0; xs.len()];
            fbm_row(seed, &xs, y / scale, 3, &mut row);
            for (&x, &v) in xs.iter().zip(&row) {
                assert_eq!(v.to_bits(), fbm(seed, x, y / scale, 3).to_bits(), "x {x}");
            }
        }
    }

    #[test]
    fn noise_is_bounded_continuous_and_hits_lattice_values() {
        let mut lo = f32::MAX;
        let mut hi = f32::MIN;
        for i in 0..2000 {
            let (x, y) = (i as f32 * 0.173, i as f32 * 0.311 - 40.0);
            let v = fbm(7, x, y, 3);
            lo = lo.min(v);
            hi = hi.max(v);
            // Continuity: a tiny step changes the value by a tiny amount.
            assert!((value_noise(7, x, y) - value_noise(7, x + 1e-3, y)).abs() < 0.01);
        }
        assert!((-1.0..=1.0).contains(&lo) && (-1.0..=1.0).contains(&hi));
        assert!(hi - lo > 0.8, "noise should vary: {lo}..{hi}");
        // At integer points value noise is the lattice value itself.
        assert_eq!(value_noise(3, 2.0, 5.0), lattice(3, 2, 5));
        assert_ne!(value_noise(3, 2.5, 5.5), value_noise(4, 2.5, 5.5));
    }
}
