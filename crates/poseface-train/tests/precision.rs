//! The training precision knob. Its own test binary: burn fixes a device's float type once
//! per process, so this must not share a process with other training tests.

use burn::tensor::{Device, Tensor};
use poseface_train::{Precision, set_precision};

#[test]
fn precision_is_refused_once_the_device_float_type_is_fixed() {
    let mut device = Device::default();
    // The first tensor fixes the device's float type to float32.
    let _ = Tensor::<1>::zeros([1], &device);
    assert!(set_precision(&mut device, Precision::F32).is_ok());
    let e = set_precision(&mut device, Precision::Bf16)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("optim.precision") && e.contains("fresh process"),
        "{e}"
    );
    // Still float32.
    assert_eq!(
        Tensor::<1>::zeros([1], &device).dtype(),
        burn::tensor::DType::F32
    );
}
