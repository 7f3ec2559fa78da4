//! Checkpoints: particles, optimiser moments, guidance state (e.g. LoRA) in one safetensors file,
//! and step, seed, config and topology in a JSON file beside it (`run.safetensors` + `run.json`).
//!
//! The safetensors file also holds the JSON as a `u8` tensor ([`META_TENSOR`]), so the one file that
//! is renamed into place last is a complete checkpoint on its own: a run killed between writing the
//! two files resumes from the safetensors file's own metadata, never from tensors of one step and
//! metadata of another.
//!
//! The random streams are functions of `(seed, step)` (see [`super::Rng::for_step`]), so the seed
//! and the step are the whole RNG state: a resumed run draws what the uninterrupted run drew.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use vecdream_core::{Document, ParamView};

use super::DistillError;
use super::engine::{DistillConfig, Distiller};
use super::guidance::Guidance;

/// Version of the checkpoint layout (2: one entry per particle group, with its document).
pub const CHECKPOINT_VERSION: u32 = 2;

/// Name of the `u8` tensor in the safetensors file that holds the checkpoint's JSON.
pub const META_TENSOR: &str = "meta.json";

const PARAM_NAMES: [&str; 5] = ["points", "fill", "stroke", "stroke_width", "background"];

/// One particle group of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMeta {
    /// Particles in the group.
    pub particles: usize,
    /// Its document (names, hierarchy, locks).
    pub document: Document,
    /// Its parameter view (topology, ids, locks).
    pub view: ParamView,
    /// Adam's update count.
    pub adam_t: i64,
}

/// The JSON half of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`CHECKPOINT_VERSION`].
    pub version: u32,
    /// Steps completed.
    pub step: usize,
    /// The run's settings (seed included).
    pub config: DistillConfig,
    /// The particle groups, in particle order.
    pub groups: Vec<GroupMeta>,
    /// Name of the guidance that wrote it.
    pub guidance: String,
    /// The guidance's scalar state.
    pub guidance_scalars: Vec<(String, f64)>,
    /// Reward weights of the particles, if any.
    pub weights: Option<Vec<f64>>,
    /// How the caller made the run ([`Distiller::set_settings`]).
    #[serde(default)]
    pub settings: Vec<(String, String)>,
}

/// The JSON file that goes with a checkpoint's safetensors file.
pub fn meta_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

fn write_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), DistillError>,
) -> Result<(), DistillError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        DistillError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

impl Distiller {
    /// Writes the run to `path` (safetensors) and `path` with extension `json`, atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), DistillError> {
        let cpu = |t: &Tensor| {
            t.detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous()
        };
        let mut named: Vec<(String, Tensor)> = Vec::new();
        let mut groups = Vec::new();
        for (j, g) in self.groups.iter().enumerate() {
            for (name, t) in PARAM_NAMES.iter().zip(g.params.tensors()) {
                named.push((format!("g{j}.params.{name}"), cpu(t)));
            }
            for (name, (m, v)) in PARAM_NAMES.iter().zip(g.adam.moments()) {
                named.push((format!("g{j}.adam.{name}.m"), cpu(m)));
                named.push((format!("g{j}.adam.{name}.v"), cpu(v)));
            }
            groups.push(GroupMeta {
                particles: g.len(),
                document: g.doc.clone(),
                view: g.view.clone(),
                adam_t: g.adam.t,
            });
        }
        for (name, t) in self.guidance.state() {
            named.push((format!("guidance.{name}"), cpu(&t)));
        }
        let meta = CheckpointMeta {
            version: CHECKPOINT_VERSION,
            step: self.step,
            config: self.config.clone(),
            groups,
            guidance: self.guidance.name(),
            guidance_scalars: self.guidance.state_scalars(),
            weights: self.weights.clone(),
            settings: self.settings.clone(),
        };
        let json = serde_json::to_string(&meta).map_err(|e| DistillError::Checkpoint {
            path: meta_path(path),
            message: e.to_string(),
        })?;
        named.push((META_TENSOR.into(), Tensor::from_slice(json.as_bytes())));
        write_atomic(path, |tmp| {
            Tensor::write_safetensors(&named, tmp)?;
            Ok(())
        })?;
        let mp = meta_path(path);
        write_atomic(&mp, |tmp| {
            std::fs::write(tmp, json).map_err(|source| DistillError::Io {
                path: tmp.to_path_buf(),
                source,
            })
        })
    }

    /// Reads only the JSON half of a checkpoint (e.g. to rebuild its guidance before resuming).
    pub fn read_checkpoint_meta(path: &Path) -> Result<CheckpointMeta, DistillError> {
        let mp = meta_path(path);
        let text = std::fs::read_to_string(&mp).map_err(|source| DistillError::Io {
            path: mp.clone(),
            source,
        })?;
        parse_meta(&text, &mp)
    }

    /// Continues a run saved by [`Distiller::save_checkpoint`]. `guidance` must be built with the
    /// same settings as the saved run's; its trainable state is restored from the file.
    pub fn resume(
        path: &Path,
        guidance: Box<dyn Guidance>,
        device: Device,
    ) -> Result<Self, DistillError> {
        let err = |message: String| DistillError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_file() {
            return Err(err(
                "not found (run without --resume to start a new run)".into()
            ));
        }
        let tensors = Tensor::read_safetensors(path).map_err(|e| {
            err(format!(
                "not a complete safetensors file (truncated or damaged; delete it and its .json to start over): {e}"
            ))
        })?;
        // The copy inside the safetensors file is the one written with these tensors.
        let meta = match tensors.iter().find(|(k, _)| k == META_TENSOR) {
            Some((_, t)) => {
                let bytes = Vec::<u8>::try_from(t).map_err(|e| {
                    err(format!("tensor `{META_TENSOR}` is not a byte string: {e}"))
                })?;
                let text = String::from_utf8(bytes)
                    .map_err(|e| err(format!("tensor `{META_TENSOR}` is not UTF-8: {e}")))?;
                parse_meta(&text, path)?
            }
            None => Self::read_checkpoint_meta(path)?,
        };
        if guidance.name() != meta.guidance {
            return Err(err(format!(
                "written by guidance `{}`, resumed with `{}`",
                meta.guidance,
                guidance.name()
            )));
        }
        let find = |name: &str| {
            tensors
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| err(format!("missing tensor `{name}`")))
        };
        let mut config = meta.config.clone();
        config.init_jitter = 0.0; // the saved points already include it
        let docs: Vec<Document> = meta.groups.iter().map(|g| g.document.clone()).collect();
        let mut d = if docs.len() == 1 {
            Distiller::from_starts(docs, config, guidance, device)?
        } else {
            // One group per particle; groups of several particles only come from one start.
            if meta.groups.iter().any(|g| g.particles != 1) {
                return Err(err(
                    "several groups of several particles: not a layout this build writes".into(),
                ));
            }
            Distiller::from_starts(docs, config, guidance, device)?
        };
        d.config.init_jitter = meta.config.init_jitter;
        for (j, gm) in meta.groups.iter().enumerate() {
            let g = &mut d.groups[j];
            g.view = gm.view.clone();
            g.scene = crate::raster::Scene::from_view(&g.view)?;
            {
                let _g = tch::no_grad_guard();
                for (name, t) in PARAM_NAMES.iter().zip(g.params.tensors()) {
                    let key = format!("g{j}.params.{name}");
                    let saved = find(&key)?;
                    if saved.size() != t.size() {
                        return Err(err(format!(
                            "{key} has shape {:?}, the run needs {:?}",
                            saved.size(),
                            t.size()
                        )));
                    }
                    t.detach().copy_(&saved.to_device(device));
                }
            }
            let mut moments = Vec::new();
            for name in PARAM_NAMES {
                let m = find(&format!("g{j}.adam.{name}.m"))?;
                let v = find(&format!("g{j}.adam.{name}.v"))?;
                moments.push((m, v));
            }
            for ((m, v), t) in moments.iter().zip(g.params.tensors()) {
                if m.size() != t.size() || v.size() != t.size() {
                    return Err(err(format!(
                        "g{j}: optimiser moments of shape {:?} for parameters of shape {:?}",
                        m.size(),
                        t.size()
                    )));
                }
            }
            g.adam.set_moments(moments);
            g.adam.t = gm.adam_t;
            super::engine::set_masks(g, &d.config);
        }
        let g_state: Vec<(String, Tensor)> = tensors
            .iter()
            .filter_map(|(k, t)| {
                k.strip_prefix("guidance.")
                    .map(|k| (k.to_string(), t.to_device(device)))
            })
            .collect();
        d.guidance.load_state(&g_state, &meta.guidance_scalars)?;
        d.step = meta.step;
        d.weights = meta.weights;
        d.settings = meta.settings;
        d.refresh_shape_counts();
        if d.config.region_weight > 0.0 {
            d.rebuild_regions()?;
        }
        Ok(d)
    }
}

/// Parses and checks a checkpoint's JSON (`path` names its source in errors).
fn parse_meta(text: &str, path: &Path) -> Result<CheckpointMeta, DistillError> {
    let err = |message: String| DistillError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let v: Version =
        serde_json::from_str(text).map_err(|e| err(format!("invalid JSON (no version): {e}")))?;
    if v.version != CHECKPOINT_VERSION {
        return Err(err(format!(
            "version {} (this build reads {CHECKPOINT_VERSION})",
            v.version
        )));
    }
    let meta: CheckpointMeta =
        serde_json::from_str(text).map_err(|e| err(format!("invalid JSON: {e}")))?;
    let total: usize = meta.groups.iter().map(|g| g.particles).sum();
    if meta.groups.is_empty() || total != meta.config.particles {
        return Err(err(format!(
            "{} groups holding {total} particles, the config says {}",
            meta.groups.len(),
            meta.config.particles
        )));
    }
    Ok(meta)
}
