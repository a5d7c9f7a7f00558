//! Pose-aware heads with score fusion, after PAMs (Masi et al., CVPR 2016, "Pose-Aware Face
//! Recognition in the Wild"): one model per pose range, and the match scores of all of them
//! averaged at test time.
//!
//! PAMs trains separate networks on faces rendered to each pose. This variant keeps one
//! shared backbone and puts `K` pose-specific linear heads on its embedding: in training a
//! face goes through the head of its own pose group only (frontal, half-profile, profile …,
//! split at configured |yaw| limits), all heads sharing the class centres; at test time every
//! face goes through every head and the unit-normalised outputs are concatenated and scaled
//! by `1/√K`, so that the cosine of two fused embeddings is the mean of the heads' cosines:
//! PAMs' score averaging, in a form any cosine-based protocol can use.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Shape of the pose-aware heads.
#[derive(Config, Debug, PartialEq)]
pub struct PoseAwareHeadsConfig {
    /// Size of the backbone embedding each head maps (and of each head's output).
    pub embedding_size: usize,
    /// Number of pose groups (heads).
    pub heads: usize,
}

impl PoseAwareHeadsConfig {
    /// `heads` bias-free `E → E` layers with PyTorch's default initialisation.
    pub fn init(&self, device: &Device) -> PoseAwareHeads {
        let e = self.embedding_size;
        PoseAwareHeads {
            heads: (0..self.heads.max(1))
                .map(|_| LinearConfig::new(e, e).with_bias(false).init(device))
                .collect(),
        }
    }
}

/// One linear head per pose group.
#[derive(Module, Debug)]
pub struct PoseAwareHeads {
    /// The heads, from the most frontal group to the most profile one.
    pub heads: Vec<Linear>,
}

impl PoseAwareHeads {
    /// Number of heads.
    pub fn len(&self) -> usize {
        self.heads.len()
    }

    /// Whether there are no heads (never, when built by the config).
    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// Training: each face through the head of its group.
    ///
    /// # Shapes
    /// - `embedding`: `[batch, E]`
    /// - `groups`: `[batch, K]`, one-hot rows (the face's pose group)
    /// - output: `[batch, E]`
    pub fn forward_grouped(&self, embedding: Tensor<2>, groups: Tensor<2>) -> Tensor<2> {
        let mut out: Option<Tensor<2>> = None;
        for (k, head) in self.heads.iter().enumerate() {
            let mask = groups.clone().narrow(1, k, 1); // [B, 1]
            let part = head.forward(embedding.clone()) * mask; // [B, E]
            out = Some(match out {
                Some(o) => o + part,
                None => part,
            });
        }
        out.expect("at least one head")
    }

    /// Test time: every head, each output unit-normalised, concatenated and scaled by
    /// `1/√K`.
    ///
    /// # Shapes
    /// - `embedding`: `[batch, E]`
    /// - output: `[batch, K·E]`, unit rows
    pub fn forward_fused(&self, embedding: Tensor<2>) -> Tensor<2> {
        let scale = 1.0 / (self.heads.len() as f64).sqrt();
        let parts: Vec<Tensor<2>> = self
            .heads
            .iter()
            .map(|head| {
                let z = head.forward(embedding.clone()); // [B, E]
                let norm = z.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12); // [B, 1]
                z / norm * scale
            })
            .collect();
        Tensor::cat(parts, 1)
    }

    /// Size of the fused embedding for backbone embeddings of `embedding_size`.
    pub fn fused_size(&self, embedding_size: usize) -> usize {
        self.heads.len() * embedding_size
    }
}

/// The pose group of each `|yaw|` (degrees): the number of `splits` (increasing) it reaches.
pub fn pose_groups(yaws: &[f32], splits: &[f32]) -> Vec<usize> {
    yaws.iter()
        .map(|y| splits.iter().filter(|&&s| y.abs() >= s).count())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// Weights `[in, out]` row-major (burn's `Linear` computes `y = x W`): head 0 doubles,
    /// head 1 maps `(x0, x1)` to `(x1, x0 + x1)`.
    const WEIGHTS: [[f32; 4]; 2] = [[2.0, 0.0, 0.0, 2.0], [0.0, 1.0, 1.0, 1.0]];

    fn heads(device: &Device) -> PoseAwareHeads {
        let mut h = PoseAwareHeadsConfig::new(2, 2).init(device);
        let weights = WEIGHTS;
        for (head, w) in h.heads.iter_mut().zip(weights) {
            head.weight = burn::module::Param::from_tensor(Tensor::from_data(
                TensorData::new(w.to_vec(), [2, 2]),
                device,
            ));
        }
        h
    }

    #[test]
    fn groups_count_the_splits_reached() {
        assert_eq!(
            pose_groups(&[0.0, -29.9, 30.0, -45.0, 60.0, 89.0], &[30.0, 60.0]),
            vec![0, 0, 1, 1, 2, 2]
        );
    }

    #[test]
    fn each_face_takes_its_groups_head_in_training() {
        let device = Device::default();
        let h = heads(&device);
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 3.0, 1.0, 3.0], [2, 2]),
            &device,
        );
        let groups = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]),
            &device,
        );
        let out = h
            .forward_grouped(x, groups)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(out, vec![2.0, 6.0, 3.0, 4.0]);
    }

    #[test]
    fn fused_cosine_is_the_mean_of_the_heads_cosines() {
        let device = Device::default();
        let h = heads(&device);
        let a = [1.0f32, 3.0];
        let b = [2.0f32, -1.0];
        let x = Tensor::<2>::from_data(TensorData::new([a, b].concat(), [2, 2]), &device);
        let fused = h.forward_fused(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(fused.len(), 8);
        let dot: f32 = fused[..4].iter().zip(&fused[4..]).map(|(p, q)| p * q).sum();
        // By hand: head 0 keeps directions, cos = (2 − 3)/(√10·√5) = −0.1414; head 1 maps
        // a to (3, 4) and b to (−1, 1), cos = (−3 + 4)/(5·√2) = 0.1414. Their mean is 0.
        let cos0 = (a[0] * b[0] + a[1] * b[1]) / (10f32.sqrt() * 5f32.sqrt());
        let cos1 = 1.0 / (5.0 * 2f32.sqrt());
        let want = (cos0 + cos1) / 2.0;
        assert!((dot - want).abs() < 1e-6, "{dot} vs {want}");
        let norm: f32 = fused[..4].iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-6);
    }
}
