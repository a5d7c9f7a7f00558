//! One training step's forward and backward pass over one shard of a batch, on one device:
//! backbone → the method's module → sampled class centres → margin head → cross-entropy,
//! plus the method's pose terms, then `backward()`. The trainer runs one shard on one
//! device, or one shard per device in parallel (data parallelism) and adds their gradients on
//! the first device before the optimiser step (see [`crate::trainer`]).

use burn::data::dataloader::batcher::Batcher;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use poseface_data::augment::FaceSample;
use poseface_data::batch::FaceBatcher;
use poseface_landmark::{LandmarkAutoencoder, normalise_tensor};
use poseface_loss::cross_entropy::normalized_cosine;
use poseface_loss::head::HeadState;
use poseface_loss::{HeadInput, MarginHead, orthogonality, pose_loss};
use poseface_model::backbone::Backbone;
use poseface_model::pose_regressor::ANGLE_UNIT;
use poseface_model::{PoseModule, pose_groups};

use crate::TrainError;
use crate::embed::resize;
use crate::method::{MethodConfig, PoseFaceConfig, PoseTarget};

/// One shard of a training batch and the replicas that process it, all on `device`.
pub(crate) struct Shard {
    /// The device this shard runs on.
    pub device: Device,
    /// The backbone replica on `device`.
    pub model: Backbone,
    /// The method's module replica on `device`.
    pub pose: Option<PoseModule>,
    /// A copy of the margin head with the step's running state.
    pub head: MarginHead,
    /// PoseFace's configuration and frozen autoencoder on `device`.
    pub target: Option<(PoseFaceConfig, LandmarkAutoencoder)>,
    /// The shard's faces.
    pub samples: Vec<FaceSample>,
    /// The step's sampled class centres on `device` (a leaf that requires a gradient).
    pub centres: Tensor<2>,
    /// The shard's labels as rows of `centres`.
    pub labels: Tensor<1, Int>,
    /// The shard's shares of the batch, by which its loss terms are scaled before
    /// `backward()` so that the shards' gradients add up to the whole batch's; `None` for a
    /// single shard (the loss is used unscaled).
    pub weights: Option<ShardWeights>,
}

/// A shard's shares of its batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ShardWeights {
    /// Of the faces: weighs the terms that average over every face.
    pub rows: f64,
    /// Of the faces the pose term averages over (those with landmarks or angles, as the
    /// method needs).
    pub pose: f64,
}

/// What a shard gives back.
pub(crate) enum ShardOutcome {
    /// Forward and backward done.
    Done(Box<ShardGrads>),
    /// The loss was not finite; nothing was differentiated.
    NonFinite {
        /// The total loss of the shard.
        loss: f64,
        /// The first non-finite term (or `loss`).
        term: String,
    },
}

/// A shard's loss and gradients, still on its device.
pub(crate) struct ShardGrads {
    /// The shard's loss (unscaled).
    pub loss: f64,
    /// The loss as scaled by the shard's weights, whose gradient was taken.
    pub weighted_loss: f64,
    /// The shard's weights (`None`: the whole batch, one shard or the shards combined).
    pub weights: Option<ShardWeights>,
    /// The shard's loss terms, unweighted.
    pub terms: Vec<(String, f64)>,
    /// Gradients of the backbone replica.
    pub model: GradientsParams,
    /// Gradients of the method's module replica.
    pub pose: Option<GradientsParams>,
    /// Gradient of the sampled centres, `[sampled, dim]`.
    pub centres: Tensor<2>,
    /// The head's running state after this shard.
    pub head: HeadState,
}

/// What the method's module produced besides the identity embedding.
enum Aux {
    /// Nothing (plain).
    None,
    /// PoseFace's pose code `z_p`, `[B, latent]`.
    Code(Tensor<2>),
    /// Predicted angles in units of 90°, `[B, 3]`.
    Angles(Tensor<2>),
}

impl Shard {
    /// Forward and backward over the shard.
    pub fn run(
        mut self,
        method: &MethodConfig,
        input_size: usize,
    ) -> Result<ShardOutcome, TrainError> {
        let device = self.device.clone();
        let pose_angles: Vec<[f32; 3]> = self
            .samples
            .iter()
            .map(|s| s.angles.map_or([0.0; 3], |a| [a.yaw, a.pitch, a.roll]))
            .collect();
        let batch = FaceBatcher::default().batch(self.samples, &device);
        let images = resize(batch.images, input_size);

        let feature = self.model.forward(images); // [B, E]
        let angles = batch.angles.clone() / ANGLE_UNIT; // [B, 3]
        let (embeddings, aux) = match &self.pose {
            // PoseFace: the identity half goes to the margin head, the pose half is
            // compared with the landmarks' code below.
            Some(PoseModule::Disentangled(h)) => {
                let (z_id, z_p) = h.forward(feature); // [B, I], [B, latent]
                (z_id, Aux::Code(z_p))
            }
            Some(PoseModule::Regressor(r)) => {
                let predicted = r.forward(feature.clone()); // [B, 3]
                (feature, Aux::Angles(predicted))
            }
            // DREAM's gate uses the known yaw while training; its estimator learns it.
            Some(PoseModule::Dream(d)) => {
                let predicted = d.yaw.forward(feature.clone()); // [B, 3]
                let yaw = angles.clone().narrow(1, 0, 1) * ANGLE_UNIT; // [B, 1] degrees
                (d.forward_with_yaw(feature, yaw), Aux::Angles(predicted))
            }
            // PAMs: each face through the head of its |yaw| group.
            Some(PoseModule::PoseAware(h)) => {
                let splits = match method {
                    MethodConfig::Pams(p) => p.splits.as_slice(),
                    _ => &[],
                };
                let yaws: Vec<f32> = pose_angles.iter().map(|a| a[0]).collect();
                let k = h.len();
                let mut onehot = vec![0f32; yaws.len() * k];
                for (i, g) in pose_groups(&yaws, splits).into_iter().enumerate() {
                    onehot[i * k + g.min(k - 1)] = 1.0;
                }
                let groups =
                    Tensor::<2>::from_data(TensorData::new(onehot, [yaws.len(), k]), &device); // [B, K]
                (h.forward_grouped(feature, groups), Aux::None)
            }
            None => (feature, Aux::None),
        };
        let (cosine, norms) = normalized_cosine(embeddings, self.centres.clone());
        let out = self.head.forward(HeadInput {
            cosine,
            labels: self.labels.clone(),
            norms: Some(norms),
            pose: Some(&pose_angles),
        })?;
        // The terms that average over every face, and the pose term apart (weighted by its
        // own share when the batch is split).
        let mut loss = out.loss(self.labels);
        let mut pose_part = None;
        let mut terms = vec![("margin".to_string(), scalar(&loss))];
        match (aux, &self.pose, &self.target) {
            (Aux::Code(z_p), Some(PoseModule::Disentangled(h)), Some((config, lae))) => {
                let orth = orthogonality(h.w_id.weight.val(), h.w_p.weight.val());
                let mask = batch.has_landmarks.float(); // [B]
                let pose_term = match config.pose_target {
                    PoseTarget::Encoder => {
                        let code = lae.encode_points(batch.landmarks).detach();
                        pose_loss(z_p, code, mask)
                    }
                    PoseTarget::Decoder => {
                        pose_loss(lae.decode(z_p), normalise_tensor(batch.landmarks), mask)
                    }
                };
                terms.push(("orth".into(), scalar(&orth)));
                terms.push(("pose".into(), scalar(&pose_term)));
                loss = loss + orth * config.lambda_orth;
                pose_part = Some(pose_term * config.lambda_pose);
            }
            (Aux::Angles(predicted), _, _) => {
                let lambda = match method {
                    MethodConfig::Multitask(p) | MethodConfig::Dream(p) => p.lambda_pose,
                    _ => 0.0,
                };
                let mask = batch.has_angles.float(); // [B]
                let pose_term = pose_loss(predicted, angles, mask);
                terms.push(("pose".into(), scalar(&pose_term)));
                pose_part = Some(pose_term * lambda);
            }
            _ => {}
        }
        let total = match pose_part.clone() {
            Some(p) => loss.clone() + p,
            None => loss.clone(),
        };
        let loss_value = scalar(&total);
        if !loss_value.is_finite() {
            let term = terms
                .iter()
                .find(|(_, v)| !v.is_finite())
                .map_or("loss", |(name, _)| name.as_str());
            return Ok(ShardOutcome::NonFinite {
                loss: loss_value,
                term: term.to_string(),
            });
        }
        let differentiated = match (self.weights, pose_part) {
            (None, _) => total,
            (Some(w), None) => loss * w.rows,
            (Some(w), Some(p)) => loss * w.rows + p * w.pose,
        };
        let weighted_loss = match self.weights {
            None => loss_value,
            Some(_) => scalar(&differentiated),
        };
        let mut grads = differentiated.backward();
        let centres = self
            .centres
            .grad_remove(&mut grads)
            .ok_or_else(|| TrainError::Data("class centres received no gradient".into()))?;
        let pose = self
            .pose
            .as_ref()
            .map(|module| GradientsParams::from_module(&mut grads, module));
        let model = GradientsParams::from_grads(grads, &self.model);
        Ok(ShardOutcome::Done(Box::new(ShardGrads {
            loss: loss_value,
            weighted_loss,
            weights: self.weights,
            terms,
            model,
            pose,
            centres,
            head: self.head.state(),
        })))
    }
}

/// The rows of each of `parts` shards of a batch of `batch`: as equal as they can be, the
/// first shards one row larger when `batch` does not divide evenly.
pub(crate) fn shard_rows(batch: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let (size, extra) = (batch / parts, batch % parts);
    let mut start = 0;
    (0..parts)
        .map(|k| {
            let len = size + usize::from(k < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

/// The running states of the shards' heads combined as the whole batch would have left it:
/// averaged, weighted by the shards' rows. Exact for CurricularFace's `t` and AdaFace's mean
/// norm (moving averages of batch means), close for AdaFace's moving standard deviation.
pub(crate) fn combine_head_states(states: &[(HeadState, f64)]) -> HeadState {
    let total: f64 = states.iter().map(|(_, w)| w).sum();
    let mean = |f: fn(&HeadState) -> f64| states.iter().map(|(s, w)| f(s) * w).sum::<f64>() / total;
    HeadState {
        t: mean(|s| s.t),
        norm_mean: mean(|s| s.norm_mean),
        norm_std: mean(|s| s.norm_std),
    }
}

pub(crate) fn scalar(t: &Tensor<1>) -> f64 {
    f64::from(t.clone().into_scalar::<f32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order_and_differ_by_at_most_one_row() {
        assert_eq!(shard_rows(64, 1), vec![0..64]);
        assert_eq!(shard_rows(64, 2), vec![0..32, 32..64]);
        assert_eq!(shard_rows(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(shard_rows(2, 2), vec![0..1, 1..2]);
    }

    #[test]
    fn head_states_are_averaged_by_rows() {
        let s = |t: f64, m: f64, d: f64| HeadState {
            t,
            norm_mean: m,
            norm_std: d,
        };
        // Hand: t = (0.3·3 + 0.1·1) / 4 = 0.25; mean (20·3 + 24·1) / 4 = 21; std (8·3 + 4) / 4 = 7.
        let c = combine_head_states(&[(s(0.3, 20.0, 8.0), 3.0), (s(0.1, 24.0, 4.0), 1.0)]);
        assert!((c.t - 0.25).abs() < 1e-12);
        assert!((c.norm_mean - 21.0).abs() < 1e-12);
        assert!((c.norm_std - 7.0).abs() < 1e-12);
    }
}
