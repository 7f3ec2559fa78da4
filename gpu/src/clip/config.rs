//! `config.json` of a transformers `CLIPModel` (`text_config`, `vision_config`, projection, logit
//! scale), with transformers' defaults for every key a (diff-only) save may leave out, and presets
//! of the OpenAI / LAION architectures for random-weight benchmarks.
//!
//! Reference: <https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/clip/configuration_clip.py>.

use std::path::Path;

use serde::Deserialize;

use crate::sd::config::read_json;
use crate::sd::{ClipTextConfig, Result, SdError};

/// `text_config` of a `CLIPConfig` (transformers' `CLIPTextConfig` defaults: the ViT-B/32 text tower).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClipTextTowerConfig {
    /// Vocabulary size.
    pub vocab_size: i64,
    /// Width of the hidden states.
    pub hidden_size: i64,
    /// Width of the MLP.
    pub intermediate_size: i64,
    /// Encoder layers.
    pub num_hidden_layers: i64,
    /// Attention heads.
    pub num_attention_heads: i64,
    /// Positions (77).
    pub max_position_embeddings: i64,
    /// `quick_gelu` or `gelu`.
    pub hidden_act: String,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
}

impl Default for ClipTextTowerConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

impl ClipTextTowerConfig {
    /// The same numbers as the Stable Diffusion text-encoder config (whose transformer is reused).
    pub fn to_sd(&self) -> ClipTextConfig {
        ClipTextConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            max_position_embeddings: self.max_position_embeddings,
            hidden_act: self.hidden_act.clone(),
            layer_norm_eps: self.layer_norm_eps,
        }
    }
}

/// `vision_config` of a `CLIPConfig` (transformers' `CLIPVisionConfig` defaults: ViT-B/32).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClipVisionConfig {
    /// Width of the hidden states.
    pub hidden_size: i64,
    /// Width of the MLP.
    pub intermediate_size: i64,
    /// Encoder layers.
    pub num_hidden_layers: i64,
    /// Attention heads.
    pub num_attention_heads: i64,
    /// Input channels (3).
    pub num_channels: i64,
    /// Input side in pixels.
    pub image_size: i64,
    /// Patch side in pixels.
    pub patch_size: i64,
    /// `quick_gelu` or `gelu`.
    pub hidden_act: String,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

impl ClipVisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> i64 {
        self.image_size / self.patch_size
    }

    /// Positions: one per patch plus the class token.
    pub fn num_positions(&self) -> i64 {
        self.grid() * self.grid() + 1
    }
}

/// `config.json` of a `CLIPModel`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClipConfig {
    /// The text tower.
    pub text_config: ClipTextTowerConfig,
    /// The image tower.
    pub vision_config: ClipVisionConfig,
    /// Width of the joint embedding space.
    pub projection_dim: i64,
    /// Initial value of `logit_scale` (its log; the checkpoint's value is what counts).
    pub logit_scale_init_value: f64,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self::vit_b32()
    }
}

fn unsupported(path: &Path, key: &str, value: impl std::fmt::Debug, supported: &str) -> SdError {
    SdError::Unsupported {
        path: path.to_path_buf(),
        key: key.to_string(),
        value: format!("{value:?}"),
        supported: supported.to_string(),
    }
}

impl ClipConfig {
    /// `openai/clip-vit-base-patch32`.
    pub fn vit_b32() -> Self {
        Self {
            text_config: ClipTextTowerConfig::default(),
            vision_config: ClipVisionConfig::default(),
            projection_dim: 512,
            logit_scale_init_value: 2.6592,
        }
    }

    /// `openai/clip-vit-base-patch16`.
    pub fn vit_b16() -> Self {
        let mut c = Self::vit_b32();
        c.vision_config.patch_size = 16;
        c
    }

    /// `openai/clip-vit-large-patch14` (224 px).
    pub fn vit_l14() -> Self {
        Self {
            text_config: ClipTextTowerConfig {
                hidden_size: 768,
                intermediate_size: 3072,
                num_attention_heads: 12,
                ..ClipTextTowerConfig::default()
            },
            vision_config: ClipVisionConfig {
                hidden_size: 1024,
                intermediate_size: 4096,
                num_hidden_layers: 24,
                num_attention_heads: 16,
                patch_size: 14,
                ..ClipVisionConfig::default()
            },
            projection_dim: 768,
            logit_scale_init_value: 2.6592,
        }
    }

    /// `laion/CLIP-ViT-H-14-laion2B-s32B-b79K` (the PickScore backbone).
    pub fn vit_h14() -> Self {
        Self {
            text_config: ClipTextTowerConfig {
                hidden_size: 1024,
                intermediate_size: 4096,
                num_hidden_layers: 24,
                num_attention_heads: 16,
                hidden_act: "gelu".into(),
                ..ClipTextTowerConfig::default()
            },
            vision_config: ClipVisionConfig {
                hidden_size: 1280,
                intermediate_size: 5120,
                num_hidden_layers: 32,
                num_attention_heads: 16,
                patch_size: 14,
                hidden_act: "gelu".into(),
                ..ClipVisionConfig::default()
            },
            projection_dim: 1024,
            logit_scale_init_value: 2.6592,
        }
    }

    /// A preset by name: `vit-b32`, `vit-b16`, `vit-l14`, `vit-h14`.
    pub fn preset(name: &str) -> Option<Self> {
        Some(
            match name.to_ascii_lowercase().replace(['/', '_'], "-").as_str() {
                "vit-b32" | "vit-b-32" => Self::vit_b32(),
                "vit-b16" | "vit-b-16" => Self::vit_b16(),
                "vit-l14" | "vit-l-14" => Self::vit_l14(),
                "vit-h14" | "vit-h-14" => Self::vit_h14(),
                _ => return None,
            },
        )
    }

    /// Reads and validates a `CLIPModel` `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let c: Self = read_json(path)?;
        c.validate(path)?;
        Ok(c)
    }

    /// Checks the values this implementation supports (`path` names the file in errors).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let t = &self.text_config;
        let v = &self.vision_config;
        for (key, act) in [
            ("text_config.hidden_act", &t.hidden_act),
            ("vision_config.hidden_act", &v.hidden_act),
        ] {
            if act != "gelu" && act != "quick_gelu" {
                return Err(unsupported(path, key, act, "gelu, quick_gelu"));
            }
        }
        for (key, width, heads) in [
            (
                "text_config.num_attention_heads",
                t.hidden_size,
                t.num_attention_heads,
            ),
            (
                "vision_config.num_attention_heads",
                v.hidden_size,
                v.num_attention_heads,
            ),
        ] {
            if heads <= 0 || width % heads != 0 {
                return Err(unsupported(path, key, heads, "a divisor of hidden_size"));
            }
        }
        if v.patch_size <= 0 || v.image_size < v.patch_size {
            return Err(unsupported(
                path,
                "vision_config.patch_size",
                v.patch_size,
                "1 ..= image_size",
            ));
        }
        if v.num_channels != 3 {
            return Err(unsupported(
                path,
                "vision_config.num_channels",
                v.num_channels,
                "3",
            ));
        }
        if self.projection_dim <= 0 {
            return Err(unsupported(
                path,
                "projection_dim",
                self.projection_dim,
                "> 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_published_token_counts() {
        assert_eq!(ClipConfig::vit_b32().vision_config.num_positions(), 50);
        assert_eq!(ClipConfig::vit_b16().vision_config.num_positions(), 197);
        assert_eq!(ClipConfig::vit_l14().vision_config.num_positions(), 257);
        assert_eq!(ClipConfig::preset("ViT-H/14"), Some(ClipConfig::vit_h14()));
        assert_eq!(ClipConfig::preset("vit-x"), None);
    }

    #[test]
    fn a_diff_only_config_takes_transformers_defaults() {
        let c: ClipConfig = serde_json::from_str(
            r#"{"text_config": {"hidden_act": "gelu"}, "vision_config": {"patch_size": 16}}"#,
        )
        .unwrap();
        assert_eq!(c.text_config.hidden_size, 512);
        assert_eq!(c.text_config.hidden_act, "gelu");
        assert_eq!(c.vision_config.patch_size, 16);
        assert_eq!(c.vision_config.hidden_size, 768);
        assert_eq!(c.projection_dim, 512);
        let bad = ClipConfig {
            vision_config: ClipVisionConfig {
                hidden_act: "relu".into(),
                ..Default::default()
            },
            ..c
        };
        let e = bad
            .validate(Path::new("x/config.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x/config.json") && e.contains("vision_config.hidden_act"),
            "{e}"
        );
    }
}
