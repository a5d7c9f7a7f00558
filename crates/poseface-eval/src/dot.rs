//! The dot product that scores template pairs, bit-identical on every CPU, and a two-pair
//! form that reads a shared feature once for two products.
//!
//! [`dot`] keeps 32 independent partial sums in four 8-lane vectors. A single running sum
//! would make every addition wait for the previous one, and left to itself the compiler
//! vectorises this loop two lanes wide; four explicit vectors keep enough additions in flight
//! to run at load speed. On x86-64 CPUs with AVX-512 the 32 sums are two 512-bit registers, with
//! AVX four 256-bit ones (chosen at run time), elsewhere `wide`'s portable 8-lane type; all add
//! the same lanes in the same order, so the result is bit-identical on every CPU.
//!
//! Scoring is limited by loads, two vectors per eight products. IJB pair lists come grouped by
//! their first template, so consecutive pairs often share a feature: [`dot2`] computes
//! `x·y` and `x·z` in one pass, loading `x` once (three loads per sixteen products instead of
//! four), each product bit-identical to [`dot`]'s.

use wide::f32x8;

/// Lanes per vector and vectors per step of [`dot`].
const LANES: usize = 8;
const VECTORS: usize = 4;
/// Floats per step.
const STEP: usize = LANES * VECTORS;

/// Dot product of `a` and `b` (slices of different lengths are cut to the shorter one),
/// added in a fixed order that makes it bit-identical on every CPU (see the module docs).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_kernel()(a, b)
}

/// `(x·y, x·z)`, each bit-identical to [`dot`]; the three slices are cut to the shortest.
pub fn dot2(x: &[f32], y: &[f32], z: &[f32]) -> (f32, f32) {
    dot2_kernel()(x, y, z)
}

/// The fastest [`dot`] implementation this CPU runs (checked once per call, so loops should
/// hold on to the result).
pub(crate) fn dot_kernel() -> fn(&[f32], &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return |a, b| {
            // SAFETY: `dot_avx512` needs AVX-512F; this closure is handed out only when the
            // CPU has it.
            #[allow(unsafe_code)]
            unsafe {
                dot_avx512(a, b)
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        return |a, b| {
            // SAFETY: `dot_avx` needs AVX; this closure is handed out only when the CPU has it.
            #[allow(unsafe_code)]
            unsafe {
                dot_avx(a, b)
            }
        };
    }
    dot_portable
}

/// A [`dot2`] implementation.
pub(crate) type Dot2 = fn(&[f32], &[f32], &[f32]) -> (f32, f32);

/// The fastest [`dot2`] implementation this CPU runs.
pub(crate) fn dot2_kernel() -> Dot2 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return |x, y, z| {
            // SAFETY: `dot2_avx512` needs AVX-512F; this closure is handed out only when the
            // CPU has it.
            #[allow(unsafe_code)]
            unsafe {
                dot2_avx512(x, y, z)
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        return |x, y, z| {
            // SAFETY: `dot2_avx` needs AVX; this closure is handed out only when the CPU has
            // it.
            #[allow(unsafe_code)]
            unsafe {
                dot2_avx(x, y, z)
            }
        };
    }
    |x, y, z| {
        let n = x.len().min(y.len()).min(z.len());
        (
            dot_portable(&x[..n], &y[..n]),
            dot_portable(&x[..n], &z[..n]),
        )
    }
}

/// The lanes of [`dot`] added in its fixed order, plus the tail's products.
fn reduce(l: [f32; LANES], tail: f32) -> f32 {
    ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])) + tail
}

/// The products past the last full step, summed in order.
fn tail(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// [`dot`] on `wide`'s 8-lane vectors (SSE on a default x86-64 build, NEON on aarch64).
pub(crate) fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [f32x8::ZERO; VECTORS];
    let (ca, cb) = (a.chunks_exact(STEP), b.chunks_exact(STEP));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let vector = |s: &[f32]| f32x8::from(<[f32; LANES]>::try_from(s).expect("eight lanes"));
    for (x, y) in ca.zip(cb) {
        for (v, acc) in acc.iter_mut().enumerate() {
            let lanes = v * LANES..(v + 1) * LANES;
            *acc += vector(&x[lanes.clone()]) * vector(&y[lanes]);
        }
    }
    reduce(
        ((acc[0] + acc[1]) + (acc[2] + acc[3])).to_array(),
        tail(ra, rb),
    )
}

/// [`dot`] on 256-bit AVX registers: the same lanes, products and additions as
/// [`dot_portable`] (no fused multiply-add, which would round differently). Hand-written with
/// `std::arch` because the compiler, even told that AVX is there, keeps the portable code's
/// 128-bit operations.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx")]
pub(crate) fn dot_avx(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_setzero_ps,
    };
    let n = a.len().min(b.len());
    let full = n - n % STEP;
    let [mut s0, mut s1, mut s2, mut s3]: [__m256; VECTORS] = [_mm256_setzero_ps(); VECTORS];
    for (x, y) in a[..full]
        .chunks_exact(STEP)
        .zip(b[..full].chunks_exact(STEP))
    {
        let (x, y) = (x.as_ptr(), y.as_ptr());
        // SAFETY: `x` and `y` point to 32 floats each (exact chunks); unaligned loads of
        // floats 0–7, 8–15, 16–23 and 24–31.
        let load = |p: *const f32, v: usize| unsafe { _mm256_loadu_ps(p.add(v * LANES)) };
        s0 = _mm256_add_ps(s0, _mm256_mul_ps(load(x, 0), load(y, 0)));
        s1 = _mm256_add_ps(s1, _mm256_mul_ps(load(x, 1), load(y, 1)));
        s2 = _mm256_add_ps(s2, _mm256_mul_ps(load(x, 2), load(y, 2)));
        s3 = _mm256_add_ps(s3, _mm256_mul_ps(load(x, 3), load(y, 3)));
    }
    reduce(lanes([s0, s1, s2, s3]), tail(&a[full..n], &b[full..n]))
}

/// [`dot2`] on AVX registers: [`dot_avx`]'s four sums for each of the two products, with each
/// vector of `x` loaded once for both.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx")]
pub(crate) fn dot2_avx(x: &[f32], y: &[f32], z: &[f32]) -> (f32, f32) {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_setzero_ps,
    };
    let n = x.len().min(y.len()).min(z.len());
    let full = n - n % STEP;
    let zero = _mm256_setzero_ps();
    let [mut a0, mut a1, mut a2, mut a3]: [__m256; VECTORS] = [zero; VECTORS];
    let [mut b0, mut b1, mut b2, mut b3]: [__m256; VECTORS] = [zero; VECTORS];
    for ((x, y), z) in x[..full]
        .chunks_exact(STEP)
        .zip(y[..full].chunks_exact(STEP))
        .zip(z[..full].chunks_exact(STEP))
    {
        let (x, y, z) = (x.as_ptr(), y.as_ptr(), z.as_ptr());
        // SAFETY: `x`, `y` and `z` point to 32 floats each (exact chunks); unaligned loads of
        // floats 0–7, 8–15, 16–23 and 24–31.
        let load = |p: *const f32, v: usize| unsafe { _mm256_loadu_ps(p.add(v * LANES)) };
        let (x0, x1, x2, x3) = (load(x, 0), load(x, 1), load(x, 2), load(x, 3));
        a0 = _mm256_add_ps(a0, _mm256_mul_ps(x0, load(y, 0)));
        b0 = _mm256_add_ps(b0, _mm256_mul_ps(x0, load(z, 0)));
        a1 = _mm256_add_ps(a1, _mm256_mul_ps(x1, load(y, 1)));
        b1 = _mm256_add_ps(b1, _mm256_mul_ps(x1, load(z, 1)));
        a2 = _mm256_add_ps(a2, _mm256_mul_ps(x2, load(y, 2)));
        b2 = _mm256_add_ps(b2, _mm256_mul_ps(x2, load(z, 2)));
        a3 = _mm256_add_ps(a3, _mm256_mul_ps(x3, load(y, 3)));
        b3 = _mm256_add_ps(b3, _mm256_mul_ps(x3, load(z, 3)));
    }
    (
        reduce(lanes([a0, a1, a2, a3]), tail(&x[full..n], &y[full..n])),
        reduce(lanes([b0, b1, b2, b3]), tail(&x[full..n], &z[full..n])),
    )
}

/// [`dot`] on 512-bit AVX-512 registers: two registers of sixteen lanes hold the same 32
/// partial sums as [`dot_avx`]'s four of eight (lanes 0–7 of the first are its first sum,
/// lanes 8–15 its second), added in the same order; half the instructions per step.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f")]
pub(crate) fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::{_mm512_add_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_setzero_ps};
    let n = a.len().min(b.len());
    let full = n - n % STEP;
    let (mut s01, mut s23) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    for (x, y) in a[..full]
        .chunks_exact(STEP)
        .zip(b[..full].chunks_exact(STEP))
    {
        let (x, y) = (x.as_ptr(), y.as_ptr());
        // SAFETY: `x` and `y` point to 32 floats each (exact chunks); unaligned loads of
        // floats 0–15 and 16–31.
        let load = |p: *const f32, v: usize| unsafe { _mm512_loadu_ps(p.add(v * 2 * LANES)) };
        s01 = _mm512_add_ps(s01, _mm512_mul_ps(load(x, 0), load(y, 0)));
        s23 = _mm512_add_ps(s23, _mm512_mul_ps(load(x, 1), load(y, 1)));
    }
    reduce(lanes512(s01, s23), tail(&a[full..n], &b[full..n]))
}

/// [`dot2`] on AVX-512 registers: [`dot_avx512`]'s two sums for each product, each vector of
/// `x` loaded once for both.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f")]
pub(crate) fn dot2_avx512(x: &[f32], y: &[f32], z: &[f32]) -> (f32, f32) {
    use std::arch::x86_64::{_mm512_add_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_setzero_ps};
    let n = x.len().min(y.len()).min(z.len());
    let full = n - n % STEP;
    let zero = _mm512_setzero_ps();
    let (mut a01, mut a23, mut b01, mut b23) = (zero, zero, zero, zero);
    for ((x, y), z) in x[..full]
        .chunks_exact(STEP)
        .zip(y[..full].chunks_exact(STEP))
        .zip(z[..full].chunks_exact(STEP))
    {
        let (x, y, z) = (x.as_ptr(), y.as_ptr(), z.as_ptr());
        // SAFETY: `x`, `y` and `z` point to 32 floats each (exact chunks); unaligned loads of
        // floats 0–15 and 16–31.
        let load = |p: *const f32, v: usize| unsafe { _mm512_loadu_ps(p.add(v * 2 * LANES)) };
        let (x01, x23) = (load(x, 0), load(x, 1));
        a01 = _mm512_add_ps(a01, _mm512_mul_ps(x01, load(y, 0)));
        b01 = _mm512_add_ps(b01, _mm512_mul_ps(x01, load(z, 0)));
        a23 = _mm512_add_ps(a23, _mm512_mul_ps(x23, load(y, 1)));
        b23 = _mm512_add_ps(b23, _mm512_mul_ps(x23, load(z, 1)));
    }
    (
        reduce(lanes512(a01, a23), tail(&x[full..n], &y[full..n])),
        reduce(lanes512(b01, b23), tail(&x[full..n], &z[full..n])),
    )
}

/// The four eight-lane sums held in two sixteen-lane registers, added as [`lanes`] adds them:
/// `(s0 + s1) + (s2 + s3)`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f")]
fn lanes512(s01: std::arch::x86_64::__m512, s23: std::arch::x86_64::__m512) -> [f32; LANES] {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_castpd_ps, _mm256_storeu_ps, _mm512_castpd512_pd256,
        _mm512_castps_pd, _mm512_extractf64x4_pd,
    };
    let half = |v: std::arch::x86_64::__m512, high: bool| {
        let v = _mm512_castps_pd(v);
        _mm256_castpd_ps(if high {
            _mm512_extractf64x4_pd::<1>(v)
        } else {
            _mm512_castpd512_pd256(v)
        })
    };
    let sum = _mm256_add_ps(
        _mm256_add_ps(half(s01, false), half(s01, true)),
        _mm256_add_ps(half(s23, false), half(s23, true)),
    );
    let mut lanes = [0f32; LANES];
    // SAFETY: `lanes` holds 8 floats; unaligned store.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes
}

/// The four partial-sum vectors added as [`dot_portable`] adds them, as eight lanes.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx")]
fn lanes(s: [std::arch::x86_64::__m256; VECTORS]) -> [f32; LANES] {
    use std::arch::x86_64::{_mm256_add_ps, _mm256_storeu_ps};
    let sum = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
    let mut lanes = [0f32; LANES];
    // SAFETY: `lanes` holds 8 floats; unaligned store.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors(dim: usize) -> [Vec<f32>; 3] {
        let v = |m: usize, p: usize, c: f32, d: f32| {
            (0..dim)
                .map(|i| ((i * m % p) as f32 - c) / d)
                .collect::<Vec<f32>>()
        };
        [
            v(37, 101, 50.0, 7.0),
            v(53, 97, 48.0, 3.0),
            v(29, 89, 44.0, 5.0),
        ]
    }

    #[test]
    fn dot_is_bit_identical_on_every_code_path() {
        for dim in [0, 3, 31, 32, 77, 512] {
            let [a, b, _] = vectors(dim);
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let portable = dot_portable(&a, &b);
            assert!(
                (portable as f64 - exact).abs() <= 1e-4 * exact.abs().max(1.0),
                "{dim}"
            );
            assert_eq!(dot(&a, &b).to_bits(), portable.to_bits(), "{dim}");
            // Either order: each product is the same, so are the sums.
            assert_eq!(dot(&b, &a).to_bits(), portable.to_bits(), "{dim}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                #[allow(unsafe_code)]
                let avx = unsafe { dot_avx(&a, &b) };
                assert_eq!(avx.to_bits(), portable.to_bits(), "{dim}");
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                #[allow(unsafe_code)]
                let avx512 = unsafe { dot_avx512(&a, &b) };
                assert_eq!(avx512.to_bits(), portable.to_bits(), "{dim}");
            }
        }
    }

    #[test]
    fn two_products_in_one_pass_are_each_the_single_product() {
        for dim in [0, 5, 32, 45, 512] {
            let [x, y, z] = vectors(dim);
            let (xy, xz) = (dot_portable(&x, &y), dot_portable(&x, &z));
            let (a, b) = dot2(&x, &y, &z);
            assert_eq!(
                (a.to_bits(), b.to_bits()),
                (xy.to_bits(), xz.to_bits()),
                "{dim}"
            );
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                #[allow(unsafe_code)]
                let (a, b) = unsafe { dot2_avx(&x, &y, &z) };
                assert_eq!(
                    (a.to_bits(), b.to_bits()),
                    (xy.to_bits(), xz.to_bits()),
                    "{dim}"
                );
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                #[allow(unsafe_code)]
                let (a, b) = unsafe { dot2_avx512(&x, &y, &z) };
                assert_eq!(
                    (a.to_bits(), b.to_bits()),
                    (xy.to_bits(), xz.to_bits()),
                    "{dim}"
                );
            }
        }
    }
}
