//! [`FieldRun`]: one optimisation of a field, from a views folder (photometric fitting) or a
//! prompt (score distillation), step by step, with previews, meshes and checkpoints. What the
//! CLI's `generate3d` and the app's 3D panel drive.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use vecdream_core::RgbaImage;
use vecdream_core::mesh::Mesh;

use super::FieldError;
use super::camera::{Camera, CameraRanges, turntable};
use super::fit::{FieldAdam, ObjectiveOutput, ViewFit};
use super::grid::{Blob, ColorSpace, Grid};
use super::mesh::extract_mesh;
use super::render::{emptiness_loss, render};
use super::sds::{TextConfig, TextObjective};
use super::views::load_views;
use crate::distill::SdGuidance;
use crate::rng::Rng;
use crate::sd::StableDiffusion;

/// Random stream of the field's steps (see [`Rng::for_step`]).
const STREAM: u64 = 0x3D;

/// What the field is fitted to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FieldSource {
    /// A views folder (see [`super::views`]).
    Views {
        /// The folder with `views.json`.
        dir: PathBuf,
        /// Renders at most this many pixels a side (larger images are area-downsampled).
        max_size: u32,
    },
    /// A prompt and a Stable Diffusion model.
    Text(TextConfig),
}

/// Settings of a [`FieldRun`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldConfig {
    /// What to fit.
    pub source: FieldSource,
    /// Final voxels per side.
    pub grid: i64,
    /// Voxels per side at the start (coarse-to-fine; = `grid` for none).
    pub grid_start: i64,
    /// Step at which the grid is upsampled from `grid_start` to `grid`.
    pub upsample_at: usize,
    /// Planned steps.
    pub steps: usize,
    /// Seed of every random draw (cameras, jitter, noise, timesteps).
    pub seed: u64,
    /// Samples per ray.
    pub samples: i64,
    /// Views (or random cameras) per step.
    pub batch: usize,
    /// Adam learning rate of the raw density.
    pub lr_density: f64,
    /// Adam learning rate of the raw colour.
    pub lr_color: f64,
    /// Adam learning rate of the learned background (text mode).
    pub lr_background: f64,
    /// Weight of the total-variation regulariser of the raw density.
    pub tv_weight: f64,
    /// Weight of SJC's emptiness regulariser.
    pub emptiness_weight: f64,
    /// Weight of the opacity-vs-alpha term (views with alpha).
    pub mask_weight: f64,
    /// The start's density blob.
    pub blob: Blob,
    /// σ per unit length at density 1.
    pub density_scale: f64,
    /// Random training cameras (text mode).
    pub cameras: CameraRanges,
    /// Density threshold of the extracted surface; `None`: [`FieldRun::auto_threshold`].
    pub mesh_threshold: Option<f64>,
}

impl FieldConfig {
    fn base(source: FieldSource, grid: i64, steps: usize) -> Self {
        let grid = grid.max(4);
        let grid_start = if grid >= 64 { grid / 2 } else { grid };
        Self {
            source,
            grid,
            grid_start,
            upsample_at: steps * 3 / 10,
            steps,
            seed: 0,
            samples: 64,
            batch: 1,
            lr_density: 0.1,
            lr_color: 0.05,
            lr_background: 0.01,
            tv_weight: 0.0,
            emptiness_weight: 0.0,
            mask_weight: 1.0,
            blob: Blob::default(),
            density_scale: 32.0,
            cameras: CameraRanges::default(),
            mesh_threshold: None,
        }
    }

    /// Fitting defaults for a views folder: the start fills the box (a wide, mild blob) and the
    /// views carve it; 2 views per step; opacity fitted to the alpha.
    pub fn views(dir: impl Into<PathBuf>, grid: i64, steps: usize) -> Self {
        Self {
            batch: 2,
            blob: Blob {
                strength: 4.0,
                radius: 0.7,
            },
            tv_weight: 0.01,
            ..Self::base(
                FieldSource::Views {
                    dir: dir.into(),
                    max_size: 128,
                },
                grid,
                steps,
            )
        }
    }

    /// Text-to-3D defaults (Latent-NeRF-like): a centred blob, a learned background, emptiness.
    pub fn text(text: TextConfig, grid: i64, steps: usize) -> Self {
        Self {
            emptiness_weight: 0.01,
            tv_weight: 0.01,
            lr_color: 0.02,
            ..Self::base(FieldSource::Text(text), grid, steps)
        }
    }

    /// The grid's colour space.
    pub fn color_space(&self) -> ColorSpace {
        match &self.source {
            FieldSource::Views { .. } => ColorSpace::Rgb,
            FieldSource::Text(t) => t.color_space(),
        }
    }

    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        let bad = |field: &str, message: String| {
            Err(FieldError::Config {
                field: field.into(),
                message,
            })
        };
        if !(4..=512).contains(&self.grid) {
            return bad(
                "grid",
                format!("{}: expected 4 to 512 voxels a side", self.grid),
            );
        }
        if self.grid_start < 4 || self.grid_start > self.grid {
            return bad(
                "grid_start",
                format!("{}: expected 4 to grid ({})", self.grid_start, self.grid),
            );
        }
        if !(1..=1024).contains(&self.samples) {
            return bad("samples", format!("{}: expected 1 to 1024", self.samples));
        }
        if self.batch == 0 {
            return bad("batch", "0: expected at least 1".into());
        }
        if self.density_scale.is_nan() || self.density_scale <= 0.0 {
            return bad(
                "density_scale",
                format!("{}: expected > 0", self.density_scale),
            );
        }
        Ok(())
    }
}

/// One step's report.
#[derive(Clone, Debug, PartialEq)]
pub struct StepInfo {
    /// Steps completed after this one (1 after the first).
    pub step: usize,
    /// The objective's value (photometric MSE + mask, or the SDS value).
    pub loss: f64,
    /// Extra named numbers (`mse`, `mask`, `tv`, `emptiness`, `mean_t`, `phi_loss`, …).
    pub terms: Vec<(String, f64)>,
    /// Whether the update was skipped (non-finite gradient).
    pub skipped: bool,
}

enum Objective {
    Views(ViewFit),
    Text(Box<TextObjective>),
}

/// A field being optimised.
pub struct FieldRun {
    pub(super) config: FieldConfig,
    pub(super) grid: Grid,
    /// Background: raw values (learned, text mode) or the fixed colour (views).
    pub(super) background: Tensor,
    pub(super) learned_background: bool,
    pub(super) adam: FieldAdam,
    pub(super) step: usize,
    objective: Objective,
}

impl std::fmt::Debug for FieldRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldRun")
            .field("config", &self.config)
            .field("step", &self.step)
            .field("resolution", &self.grid.resolution)
            .finish_non_exhaustive()
    }
}

impl FieldRun {
    /// A fresh run on `device`: loads the views or the model.
    pub fn new(config: FieldConfig, device: Device) -> Result<Self, FieldError> {
        config.validate()?;
        let objective = match &config.source {
            FieldSource::Views { dir, max_size } => {
                let views = load_views(dir)?;
                Objective::Views(ViewFit::new(
                    &views,
                    *max_size,
                    config.batch,
                    config.mask_weight,
                    device,
                ))
            }
            FieldSource::Text(t) => Objective::Text(Box::new(TextObjective::load(t, device)?)),
        };
        Self::with_objective(config, objective, device)
    }

    /// A fresh text-to-3D run on an already loaded model (e.g. random SD 2.1-base weights).
    pub fn with_model(config: FieldConfig, sd: StableDiffusion) -> Result<Self, FieldError> {
        config.validate()?;
        let FieldSource::Text(t) = &config.source else {
            return Err(FieldError::Config {
                field: "source".into(),
                message: "with_model needs a text source".into(),
            });
        };
        let device = sd.device;
        let objective = Objective::Text(Box::new(TextObjective::new(sd, t.clone())?));
        Self::with_objective(config, objective, device)
    }

    fn with_objective(
        config: FieldConfig,
        objective: Objective,
        device: Device,
    ) -> Result<Self, FieldError> {
        let cs = config.color_space();
        let grid = Grid::new(
            config.grid_start,
            cs,
            config.blob,
            config.density_scale,
            device,
        );
        let (background, learned) = match (&config.source, &objective) {
            (FieldSource::Views { .. }, Objective::Views(_)) => {
                let bg = match &config.source {
                    FieldSource::Views { dir, .. } => load_views(dir)?.background,
                    FieldSource::Text(_) => [1.0; 3],
                };
                (
                    Tensor::from_slice(&bg.map(|c| c as f32)).to_device(device),
                    false,
                )
            }
            _ => (
                Tensor::zeros([cs.channels()], (Kind::Float, device)).set_requires_grad(true),
                true,
            ),
        };
        let adam = FieldAdam::new(
            &grid,
            &background,
            [config.lr_density, config.lr_color, config.lr_background],
        );
        Ok(Self {
            config,
            grid,
            background,
            learned_background: learned,
            adam,
            step: 0,
            objective,
        })
    }

    /// The score-distillation guidance (text mode).
    pub(super) fn guidance(&self) -> Option<&SdGuidance> {
        match &self.objective {
            Objective::Text(t) => Some(&t.guidance),
            Objective::Views(_) => None,
        }
    }

    /// The score-distillation guidance, mutably (text mode).
    pub(super) fn guidance_mut(&mut self) -> Option<&mut SdGuidance> {
        match &mut self.objective {
            Objective::Text(t) => Some(&mut t.guidance),
            Objective::Views(_) => None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &FieldConfig {
        &self.config
    }

    /// The grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Steps completed.
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// Whether the planned steps are done.
    pub fn is_finished(&self) -> bool {
        self.step >= self.config.steps
    }

    /// Changes the planned number of steps (e.g. a resumed run asked for more).
    pub fn set_steps(&mut self, steps: usize) {
        self.config.steps = steps;
    }

    /// The background as rendered (activated when learned).
    fn background_values(&self) -> Tensor {
        if self.learned_background {
            self.grid.color_space.activate(&self.background)
        } else {
            self.background.shallow_clone()
        }
    }

    /// Number of text embeddings cached so far (text mode), for tests and logs.
    pub fn cached_prompts(&self) -> Option<usize> {
        match &self.objective {
            Objective::Text(t) => Some(t.cached_prompts()),
            Objective::Views(_) => None,
        }
    }

    /// One optimisation step (upsampling the grid first when the schedule says so).
    pub fn step(&mut self) -> Result<StepInfo, FieldError> {
        if self.step >= self.config.upsample_at && self.grid.resolution < self.config.grid {
            self.grid.upsample(self.config.grid);
            self.adam = FieldAdam::new(&self.grid, &self.background, self.adam.lrs);
        }
        let mut rng = Rng::for_step(self.config.seed, STREAM, self.step as u64);
        FieldAdam::zero_grad(&self.grid, &self.background);
        let bg = self.background_values();
        let samples = self.config.samples;
        let out: ObjectiveOutput = match &mut self.objective {
            Objective::Views(fit) => fit.loss(&self.grid, &bg, samples, &mut rng),
            Objective::Text(text) => {
                let cams: Vec<Camera> = (0..self.config.batch)
                    .map(|_| self.config.cameras.sample(&mut rng))
                    .collect();
                text.loss(
                    &self.grid,
                    &bg,
                    &cams,
                    samples,
                    self.step,
                    self.config.steps,
                    &mut rng,
                )?
            }
        };
        let mut terms = out.terms;
        let mut loss = out.loss;
        if self.config.tv_weight > 0.0 {
            let tv = self.grid.tv_loss(0.0);
            terms.push(("tv".into(), tv.double_value(&[])));
            loss += tv * self.config.tv_weight;
        }
        if self.config.emptiness_weight > 0.0 {
            let e = emptiness_loss(&out.render.weights, 10.0);
            terms.push(("emptiness".into(), e.double_value(&[])));
            loss += e * self.config.emptiness_weight;
        }
        loss.backward();
        let skipped =
            !FieldAdam::grads_finite(&self.grid, &self.background) || !out.value.is_finite();
        if !skipped {
            self.adam.step(&self.grid, &self.background);
        }
        self.step += 1;
        Ok(StepInfo {
            step: self.step,
            loss: out.value,
            terms,
            skipped,
        })
    }

    /// A preview from `camera` at `size²` pixels: straight RGBA8 (latents through the latent →
    /// RGB matrix), alpha the opacity.
    pub fn render_rgb(&self, camera: &Camera, size: u32) -> RgbaImage {
        let _g = tch::no_grad_guard();
        let bg = self.background_values();
        let out = render(
            &self.grid,
            &[*camera],
            i64::from(size.max(1)),
            self.config.samples,
            &bg,
            None,
        );
        let rgb = self.grid.color_space.to_rgb(&out.color, 1);
        let rgba = Tensor::cat(&[rgb, out.opacity.clamp(0.0, 1.0)], 1)
            .get(0)
            .permute([1, 2, 0])
            .contiguous();
        let data: Vec<u8> = Vec::try_from(
            (rgba * 255.0)
                .round()
                .to_kind(Kind::Uint8)
                .to_device(Device::Cpu)
                .view([-1]),
        )
        .unwrap_or_default();
        RgbaImage {
            width: size.max(1),
            height: size.max(1),
            data,
        }
    }

    /// A turntable strip: `n` views around the object (elevation 15°, distance 1.8, fov 50°)
    /// side by side, `size` pixels each, opaque over the background.
    pub fn turntable(&self, n: usize, size: u32) -> RgbaImage {
        let cams = turntable(n.max(1), 15.0, 1.8, 50.0);
        let (w, h) = (size as usize * cams.len(), size as usize);
        let mut data = vec![0u8; w * h * 4];
        for (k, cam) in cams.iter().enumerate() {
            let img = self.render_rgb(cam, size);
            for y in 0..h {
                let src = &img.data[y * h * 4..(y + 1) * h * 4];
                let dst = (y * w + k * h) * 4;
                data[dst..dst + h * 4].copy_from_slice(src);
            }
        }
        for px in data.chunks_exact_mut(4) {
            px[3] = 255;
        }
        RgbaImage {
            width: w as u32,
            height: h as u32,
            data,
        }
    }

    /// The surface at density `threshold` (see [`extract_mesh`]); no parts if nothing is above it.
    pub fn mesh(&self, threshold: f64) -> Mesh {
        extract_mesh(&self.grid, threshold)
    }

    /// The threshold whose surface has the right silhouettes: for 32 levels from 0.02 to 4
    /// (geometric) and then 12 finer ones around the best, the solid `density > level` is rendered hard from the training views (text
    /// mode: a turntable) and the level whose opacity differs least from the views' alpha (or,
    /// without alpha, from the field's own renders) wins. However soft the fitted density, the mesh then covers what
    /// the renders show.
    pub fn auto_threshold(&self) -> f64 {
        let _g = tch::no_grad_guard();
        let (cams, size) = match &self.objective {
            Objective::Views(fit) => (fit.cameras().to_vec(), fit.size.min(32)),
            Objective::Text(_) => (turntable(8, 15.0, 1.8, 50.0), 32),
        };
        let bg = self.background_values();
        let samples = self.config.samples.max(64);
        // The silhouettes to match: the images' alpha (views with alpha), else the field's own.
        let soft = match &self.objective {
            Objective::Views(fit) if fit.size <= 32 && fit.alpha().is_some() => {
                fit.alpha().map(Tensor::shallow_clone).unwrap_or_default()
            }
            _ => render(&self.grid, &cams, size, samples, &bg, None).opacity,
        };
        let density = self.grid.density_values();
        let n = self.grid.resolution;
        let no_bias = Blob {
            strength: 0.0,
            radius: 1.0,
        };
        let mut best = (f64::INFINITY, 1.0);
        // A coarse geometric sweep (steps of ×1.19), then a fine one around its best level (steps of
        // ×1.015): on a soft density one coarse step moves the surface by a good part of a voxel.
        let coarse = (4.0f64 / 0.02).powf(1.0 / 31.0);
        let mut levels: Vec<f64> = (0..32).map(|k| 0.02 * coarse.powi(k)).collect();
        let mut fine_done = false;
        let mut k = 0;
        while k < levels.len() {
            let level = levels[k];
            k += 1;
            // Crosses 0 where the density crosses the level (where surface nets put the
            // surface), steeply: a hard solid bounded by that surface.
            let raw = ((&density - level) * (30.0 / level))
                .clamp(-30.0, 30.0)
                .view([1, 1, n, n, n]);
            let color = self.grid.color.detach();
            let Ok(hard) = Grid::from_tensors(raw, color, self.grid.color_space, no_bias, 1000.0)
            else {
                continue;
            };
            let out = render(&hard, &cams, size, samples, &bg, None);
            let err = (&out.opacity - &soft)
                .abs()
                .mean(Kind::Float)
                .double_value(&[]);
            if err < best.0 {
                best = (err, level);
            }
            if k == levels.len() && !fine_done {
                fine_done = true;
                let b = best.1;
                levels.extend(
                    (-6..=6)
                        .filter(|i| *i != 0)
                        .map(|i| b * coarse.powf(f64::from(i) / 12.0)),
                );
            }
        }
        best.1
    }

    /// The surface at the configured threshold, or at [`FieldRun::auto_threshold`]; with the
    /// threshold used.
    pub fn surface(&self) -> (Mesh, f64) {
        let t = self
            .config
            .mesh_threshold
            .unwrap_or_else(|| self.auto_threshold());
        (self.mesh(t), t)
    }
}
