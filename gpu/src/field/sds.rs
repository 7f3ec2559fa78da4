//! Text-to-3D by score distillation on the field (Latent-NeRF / SJC): random cameras render
//! 64×64 SD latents straight from the grid's 4 latent channels (no VAE in the loop), and
//! [`SdGuidance::latent_loss`] turns them into SDS / VSD / ESD / ASD / TSM / CDS gradients with view-dependent
//! prompts (", front view", …; their text embeddings are computed once and cached). VSD / ESD
//! give φ (the LoRA) a camera embedding of the flattened camera-to-world matrix.
//!
//! RGB mode: the grid holds RGB, renders are `rgb_size` pixels and go through the VAE encoder
//! (sharper colour, much slower).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::FieldError;
use super::camera::Camera;
use super::fit::ObjectiveOutput;
use super::grid::{ColorSpace, Grid};
use super::render::render;
use crate::distill::{SdGuidance, SdGuidanceConfig, SdMethod, StepCtx};
use crate::rng::Rng;
use crate::sd::StableDiffusion;

/// Settings of text-to-3D.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// The diffusers folder (see [`crate::sd`]).
    pub model_dir: PathBuf,
    /// The prompt (the view suffix is appended).
    pub prompt: String,
    /// Negative prompt.
    pub negative_prompt: String,
    /// Any [`SdMethod`] (SDS, VSD (`Vpsd`), ESD, CSD, ASD, TSM, CDS; DDS has no source here).
    pub method: SdMethod,
    /// CFG scale (default: [`SdGuidanceConfig::for_method`]'s: 100 for SDS, 50 for CDS, 7.5
    /// otherwise).
    pub cfg: Option<f64>,
    /// Append the view-dependent suffix to the prompt.
    pub view_prompts: bool,
    /// Side of the rendered latents (64 for SD at 512 px).
    pub latent_size: i64,
    /// RGB mode: render RGB at `rgb_size` and encode with the VAE.
    pub rgb: bool,
    /// Render side in RGB mode.
    pub rgb_size: i64,
    /// Method knobs by name (see [`SdGuidanceConfig::set_knob`]), e.g. `("tsm_gamma", 0.5)`.
    #[serde(default)]
    pub knobs: Vec<(String, f64)>,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self {
            model_dir: PathBuf::new(),
            prompt: String::new(),
            negative_prompt: String::new(),
            method: SdMethod::Sds,
            cfg: None,
            view_prompts: true,
            latent_size: 64,
            rgb: false,
            rgb_size: 128,
            knobs: Vec::new(),
        }
    }
}

impl TextConfig {
    /// The grid's colour space for this mode.
    pub fn color_space(&self) -> ColorSpace {
        if self.rgb {
            ColorSpace::Rgb
        } else {
            ColorSpace::Latent
        }
    }

    /// The guidance settings for `model`'s latent size.
    fn guidance_config(
        &self,
        device: Device,
        vae_factor: i64,
    ) -> Result<SdGuidanceConfig, FieldError> {
        let mut g = SdGuidanceConfig::for_method(self.method);
        for (name, value) in &self.knobs {
            g.set_knob(name, *value)?;
        }
        g.model_dir = self.model_dir.clone();
        g.prompt = self.prompt.clone();
        g.negative_prompt = self.negative_prompt.clone();
        if let Some(c) = self.cfg {
            g.cfg = c;
        }
        g.resolution = self.latent_size * vae_factor;
        g.half = device.is_cuda();
        g.phi_particles = 1;
        if matches!(self.method, SdMethod::Vpsd | SdMethod::Esd) {
            g.camera_embedding_dim = Some(16);
        }
        Ok(g)
    }
}

/// The score-distillation objective: the guidance and the cached view-prompt embeddings.
pub struct TextObjective {
    /// The guidance (LoRA attached for VSD / ESD).
    pub guidance: SdGuidance,
    /// Settings.
    pub config: TextConfig,
    cache: HashMap<&'static str, Tensor>,
}

impl std::fmt::Debug for TextObjective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextObjective")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TextObjective {
    /// Loads the model of `config.model_dir` on `device`.
    pub fn load(config: &TextConfig, device: Device) -> Result<Self, FieldError> {
        let kind = if device.is_cuda() {
            Kind::Half
        } else {
            Kind::Float
        };
        let sd = StableDiffusion::load(&config.model_dir, device, kind)
            .map_err(crate::distill::DistillError::from)?;
        Self::new(sd, config.clone())
    }

    /// Wraps a loaded model (e.g. random SD 2.1-base weights for benchmarks).
    pub fn new(sd: StableDiffusion, config: TextConfig) -> Result<Self, FieldError> {
        if config.prompt.trim().is_empty() {
            return Err(FieldError::Config {
                field: "prompt".into(),
                message: "empty: describe the object".into(),
            });
        }
        if config.latent_size < 8 {
            return Err(FieldError::Config {
                field: "latent_size".into(),
                message: format!("{}: expected at least 8", config.latent_size),
            });
        }
        if !config.rgb && sd.vae.config.latent_channels != 4 {
            return Err(FieldError::Config {
                field: "model".into(),
                message: format!(
                    "{}: the VAE has {} latent channels, the latent field holds 4 (use RGB mode)",
                    config.model_dir.display(),
                    sd.vae.config.latent_channels
                ),
            });
        }
        let g = config.guidance_config(sd.device, sd.vae.config.scale_factor())?;
        let guidance = SdGuidance::new(sd, g)?;
        Ok(Self {
            guidance,
            config,
            cache: HashMap::new(),
        })
    }

    /// `[cond, uncond]` embeddings of the prompt with `camera`'s view suffix (cached).
    fn text_for(&mut self, camera: &Camera) -> Tensor {
        let suffix = if self.config.view_prompts {
            camera.view_suffix()
        } else {
            ""
        };
        if let Some(t) = self.cache.get(suffix) {
            return t.shallow_clone();
        }
        let t = self
            .guidance
            .encode_text(&format!("{}{suffix}", self.config.prompt));
        self.cache.insert(suffix, t.shallow_clone());
        t
    }

    /// Number of cached prompt embeddings (at most 5: the four views and the bare prompt).
    pub fn cached_prompts(&self) -> usize {
        self.cache.len()
    }

    /// Renders `cameras` and returns the guidance loss (summed over the cameras, each with its
    /// own view prompt).
    #[allow(clippy::too_many_arguments)]
    pub fn loss(
        &mut self,
        grid: &Grid,
        background: &Tensor,
        cameras: &[Camera],
        samples: i64,
        step: usize,
        total_steps: usize,
        rng: &mut Rng,
    ) -> Result<ObjectiveOutput, FieldError> {
        let size = if self.config.rgb {
            self.config.rgb_size
        } else {
            self.config.latent_size
        };
        let out = render(grid, cameras, size, samples, background, Some(&mut *rng));
        let mut loss = Tensor::zeros([], (Kind::Float, grid.device()));
        let mut value = 0.0;
        let mut terms: Vec<(String, f64)> = Vec::new();
        let lora = matches!(self.config.method, SdMethod::Vpsd | SdMethod::Esd);
        for (i, cam) in cameras.iter().enumerate() {
            let img = out.color.narrow(0, i as i64, 1);
            let z = if self.config.rgb {
                self.guidance.encode(&img)
            } else {
                img
            };
            let text = self.text_for(cam);
            let camera = lora.then(|| {
                Tensor::from_slice(&cam.matrix().map(|x| x as f32))
                    .view([1, 16])
                    .to_device(grid.device())
            });
            let mut ctx = StepCtx {
                step,
                total_steps,
                rng: &mut *rng,
                weights: None,
            };
            let g = self
                .guidance
                .latent_loss(&z, Some(&text), camera.as_ref(), &mut ctx)?;
            loss += g.loss;
            value += g.value / cameras.len() as f64;
            for (k, v) in g.terms {
                match terms.iter_mut().find(|(n, _)| *n == k) {
                    Some((_, acc)) => *acc += v / cameras.len() as f64,
                    None => terms.push((k, v / cameras.len() as f64)),
                }
            }
        }
        Ok(ObjectiveOutput {
            loss,
            value,
            terms,
            render: out,
        })
    }
}
