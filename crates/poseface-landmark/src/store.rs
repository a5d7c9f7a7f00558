//! Saving and loading a trained autoencoder: one safetensors file whose metadata carries the
//! network's configuration, so a file alone is enough to rebuild it.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{FloatCastAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::DType;
use burn::tensor::Device;

use crate::LandmarkError;
use crate::model::{LandmarkAutoencoder, LandmarkAutoencoderConfig};

/// Metadata key holding the configuration as JSON.
pub const CONFIG_KEY: &str = "poseface.landmark_autoencoder";

/// Writes the weights and configuration to `path` (atomically: a scratch file renamed into
/// place).
pub fn save(ae: &LandmarkAutoencoder, path: &Path) -> Result<(), LandmarkError> {
    let config = serde_json::to_string(&ae.config()).expect("the config serialises");
    // Float32 on disk whatever the training device's float type.
    let mut store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .with_to_adapter(FloatCastAdapter::to(DType::F32))
        .metadata(CONFIG_KEY, config);
    ae.save_into(&mut store).map_err(|e| LandmarkError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads a file written by [`save`] onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<LandmarkAutoencoder, LandmarkError> {
    let file = |message: String| LandmarkError::File {
        path: PathBuf::from(path),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| file(e.to_string()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| file(format!("not a safetensors file: {e}")))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_KEY))
        .ok_or_else(|| {
            file(format!(
                "no `{CONFIG_KEY}` metadata: not a landmark autoencoder written by `poseface lae train`"
            ))
        })?;
    let config: LandmarkAutoencoderConfig = serde_json::from_str(json)
        .map_err(|e| file(format!("bad `{CONFIG_KEY}` metadata: {e}")))?;
    config
        .validate()
        .map_err(|e| file(format!("`{CONFIG_KEY}` metadata: {e}")))?;
    let mut ae = config.init(device);
    // Into the device's float type (a half-precision training run loads the float32 file).
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(FloatCastAdapter::to(device.settings().float_dtype.into()));
    let result = ae.load_from(&mut store).map_err(|e| file(e.to_string()))?;
    if !result.is_success() || !result.missing.is_empty() {
        return Err(file(format!(
            "tensors do not match a {config:?} network: missing {:?}, errors {:?}",
            result.missing, result.errors
        )));
    }
    Ok(ae.no_grad())
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::*;

    #[test]
    fn round_trip_and_clear_errors() {
        let device = Device::default();
        let ae = LandmarkAutoencoderConfig::new()
            .with_hidden(16)
            .with_latent(3)
            .init(&device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lae.safetensors");
        save(&ae, &path).unwrap();
        let back = load(&path, &device).unwrap();
        assert_eq!(back.config(), ae.config());
        let x = Tensor::<2>::random([3, 136], Distribution::Default, &device);
        let a = ae
            .encode(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = back.encode(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a, b);

        std::fs::write(&path, b"not safetensors").unwrap();
        let e = load(&path, &device).unwrap_err().to_string();
        assert!(
            e.contains("lae.safetensors") && e.contains("not a safetensors"),
            "{e}"
        );
        assert!(load(&dir.path().join("missing"), &device).is_err());
    }
}
