//! CLIP (transformers `CLIPModel`) on libtorch: both towers, the projections, the tokenizer and
//! the image preprocessing, loaded from a local transformers folder; CLIP-based rewards.
//!
//! ```text
//! CLIP_DIR/config.json                 text_config, vision_config, projection_dim
//! CLIP_DIR/model.safetensors           (or model.fp16.safetensors, or a sharded index)
//! CLIP_DIR/vocab.json + merges.txt     (or tokenizer.json), special_tokens_map.json, tokenizer_config.json
//! CLIP_DIR/preprocessor_config.json    size, crop_size, image_mean, image_std, resample
//! ```
//! Works for every `CLIPModel` save: `openai/clip-vit-base-patch32`, `-base-patch16`,
//! `-large-patch14`, `laion/CLIP-ViT-H-14-laion2B-s32B-b79K`, `yuvalkirstain/PickScore_v1`. Pickle
//! weights (`pytorch_model.bin`) are refused with the conversion to run. The modules mirror
//! candle-transformers' layout: one file per block, fields named like the checkpoint keys.

pub mod bench;
pub mod config;
pub mod model;
pub mod preprocess;
pub mod reward;
pub mod vision;

use std::path::{Path, PathBuf};

use tch::{Device, Tensor};

pub use config::{ClipConfig, ClipTextTowerConfig, ClipVisionConfig};
pub use model::{ClipModel, normalize};
pub use preprocess::{ClipPreprocessor, Resample};
pub use reward::{
    AestheticHead, AestheticReward, ClipReward, ClipRewardKind, ParticleScorer, ParticleScores,
    RewardTap, TappedReward, frames_to_images,
};
pub use vision::ClipVisionTransformer;

use crate::sd::{ClipTokenizer, Result};

/// A CLIP folder, loaded: model, tokenizer, preprocessor.
#[derive(Debug)]
pub struct Clip {
    /// The model.
    pub model: ClipModel,
    /// The BPE tokenizer.
    pub tokenizer: ClipTokenizer,
    /// The image preprocessing.
    pub preprocess: ClipPreprocessor,
    /// The folder it came from.
    pub dir: PathBuf,
}

impl Clip {
    /// Loads a transformers `CLIPModel` folder on `device` (see the module docs for the files).
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let model = ClipModel::load(dir, device)?;
        let tokenizer = ClipTokenizer::from_dir(dir)?;
        let pp = dir.join("preprocessor_config.json");
        let preprocess = if pp.is_file() {
            ClipPreprocessor::from_file(&pp, model.config.vision_config.image_size)?
        } else {
            ClipPreprocessor::for_size(model.config.vision_config.image_size)
        };
        Ok(Self {
            model,
            tokenizer,
            preprocess,
            dir: dir.to_path_buf(),
        })
    }

    /// `(batch, 77)` token ids of `prompts`.
    pub fn tokenize(&self, prompts: &[&str]) -> Tensor {
        self.tokenizer.encode_batch(prompts)
    }

    /// Unnormalised text features of `prompts`.
    pub fn text_features(&self, prompts: &[&str]) -> Tensor {
        self.model
            .text_features(&self.tokenize(prompts), self.tokenizer.eos_id)
    }

    /// Unnormalised image features of renders `(batch, 3, H, W)` in `[0, 1]` (differentiable).
    pub fn render_features(&self, images: &Tensor) -> Tensor {
        self.model
            .image_features(&self.preprocess.pixel_values(images))
    }

    /// Unnormalised image features of an image file (PNG / JPEG), preprocessed as transformers does.
    pub fn file_features(&self, path: &Path) -> Result<Tensor> {
        let (w, h, rgb) = preprocess::read_rgb8(path)?;
        Ok(self
            .model
            .image_features(&self.preprocess.pixel_values_rgb8(w, h, &rgb)))
    }

    /// Cosine similarity of each row of `image_features` to the text features `text` (one row).
    pub fn cosine(image_features: &Tensor, text_features: &Tensor) -> Tensor {
        (normalize(image_features) * normalize(text_features)).sum_dim_intlist(
            -1,
            false,
            tch::Kind::Float,
        )
    }
}
