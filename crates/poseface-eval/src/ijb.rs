//! IJB-B / IJB-C 1:1 verification from per-image embeddings, with insightface's template
//! aggregation (`eval_ijbc.py`, its default `N1D1F2` mode):
//!
//! 1. image feature = embedding + flipped-image embedding (the caller sums them), not
//!    normalised, times the detector's face score;
//! 2. within a template, images of the same media are averaged (a media with one image keeps
//!    it as is), and the media features are summed;
//! 3. each template feature is L2-normalised; a pair's score is the cosine (dot product).

use rayon::prelude::*;
use wide::f32x8;

use crate::error::{EvalError, check_finite};

/// Dot product with 32 independent partial sums held in four 8-lane vectors. A single running
/// sum would make every addition wait for the previous one, and left to itself the compiler
/// vectorises this loop two lanes wide; four explicit vectors keep enough additions in flight
/// to run at load speed. On x86-64 CPUs with AVX the vectors are 256-bit registers (chosen at
/// run time), elsewhere `wide`'s portable 8-lane type; both add the same lanes in the same
/// order, so the result is bit-identical on every CPU.
/// Slices of different lengths are cut to the shorter one.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_kernel()(a, b)
}

/// The fastest [`dot`] implementation this CPU runs (checked once per call, so loops should
/// hold on to the result).
fn dot_kernel() -> fn(&[f32], &[f32]) -> f32 {
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

/// Lanes per vector and vectors per step of [`dot`].
const LANES: usize = 8;
const VECTORS: usize = 4;

/// The lanes of [`dot`] added in its fixed order, plus the tail's products.
fn reduce(l: [f32; LANES], tail: f32) -> f32 {
    ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])) + tail
}

/// [`dot`] on `wide`'s 8-lane vectors (SSE on a default x86-64 build, NEON on aarch64).
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [f32x8::ZERO; VECTORS];
    let (ca, cb) = (
        a.chunks_exact(LANES * VECTORS),
        b.chunks_exact(LANES * VECTORS),
    );
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let vector = |s: &[f32]| f32x8::from(<[f32; LANES]>::try_from(s).expect("eight lanes"));
    for (x, y) in ca.zip(cb) {
        for (v, acc) in acc.iter_mut().enumerate() {
            let lanes = v * LANES..(v + 1) * LANES;
            *acc += vector(&x[lanes.clone()]) * vector(&y[lanes]);
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    reduce(((acc[0] + acc[1]) + (acc[2] + acc[3])).to_array(), tail)
}

/// [`dot`] on 256-bit AVX registers: the same lanes, products and additions as
/// [`dot_portable`] (no fused multiply-add, which would round differently). Hand-written with
/// `std::arch` because the compiler, even told that AVX is there, keeps the portable code's
/// 128-bit operations.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx")]
fn dot_avx(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let n = a.len().min(b.len());
    let full = n - n % (LANES * VECTORS);
    let [mut s0, mut s1, mut s2, mut s3]: [__m256; VECTORS] = [_mm256_setzero_ps(); VECTORS];
    for (x, y) in a[..full]
        .chunks_exact(LANES * VECTORS)
        .zip(b[..full].chunks_exact(LANES * VECTORS))
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
    let sum = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    let mut lanes = [0f32; LANES];
    // SAFETY: `lanes` holds 8 floats; unaligned store.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    let tail: f32 = a[full..n].iter().zip(&b[full..n]).map(|(x, y)| x * y).sum();
    reduce(lanes, tail)
}

/// Template features: ids in increasing order and their normalised features.
#[derive(Debug, Clone, PartialEq)]
pub struct Templates {
    /// Template ids, increasing.
    pub ids: Vec<u64>,
    /// `ids.len() × dim` normalised features.
    pub features: Vec<f32>,
    /// Feature width.
    pub dim: usize,
}

/// Aggregates image features (`templates.len() × dim`) into template features.
pub fn aggregate(
    image_features: &[f32],
    dim: usize,
    face_scores: &[f32],
    templates: &[u64],
    medias: &[u64],
) -> Result<Templates, EvalError> {
    let n = templates.len();
    if dim == 0 || image_features.len() != n * dim || face_scores.len() != n || medias.len() != n {
        return Err(EvalError::Mismatch(format!(
            "{} feature values ({dim}-d), {} face scores, {} templates, {} medias: need one row, score, template and media per image",
            image_features.len(),
            face_scores.len(),
            n,
            medias.len()
        )));
    }
    check_finite(image_features, dim, "image")?;
    check_finite(face_scores, 1, "face score")?;
    // Images ordered by (template, media), as np.unique orders them; then one parallel task
    // per template.
    let mut order: Vec<usize> = (0..n).collect();
    order.par_sort_unstable_by_key(|&i| (templates[i], medias[i], i));
    let mut spans = Vec::new();
    let mut start = 0;
    for k in 1..=n {
        if k == n || templates[order[k]] != templates[order[start]] {
            spans.push(start..k);
            start = k;
        }
    }
    let rows: Vec<Result<(u64, Vec<f32>), EvalError>> = spans
        .par_iter()
        .map(|span| {
            let idx = &order[span.clone()];
            let t = templates[idx[0]];
            let mut sum = vec![0f32; dim];
            let mut mean = vec![0f32; dim];
            let mut m0 = 0;
            for m in 1..=idx.len() {
                if m < idx.len() && medias[idx[m]] == medias[idx[m0]] {
                    continue;
                }
                mean.iter_mut().for_each(|v| *v = 0.0);
                for &i in &idx[m0..m] {
                    let s = face_scores[i];
                    for (a, v) in mean.iter_mut().zip(&image_features[i * dim..(i + 1) * dim]) {
                        *a += v * s;
                    }
                }
                let k = (m - m0) as f32;
                for (s, a) in sum.iter_mut().zip(&mean) {
                    *s += if m - m0 == 1 { *a } else { a / k };
                }
                m0 = m;
            }
            let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm == 0.0 {
                return Err(EvalError::TooFew(format!(
                    "template {t} has a zero feature"
                )));
            }
            Ok((t, sum.iter().map(|v| v / norm).collect()))
        })
        .collect();
    let mut ids = Vec::with_capacity(rows.len());
    let mut features = Vec::with_capacity(rows.len() * dim);
    for r in rows {
        let (t, f) = r?;
        ids.push(t);
        features.extend(f);
    }
    Ok(Templates { ids, features, dim })
}

impl Templates {
    /// The feature of template `id`.
    pub fn feature(&self, id: u64) -> Option<&[f32]> {
        self.ids
            .binary_search(&id)
            .ok()
            .map(|k| &self.features[k * self.dim..(k + 1) * self.dim])
    }

    /// Cosine score of every pair `(t1[k], t2[k])`, in parallel; an unknown template id is an
    /// error.
    ///
    /// IJB-C's 15.7 M pairs over 23 K templates (47 MB of 512-d features) would make every
    /// dot product wait on main memory if scored in list order. The pairs are instead bucketed
    /// by the blocks of templates they join (a counting sort), and each bucket is scored while
    /// its two blocks stay in cache; the scores are then put back in list order.
    /// Each score is the same [`dot`] either way.
    pub fn scores(&self, t1: &[u64], t2: &[u64]) -> Result<Vec<f32>, EvalError> {
        self.scores_in_blocks(t1, t2, BLOCK_BYTES)
    }

    /// The scores of [`Templates::scores`] with their pairs' labels, in an order of its own
    /// rather than the list's: what a ROC curve or a score histogram needs, which depend on
    /// the (score, label) pairs and not on their order. Skips putting 15.7 M IJB-C scores
    /// back in list order, whose scattered writes took about 6% of an IJB-C evaluation here.
    pub fn labelled_scores(
        &self,
        t1: &[u64],
        t2: &[u64],
        labels: &[bool],
    ) -> Result<(Vec<f32>, Vec<bool>), EvalError> {
        if labels.len() != t1.len() {
            return Err(EvalError::Mismatch(format!(
                "{} labels for {} pairs",
                labels.len(),
                t1.len()
            )));
        }
        let (scores, carried) = self.bucketed(t1, t2, BLOCK_BYTES, Some(labels))?;
        match carried {
            Carried::Labels(labels) => Ok((scores, labels)),
            Carried::Order(_) => unreachable!("labels were given"),
        }
    }

    /// [`Templates::scores`] with blocks of `block_bytes` of features.
    fn scores_in_blocks(
        &self,
        t1: &[u64],
        t2: &[u64],
        block_bytes: usize,
    ) -> Result<Vec<f32>, EvalError> {
        let (bucketed, carried) = self.bucketed(t1, t2, block_bytes, None)?;
        let Carried::Order(order) = carried else {
            unreachable!("no labels were given")
        };
        let mut scores = vec![0f32; bucketed.len()];
        for (&k, &s) in order.iter().zip(&bucketed) {
            scores[k as usize] = s;
        }
        Ok(scores)
    }

    /// Scores in bucket order, with each pair's list position, or its label when `labels`
    /// is given.
    fn bucketed(
        &self,
        t1: &[u64],
        t2: &[u64],
        block_bytes: usize,
        labels: Option<&[bool]>,
    ) -> Result<(Vec<f32>, Carried), EvalError> {
        if u32::try_from(t1.len()).is_err() {
            return Err(EvalError::Mismatch(format!(
                "{} pairs: at most {} can be scored at once",
                t1.len(),
                u32::MAX
            )));
        }
        if self.dim == 0 || self.features.len() != self.ids.len() * self.dim {
            return Err(EvalError::Mismatch(format!(
                "{} feature values for {} templates of width {}",
                self.features.len(),
                self.ids.len(),
                self.dim
            )));
        }
        if t1.len() != t2.len() {
            return Err(EvalError::Mismatch(format!(
                "{} vs {} pair templates",
                t1.len(),
                t2.len()
            )));
        }
        let index = Index::new(&self.ids);
        let block = (block_bytes / (self.dim * 4)).max(1);
        let blocks = self.ids.len().div_ceil(block);
        // A bucket per unordered pair of blocks: (a, b) and (b, a) share one.
        let bucket = |r1: u32, r2: u32| {
            let (a, b) = (r1 as usize / block, r2 as usize / block);
            a.min(b) * blocks + a.max(b)
        };
        let rows = |k: usize| match (index.row(t1[k]), index.row(t2[k])) {
            (Some(r1), Some(r2)) => Ok((r1, r2)),
            (None, _) => Err(no_images(k, t1[k])),
            (_, None) => Err(no_images(k, t2[k])),
        };
        // Counting sort of the pairs by bucket: (feature rows, list position) in bucket order.
        let n = t1.len();
        let mut starts = vec![0usize; blocks * blocks + 1];
        for k in 0..n {
            let (r1, r2) = rows(k)?;
            starts[bucket(r1, r2) + 1] += 1;
        }
        for b in 0..blocks * blocks {
            starts[b + 1] += starts[b];
        }
        let mut fill = starts.clone();
        let mut pairs = vec![(0u32, 0u32); n];
        let mut carried = match labels {
            Some(_) => Carried::Labels(vec![false; n]),
            None => Carried::Order(vec![0u32; n]),
        };
        for k in 0..n {
            let (r1, r2) = rows(k)?;
            let b = bucket(r1, r2);
            pairs[fill[b]] = (r1, r2);
            match (&mut carried, labels) {
                (Carried::Labels(out), Some(labels)) => out[fill[b]] = labels[k],
                (Carried::Order(out), _) => out[fill[b]] = k as u32,
                (Carried::Labels(_), None) => unreachable!("labels are carried only when given"),
            }
            fill[b] += 1;
        }
        // Score in parallel into the bucketed order, a task per chunk of a bucket (chunks keep
        // all cores busy when there are few buckets; a chunk's pairs share its bucket's blocks).
        let mut bucketed = vec![0f32; n];
        let mut slices = Vec::new();
        let mut rest = bucketed.as_mut_slice();
        for b in 0..blocks * blocks {
            let (mut head, tail) = rest.split_at_mut(starts[b + 1] - starts[b]);
            let mut start = starts[b];
            while !head.is_empty() {
                let (chunk, more) = head.split_at_mut(head.len().min(CHUNK_PAIRS));
                let len = chunk.len();
                slices.push((&pairs[start..start + len], chunk));
                start += len;
                head = more;
            }
            rest = tail;
        }
        let dim = self.dim;
        let feature = |r: u32| &self.features[r as usize * dim..(r as usize + 1) * dim];
        let dot = dot_kernel();
        slices.into_par_iter().for_each(|(pairs, out)| {
            for (o, &(r1, r2)) in out.iter_mut().zip(pairs) {
                *o = dot(feature(r1), feature(r2));
            }
        });
        Ok((bucketed, carried))
    }
}

/// What travels with the bucketed scores: list positions or labels.
enum Carried {
    Order(Vec<u32>),
    Labels(Vec<bool>),
}

/// The error for pair `k` naming template `t`, which has no images.
fn no_images(k: usize, t: u64) -> EvalError {
    EvalError::Mismatch(format!("pair {k}: template {t} has no images"))
}

/// Pairs per parallel scoring task.
const CHUNK_PAIRS: usize = 16 * 1024;

/// Bytes of template features per block when scoring. Larger blocks mean fewer loads from
/// memory per pair (on IJB-C, each feature loaded serves about 120 pairs at 4 MB and 7 at
/// 256 KB), while a pair of blocks per core still fits a server's L3 cache. On IJB-C sizes the
/// scoring ran 1.7× faster with 4 MB blocks than with 256 KB ones.
const BLOCK_BYTES: usize = 4096 * 1024;

/// Row of a template id: a direct table when the ids are dense enough (IJB's are small
/// integers), else a binary search in the sorted ids.
enum Index<'a> {
    /// `table[id - min]` is the row, or `u32::MAX` for an id without images.
    Table { min: u64, table: Vec<u32> },
    /// The sorted ids themselves.
    Sorted(&'a [u64]),
}

impl<'a> Index<'a> {
    fn new(ids: &'a [u64]) -> Self {
        match (ids.first(), ids.last()) {
            (Some(&min), Some(&max))
                if max
                    .checked_sub(min)
                    .is_some_and(|span| span < 16 * ids.len() as u64 + (1 << 20)) =>
            {
                let mut table = vec![u32::MAX; (max - min + 1) as usize];
                for (row, &id) in ids.iter().enumerate() {
                    table[(id - min) as usize] = row as u32;
                }
                Index::Table { min, table }
            }
            _ => Index::Sorted(ids),
        }
    }

    fn row(&self, id: u64) -> Option<u32> {
        match self {
            Index::Table { min, table } => id
                .checked_sub(*min)
                .and_then(|i| table.get(i as usize))
                .copied()
                .filter(|&r| r != u32::MAX),
            Index::Sorted(ids) => ids.binary_search(&id).ok().map(|r| r as u32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_are_averaged_then_summed_and_unknown_templates_are_errors() {
        // Template 7: media 1 = images (1,0) and (3,0) → mean (2,0); media 2 = (0,1) × score
        // 2 → (0,2). Sum (2,2) → (1,1)/√2.
        let feats = [1.0, 0.0, 3.0, 0.0, 0.0, 1.0, 0.0, 5.0];
        let t = aggregate(
            &feats,
            2,
            &[1.0, 1.0, 2.0, 1.0],
            &[7, 7, 7, 9],
            &[1, 1, 2, 3],
        )
        .unwrap();
        assert_eq!(t.ids, vec![7, 9]);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((t.feature(7).unwrap()[0] - h).abs() < 1e-6);
        assert_eq!(t.feature(9).unwrap(), &[0.0, 1.0]);
        let s = t.scores(&[7], &[9]).unwrap();
        assert!((s[0] - h).abs() < 1e-6);
        assert!(t.scores(&[7], &[8]).is_err());
        assert!(aggregate(&feats, 2, &[1.0; 3], &[7, 7, 7, 9], &[1, 1, 2, 3]).is_err());
    }

    #[test]
    fn dot_is_bit_identical_on_every_code_path() {
        for dim in [0, 3, 31, 32, 77, 512] {
            let a: Vec<f32> = (0..dim)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..dim)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 3.0)
                .collect();
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let portable = dot_portable(&a, &b);
            assert!(
                (portable as f64 - exact).abs() <= 1e-4 * exact.abs().max(1.0),
                "{dim}"
            );
            assert_eq!(dot(&a, &b).to_bits(), portable.to_bits(), "{dim}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                #[allow(unsafe_code)]
                let avx = unsafe { dot_avx(&a, &b) };
                assert_eq!(avx.to_bits(), portable.to_bits(), "{dim}");
            }
        }
    }

    #[test]
    fn scoring_in_blocks_gives_each_pair_its_own_dot_product() {
        // 50 templates of 3-d features in blocks of 4 templates (48 bytes): 13 blocks, pairs
        // in every order, both directions and repeated; ids sparse enough for the binary
        // search and dense enough for the table.
        let dim = 3;
        for step in [1u64, 1 << 40] {
            let ids: Vec<u64> = (0..50).map(|i| 5 + i * step).collect();
            let features: Vec<f32> = (0..50 * dim)
                .map(|v| ((v * 37 % 11) as f32) - 5.0)
                .collect();
            let t = Templates {
                ids: ids.clone(),
                features,
                dim,
            };
            let (mut t1, mut t2) = (Vec::new(), Vec::new());
            for k in 0..700u64 {
                t1.push(ids[(k * 13 % 50) as usize]);
                t2.push(ids[(k * 29 % 50) as usize]);
            }
            let direct: Vec<f32> = t1
                .iter()
                .zip(&t2)
                .map(|(&a, &b)| dot(t.feature(a).unwrap(), t.feature(b).unwrap()))
                .collect();
            assert_eq!(t.scores_in_blocks(&t1, &t2, 48).unwrap(), direct);
            assert_eq!(t.scores(&t1, &t2).unwrap(), direct);
            // With labels: the same (score, label) pairs, in bucket order.
            let labels: Vec<bool> = (0..700).map(|k| k % 3 == 0).collect();
            let (scores, carried) = t.bucketed(&t1, &t2, 48, Some(&labels)).unwrap();
            let Carried::Labels(carried) = carried else {
                panic!("labels were given")
            };
            let key = |s: &f32, l: &bool| (s.to_bits(), *l);
            let mut ours: Vec<_> = scores
                .iter()
                .zip(&carried)
                .map(|(s, l)| key(s, l))
                .collect();
            let mut listed: Vec<_> = direct.iter().zip(&labels).map(|(s, l)| key(s, l)).collect();
            assert_ne!(ours, listed, "bucket order differs from list order here");
            ours.sort_unstable();
            listed.sort_unstable();
            assert_eq!(ours, listed);
            // And so the same ROC, point for point.
            let by_list = crate::roc::roc_curve(&labels, &direct).unwrap();
            let by_bucket = crate::roc::roc_curve(&carried, &scores).unwrap();
            assert_eq!(by_bucket, by_list);
            let (s, l) = t.labelled_scores(&t1, &t2, &labels).unwrap();
            assert_eq!((s.len(), l.len()), (700, 700));
            assert!(t.labelled_scores(&t1, &t2, &labels[1..]).is_err());
            let err = t.scores(&[ids[0], 4], &[ids[1], ids[2]]).unwrap_err();
            assert!(err.to_string().contains("pair 1: template 4"), "{err}");
        }
    }
}
