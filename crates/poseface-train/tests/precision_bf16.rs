//! Weight files in a bfloat16 process. Its own test binary: the device's float type is set
//! once per process, before any tensor is made.

use burn::tensor::{DType, Device};
use poseface_model::iresnet::{IResNetConfig, IResNetDepth};
use poseface_model::{float_dtype, load_insightface, save_insightface};
use poseface_train::{Precision, set_precision};

#[test]
fn a_bf16_network_writes_float32_and_reads_float32_back_into_bf16() {
    let mut device = Device::default();
    set_precision(&mut device, Precision::Bf16).unwrap();
    let config = IResNetConfig::depth(IResNetDepth::R18)
        .with_width(0.0625)
        .with_input_size(28)
        .with_embedding_size(16);
    let model = config.init(&device);
    assert_eq!(float_dtype(&model), DType::BF16);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    save_insightface(&model, &path).unwrap();
    // On disk: float32 only.
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let tensors: Vec<_> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .collect();
    assert!(tensors.len() > 50);
    for (name, v) in tensors {
        assert_eq!(v["dtype"], "F32", "{name}");
    }
    // Read back into a bf16 network: every weight bf16 again, values unchanged (bf16 → f32 →
    // bf16 is exact).
    let fresh = config.init(&device);
    let loaded = load_insightface(fresh, &path, "r18").unwrap();
    assert_eq!(float_dtype(&loaded), DType::BF16);
    let a = model.fc.weight.val().into_data();
    let b = loaded.fc.weight.val().into_data();
    assert_eq!(b.dtype(), DType::BF16);
    assert_eq!(a, b);
}
