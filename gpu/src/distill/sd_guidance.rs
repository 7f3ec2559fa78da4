//! Score distillation on Stable Diffusion: SDS, VPSD (LoRA φ), ESD, CSD and DDS in latent space
//! (renders → VAE encoder → UNet), following the formulas in `shared/anchors.md`.

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
}

impl SdMethod {
    /// Parses `sds`, `vpsd`, `esd`, `csd` or `dds`.
    pub fn parse(s: &str) -> Result<Self, DistillError> {
        match s.to_ascii_lowercase().as_str() {
            "sds" => Ok(Self::Sds),
            "vpsd" | "vsd" => Ok(Self::Vpsd),
            "esd" => Ok(Self::Esd),
            "csd" => Ok(Self::Csd),
            "dds" => Ok(Self::Dds),
            _ => Err(DistillError::Config {
                field: "method".into(),
                message: format!("`{s}`: expected sds, vpsd, esd, csd or dds"),
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
        }
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
        let noise = ctx.rng.normal_tensor(&z.size(), dev);
        let text = text.map_or_else(|| self.text.shallow_clone(), Tensor::shallow_clone);
        let zd = z.detach().to_kind(Kind::Float);
        let mut rows = Vec::with_capacity(b);
        for i in 0..b {
            let row = |x: &Tensor| x.narrow(0, i as i64, 1);
            let cam = camera.map(row);
            let grad =
                self.latent_grad(&row(&zd), &row(&noise), &row(&tt), i, &text, cam.as_ref())?;
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
    /// latents themselves when none were set).
    pub fn method_latent_grad(
        &self,
        z: &Tensor,
        noise: &Tensor,
        t: &[i64],
        particle: usize,
    ) -> Result<Tensor, DistillError> {
        let tt = Tensor::from_slice(t).to_device(z.device());
        self.latent_grad(&z.detach(), noise, &tt, particle, &self.text, None)
    }

    /// The method's gradient on the detached latents `zd` of particle `i` (batch of one) for
    /// `noise` and timesteps `tt` (no gradient): SDS, CSD, DDS against the source latents, or
    /// VPSD/ESD's `(1 − ᾱ)(ε_pretrained,CFG − ε_φ)` with φ as it is before this step's update.
    fn latent_grad(
        &self,
        zd: &Tensor,
        noise: &Tensor,
        tt: &Tensor,
        i: usize,
        text: &Tensor,
        camera: Option<&Tensor>,
    ) -> Result<Tensor, DistillError> {
        let _g = tch::no_grad_guard();
        let z_t = self.sd.scheduler.add_noise(zd, noise, tt)?;
        let w = self.sd.scheduler.sds_weight(tt, zd)?;
        let cfg = self.config.cfg;
        Ok(match self.config.method {
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
        let noise = ctx
            .rng
            .normal_tensor(&[b as i64, vae.latent_channels, side, side], dev);
        let leaf = images.detach().set_requires_grad(true);
        let mut latents: Vec<Option<Tensor>> = (0..b).map(|_| None).collect();
        let mut value = 0.0;
        for &i in &guided {
            let row = |x: &Tensor| x.narrow(0, i as i64, 1);
            let z = self.encode(&row(&leaf));
            let zd = z.detach();
            let grad = self.latent_grad(&zd, &row(&noise), &row(&tt), i, &self.text, None)?;
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
        Ok(())
    }
}
