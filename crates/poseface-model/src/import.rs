//! Loading insightface checkpoints (`backbone.pth`, or the same state dict as safetensors)
//! into our modules, and saving ours under the same names.
//!
//! The released checkpoints name tensors after PyTorch attributes. Three renames bring them to
//! our module paths, one rule each (see [`INSIGHTFACE_TO_MODULE`]); the PyTorch adapter of
//! burn-store transposes `Linear` weights and maps batch-norm `weight`/`bias` to
//! `gamma`/`beta`. `num_batches_tracked` counters are ignored. Every other difference — a
//! tensor the checkpoint lacks, a tensor our module lacks, a shape that disagrees — is an
//! [`ImportError`] that names the file and the tensors.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{
    ApplyResult, BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter,
    ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::DType;

/// The float type of tensors made on `module`'s device (float32 for a module without
/// tensors): what weights read from a file must be cast to before they join it.
pub fn float_dtype<M: Module>(module: &M) -> DType {
    module
        .devices()
        .into_iter()
        .next()
        .map_or(DType::F32, |d| d.settings().float_dtype.into())
}

/// Casts every float tensor read from a file to `module`'s float type, so that weights
/// saved in float32 load into a half-precision network and the other way round.
pub fn cast_to_module<M: Module>(module: &M) -> FloatCastAdapter {
    FloatCastAdapter::to(float_dtype(module))
}

/// Casts every float tensor written to a file to float32: files leave in the type every
/// reader (PyTorch, insightface's tools, a float32 network) takes, whatever the training
/// precision.
pub fn cast_to_f32() -> FloatCastAdapter {
    FloatCastAdapter::to(DType::F32)
}

/// How insightface's key names map onto our module paths: `(regex, replacement)`, applied in
/// order. Everything not listed keeps its name (`conv1.weight`, `layer1.0.bn2.running_var`,
/// `fc.weight`, `features.bias`, …).
pub const INSIGHTFACE_TO_MODULE: [(&str, &str); 4] = [
    // A checkpoint saved from `DataParallel`/`DistributedDataParallel` prefixes every key.
    (r"^module\.", ""),
    // `downsample` is an `nn.Sequential(conv, bn)`; ours names its two parts.
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
    // PyTorch's `nn.PReLU` calls its slopes `weight`; burn's `PRelu` calls them `alpha`.
    (r"(^|\.)prelu\.weight$", "${1}prelu.alpha"),
];

/// The inverse of [`INSIGHTFACE_TO_MODULE`], used when saving.
pub const MODULE_TO_INSIGHTFACE: [(&str, &str); 3] = [
    (r"\.downsample\.conv\.", ".downsample.0."),
    (r"\.downsample\.bn\.", ".downsample.1."),
    (r"(^|\.)prelu\.alpha$", "${1}prelu.weight"),
];

/// The key rules as burn-store's remapper. The patterns are constants of this module, so a
/// regex that fails to compile is a bug here, caught by every import test.
fn remapper(rules: &[(&str, &str)]) -> KeyRemapper {
    KeyRemapper::from_patterns(rules.to_vec()).expect("the key rules are valid regexes")
}

/// Checkpoint entries that carry no model state and are skipped on import.
fn is_ignored(key: &str) -> bool {
    key.ends_with("num_batches_tracked")
}

/// Why a checkpoint could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read or parsed.
    #[error("{path}: cannot read checkpoint: {message}")]
    Read {
        /// The checkpoint file.
        path: PathBuf,
        /// The reader's message.
        message: String,
    },
    /// The checkpoint's tensors do not match the module.
    #[error(
        "{path}: checkpoint does not match the {arch} module: {}",
        describe_mismatch(missing, unexpected, errors)
    )]
    Mismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// What the module was (e.g. `IResNet r50 width 1`).
        arch: String,
        /// Module tensors the checkpoint lacks (module path).
        missing: Vec<String>,
        /// Checkpoint tensors the module has no place for (after renaming).
        unexpected: Vec<String>,
        /// Shape or type disagreements, one line each.
        errors: Vec<String>,
    },
    /// The weights could not be written.
    #[error("{path}: cannot write weights: {message}")]
    Write {
        /// The destination file.
        path: PathBuf,
        /// The writer's message.
        message: String,
    },
}

fn describe_mismatch(missing: &[String], unexpected: &[String], errors: &[String]) -> String {
    let list = |items: &[String]| {
        let head: Vec<&str> = items.iter().take(4).map(String::as_str).collect();
        let more = items.len().saturating_sub(4);
        if more > 0 {
            format!("{} (+{more} more)", head.join(", "))
        } else {
            head.join(", ")
        }
    };
    let mut parts = Vec::new();
    if !errors.is_empty() {
        parts.push(format!("{} wrong: {}", errors.len(), list(errors)));
    }
    if !missing.is_empty() {
        parts.push(format!("{} missing: {}", missing.len(), list(missing)));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} unexpected: {}",
            unexpected.len(),
            list(unexpected)
        ));
    }
    parts.join("; ")
}

/// The checkpoint formats [`load_insightface`] reads, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// PyTorch `torch.save` output (`.pth`, `.pt`, `.bin`), zip or legacy pickle.
    Pytorch,
    /// safetensors (`.safetensors`).
    Safetensors,
}

impl CheckpointFormat {
    /// The format a path's extension names; anything but `.safetensors` is PyTorch.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => Self::Safetensors,
            _ => Self::Pytorch,
        }
    }
}

/// Loads an insightface-named state dict into `module` (an IResNet or any module whose paths
/// follow PyTorch attribute names modulo [`INSIGHTFACE_TO_MODULE`]).
///
/// `arch` only names the module in error messages.
pub fn load_insightface<M: Module + ModuleSnapshot>(
    mut module: M,
    path: &Path,
    arch: &str,
) -> Result<M, ImportError> {
    let read_error = |message: String| ImportError::Read {
        path: path.to_path_buf(),
        message,
    };
    let result = match CheckpointFormat::of(path) {
        CheckpointFormat::Pytorch => {
            if float_dtype(&module) != DType::F32 {
                return Err(read_error(format!(
                    "PyTorch pickles load into float32 networks only (this one is {:?}); convert the weights to safetensors",
                    float_dtype(&module)
                )));
            }
            let mut store = PytorchStore::from_file(path)
                .remap(remapper(&INSIGHTFACE_TO_MODULE))
                .allow_partial(true)
                .validate(false)
                .map_indices_contiguous(false);
            module
                .load_from(&mut store)
                .map_err(|e| read_error(e.to_string()))?
        }
        CheckpointFormat::Safetensors => {
            if !path.is_file() {
                return Err(read_error("no such file".into()));
            }
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter.chain(cast_to_module(&module)))
                .skip_enum_variants(true)
                .remap(remapper(&INSIGHTFACE_TO_MODULE))
                .allow_partial(true)
                .validate(false)
                .map_indices_contiguous(false);
            module
                .load_from(&mut store)
                .map_err(|e| read_error(e.to_string()))?
        }
    };
    check_applied(&result, path, arch)?;
    Ok(module)
}

fn check_applied(result: &ApplyResult, path: &Path, arch: &str) -> Result<(), ImportError> {
    let missing: Vec<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
    let unexpected: Vec<String> = result
        .unused
        .iter()
        .filter(|k| !is_ignored(k))
        .cloned()
        .collect();
    let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    if missing.is_empty() && unexpected.is_empty() && errors.is_empty() {
        Ok(())
    } else {
        Err(ImportError::Mismatch {
            path: path.to_path_buf(),
            arch: arch.to_string(),
            missing,
            unexpected,
            errors,
        })
    }
}

/// Saves `module` as safetensors under insightface's key names and PyTorch's layouts, so the
/// file loads back here and into `arcface_torch`'s `get_model(...)` with
/// `load_state_dict(safetensors.torch.load_file(path), strict=False)`.
///
/// The write goes to a temporary file beside `path`, renamed into place when complete.
pub fn save_insightface<M: Module + ModuleSnapshot>(
    module: &M,
    path: &Path,
) -> Result<(), ImportError> {
    let write_error = |message: String| ImportError::Write {
        path: path.to_path_buf(),
        message,
    };
    let tmp = path.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&tmp)
        .with_to_adapter(BurnToPyTorchAdapter.chain(cast_to_f32()))
        .skip_enum_variants(true)
        .remap(remapper(&MODULE_TO_INSIGHTFACE))
        .metadata("format", "pt")
        .metadata("producer", "poseface-model");
    module
        .save_into(&mut store)
        .map_err(|e| write_error(e.to_string()))?;
    // On disk before it takes the final name, so a crash never leaves a torn file there.
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| write_error(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| write_error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_message_names_the_tensors() {
        let e = ImportError::Mismatch {
            path: "w.pth".into(),
            arch: "IResNet r18".into(),
            missing: vec!["fc.weight".into()],
            unexpected: (0..6).map(|i| format!("extra.{i}")).collect(),
            errors: vec![],
        };
        let text = e.to_string();
        assert!(text.starts_with("w.pth: checkpoint does not match the IResNet r18 module"));
        assert!(text.contains("1 missing: fc.weight"));
        assert!(text.contains("6 unexpected: extra.0, extra.1, extra.2, extra.3 (+2 more)"));
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            CheckpointFormat::of(Path::new("a/model.safetensors")),
            CheckpointFormat::Safetensors
        );
        assert_eq!(
            CheckpointFormat::of(Path::new("backbone.pth")),
            CheckpointFormat::Pytorch
        );
    }
}
