//! Parity with PyTorch: IResNets built and randomised by `scripts/iresnet_reference.py`,
//! saved with insightface's key names, load here and give the same embeddings in eval mode.
//!
//! The small committed fixture (r18 at 1/16 width, 56×56, 64-d) always runs. Full-width r18
//! and r50 run when `scripts/iresnet_reference.py` has written them under
//! `target/reference/` (or `$POSEFACE_REFERENCE_DIR`), and skip with a message otherwise.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use poseface_model::import::{ImportError, load_insightface, save_insightface};
use poseface_model::iresnet::{IResNetConfig, IResNetDepth};

struct Reference {
    config: IResNetConfig,
    arch: String,
    input: Tensor<4>,
    embedding: Vec<f32>,
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn reference(dir: &Path, device: &Device) -> Reference {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    let depth = IResNetDepth::parse(meta["arch"].as_str().unwrap()).unwrap();
    let config = IResNetConfig::depth(depth)
        .with_width(meta["width"].as_f64().unwrap())
        .with_input_size(meta["input_size"].as_u64().unwrap() as usize)
        .with_embedding_size(meta["embedding"].as_u64().unwrap() as usize);
    let (shape, input) = read_npy(&dir.join("input.npy"));
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let input = Tensor::from_data(TensorData::new(input, shape), device);
    let (_, embedding) = read_npy(&dir.join("embedding.npy"));
    Reference {
        arch: format!("IResNet {} width {}", depth.name(), config.width),
        config,
        input,
        embedding,
    }
}

/// Largest `|ours − theirs|` over the largest `|theirs|`.
fn relative_error(ours: &[f32], theirs: &[f32]) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let diff = ours
        .iter()
        .zip(theirs)
        .fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    diff / scale
}

fn embed_with(dir: &Path, weights: &str) -> (Vec<f32>, Vec<f32>) {
    let device = Device::default();
    let r = reference(dir, &device);
    let model = r.config.init(&device);
    let model = load_insightface(model, &dir.join(weights), &r.arch).unwrap();
    let ours = model
        .forward(r.input)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    (ours, r.embedding)
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/iresnet_r18_w0625_s56")
}

#[test]
fn small_r18_from_pth_matches_pytorch() {
    let (ours, theirs) = embed_with(&fixture(), "backbone.pth");
    let err = relative_error(&ours, &theirs);
    assert!(err <= 1e-4, "relative error {err:.3e}");
}

#[test]
fn small_r18_from_safetensors_matches_pytorch() {
    let (ours, theirs) = embed_with(&fixture(), "backbone.safetensors");
    let err = relative_error(&ours, &theirs);
    assert!(err <= 1e-4, "relative error {err:.3e}");
}

fn full_size(name: &str) -> Option<PathBuf> {
    let root = std::env::var_os("POSEFACE_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/reference"));
    let dir = root.join(name);
    if dir.join("backbone.pth").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: {} not found; generate it with `python scripts/iresnet_reference.py --arch {} --out {}` (needs torch)",
            dir.display(),
            name.trim_start_matches("iresnet_"),
            dir.display()
        );
        None
    }
}

/// Loads a full-size reference's `.pth` and compares embeddings (skips when absent).
fn check_full_size(name: &str) {
    if let Some(dir) = full_size(name) {
        let (ours, theirs) = embed_with(&dir, "backbone.pth");
        let err = relative_error(&ours, &theirs);
        eprintln!("{}: relative error {err:.2e}", dir.display());
        assert!(err <= 1e-4, "relative error {err:.3e}");
    }
}

#[test]
fn full_width_r18_matches_pytorch() {
    check_full_size("iresnet_r18");
}

#[test]
fn full_width_r50_matches_pytorch() {
    check_full_size("iresnet_r50");
}

#[test]
fn saved_safetensors_reload_to_identical_embeddings() {
    let device = Device::default();
    let r = reference(&fixture(), &device);
    let model = load_insightface(
        r.config.init(&device),
        &fixture().join("backbone.pth"),
        &r.arch,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    save_insightface(&model, &out).unwrap();
    let reloaded = load_insightface(r.config.init(&device), &out, &r.arch).unwrap();
    let a = model.forward(r.input.clone()).into_data();
    let b = reloaded.forward(r.input).into_data();
    assert_eq!(a, b);
    // The file uses insightface's names, so PyTorch loads it with `load_state_dict`.
    let bytes = std::fs::read(&out).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    for key in [
        "\"conv1.weight\"",
        "\"prelu.weight\"",
        "\"layer1.0.downsample.0.weight\"",
        "\"layer1.0.downsample.1.running_var\"",
        "\"layer4.1.bn3.bias\"",
        "\"fc.weight\"",
        "\"features.weight\"",
    ] {
        assert!(header.contains(key), "{key} missing from {header}");
    }
    assert!(!header.contains("alpha") && !header.contains("gamma"));
}

#[test]
fn a_checkpoint_of_another_width_is_a_named_mismatch() {
    let device = Device::default();
    let model = IResNetConfig::depth(IResNetDepth::R18)
        .with_width(0.125)
        .with_input_size(56)
        .with_embedding_size(64)
        .init(&device);
    let err = load_insightface(
        model,
        &fixture().join("backbone.pth"),
        "IResNet r18 width 0.125",
    )
    .unwrap_err();
    let ImportError::Mismatch { errors, .. } = &err else {
        panic!("expected a mismatch, got {err}");
    };
    assert!(!errors.is_empty());
    assert!(err.to_string().contains("conv1.weight"), "{err}");
}

#[test]
fn a_checkpoint_of_another_depth_names_missing_tensors() {
    let device = Device::default();
    let model = IResNetConfig::depth(IResNetDepth::R34)
        .with_width(0.0625)
        .with_input_size(56)
        .with_embedding_size(64)
        .init(&device);
    let err = load_insightface(model, &fixture().join("backbone.pth"), "IResNet r34").unwrap_err();
    let ImportError::Mismatch { missing, .. } = &err else {
        panic!("expected a mismatch, got {err}");
    };
    assert!(
        missing.iter().any(|m| m.starts_with("layer1.2.")),
        "{missing:?}"
    );
}

#[test]
fn truncated_and_missing_files_are_read_errors() {
    let device = Device::default();
    let config = IResNetConfig::depth(IResNetDepth::R18)
        .with_width(0.0625)
        .with_input_size(56)
        .with_embedding_size(64);
    let dir = tempfile::tempdir().unwrap();
    for name in ["backbone.pth", "backbone.safetensors"] {
        let bytes = std::fs::read(fixture().join(name)).unwrap();
        let cut = dir.path().join(name);
        std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
        let err = load_insightface(config.init(&device), &cut, "r18").unwrap_err();
        assert!(
            matches!(err, ImportError::Read { .. }),
            "{name}: expected a read error, got {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = load_insightface(
        config.init(&device),
        &dir.path().join("absent.safetensors"),
        "r18",
    )
    .unwrap_err();
    assert!(matches!(err, ImportError::Read { .. }), "{err}");
}
