//! Softmax cross-entropy on logits, and the normalised cosine logits every head starts from.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// The largest per-sample loss reported: `−ln 1e-30`. `arcface_torch`'s distributed
/// cross-entropy floors each sample's probability at 1e-30 before the log.
pub const MAX_SAMPLE_LOSS: f64 = 69.077_552_789_821_37;

/// Mean softmax cross-entropy of `logits` against integer `labels`.
///
/// Each sample's loss is reported capped at [`MAX_SAMPLE_LOSS`], as `arcface_torch` reports
/// it, while its gradient stays that of the uncapped loss, `(softmax − onehot)/batch`, as
/// `arcface_torch`'s own backward computes it: the cap changes logged values of hopeless
/// samples (early in training at `s = 64`), never the update.
///
/// # Shapes
/// - `logits`: `[batch, classes]`
/// - `labels`: `[batch]`, each in `0..classes`
/// - output: `[1]`
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let log_p = log_softmax(logits, 1); // [B, C]
    let loss = log_p.gather(1, labels.reshape([batch, 1])).neg(); // [B, 1]
    let capped = loss.clone().detach().clamp_max(MAX_SAMPLE_LOSS);
    (loss.clone() + (capped - loss.detach())).mean()
}

/// Cosines between L2-normalised embeddings and L2-normalised class centres, clamped to
/// `[−1, 1]`, and the embeddings' norms (which MagFace and AdaFace read).
///
/// Rows are divided by `max(‖row‖, 1e-12)`, as PyTorch's `F.normalize` does.
///
/// # Shapes
/// - `embeddings`: `[batch, dim]`
/// - `centres`: `[classes, dim]`
/// - output: cosines `[batch, classes]`, norms `[batch]`
pub fn normalized_cosine(embeddings: Tensor<2>, centres: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
    let [batch, _] = embeddings.dims();
    let norms = l2_norm(embeddings.clone()); // [B, 1]
    let x = embeddings / norms.clone().clamp_min(1e-12);
    let w = centres.clone() / l2_norm(centres).clamp_min(1e-12);
    let cosine = x.matmul(w.transpose()).clamp(-1.0, 1.0);
    (cosine, norms.reshape([batch]))
}

/// Row norms, `[rows, dim] → [rows, 1]`.
fn l2_norm(t: Tensor<2>) -> Tensor<2> {
    t.powi_scalar(2).sum_dim(1).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn cross_entropy_by_hand() {
        let device = Device::default();
        // Row 0: logits [0, ln 3] → p(label 1) = 3/4; row 1: [2, 2] → p = 1/2.
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 3f32.ln(), 2.0, 2.0], [2, 2]),
            &device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 0], [2]), &device);
        let loss = cross_entropy(logits, labels).into_scalar::<f32>();
        let expected = -((0.75f32).ln() + (0.5f32).ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    }

    #[test]
    fn a_hopeless_sample_reports_the_cap_and_keeps_its_gradient() {
        let device = Device::default().autodiff();
        // Row 0: logits [100, 0], label 1: −ln p = 100 (capped to 69.08), p ≈ e^−100;
        // row 1: [0, 0], label 0: ln 2.
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![100.0f32, 0.0, 0.0, 0.0], [2, 2]),
            &device,
        )
        .require_grad();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 0], [2]), &device);
        let loss = cross_entropy(logits.clone(), labels);
        let value = loss.clone().into_scalar::<f32>() as f64;
        let expected = (MAX_SAMPLE_LOSS + 2f64.ln()) / 2.0;
        assert!((value - expected).abs() < 1e-5, "{value} vs {expected}");
        let grads = loss.backward();
        let g = logits
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // (softmax − onehot)/2: row 0 ≈ [0.5, −0.5], row 1 = [−0.25, 0.25].
        let want = [0.5f32, -0.5, -0.25, 0.25];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{g:?}");
        }
    }

    #[test]
    fn cosines_of_scaled_vectors() {
        let device = Device::default();
        let x = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &device);
        let w = Tensor::<2>::from_data(
            TensorData::new(vec![10.0f32, 0.0, 0.0, -2.0], [2, 2]),
            &device,
        );
        let (cos, norms) = normalized_cosine(x, w);
        let cos = cos.into_data().try_to_vec::<f32>().unwrap();
        assert!(
            (cos[0] - 0.6).abs() < 1e-6 && (cos[1] + 0.8).abs() < 1e-6,
            "{cos:?}"
        );
        assert_eq!(norms.into_scalar::<f32>(), 5.0);
    }
}
