//! Model configs read from the diffusers / transformers `config.json` files, with reference presets.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Result, SdError};

/// A config value that diffusers accepts either as one number or as one number per block.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PerBlock<T> {
    /// The same value for every block.
    One(T),
    /// One value per down block (up blocks use the reversed list).
    Each(Vec<T>),
}

impl<T: Copy> PerBlock<T> {
    /// The value for block `i` (clamped to the last entry of a list).
    pub fn get(&self, i: usize) -> T {
        match self {
            PerBlock::One(v) => *v,
            PerBlock::Each(v) => v[i.min(v.len().saturating_sub(1))],
        }
    }

    /// The values for `n` blocks.
    pub fn expand(&self, n: usize) -> Vec<T> {
        (0..n).map(|i| self.get(i)).collect()
    }
}

/// Reads and parses a JSON config, naming the file in errors.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| SdError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| SdError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn unsupported(path: &Path, key: &str, value: impl std::fmt::Debug, supported: &str) -> SdError {
    SdError::Unsupported {
        path: path.to_path_buf(),
        key: key.to_string(),
        value: format!("{value:?}"),
        supported: supported.to_string(),
    }
}

/// `unet/config.json` of a `UNet2DConditionModel`.
///
/// Field names and defaults follow diffusers `UNet2DConditionModel.__init__`
/// (<https://github.com/huggingface/diffusers/blob/v0.32.0/src/diffusers/models/unets/unet_2d_condition.py>).
/// Keys we do not implement are listed in [`UNet2DConditionConfig::validate`].
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct UNet2DConditionConfig {
    /// Latent channels in.
    pub in_channels: i64,
    /// Latent channels out.
    pub out_channels: i64,
    /// Whether the sample is mapped to `2x - 1` first.
    pub center_input_sample: bool,
    /// Sinusoidal embedding order: `cos, sin` when true.
    pub flip_sin_to_cos: bool,
    /// `downscale_freq_shift` of the sinusoidal embedding.
    pub freq_shift: f64,
    /// Down block kinds: `CrossAttnDownBlock2D` or `DownBlock2D`.
    pub down_block_types: Vec<String>,
    /// Mid block kind: `UNetMidBlock2DCrossAttn`.
    pub mid_block_type: Option<String>,
    /// Up block kinds: `CrossAttnUpBlock2D` or `UpBlock2D`.
    pub up_block_types: Vec<String>,
    /// Must be false (only-cross-attention UNets are not implemented).
    pub only_cross_attention: PerBlock<bool>,
    /// Channels of each resolution level.
    pub block_out_channels: Vec<i64>,
    /// ResNet layers per down block (up blocks have one more).
    pub layers_per_block: PerBlock<i64>,
    /// Padding of the strided downsampling conv.
    pub downsample_padding: i64,
    /// Output scale factor of the mid block resnets.
    pub mid_block_scale_factor: f64,
    /// Activation: only `silu`.
    pub act_fn: String,
    /// Group-norm groups.
    pub norm_num_groups: i64,
    /// Group-norm epsilon.
    pub norm_eps: f64,
    /// Width of the text embeddings (768 for SD1.x, 1024 for SD2.x).
    pub cross_attention_dim: PerBlock<i64>,
    /// Transformer blocks inside each `Transformer2DModel`.
    pub transformer_layers_per_block: PerBlock<i64>,
    /// Despite its name, the number of heads when `num_attention_heads` is absent (a diffusers quirk:
    /// SD1.5 has 8, SD2.x `[5, 10, 20, 20]`).
    pub attention_head_dim: PerBlock<i64>,
    /// Number of heads (takes precedence over `attention_head_dim`).
    pub num_attention_heads: Option<PerBlock<i64>>,
    /// Must be false.
    pub dual_cross_attention: bool,
    /// Linear (SD2.x) instead of 1×1 conv (SD1.x) `proj_in` / `proj_out`.
    pub use_linear_projection: bool,
    /// `None`, `"projection"` or `"timestep"`: an embedding added to the time embedding.
    pub class_embed_type: Option<String>,
    /// Must be absent (class-label embedding tables are not implemented).
    pub num_class_embeds: Option<i64>,
    /// Compute attention scores in fp32 (SD2.1-768); SDPA already accumulates in fp32.
    pub upcast_attention: bool,
    /// Only `default`.
    pub resnet_time_scale_shift: String,
    /// Only `positional`.
    pub time_embedding_type: String,
    /// Only 3.
    pub conv_in_kernel: i64,
    /// Only 3.
    pub conv_out_kernel: i64,
    /// Input width of the `"projection"` class embedding.
    pub projection_class_embeddings_input_dim: Option<i64>,
    /// Must be false.
    pub class_embeddings_concat: bool,
    /// Must be absent.
    pub addition_embed_type: Option<String>,
    /// Must be absent.
    pub encoder_hid_dim: Option<i64>,
    /// Must be absent.
    pub time_cond_proj_dim: Option<i64>,
    /// Only `default`.
    pub attention_type: String,
    /// Nominal latent size (informational).
    pub sample_size: Option<serde_json::Value>,
}

impl Default for UNet2DConditionConfig {
    fn default() -> Self {
        Self::sd15()
    }
}

impl UNet2DConditionConfig {
    /// SD 1.5: <https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/unet/config.json>
    pub fn sd15() -> Self {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Self {
            in_channels: 4,
            out_channels: 4,
            center_input_sample: false,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            down_block_types: s(&[
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ]),
            mid_block_type: Some("UNetMidBlock2DCrossAttn".into()),
            up_block_types: s(&[
                "UpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
            ]),
            only_cross_attention: PerBlock::One(false),
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: PerBlock::One(2),
            downsample_padding: 1,
            mid_block_scale_factor: 1.0,
            act_fn: "silu".into(),
            norm_num_groups: 32,
            norm_eps: 1e-5,
            cross_attention_dim: PerBlock::One(768),
            transformer_layers_per_block: PerBlock::One(1),
            attention_head_dim: PerBlock::One(8),
            num_attention_heads: None,
            dual_cross_attention: false,
            use_linear_projection: false,
            class_embed_type: None,
            num_class_embeds: None,
            upcast_attention: false,
            resnet_time_scale_shift: "default".into(),
            time_embedding_type: "positional".into(),
            conv_in_kernel: 3,
            conv_out_kernel: 3,
            projection_class_embeddings_input_dim: None,
            class_embeddings_concat: false,
            addition_embed_type: None,
            encoder_hid_dim: None,
            time_cond_proj_dim: None,
            attention_type: "default".into(),
            sample_size: Some(64.into()),
        }
    }

    /// SD 2.1 base: <https://huggingface.co/stabilityai/stable-diffusion-2-1-base/blob/main/unet/config.json>
    pub fn sd21_base() -> Self {
        Self {
            attention_head_dim: PerBlock::Each(vec![5, 10, 20, 20]),
            cross_attention_dim: PerBlock::One(1024),
            use_linear_projection: true,
            ..Self::sd15()
        }
    }

    /// Reads and validates `unet/config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let c: Self = read_json(path)?;
        c.validate(path)?;
        Ok(c)
    }

    /// Rejects configs that this implementation would silently get wrong.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let n = self.block_out_channels.len();
        if n == 0 {
            return Err(unsupported(
                path,
                "block_out_channels",
                "[]",
                "a non-empty list",
            ));
        }
        if self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(unsupported(
                path,
                "down_block_types",
                (&self.down_block_types, &self.up_block_types),
                "one down and one up block per entry of block_out_channels",
            ));
        }
        for t in &self.down_block_types {
            if t != "CrossAttnDownBlock2D" && t != "DownBlock2D" {
                return Err(unsupported(
                    path,
                    "down_block_types",
                    t,
                    "CrossAttnDownBlock2D, DownBlock2D",
                ));
            }
        }
        for t in &self.up_block_types {
            if t != "CrossAttnUpBlock2D" && t != "UpBlock2D" {
                return Err(unsupported(
                    path,
                    "up_block_types",
                    t,
                    "CrossAttnUpBlock2D, UpBlock2D",
                ));
            }
        }
        if self.mid_block_type.as_deref() != Some("UNetMidBlock2DCrossAttn") {
            return Err(unsupported(
                path,
                "mid_block_type",
                &self.mid_block_type,
                "UNetMidBlock2DCrossAttn",
            ));
        }
        if (0..n).any(|i| self.only_cross_attention.get(i)) {
            return Err(unsupported(
                path,
                "only_cross_attention",
                &self.only_cross_attention,
                "false",
            ));
        }
        let cross = self.cross_attention_dim.expand(n);
        if cross.iter().any(|&d| d != cross[0]) {
            return Err(unsupported(
                path,
                "cross_attention_dim",
                &self.cross_attention_dim,
                "one width for all blocks",
            ));
        }
        let checks: [(&str, bool, String, &str); 12] = [
            ("act_fn", self.act_fn == "silu", self.act_fn.clone(), "silu"),
            (
                "dual_cross_attention",
                !self.dual_cross_attention,
                "true".into(),
                "false",
            ),
            (
                "num_class_embeds",
                self.num_class_embeds.is_none(),
                format!("{:?}", self.num_class_embeds),
                "null",
            ),
            (
                "class_embed_type",
                matches!(
                    self.class_embed_type.as_deref(),
                    None | Some("projection") | Some("timestep")
                ),
                format!("{:?}", self.class_embed_type),
                "null, projection, timestep",
            ),
            (
                "resnet_time_scale_shift",
                self.resnet_time_scale_shift == "default",
                self.resnet_time_scale_shift.clone(),
                "default",
            ),
            (
                "time_embedding_type",
                self.time_embedding_type == "positional",
                self.time_embedding_type.clone(),
                "positional",
            ),
            (
                "conv_in_kernel",
                self.conv_in_kernel == 3,
                self.conv_in_kernel.to_string(),
                "3",
            ),
            (
                "conv_out_kernel",
                self.conv_out_kernel == 3,
                self.conv_out_kernel.to_string(),
                "3",
            ),
            (
                "class_embeddings_concat",
                !self.class_embeddings_concat,
                "true".into(),
                "false",
            ),
            (
                "addition_embed_type",
                self.addition_embed_type.is_none(),
                format!("{:?}", self.addition_embed_type),
                "null",
            ),
            (
                "encoder_hid_dim / time_cond_proj_dim",
                self.encoder_hid_dim.is_none() && self.time_cond_proj_dim.is_none(),
                format!("{:?} / {:?}", self.encoder_hid_dim, self.time_cond_proj_dim),
                "null",
            ),
            (
                "attention_type",
                self.attention_type == "default",
                self.attention_type.clone(),
                "default",
            ),
        ];
        for (key, ok, value, supported) in checks {
            if !ok {
                return Err(SdError::Unsupported {
                    path: path.to_path_buf(),
                    key: key.into(),
                    value,
                    supported: supported.into(),
                });
            }
        }
        if self.class_embed_type.as_deref() == Some("projection")
            && self.projection_class_embeddings_input_dim.is_none()
        {
            return Err(unsupported(
                path,
                "projection_class_embeddings_input_dim",
                "null",
                "an integer when class_embed_type is projection",
            ));
        }
        let heads = self.heads();
        for (i, (&c, &h)) in self.block_out_channels.iter().zip(&heads).enumerate() {
            if h <= 0 || c % h != 0 || c % self.norm_num_groups != 0 {
                return Err(unsupported(
                    path,
                    "attention_head_dim",
                    (i, c, h, self.norm_num_groups),
                    "heads and norm_num_groups dividing block_out_channels",
                ));
            }
        }
        Ok(())
    }

    /// Heads per down block (diffusers: `num_attention_heads or attention_head_dim`).
    pub fn heads(&self) -> Vec<i64> {
        let n = self.block_out_channels.len();
        self.num_attention_heads
            .as_ref()
            .unwrap_or(&self.attention_head_dim)
            .expand(n)
    }

    /// Width of the time embedding (4 × the first block's channels).
    pub fn time_embed_dim(&self) -> i64 {
        self.block_out_channels[0] * 4
    }
}

/// `text_encoder/config.json` of a transformers `CLIPTextModel`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    /// Vocabulary size.
    pub vocab_size: i64,
    /// Width of the hidden states.
    pub hidden_size: i64,
    /// Width of the MLP.
    pub intermediate_size: i64,
    /// Number of encoder layers.
    pub num_hidden_layers: i64,
    /// Attention heads.
    pub num_attention_heads: i64,
    /// Number of positions (77).
    pub max_position_embeddings: i64,
    /// `quick_gelu` (SD1.x) or `gelu` (SD2.x).
    pub hidden_act: String,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self::sd15()
    }
}

impl ClipTextConfig {
    /// SD 1.x (CLIP ViT-L/14): <https://huggingface.co/openai/clip-vit-large-patch14/blob/main/config.json>
    pub fn sd15() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }

    /// SD 2.x (OpenCLIP ViT-H/14 minus its last layer):
    /// <https://huggingface.co/stabilityai/stable-diffusion-2-1-base/blob/main/text_encoder/config.json>
    pub fn sd21() -> Self {
        Self {
            hidden_size: 1024,
            intermediate_size: 4096,
            num_hidden_layers: 23,
            num_attention_heads: 16,
            hidden_act: "gelu".into(),
            ..Self::sd15()
        }
    }

    /// Reads and validates `text_encoder/config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let c: Self = read_json(path)?;
        if c.hidden_act != "gelu" && c.hidden_act != "quick_gelu" {
            return Err(unsupported(
                path,
                "hidden_act",
                &c.hidden_act,
                "gelu, quick_gelu",
            ));
        }
        if c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0 {
            return Err(unsupported(
                path,
                "num_attention_heads",
                c.num_attention_heads,
                "a divisor of hidden_size",
            ));
        }
        Ok(c)
    }
}

/// `vae/config.json` of an `AutoencoderKL`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct VaeConfig {
    /// Image channels in.
    pub in_channels: i64,
    /// Image channels out.
    pub out_channels: i64,
    /// Only `DownEncoderBlock2D`.
    pub down_block_types: Vec<String>,
    /// Only `UpDecoderBlock2D`.
    pub up_block_types: Vec<String>,
    /// Channels per level.
    pub block_out_channels: Vec<i64>,
    /// ResNets per encoder block (decoder blocks have one more).
    pub layers_per_block: i64,
    /// Only `silu`.
    pub act_fn: String,
    /// Latent channels (4).
    pub latent_channels: i64,
    /// Group-norm groups.
    pub norm_num_groups: i64,
    /// Latents are multiplied by this after encoding (0.18215 for SD).
    pub scaling_factor: f64,
    /// Must be absent.
    pub shift_factor: Option<f64>,
    /// Whether the mid blocks have attention.
    pub mid_block_add_attention: bool,
    /// Whether `quant_conv` exists.
    pub use_quant_conv: bool,
    /// Whether `post_quant_conv` exists.
    pub use_post_quant_conv: bool,
}

impl Default for VaeConfig {
    fn default() -> Self {
        // https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/vae/config.json
        Self {
            in_channels: 3,
            out_channels: 3,
            down_block_types: vec!["DownEncoderBlock2D".into(); 4],
            up_block_types: vec!["UpDecoderBlock2D".into(); 4],
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            act_fn: "silu".into(),
            latent_channels: 4,
            norm_num_groups: 32,
            scaling_factor: 0.18215,
            shift_factor: None,
            mid_block_add_attention: true,
            use_quant_conv: true,
            use_post_quant_conv: true,
        }
    }
}

impl VaeConfig {
    /// Reads and validates `vae/config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let c: Self = read_json(path)?;
        if c.block_out_channels.is_empty() {
            return Err(unsupported(
                path,
                "block_out_channels",
                "[]",
                "a non-empty list",
            ));
        }
        if c.down_block_types.len() != c.block_out_channels.len()
            || c.down_block_types.iter().any(|t| t != "DownEncoderBlock2D")
        {
            return Err(unsupported(
                path,
                "down_block_types",
                &c.down_block_types,
                "DownEncoderBlock2D per level",
            ));
        }
        if c.up_block_types.len() != c.block_out_channels.len()
            || c.up_block_types.iter().any(|t| t != "UpDecoderBlock2D")
        {
            return Err(unsupported(
                path,
                "up_block_types",
                &c.up_block_types,
                "UpDecoderBlock2D per level",
            ));
        }
        if c.act_fn != "silu" {
            return Err(unsupported(path, "act_fn", &c.act_fn, "silu"));
        }
        if c.shift_factor.is_some() {
            return Err(unsupported(path, "shift_factor", c.shift_factor, "null"));
        }
        Ok(c)
    }

    /// Spatial downscaling of the VAE (8 for SD).
    pub fn scale_factor(&self) -> i64 {
        1 << (self.block_out_channels.len() - 1)
    }
}

/// `scheduler/scheduler_config.json` (any of the SD schedulers: the fields DDIM/DDPM read).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// Training steps (1000).
    pub num_train_timesteps: i64,
    /// First beta.
    pub beta_start: f64,
    /// Last beta.
    pub beta_end: f64,
    /// `linear`, `scaled_linear` or `squaredcos_cap_v2`.
    pub beta_schedule: String,
    /// Must be absent.
    pub trained_betas: Option<Vec<f64>>,
    /// Clip the predicted x0 to ±`clip_sample_range`.
    pub clip_sample: bool,
    /// Range of `clip_sample`.
    pub clip_sample_range: f64,
    /// Use ᾱ = 1 for the step before t = 0 (else ᾱ₀).
    pub set_alpha_to_one: bool,
    /// Added to the inference timesteps (1 for SD).
    pub steps_offset: i64,
    /// `epsilon` or `v_prediction`.
    pub prediction_type: String,
    /// `leading`, `trailing` or `linspace`.
    pub timestep_spacing: String,
    /// Must be false.
    pub rescale_betas_zero_snr: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        // https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/scheduler/scheduler_config.json
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: "scaled_linear".into(),
            trained_betas: None,
            clip_sample: false,
            clip_sample_range: 1.0,
            set_alpha_to_one: false,
            steps_offset: 1,
            prediction_type: "epsilon".into(),
            timestep_spacing: "leading".into(),
            rescale_betas_zero_snr: false,
        }
    }
}

impl SchedulerConfig {
    /// Reads and validates `scheduler/scheduler_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let c: Self = read_json(path)?;
        c.validate(path)?;
        Ok(c)
    }

    /// Rejects values we do not implement.
    pub fn validate(&self, path: &Path) -> Result<()> {
        if !matches!(
            self.beta_schedule.as_str(),
            "linear" | "scaled_linear" | "squaredcos_cap_v2"
        ) {
            return Err(unsupported(
                path,
                "beta_schedule",
                &self.beta_schedule,
                "linear, scaled_linear, squaredcos_cap_v2",
            ));
        }
        if self.trained_betas.is_some() {
            return Err(unsupported(path, "trained_betas", "a list", "null"));
        }
        if !matches!(self.prediction_type.as_str(), "epsilon" | "v_prediction") {
            return Err(unsupported(
                path,
                "prediction_type",
                &self.prediction_type,
                "epsilon, v_prediction",
            ));
        }
        if !matches!(
            self.timestep_spacing.as_str(),
            "leading" | "trailing" | "linspace"
        ) {
            return Err(unsupported(
                path,
                "timestep_spacing",
                &self.timestep_spacing,
                "leading, trailing, linspace",
            ));
        }
        if self.rescale_betas_zero_snr {
            return Err(unsupported(path, "rescale_betas_zero_snr", true, "false"));
        }
        if self.num_train_timesteps < 2 {
            return Err(unsupported(
                path,
                "num_train_timesteps",
                self.num_train_timesteps,
                ">= 2",
            ));
        }
        Ok(())
    }
}

/// The sub-folders of a diffusers Stable Diffusion folder, checked to exist.
#[derive(Clone, Debug)]
pub struct ModelDirs {
    /// The model folder.
    pub root: PathBuf,
}

impl ModelDirs {
    /// Checks that `root` and its `tokenizer`, `text_encoder`, `unet`, `vae`, `scheduler` folders exist.
    pub fn new(root: &Path) -> Result<Self> {
        let expected =
            "model_index.json, tokenizer/, text_encoder/, unet/, vae/, scheduler/".to_string();
        let single_file = "single-file checkpoints are not supported; convert to a diffusers folder with \
                           StableDiffusionPipeline.from_single_file(FILE).save_pretrained(DIR)";
        let is_checkpoint = |p: &Path| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("ckpt" | "safetensors")
            )
        };
        if root.is_file() && is_checkpoint(root) {
            return Err(SdError::UnsupportedWeights {
                path: root.to_path_buf(),
                message: single_file.into(),
            });
        }
        if !root.is_dir() {
            return Err(SdError::MissingFolder {
                path: root.to_path_buf(),
                expected,
            });
        }
        for sub in ["tokenizer", "text_encoder", "unet", "vae", "scheduler"] {
            let p = root.join(sub);
            if !p.is_dir() {
                let checkpoint = (!root.join("model_index.json").is_file())
                    .then(|| std::fs::read_dir(root).ok())
                    .flatten()
                    .and_then(|rd| rd.flatten().map(|e| e.path()).find(|p| is_checkpoint(p)));
                if let Some(file) = checkpoint {
                    return Err(SdError::UnsupportedWeights {
                        path: file,
                        message: single_file.into(),
                    });
                }
                return Err(SdError::MissingFolder { path: p, expected });
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// `root/sub/file`.
    pub fn file(&self, sub: &str, file: &str) -> PathBuf {
        self.root.join(sub).join(file)
    }
}
