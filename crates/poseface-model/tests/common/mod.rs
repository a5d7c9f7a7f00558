//! Reading the reference fixtures that `scripts/*_reference.py` wrote under `tests/fixtures`.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

/// Shape and values of `tests/fixtures/<dir>/<name>.npy`.
pub fn read_npy(dir: &str, name: &str) -> (Vec<usize>, Vec<f32>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(format!("{name}.npy"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().unwrap())
}

/// `tests/fixtures/<dir>/<name>.npy` as a tensor on `device`.
pub fn tensor<const D: usize>(dir: &str, name: &str, device: &Device) -> Tensor<D> {
    let (shape, values) = read_npy(dir, name);
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A tensor's values in row-major order.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Largest `|ours − theirs|`.
pub fn max_abs_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    ours.iter()
        .zip(theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
}

/// Largest `|ours − theirs|` over the largest `|theirs|`.
pub fn relative_error(ours: &[f32], theirs: &[f32]) -> f32 {
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    max_abs_diff(ours, theirs) / scale
}
