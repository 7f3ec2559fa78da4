//! The optimisation loop: vector particles from a parameter view, rendered, guided, updated.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use vecdream_core::{Document, ParamView, ShapeId};

use super::DistillError;
use super::adam::{AdamConfig, MaskedAdam, bool_mask, zero_grads};
use super::guidance::{Guidance, StepCtx};
use super::reward::{Reward, reward_weights};
use super::schedule::LrSchedule;
use crate::raster::{Engine, NativeRender, RasterOptions, Scene, SceneParams, rasterize_with};
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
    /// Style constraints on colours and widths.
    #[serde(default)]
    pub constraints: Constraints,
    /// Adaptive primitive control: prune faded or tiny shapes and add new ones where the render
    /// disagrees most with the guidance's target (off when `None`).
    #[serde(default)]
    pub adaptive: Option<super::adaptive::AdaptiveConfig>,
    /// Weight of the object-region loss (0: off): each object's trainable control points are
    /// pulled back when they leave the (dilated) region the object covered at the start, so
    /// objects do not drift into each other.
    #[serde(default)]
    pub region_weight: f64,
}

/// Limits a style puts on colours and widths; they hold after every step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    /// Fills and strokes show the nearest of these colours (`[0, 1]` RGB). The optimiser moves
    /// a free colour through a straight-through estimator; renders and exports use its snapped
    /// palette colour exactly. Empty: free colours.
    pub palette: Vec<[f32; 3]>,
    /// Stroke widths are kept in `[min, max]` (document units).
    pub width_range: Option<[f32; 2]>,
    /// Only the stroke opacity is trained; its colour stays (ink & wash stays black).
    pub stroke_alpha_only: bool,
    /// Fill opacity is never trained (pixel-art cells stay opaque).
    #[serde(default)]
    pub fill_alpha_fixed: bool,
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
            constraints: Constraints::default(),
            adaptive: None,
            region_weight: 0.0,
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

/// Particles that share one topology: one document, one scene and `[b, …]` parameters
/// optimised together. A run holds one group for all particles when they start from the same
/// document, or one group per particle when each starts from its own (its own sample).
pub(crate) struct Group {
    /// The group's document: names, hierarchy, locks (its numbers are the start values).
    pub(crate) doc: Document,
    /// Its parameter view (topology, ids, locks).
    pub(crate) view: ParamView,
    pub(crate) scene: Scene,
    /// `[b, …]` leaves.
    pub(crate) params: SceneParams,
    pub(crate) adam: MaskedAdam,
    /// Per trainable point, the object-region penalty field it is held in (see `region.rs`).
    pub(crate) region: Option<super::region::RegionField>,
}

impl Group {
    /// Particles in the group.
    pub(crate) fn len(&self) -> usize {
        self.params.batch()
    }

    pub(crate) fn tensors(&self) -> Vec<Tensor> {
        self.params
            .tensors()
            .iter()
            .map(|t| t.shallow_clone())
            .collect()
    }
}

/// K vector particles optimised under a [`Guidance`].
pub struct Distiller {
    pub(crate) config: DistillConfig,
    pub(crate) groups: Vec<Group>,
    pub(crate) guidance: Box<dyn Guidance>,
    pub(crate) reward: Option<Box<dyn Reward>>,
    pub(crate) weights: Option<Vec<f64>>,
    pub(crate) step: usize,
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) raster: RasterOptions,
    pub(crate) last_images: Option<Tensor>,
    /// Shape count of every particle after the last adaptive round (or the start).
    pub(crate) shape_counts: Vec<usize>,
    /// The caller's description of the run (e.g. command-line flags), saved in checkpoints.
    pub(crate) settings: Vec<(String, String)>,
}

impl std::fmt::Debug for Distiller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distiller")
            .field("guidance", &self.guidance.name())
            .field("step", &self.step)
            .field("particles", &self.config.particles)
            .field("groups", &self.groups.len())
            .field("size", &(self.width, self.height))
            .finish_non_exhaustive()
    }
}

/// Output size for a canvas with `size` pixels on its longer side.
pub(crate) fn render_dims(canvas: [f32; 2], size: usize) -> (usize, usize) {
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
        ("region_weight", c.region_weight),
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
    if let Some([lo, hi]) = c.constraints.width_range
        && !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi)
    {
        return bad(
            "constraints.width_range",
            format!("[{lo}, {hi}]: expected 0 ≤ min ≤ max"),
        );
    }
    if c.constraints.palette.len() > 256
        || c.constraints
            .palette
            .iter()
            .flatten()
            .any(|v| !(0.0..=1.0).contains(v))
    {
        return bad(
            "constraints.palette",
            "expected at most 256 colours with channels in [0, 1]".into(),
        );
    }
    if let Some(a) = &c.adaptive {
        a.check()?;
    }
    Ok(())
}

impl Distiller {
    /// K particles that start as copies of `doc` (plus `init_jitter`), guided by `guidance`.
    pub fn new(
        doc: &Document,
        config: DistillConfig,
        guidance: Box<dyn Guidance>,
        device: Device,
    ) -> Result<Self, DistillError> {
        Self::from_starts(vec![doc.clone()], config, guidance, device)
    }

    /// Particles that start from `starts`: one document shared by every particle, or one per
    /// particle (each its own topology and hierarchy, e.g. its own vectorised sample). All
    /// documents must have the same canvas size. Give them disjoint ids
    /// ([`Document::offset_ids`]) so a lock or an edit reaches exactly one particle.
    pub fn from_starts(
        starts: Vec<Document>,
        config: DistillConfig,
        guidance: Box<dyn Guidance>,
        device: Device,
    ) -> Result<Self, DistillError> {
        check_config(&config)?;
        let k = config.particles;
        if starts.len() != 1 && starts.len() != k {
            return Err(DistillError::Config {
                field: "starts".into(),
                message: format!(
                    "{} start documents for {k} particles: expected 1 or {k}",
                    starts.len()
                ),
            });
        }
        let canvas = [starts[0].width as f32, starts[0].height as f32];
        if let Some((i, d)) = starts
            .iter()
            .enumerate()
            .find(|(_, d)| [d.width as f32, d.height as f32] != canvas)
        {
            return Err(DistillError::Config {
                field: "starts".into(),
                message: format!(
                    "start document {i} is {}×{}, document 0 is {}×{}: every particle needs the same canvas",
                    d.width, d.height, canvas[0], canvas[1]
                ),
            });
        }
        let per_group = if starts.len() == 1 { k } else { 1 };
        let mut groups = Vec::with_capacity(starts.len());
        for (j, doc) in starts.into_iter().enumerate() {
            let mut g = Self::build_group(doc, per_group, &config, device)?;
            if config.init_jitter > 0.0 {
                jitter(&mut g, &config, j as u64);
            }
            groups.push(g);
        }
        let (width, height) = render_dims(canvas, config.render_size);
        let mut d = Self {
            config,
            groups,
            guidance,
            reward: None,
            weights: None,
            step: 0,
            width,
            height,
            raster: RasterOptions::default(),
            last_images: None,
            shape_counts: Vec::new(),
            settings: Vec::new(),
        };
        d.refresh_shape_counts();
        if d.config.region_weight > 0.0 {
            d.rebuild_regions()?;
        }
        Ok(d)
    }

    /// A group of `b` copies of `doc` with a fresh optimiser and masks.
    pub(crate) fn build_group(
        doc: Document,
        b: usize,
        config: &DistillConfig,
        device: Device,
    ) -> Result<Group, DistillError> {
        let view = doc.param_view();
        let scene = Scene::from_view(&view)?;
        let mut params = SceneParams::from_view(&view, b, device)?.to_leaves();
        // Distillation trains points, colours and widths; the axes and colour changes of
        // gradient fills stay as they are (rendered, not optimised).
        params.fill_gradient = params.fill_gradient.map(|g| g.detach());
        let adam = MaskedAdam::new(config.adam.clone(), &params.tensors(), Vec::new());
        let mut g = Group {
            doc,
            view,
            scene,
            params,
            adam,
            region: None,
        };
        set_masks(&mut g, config);
        Ok(g)
    }

    /// Adds a reward model (used when `config.reward` is set).
    pub fn with_reward(mut self, reward: Box<dyn Reward>) -> Self {
        self.reward = Some(reward);
        self
    }

    /// Records how the caller made this run (`(name, value)` pairs, e.g. command-line flags); saved
    /// in checkpoints and restored by [`Distiller::resume`], so a caller can refuse to resume a run
    /// made with other settings.
    pub fn set_settings(&mut self, settings: Vec<(String, String)>) {
        self.settings = settings;
    }

    /// What [`Distiller::set_settings`] recorded (empty if nothing, or for older checkpoints).
    pub fn settings(&self) -> &[(String, String)] {
        &self.settings
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

    /// The parameter tensors (leaves; `[b, …]`) of the first group: every particle's when they
    /// share one start document.
    pub fn params(&self) -> &SceneParams {
        &self.groups[0].params
    }

    /// The parameter view (topology, locks, ids) of the first group.
    pub fn view(&self) -> &ParamView {
        &self.groups[0].view
    }

    /// Number of particle groups (1 when every particle started from the same document).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Shapes per particle (after the last adaptive round).
    pub fn shape_counts(&self) -> &[usize] {
        &self.shape_counts
    }

    pub(crate) fn refresh_shape_counts(&mut self) {
        self.shape_counts = self
            .groups
            .iter()
            .flat_map(|g| std::iter::repeat_n(g.view.slots.len(), g.len()))
            .collect();
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

    /// `(group, row)` of particle `i`.
    pub(crate) fn locate(&self, i: usize) -> Option<(usize, usize)> {
        let mut first = 0;
        for (j, g) in self.groups.iter().enumerate() {
            if i < first + g.len() {
                return Some((j, i - first));
            }
            first += g.len();
        }
        None
    }

    /// Learning rates of (points, fill, stroke, width, background) at the current step.
    fn learning_rates(&self) -> [f64; 5] {
        let c = &self.config;
        let canvas = f64::from(self.groups[0].view.canvas[0].max(self.groups[0].view.canvas[1]));
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

    /// Renders every particle `[B, 3, H, W]` over the background colour. On the CPU the
    /// native kernel renders and the image's graph ends at its leaf render (gradients reach
    /// the parameters only through [`Distiller::step`]); on CUDA it carries autograd to them.
    pub fn render(&self) -> Result<Tensor, DistillError> {
        Ok(self.render_for_backward()?.0)
    }

    /// [`Distiller::render`] and the renders whose `finish_backward` must follow the loss's
    /// `backward()` (the native kernel's second phase).
    fn render_for_backward(&self) -> Result<(Tensor, Vec<NativeRender>), DistillError> {
        let mut parts = Vec::with_capacity(self.groups.len());
        let mut renders = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let shown = self.shown_params(&g.params);
            let r = rasterize_with(
                &g.scene,
                &shown,
                self.width,
                self.height,
                &self.raster,
                Engine::Auto,
            )?;
            parts.push(r.rendered.over(self.config.background_rgb));
            renders.push(r);
        }
        let images = if parts.len() == 1 {
            parts
                .pop()
                .unwrap_or_else(|| Tensor::zeros([0], (Kind::Float, Device::Cpu)))
        } else {
            Tensor::cat(&parts, 0)
        };
        Ok((images, renders))
    }

    /// The numbers as rendered: with a palette, colours snapped to it (straight-through, so the
    /// gradient reaches the free colours); otherwise the parameters themselves.
    fn shown_params(&self, p: &SceneParams) -> SceneParams {
        let palette = &self.config.constraints.palette;
        if palette.is_empty() {
            return p.map(|t| t.shallow_clone());
        }
        let pal = palette_tensor(palette, p.device());
        SceneParams {
            points: p.points.shallow_clone(),
            fill: snap_straight_through(&p.fill, &pal),
            stroke: snap_straight_through(&p.stroke, &pal),
            stroke_width: p.stroke_width.shallow_clone(),
            background: p.background.shallow_clone(),
            fill_gradient: p.fill_gradient.as_ref().map(|t| t.shallow_clone()),
        }
    }

    /// One optimisation step. Non-finite losses, gradients or results skip the update (the
    /// parameters keep their last good values) and say why in [`StepReport::skipped`].
    ///
    /// A failed allocation (CUDA or CPU, returned or panicking inside libtorch) becomes
    /// [`DistillError::OutOfMemory`], which names the remedy; the run should then be dropped.
    pub fn step(&mut self) -> Result<StepReport, DistillError> {
        let oom = |message: String| DistillError::OutOfMemory {
            message: crate::faults::summary(&message),
        };
        let device = self
            .groups
            .first()
            .map_or(tch::Device::Cpu, |g| g.params.tensors()[0].device());
        crate::faults::inject(self.step, device).map_err(|e| oom(e.to_string()))?;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step_unguarded())) {
            Ok(Err(DistillError::Torch(e))) if crate::faults::is_out_of_memory(&e.to_string()) => {
                Err(oom(e.to_string()))
            }
            Ok(r) => r,
            Err(p) => {
                let message = crate::faults::panic_message(p.as_ref());
                if crate::faults::is_out_of_memory(&message) {
                    Err(oom(message))
                } else {
                    std::panic::resume_unwind(p)
                }
            }
        }
    }

    fn step_unguarded(&mut self) -> Result<StepReport, DistillError> {
        let owned: Vec<Vec<Tensor>> = self.groups.iter().map(Group::tensors).collect();
        let all: Vec<&Tensor> = owned.iter().flatten().collect();
        zero_grads(&all);
        let (images, renders) = self.render_for_backward()?;
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
        let mut loss = out.loss;
        if self.config.region_weight > 0.0 {
            let (region, value) = self.region_loss()?;
            report.terms.push(("region".into(), value));
            loss += region;
        }
        let loss_ok = out.value.is_finite() && loss.isfinite().all().int64_value(&[]) != 0;
        if !loss_ok {
            report.skipped = Some(format!("non-finite loss ({})", out.value));
            return Ok(report);
        }
        loss.backward();
        for r in &renders {
            r.finish_backward()?;
        }
        if !MaskedAdam::grads_finite(&all) {
            zero_grads(&all);
            report.skipped = Some("non-finite gradient".into());
            return Ok(report);
        }
        let backup: Vec<Tensor> = all.iter().map(|t| t.detach().copy()).collect();
        let adam_backup: Vec<_> = self.groups.iter().map(|g| g.adam.snapshot()).collect();
        for (g, tensors) in self.groups.iter_mut().zip(&owned) {
            let refs: Vec<&Tensor> = tensors.iter().collect();
            g.adam.step(&refs, &lrs);
        }
        self.clamp_values();
        let finite = all.iter().all(|t| t.isfinite().all().int64_value(&[]) != 0);
        if !finite {
            let _g = tch::no_grad_guard();
            for (t, b) in all.iter().zip(&backup) {
                t.detach().copy_(b);
            }
            for (g, snap) in self.groups.iter_mut().zip(adam_backup) {
                g.adam.restore(snap);
            }
            report.skipped = Some("non-finite parameters after the update".into());
            return Ok(report);
        }
        if let Some(a) = self.config.adaptive.clone()
            && a.due(self.step, self.config.steps)
        {
            let (pruned, added) = self.adapt(&a)?;
            report.terms.push(("pruned".into(), pruned as f64));
            report.terms.push(("added".into(), added as f64));
        }
        let total: usize = self.shape_counts.iter().sum();
        report.terms.push((
            "shapes".into(),
            total as f64 / self.shape_counts.len().max(1) as f64,
        ));
        Ok(report)
    }

    /// Colours into `[0, 1]`, widths into their range (trainable entries only, so locked values
    /// stay exact).
    fn clamp_values(&mut self) {
        let _g = tch::no_grad_guard();
        let (lo, hi) = match self.config.constraints.width_range {
            Some([lo, hi]) => (f64::from(lo), f64::from(hi)),
            None => (0.0, f64::INFINITY),
        };
        for g in &self.groups {
            let dev = g.params.device();
            let s = g.view.slots.len() as i64;
            let slot_mask = g.view.slot_mask();
            let m3 = bool_mask(&slot_mask, &[1, s, 1], dev);
            let m2 = bool_mask(&slot_mask, &[1, s], dev);
            for (t, m, lo, hi) in [
                (&g.params.fill, &m3, 0.0, 1.0),
                (&g.params.stroke, &m3, 0.0, 1.0),
                (&g.params.stroke_width, &m2, lo, hi),
            ] {
                let mut d = t.detach();
                let c = d.clamp(lo, hi).where_self(m, &d);
                d.copy_(&c);
            }
            let mut bg = g.params.background.detach();
            let c = bg.clamp(0.0, 1.0);
            bg.copy_(&c);
        }
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

    /// Overwrites particle `dst` (parameters and optimiser moments; its document and topology
    /// when it starts from its own) with particle `src`. A particle that shares its group with
    /// others can only take a particle of the same group.
    pub fn copy_particle(&mut self, src: usize, dst: usize) {
        let (Some((gs, rs)), Some((gd, rd))) = (self.locate(src), self.locate(dst)) else {
            return;
        };
        if src == dst {
            return;
        }
        let _g = tch::no_grad_guard();
        if gs == gd {
            let copy_row = |t: &Tensor| {
                let row = t.detach().narrow(0, rs as i64, 1).copy();
                t.detach().narrow(0, rd as i64, 1).copy_(&row);
            };
            let g = &self.groups[gs];
            for t in g.params.tensors() {
                copy_row(t);
            }
            for (m, v) in g.adam.moments() {
                copy_row(m);
                copy_row(v);
            }
        } else if self.groups[gd].len() == 1 {
            let s = &self.groups[gs];
            let row = |t: &Tensor| t.detach().narrow(0, rs as i64, 1).copy();
            let mut params = s.params.map(row).to_leaves();
            params.fill_gradient = params.fill_gradient.map(|g| g.detach());
            let mut adam = MaskedAdam::new(s.adam.config.clone(), &params.tensors(), Vec::new());
            adam.t = s.adam.t;
            adam.set_moments(
                s.adam
                    .moments()
                    .into_iter()
                    .map(|(m, v)| (row(m), row(v)))
                    .collect(),
            );
            let mut g = Group {
                doc: s.doc.clone(),
                view: s.view.clone(),
                scene: s.scene.clone(),
                params,
                adam,
                region: s.region.clone(),
            };
            set_masks(&mut g, &self.config);
            self.groups[gd] = g;
            self.refresh_shape_counts();
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

    /// Particle `i` as a parameter view (every slot written; locked ones hold their old values;
    /// with a palette, colours are the palette's exactly).
    pub fn particle_view(&self, i: usize) -> Result<ParamView, DistillError> {
        let (j, r) = self.locate(i).ok_or_else(|| DistillError::Config {
            field: "particle".into(),
            message: format!("{i}: the run has {} particles", self.config.particles),
        })?;
        let g = &self.groups[j];
        let mut v = g.view.clone();
        g.params.write_back(r, &mut v)?;
        let palette = &self.config.constraints.palette;
        if !palette.is_empty() {
            for c in v.fill.iter_mut().chain(v.stroke.iter_mut()) {
                let [r, g, b] = nearest(palette, [c[0], c[1], c[2]]);
                *c = [r, g, b, c[3]];
            }
            // Palette colours are solid: a gradient would paint colours between them.
            v.fill_gradient.iter_mut().for_each(|g| *g = None);
        }
        Ok(v)
    }

    /// Particle `i` as a document: its start document with its current numbers (only its
    /// trainable shapes change; nothing non-finite is ever written).
    pub fn particle_document(&self, i: usize) -> Result<Document, DistillError> {
        let (j, _) = self.locate(i).ok_or_else(|| DistillError::Config {
            field: "particle".into(),
            message: format!("{i}: the run has {} particles", self.config.particles),
        })?;
        let mut doc = self.groups[j].doc.clone();
        self.write_into(i, &mut doc)?;
        Ok(doc)
    }

    /// Every particle as a document.
    pub fn particle_documents(&self) -> Result<Vec<Document>, DistillError> {
        (0..self.config.particles)
            .map(|i| self.particle_document(i))
            .collect()
    }

    /// Writes particle `i` into `doc`, which must hold the particle's shapes (only its
    /// trainable shapes change; nothing non-finite is ever written: core refuses it and the
    /// document is left as it was).
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

    /// Locks or unlocks shapes (by id) in every particle that holds them. Locked shapes keep
    /// their current values.
    pub fn set_locks(&mut self, locks: &[(ShapeId, bool)]) -> Result<(), DistillError> {
        for g in &mut self.groups {
            let mut changed = false;
            for &(id, locked) in locks {
                if let Some(i) = g.view.slot_of(id) {
                    g.view.slots[i].locked = locked;
                    if let Some(m) = g.doc.meta_mut(id) {
                        m.locked = locked;
                    }
                    changed = true;
                }
            }
            if changed {
                g.scene = Scene::from_view(&g.view)?;
                set_masks(g, &self.config);
            }
        }
        Ok(())
    }

    /// Takes an edited document (the working document of one particle, or the shared start).
    /// It replaces the particles whose shapes it holds (matched by id; every particle when none
    /// match). With the same topology the trainable shapes keep their optimised values, the
    /// others (locked, hidden) take the new values; otherwise those particles restart from the
    /// new document with a fresh optimiser.
    pub fn replace_document(&mut self, doc: &Document) -> Result<(), DistillError> {
        let view = doc.param_view();
        let ids: std::collections::HashSet<ShapeId> = view.slots.iter().map(|s| s.shape).collect();
        let matching: Vec<usize> = (0..self.groups.len())
            .filter(|&j| {
                self.groups[j]
                    .view
                    .slots
                    .iter()
                    .any(|s| ids.contains(&s.shape))
            })
            .collect();
        if matching.is_empty() {
            let dev = self.groups[0].params.device();
            let g = Self::build_group(doc.clone(), self.config.particles, &self.config, dev)?;
            self.groups = vec![g];
        } else {
            for j in matching {
                self.replace_group(j, doc, &view)?;
            }
        }
        let canvas = self.groups[0].view.canvas;
        (self.width, self.height) = render_dims(canvas, self.config.render_size);
        self.last_images = None;
        self.refresh_shape_counts();
        if self.config.region_weight > 0.0 {
            self.rebuild_regions()?;
        }
        Ok(())
    }

    fn replace_group(
        &mut self,
        j: usize,
        doc: &Document,
        view: &ParamView,
    ) -> Result<(), DistillError> {
        let g = &mut self.groups[j];
        let same =
            view.points.len() == g.view.points.len()
                && view.canvas == g.view.canvas
                && view.slots.len() == g.view.slots.len()
                && view.slots.iter().zip(&g.view.slots).all(|(a, b)| {
                    a.shape == b.shape && a.kind == b.kind && a.subpaths == b.subpaths
                });
        let dev = g.params.device();
        let b = g.len();
        if same {
            let fresh = SceneParams::from_view(view, b, dev)?;
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
            for ((cur, new), m) in g.params.tensors().iter().zip(fresh.tensors()).zip(&masks) {
                let mut d = cur.detach();
                let merged = d.where_self(m, new);
                d.copy_(&merged);
            }
            g.view = view.clone();
            g.scene = Scene::from_view(view)?;
            g.doc = doc.clone();
            set_masks(g, &self.config);
        } else {
            *g = Self::build_group(doc.clone(), b, &self.config, dev)?;
        }
        Ok(())
    }
}

/// Masks a group's optimiser with its view's locks, the `optimise` switches and the
/// constraints (stroke colour fixed when only its opacity trains).
pub(crate) fn set_masks(g: &mut Group, config: &DistillConfig) {
    let dev = g.params.device();
    let s = g.view.slots.len() as i64;
    let p = g.view.points.len() as i64;
    let slot_mask = g.view.slot_mask();
    g.adam
        .set_mask(0, Some(bool_mask(&g.view.point_mask(), &[1, p, 1], dev)));
    let fill_mask = if config.constraints.fill_alpha_fixed {
        let m: Vec<bool> = slot_mask.iter().flat_map(|&t| [t, t, t, false]).collect();
        bool_mask(&m, &[1, s, 4], dev)
    } else {
        bool_mask(&slot_mask, &[1, s, 1], dev)
    };
    g.adam.set_mask(1, Some(fill_mask));
    let stroke_mask = if config.constraints.stroke_alpha_only {
        let m: Vec<bool> = slot_mask
            .iter()
            .flat_map(|&t| [false, false, false, t])
            .collect();
        bool_mask(&m, &[1, s, 4], dev)
    } else {
        bool_mask(&slot_mask, &[1, s, 1], dev)
    };
    g.adam.set_mask(2, Some(stroke_mask));
    g.adam
        .set_mask(3, Some(bool_mask(&slot_mask, &[1, s], dev)));
    g.adam.set_mask(4, None);
}

/// Adds `init_jitter` noise to a group's trainable points (stream `STREAM_INIT`, index `j`).
fn jitter(g: &mut Group, config: &DistillConfig, j: u64) {
    let device = g.params.device();
    let mask = bool_mask(
        &g.view.point_mask(),
        &[1, g.view.points.len() as i64, 1],
        device,
    );
    let mut rng = Rng::for_step(config.seed, STREAM_INIT, j);
    let noise = rng.normal_tensor(&g.params.points.size(), device) * f64::from(config.init_jitter);
    let _g = tch::no_grad_guard();
    let mut pts = g.params.points.detach();
    let jittered = (&pts + noise).where_self(&mask, &pts);
    pts.copy_(&jittered);
}

fn palette_tensor(palette: &[[f32; 3]], device: Device) -> Tensor {
    let flat: Vec<f32> = palette.iter().flatten().copied().collect();
    Tensor::from_slice(&flat)
        .view([palette.len() as i64, 3])
        .to_device(device)
}

/// `[b, S, 4]` colours whose RGB shows the nearest palette entry, with the gradient of the
/// free colour (straight-through estimator); alpha passes unchanged.
fn snap_straight_through(c: &Tensor, pal: &Tensor) -> Tensor {
    let size = c.size();
    let rgb = c.narrow(2, 0, 3);
    let d = (rgb.detach().unsqueeze(2) - pal.view([1, 1, -1, 3]))
        .square()
        .sum_dim_intlist(3, false, Kind::Float);
    let idx = d.argmin(2, false).flatten(0, -1);
    let snapped = pal.index_select(0, &idx).view([size[0], size[1], 3]);
    let shown = &rgb + (snapped - &rgb).detach();
    Tensor::cat(&[shown, c.narrow(2, 3, 1)], 2)
}

/// The palette colour nearest to `rgb` (squared distance, ties to the first).
pub(crate) fn nearest(palette: &[[f32; 3]], rgb: [f32; 3]) -> [f32; 3] {
    let d = |c: &[f32; 3]| (0..3).map(|k| (c[k] - rgb[k]).powi(2)).sum::<f32>();
    palette
        .iter()
        .copied()
        .min_by(|a, b| d(a).total_cmp(&d(b)))
        .unwrap_or(rgb)
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
