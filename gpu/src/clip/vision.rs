//! CLIP image tower (transformers `CLIPVisionTransformer`, keys under `vision_model.`): patch
//! embeddings with a class token, `pre_layrnorm` (sic), a bidirectional pre-norm encoder and
//! `post_layernorm` on the class token (the pooled output).
//!
//! Reference: <https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/clip/modeling_clip.py>.

use tch::{Kind, Tensor, nn, nn::Module};

use super::config::ClipVisionConfig;

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

/// `encoder.layers.{i}.self_attn`: bidirectional multi-head self-attention.
#[derive(Debug)]
pub struct ClipVisionAttention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
    num_heads: i64,
}

impl ClipVisionAttention {
    fn new(vs: nn::Path, c: &ClipVisionConfig) -> Self {
        let d = c.hidden_size;
        let lin = |name: &str| nn::linear(&vs / name, d, d, Default::default());
        Self {
            q_proj: lin("q_proj"),
            k_proj: lin("k_proj"),
            v_proj: lin("v_proj"),
            out_proj: lin("out_proj"),
            num_heads: c.num_attention_heads,
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        let (b, n, d) = xs.size3().expect("hidden states are (batch, tokens, dim)");
        let hd = d / self.num_heads;
        let shape = |t: Tensor| t.view([b, n, self.num_heads, hd]).transpose(1, 2);
        let q = shape(xs.apply(&self.q_proj));
        let k = shape(xs.apply(&self.k_proj));
        let v = shape(xs.apply(&self.v_proj));
        let out = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            0.0,
            false,
            None,
            false,
        );
        out.transpose(1, 2).reshape([b, n, d]).apply(&self.out_proj)
    }
}

/// `encoder.layers.{i}.mlp`: fc1, activation, fc2.
#[derive(Debug)]
pub struct ClipVisionMlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
    quick_gelu: bool,
}

impl Module for ClipVisionMlp {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let xs = xs.apply(&self.fc1);
        let xs = if self.quick_gelu {
            &xs * (&xs * 1.702).sigmoid()
        } else {
            xs.gelu("none")
        };
        xs.apply(&self.fc2)
    }
}

/// `encoder.layers.{i}`: pre-norm transformer layer.
#[derive(Debug)]
pub struct ClipVisionEncoderLayer {
    self_attn: ClipVisionAttention,
    layer_norm1: nn::LayerNorm,
    mlp: ClipVisionMlp,
    layer_norm2: nn::LayerNorm,
}

impl ClipVisionEncoderLayer {
    fn new(vs: nn::Path, c: &ClipVisionConfig) -> Self {
        let ln = nn::LayerNormConfig {
            eps: c.layer_norm_eps,
            ..Default::default()
        };
        let d = c.hidden_size;
        Self {
            self_attn: ClipVisionAttention::new(&vs / "self_attn", c),
            layer_norm1: nn::layer_norm(&vs / "layer_norm1", vec![d], ln),
            mlp: ClipVisionMlp {
                fc1: nn::linear(
                    &vs / "mlp" / "fc1",
                    d,
                    c.intermediate_size,
                    Default::default(),
                ),
                fc2: nn::linear(
                    &vs / "mlp" / "fc2",
                    c.intermediate_size,
                    d,
                    Default::default(),
                ),
                quick_gelu: c.hidden_act == "quick_gelu",
            },
            layer_norm2: nn::layer_norm(&vs / "layer_norm2", vec![d], ln),
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        let xs = xs + self.self_attn.forward(&xs.apply(&self.layer_norm1));
        &xs + xs.apply(&self.layer_norm2).apply(&self.mlp)
    }
}

/// The CLIP vision transformer: `embeddings`, `pre_layrnorm`, `encoder.layers`, `post_layernorm`.
#[derive(Debug)]
pub struct ClipVisionTransformer {
    embeddings: ClipVisionEmbeddings,
    pre_layrnorm: nn::LayerNorm,
    layers: Vec<ClipVisionEncoderLayer>,
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
        Self {
            embeddings: ClipVisionEmbeddings::new(&vs / "embeddings", c),
            pre_layrnorm: nn::layer_norm(&vs / "pre_layrnorm", vec![c.hidden_size], ln),
            layers: (0..c.num_hidden_layers)
                .map(|i| ClipVisionEncoderLayer::new(&vs / "encoder" / "layers" / i, c))
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
