//! A batch's forward and backward passes on one device, or split across several (data
//! parallelism), and the shards' results added up as the whole batch's on the first device.

use burn::module::Module;
use burn::optim::GradientsAccumulator;
use burn::tensor::Tensor;
use poseface_data::augment::FaceSample;
use poseface_data::batch::FaceBatcher;
use poseface_loss::Sampled;
use poseface_model::PoseModule;
use poseface_model::backbone::Backbone;

use super::Trainer;
use crate::TrainError;
use crate::method::MethodConfig;
use crate::step::{Shard, ShardGrads, ShardOutcome, ShardWeights, combine_head_states, shard_rows};

impl Trainer {
    /// Forward and backward passes of one batch: on the one device, or one shard per device
    /// at the same time, each on replicas of the weights.
    pub(super) fn forward_backward(
        &self,
        mut samples: Vec<FaceSample>,
        sampled: &Sampled,
    ) -> Result<Vec<ShardOutcome>, TrainError> {
        let model = self.model.as_ref().expect("model present between steps");
        let parts = self.devices.len();
        let batch = samples.len();
        // Faces the method's pose term averages over (the rest are masked out of it): each
        // shard's pose term is weighted by its share of them, its other terms by its share
        // of the faces, so that the shards' gradients add up to the batch's.
        let method = &self.config.method;
        let points = FaceBatcher::default().landmark_points;
        let in_pose_term = |s: &FaceSample| match method {
            MethodConfig::PoseFace(_) => s.landmarks.as_ref().is_some_and(|l| l.len() == points),
            MethodConfig::Multitask(_) | MethodConfig::Dream(_) => s.angles.is_some(),
            MethodConfig::Plain | MethodConfig::Pams(_) => false,
        };
        let pose_faces = samples.iter().filter(|s| in_pose_term(s)).count();
        let mut shards = Vec::with_capacity(parts);
        for (device, rows) in self.devices.iter().zip(shard_rows(batch, parts)) {
            let rest = samples.split_off(rows.len());
            let mine = std::mem::replace(&mut samples, rest);
            let (centres, labels) = self.centres.gather(sampled, device);
            let labels = if parts == 1 {
                labels
            } else {
                labels.narrow(0, rows.start, rows.len())
            };
            let weights = (parts > 1).then(|| {
                let posed = mine.iter().filter(|s| in_pose_term(s)).count();
                ShardWeights {
                    rows: rows.len() as f64 / batch as f64,
                    pose: if pose_faces == 0 {
                        0.0
                    } else {
                        posed as f64 / pose_faces as f64
                    },
                }
            });
            // One device uses the weights themselves; several use a replica each (`fork`
            // keeps the parameter ids, by which the gradients are added up).
            let replica = |m: &Backbone| {
                if parts == 1 {
                    m.clone()
                } else {
                    m.clone().fork(device)
                }
            };
            shards.push(Shard {
                device: device.clone(),
                model: replica(model),
                pose: self.pose.as_ref().map(|p| {
                    if parts == 1 {
                        p.clone()
                    } else {
                        p.clone().fork(device)
                    }
                }),
                head: self.head.clone(),
                target: self.target.as_ref().map(|t| {
                    let lae = if parts == 1 {
                        t.lae.clone()
                    } else {
                        t.lae.clone().fork(device)
                    };
                    (t.config.clone(), lae)
                }),
                samples: mine,
                centres,
                labels,
                weights,
            });
        }
        let input_size = self.config.data.input_size;
        if parts == 1 {
            let shard = shards.pop().expect("one shard");
            return Ok(vec![shard.run(method, input_size)?]);
        }
        std::thread::scope(|scope| {
            let running: Vec<_> = shards
                .into_iter()
                .map(|shard| scope.spawn(move || shard.run(method, input_size)))
                .collect();
            running
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    }

    /// The shards' losses and gradients as the whole batch's (one unweighted shard), on the
    /// first device.
    pub(super) fn combine(&self, mut shards: Vec<ShardGrads>) -> ShardGrads {
        if shards.len() == 1 {
            return shards.pop().expect("one shard");
        }
        let model = self.model.as_ref().expect("model present between steps");
        let host = self.device.clone().inner();
        let mut model_grads = GradientsAccumulator::<Backbone>::new();
        let mut pose_grads = GradientsAccumulator::<PoseModule>::new();
        let mut centres: Option<Tensor<2>> = None;
        let mut loss = 0.0;
        let mut terms: Vec<(String, f64)> = shards[0]
            .terms
            .iter()
            .map(|(name, _)| (name.clone(), 0.0))
            .collect();
        let mut states = Vec::with_capacity(shards.len());
        for g in shards {
            let w = g.weights.expect("several shards are weighted");
            loss += g.weighted_loss;
            for ((name, total), (_, v)) in terms.iter_mut().zip(&g.terms) {
                *total += if name == "pose" { w.pose } else { w.rows } * v;
            }
            model_grads.accumulate(model, g.model.to_device(&self.device, model));
            if let (Some(module), Some(grads)) = (&self.pose, g.pose) {
                pose_grads.accumulate(module, grads.to_device(&self.device, module));
            }
            let c = g.centres.to_device(&host);
            centres = Some(match centres {
                Some(sum) => sum + c,
                None => c,
            });
            states.push((g.head, w.rows));
        }
        // Each replica's BatchNorm left its running-statistics update under its own thread in
        // state the replicas share with the weights; `valid()` folds them into their average
        // now, before the next step's threads start, and `to_device` brings the shared values
        // back to the first device (forking a replica moved them to the replica's device).
        let _ = model.valid();
        let _ = model.clone().to_device(&self.device);
        if let Some(module) = &self.pose {
            let _ = module.valid();
            let _ = module.clone().to_device(&self.device);
        }
        ShardGrads {
            loss,
            weighted_loss: loss,
            weights: None,
            terms,
            model: model_grads.grads(),
            pose: self.pose.as_ref().map(|_| pose_grads.grads()),
            centres: centres.expect("at least two shards"),
            head: combine_head_states(&states),
        }
    }
}
