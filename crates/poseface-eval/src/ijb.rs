//! IJB-B / IJB-C 1:1 verification from per-image embeddings, with insightface's template
//! aggregation (`eval_ijbc.py`, its default `N1D1F2` mode):
//!
//! 1. image feature = embedding + flipped-image embedding (the caller sums them), not
//!    normalised, times the detector's face score;
//! 2. within a template, images of the same media are averaged (a media with one image keeps
//!    it as is), and the media features are summed;
//! 3. each template feature is L2-normalised; a pair's score is the cosine (dot product).

use rayon::prelude::*;

pub use crate::dot::dot;
use crate::dot::{dot_kernel, dot2_kernel};
use crate::error::{EvalError, check_finite};
use crate::roc::{Roc, roc_from_keys, roc_key};

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
    // Images ordered by (template, media), as np.unique orders them; then one parallel task
    // per template. Meta files usually list them in that order already, which a scan finds.
    let mut order: Vec<usize> = (0..n).collect();
    let key = |i: usize| (templates[i], medias[i]);
    if !(1..n).all(|i| key(i - 1) <= key(i)) {
        order.par_sort_unstable_by_key(|&i| (templates[i], medias[i], i));
    }
    let mut spans = Vec::new();
    let mut start = 0;
    for k in 1..=n {
        if k == n || templates[order[k]] != templates[order[start]] {
            spans.push(start..k);
            start = k;
        }
    }
    // Each template's feature is written straight into its row of the result.
    let mut features = crate::pages::zeroed::<f32>(spans.len() * dim);
    let rows = spans
        .par_iter()
        .zip(features.par_chunks_mut(dim))
        .map(|(span, sum)| {
            let idx = &order[span.clone()];
            let t = templates[idx[0]];
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
            sum.iter_mut().for_each(|v| *v /= norm);
            Ok((t, norm.is_finite()))
        })
        .collect::<Vec<Result<(u64, bool), EvalError>>>();
    // A NaN or infinite input makes its template's sum, so its norm, non-finite: only then
    // are the inputs searched for the first bad value (one pass over the image features
    // fewer when all is well).
    if rows
        .iter()
        .any(|r| r.as_ref().map_or(true, |&(_, finite)| !finite))
    {
        check_finite(image_features, dim, "image")?;
        check_finite(face_scores, 1, "face score")?;
        // Finite inputs whose sum overflows.
        if let Some(Ok((t, _))) = rows.iter().find(|r| matches!(r, Ok((_, false)))) {
            return Err(EvalError::NonFinite(format!(
                "template {t}: its feature's norm overflows"
            )));
        }
    }
    // The first template's error, whichever thread found it.
    let ids = rows
        .into_iter()
        .map(|r| r.map(|(t, _)| t))
        .collect::<Result<Vec<u64>, EvalError>>()?;
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
        self.scores_in_blocks(t1, t2, BLOCKS)
    }

    /// The scores of [`Templates::scores`] with their pairs' labels, in an order of its own
    /// rather than the list's: what a score histogram needs, which depends on the (score,
    /// label) pairs and not on their order. Skips putting 15.7 M IJB-C scores back in list
    /// order, whose scattered writes took about 6% of an IJB-C evaluation here.
    pub fn labelled_scores(
        &self,
        t1: &[u64],
        t2: &[u64],
        labels: &[bool],
    ) -> Result<(Vec<f32>, Vec<bool>), EvalError> {
        let mut sorted = self.sort_pairs(t1, t2, BLOCKS, Some(labels))?;
        sorted.spare = Vec::new();
        let mut scores = vec![0f32; sorted.pairs.len()];
        self.score_into(&sorted, &mut scores, |s, _| s);
        let labels = sorted.pairs.par_iter().map(|&p| p & LABEL != 0).collect();
        Ok((scores, labels))
    }

    /// The ROC of the pairs `(t1[k], t2[k])` against `labels`: what [`roc_curve`] gives on
    /// [`Templates::labelled_scores`], in less time and memory, since each score goes straight
    /// into the key the ROC sorts on and the bucketed pair list, dead once scored, is the
    /// sort's second buffer. On IJB-C sizes that is two arrays of 125 MB instead of five
    /// arrays of 16 to 125 MB.
    ///
    /// [`roc_curve`]: crate::roc::roc_curve
    pub fn roc(&self, t1: &[u64], t2: &[u64], labels: &[bool]) -> Result<Roc, EvalError> {
        if labels.len() != t1.len() {
            return Err(EvalError::Mismatch(format!(
                "{} labels for {} pairs",
                labels.len(),
                t1.len()
            )));
        }
        // What `roc_curve` checks on the scores, checked before scoring: finite features give
        // finite scores.
        check_finite(&self.features, self.dim, "template")?;
        let genuine = labels.iter().filter(|&&l| l).count();
        if genuine == 0 || genuine == labels.len() {
            return Err(EvalError::TooFew(
                "a ROC needs both genuine and impostor pairs".into(),
            ));
        }
        let mut sorted = self.sort_pairs(t1, t2, BLOCKS, Some(labels))?;
        let mut keys = std::mem::take(&mut sorted.spare);
        self.score_into(&sorted, &mut keys, |s, p| roc_key(s, p & LABEL != 0));
        roc_from_keys(keys, sorted.pairs)
    }

    /// [`Templates::scores`] with the given blocks of features.
    fn scores_in_blocks(
        &self,
        t1: &[u64],
        t2: &[u64],
        blocks: Blocks,
    ) -> Result<Vec<f32>, EvalError> {
        let mut sorted = self.sort_pairs(t1, t2, blocks, None)?;
        sorted.spare = Vec::new();
        let mut bucketed = vec![0f32; sorted.pairs.len()];
        self.score_into(&sorted, &mut bucketed, |s, _| s);
        let mut scores = vec![0f32; bucketed.len()];
        for (&k, &s) in sorted.order.iter().zip(&bucketed) {
            scores[k as usize] = s;
        }
        Ok(scores)
    }

    /// The pairs as feature rows, counting-sorted by the blocks of features they join (see
    /// [`Blocks`]), with their labels when given, else with their list positions.
    fn sort_pairs(
        &self,
        t1: &[u64],
        t2: &[u64],
        Blocks {
            block_bytes,
            sub_bytes,
        }: Blocks,
        labels: Option<&[bool]>,
    ) -> Result<SortedPairs, EvalError> {
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
        if self.ids.len() > ROWS {
            return Err(EvalError::Mismatch(format!(
                "{} templates: at most {ROWS} can be scored at once",
                self.ids.len()
            )));
        }
        if t1.len() != t2.len() {
            return Err(EvalError::Mismatch(format!(
                "{} vs {} pair templates",
                t1.len(),
                t2.len()
            )));
        }
        if let Some(labels) = labels
            && labels.len() != t1.len()
        {
            return Err(EvalError::Mismatch(format!(
                "{} labels for {} pairs",
                labels.len(),
                t1.len()
            )));
        }
        let index = Index::new(&self.ids);
        // Blocks of templates, as many as keep the bucket table small.
        let mut block = (block_bytes / (self.dim * 4)).max(1);
        while 2 * self.ids.len().div_ceil(block).pow(2) > MAX_BUCKETS {
            block *= 2;
        }
        let blocks = self.ids.len().div_ceil(block);
        // Sub-blocks per block, as many as the table has room for.
        let sub = (sub_bytes / (self.dim * 4)).clamp(1, block);
        let side = block
            .div_ceil(sub)
            .min(MAX_BUCKETS / (2 * blocks * blocks))
            .max(1);
        let sub = block.div_ceil(side);
        // A bucket per unordered pair of blocks ((a, b) and (b, a) share one), side of the
        // pair the second row lies in, and sub-block of the second row.
        let bucket = |r1: u32, r2: u32| {
            let (a, b) = (r1 as usize / block, r2 as usize / block);
            let pair = a.min(b) * blocks + a.max(b);
            ((pair * 2 + usize::from(b > a)) * side) + (r2 as usize % block) / sub
        };
        let rows = |k: usize| match (index.row(t1[k]), index.row(t2[k])) {
            (Some(r1), Some(r2)) => Ok((r1, r2)),
            (None, _) => Err(no_images(k, t1[k])),
            (_, None) => Err(no_images(k, t2[k])),
        };
        // Pass 1, in parallel over pieces of the list: each pair's rows (and label) in list
        // order, and each piece's bucket sizes. The first unknown template in list order is
        // the error.
        let n = t1.len();
        let buckets = blocks * blocks * 2 * side;
        let pieces = (rayon::current_num_threads().max(1) * 4)
            .min(MAX_PIECE_BUCKETS / buckets)
            .max(1);
        let piece = n.div_ceil(pieces).max(1 << 14);
        let mut listed = crate::pages::zeroed::<u64>(n);
        let counts = listed
            .par_chunks_mut(piece)
            .enumerate()
            .map(|(c, slots)| {
                let mut count = vec![0usize; buckets];
                for (i, slot) in slots.iter_mut().enumerate() {
                    let k = c * piece + i;
                    let (r1, r2) = rows(k)?;
                    count[bucket(r1, r2)] += 1;
                    let label = labels.is_some_and(|l| l[k]);
                    *slot = (u64::from(label) << 63) | (u64::from(r1) << 32) | u64::from(r2);
                }
                Ok(count)
            })
            .collect::<Vec<Result<Vec<usize>, EvalError>>>()
            .into_iter()
            .collect::<Result<Vec<Vec<usize>>, EvalError>>()?;
        let mut starts = vec![0usize; buckets + 1];
        for b in 0..buckets {
            starts[b + 1] = starts[b] + counts.iter().map(|c| c[b]).sum::<usize>();
        }
        // Pass 2: a stable counting sort into bucket order, in parallel: each piece's pairs of
        // bucket b go after the earlier pieces' pairs of bucket b.
        let mut pairs = crate::pages::zeroed::<u64>(n);
        let mut order = if labels.is_none() {
            crate::pages::zeroed::<u32>(n)
        } else {
            Vec::new()
        };
        {
            let mut slots: Vec<Vec<(&mut [u64], &mut [u32])>> =
                counts.iter().map(|_| Vec::with_capacity(buckets)).collect();
            let (mut rest_p, mut rest_o) = (pairs.as_mut_slice(), order.as_mut_slice());
            for b in 0..buckets {
                for (c, count) in counts.iter().enumerate() {
                    let (p, tail_p) = rest_p.split_at_mut(count[b]);
                    let (o, tail_o) =
                        rest_o.split_at_mut(if labels.is_none() { count[b] } else { 0 });
                    slots[c].push((p, o));
                    (rest_p, rest_o) = (tail_p, tail_o);
                }
            }
            listed
                .par_chunks(piece)
                .zip(slots.into_par_iter())
                .enumerate()
                .for_each(|(c, (list, mut slots))| {
                    let mut fill = vec![0usize; buckets];
                    for (i, &p) in list.iter().enumerate() {
                        let b = bucket(((p >> 32) as u32) & ROW_MASK, p as u32);
                        let (pairs, order) = &mut slots[b];
                        pairs[fill[b]] = p;
                        if !order.is_empty() {
                            order[fill[b]] = (c * piece + i) as u32;
                        }
                        fill[b] += 1;
                    }
                });
        }
        Ok(SortedPairs {
            pairs,
            starts,
            order,
            spare: listed,
        })
    }

    /// `out(score, pair)` for every sorted pair, into `scored` in their order, computed in
    /// parallel: a task per chunk of a bucket (chunks keep all cores busy when there are few
    /// buckets; a chunk's pairs share its bucket's blocks).
    fn score_into<T, F>(&self, sorted: &SortedPairs, scored: &mut [T], out: F)
    where
        T: Send,
        F: Fn(f32, u64) -> T + Sync,
    {
        let SortedPairs { pairs, starts, .. } = sorted;
        debug_assert_eq!(scored.len(), pairs.len(), "one output per pair");
        let mut slices = Vec::new();
        let mut rest = scored;
        for range in chunks(starts) {
            let (chunk, tail) = rest.split_at_mut(range.len());
            slices.push((&pairs[range], chunk));
            rest = tail;
        }
        let dim = self.dim;
        let rows = |p: u64| (((p >> 32) as u32) & ROW_MASK, p as u32);
        let feature = |r: u32| &self.features[r as usize * dim..(r as usize + 1) * dim];
        let (dot, dot2) = (dot_kernel(), dot2_kernel());
        slices.into_par_iter().for_each(|(pairs, scored)| {
            let mut k = 0;
            while k < pairs.len() {
                let (r1, r2) = rows(pairs[k]);
                // Two pairs in a row that share a template (as pairs listed by their first
                // template do): its feature is read once for both products.
                let shared = pairs.get(k + 1).map(|&p| rows(p)).and_then(|(s1, s2)| {
                    if s1 == r1 {
                        Some((r1, r2, s2))
                    } else if s2 == r2 {
                        Some((r2, r1, s1))
                    } else {
                        None
                    }
                });
                if let Some((x, y, z)) = shared {
                    let (a, b) = dot2(feature(x), feature(y), feature(z));
                    scored[k] = out(a, pairs[k]);
                    scored[k + 1] = out(b, pairs[k + 1]);
                    k += 2;
                } else {
                    scored[k] = out(dot(feature(r1), feature(r2)), pairs[k]);
                    k += 1;
                }
            }
        });
    }
}

/// Pairs counting-sorted by bucket, each `label << 63 | row1 << 32 | row2`.
struct SortedPairs {
    pairs: Vec<u64>,
    /// Where each bucket starts in `pairs` (and its end, last).
    starts: Vec<usize>,
    /// Each pair's position in the list (empty when labels were given).
    order: Vec<u32>,
    /// A dead buffer of one `u64` per pair (the pairs in list order, used while sorting).
    spare: Vec<u64>,
}

/// The label bit of a sorted pair.
const LABEL: u64 = 1 << 63;
/// The first row's bits below the label bit.
const ROW_MASK: u32 = (1 << 31) - 1;
/// The most templates (feature rows) those 31 bits can address.
const ROWS: usize = 1 << 31;

/// The error for pair `k` naming template `t`, which has no images.
fn no_images(k: usize, t: u64) -> EvalError {
    EvalError::Mismatch(format!("pair {k}: template {t} has no images"))
}

/// Pairs per parallel scoring task.
const CHUNK_PAIRS: usize = 16 * 1024;

/// The scoring chunks of buckets starting at `starts`: each bucket cut into pieces of at
/// most [`CHUNK_PAIRS`] pairs, in order.
fn chunks(starts: &[usize]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    starts.windows(2).flat_map(|w| {
        (w[0]..w[1])
            .step_by(CHUNK_PAIRS)
            .map(move |a| a..(a + CHUNK_PAIRS).min(w[1]))
    })
}

/// How the pairs are bucketed for scoring, in bytes of template features.
///
/// IJB-C's 15.7 M pairs join 23 K templates (47 MB of 512-d features) at random: scored in
/// list order, nearly every product would wait on main memory. The templates are cut into
/// blocks, and the pairs sorted into a bucket per unordered pair of blocks; a bucket's pairs
/// touch only its two blocks, which stay in the shared (L3) cache while it is scored. Each
/// bucket is further split by the sub-block its second template lies in, small enough to stay
/// in a core's own (L2) cache while the first templates (in list order, so usually several
/// pairs in a row for each) go by.
#[derive(Debug, Clone, Copy)]
struct Blocks {
    block_bytes: usize,
    sub_bytes: usize,
}

/// The blocks used for scoring: on IJB-C sizes, 4 MB blocks scored 1.7× faster than 256 KB
/// ones (each feature loaded serves about 120 pairs against 7), and two of them per core
/// still fit a server's L3 cache; 256 KB sub-blocks fit the 1 MB L2 cache of current server
/// cores with room for the first templates.
const BLOCKS: Blocks = Blocks {
    block_bytes: 4096 * 1024,
    sub_bytes: 256 * 1024,
};

/// The most buckets [`Blocks`] makes: blocks and sub-blocks grow beyond their sizes when
/// there are so many templates that the bucket table would not fit in cache.
const MAX_BUCKETS: usize = 1 << 16;

/// The most (piece, bucket) counters the parallel counting sort keeps: fewer pieces of the
/// pair list than threads × 4 when there are many buckets, so that its tables stay a few
/// megabytes on machines with many cores.
const MAX_PIECE_BUCKETS: usize = 1 << 19;

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

    /// Templates `ids` whose features are `value(k)` for the k-th float of the matrix.
    fn templates(ids: Vec<u64>, dim: usize, value: impl Fn(usize) -> f32) -> Templates {
        let features = (0..ids.len() * dim).map(value).collect();
        Templates { ids, features, dim }
    }

    /// Each pair's score computed on its own, in list order: what the bucketed scoring must
    /// reproduce.
    fn direct(t: &Templates, t1: &[u64], t2: &[u64]) -> Vec<f32> {
        t1.iter()
            .zip(t2)
            .map(|(&a, &b)| dot(t.feature(a).unwrap(), t.feature(b).unwrap()))
            .collect()
    }

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
        // The same images listed out of template order: the same templates.
        let shuffled = aggregate(
            &[0.0, 5.0, 3.0, 0.0, 0.0, 1.0, 1.0, 0.0],
            2,
            &[1.0, 1.0, 2.0, 1.0],
            &[9, 7, 7, 7],
            &[3, 1, 2, 1],
        )
        .unwrap();
        assert_eq!(shuffled, t);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((t.feature(7).unwrap()[0] - h).abs() < 1e-6);
        assert_eq!(t.feature(9).unwrap(), &[0.0, 1.0]);
        let s = t.scores(&[7], &[9]).unwrap();
        assert!((s[0] - h).abs() < 1e-6);
        assert!(t.scores(&[7], &[8]).is_err());
        assert!(aggregate(&feats, 2, &[1.0; 3], &[7, 7, 7, 9], &[1, 1, 2, 3]).is_err());
        // A NaN feature, an infinite face score: the first bad value is named, even where
        // another template's feature is zero.
        let mut bad = feats;
        bad[5] = f32::NAN;
        bad[6..8].copy_from_slice(&[0.0, 0.0]);
        let e = aggregate(&bad, 2, &[1.0; 4], &[7, 7, 7, 9], &[1, 1, 2, 3]).unwrap_err();
        assert_eq!(e, EvalError::NonFinite("image 2 has NaN".into()));
        let scores = [1.0, f32::INFINITY, 1.0, 1.0];
        let e = aggregate(&feats, 2, &scores, &[7, 7, 7, 9], &[1, 1, 2, 3]).unwrap_err();
        assert_eq!(e, EvalError::NonFinite("face score 1 has inf".into()));
        bad[5] = 1.0;
        let e = aggregate(&bad, 2, &[1.0; 4], &[7, 7, 7, 9], &[1, 1, 2, 3]).unwrap_err();
        assert_eq!(e, EvalError::TooFew("template 9 has a zero feature".into()));
        // Finite values whose squares overflow.
        let huge = [3.0e38, 3.0e38, 1.0, 0.0];
        let e = aggregate(&huge, 2, &[1.0; 2], &[4, 5], &[1, 2]).unwrap_err();
        assert_eq!(
            e,
            EvalError::NonFinite("template 4: its feature's norm overflows".into())
        );
    }

    #[test]
    fn pairs_sharing_a_template_are_scored_bit_for_bit() {
        // Pairs listed by their first template, then a run sharing the second, across blocks
        // of 8 templates of 40-d features (a full 32-float step and a tail).
        let dim = 40;
        let t = templates((1..=30).collect(), dim, |v| {
            ((v * 37 % 23) as f32 - 11.0) / 7.0
        });
        let (mut t1, mut t2) = (Vec::new(), Vec::new());
        for k in 0..300u64 {
            t1.push(1 + k / 11);
            t2.push(1 + k * 7 % 30);
        }
        for k in 0..25u64 {
            t1.push(1 + k);
            t2.push(17);
        }
        let direct: Vec<u32> = direct(&t, &t1, &t2).iter().map(|s| s.to_bits()).collect();
        for (block_bytes, sub_bytes) in [(8 * dim * 4, 3 * dim * 4), (1 << 20, 1 << 20)] {
            let blocks = Blocks {
                block_bytes,
                sub_bytes,
            };
            let got: Vec<u32> = t
                .scores_in_blocks(&t1, &t2, blocks)
                .unwrap()
                .iter()
                .map(|s| s.to_bits())
                .collect();
            assert_eq!(got, direct, "{block_bytes}");
        }
    }

    #[test]
    fn scoring_in_blocks_gives_each_pair_its_own_dot_product() {
        // 50 templates of 3-d features in blocks of 4 templates (48 bytes) and sub-blocks of
        // 2: 13 blocks, pairs in every order, both directions and repeated; ids sparse enough
        // for the binary search and dense enough for the table.
        let dim = 3;
        let small = Blocks {
            block_bytes: 48,
            sub_bytes: 24,
        };
        for step in [1u64, 1 << 40] {
            let ids: Vec<u64> = (0..50).map(|i| 5 + i * step).collect();
            let t = templates(ids.clone(), dim, |v| ((v * 37 % 11) as f32) - 5.0);
            let (mut t1, mut t2) = (Vec::new(), Vec::new());
            for k in 0..700u64 {
                t1.push(ids[(k * 13 % 50) as usize]);
                t2.push(ids[(k * 29 % 50) as usize]);
            }
            let direct = direct(&t, &t1, &t2);
            assert_eq!(t.scores_in_blocks(&t1, &t2, small).unwrap(), direct);
            assert_eq!(t.scores(&t1, &t2).unwrap(), direct);
            // With labels: the same (score, label) pairs, in bucket order.
            let labels: Vec<bool> = (0..700).map(|k| k % 3 == 0).collect();
            let sorted = t.sort_pairs(&t1, &t2, small, Some(&labels)).unwrap();
            let mut scores = vec![0f32; sorted.pairs.len()];
            t.score_into(&sorted, &mut scores, |s, _| s);
            let carried: Vec<bool> = sorted.pairs.iter().map(|&p| p & LABEL != 0).collect();
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
            assert_eq!(crate::roc::roc_curve(&l, &s).unwrap(), by_list);
            // Scored straight into the ROC's keys: the same curve.
            assert_eq!(t.roc(&t1, &t2, &labels).unwrap(), by_list);
            assert!(t.labelled_scores(&t1, &t2, &labels[1..]).is_err());
            let e = t.roc(&t1, &t2, &labels[1..]).unwrap_err();
            assert!(matches!(e, EvalError::Mismatch(_)), "{e}");
            let e = t.roc(&t1, &t2, &[]).unwrap_err();
            assert!(matches!(e, EvalError::Mismatch(_)), "{e}");
            let all_genuine = vec![true; 700];
            assert!(t.roc(&t1, &t2, &all_genuine).is_err());
            let mut broken = t.clone();
            broken.features[4] = f32::NAN;
            let e = broken.roc(&t1, &t2, &labels).unwrap_err();
            assert!(matches!(e, EvalError::NonFinite(_)), "{e}");
            let err = t.scores(&[ids[0], 4], &[ids[1], ids[2]]).unwrap_err();
            assert!(err.to_string().contains("pair 1: template 4"), "{err}");
        }
    }

    #[test]
    fn blocks_grow_when_the_bucket_table_would_be_too_large() {
        // 300 templates of one float in blocks of one template: 2 × 300² buckets would pass
        // the cap, so the blocks double, and the sub-blocks give way.
        let t = templates((1..=300).collect(), 1, |v| (v % 17) as f32 - 8.0);
        let (t1, t2): (Vec<u64>, Vec<u64>) = (0..5_000u64)
            .map(|k| (1 + k % 300, 1 + (k * 7_919) % 300))
            .unzip();
        let direct = direct(&t, &t1, &t2);
        let tiny = Blocks {
            block_bytes: 4,
            sub_bytes: 4,
        };
        assert_eq!(t.scores_in_blocks(&t1, &t2, tiny).unwrap(), direct);
    }

    #[test]
    fn many_pairs_are_sorted_in_parallel_pieces_and_scored_in_list_order() {
        // 70,000 pairs (several parallel pieces of at least 16,384) over 300 templates of
        // 40-d features, in blocks of 32 templates and sub-blocks of 8; listed by their first
        // template, as IJB lists are, with a stretch listed by the second.
        let dim = 40;
        let ids: Vec<u64> = (1..=300).collect();
        let t = templates(ids, dim, |v| ((v * 53 % 29) as f32 - 14.0) / 9.0);
        let (mut t1, mut t2) = (Vec::new(), Vec::new());
        for k in 0..70_000u64 {
            let (a, b) = (1 + k * 300 / 70_000, 1 + (k * 7_919) % 300);
            let (x, y) = if (30_000..31_000).contains(&k) {
                (b, a)
            } else {
                (a, b)
            };
            t1.push(x);
            t2.push(y);
        }
        let direct = direct(&t, &t1, &t2);
        let blocks = Blocks {
            block_bytes: 32 * dim * 4,
            sub_bytes: 8 * dim * 4,
        };
        let bits = |v: Vec<f32>| v.iter().map(|s| s.to_bits()).collect::<Vec<u32>>();
        assert_eq!(
            bits(t.scores_in_blocks(&t1, &t2, blocks).unwrap()),
            bits(direct.clone())
        );
        let labels: Vec<bool> = (0..70_000).map(|k| k % 37 == 0).collect();
        let by_list = crate::roc::roc_curve(&labels, &direct).unwrap();
        assert_eq!(t.roc(&t1, &t2, &labels).unwrap(), by_list);
        // Unknown templates in two pieces: the first in list order is named.
        t2[50_000] = 999;
        t1[40_000] = 998;
        let err = t.scores(&t1, &t2).unwrap_err();
        assert!(
            err.to_string().contains("pair 40000: template 998"),
            "{err}"
        );
    }
}
