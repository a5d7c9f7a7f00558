//! PoseFace's disentanglement losses: orthogonality of the identity and pose projections,
//! and the pose branch's distance to the landmark autoencoder's code.

use burn::tensor::Tensor;

/// `L_orth = ‖Ŵ_id Ŵ_pᵀ‖²_F`, the squared Frobenius norm of the cosines between every
/// identity direction and every pose direction (rows of the paper's `W`, each normalised to
/// unit length). Zero exactly when the two subspaces are orthogonal.
///
/// # Shapes
/// - `w_id`: `[feature, identity]` (burn's `Linear` weight layout: columns are the rows of
///   the paper's `W_id`)
/// - `w_p`: `[feature, pose]`
/// - output: `[1]`
pub fn orthogonality(w_id: Tensor<2>, w_p: Tensor<2>) -> Tensor<1> {
    let unit = |w: Tensor<2>| {
        let norm = w
            .clone()
            .powf_scalar(2.0)
            .sum_dim(0)
            .sqrt()
            .clamp_min(1e-12); // [1, n]
        w / norm
    };
    let cosines = unit(w_id).transpose().matmul(unit(w_p)); // [identity, pose]
    cosines.powf_scalar(2.0).sum()
}

/// `L_pose`: the mean over the batch of `‖prediction − target‖²`, counting only the rows
/// where `mask` is 1 (faces whose landmarks are known). Zero when no row counts.
///
/// Used with the frozen encoder's code as target (`‖z_p − E(l)‖²`) or with normalised
/// landmarks as target of the frozen decoder's output (`‖D(z_p) − l‖²`).
///
/// # Shapes
/// - `prediction`, `target`: `[batch, n]`
/// - `mask`: `[batch]` of 0/1
/// - output: `[1]`
pub fn pose_loss(prediction: Tensor<2>, target: Tensor<2>, mask: Tensor<1>) -> Tensor<1> {
    let per_row: Tensor<1> = (prediction - target)
        .powf_scalar(2.0)
        .sum_dim(1)
        .squeeze_dim(1); // [B]
    let count = mask.clone().sum().clamp_min(1.0);
    (per_row * mask).sum() / count
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn t2(v: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, shape), &Device::default())
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    #[test]
    fn orthogonality_by_hand() {
        // Feature size 3. Identity rows (1,0,0) and (0,2,0); pose rows (0,0,5) and (1,1,0).
        // Cosines: e1·e3 = 0, e1·(1,1,0)/√2 = 1/√2, e2·e3 = 0, e2·(1,1,0)/√2 = 1/√2:
        // the sum of squares is 1/2 + 1/2 = 1.
        let w_id = t2(vec![1.0, 0.0, 0.0, 2.0, 0.0, 0.0], [3, 2]);
        let w_p = t2(vec![0.0, 1.0, 0.0, 1.0, 5.0, 0.0], [3, 2]);
        assert!((scalar(orthogonality(w_id.clone(), w_p)) - 1.0).abs() < 1e-6);
        let w_p = t2(vec![0.0, 0.0, 0.0, 0.0, 5.0, -1.0], [3, 2]);
        assert!(scalar(orthogonality(w_id, w_p)).abs() < 1e-12);
    }

    #[test]
    fn pose_loss_counts_masked_rows_only() {
        // Rows: (1,2) vs (0,0) → 5; (3,0) vs (0,4) → 25; third row masked out.
        let p = t2(vec![1.0, 2.0, 3.0, 0.0, 9.0, 9.0], [3, 2]);
        let t = t2(vec![0.0, 0.0, 0.0, 4.0, 0.0, 0.0], [3, 2]);
        let mask = Tensor::<1>::from_data(
            TensorData::new(vec![1.0f32, 1.0, 0.0], [3]),
            &Device::default(),
        );
        assert!((scalar(pose_loss(p.clone(), t.clone(), mask)) - 15.0).abs() < 1e-5);
        let none = Tensor::<1>::zeros([3], &Device::default());
        assert_eq!(scalar(pose_loss(p, t, none)), 0.0);
    }
}
