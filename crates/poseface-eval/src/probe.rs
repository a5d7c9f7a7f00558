//! Linear probes: how much of a target (head pose) can be read off embeddings with a ridge
//! regression, fitted on one half of the data and scored (R²) on the other.
//!
//! The protocol, matched by `scripts/probe_reference.py` (scikit-learn `Ridge` and
//! `r2_score`): features are standardised with the fit half's mean and population standard
//! deviation (a constant column keeps scale 1); a ridge regression with intercept and
//! penalty `alpha` is fitted on the fit half; R² = 1 − SS_res / SS_tot on the score half,
//! with the score half's own mean in SS_tot, so a useless probe scores about 0 or below.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// A fitted probe and its held-out score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeFit {
    /// R² on the score half.
    pub r2: f64,
    /// Coefficients on the standardised features.
    pub coef: Vec<f64>,
    /// Intercept (the fit half's target mean).
    pub intercept: f64,
}

/// Fits a ridge probe of `targets` on `features` (`n × dim`, row-major); rows `..n_fit` fit,
/// the rest score.
pub fn ridge_probe(
    features: &[f32],
    dim: usize,
    targets: &[f64],
    n_fit: usize,
    alpha: f64,
) -> Result<ProbeFit, EvalError> {
    let n = targets.len();
    if dim == 0 || features.len() != n * dim {
        return Err(EvalError::Mismatch(format!(
            "{} feature values for {n} targets of dimension {dim}",
            features.len()
        )));
    }
    if n_fit < 2 || n - n_fit.min(n) < 2 {
        return Err(EvalError::TooFew(format!(
            "a probe needs ≥ 2 rows on each side, got {n_fit} to fit and {} to score",
            n.saturating_sub(n_fit)
        )));
    }
    if features.iter().any(|v| !v.is_finite()) || targets.iter().any(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite("probe features or targets".into()));
    }
    let x = DMatrix::from_fn(n, dim, |r, c| f64::from(features[r * dim + c]));
    let fit = x.rows(0, n_fit);
    let mean: Vec<f64> = (0..dim).map(|c| fit.column(c).mean()).collect();
    let scale: Vec<f64> = (0..dim)
        .map(|c| {
            let m = mean[c];
            let var = fit.column(c).iter().map(|v| (v - m).powi(2)).sum::<f64>() / n_fit as f64;
            if var > 0.0 { var.sqrt() } else { 1.0 }
        })
        .collect();
    let z = DMatrix::from_fn(n, dim, |r, c| (x[(r, c)] - mean[c]) / scale[c]);
    let zf = z.rows(0, n_fit);
    let y_mean = targets[..n_fit].iter().sum::<f64>() / n_fit as f64;
    let yc = DVector::from_iterator(n_fit, targets[..n_fit].iter().map(|v| v - y_mean));
    let gram = zf.transpose() * zf + DMatrix::identity(dim, dim) * alpha;
    let rhs = zf.transpose() * yc;
    let coef = gram
        .cholesky()
        .ok_or_else(|| EvalError::TooFew("the probe's normal equations are singular".into()))?
        .solve(&rhs);
    let scored = &targets[n_fit..];
    let s_mean = scored.iter().sum::<f64>() / scored.len() as f64;
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for (k, &y) in scored.iter().enumerate() {
        let pred = y_mean + z.row(n_fit + k).dot(&coef.transpose());
        ss_res += (y - pred).powi(2);
        ss_tot += (y - s_mean).powi(2);
    }
    if ss_tot == 0.0 {
        return Err(EvalError::TooFew(
            "the scored targets are all equal: R² is undefined".into(),
        ));
    }
    Ok(ProbeFit {
        r2: 1.0 - ss_res / ss_tot,
        coef: coef.iter().copied().collect(),
        intercept: y_mean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_feature_by_hand() {
        // Fit rows x = 0, 1, 2, 3 with y = 2x + 1; standardised x has mean 1.5 and std
        // sqrt(1.25). With alpha 0 the fit is exact, so the score rows (x = 4, 5) score R² = 1.
        let x = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
        let y: Vec<f64> = x.iter().map(|&v| 2.0 * f64::from(v) + 1.0).collect();
        let p = ridge_probe(&x, 1, &y, 4, 0.0).unwrap();
        assert!((p.r2 - 1.0).abs() < 1e-12);
        assert!((p.coef[0] - 2.0 * 1.25f64.sqrt()).abs() < 1e-12);
        assert!((p.intercept - 4.0).abs() < 1e-12);
        // Ridge shrinks: coefficient = Σzy / (Σz² + α) = 2√1.25·n / (n + α) with Σz² = n = 4.
        let p = ridge_probe(&x, 1, &y, 4, 4.0).unwrap();
        assert!((p.coef[0] - 1.25f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(ridge_probe(&[1.0; 5], 2, &[1.0, 2.0, 3.0], 2, 1.0).is_err());
        assert!(ridge_probe(&[1.0, 2.0, 3.0], 1, &[1.0, 2.0, 3.0], 2, 1.0).is_err());
        assert!(ridge_probe(&[1.0, f32::NAN, 3.0, 4.0], 1, &[1.0, 2.0, 3.0, 4.0], 2, 1.0).is_err());
        assert!(ridge_probe(&[1.0, 2.0, 3.0, 4.0], 1, &[1.0, 2.0, 3.0, 3.0], 2, 1.0).is_err());
    }
}
