//! Partial FC at scale: one training step over 1,000,000 classes on the CPU, which must change
//! the sampled centres and nothing else.

use burn::tensor::{Device, Distribution, Tensor};
use poseface_loss::cross_entropy::normalized_cosine;
use poseface_loss::head::{ArcFaceConfig, HeadInput, MarginHead, MarginHeadConfig};
use poseface_loss::{PartialFc, PartialFcConfig, SgdStep};

#[test]
fn a_step_over_a_million_classes_touches_only_the_sampled_rows() {
    let classes = 1_000_000;
    let dim = 32;
    let mut pfc = PartialFc::new(&PartialFcConfig {
        classes,
        dim,
        sample_rate: 0.001,
        seed: 3,
    })
    .unwrap();
    let before = pfc.centres().to_vec();
    let labels = [17i64, 999_999, 123_456, 17, 500_000, 0, 42, 77_777];
    let sampled = pfc.sample(&labels).unwrap();
    assert_eq!(sampled.index.len(), 1000);

    let device = Device::default().autodiff();
    let embeddings =
        Tensor::<2>::random([labels.len(), dim], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
    let (centres, remapped) = pfc.gather(&sampled, &device);
    assert_eq!(centres.dims(), [1000, dim]);
    let (cosine, norms) = normalized_cosine(embeddings.clone(), centres.clone());
    let mut head = MarginHead::new(MarginHeadConfig::ArcFace(ArcFaceConfig::default())).unwrap();
    let out = head
        .forward(HeadInput {
            cosine,
            labels: remapped.clone(),
            norms: Some(norms),
            pose: None,
        })
        .unwrap();
    let loss = out.loss(remapped);
    let grads = loss.backward();
    let grad = centres.grad(&grads).unwrap();
    assert!(embeddings.grad(&grads).is_some());
    pfc.step(
        &sampled,
        grad,
        SgdStep {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
        },
    )
    .unwrap();

    let after = pfc.centres();
    let mut changed = vec![false; classes];
    for c in 0..classes {
        changed[c] = after[c * dim..(c + 1) * dim] != before[c * dim..(c + 1) * dim];
    }
    let sampled_set: std::collections::HashSet<usize> =
        sampled.index.iter().map(|&c| c as usize).collect();
    for (c, &ch) in changed.iter().enumerate() {
        // Weight decay moves every sampled row; nothing else may move.
        assert_eq!(ch, sampled_set.contains(&c), "class {c}");
    }
    for &l in &labels {
        assert!(changed[l as usize]);
    }
}
