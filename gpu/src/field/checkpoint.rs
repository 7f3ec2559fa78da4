//! Checkpoints of a [`FieldRun`]: one safetensors file with the grid, the background, Adam's
//! moments, the guidance's state (VSD's LoRA) and a JSON header (`__meta__`: version, step,
//! seed, config, resolution, Adam's count), written atomically (temporary file, then rename).
//!
//! Every random draw is a function of `(seed, step)`, so a resumed run continues exactly as the
//! uninterrupted one. Resuming with a different configuration (other than the planned number of
//! steps) is refused with the field that differs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::FieldError;
use super::fit::FieldAdam;
use super::grid::Grid;
use super::run::{FieldConfig, FieldRun, FieldSource};
use crate::distill::Guidance;

/// Version of the checkpoint layout.
pub const FIELD_CHECKPOINT_VERSION: u32 = 1;

const META: &str = "__meta__";

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    version: u32,
    kind: String,
    step: usize,
    resolution: i64,
    adam_t: i64,
    config: FieldConfig,
    guidance_scalars: Vec<(String, f64)>,
}

fn ck(path: &Path, message: impl Into<String>) -> FieldError {
    FieldError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The source with its folder made absolute, for comparisons.
fn canonical_source(s: &FieldSource) -> FieldSource {
    match s {
        FieldSource::Views { dir, max_size } => FieldSource::Views {
            dir: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()),
            max_size: *max_size,
        },
        FieldSource::Text(t) => {
            let mut t = t.clone();
            t.model_dir = std::fs::canonicalize(&t.model_dir).unwrap_or(t.model_dir);
            FieldSource::Text(t)
        }
    }
}

/// The first setting (other than `steps` and `upsample_at`, which follows from it) in which `saved` and `now` differ, as
/// `(name, saved, now)`.
fn first_difference(saved: &FieldConfig, now: &FieldConfig) -> Option<(String, String, String)> {
    let norm = |c: &FieldConfig| {
        let mut c = c.clone();
        c.steps = 0;
        c.upsample_at = 0;
        c.source = canonical_source(&c.source);
        serde_json::to_value(&c).unwrap_or_default()
    };
    let (a, b) = (norm(saved), norm(now));
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return None;
    };
    a.iter().find_map(|(k, va)| {
        let vb = b.get(k).cloned().unwrap_or_default();
        (*va != vb).then(|| (k.clone(), va.to_string(), vb.to_string()))
    })
}

impl FieldRun {
    /// Writes the run to `path` atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), FieldError> {
        let cpu = |t: &Tensor| {
            t.detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous()
        };
        let mut named: Vec<(String, Tensor)> = vec![
            ("grid.density".into(), cpu(&self.grid.density)),
            ("grid.color".into(), cpu(&self.grid.color)),
            ("background".into(), cpu(&self.background)),
        ];
        for (name, (m, v)) in ["density", "color", "background"]
            .iter()
            .zip(self.adam.adam.moments())
        {
            named.push((format!("adam.{name}.m"), cpu(m)));
            named.push((format!("adam.{name}.v"), cpu(v)));
        }
        let mut scalars = Vec::new();
        if let Some(g) = self.guidance() {
            for (name, t) in g.state() {
                named.push((format!("guidance.{name}"), cpu(&t)));
            }
            scalars = g.state_scalars();
        }
        let meta = Meta {
            version: FIELD_CHECKPOINT_VERSION,
            kind: "vecdream-field".into(),
            step: self.step,
            resolution: self.grid.resolution,
            adam_t: self.adam.adam.t,
            config: self.config.clone(),
            guidance_scalars: scalars,
        };
        let json = serde_json::to_vec(&meta).map_err(|e| ck(path, e.to_string()))?;
        named.push((META.into(), Tensor::from_slice(&json)));
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        if let Err(e) = Tensor::write_safetensors(&named, &tmp) {
            let _ = std::fs::remove_file(&tmp);
            return Err(ck(path, e.to_string()));
        }
        std::fs::rename(&tmp, path).map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            FieldError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// A run for `config` on `device` continued from the checkpoint at `path`. `config` must
    /// equal the saved one except for `steps` (the new plan); the upsampling step stays the
    /// saved one.
    pub fn resume(path: &Path, config: FieldConfig, device: Device) -> Result<Self, FieldError> {
        if !path.is_file() {
            return Err(ck(path, "no checkpoint here (run without --resume first)"));
        }
        let tensors = Tensor::read_safetensors(path).map_err(|e| ck(path, e.to_string()))?;
        let find = |k: &str| {
            tensors
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t.shallow_clone())
        };
        let need = |k: &str| find(k).ok_or_else(|| ck(path, format!("missing tensor `{k}`")));
        let meta_bytes: Vec<u8> = Vec::try_from(need(META)?.to_kind(Kind::Uint8))
            .map_err(|e: tch::TchError| ck(path, e.to_string()))?;
        let meta: Meta = serde_json::from_slice(&meta_bytes).map_err(|e| {
            ck(
                path,
                format!("header: {e} (not a vecdream field checkpoint?)"),
            )
        })?;
        if meta.kind != "vecdream-field" || meta.version != FIELD_CHECKPOINT_VERSION {
            return Err(ck(
                path,
                format!(
                    "{} version {}: expected vecdream-field version {FIELD_CHECKPOINT_VERSION}",
                    meta.kind, meta.version
                ),
            ));
        }
        if let Some((field, saved, now)) = first_difference(&meta.config, &config) {
            return Err(ck(
                path,
                format!(
                    "it was written with `{field}` = {saved}, this run has {now}: use the same settings (only the step count may change) or start afresh"
                ),
            ));
        }
        // The coarse-to-fine schedule stays the one the run started with.
        let mut config = config;
        config.upsample_at = meta.config.upsample_at;
        let mut run = Self::new(config, device)?;
        let grid = Grid::from_tensors(
            need("grid.density")?.to_device(device),
            need("grid.color")?.to_device(device),
            run.config.color_space(),
            run.config.blob,
            run.config.density_scale,
        )
        .map_err(|m| ck(path, m))?;
        if grid.resolution != meta.resolution {
            return Err(ck(
                path,
                format!(
                    "grid is {}³ but the header says {}³",
                    grid.resolution, meta.resolution
                ),
            ));
        }
        run.grid = grid;
        let bg = need("background")?.to_device(device);
        if bg.size() != run.background.size() {
            return Err(ck(
                path,
                format!(
                    "background has shape {:?}, expected {:?}",
                    bg.size(),
                    run.background.size()
                ),
            ));
        }
        run.background = if run.learned_background {
            bg.set_requires_grad(true)
        } else {
            bg
        };
        run.adam = FieldAdam::new(&run.grid, &run.background, run.adam.lrs);
        let mut moments = Vec::new();
        for name in ["density", "color", "background"] {
            moments.push((
                need(&format!("adam.{name}.m"))?,
                need(&format!("adam.{name}.v"))?,
            ));
        }
        for ((m, _), p) in moments
            .iter()
            .zip([&run.grid.density, &run.grid.color, &run.background])
        {
            if m.size() != p.size() {
                return Err(ck(path, "optimiser moments do not fit the grid"));
            }
        }
        run.adam.adam.set_moments(moments);
        run.adam.adam.t = meta.adam_t;
        run.step = meta.step;
        let guidance_tensors: Vec<(String, Tensor)> = tensors
            .iter()
            .filter_map(|(k, t)| {
                k.strip_prefix("guidance.")
                    .map(|n| (n.to_string(), t.to_device(device)))
            })
            .collect();
        if let Some(g) = run.guidance_mut() {
            g.load_state(&guidance_tensors, &meta.guidance_scalars)
                .map_err(|e| ck(path, e.to_string()))?;
        }
        Ok(run)
    }
}
