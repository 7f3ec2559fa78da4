//! Loading a diffusers folder into [`StableDiffusion`], prompt encoding, DDIM text-to-image and
//! the SDS gradient.

use std::path::Path;

use tch::{Device, Kind, Tensor, nn};

use super::attention::AttentionCapture;
use super::clip::ClipTextTransformer;
use super::config::{ClipTextConfig, ModelDirs, SchedulerConfig, UNet2DConditionConfig, VaeConfig};
use super::loader::{
    find_weights, load_var_store_checked, rename_identity, rename_text_encoder, rename_vae,
};
use super::scheduler::DdimScheduler;
use super::tokenizer::ClipTokenizer;
use super::unet_2d::UNet2DConditionModel;
use super::vae::AutoencoderKL;
use super::{Result, SdError};

/// A loaded Stable Diffusion model: tokenizer, text encoder, UNet, VAE and scheduler.
///
/// Each network lives in its own frozen `VarStore`; attach LoRA with [`super::Lora::attach`].
#[derive(Debug)]
pub struct StableDiffusion {
    /// CLIP tokenizer.
    pub tokenizer: ClipTokenizer,
    /// CLIP text encoder.
    pub text_encoder: ClipTextTransformer,
    /// Denoising UNet.
    pub unet: UNet2DConditionModel,
    /// Autoencoder.
    pub vae: AutoencoderKL,
    /// DDIM scheduler (DDPM noising for guidance).
    pub scheduler: DdimScheduler,
    /// Variables of the text encoder.
    pub text_encoder_vs: nn::VarStore,
    /// Variables of the UNet.
    pub unet_vs: nn::VarStore,
    /// Variables of the VAE.
    pub vae_vs: nn::VarStore,
    /// Device of all three networks.
    pub device: Device,
    /// Floating-point kind of the networks' weights.
    pub kind: Kind,
}

/// Builds a network in a fresh `VarStore` of `kind` on `device` and fills it from `files`.
fn build_and_load<M>(
    device: Device,
    kind: Kind,
    files: &[std::path::PathBuf],
    rename: &dyn Fn(&str) -> Option<String>,
    build: impl FnOnce(nn::Path) -> M,
) -> Result<(M, nn::VarStore)> {
    let mut vs = nn::VarStore::new(device);
    // Setting the kind of the empty store makes the variables be created in `kind` directly, so
    // an fp16 model never holds an fp32 copy.
    vs.set_kind(kind);
    let model = build(vs.root());
    load_var_store_checked(&vs, files, rename, true)?;
    vs.freeze();
    Ok((model, vs))
}

impl StableDiffusion {
    /// Loads a diffusers folder (see the module docs for the layout) onto `device` with weights of
    /// `kind` (Float on the CPU; Half or BFloat16 on CUDA).
    pub fn load(dir: &Path, device: Device, kind: Kind) -> Result<Self> {
        let dirs = ModelDirs::new(dir)?;
        let tokenizer = ClipTokenizer::from_dir(&dir.join("tokenizer"))?;
        let clip_cfg = ClipTextConfig::from_file(&dirs.file("text_encoder", "config.json"))?;
        let unet_cfg = UNet2DConditionConfig::from_file(&dirs.file("unet", "config.json"))?;
        let vae_cfg = VaeConfig::from_file(&dirs.file("vae", "config.json"))?;
        let sched_cfg =
            SchedulerConfig::from_file(&dirs.file("scheduler", "scheduler_config.json"))?;
        let te_files = find_weights(&dir.join("text_encoder"), "model")?;
        let unet_files = find_weights(&dir.join("unet"), "diffusion_pytorch_model")?;
        let vae_files = find_weights(&dir.join("vae"), "diffusion_pytorch_model")?;
        let (text_encoder, text_encoder_vs) =
            build_and_load(device, kind, &te_files, &rename_text_encoder, |p| {
                ClipTextTransformer::new(p, &clip_cfg)
            })?;
        let (unet, unet_vs) = build_and_load(device, kind, &unet_files, &rename_identity, |p| {
            UNet2DConditionModel::new(p, &unet_cfg)
        })?;
        let (vae, vae_vs) = build_and_load(device, kind, &vae_files, &rename_vae, |p| {
            AutoencoderKL::new(p, &vae_cfg)
        })?;
        Ok(Self {
            tokenizer,
            text_encoder,
            unet,
            vae,
            scheduler: DdimScheduler::new(&sched_cfg),
            text_encoder_vs,
            unet_vs,
            vae_vs,
            device,
            kind,
        })
    }

    /// Text embeddings `(prompts.len(), 77, hidden)` for the UNet (no gradient).
    pub fn encode_prompt(&self, prompts: &[&str]) -> Tensor {
        let _guard = tch::no_grad_guard();
        let ids = self.tokenizer.encode_batch(prompts).to_device(self.device);
        self.text_encoder.forward(&ids)
    }

    /// Latent spatial size for an image of `height × width` pixels.
    pub fn latent_size(&self, height: i64, width: i64) -> (i64, i64) {
        let f = self.vae.config.scale_factor();
        (height / f, width / f)
    }

    /// Classifier-free-guided DDIM sampling. Returns images `(1, 3, H, W)` as `u8` on the CPU.
    /// `progress(step, total)` is called after every denoising step.
    pub fn txt2img(
        &mut self,
        opts: &Txt2ImgOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Tensor> {
        self.sample(opts, None, progress)
    }

    /// [`Self::txt2img`] that also records cross-attention: returns the image and, per word of
    /// `words`, its attention map `(H', W')` over the latent (summed over the word's tokens,
    /// averaged over heads, layers at 1/2 and 1/4 of the latent size (all layers when none is
    /// there) and denoising steps, for the conditional pass). A word that is not in the prompt
    /// is an error naming it.
    pub fn txt2img_with_attention(
        &mut self,
        opts: &Txt2ImgOptions,
        words: &[String],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let prompt_ids = self.tokenizer.tokenize(&opts.prompt);
        let mut positions = Vec::with_capacity(words.len());
        for w in words {
            let ids = self.tokenizer.tokenize(w);
            let found = (!ids.is_empty())
                .then(|| {
                    prompt_ids
                        .windows(ids.len())
                        .position(|win| win == ids.as_slice())
                })
                .flatten();
            let Some(start) = found else {
                return Err(SdError::InvalidArgument {
                    name: "objects".into(),
                    message: format!("`{w}` is not a word of the prompt \"{}\"", opts.prompt),
                });
            };
            // +1: the BOS token comes first.
            positions.push((start + 1..start + 1 + ids.len()).collect::<Vec<usize>>());
        }
        let f = self.vae.config.scale_factor();
        let lat = opts
            .size
            .map(|(h, _)| h / f)
            .or_else(|| {
                self.unet
                    .config
                    .sample_size
                    .as_ref()
                    .and_then(|v| v.as_i64())
            })
            .unwrap_or(64);
        let capture = AttentionCapture::new(&[lat / 2, lat / 4]);
        let image = self.sample(opts, Some(&capture), progress)?;
        let capture = if capture.aggregate(lat).is_some() {
            capture
        } else {
            let all = AttentionCapture::new(&[lat, lat / 2, lat / 4, lat / 8]);
            let _ = self.sample(opts, Some(&all), &mut |_, _| {})?;
            all
        };
        let maps = capture
            .aggregate(lat)
            .ok_or_else(|| SdError::InvalidArgument {
                name: "objects".into(),
                message: "the UNet has no cross-attention layer to read object masks from".into(),
            })?;
        // Batch [uncond, cond]: the conditional pass is row 1.
        let cond = maps
            .get(maps.size()[0] - 1)
            .to_kind(Kind::Float)
            .to_device(Device::Cpu);
        let out = positions
            .iter()
            .map(|pos| {
                pos.iter()
                    .map(|&p| cond.get(p as i64))
                    .reduce(|a, b| a + b)
                    .unwrap_or_else(|| cond.get(0).zeros_like())
            })
            .collect();
        Ok((image, out))
    }

    fn sample(
        &mut self,
        opts: &Txt2ImgOptions,
        capture: Option<&AttentionCapture>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Tensor> {
        let f = self.vae.config.scale_factor();
        let (height, width) = opts.size.unwrap_or_else(|| {
            let s = self
                .unet
                .config
                .sample_size
                .as_ref()
                .and_then(|v| v.as_i64())
                .unwrap_or(64);
            (s * f, s * f)
        });
        if height % f != 0 || width % f != 0 || height <= 0 || width <= 0 {
            return Err(SdError::InvalidArgument {
                name: "size".into(),
                message: format!("{height}×{width} is not a positive multiple of {f}"),
            });
        }
        self.scheduler.set_timesteps(opts.steps)?;
        let _guard = tch::no_grad_guard();
        let text = self.encode_prompt(&[opts.negative.as_str(), opts.prompt.as_str()]);
        // The seed's own generator, not libtorch's global one (shared by every thread).
        let channels = self.unet.config.in_channels;
        let mut latents = crate::rng::Rng::new(opts.seed)
            .normal_tensor(&[1, channels, height / f, width / f], self.device)
            .to_kind(self.kind);
        let timesteps = self.scheduler.timesteps.clone();
        for (i, &t) in timesteps.iter().enumerate() {
            let input = Tensor::cat(&[&latents, &latents], 0);
            let tt = Tensor::from_slice(&[t]).to_device(self.device);
            let out = self.unet.forward_with(
                &input,
                &tt,
                &text,
                super::unet_2d::UNetInputs {
                    capture,
                    ..Default::default()
                },
            )?;
            let parts = out.chunk(2, 0);
            let guided = &parts[0] + (&parts[1] - &parts[0]) * opts.cfg;
            latents = self.scheduler.step(&guided, t, &latents);
            progress(i + 1, timesteps.len());
        }
        let image = self.vae.decode_scaled(&latents);
        Ok(
            ((image.to_kind(Kind::Float) / 2.0 + 0.5).clamp(0.0, 1.0) * 255.0)
                .round()
                .to_kind(Kind::Uint8)
                .to_device(Device::Cpu),
        )
    }
}

/// Settings of [`StableDiffusion::txt2img`].
#[derive(Clone, Debug, PartialEq)]
pub struct Txt2ImgOptions {
    /// What to draw.
    pub prompt: String,
    /// What to steer away from (the unconditional prompt; empty by default).
    pub negative: String,
    /// DDIM steps.
    pub steps: i64,
    /// Classifier-free guidance scale.
    pub cfg: f64,
    /// Seed of the initial noise.
    pub seed: u64,
    /// Image `(height, width)` in pixels; `None` = the UNet's `sample_size` × VAE factor.
    pub size: Option<(i64, i64)>,
}

impl Default for Txt2ImgOptions {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative: String::new(),
            steps: 50,
            cfg: 7.5,
            seed: 0,
            size: None,
        }
    }
}

/// Score-distillation gradient w.r.t. the latents (threestudio / DreamFusion):
/// `z_t = √ᾱ z + √(1−ᾱ) ε`, `ε̂ = ε_u + s (ε_c − ε_u)`, `grad = (1 − ᾱ_t)(ε̂ − ε)`.
///
/// `latents`, `noise`: `(B, 4, h, w)`; `timesteps`: `(B,)`; `text = (cond, uncond)`: `(B, 77, d)`
/// text embeddings. The UNet runs once on the batch `[z_t; z_t]` with `[cond; uncond]`, without gradient.
/// For a v-prediction model the output is converted to ε first. Apply the gradient as
/// `loss = 0.5 · Σ (z − sg(z − grad))² / B`.
pub fn sds_grad(
    unet: &UNet2DConditionModel,
    scheduler: &DdimScheduler,
    latents: &Tensor,
    noise: &Tensor,
    timesteps: &Tensor,
    text: (&Tensor, &Tensor),
    guidance_scale: f64,
) -> Result<Tensor> {
    let (cond, uncond) = text;
    let _guard = tch::no_grad_guard();
    let latents = latents.detach();
    let noisy = scheduler.add_noise(&latents, noise, timesteps)?;
    let input = Tensor::cat(&[&noisy, &noisy], 0);
    let t2 = Tensor::cat(&[timesteps, timesteps], 0).to_device(latents.device());
    let ehs = Tensor::cat(&[cond, uncond], 0);
    let out = unet.forward(&input, &t2, &ehs, 0.0)?;
    let out = match scheduler.prediction_type {
        super::scheduler::PredictionType::Epsilon => out,
        super::scheduler::PredictionType::VPrediction => {
            let sqrt_a = scheduler.add_noise(
                &Tensor::ones_like(&noisy),
                &Tensor::zeros_like(&noisy),
                timesteps,
            )?;
            let sqrt_1ma = scheduler.add_noise(
                &Tensor::zeros_like(&noisy),
                &Tensor::ones_like(&noisy),
                timesteps,
            )?;
            let both = |t: &Tensor| Tensor::cat(&[t, t], 0);
            both(&sqrt_a) * &out + both(&sqrt_1ma) * Tensor::cat(&[&noisy, &noisy], 0)
        }
    };
    let parts = out.chunk(2, 0);
    let (e_c, e_u) = (&parts[0], &parts[1]);
    let eps = e_u + (e_c - e_u) * guidance_scale;
    let w = scheduler.sds_weight(timesteps, &latents)?;
    Ok(w * (eps - noise))
}

/// Writes a `(1, 3, H, W)` or `(3, H, W)` `u8` image as PNG, atomically (temp file + rename).
pub fn save_png(image: &Tensor, path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{stem}.tmp-{}.png", std::process::id()));
    tch::vision::image::save(image, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|source| SdError::Io {
        path: path.to_path_buf(),
        source,
    })
}
