//! Partial FC: the class-centre matrix of a margin head, sampled per step.
//!
//! With millions of identities, the `[classes, dim]` centre matrix and its logits dominate
//! memory and time. As in insightface's `PartialFC_V2`, each step keeps the centres of every
//! class present in the batch (the positives) and adds uniformly drawn negatives up to
//! `⌊sample_rate · classes⌋` centres; the batch's labels are remapped into the sampled set.
//!
//! Unlike a dense parameter, the centres live in host memory outside the autodiff graph:
//! [`PartialFc::gather`] hands the sampled rows to the device as a fresh leaf tensor, and
//! [`PartialFc::step`] applies SGD (momentum, weight decay) to exactly those rows. Sampling
//! draws negatives by rejection against a hash set, so a step's time and memory grow with
//! the number of sampled centres, not with the class count. Rows that were not sampled keep
//! their values and momentum untouched (a *lazy* update: insightface's dense gradient also
//! decays unsampled rows through weight decay and momentum; we do not, so that an
//! unsampled class is truly not touched).

use std::collections::HashSet;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::LossError;

/// Configuration of [`PartialFc`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialFcConfig {
    /// Number of classes (identities).
    pub classes: usize,
    /// Embedding size.
    pub dim: usize,
    /// Share of centres used per step, in `(0, 1]`; 1 disables sampling.
    #[serde(default = "one")]
    pub sample_rate: f64,
    /// Seed of the centre initialisation and of the negative sampling.
    #[serde(default)]
    pub seed: u64,
}

fn one() -> f64 {
    1.0
}

/// The sampled centres of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// Sampled class ids, increasing.
    pub index: Vec<u32>,
    /// The batch's labels as positions in `index`.
    pub labels: Vec<i64>,
}

/// SGD hyper-parameters of a centre update (PyTorch's `SGD` semantics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdStep {
    /// Learning rate.
    pub lr: f64,
    /// Momentum `μ` (0 disables it).
    pub momentum: f64,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
}

/// Class centres with per-step sampling and a sparse SGD update.
#[derive(Debug, Clone)]
pub struct PartialFc {
    classes: usize,
    dim: usize,
    sample_rate: f64,
    centres: Vec<f32>,
    momentum: Vec<f32>,
    seed: u64,
    rng: ChaCha8Rng,
}

impl PartialFc {
    /// Centres drawn from `N(0, 0.01²)` as insightface initialises them.
    pub fn new(config: &PartialFcConfig) -> Result<Self, LossError> {
        let PartialFcConfig {
            classes,
            dim,
            sample_rate,
            seed,
        } = *config;
        if classes == 0 || dim == 0 {
            return Err(LossError::Config(format!(
                "partial_fc needs classes ≥ 1 and dim ≥ 1, got {classes} × {dim}"
            )));
        }
        if !(sample_rate > 0.0 && sample_rate <= 1.0) {
            return Err(LossError::Config(format!(
                "partial_fc.sample_rate = {sample_rate} is outside (0, 1]"
            )));
        }
        if classes > u32::MAX as usize {
            return Err(LossError::Config(format!(
                "partial_fc supports up to {} classes, got {classes}",
                u32::MAX
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 0.01).expect("valid normal");
        let centres = (0..classes * dim)
            .map(|_| normal.sample(&mut rng))
            .collect();
        Ok(Self {
            classes,
            dim,
            sample_rate,
            centres,
            // Zeroed allocation: pages of rows never sampled are never touched.
            momentum: vec![0.0; classes * dim],
            seed,
            rng,
        })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All centres, row-major `[classes, dim]`.
    pub fn centres(&self) -> &[f32] {
        &self.centres
    }

    /// The centre of one class.
    pub fn centre(&self, class: usize) -> &[f32] {
        &self.centres[class * self.dim..(class + 1) * self.dim]
    }

    /// Replaces the centres (e.g. from a checkpoint); momentum restarts at zero unless
    /// [`Self::set_momentum`] restores it.
    pub fn set_centres(&mut self, centres: Vec<f32>) -> Result<(), LossError> {
        if centres.len() != self.classes * self.dim {
            return Err(LossError::Shape(format!(
                "{} centre values for {} × {}",
                centres.len(),
                self.classes,
                self.dim
            )));
        }
        self.centres = centres;
        self.momentum = vec![0.0; self.classes * self.dim];
        Ok(())
    }

    /// Restarts the negative sampling at a stream that depends only on the seed and `step`,
    /// so a resumed run draws the negatives the uninterrupted run would have drawn.
    pub fn seek(&mut self, step: u64) {
        let mixed = self.seed ^ step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.rng = ChaCha8Rng::seed_from_u64(mixed);
    }

    /// The SGD momentum of every centre, row-major `[classes, dim]` (for checkpoints).
    pub fn momentum(&self) -> &[f32] {
        &self.momentum
    }

    /// Restores the SGD momentum saved with [`Self::momentum`].
    pub fn set_momentum(&mut self, momentum: Vec<f32>) -> Result<(), LossError> {
        if momentum.len() != self.classes * self.dim {
            return Err(LossError::Shape(format!(
                "{} momentum values for {} × {}",
                momentum.len(),
                self.classes,
                self.dim
            )));
        }
        self.momentum = momentum;
        Ok(())
    }

    /// Picks this step's centres: every label of the batch plus random negatives up to
    /// `max(⌊sample_rate · classes⌋, positives)`.
    pub fn sample(&mut self, labels: &[i64]) -> Result<Sampled, LossError> {
        for (row, &label) in labels.iter().enumerate() {
            if label < 0 || label as usize >= self.classes {
                return Err(LossError::Label {
                    row,
                    label,
                    classes: self.classes,
                });
            }
        }
        if self.sample_rate >= 1.0 {
            return Ok(Sampled {
                index: (0..self.classes as u32).collect(),
                labels: labels.to_vec(),
            });
        }
        let positives: HashSet<u32> = labels.iter().map(|&l| l as u32).collect();
        let wanted = ((self.sample_rate * self.classes as f64) as usize)
            .max(positives.len())
            .min(self.classes);
        let mut chosen = positives.clone();
        if wanted > self.classes / 2 {
            // Dense case: walk the negatives once and keep each with the right odds
            // (selection sampling), O(classes) but never worse than the rejection loop.
            let mut need = wanted - chosen.len();
            let mut left = self.classes - positives.len();
            for c in 0..self.classes as u32 {
                if need == 0 {
                    break;
                }
                if positives.contains(&c) {
                    continue;
                }
                if self.rng.random_range(0..left) < need {
                    chosen.insert(c);
                    need -= 1;
                }
                left -= 1;
            }
        } else {
            while chosen.len() < wanted {
                chosen.insert(self.rng.random_range(0..self.classes as u32));
            }
        }
        let mut index: Vec<u32> = chosen.into_iter().collect();
        index.sort_unstable();
        let labels = labels
            .iter()
            .map(|&l| {
                index
                    .binary_search(&(l as u32))
                    .expect("positives are sampled") as i64
            })
            .collect();
        Ok(Sampled { index, labels })
    }

    /// The sampled centres as a tensor on `device` (a leaf that requires a gradient when
    /// `device` is an autodiff device), and the remapped labels.
    ///
    /// # Shapes
    /// - output: centres `[sampled, dim]`, labels `[batch]`
    pub fn gather(&self, sampled: &Sampled, device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        let mut rows = Vec::with_capacity(sampled.index.len() * self.dim);
        for &c in &sampled.index {
            rows.extend_from_slice(self.centre(c as usize));
        }
        let centres = Tensor::<2>::from_data(
            TensorData::new(rows, [sampled.index.len(), self.dim]),
            device,
        );
        let centres = if device.is_autodiff() {
            centres.require_grad()
        } else {
            centres
        };
        let labels = Tensor::<1, Int>::from_data(
            TensorData::new(sampled.labels.clone(), [sampled.labels.len()]),
            device,
        );
        (centres, labels)
    }

    /// Applies one SGD step to the sampled rows from their gradient `[sampled, dim]`:
    /// `g ← grad + wd·w`, `buf ← μ·buf + g`, `w ← w − lr·buf`.
    pub fn step(
        &mut self,
        sampled: &Sampled,
        grad: Tensor<2>,
        sgd: SgdStep,
    ) -> Result<(), LossError> {
        let [rows, dim] = grad.dims();
        if rows != sampled.index.len() || dim != self.dim {
            return Err(LossError::Shape(format!(
                "gradient of {rows} × {dim} for {} sampled centres of dim {}",
                sampled.index.len(),
                self.dim
            )));
        }
        let grad = grad
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| LossError::Shape(format!("gradient data: {e:?}")))?;
        let (lr, mu, wd) = (sgd.lr as f32, sgd.momentum as f32, sgd.weight_decay as f32);
        for (r, &c) in sampled.index.iter().enumerate() {
            let at = c as usize * self.dim;
            let w = &mut self.centres[at..at + self.dim];
            let buf = &mut self.momentum[at..at + self.dim];
            let g = &grad[r * self.dim..(r + 1) * self.dim];
            for ((w, b), &g) in w.iter_mut().zip(buf.iter_mut()).zip(g) {
                let g = g + wd * *w;
                *b = mu * *b + g;
                *w -= lr * *b;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfc(classes: usize, rate: f64) -> PartialFc {
        PartialFc::new(&PartialFcConfig {
            classes,
            dim: 4,
            sample_rate: rate,
            seed: 7,
        })
        .unwrap()
    }

    #[test]
    fn sampling_keeps_positives_and_remaps_labels() {
        let mut p = pfc(1000, 0.1);
        let labels = [5i64, 999, 5, 0];
        let s = p.sample(&labels).unwrap();
        assert_eq!(s.index.len(), 100);
        assert!(s.index.windows(2).all(|w| w[0] < w[1]));
        for (l, r) in labels.iter().zip(&s.labels) {
            assert_eq!(s.index[*r as usize] as i64, *l);
        }
        // A fresh draw differs: negatives are random.
        assert_ne!(p.sample(&labels).unwrap().index, s.index);
    }

    #[test]
    fn more_positives_than_the_rate_keeps_them_all() {
        let mut p = pfc(20, 0.1);
        let labels: Vec<i64> = (0..8).collect();
        let s = p.sample(&labels).unwrap();
        assert_eq!(s.index, (0..8).collect::<Vec<u32>>());
        // Dense sampling (rate > 1/2) reaches the exact count too.
        let mut p = pfc(20, 0.9);
        assert_eq!(p.sample(&labels).unwrap().index.len(), 18);
    }

    #[test]
    fn full_rate_keeps_every_class_and_label() {
        let mut p = pfc(6, 1.0);
        let s = p.sample(&[3, 1]).unwrap();
        assert_eq!(s.index, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(s.labels, vec![3, 1]);
    }

    #[test]
    fn sgd_step_by_hand() {
        let mut p = pfc(3, 1.0);
        let s = p.sample(&[1]).unwrap();
        let before = p.centres().to_vec();
        let grad = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32; 12], [3, 4]),
            &Device::default(),
        );
        let sgd = SgdStep {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.5,
        };
        p.step(&s, grad.clone(), sgd).unwrap();
        p.step(&s, grad, sgd).unwrap();
        // Two steps by hand for the first value.
        let w0 = before[0];
        let b1 = 1.0 + 0.5 * w0;
        let w1 = w0 - 0.1 * b1;
        let b2 = 0.9 * b1 + 1.0 + 0.5 * w1;
        let w2 = w1 - 0.1 * b2;
        assert!(
            (p.centres()[0] - w2).abs() < 1e-6,
            "{} vs {w2}",
            p.centres()[0]
        );
    }

    #[test]
    fn bad_labels_and_rates_are_errors() {
        let mut p = pfc(10, 0.5);
        assert_eq!(
            p.sample(&[1, 10]).unwrap_err().to_string(),
            "label 10 at batch row 1 is outside 0..10"
        );
        let e = PartialFc::new(&PartialFcConfig {
            classes: 10,
            dim: 4,
            sample_rate: 0.0,
            seed: 0,
        })
        .unwrap_err();
        assert!(e.to_string().contains("sample_rate = 0"), "{e}");
    }
}
