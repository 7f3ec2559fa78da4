//! The optimisation loop: vector particles from a parameter view, rendered, guided, updated.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use vecdream_core::{Document, ParamView, ShapeId};

use super::DistillError;
use super::adam::{AdamConfig, MaskedAdam, bool_mask, zero_grads};
use super::guidance::{Guidance, StepCtx};
use super::reward::{Reward, reward_weights};
use super::schedule::LrSchedule;
use crate::raster::{RasterOptions, Scene, SceneParams, rasterize};
use crate::rng::Rng;

/// Random streams of a run (see [`Rng::for_step`]).
pub(crate) const STREAM_INIT: u64 = 1;
pub(crate) const STREAM_GUIDANCE: u64 = 2;

/// Which parameter groups are optimised (a group that is off keeps its values).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimise {
    /// Control points.
    pub points: bool,
    /// Fill colours (RGBA).
    pub fill: bool,
    /// Stroke colours (RGBA).
    pub stroke: bool,
    /// Stroke widths.
    pub width: bool,
    /// The background colour.
    pub background: bool,
}

impl Default for Optimise {
    fn default() -> Self {
        Self {
            points: true,
            fill: true,
            stroke: true,
            width: true,
            background: false,
        }
    }
}

/// Learning rates (SVGDreamer's defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrConfig {
    /// Control points, in pixels of a `points_reference_px` canvas per step (1.0).
    pub points: f64,
    /// Multiplier schedule of the points' rate (warm-up 0.02 → 0.9 over 10 steps, cosine to 0.4).
    pub points_schedule: LrSchedule,
    /// Colours (0.01 per step, in `[0, 1]` units).
    pub color: f64,
    /// Stroke widths, in pixels of a `points_reference_px` canvas (0.1).
    pub width: f64,
    /// Background colour (0.01).
    pub background: f64,
    /// Canvas size the point and width rates are expressed for (SVGDreamer's 600 px): on a
    /// canvas whose longer side is L document units they are multiplied by L / 600.
    pub points_reference_px: f64,
}

impl Default for LrConfig {
    fn default() -> Self {
        Self {
            points: 1.0,
            points_schedule: LrSchedule::svgdreamer_points(),
            color: 0.01,
            width: 0.1,
            background: 0.01,
            points_reference_px: 600.0,
        }
    }
}

/// How a reward acts on the particles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RewardMode {
    /// Particle weights `B · softmax(r / temperature)` multiply each particle's gradient and its
    /// share of φ (VPSD).
    Reweight {
        /// Softmax temperature (in reward units).
        temperature: f64,
    },
    /// The lowest-scoring particle is replaced by a copy of the best one (optimiser state too).
    Resample,
}

/// Reward feedback settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardConfig {
    /// Score the particles every this many steps.
    pub every: usize,
    /// What the scores do.
    pub mode: RewardMode,
}

/// Settings of a distillation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// Seed of every random draw of the run.
    pub seed: u64,
    /// Planned number of steps (schedules are laid out over it).
    pub steps: usize,
    /// Number of particles K.
    pub particles: usize,
    /// Render size in pixels of the canvas' longer side.
    pub render_size: usize,
    /// Learning rates.
    pub lr: LrConfig,
    /// Optimiser hyper-parameters (Adam (0.9, 0.9), ε 1e-6).
    pub adam: AdamConfig,
    /// Which groups are optimised.
    pub optimise: Optimise,
    /// Standard deviation (document units) of a per-particle jitter added to trainable control
    /// points at the start (0: all particles start identical).
    pub init_jitter: f32,
    /// Reward feedback (off when `None`).
    pub reward: Option<RewardConfig>,
    /// Colour a transparent canvas is rendered over (white).
    pub background_rgb: [f32; 3],
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            steps: 500,
            particles: 4,
            render_size: 64,
            lr: LrConfig::default(),
            adam: AdamConfig::default(),
            optimise: Optimise::default(),
            init_jitter: 0.0,
            reward: None,
            background_rgb: [1.0, 1.0, 1.0],
        }
    }
}

/// What one call of [`Distiller::step`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// Steps completed after this one.
    pub step: usize,
    /// The guidance's loss value.
    pub loss: f64,
    /// Extra named numbers.
    pub terms: Vec<(String, f64)>,
    /// Particles that got a gradient.
    pub guided: Vec<usize>,
    /// `Some(reason)` when the update was skipped (non-finite loss, gradient or result).
    pub skipped: Option<String>,
}

/// One particle's picture: straight RGBA8, row-major, `width × height`.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Particle index.
    pub particle: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 4` bytes.
    pub rgba: Vec<u8>,
}

/// K vector particles of one document optimised under a [`Guidance`].
pub struct Distiller {
    pub(crate) config: DistillConfig,
    pub(crate) view: ParamView,
    pub(crate) scene: Scene,
    pub(crate) params: SceneParams,
    pub(crate) adam: MaskedAdam,
    pub(crate) guidance: Box<dyn Guidance>,
    pub(crate) reward: Option<Box<dyn Reward>>,
    pub(crate) weights: Option<Vec<f64>>,
    pub(crate) step: usize,
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) raster: RasterOptions,
    last_images: Option<Tensor>,
}

impl std::fmt::Debug for Distiller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distiller")
            .field("guidance", &self.guidance.name())
            .field("step", &self.step)
            .field("particles", &self.config.particles)
            .field("size", &(self.width, self.height))
            .finish_non_exhaustive()
    }
}

/// Output size for a canvas with `size` pixels on its longer side.
fn render_dims(canvas: [f32; 2], size: usize) -> (usize, usize) {
    let [cw, ch] = canvas;
    if cw >= ch {
        (size, ((size as f32 * ch / cw).round() as usize).max(1))
    } else {
        (((size as f32 * cw / ch).round() as usize).max(1), size)
    }
}

fn check_config(c: &DistillConfig) -> Result<(), DistillError> {
    let bad = |field: &str, message: String| {
        Err(DistillError::Config {
            field: field.into(),
            message,
        })
    };
    if !(1..=256).contains(&c.particles) {
        return bad("particles", format!("{}: expected 1..=256", c.particles));
    }
    if !(8..=4096).contains(&c.render_size) {
        return bad(
            "render_size",
            format!("{}: expected 8..=4096 pixels", c.render_size),
        );
    }
    if !(c.init_jitter.is_finite() && c.init_jitter >= 0.0) {
        return bad("init_jitter", format!("{}: expected ≥ 0", c.init_jitter));
    }
    for (name, v) in [
        ("lr.points", c.lr.points),
        ("lr.color", c.lr.color),
        ("lr.width", c.lr.width),
        ("lr.background", c.lr.background),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return bad(name, format!("{v}: expected a finite rate ≥ 0"));
        }
    }
    if let Some(r) = &c.reward
        && r.every == 0
    {
        return bad("reward.every", "0: expected ≥ 1".into());
    }
    Ok(())
}

impl Distiller {
    /// K particles that start as copies of `view` (plus `init_jitter`), guided by `guidance`.
    pub fn new(
        view: &ParamView,
        config: DistillConfig,
        guidance: Box<dyn Guidance>,
        device: Device,
    ) -> Result<Self, DistillError> {
        check_config(&config)?;
        let scene = Scene::from_view(view)?;
        let mut params = SceneParams::from_view(view, config.particles, device)?.to_leaves();
        // Distillation trains points, colours and widths; the axes and colour changes of
        // gradient fills stay as they are (rendered, not optimised).
        params.fill_gradient = params.fill_gradient.map(|g| g.detach());
        if config.init_jitter > 0.0 {
            let mask = bool_mask(
                &view.point_mask(),
                &[1, view.points.len() as i64, 1],
                device,
            );
            let mut rng = Rng::for_step(config.seed, STREAM_INIT, 0);
            let noise =
                rng.normal_tensor(&params.points.size(), device) * f64::from(config.init_jitter);
            let _g = tch::no_grad_guard();
            let mut pts = params.points.detach();
            let jittered = (&pts + noise).where_self(&mask, &pts);
            pts.copy_(&jittered);
        }
        let (width, height) = render_dims(view.canvas, config.render_size);
        let adam = MaskedAdam::new(config.adam.clone(), &params.tensors(), Vec::new());
        let mut d = Self {
            config,
            view: view.clone(),
            scene,
            params,
            adam,
            guidance,
            reward: None,
            weights: None,
            step: 0,
            width,
            height,
            raster: RasterOptions::default(),
            last_images: None,
        };
        d.update_masks();
        Ok(d)
    }

    /// Adds a reward model (used when `config.reward` is set).
    pub fn with_reward(mut self, reward: Box<dyn Reward>) -> Self {
        self.reward = Some(reward);
        self
    }

    /// The run's settings.
    pub fn config(&self) -> &DistillConfig {
        &self.config
    }

    /// Steps completed.
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// Whether the planned number of steps is done.
    pub fn is_finished(&self) -> bool {
        self.step >= self.config.steps
    }

    /// The particles' parameter tensors (leaves; `[B, …]`).
    pub fn params(&self) -> &SceneParams {
        &self.params
    }

    /// The template view (topology, locks, ids).
    pub fn view(&self) -> &ParamView {
        &self.view
    }

    /// The guidance.
    pub fn guidance(&self) -> &dyn Guidance {
        self.guidance.as_ref()
    }

    /// Render size `(width, height)` in pixels.
    pub fn render_size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Current reward weights of the particles, if a reward re-weights them.
    pub fn weights(&self) -> Option<&[f64]> {
        self.weights.as_deref()
    }

    /// Masks the optimiser with the view's locks and the `optimise` switches.
    fn update_masks(&mut self) {
        let dev = self.params.device();
        let s = self.view.slots.len() as i64;
        let p = self.view.points.len() as i64;
        let slot_mask = self.view.slot_mask();
        self.adam
            .set_mask(0, Some(bool_mask(&self.view.point_mask(), &[1, p, 1], dev)));
        self.adam
            .set_mask(1, Some(bool_mask(&slot_mask, &[1, s, 1], dev)));
        self.adam
            .set_mask(2, Some(bool_mask(&slot_mask, &[1, s, 1], dev)));
        self.adam
            .set_mask(3, Some(bool_mask(&slot_mask, &[1, s], dev)));
        self.adam.set_mask(4, None);
    }

    /// Learning rates of (points, fill, stroke, width, background) at the current step.
    fn learning_rates(&self) -> [f64; 5] {
        let c = &self.config;
        let canvas = self.view.canvas[0].max(self.view.canvas[1]) as f64;
        let unit = canvas / c.lr.points_reference_px;
        let on = |b: bool, v: f64| if b { v } else { 0.0 };
        [
            on(
                c.optimise.points,
                c.lr.points * unit * c.lr.points_schedule.factor(self.step, c.steps),
            ),
            on(c.optimise.fill, c.lr.color),
            on(c.optimise.stroke, c.lr.color),
            on(c.optimise.width, c.lr.width * unit),
            on(c.optimise.background, c.lr.background),
        ]
    }

    /// Renders every particle `[B, 3, H, W]` over the background colour (with autograd).
    pub fn render(&self) -> Result<Tensor, DistillError> {
        let r = rasterize(
            &self.scene,
            &self.params,
            self.width,
            self.height,
            &self.raster,
        )?;
        Ok(r.over(self.config.background_rgb))
    }

    /// One optimisation step. Non-finite losses, gradients or results skip the update (the
    /// parameters keep their last good values) and say why in [`StepReport::skipped`].
    pub fn step(&mut self) -> Result<StepReport, DistillError> {
        let owned: Vec<Tensor> = self
            .params
            .tensors()
            .iter()
            .map(|t| t.shallow_clone())
            .collect();
        let tensors: Vec<&Tensor> = owned.iter().collect();
        zero_grads(&tensors);
        let images = self.render()?;
        self.last_images = Some(images.detach());
        self.apply_reward(&images)?;
        let mut rng = Rng::for_step(self.config.seed, STREAM_GUIDANCE, self.step as u64);
        let mut ctx = StepCtx {
            step: self.step,
            total_steps: self.config.steps,
            rng: &mut rng,
            weights: self.weights.as_deref(),
        };
        let out = self.guidance.loss(&images, &mut ctx)?;
        let lrs = self.learning_rates();
        self.step += 1;
        let mut report = StepReport {
            step: self.step,
            loss: out.value,
            terms: out.terms,
            guided: out.guided,
            skipped: None,
        };
        let loss_ok = out.value.is_finite() && out.loss.isfinite().all().int64_value(&[]) != 0;
        if !loss_ok {
            report.skipped = Some(format!("non-finite loss ({})", out.value));
            return Ok(report);
        }
        out.loss.backward();
        if !MaskedAdam::grads_finite(&tensors) {
            zero_grads(&tensors);
            report.skipped = Some("non-finite gradient".into());
            return Ok(report);
        }
        let backup: Vec<Tensor> = tensors.iter().map(|t| t.detach().copy()).collect();
        let adam_backup = self.adam.snapshot();
        self.adam.step(&tensors, &lrs);
        self.clamp_values();
        let finite = tensors
            .iter()
            .all(|t| t.isfinite().all().int64_value(&[]) != 0);
        if !finite {
            let _g = tch::no_grad_guard();
            for (t, b) in tensors.iter().zip(&backup) {
                t.detach().copy_(b);
            }
            self.adam.restore(adam_backup);
            report.skipped = Some("non-finite parameters after the update".into());
        }
        Ok(report)
    }

    /// Colours into `[0, 1]`, widths ≥ 0 (trainable entries only, so locked values stay exact).
    fn clamp_values(&mut self) {
        let _g = tch::no_grad_guard();
        let dev = self.params.device();
        let s = self.view.slots.len() as i64;
        let slot_mask = self.view.slot_mask();
        let m3 = bool_mask(&slot_mask, &[1, s, 1], dev);
        let m2 = bool_mask(&slot_mask, &[1, s], dev);
        for (t, m, lo, hi) in [
            (&self.params.fill, &m3, 0.0, 1.0),
            (&self.params.stroke, &m3, 0.0, 1.0),
            (&self.params.stroke_width, &m2, 0.0, f64::INFINITY),
        ] {
            let mut d = t.detach();
            let c = d.clamp(lo, hi).where_self(m, &d);
            d.copy_(&c);
        }
        let mut bg = self.params.background.detach();
        let c = bg.clamp(0.0, 1.0);
        bg.copy_(&c);
    }

    fn apply_reward(&mut self, images: &Tensor) -> Result<(), DistillError> {
        let (Some(cfg), Some(reward)) = (self.config.reward.clone(), self.reward.as_mut()) else {
            return Ok(());
        };
        if !self.step.is_multiple_of(cfg.every) {
            return Ok(());
        }
        let scores = tch::no_grad(|| reward.score(&images.detach()))?;
        if scores.iter().any(|s| !s.is_finite()) {
            return Ok(()); // keep the previous weights
        }
        match cfg.mode {
            RewardMode::Reweight { temperature } => {
                self.weights = Some(reward_weights(&scores, temperature));
            }
            RewardMode::Resample => {
                let best = argmax(&scores);
                let worst = argmax(&scores.iter().map(|s| -s).collect::<Vec<_>>());
                if best != worst {
                    self.copy_particle(best, worst);
                }
            }
        }
        Ok(())
    }

    /// Overwrites particle `dst` (parameters and optimiser moments) with particle `src`.
    pub fn copy_particle(&mut self, src: usize, dst: usize) {
        let _g = tch::no_grad_guard();
        let b = self.config.particles;
        if src >= b || dst >= b || src == dst {
            return;
        }
        let copy_row = |t: &Tensor| {
            let row = t.detach().narrow(0, src as i64, 1).copy();
            t.detach().narrow(0, dst as i64, 1).copy_(&row);
        };
        for t in self.params.tensors() {
            copy_row(t);
        }
        for (m, v) in self.adam.moments() {
            copy_row(m);
            copy_row(v);
        }
    }

    /// The latest rendered particles as RGBA8 frames (rendered now if no step ran yet).
    pub fn frames(&mut self) -> Result<Vec<Frame>, DistillError> {
        let images = match &self.last_images {
            Some(i) => i.shallow_clone(),
            None => tch::no_grad(|| self.render())?.detach(),
        };
        Ok(to_frames(&images))
    }

    /// Renders the current parameters as RGBA8 frames.
    pub fn render_frames(&self) -> Result<Vec<Frame>, DistillError> {
        let images = tch::no_grad(|| self.render())?;
        Ok(to_frames(&images))
    }

    /// Particle `i` as a parameter view (every slot written; locked ones hold their old values).
    pub fn particle_view(&self, i: usize) -> Result<ParamView, DistillError> {
        let mut v = self.view.clone();
        self.params.write_back(i, &mut v)?;
        Ok(v)
    }

    /// Writes particle `i` into `doc` (only its trainable shapes change; nothing non-finite is
    /// ever written: core refuses it and the document is left as it was).
    pub fn write_into(&self, i: usize, doc: &mut Document) -> Result<(), DistillError> {
        let v = self.particle_view(i)?;
        doc.apply_param_view(&v)
            .map_err(|source| DistillError::Param {
                particle: i,
                source,
            })
    }

    /// Changes a named setting: `lr_points`, `lr_color`, `lr_width`, `steps`, or anything the
    /// guidance knows (`cfg`, `t_min`, `t_max`, …). `Ok(false)` if nobody knows the name.
    pub fn set_param(&mut self, name: &str, value: f64) -> Result<bool, DistillError> {
        let check = |v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(DistillError::Config {
                    field: name.into(),
                    message: format!("{v}: expected a finite value ≥ 0"),
                })
            }
        };
        match name {
            "lr_points" => self.config.lr.points = check(value)?,
            "lr_color" => self.config.lr.color = check(value)?,
            "lr_width" => self.config.lr.width = check(value)?,
            "steps" => self.config.steps = check(value)?.round() as usize,
            _ => return self.guidance.set_param(name, value),
        }
        Ok(true)
    }

    /// Locks or unlocks shapes (by id). Locked shapes keep their current values.
    pub fn set_locks(&mut self, locks: &[(ShapeId, bool)]) -> Result<(), DistillError> {
        for &(id, locked) in locks {
            if let Some(i) = self.view.slot_of(id) {
                self.view.slots[i].locked = locked;
            }
        }
        self.scene = Scene::from_view(&self.view)?;
        self.update_masks();
        Ok(())
    }

    /// Takes a new document state. With the same topology (slots, point counts) the trainable
    /// shapes keep their optimised values in every particle, the others take the new values;
    /// otherwise the particles restart from the new view with a fresh optimiser.
    pub fn replace_view(&mut self, view: &ParamView) -> Result<(), DistillError> {
        let same =
            view.points.len() == self.view.points.len()
                && view.slots.len() == self.view.slots.len()
                && view.slots.iter().zip(&self.view.slots).all(|(a, b)| {
                    a.shape == b.shape && a.kind == b.kind && a.subpaths == b.subpaths
                });
        let scene = Scene::from_view(view)?;
        let dev = self.params.device();
        let fresh = SceneParams::from_view(view, self.config.particles, dev)?;
        if same {
            let _g = tch::no_grad_guard();
            let s = view.slots.len() as i64;
            let p = view.points.len() as i64;
            let sm = view.slot_mask();
            let masks = [
                bool_mask(&view.point_mask(), &[1, p, 1], dev),
                bool_mask(&sm, &[1, s, 1], dev),
                bool_mask(&sm, &[1, s, 1], dev),
                bool_mask(&sm, &[1, s], dev),
                bool_mask(&[self.config.optimise.background], &[1, 1], dev),
            ];
            for ((cur, new), m) in self
                .params
                .tensors()
                .iter()
                .zip(fresh.tensors())
                .zip(&masks)
            {
                let mut d = cur.detach();
                let merged = d.where_self(m, new);
                d.copy_(&merged);
            }
        } else {
            self.params = fresh.to_leaves();
            self.adam =
                MaskedAdam::new(self.config.adam.clone(), &self.params.tensors(), Vec::new());
            self.width = render_dims(view.canvas, self.config.render_size).0;
            self.height = render_dims(view.canvas, self.config.render_size).1;
        }
        self.view = view.clone();
        self.scene = scene;
        self.last_images = None;
        self.update_masks();
        Ok(())
    }
}

fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv { (i, x) } else { (bi, bv) }
        })
        .0
}

/// `[B, 3, H, W]` in `[0, 1]` → opaque RGBA8 frames.
pub(crate) fn to_frames(images: &Tensor) -> Vec<Frame> {
    let size = images.size();
    let (b, h, w) = (size[0], size[2], size[3]);
    let bytes = (images.detach().to_device(Device::Cpu).clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8);
    let alpha = Tensor::full([b, 1, h, w], 255, (Kind::Uint8, Device::Cpu));
    let rgba = Tensor::cat(&[bytes, alpha], 1)
        .permute([0, 2, 3, 1])
        .contiguous();
    (0..b)
        .map(|i| {
            let one = rgba.get(i).flatten(0, -1);
            let n = (h * w * 4) as usize;
            let mut data = vec![0u8; n];
            one.copy_data(&mut data, n);
            Frame {
                particle: i as usize,
                width: w as usize,
                height: h as usize,
                rgba: data,
            }
        })
        .collect()
}
