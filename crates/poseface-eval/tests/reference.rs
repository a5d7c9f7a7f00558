//! Parity with the independent NumPy / scikit-learn reference (`scripts/eval_reference.py`).

use poseface_eval::roc::{IJB_FARS, roc_curve};
use poseface_eval::verification::{pair_distances, verify, verify_distances};
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/eval_reference.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_bool().unwrap())
        .collect()
}

fn check_ten_fold(got: &poseface_eval::VerificationResult, want: &Value) {
    assert_eq!(
        got.fold_threshold,
        f64s(&want["fold_threshold"]),
        "thresholds"
    );
    assert_eq!(
        got.fold_accuracy,
        f64s(&want["fold_accuracy"]),
        "fold accuracies"
    );
    for key in ["accuracy_mean", "accuracy_std", "val", "val_std", "far"] {
        let w = want[key].as_f64().unwrap();
        let g = match key {
            "accuracy_mean" => got.accuracy_mean,
            "accuracy_std" => got.accuracy_std,
            "val" => got.val,
            "val_std" => got.val_std,
            _ => got.far,
        };
        assert!((g - w).abs() < 1e-12, "{key}: {g} vs {w}");
    }
}

fn check_roc(labels: &[bool], scores: &[f32], want: &Value) {
    check_curve(&roc_curve(labels, scores).unwrap(), want);
}

fn check_curve(roc: &poseface_eval::Roc, want: &Value) {
    let (fpr, tpr) = (f64s(&want["fpr"]), f64s(&want["tpr"]));
    assert_eq!(roc.fpr.len(), fpr.len(), "ROC points");
    for k in 0..fpr.len() {
        assert!((roc.fpr[k] - fpr[k]).abs() < 1e-12 && (roc.tpr[k] - tpr[k]).abs() < 1e-12);
    }
    let tar = roc.tar_at_far(&IJB_FARS);
    for (g, w) in tar.iter().zip(f64s(&want["tar_at_far"])) {
        assert!((g - w).abs() <= 1e-6, "TAR {g} vs {w}");
    }
}

#[test]
fn random_embeddings_match_the_reference() {
    let r = reference();
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/eval_random.f32"
    ))
    .unwrap();
    let emb: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let case = &r["random"];
    let dim = case["dim"].as_u64().unwrap() as usize;
    let issame = bools(&case["issame"]);
    assert_eq!(pair_distances(&emb, dim).unwrap().len(), issame.len());
    check_ten_fold(&verify(&emb, dim, &issame).unwrap(), &case["ten_fold"]);
    let scores: Vec<f32> = f64s(&case["scores"]).iter().map(|&s| s as f32).collect();
    check_roc(&issame, &scores, &case["roc"]);
}

#[test]
fn distances_on_the_threshold_grid_match_the_reference() {
    // Every distance equals a threshold: accepting means strictly below it.
    let r = reference();
    let case = &r["grid"];
    let issame = bools(&case["issame"]);
    let dist = f64s(&case["dist"]);
    check_ten_fold(
        &verify_distances(&dist, &issame, 10, 1e-3).unwrap(),
        &case["ten_fold"],
    );
    let scores: Vec<f32> = f64s(&case["scores"]).iter().map(|&s| s as f32).collect();
    check_roc(&issame, &scores, &case["roc"]);
}

#[test]
fn ijb_template_scores_match_the_reference() {
    let r = reference();
    let case = &r["ijb"];
    let dim = case["dim"].as_u64().unwrap() as usize;
    let f32s = |v: &Value| -> Vec<f32> { f64s(v).iter().map(|&x| x as f32).collect() };
    let u64s = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    let t = poseface_eval::ijb::aggregate(
        &f32s(&case["features"]),
        dim,
        &f32s(&case["face_scores"]),
        &u64s(&case["templates"]),
        &u64s(&case["medias"]),
    )
    .unwrap();
    let scores = t.scores(&u64s(&case["t1"]), &u64s(&case["t2"])).unwrap();
    for (g, w) in scores.iter().zip(f32s(&case["pair_scores"])) {
        assert!((g - w).abs() < 1e-5, "score {g} vs {w}");
    }
    check_roc(&bools(&case["labels"]), &scores, &case["roc"]);
    // The (score, label) pairs in bucket order give the same curve.
    let (scores, labels) = t
        .labelled_scores(
            &u64s(&case["t1"]),
            &u64s(&case["t2"]),
            &bools(&case["labels"]),
        )
        .unwrap();
    check_roc(&labels, &scores, &case["roc"]);
    // Scored straight into the ROC's sort keys: the same curve.
    let roc = t
        .roc(
            &u64s(&case["t1"]),
            &u64s(&case["t2"]),
            &bools(&case["labels"]),
        )
        .unwrap();
    check_curve(&roc, &case["roc"]);
}
