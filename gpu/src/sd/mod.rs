//! Stable Diffusion 1.x / 2.x on libtorch: tokenizer, CLIP text encoder, UNet with LoRA, VAE, schedulers.
//!
//! The modules mirror diffusers (`UNet2DConditionModel`, `AutoencoderKL`, `DDIMScheduler`) and
//! transformers (`CLIPTextModel`, `CLIPTokenizer`); struct fields and variable-store paths are named
//! exactly like the checkpoint keys so that a diffusers folder loads as is.
//!
//! # Where to put real weights
//! [`StableDiffusion::load`] takes a local diffusers-format folder, as downloaded from the Hugging
//! Face hub (e.g. `stable-diffusion-v1-5/stable-diffusion-v1-5` or
//! `stabilityai/stable-diffusion-2-1-base`):
//! ```text
//! MODEL_DIR/model_index.json
//! MODEL_DIR/tokenizer/{vocab.json, merges.txt | tokenizer.json, special_tokens_map.json, tokenizer_config.json}
//! MODEL_DIR/text_encoder/{config.json, model.safetensors}
//! MODEL_DIR/unet/{config.json, diffusion_pytorch_model.safetensors}
//! MODEL_DIR/vae/{config.json, diffusion_pytorch_model.safetensors}
//! MODEL_DIR/scheduler/scheduler_config.json
//! ```
//! `*.fp16.safetensors` variants and sharded `*.safetensors.index.json` files are accepted too.
//! Pickle weights (`*.bin`, `*.ckpt`) and single-file checkpoints (one `.safetensors` holding all
//! three models in the original CompVis layout) are **not supported**: convert them with diffusers'
//! `save_pretrained` first. A missing folder, file or tensor is reported as one [`SdError`] naming
//! the file and the key.

pub mod attention;
pub mod bench;
pub mod clip;
pub mod config;
pub mod embeddings;
pub mod loader;
pub mod lora;
pub mod pipeline;
pub mod resnet;
pub mod scheduler;
pub mod tokenizer;
pub mod unet_2d;
pub mod unet_2d_blocks;
pub mod vae;

use std::path::PathBuf;

pub use attention::AttentionCapture;
pub use clip::ClipTextTransformer;
pub use config::{ClipTextConfig, SchedulerConfig, UNet2DConditionConfig, VaeConfig};
pub use lora::{Lora, LoraConfig};
pub use pipeline::{StableDiffusion, Txt2ImgOptions, save_png, sds_grad};
pub use scheduler::DdimScheduler;
pub use tokenizer::ClipTokenizer;
pub use unet_2d::{UNet2DConditionModel, UNetInputs};
pub use vae::AutoencoderKL;

/// Everything that can go wrong while loading or running Stable Diffusion.
///
/// Every variant names the file (or folder) involved, and where it applies the key.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum SdError {
    /// A folder that a diffusers model needs does not exist.
    #[error("missing model folder {path}: expected a diffusers folder with {expected}")]
    MissingFolder {
        /// The folder that was looked for.
        path: PathBuf,
        /// What the folder should contain.
        expected: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file (config, vocabulary, safetensors header) is malformed.
    #[error("{path}: invalid JSON: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A weights file does not hold a tensor the model needs.
    #[error("{path}: missing tensor `{key}` ({count} missing in all)")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The first missing key (in sorted order).
        key: String,
        /// How many keys are missing.
        count: usize,
    },
    /// A weights file holds a tensor the configured model does not have (weights of another model,
    /// or a config that does not match them).
    #[error(
        "{path}: unexpected tensor `{key}` ({count} unexpected in all): the weights do not match the model's config.json"
    )]
    UnexpectedTensor {
        /// The weights file.
        path: PathBuf,
        /// The first unexpected key (in sorted order).
        key: String,
        /// How many keys are unexpected in this file.
        count: usize,
    },
    /// A tensor has the wrong shape for the configured model.
    #[error("{path}: tensor `{key}` has shape {found:?}, the config expects {expected:?}")]
    Shape {
        /// The weights file.
        path: PathBuf,
        /// The tensor key.
        key: String,
        /// The shape the model was built with.
        expected: Vec<i64>,
        /// The shape in the file.
        found: Vec<i64>,
    },
    /// A tensor has a dtype we cannot load into a floating-point model.
    #[error("{path}: tensor `{key}` has dtype {found}, expected F16, BF16, F32 or F64")]
    DType {
        /// The weights file.
        path: PathBuf,
        /// The tensor key.
        key: String,
        /// The dtype string in the safetensors header.
        found: String,
    },
    /// A safetensors file is truncated or its header is inconsistent.
    #[error("{path}: malformed safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A config value we do not implement.
    #[error("{path}: unsupported config `{key}` = {value} (supported: {supported})")]
    Unsupported {
        /// The config file.
        path: PathBuf,
        /// The config key.
        key: String,
        /// The value found.
        value: String,
        /// What we support.
        supported: String,
    },
    /// Pickle or single-file weights that we do not read.
    #[error("{path}: unsupported weights format: {message}")]
    UnsupportedWeights {
        /// The file or folder.
        path: PathBuf,
        /// Why, and what to do instead.
        message: String,
    },
    /// The tokenizer files are inconsistent (e.g. a special token missing from the vocabulary).
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An argument out of range (e.g. a timestep ≥ the number of training steps).
    #[error("invalid argument `{name}`: {message}")]
    InvalidArgument {
        /// The argument name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An error reported by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, SdError>;
