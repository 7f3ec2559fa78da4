//! Score distillation on Stable Diffusion: SDS, VPSD (LoRA φ), ESD, CSD, DDS, ASD, TSM and CDS in
//! latent space (renders → VAE encoder → UNet), following the formulas in `shared/anchors.md` and,
//! for ASD / TSM / CDS, the papers and official code named at each [`SdMethod`] variant.
//!
//! Notation: `z` the latents, `ε` the step's noise, `x_t = √ᾱ_t z + √(1−ᾱ_t) ε`, `ε̂(x, t)` the
//! CFG prediction `ε_u + s(ε_c − ε_u)`, `ε_c` / `ε_∅` the conditional / unconditional (negative
//! prompt) branch alone, `DDIM(x, e, a → b)` one deterministic DDIM step with noise prediction `e`
//! from timestep `a` to `b` ([`crate::sd::DdimScheduler::ddim_transfer`]; `b > a` inverts).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::DistillError;
use super::adam::{AdamConfig, MaskedAdam};
use super::guidance::{Guidance, GuidanceOutput, StepCtx, apply_grad_loss};
use super::schedule::{Annealing, TimeRange};
use crate::sd::scheduler::PredictionType;
use crate::sd::{Lora, LoraConfig, StableDiffusion, UNetInputs};

/// Which score distillation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SdMethod {
    /// DreamFusion / VectorFusion: `grad = w(t)(ε̂_CFG − ε)`.
    Sds,
    /// SVGDreamer's VPSD: `grad = w(t)(ε_pretrained,CFG − ε_φ)`, φ a LoRA trained on the particles.
    Vpsd,
    /// Entropic score distillation: VPSD with φ's own CFG `λ < 1`.
    Esd,
    /// Classifier score distillation: `grad = w(t)·s·(ε_c − ε_u)`, no noise term.
    Csd,
    /// Delta denoising score (editing): `grad = w(t)(ε̂(z_t, edit) − ε̂(ẑ_t, source))`, same noise.
    Dds,
    /// Asynchronous score distillation (ScaleDreamer, Ma et al. 2024, eq. of ASD in §3; official
    /// code `threestudio/models/guidance/stable_diffusion_asd_guidance.py` of
    /// theEricMa/ScaleDreamer): the pretrained model at a shifted, noisier timestep `t⁺ = t + Δt`
    /// stands in for VSD's LoRA model,
    /// `grad = (1 − ᾱ_t)(ε̂(x_t, t) − ε_c(x_{t⁺}, t⁺))`, one noise ε for both,
    /// `Δt = ⌊u·η(t − t_min)⌋` clamped to `[0, T−1−t]`, `u ~ U[0, 1)` (`asd_random`, else `u = 1`),
    /// `t⁺` clamped to `[1, T−1]`; η = [`SdGuidanceConfig::asd_ratio`] (0.1).
    Asd,
    /// Trajectory score matching (Dreamer XL, Miao et al. 2024, TSM; official code
    /// `guidance/sd_utils.py` of xingy038/Dreamer-XL, `train_step`): two DDIM-inversion paths
    /// from one start `x_s`, `s = max(t − δ, 0)`:
    /// `x_s` = unconditional DDIM inversion of `x_{t₀}` (`t₀ = max(s − n·δ_x, 0)`) to `s` in steps
    /// of `δ_x`; `x_t = DDIM(x_s, ε_∅(x_s, s), s → t)`;
    /// `x_μ = DDIM(x_s, ε_∅(x_s, s), s → μ)`, `μ = round(s + (t − s)√(1 − γ²))`;
    /// `grad = √((1 − ᾱ_t)/ᾱ_t) (ε̂(x_t, t) − ε_∅(x_μ, μ))`.
    /// `γ = 1` is ISM (LucidDreamer's interval score matching, target `ε_∅(x_s, s)`).
    /// Knobs `tsm_delta` δ (80), `tsm_xs_delta` δ_x (200), `tsm_xs_steps` n (5), `tsm_gamma` γ
    /// (0.3). The inversion uses the unconditional branch (the negative prompt; Dreamer XL inverts
    /// with an empty prompt, the same when no negative prompt is set).
    Tsm,
    /// Consistency distillation sampling (Consistent3D, Wu et al. 2024, CDS; official code
    /// `compute_grad_consistency` in `threestudio/models/guidance/stable_diffusion_guidance.py`
    /// of sail-sg/Consistent3D, with `recon_std_rescale = 0`): one noise ε drawn once and kept
    /// for the whole run (`share_noise`), and two adjacent points of the probability-flow ODE,
    /// the less noisy `t` (the sampled timestep, Consistent3D's `t_next`) and
    /// `t' = min(t + g + ⌊u·p⌋, T−1)`, `u ~ U[0, 1)`:
    /// `x_{t'} = √ᾱ_{t'} z + √(1−ᾱ_{t'}) ε`, `x_t = DDIM(x_{t'}, ε̂(x_{t'}, t'), t' → t)`,
    /// `grad = (1 − ᾱ_{t'})(ε̂(x_{t'}, t') − ε̂(x_t, t))` (the SDS weight at `t'`, the official
    /// default `weighting_strategy: sds`). Knobs `cds_gap` g (100), `cds_perturb` p (200).
    Cds,
}

impl SdMethod {
    /// Every method, in the order the CLI lists them.
    pub const ALL: [Self; 8] = [
        Self::Sds,
        Self::Vpsd,
        Self::Esd,
        Self::Csd,
        Self::Dds,
        Self::Asd,
        Self::Tsm,
        Self::Cds,
    ];

    /// Parses `sds`, `vpsd` (`vsd`), `esd`, `csd`, `dds`, `asd`, `tsm` or `cds`.
    pub fn parse(s: &str) -> Result<Self, DistillError> {
        match s.to_ascii_lowercase().as_str() {
            "sds" => Ok(Self::Sds),
            "vpsd" | "vsd" => Ok(Self::Vpsd),
            "esd" => Ok(Self::Esd),
            "csd" => Ok(Self::Csd),
            "dds" => Ok(Self::Dds),
            "asd" => Ok(Self::Asd),
            "tsm" => Ok(Self::Tsm),
            "cds" => Ok(Self::Cds),
            _ => Err(DistillError::Config {
                field: "method".into(),
                message: format!("`{s}`: expected sds, vpsd, esd, csd, dds, asd, tsm or cds"),
            }),
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sds => "sds",
            Self::Vpsd => "vpsd",
            Self::Esd => "esd",
            Self::Csd => "csd",
            Self::Dds => "dds",
            Self::Asd => "asd",
            Self::Tsm => "tsm",
            Self::Cds => "cds",
        }
    }

    /// One line for a method picker's tooltip.
    pub fn description(self) -> &'static str {
        match self {
            Self::Sds => {
                "Score distillation sampling: the CFG noise prediction minus the added noise."
            }
            Self::Vpsd => {
                "SVGDreamer's particle score distillation: a LoRA model of the particles replaces the noise."
            }
            Self::Esd => {
                "Entropic score distillation: VPSD with the LoRA model's own CFG below 1 (more diverse)."
            }
            Self::Csd => {
                "Classifier score distillation: only the conditional minus unconditional prediction."
            }
            Self::Dds => {
                "Delta denoising score: edit-prompt score minus source-prompt score on the same noise."
            }
            Self::Asd => {
                "ScaleDreamer's asynchronous score distillation: the pretrained model at a shifted, noisier timestep replaces the LoRA model."
            }
            Self::Tsm => {
                "Dreamer XL's trajectory score matching: two DDIM-inversion paths from one start, the target read on the second path."
            }
            Self::Cds => {
                "Consistent3D's consistency distillation: fixed noise, the target one ODE step less noisy."
            }
        }
    }

    /// Whether the method draws a second timestep per particle (ASD's `t⁺`, CDS's `t'`).
    pub fn uses_second_timestep(self) -> bool {
        matches!(self, Self::Asd | Self::Cds)
    }

    fn uses_lora(self) -> bool {
        matches!(self, Self::Vpsd | Self::Esd)
    }
}

/// Settings of [`SdGuidance`]. `Default` is SVGDreamer's VPSD.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SdGuidanceConfig {
    /// A diffusers folder (see [`crate::sd`]).
    pub model_dir: PathBuf,
    /// The method.
    pub method: SdMethod,
    /// The prompt (DDS: the edit prompt).
    pub prompt: String,
    /// Negative prompt (the unconditional branch of CFG).
    pub negative_prompt: String,
    /// DDS: the prompt that describes the source document.
    pub source_prompt: String,
    /// Classifier-free guidance scale `s` in `ε_u + s(ε_c − ε_u)` (SDS 100, VPSD 7.5).
    /// threestudio's `ε_c + g(ε_c − ε_u)` is `s = g + 1`.
    pub cfg: f64,
    /// Timesteps (VPSD: `max_0.5_N`).
    pub time: TimeRange,
    /// Side of the square image given to the VAE (512 for SD 2.1-base).
    pub resolution: i64,
    /// Clamp the latent gradient to `[-c, c]`.
    pub grad_clip: Option<f64>,
    /// VPSD: particles guided per step (`None`: all).
    pub guided: Option<usize>,
    /// VPSD: particles whose latents train φ per step.
    pub phi_particles: usize,
    /// LoRA settings (rank 4).
    pub lora_rank: i64,
    /// LoRA learning rate (AdamW, 1e-4).
    pub lora_lr: f64,
    /// ESD: φ's CFG λ (`ε_φ = ε_φ,u + λ(ε_φ,c − ε_φ,u)`, λ < 1).
    pub esd_lambda: f64,
    /// Half-precision weights on CUDA.
    pub half: bool,
    /// VPSD / ESD: input width of a trainable camera embedding added to φ's time embedding (16
    /// for a flattened 4×4 camera-to-world matrix, ProlificDreamer's 3D VSD); `None`: none.
    #[serde(default)]
    pub camera_embedding_dim: Option<i64>,
    /// ASD: η of the timestep shift `Δt = η(t − t_min)` (ScaleDreamer's `plus_ratio`, 0.1).
    #[serde(default = "default_asd_ratio")]
    pub asd_ratio: f64,
    /// ASD: scale the shift by `u ~ U[0, 1)` per particle and step (ScaleDreamer's `plus_random`).
    #[serde(default = "default_true")]
    pub asd_random: bool,
    /// TSM: the interval δ between the inverted start `s` and `t` (Dreamer XL's `delta_t`, 80).
    #[serde(default = "default_tsm_delta")]
    pub tsm_delta: i64,
    /// TSM: the step δ_x of the DDIM inversion up to `s` (`xs_delta_t`, 200).
    #[serde(default = "default_tsm_xs_delta")]
    pub tsm_xs_delta: i64,
    /// TSM: the number n of inversion steps up to `s` (`xs_inv_steps`, 5).
    #[serde(default = "default_tsm_xs_steps")]
    pub tsm_xs_steps: i64,
    /// TSM: γ, the second path ends at `μ = s + (t − s)√(1 − γ²)` (`gamma`, 0.3; 1 gives ISM).
    #[serde(default = "default_tsm_gamma")]
    pub tsm_gamma: f64,
    /// CDS: the smallest gap g between the two ODE points (Consistent3D's `end_gap`, 100).
    #[serde(default = "default_cds_gap")]
    pub cds_gap: i64,
    /// CDS: the random extra gap, `⌊u·p⌋` (Consistent3D's `perturb_factor`, 200).
    #[serde(default = "default_cds_perturb")]
    pub cds_perturb: i64,
}

fn default_asd_ratio() -> f64 {
    0.1
}
fn default_true() -> bool {
    true
}
fn default_tsm_delta() -> i64 {
    80
}
fn default_tsm_xs_delta() -> i64 {
    200
}
fn default_tsm_xs_steps() -> i64 {
    5
}
fn default_tsm_gamma() -> f64 {
    0.3
}
fn default_cds_gap() -> i64 {
    100
}
fn default_cds_perturb() -> i64 {
    200
}

impl Default for SdGuidanceConfig {
    fn default() -> Self {
        Self {
            model_dir: PathBuf::new(),
            method: SdMethod::Vpsd,
            prompt: String::new(),
            negative_prompt: String::new(),
            source_prompt: String::new(),
            cfg: 7.5,
            time: TimeRange {
                t_min: 20,
                t_max: 980,
                annealing: Annealing::MaxHalfAfter { after: 1500 },
            },
            resolution: 512,
            grad_clip: None,
            guided: Some(4),
            phi_particles: 2,
            lora_rank: 4,
            lora_lr: 1e-4,
            esd_lambda: 0.5,
            half: true,
            camera_embedding_dim: None,
            asd_ratio: default_asd_ratio(),
            asd_random: true,
            tsm_delta: default_tsm_delta(),
            tsm_xs_delta: default_tsm_xs_delta(),
            tsm_xs_steps: default_tsm_xs_steps(),
            tsm_gamma: default_tsm_gamma(),
            cds_gap: default_cds_gap(),
            cds_perturb: default_cds_perturb(),
        }
    }
}

impl SdGuidanceConfig {
    /// DreamFusion / VectorFusion SDS defaults (CFG 100, t ∈ [20, 980]).
    pub fn sds() -> Self {
        Self {
            method: SdMethod::Sds,
            cfg: 100.0,
            time: TimeRange::default(),
            guided: None,
            ..Self::default()
        }
    }

    /// Sets one method knob by name (`asd_ratio`, `asd_random` (0 / 1), `tsm_delta`,
    /// `tsm_xs_delta`, `tsm_xs_steps`, `tsm_gamma`, `cds_gap`, `cds_perturb`), checking its range.
    pub fn set_knob(&mut self, name: &str, value: f64) -> Result<(), DistillError> {
        let bad = |message: String| DistillError::Config {
            field: name.into(),
            message,
        };
        let steps = |lo: i64| -> Result<i64, DistillError> {
            if value.fract() != 0.0 || value < lo as f64 || value > 999.0 {
                Err(bad(format!(
                    "{value}: expected a whole number of timesteps in {lo}..=999"
                )))
            } else {
                Ok(value as i64)
            }
        };
        match name {
            "asd_ratio" if (0.0..=1.0).contains(&value) => self.asd_ratio = value,
            "asd_ratio" => return Err(bad(format!("{value}: expected 0..=1"))),
            "asd_random" if value == 0.0 || value == 1.0 => self.asd_random = value == 1.0,
            "asd_random" => return Err(bad(format!("{value}: expected 0 or 1"))),
            "tsm_delta" => self.tsm_delta = steps(0)?,
            "tsm_xs_delta" => self.tsm_xs_delta = steps(1)?,
            "tsm_xs_steps" => self.tsm_xs_steps = steps(0)?,
            "tsm_gamma" if (0.0..=1.0).contains(&value) => self.tsm_gamma = value,
            "tsm_gamma" => return Err(bad(format!("{value}: expected 0..=1"))),
            "cds_gap" => self.cds_gap = steps(0)?,
            "cds_perturb" => self.cds_perturb = steps(0)?,
            _ => {
                return Err(bad(
                    "unknown knob; expected asd_ratio, asd_random, tsm_delta, tsm_xs_delta, \
                     tsm_xs_steps, tsm_gamma, cds_gap or cds_perturb"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// The defaults of `method`: [`Self::sds`] for SDS; SVGDreamer's VPSD settings for VPSD,
    /// ESD, CSD and DDS; CFG 7.5 for ASD and TSM (ScaleDreamer, Dreamer XL) with TSM's
    /// `t ≤ 500` (Dreamer XL's `t_range [0.02, 0.5]`); CFG 50 for CDS (Consistent3D anneals
    /// threestudio's 100 → 50, i.e. 101 → 51 here) with the less noisy end annealed from
    /// `t ≤ 700` to `t ≤ 100` (its `cur_steps` 700 → 100). Every particle is guided except
    /// with VPSD / ESD.
    pub fn for_method(method: SdMethod) -> Self {
        let mut c = match method {
            SdMethod::Sds => Self::sds(),
            _ => Self::default(),
        };
        c.method = method;
        match method {
            SdMethod::Asd => c.guided = None,
            SdMethod::Tsm => {
                c.guided = None;
                c.time = TimeRange {
                    t_min: 20,
                    t_max: 500,
                    annealing: Annealing::None,
                };
            }
            SdMethod::Cds => {
                c.guided = None;
                c.cfg = 51.0;
                c.time = TimeRange {
                    t_min: 20,
                    t_max: 700,
                    annealing: Annealing::Linear { to: 100 },
                };
            }
            _ => {}
        }
        c
    }
}

/// Score distillation on a loaded Stable Diffusion model.
pub struct SdGuidance {
    /// The model (LoRA attached for VPSD / ESD).
    pub sd: StableDiffusion,
    /// Settings.
    pub config: SdGuidanceConfig,
    lora: Option<(Lora, MaskedAdam)>,
    /// `[cond, uncond]` text embeddings `(2, 77, d)`.
    text: Tensor,
    /// DDS: `[source cond, uncond]`.
    source_text: Option<Tensor>,
    /// DDS: latents of the first render (the source document).
    source_latents: Option<Tensor>,
    /// CDS: the run's one noise `[1, C, h, w]`, drawn at the first step.
    cds_noise: Option<Tensor>,
}

impl std::fmt::Debug for SdGuidance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdGuidance")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SdGuidance {
    /// Loads the model of `config.model_dir` on `device`.
    pub fn load(config: &SdGuidanceConfig, device: Device) -> Result<Self, DistillError> {
        let kind = if config.half && device.is_cuda() {
            Kind::Half
        } else {
            Kind::Float
        };
        let sd = StableDiffusion::load(&config.model_dir, device, kind)?;
        Self::new(sd, config.clone())
    }

    /// Wraps an already loaded model (attaches LoRA for VPSD / ESD).
    pub fn new(mut sd: StableDiffusion, config: SdGuidanceConfig) -> Result<Self, DistillError> {
        if config.resolution < 8 || config.resolution % sd.vae.config.scale_factor() != 0 {
            return Err(DistillError::Config {
                field: "resolution".into(),
                message: format!(
                    "{}: expected a multiple of the VAE's factor {}",
                    config.resolution,
                    sd.vae.config.scale_factor()
                ),
            });
        }
        let text = sd.encode_prompt(&[&config.prompt, &config.negative_prompt]);
        let source_text = (config.method == SdMethod::Dds)
            .then(|| sd.encode_prompt(&[&config.source_prompt, &config.negative_prompt]));
        let lora = if config.method.uses_lora() {
            let lora = Lora::attach(
                &mut sd.unet,
                sd.device,
                LoraConfig {
                    rank: config.lora_rank,
                    camera_embedding_dim: config.camera_embedding_dim,
                },
            );
            let vars = lora_vars(&lora);
            let refs: Vec<&Tensor> = vars.iter().collect();
            let adam = MaskedAdam::new(
                AdamConfig {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.0,
                },
                &refs,
                Vec::new(),
            );
            Some((lora, adam))
        } else {
            None
        };
        Ok(Self {
            sd,
            config,
            lora,
            text,
            source_text,
            source_latents: None,
            cds_noise: None,
        })
    }

    /// `[cond, uncond]` text embeddings `(2, 77, d)` of `prompt` against the configured negative
    /// prompt (for view-dependent prompts; cache them, the text encoder runs every call).
    pub fn encode_text(&self, prompt: &str) -> Tensor {
        self.sd
            .encode_prompt(&[prompt, &self.config.negative_prompt])
    }

    /// Channels of the model's latents (4 for SD 1.x / 2.x).
    pub fn latent_channels(&self) -> i64 {
        self.sd.vae.config.latent_channels
    }

    /// Score distillation on latents `z` `[B, C, h, w]` rendered directly (Latent-NeRF: no VAE in
    /// the loop), with autograd history back to what rendered them. `text`: `[cond, uncond]`
    /// embeddings from [`SdGuidance::encode_text`] (a view-dependent prompt; `None`: the
    /// configured prompt); `camera`: `[B, camera_embedding_dim]` for φ's camera embedding
    /// (VPSD / ESD with [`SdGuidanceConfig::camera_embedding_dim`]). Every row is guided; φ
    /// takes one step on the first `phi_particles` rows' detached latents.
    pub fn latent_loss(
        &mut self,
        z: &Tensor,
        text: Option<&Tensor>,
        camera: Option<&Tensor>,
        ctx: &mut StepCtx,
    ) -> Result<GuidanceOutput, DistillError> {
        let b = z.size().first().copied().unwrap_or(0).max(1) as usize;
        let dev = z.device();
        let t = self
            .config
            .time
            .sample(ctx.step, ctx.total_steps, b, ctx.rng);
        let tt = Tensor::from_slice(&t).to_device(dev);
        let noise = self.step_noise(&z.size(), dev, ctx.rng);
        let t2 = self.draw_second_timesteps(&t, ctx.rng);
        let tt2 = Tensor::from_slice(&t2).to_device(dev);
        let text = text.map_or_else(|| self.text.shallow_clone(), Tensor::shallow_clone);
        let zd = z.detach().to_kind(Kind::Float);
        let mut rows = Vec::with_capacity(b);
        for i in 0..b {
            let row = |x: &Tensor| x.narrow(0, i as i64, 1);
            let cam = camera.map(row);
            let grad = self.latent_grad(
                &row(&zd),
                &row(&noise),
                &row(&tt),
                &row(&tt2),
                i,
                &text,
                cam.as_ref(),
            )?;
            let weight = ctx
                .weights
                .map_or(1.0, |w| w.get(i).copied().unwrap_or(1.0));
            let mut grad = (grad * weight).nan_to_num(0.0, 0.0, 0.0);
            if let Some(c) = self.config.grad_clip {
                grad = grad.clamp(-c, c);
            }
            rows.push(grad);
        }
        let grad = Tensor::cat(&rows, 0);
        let (loss, value) = apply_grad_loss(z, &grad);
        if self.config.method == SdMethod::Dds && self.source_latents.is_none() {
            self.source_latents = Some(zd.copy());
        }
        let mut terms = Vec::new();
        if self.config.method.uses_lora() {
            let k = self.config.phi_particles.clamp(1, b) as i64;
            let cam = camera.map(|c| c.narrow(0, 0, k));
            let phi_loss = self.train_phi(&zd.narrow(0, 0, k), ctx, 1.0, &text, cam.as_ref())?;
            terms.push(("phi_loss".into(), phi_loss));
        }
        terms.push((
            "mean_t".into(),
            t.iter().sum::<i64>() as f64 / t.len().max(1) as f64,
        ));
        if self.config.method.uses_second_timestep() {
            terms.push((
                "mean_t2".into(),
                t2.iter().sum::<i64>() as f64 / t2.len().max(1) as f64,
            ));
        }
        Ok(GuidanceOutput {
            loss,
            value,
            terms,
            guided: (0..b).collect(),
        })
    }

    /// Renders `[B, 3, H, W]` in `[0, 1]` → UNet latents (through the VAE encoder, with gradient).
    pub fn encode(&self, images: &Tensor) -> Tensor {
        let r = self.config.resolution;
        let size = images.size();
        let x = if size[2] == r && size[3] == r {
            images.shallow_clone()
        } else {
            images.upsample_bilinear2d([r, r], false, None, None)
        };
        let x = (x * 2.0 - 1.0).to_kind(self.sd.kind);
        self.sd.vae.encode_scaled(&x).to_kind(Kind::Float)
    }

    /// ε predictions of the UNet for `z_t` at `t` with text `text` (rows: cond, uncond), CFG `s`,
    /// LoRA scale `lora_scale`: `ε_u + s(ε_c − ε_u)`. No gradient.
    fn eps_cfg(
        &self,
        z_t: &Tensor,
        t: &Tensor,
        text: &Tensor,
        s: f64,
        lora_scale: f64,
        camera: Option<&Tensor>,
    ) -> Result<Tensor, DistillError> {
        let _g = tch::no_grad_guard();
        let b = z_t.size()[0];
        let labels = camera.map(|c| Tensor::cat(&[c, c], 0));
        let kind = self.sd.kind;
        let input = Tensor::cat(&[z_t, z_t], 0).to_kind(kind);
        let tt = Tensor::cat(&[t, t], 0);
        let ehs = Tensor::cat(
            &[
                text.narrow(0, 0, 1).expand([b, -1, -1], false),
                text.narrow(0, 1, 1).expand([b, -1, -1], false),
            ],
            0,
        );
        let out = self
            .sd
            .unet
            .forward_with(
                &input,
                &tt,
                &ehs,
                UNetInputs {
                    class_labels: labels.as_ref(),
                    lora_scale,
                    capture: None,
                },
            )?
            .to_kind(Kind::Float);
        let out = self.to_eps(&out, &Tensor::cat(&[z_t, z_t], 0), &tt)?;
        let parts = out.chunk(2, 0);
        Ok(&parts[1] + (&parts[0] - &parts[1]) * s)
    }

    /// Converts a v-prediction to ε (identity for ε models).
    fn to_eps(&self, out: &Tensor, z_t: &Tensor, t: &Tensor) -> Result<Tensor, DistillError> {
        Ok(match self.sd.scheduler.prediction_type {
            PredictionType::Epsilon => out.shallow_clone(),
            PredictionType::VPrediction => {
                let ones = Tensor::ones_like(z_t);
                let zeros = Tensor::zeros_like(z_t);
                let sa = self.sd.scheduler.add_noise(&ones, &zeros, t)?;
                let s1a = self.sd.scheduler.add_noise(&zeros, &ones, t)?;
                sa * out + s1a * z_t
            }
        })
    }

    /// ε prediction of one text branch (`row` 0: the prompt, 1: the negative prompt) of `text`
    /// for `z_t` at `t`, without LoRA. No gradient.
    fn eps_branch(
        &self,
        z_t: &Tensor,
        t: &Tensor,
        text: &Tensor,
        row: i64,
    ) -> Result<Tensor, DistillError> {
        let _g = tch::no_grad_guard();
        let b = z_t.size()[0];
        let ehs = text.narrow(0, row, 1).expand([b, -1, -1], false);
        let out = self
            .sd
            .unet
            .forward_with(
                &z_t.to_kind(self.sd.kind),
                t,
                &ehs,
                UNetInputs {
                    class_labels: None,
                    lora_scale: 0.0,
                    capture: None,
                },
            )?
            .to_kind(Kind::Float);
        self.to_eps(&out, z_t, t)
    }

    /// This step's noise of shape `shape`: fresh Gaussian noise, or for CDS the run's one noise
    /// (drawn from `rng` at the first step, then kept; repeated over the batch).
    fn step_noise(&mut self, shape: &[i64], dev: Device, rng: &mut crate::rng::Rng) -> Tensor {
        if self.config.method != SdMethod::Cds {
            return rng.normal_tensor(shape, dev);
        }
        let one: Vec<i64> = std::iter::once(1)
            .chain(shape.iter().skip(1).copied())
            .collect();
        let fits = self
            .cds_noise
            .as_ref()
            .is_some_and(|n| n.size() == one && n.device() == dev);
        if !fits {
            self.cds_noise = Some(rng.normal_tensor(&one, dev));
        }
        let n = self.cds_noise.as_ref().map(Tensor::shallow_clone);
        n.unwrap_or_else(|| rng.normal_tensor(&one, dev))
            .expand(shape, false)
            .contiguous()
    }

    /// The second timestep of each particle for timesteps `t` and uniform draws `u ∈ [0, 1)`
    /// (missing draws count as `u = 1`): ASD's `t⁺ = t + ⌊u·η(t − t_min)⌋` (the shift clamped
    /// to `[0, T−1−t]`, `u = 1` when `asd_random` is off, `t⁺` clamped to `[1, T−1]`), CDS's
    /// noisier `t' = min(t + g + ⌊u·p⌋, T−1)`; `t` itself for the other methods.
    pub fn second_timesteps(&self, t: &[i64], u: &[f64]) -> Vec<i64> {
        let n = self.sd.scheduler.num_train_timesteps();
        let c = &self.config;
        t.iter()
            .enumerate()
            .map(|(i, &t)| {
                let u = u.get(i).copied().unwrap_or(1.0);
                match c.method {
                    SdMethod::Asd => {
                        let room = (n - 1 - t).max(0) as f64;
                        let mut d = (c.asd_ratio * (t - c.time.t_min) as f64).clamp(0.0, room);
                        if c.asd_random {
                            d *= u;
                        }
                        (t + d.floor() as i64).clamp(1, n - 1)
                    }
                    SdMethod::Cds => {
                        let extra = (u * c.cds_perturb.max(0) as f64).floor() as i64;
                        (t + c.cds_gap.max(0) + extra).min(n - 1)
                    }
                    _ => t,
                }
            })
            .collect()
    }

    /// Draws the second timesteps of [`Self::second_timesteps`] from `rng` (nothing is drawn
    /// for methods without one, so their random streams are unchanged).
    fn draw_second_timesteps(&self, t: &[i64], rng: &mut crate::rng::Rng) -> Vec<i64> {
        let draws = match self.config.method {
            SdMethod::Asd => self.config.asd_random,
            SdMethod::Cds => true,
            _ => false,
        };
        if !draws {
            return self.second_timesteps(t, &[]);
        }
        let u: Vec<f64> = t.iter().map(|_| rng.uniform()).collect();
        self.second_timesteps(t, &u)
    }

    /// TSM's timesteps for `t`: the inversion's start `t₀ = max(s − n·δ_x, 0)`, the shared
    /// start `s = max(t − δ, 0)` and the second path's end `μ = round(s + (t − s)√(1 − γ²))`.
    pub fn tsm_timesteps(&self, t: i64) -> (i64, i64, i64) {
        let c = &self.config;
        let s = (t - c.tsm_delta.max(0)).max(0);
        let t0 = (s - c.tsm_xs_delta.max(1) * c.tsm_xs_steps.max(0)).max(0);
        let ratio = (1.0 - c.tsm_gamma.clamp(0.0, 1.0).powi(2)).sqrt();
        let mu = (s as f64 + (t - s) as f64 * ratio).round() as i64;
        (t0, s, mu.clamp(s, t.max(s)))
    }

    /// TSM's gradient on one particle's latents `zd` (batch of one) at timestep `t`.
    fn tsm_grad(
        &self,
        zd: &Tensor,
        noise: &Tensor,
        t: i64,
        text: &Tensor,
    ) -> Result<Tensor, DistillError> {
        let sched = &self.sd.scheduler;
        let dev = zd.device();
        let at = |t: i64| Tensor::from_slice(&[t]).to_device(dev);
        let (t0, s, mu) = self.tsm_timesteps(t);
        let step = self.config.tsm_xs_delta.max(1);
        // x_s: unconditional DDIM inversion from x_{t₀} up to s.
        let mut x = sched.add_noise(zd, noise, &at(t0))?;
        let mut cur = t0;
        while cur < s {
            let next = (cur + step).min(s);
            let e = self.eps_branch(&x, &at(cur), text, 1)?;
            x = sched.ddim_transfer(&e, &x, cur, next);
            cur = next;
        }
        let e_s = self.eps_branch(&x, &at(s), text, 1)?;
        let x_t = sched.ddim_transfer(&e_s, &x, s, t);
        let x_mu = sched.ddim_transfer(&e_s, &x, s, mu);
        let target = self.eps_branch(&x_mu, &at(mu), text, 1)?;
        let eps = self.eps_cfg(&x_t, &at(t), text, self.config.cfg, 0.0, None)?;
        let a = sched.alpha_cumprod(t);
        Ok((eps - target) * ((1.0 - a) / a).sqrt())
    }

    /// The SDS gradient on latents `z` for `noise` and timesteps `t` (no gradient):
    /// `(1 − ᾱ_t)(ε_u + s(ε_c − ε_u) − ε)`.
    pub fn sds_latent_grad(
        &self,
        z: &Tensor,
        noise: &Tensor,
        t: &[i64],
    ) -> Result<Tensor, DistillError> {
        let tt = Tensor::from_slice(t).to_device(z.device());
        let z_t = self.sd.scheduler.add_noise(&z.detach(), noise, &tt)?;
        let eps = self.eps_cfg(&z_t, &tt, &self.text, self.config.cfg, 0.0, None)?;
        let w = self.sd.scheduler.sds_weight(&tt, z)?;
        Ok(w * (eps - noise))
    }

    /// The configured method's gradient on latents `z` for `noise` and timesteps `t` (no gradient), as
    /// one step computes it for particle `particle` (whose source latents DDS compares against; the
    /// latents themselves when none were set). ASD and CDS take their second timesteps with
    /// `u = 1` (ASD's full shift, CDS's widest gap); see [`Self::method_latent_grad_with`].
    pub fn method_latent_grad(
        &self,
        z: &Tensor,
        noise: &Tensor,
        t: &[i64],
        particle: usize,
    ) -> Result<Tensor, DistillError> {
        let t2 = self.second_timesteps(t, &[]);
        self.method_latent_grad_with(z, noise, t, &t2, particle)
    }

    /// [`Self::method_latent_grad`] with explicit second timesteps `t2` (ASD's `t⁺`, CDS's
    /// noisier `t'`; ignored by the other methods), one row of `z` at a time.
    pub fn method_latent_grad_with(
        &self,
        z: &Tensor,
        noise: &Tensor,
        t: &[i64],
        t2: &[i64],
        particle: usize,
    ) -> Result<Tensor, DistillError> {
        let dev = z.device();
        let b = z.size()[0];
        if t.len() as i64 != b || t2.len() as i64 != b {
            return Err(DistillError::Config {
                field: "timesteps".into(),
                message: format!(
                    "{} timesteps and {} second timesteps for {b} latents",
                    t.len(),
                    t2.len()
                ),
            });
        }
        let zd = z.detach();
        let rows = (0..b)
            .map(|i| {
                let row = |x: &Tensor| x.narrow(0, i, 1);
                let tt = Tensor::from_slice(&t[i as usize..=i as usize]).to_device(dev);
                let tt2 = Tensor::from_slice(&t2[i as usize..=i as usize]).to_device(dev);
                self.latent_grad(
                    &row(&zd),
                    &row(noise),
                    &tt,
                    &tt2,
                    particle + i as usize,
                    &self.text,
                    None,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Tensor::cat(&rows, 0))
    }

    /// The method's gradient on the detached latents `zd` of particle `i` (batch of one) for
    /// `noise`, timesteps `tt` and second timesteps `tt2` (no gradient): SDS, CSD, DDS against
    /// the source latents, VPSD/ESD's `(1 − ᾱ)(ε_pretrained,CFG − ε_φ)` with φ as it is before
    /// this step's update, or ASD / TSM / CDS as [`SdMethod`] writes them.
    #[allow(clippy::too_many_arguments)]
    fn latent_grad(
        &self,
        zd: &Tensor,
        noise: &Tensor,
        tt: &Tensor,
        tt2: &Tensor,
        i: usize,
        text: &Tensor,
        camera: Option<&Tensor>,
    ) -> Result<Tensor, DistillError> {
        let _g = tch::no_grad_guard();
        let z_t = self.sd.scheduler.add_noise(zd, noise, tt)?;
        let w = self.sd.scheduler.sds_weight(tt, zd)?;
        let cfg = self.config.cfg;
        Ok(match self.config.method {
            SdMethod::Asd => {
                let z_plus = self.sd.scheduler.add_noise(zd, noise, tt2)?;
                let eps = self.eps_cfg(&z_t, tt, text, cfg, 0.0, None)?;
                let shifted = self.eps_branch(&z_plus, tt2, text, 0)?;
                w * (eps - shifted)
            }
            SdMethod::Tsm => {
                let t: Vec<i64> = Vec::try_from(tt.to_device(Device::Cpu).to_kind(Kind::Int64))?;
                let rows = t
                    .iter()
                    .enumerate()
                    .map(|(k, &tk)| {
                        let row = |x: &Tensor| x.narrow(0, k as i64, 1);
                        self.tsm_grad(&row(zd), &row(noise), tk, text)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Tensor::cat(&rows, 0)
            }
            SdMethod::Cds => {
                let hi: Vec<i64> = Vec::try_from(tt2.to_device(Device::Cpu).to_kind(Kind::Int64))?;
                let lo: Vec<i64> = Vec::try_from(tt.to_device(Device::Cpu).to_kind(Kind::Int64))?;
                let sched = &self.sd.scheduler;
                let z_hi = sched.add_noise(zd, noise, tt2)?;
                let e_hi = self.eps_cfg(&z_hi, tt2, text, cfg, 0.0, None)?;
                let rows = (0..lo.len())
                    .map(|k| {
                        let row = |x: &Tensor| x.narrow(0, k as i64, 1);
                        sched.ddim_transfer(&row(&e_hi), &row(&z_hi), hi[k], lo[k])
                    })
                    .collect::<Vec<_>>();
                let z_lo = Tensor::cat(&rows, 0);
                let e_lo = self.eps_cfg(&z_lo, tt, text, cfg, 0.0, None)?;
                sched.sds_weight(tt2, zd)? * (e_hi - e_lo)
            }
            SdMethod::Sds => {
                let eps = self.eps_cfg(&z_t, tt, text, cfg, 0.0, None)?;
                w * (eps - noise)
            }
            SdMethod::Csd => {
                let e_c = self.eps_cfg(&z_t, tt, text, 1.0, 0.0, None)?;
                let e_u = self.eps_cfg(&z_t, tt, text, 0.0, 0.0, None)?;
                w * (e_c - e_u) * cfg
            }
            SdMethod::Dds => {
                let src = match &self.source_latents {
                    Some(s) => s.narrow(0, i as i64, 1),
                    None => zd.shallow_clone(),
                };
                let src_text = self.source_text.as_ref().unwrap_or(text);
                let zs_t = self.sd.scheduler.add_noise(&src, noise, tt)?;
                let e_edit = self.eps_cfg(&z_t, tt, text, cfg, 0.0, None)?;
                let e_src = self.eps_cfg(&zs_t, tt, src_text, cfg, 0.0, None)?;
                w * (e_edit - e_src)
            }
            SdMethod::Vpsd | SdMethod::Esd => {
                let e_pre = self.eps_cfg(&z_t, tt, text, cfg, 0.0, None)?;
                let lambda = if self.config.method == SdMethod::Esd {
                    self.config.esd_lambda
                } else {
                    1.0
                };
                let e_phi = self.eps_cfg(&z_t, tt, text, lambda, 1.0, camera)?;
                w * (e_pre - e_phi)
            }
        })
    }

    /// One AdamW step of φ on detached latents `z` (ε- or v-MSE), its loss scaled by `weight`.
    fn train_phi(
        &mut self,
        z: &Tensor,
        ctx: &mut StepCtx,
        weight: f64,
        text: &Tensor,
        camera: Option<&Tensor>,
    ) -> Result<f64, DistillError> {
        let Some((lora, adam)) = self.lora.as_mut() else {
            return Ok(0.0);
        };
        let b = z.size()[0];
        let dev = z.device();
        let n_train = self.sd.scheduler.num_train_timesteps();
        let t: Vec<i64> = (0..b).map(|_| ctx.rng.int_in(0, n_train - 1)).collect();
        let tt = Tensor::from_slice(&t).to_device(dev);
        let noise = ctx.rng.normal_tensor(&z.size(), dev);
        let z = z.detach();
        let z_t = self.sd.scheduler.add_noise(&z, &noise, &tt)?;
        let target = match self.sd.scheduler.prediction_type {
            PredictionType::Epsilon => noise.shallow_clone(),
            PredictionType::VPrediction => self.sd.scheduler.get_velocity(&z, &noise, &tt)?,
        };
        let vars = lora_vars(lora);
        for v in &vars {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let ehs = text.narrow(0, 0, 1).expand([b, -1, -1], false);
        let pred = self
            .sd
            .unet
            .forward_with(
                &z_t.to_kind(self.sd.kind),
                &tt,
                &ehs,
                UNetInputs {
                    class_labels: camera,
                    lora_scale: 1.0,
                    capture: None,
                },
            )?
            .to_kind(Kind::Float);
        let loss = (pred - target).square().mean(Kind::Float) * weight;
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            return Ok(value);
        }
        loss.backward();
        let refs: Vec<&Tensor> = vars.iter().collect();
        if MaskedAdam::grads_finite(&refs) {
            let lrs = vec![self.config.lora_lr; refs.len()];
            adam.step(&refs, &lrs);
        }
        Ok(value)
    }
}

fn lora_vars(lora: &Lora) -> Vec<Tensor> {
    let mut named = lora.vs.variables().into_iter().collect::<Vec<_>>();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.into_iter().map(|(_, t)| t).collect()
}

impl Guidance for SdGuidance {
    fn name(&self) -> String {
        self.config.method.as_str().into()
    }

    /// x̂₀ at t = 400 for each particle: `(z_t − √(1−ᾱ) ε̂_CFG) / √ᾱ`, decoded by the VAE and
    /// resized to the renders.
    fn denoised_target(
        &mut self,
        images: &Tensor,
        ctx: &mut StepCtx,
    ) -> Result<Option<Tensor>, DistillError> {
        let _g = tch::no_grad_guard();
        let size = images.size();
        let dev = images.device();
        let mut rows = Vec::with_capacity(size[0] as usize);
        for i in 0..size[0] {
            let z = self.encode(&images.detach().narrow(0, i, 1));
            let noise = ctx.rng.normal_tensor(&z.size(), dev);
            let tt = Tensor::from_slice(&[400i64]).to_device(dev);
            let z_t = self.sd.scheduler.add_noise(&z, &noise, &tt)?;
            let eps = self.eps_cfg(&z_t, &tt, &self.text, self.config.cfg, 0.0, None)?;
            let sa = self.sd.scheduler.add_noise(
                &Tensor::ones_like(&z),
                &Tensor::zeros_like(&z),
                &tt,
            )?;
            let s1a = self.sd.scheduler.add_noise(
                &Tensor::zeros_like(&z),
                &Tensor::ones_like(&z),
                &tt,
            )?;
            let x0 = (z_t - s1a * eps) / sa;
            let img = self.sd.vae.decode_scaled(&x0.to_kind(self.sd.kind));
            let img = (img.to_kind(Kind::Float) / 2.0 + 0.5).clamp(0.0, 1.0);
            rows.push(img.upsample_bilinear2d([size[2], size[3]], false, None, None));
        }
        Ok(Some(Tensor::cat(&rows, 0)))
    }

    /// One particle at a time through the VAE encoder (with gradient), so activation memory is
    /// that of one 512² image however many particles there are: each particle's latent
    /// gradient is pulled back to its render right away and collected on a detached copy of
    /// the renders; the returned loss then carries that image gradient into the rasteriser.
    fn loss(&mut self, images: &Tensor, ctx: &mut StepCtx) -> Result<GuidanceOutput, DistillError> {
        let b = images.size()[0] as usize;
        let dev = images.device();
        let method = self.config.method;
        let t = self
            .config
            .time
            .sample(ctx.step, ctx.total_steps, b, ctx.rng);
        let tt = Tensor::from_slice(&t).to_device(dev);
        let guided = match (method.uses_lora(), self.config.guided) {
            (true, Some(k)) => ctx.rng.subset(b, k),
            _ => (0..b).collect(),
        };
        let vae = &self.sd.vae.config;
        let side = self.config.resolution / vae.scale_factor();
        let shape = [b as i64, vae.latent_channels, side, side];
        let noise = self.step_noise(&shape, dev, ctx.rng);
        let t2 = self.draw_second_timesteps(&t, ctx.rng);
        let tt2 = Tensor::from_slice(&t2).to_device(dev);
        let leaf = images.detach().set_requires_grad(true);
        let mut latents: Vec<Option<Tensor>> = (0..b).map(|_| None).collect();
        let mut value = 0.0;
        for &i in &guided {
            let row = |x: &Tensor| x.narrow(0, i as i64, 1);
            let z = self.encode(&row(&leaf));
            let zd = z.detach();
            let grad = self.latent_grad(
                &zd,
                &row(&noise),
                &row(&tt),
                &row(&tt2),
                i,
                &self.text,
                None,
            )?;
            let weight = ctx.weights.map_or(1.0, |w| w[i]);
            let mut grad = (grad * weight).nan_to_num(0.0, 0.0, 0.0);
            if let Some(c) = self.config.grad_clip {
                grad = grad.clamp(-c, c);
            }
            let (loss, v) = apply_grad_loss(&z, &grad);
            value += v / b as f64;
            (loss / b as f64).backward();
            latents[i] = Some(zd);
        }
        if method == SdMethod::Dds && self.source_latents.is_none() {
            let rows: Vec<Tensor> = latents.iter().flatten().map(|z| z.copy()).collect();
            self.source_latents = Some(Tensor::cat(&rows, 0));
        }
        let mut terms = Vec::new();
        if method.uses_lora() {
            // φ: one step on detached latents of `phi_particles` random particles.
            let phi_idx = ctx.rng.subset(b, self.config.phi_particles);
            let rows = phi_idx
                .iter()
                .map(|&i| match &latents[i] {
                    Some(z) => z.shallow_clone(),
                    None => {
                        let _g = tch::no_grad_guard();
                        self.encode(&images.detach().narrow(0, i as i64, 1))
                    }
                })
                .collect::<Vec<_>>();
            let weight = ctx.weights.map_or(1.0, |w| {
                phi_idx.iter().map(|&i| w[i]).sum::<f64>() / phi_idx.len().max(1) as f64
            });
            let text = self.text.shallow_clone();
            let phi_loss = self.train_phi(&Tensor::cat(&rows, 0), ctx, weight, &text, None)?;
            terms.push(("phi_loss".into(), phi_loss));
        }
        let image_grad = leaf.grad();
        let loss = if image_grad.defined() {
            (images * image_grad.detach()).sum(Kind::Float)
        } else {
            (images * 0.0).sum(Kind::Float)
        };
        terms.push((
            "mean_t".into(),
            t.iter().sum::<i64>() as f64 / t.len().max(1) as f64,
        ));
        if method.uses_second_timestep() {
            terms.push((
                "mean_t2".into(),
                t2.iter().sum::<i64>() as f64 / t2.len().max(1) as f64,
            ));
        }
        Ok(GuidanceOutput {
            loss,
            value,
            terms,
            guided,
        })
    }

    fn set_param(&mut self, name: &str, value: f64) -> Result<bool, DistillError> {
        match name {
            "cfg" => self.config.cfg = value,
            "t_min" => self.config.time.t_min = value.round().clamp(0.0, 999.0) as i64,
            "t_max" => self.config.time.t_max = value.round().clamp(0.0, 999.0) as i64,
            "lora_lr" => self.config.lora_lr = value.max(0.0),
            "esd_lambda" => self.config.esd_lambda = value,
            "asd_ratio" => self.config.asd_ratio = value.max(0.0),
            "tsm_gamma" => self.config.tsm_gamma = value.clamp(0.0, 1.0),
            "tsm_delta" => self.config.tsm_delta = value.round().clamp(0.0, 999.0) as i64,
            "cds_gap" => self.config.cds_gap = value.round().clamp(0.0, 999.0) as i64,
            "cds_perturb" => self.config.cds_perturb = value.round().clamp(0.0, 999.0) as i64,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        if let Some((lora, adam)) = &self.lora {
            let mut named = lora.vs.variables().into_iter().collect::<Vec<_>>();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            for ((name, t), (m, v)) in named.iter().zip(adam.moments()) {
                out.push((format!("lora.{name}"), t.detach()));
                out.push((format!("lora_adam.{name}.m"), m.shallow_clone()));
                out.push((format!("lora_adam.{name}.v"), v.shallow_clone()));
            }
        }
        if let Some(s) = &self.source_latents {
            out.push(("dds_source_latents".into(), s.shallow_clone()));
        }
        if let Some(n) = &self.cds_noise {
            out.push(("cds_noise".into(), n.shallow_clone()));
        }
        out
    }

    fn state_scalars(&self) -> Vec<(String, f64)> {
        self.lora
            .as_ref()
            .map(|(_, adam)| vec![("lora_adam_t".into(), adam.t as f64)])
            .unwrap_or_default()
    }

    fn load_state(
        &mut self,
        tensors: &[(String, Tensor)],
        scalars: &[(String, f64)],
    ) -> Result<(), DistillError> {
        let find = |k: &str| {
            tensors
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t.shallow_clone())
        };
        if let Some((lora, adam)) = self.lora.as_mut() {
            let mut named = lora.vs.variables().into_iter().collect::<Vec<_>>();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            let mut moments = Vec::new();
            let _g = tch::no_grad_guard();
            for (name, var) in &named {
                let (Some(w), Some(m), Some(v)) = (
                    find(&format!("lora.{name}")),
                    find(&format!("lora_adam.{name}.m")),
                    find(&format!("lora_adam.{name}.v")),
                ) else {
                    return Err(DistillError::Config {
                        field: "checkpoint".into(),
                        message: format!(
                            "missing LoRA tensor `{name}` (was the run saved with the same rank?)"
                        ),
                    });
                };
                var.detach()
                    .copy_(&w.to_device(var.device()).to_kind(var.kind()));
                moments.push((m, v));
            }
            adam.set_moments(moments);
            adam.t = scalars
                .iter()
                .find(|(k, _)| k == "lora_adam_t")
                .map_or(0, |(_, v)| *v as i64);
        }
        self.source_latents = find("dds_source_latents").map(|t| t.to_device(self.sd.device));
        self.cds_noise = find("cds_noise").map(|t| t.to_device(self.sd.device));
        Ok(())
    }
}
