//! CLIP image tower (transformers `CLIPVisionTransformer`, keys under `vision_model.`): patch
//! embeddings with a class token, `pre_layrnorm` (sic), a bidirectional pre-norm encoder and
//! `post_layernorm` on the class token (the pooled output).
//!
//! Reference: <https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/clip/modeling_clip.py>.

use tch::{Kind, Tensor, nn};

use super::config::ClipVisionConfig;
use crate::sd::clip::{ClipEncoderLayer, EncoderLayerDims};

/// `embeddings`: `class_embedding`, `patch_embedding` (a bias-free conv with stride = patch),
/// `position_embedding`.
#[derive(Debug)]
pub struct ClipVisionEmbeddings {
    class_embedding: Tensor,
    patch_embedding: nn::Conv2D,
    position_embedding: nn::Embedding,
    num_positions: i64,
}

impl ClipVisionEmbeddings {
    fn new(vs: nn::Path, c: &ClipVisionConfig) -> Self {
        let conv = nn::ConvConfig {
            stride: c.patch_size,
            bias: false,
            ..Default::default()
        };
        Self {
            class_embedding: vs.var(
                "class_embedding",
                &[c.hidden_size],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            patch_embedding: nn::conv2d(
                &vs / "patch_embedding",
                c.num_channels,
                c.hidden_size,
                c.patch_size,
                conv,
            ),
            position_embedding: nn::embedding(
                &vs / "position_embedding",
                c.num_positions(),
                c.hidden_size,
                Default::default(),
            ),
            num_positions: c.num_positions(),
        }
    }

    /// `(batch, 3, S, S)` normalised pixels → `(batch, 1 + patches, hidden)`.
    fn forward(&self, pixel_values: &Tensor) -> Tensor {
        let b = pixel_values.size()[0];
        let patches = pixel_values
            .apply(&self.patch_embedding)
            .flatten(2, -1)
            .transpose(1, 2);
        let d = self.class_embedding.size()[0];
        let cls = self
            .class_embedding
            .to_kind(patches.kind())
            .view([1, 1, d])
            .expand([b, 1, d], false);
        let xs = Tensor::cat(&[cls, patches], 1);
        let ids = Tensor::arange(self.num_positions, (Kind::Int64, xs.device())).unsqueeze(0);
        xs + ids.apply(&self.position_embedding)
    }
}

/// The CLIP vision transformer: `embeddings`, `pre_layrnorm`, `encoder.layers`, `post_layernorm`.
#[derive(Debug)]
pub struct ClipVisionTransformer {
    embeddings: ClipVisionEmbeddings,
    pre_layrnorm: nn::LayerNorm,
    layers: Vec<ClipEncoderLayer>,
    post_layernorm: nn::LayerNorm,
    /// The config it was built from.
    pub config: ClipVisionConfig,
}

impl ClipVisionTransformer {
    /// Builds the tower with fresh variables under `vs` (`vision_model` in a `CLIPModel`).
    pub fn new(vs: nn::Path, c: &ClipVisionConfig) -> Self {
        let ln = nn::LayerNormConfig {
            eps: c.layer_norm_eps,
            ..Default::default()
        };
        // The same pre-norm layer as the text tower, without the causal mask.
        let dims = EncoderLayerDims {
            hidden_size: c.hidden_size,
            num_attention_heads: c.num_attention_heads,
            intermediate_size: c.intermediate_size,
            layer_norm_eps: c.layer_norm_eps,
            quick_gelu: c.hidden_act == "quick_gelu",
            causal: false,
        };
        Self {
            embeddings: ClipVisionEmbeddings::new(&vs / "embeddings", c),
            pre_layrnorm: nn::layer_norm(&vs / "pre_layrnorm", vec![c.hidden_size], ln),
            layers: (0..c.num_hidden_layers)
                .map(|i| ClipEncoderLayer::new(&vs / "encoder" / "layers" / i, &dims))
                .collect(),
            post_layernorm: nn::layer_norm(&vs / "post_layernorm", vec![c.hidden_size], ln),
            config: c.clone(),
        }
    }

    /// `(last_hidden_state, pooler_output)` for `(batch, 3, image_size, image_size)` normalised
    /// pixels: `(batch, 1 + patches, hidden)` and `(batch, hidden)` (the class token after
    /// `post_layernorm`).
    pub fn forward(&self, pixel_values: &Tensor) -> (Tensor, Tensor) {
        let mut xs = self
            .embeddings
            .forward(pixel_values)
            .apply(&self.pre_layrnorm);
        for layer in &self.layers {
            xs = layer.forward(&xs);
        }
        let pooled = xs.select(1, 0).apply(&self.post_layernorm);
        (xs, pooled)
    }
}
