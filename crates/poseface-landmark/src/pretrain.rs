//! Pretraining the autoencoder: mean squared reconstruction error of normalised landmarks
//! (each shape's optionally weighted by its inverse squared inter-ocular distance),
//! Adam with a cosine learning-rate decay, batches drawn from any [`LandmarkSource`].

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use poseface_data::landmarks::Point;
use serde::{Deserialize, Serialize};

use crate::LandmarkError;
use crate::model::{LandmarkAutoencoder, LandmarkAutoencoderConfig};
use crate::normalise::normalise_rows;

/// Where training shapes come from. Shape `i` must depend on `i` alone, so that a run is
/// reproducible whatever the batch boundaries.
pub trait LandmarkSource: Sync {
    /// Shapes `start .. start + count`, landmarks in pixels.
    fn draw(&self, start: u64, count: usize) -> Vec<Vec<Point>>;
}

/// A fixed list of shapes, cycled through.
impl LandmarkSource for Vec<Vec<Point>> {
    fn draw(&self, start: u64, count: usize) -> Vec<Vec<Point>> {
        (start..start + count as u64)
            .filter(|_| !self.is_empty())
            .map(|i| self[(i % self.len() as u64) as usize].clone())
            .collect()
    }
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// Optimisation steps.
    pub steps: usize,
    /// Shapes per step.
    pub batch_size: usize,
    /// Peak Adam learning rate (cosine decay to 0).
    pub lr: f64,
    /// Seed of the weight initialisation.
    pub seed: u64,
    /// How each shape's squared error counts in the loss.
    #[serde(default)]
    pub weighting: Weighting,
}

/// How each shape's reconstruction error is weighted in the pretraining loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weighting {
    /// Every shape alike: the mean squared error of the normalised coordinates.
    #[default]
    Uniform,
    /// Each shape's squared error divided by its squared inter-ocular distance (outer eye
    /// corners, points 36 and 45; floored at [`IOD_FLOOR`] in normalised units), the weights
    /// rescaled to mean 1 per batch: the loss then weighs errors the way NME by inter-ocular
    /// distance scores them, where turned heads, whose eye corners close up, count most.
    InterOcular,
}

/// Smallest inter-ocular distance (in normalised units, where a frontal face's is about 1.5)
/// that [`Weighting::InterOcular`] divides by.
pub const IOD_FLOOR: f32 = 0.1;

/// Per-shape weights of `weighting` for normalised rows of `points` points (mean 1).
fn shape_weights(rows: &[f32], points: usize, weighting: Weighting) -> Vec<f32> {
    let n = rows.len() / (2 * points).max(1);
    match weighting {
        Weighting::InterOcular if points == 68 => {
            let w: Vec<f32> = rows
                .chunks_exact(2 * points)
                .map(|r| {
                    let (dx, dy) = (r[2 * 36] - r[2 * 45], r[2 * 36 + 1] - r[2 * 45 + 1]);
                    1.0 / (dx * dx + dy * dy).max(IOD_FLOOR * IOD_FLOOR)
                })
                .collect();
            let mean = w.iter().sum::<f32>() / n.max(1) as f32;
            w.iter().map(|v| v / mean).collect()
        }
        _ => vec![1.0; n],
    }
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            steps: 3000,
            batch_size: 256,
            lr: 2e-3,
            seed: 0,
            weighting: Weighting::Uniform,
        }
    }
}

impl PretrainConfig {
    /// Learning rate at `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        let t = step as f64 / self.steps.max(1) as f64;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Progress of [`pretrain`] after one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PretrainStep {
    /// Steps done.
    pub step: usize,
    /// Total steps.
    pub steps: usize,
    /// Loss of this step's batch: the (weighted) mean squared error in normalised units.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// Trains an autoencoder of `model` size on shapes from `source`. `device` may be plain or
/// autodiff; the returned network lives on its plain (inference) form.
pub fn pretrain(
    model: &LandmarkAutoencoderConfig,
    config: &PretrainConfig,
    source: &dyn LandmarkSource,
    device: &Device,
    progress: &mut dyn FnMut(&PretrainStep),
) -> Result<LandmarkAutoencoder, LandmarkError> {
    if config.weighting == Weighting::InterOcular && model.points != 68 {
        return Err(LandmarkError::Config(format!(
            "inter-ocular weighting needs the 68 iBUG points (points 36 and 45), not {}",
            model.points
        )));
    }
    if config.steps == 0 || config.batch_size == 0 || config.lr.is_nan() || config.lr <= 0.0 {
        return Err(LandmarkError::Config(format!(
            "steps ({}), batch_size ({}) and lr ({}) must be positive",
            config.steps, config.batch_size, config.lr
        )));
    }
    model.validate()?;
    let device = if device.is_autodiff() {
        device.clone()
    } else {
        device.clone().autodiff()
    };
    device.seed(config.seed);
    let mut ae = model.init(&device);
    let mut optim = AdamConfig::new().init();
    let p = model.points;
    for step in 0..config.steps {
        let shapes = source.draw((step * config.batch_size) as u64, config.batch_size);
        if shapes.is_empty() {
            return Err(LandmarkError::Shape(
                "the landmark source gave no shapes".into(),
            ));
        }
        let (rows, _) = normalise_rows(&shapes, p)?;
        let weights = shape_weights(&rows, p, config.weighting);
        let b = shapes.len();
        let x = Tensor::<2>::from_data(TensorData::new(rows, [b, 2 * p]), &device);
        let w = Tensor::<2>::from_data(TensorData::new(weights, [b, 1]), &device);
        // Mean over coordinates and shapes of w_i·(x̂ − x)²: the plain mean squared error
        // when every weight is 1.
        let loss = ((ae.reconstruct(x.clone()) - x).powf_scalar(2.0) * w).mean();
        let value = f64::from(loss.clone().into_scalar::<f32>());
        if !value.is_finite() {
            return Err(LandmarkError::NonFinite { step: step + 1 });
        }
        let lr = config.lr_at(step);
        let grads = GradientsParams::from_grads(loss.backward(), &ae);
        ae = optim.step(lr, ae, grads);
        progress(&PretrainStep {
            step: step + 1,
            steps: config.steps,
            loss: value,
            lr,
        });
    }
    Ok(ae.valid())
}

/// Freezes a network for use as a fixed target inside another model's training: its
/// parameters take no gradient (gradient still flows through it to its input).
pub fn frozen(ae: LandmarkAutoencoder, device: &Device) -> LandmarkAutoencoder {
    ae.to_device(device).no_grad()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inter_ocular_weights_by_hand() {
        // Two shapes of 68 points, all at the origin except the outer eye corners: 1.0 and
        // 0.5 apart, and a third whose corners touch (floored at IOD_FLOOR).
        let shape = |d: f32| {
            let mut r = vec![0f32; 136];
            r[2 * 45] = d;
            r
        };
        let rows: Vec<f32> = [shape(1.0), shape(0.5), shape(0.0)].concat();
        let w = shape_weights(&rows, 68, Weighting::InterOcular);
        // Raw weights 1, 4 and 100, mean 35.
        let expect = [1.0 / 35.0, 4.0 / 35.0, 100.0 / 35.0];
        for (a, b) in w.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{w:?}");
        }
        assert_eq!(shape_weights(&rows, 68, Weighting::Uniform), vec![1.0; 3]);
    }

    #[test]
    fn learns_a_one_parameter_family_and_rejects_bad_settings() {
        // Shapes that differ by one number (a horizontal stretch): latent 1 suffices.
        let shapes: Vec<Vec<Point>> = (0..64)
            .map(|i| {
                let s = 0.5 + i as f32 / 64.0;
                (0..6)
                    .map(|k| [s * (k as f32).cos() * 10.0, (k as f32).sin() * 10.0])
                    .collect()
            })
            .collect();
        let model = LandmarkAutoencoderConfig::new()
            .with_points(6)
            .with_hidden(32)
            .with_latent(1);
        let config = PretrainConfig {
            steps: 400,
            batch_size: 32,
            lr: 1e-2,
            seed: 1,
            weighting: Weighting::Uniform,
        };
        let mut losses = Vec::new();
        let device = Device::default();
        let ae = pretrain(&model, &config, &shapes, &device, &mut |s| {
            losses.push(s.loss)
        })
        .unwrap();
        assert_eq!(losses.len(), 400);
        let first = losses[..10].iter().sum::<f64>() / 10.0;
        let last = losses[390..].iter().sum::<f64>() / 10.0;
        assert!(last < first / 20.0, "loss {first} → {last}");
        let report = crate::metrics::evaluate(&ae, &shapes, &device).unwrap();
        assert!(report.box_mean < 0.02, "{report:?}");

        let bad = PretrainConfig { steps: 0, ..config };
        assert!(pretrain(&model, &bad, &shapes, &device, &mut |_| {}).is_err());
        let empty: Vec<Vec<Point>> = Vec::new();
        assert!(pretrain(&model, &config, &empty, &device, &mut |_| {}).is_err());
        let weighted = PretrainConfig {
            weighting: Weighting::InterOcular,
            ..config.clone()
        };
        let e = pretrain(&model, &weighted, &shapes, &device, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("68 iBUG points"), "{e}");
        let no_code = model.clone().with_latent(0);
        assert!(pretrain(&no_code, &config, &shapes, &device, &mut |_| {}).is_err());
    }
}
