//! Checkpoints: `runs/<name>/checkpoints/step-NNNNNNNN/` holding `backbone.safetensors`
//! (insightface names), `centres.npy` (`[classes, dim]` float32) and `state.json`, plus a
//! `latest` file naming the newest directory.
//!
//! A checkpoint is written into `step-….tmp/` and renamed into place, then `latest` is
//! replaced atomically, so a run killed at any moment leaves the previous checkpoint whole.
//! Resuming restores the weights, the class centres and their SGD momentum
//! (`centres_momentum.npy`), the method's module after the backbone (`pose_head.safetensors`,
//! burn's names: PoseFace's projections, the multi-task regressor or DREAM's block), the SGD state of the backbone and of the
//! projections (`backbone.optim.bpk`, `pose_head.optim.bpk`: burn's optimiser records, keyed
//! by the path-derived parameter ids of `poseface_model::param_ids`), the head's running
//! state and the step. The resolved config is saved too (`config.toml`), and a
//! resume whose config changes what is trained is refused; so is one on other training data
//! at the same path (`state.json` keeps a fingerprint of it: the CRC-32 of the RecordIO
//! index and the record file's length, or of an ImageFolder's list).
//!
//! Weights are written in float32 whatever `optim.precision` is, and cast back to the
//! network's float type on loading; the optimiser records keep the device's float type,
//! which a resume shares because a change of `optim.*` (the precision included) is refused.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use npyz::WriterBuilder;
use poseface_data::fsutil::write_atomic;
use poseface_loss::PartialFc;
use poseface_loss::head::HeadState;
use poseface_model::PoseModule;
use poseface_model::backbone::Backbone;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::trainer::io;

/// The small state saved beside the weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Steps completed.
    pub step: usize,
    /// The margin head's running state.
    pub head: HeadState,
    /// Seconds spent in training steps up to `step`, over every session of the run
    /// (0 in checkpoints written before it was recorded).
    #[serde(default)]
    pub train_seconds: f64,
    /// A fingerprint of the training data (see `Trainer`'s resume check); absent in
    /// checkpoints written before it was recorded.
    #[serde(default)]
    pub data: Option<u64>,
}

/// What a checkpoint holds.
#[derive(Clone, Copy)]
pub struct Contents<'a> {
    /// Backbone weights (saved under insightface's names).
    pub model: &'a Backbone,
    /// The method's module after the backbone, when the run has one.
    pub pose_head: Option<&'a PoseModule>,
    /// Optimisers by name (`<name>.optim.bpk`).
    pub optimizers: &'a [(&'a str, &'a ModuleOptimizer)],
    /// Class centres and their momentum.
    pub centres: &'a PartialFc,
    /// Step and head state.
    pub state: &'a CheckpointState,
    /// The resolved config (TOML).
    pub config: &'a str,
}

/// A checkpoint directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The `step-…` directory.
    pub dir: PathBuf,
}

const LATEST: &str = "latest";
const POSE_HEAD: &str = "pose_head.safetensors";

fn checkpoints(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

impl Checkpoint {
    /// The checkpoint `latest` points to, if any.
    pub fn latest(run_dir: &Path) -> Result<Option<Self>, TrainError> {
        let pointer = checkpoints(run_dir).join(LATEST);
        if !pointer.is_file() {
            return Ok(None);
        }
        let name = std::fs::read_to_string(&pointer).map_err(|e| io(&pointer, e))?;
        let dir = checkpoints(run_dir).join(name.trim());
        if !dir.join("state.json").is_file() {
            return Err(TrainError::Data(format!(
                "{}: points to {}, which holds no checkpoint",
                pointer.display(),
                dir.display()
            )));
        }
        Ok(Some(Self { dir }))
    }

    /// Writes a checkpoint for `state.step` and keeps the newest `keep + 1` of them.
    pub fn write(
        run_dir: &Path,
        contents: &Contents<'_>,
        keep: usize,
    ) -> Result<PathBuf, TrainError> {
        let Contents {
            model,
            pose_head,
            optimizers,
            centres,
            state,
            config,
        } = *contents;
        let root = checkpoints(run_dir);
        let name = format!("step-{:08}", state.step);
        let dir = root.join(&name);
        let tmp = root.join(format!("{name}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        poseface_model::save_insightface(model, &tmp.join("backbone.safetensors"))?;
        if let Some(head) = pose_head {
            let path = tmp.join(POSE_HEAD);
            let mut store = SafetensorsStore::from_file(&path)
                .overwrite(true)
                .with_to_adapter(poseface_model::cast_to_f32());
            head.save_into(&mut store)
                .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&path, e))?;
        }
        for (name, optim) in optimizers {
            let path = tmp.join(format!("{name}.optim.bpk"));
            optim
                .save(&path)
                .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&path, e))?;
        }
        write_matrix(&tmp.join("centres.npy"), centres.centres(), centres)?;
        write_matrix(
            &tmp.join("centres_momentum.npy"),
            centres.momentum(),
            centres,
        )?;
        write_atomic(&tmp.join("config.toml"), config.as_bytes())?;
        let json = serde_json::to_vec_pretty(state).unwrap_or_default();
        write_atomic(&tmp.join("state.json"), &json)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))?;
        sync_dir(&root)?;
        write_atomic(&root.join(LATEST), name.as_bytes())?;
        sync_dir(&root)?;
        prune(&root, keep)?;
        Ok(dir)
    }

    /// Restores the weights into `model` (and `pose_head`, when given), the centres into
    /// `centres`, and returns the state.
    pub fn load(
        &self,
        model: Backbone,
        pose_head: Option<PoseModule>,
        centres: &mut PartialFc,
    ) -> Result<(Backbone, Option<PoseModule>, CheckpointState), TrainError> {
        let model = poseface_model::load_insightface(
            model,
            &self.dir.join("backbone.safetensors"),
            "checkpoint backbone",
        )?;
        let pose_head = match pose_head {
            Some(mut head) => {
                let path = self.dir.join(POSE_HEAD);
                let bad = |m: String| TrainError::Data(format!("{}: {m}", path.display()));
                let mut store = SafetensorsStore::from_file(&path)
                    .with_from_adapter(poseface_model::cast_to_module(&head));
                let result = head.load_from(&mut store).map_err(|e| bad(e.to_string()))?;
                if !result.is_success() || !result.missing.is_empty() {
                    return Err(bad(format!(
                        "does not match the run's pose head: missing {:?}, errors {:?}",
                        result.missing, result.errors
                    )));
                }
                Some(head)
            }
            None => None,
        };
        let values = read_matrix(&self.dir.join("centres.npy"), centres)?;
        centres.set_centres(values)?;
        let momentum = read_matrix(&self.dir.join("centres_momentum.npy"), centres)?;
        centres.set_momentum(momentum)?;
        let path = self.dir.join("state.json");
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let state = serde_json::from_slice(&bytes)
            .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))?;
        Ok((model, pose_head, state))
    }

    /// Restores optimiser state saved under `name` into `optim`; `None` when the checkpoint
    /// holds none (written before optimiser state was saved).
    pub fn load_optimizer(
        &self,
        name: &str,
        optim: ModuleOptimizer,
    ) -> Result<Option<ModuleOptimizer>, TrainError> {
        let path = self.dir.join(format!("{name}.optim.bpk"));
        if !path.is_file() {
            return Ok(None);
        }
        optim
            .load(&path)
            .map(Some)
            .map_err(|e| TrainError::Data(format!("{}: {e}", path.display())))
    }

    /// The config the checkpoint was trained with.
    pub fn config(&self) -> Result<String, TrainError> {
        let path = self.dir.join("config.toml");
        std::fs::read_to_string(&path).map_err(|e| io(&path, e))
    }
}

/// Makes a directory's entries (renames) durable.
fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

/// Writes `values` as a `[classes, dim]` float32 `.npy`.
fn write_matrix(path: &Path, values: &[f32], centres: &PartialFc) -> Result<(), TrainError> {
    let mut bytes = Vec::new();
    {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[centres.classes() as u64, centres.dim() as u64])
            .writer(&mut bytes)
            .begin_nd()
            .map_err(|e| io(path, e))?;
        w.extend(values.iter().copied()).map_err(|e| io(path, e))?;
        w.finish().map_err(|e| io(path, e))?;
    }
    write_atomic(path, &bytes)?;
    Ok(())
}

fn read_matrix(path: &Path, centres: &PartialFc) -> Result<Vec<f32>, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| io(path, e))?;
    let want = [centres.classes() as u64, centres.dim() as u64];
    if npy.shape() != want {
        return Err(TrainError::Data(format!(
            "{}: centres of shape {:?}, the run has {:?}",
            path.display(),
            npy.shape(),
            want
        )));
    }
    npy.into_vec::<f32>().map_err(|e| io(path, e))
}

/// Removes all but the newest `keep + 1` `step-…` directories, and stale `.tmp` ones left by
/// a killed run.
fn prune(root: &Path, keep: usize) -> Result<(), TrainError> {
    let entries: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("step-"))
        })
        .collect();
    let (stale, mut steps): (Vec<PathBuf>, Vec<PathBuf>) = entries
        .into_iter()
        .partition(|p| p.extension().is_some_and(|e| e == "tmp"));
    for tmp in &stale {
        std::fs::remove_dir_all(tmp).map_err(|e| io(tmp, e))?;
    }
    steps.sort();
    let drop = steps.len().saturating_sub(keep + 1);
    for old in &steps[..drop] {
        std::fs::remove_dir_all(old).map_err(|e| io(old, e))?;
    }
    Ok(())
}
