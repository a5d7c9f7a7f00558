//! The ridge probe against `scripts/probe_reference.py` (scikit-learn `Ridge(alpha=1)` on
//! features standardised with the fit half's statistics, `r2_score` on the other half).

use poseface_eval::probe::ridge_probe;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    n_train: usize,
    d: usize,
    x: Vec<f64>,
    y: Vec<f64>,
    r2: f64,
    coef: Vec<f64>,
    intercept: f64,
}

#[test]
fn probes_match_scikit_learn() {
    let text = include_str!("fixtures/probe_reference.json");
    let cases: Vec<Case> = serde_json::from_str(text).unwrap();
    assert_eq!(cases.len(), 5);
    for c in cases {
        // The fixture's features are float32 values, so this conversion is exact.
        let x: Vec<f32> = c.x.iter().map(|&v| v as f32).collect();
        let fit = ridge_probe(&x, c.d, &c.y, c.n_train, 1.0).unwrap();
        assert!(
            (fit.r2 - c.r2).abs() < 1e-9,
            "{}: R² {} vs {}",
            c.name,
            fit.r2,
            c.r2
        );
        assert!((fit.intercept - c.intercept).abs() < 1e-9, "{}", c.name);
        for (a, b) in fit.coef.iter().zip(&c.coef) {
            assert!(
                (a - b).abs() < 1e-8 * b.abs().max(1.0),
                "{}: {a} vs {b}",
                c.name
            );
        }
    }
}
