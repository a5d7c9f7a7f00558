//! IJB-B / IJB-C 1:1 verification from per-image embeddings, with insightface's template
//! aggregation (`eval_ijbc.py`, its default `N1D1F2` mode):
//!
//! 1. image feature = embedding + flipped-image embedding (the caller sums them), not
//!    normalised, times the detector's face score;
//! 2. within a template, images of the same media are averaged (a media with one image keeps
//!    it as is), and the media features are summed;
//! 3. each template feature is L2-normalised; a pair's score is the cosine (dot product).

use rayon::prelude::*;

use crate::error::{EvalError, check_finite};

/// Dot product with eight independent partial sums, so that the compiler can keep them in
/// vector registers (a single running sum would serialise every addition).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
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
    pub fn scores(&self, t1: &[u64], t2: &[u64]) -> Result<Vec<f32>, EvalError> {
        if t1.len() != t2.len() {
            return Err(EvalError::Mismatch(format!(
                "{} vs {} pair templates",
                t1.len(),
                t2.len()
            )));
        }
        t1.par_iter()
            .zip(t2.par_iter())
            .enumerate()
            .map(|(k, (&a, &b))| {
                let fa = self.feature(a).ok_or_else(|| {
                    EvalError::Mismatch(format!("pair {k}: template {a} has no images"))
                })?;
                let fb = self.feature(b).ok_or_else(|| {
                    EvalError::Mismatch(format!("pair {k}: template {b} has no images"))
                })?;
                Ok(dot(fa, fb))
            })
            .collect()
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
}
