//! CLIP text encoder (transformers `CLIPTextModel`, without the `text_model.` prefix).
//!
//! Reference: <https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/clip/modeling_clip.py>.

use tch::{Kind, Tensor, nn, nn::Module};

use super::config::ClipTextConfig;

/// `embeddings`: token plus learned position embeddings.
#[derive(Debug)]
pub struct ClipTextEmbeddings {
    token_embedding: nn::Embedding,
    position_embedding: nn::Embedding,
}

impl ClipTextEmbeddings {
    fn new(vs: nn::Path, c: &ClipTextConfig) -> Self {
        let cfg = nn::EmbeddingConfig::default();
        Self {
            token_embedding: nn::embedding(
                &vs / "token_embedding",
                c.vocab_size,
                c.hidden_size,
                cfg,
            ),
            position_embedding: nn::embedding(
                &vs / "position_embedding",
                c.max_position_embeddings,
                c.hidden_size,
                cfg,
            ),
        }
    }

    fn forward(&self, input_ids: &Tensor) -> Tensor {
        let seq_len = input_ids.size()[1];
        let position_ids = Tensor::arange(seq_len, (Kind::Int64, input_ids.device())).unsqueeze(0);
        input_ids.apply(&self.token_embedding) + position_ids.apply(&self.position_embedding)
    }
}

/// The sizes of one pre-norm CLIP encoder layer, shared by the text tower (causal) and the image
/// tower (bidirectional, `clip::vision`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncoderLayerDims {
    /// Model width.
    pub hidden_size: i64,
    /// Attention heads.
    pub num_attention_heads: i64,
    /// MLP width.
    pub intermediate_size: i64,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// `quick_gelu` (OpenAI) rather than exact `gelu`.
    pub quick_gelu: bool,
    /// Causal attention mask (the text tower).
    pub causal: bool,
}

impl EncoderLayerDims {
    fn text(c: &ClipTextConfig) -> Self {
        Self {
            hidden_size: c.hidden_size,
            num_attention_heads: c.num_attention_heads,
            intermediate_size: c.intermediate_size,
            layer_norm_eps: c.layer_norm_eps,
            quick_gelu: c.hidden_act == "quick_gelu",
            causal: true,
        }
    }
}

/// `encoder.layers.{i}.self_attn`: multi-head self-attention (causal in the text tower).
#[derive(Debug)]
pub struct ClipAttention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
    num_heads: i64,
    causal: bool,
}

impl ClipAttention {
    fn new(vs: nn::Path, c: &EncoderLayerDims) -> Self {
        let d = c.hidden_size;
        let lin = |name: &str| nn::linear(&vs / name, d, d, Default::default());
        Self {
            q_proj: lin("q_proj"),
            k_proj: lin("k_proj"),
            v_proj: lin("v_proj"),
            out_proj: lin("out_proj"),
            num_heads: c.num_attention_heads,
            causal: c.causal,
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        let (bsize, seq_len, embed_dim) = xs.size3().expect("hidden states are (batch, seq, dim)");
        let head_dim = embed_dim / self.num_heads;
        let shape = |t: Tensor| {
            t.view([bsize, seq_len, self.num_heads, head_dim])
                .transpose(1, 2)
        };
        let q = shape(xs.apply(&self.q_proj));
        let k = shape(xs.apply(&self.k_proj));
        let v = shape(xs.apply(&self.v_proj));
        let out = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            0.0,
            self.causal,
            None,
            false,
        );
        out.transpose(1, 2)
            .reshape([bsize, seq_len, embed_dim])
            .apply(&self.out_proj)
    }
}

/// `encoder.layers.{i}.mlp`: fc1, activation, fc2.
#[derive(Debug)]
pub struct ClipMlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
    quick_gelu: bool,
}

impl Module for ClipMlp {
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
pub struct ClipEncoderLayer {
    self_attn: ClipAttention,
    layer_norm1: nn::LayerNorm,
    mlp: ClipMlp,
    layer_norm2: nn::LayerNorm,
}

impl ClipEncoderLayer {
    /// A layer with fresh variables under `vs` (`encoder.layers.{i}`).
    pub fn new(vs: nn::Path, c: &EncoderLayerDims) -> Self {
        let ln = nn::LayerNormConfig {
            eps: c.layer_norm_eps,
            ..Default::default()
        };
        let d = c.hidden_size;
        Self {
            self_attn: ClipAttention::new(&vs / "self_attn", c),
            layer_norm1: nn::layer_norm(&vs / "layer_norm1", vec![d], ln),
            mlp: ClipMlp {
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
                quick_gelu: c.quick_gelu,
            },
            layer_norm2: nn::layer_norm(&vs / "layer_norm2", vec![d], ln),
        }
    }

    /// `(batch, tokens, hidden)` → the same shape.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let xs = xs + self.self_attn.forward(&xs.apply(&self.layer_norm1));
        &xs + xs.apply(&self.layer_norm2).apply(&self.mlp)
    }
}

/// The CLIP text transformer: `embeddings`, `encoder.layers`, `final_layer_norm`.
#[derive(Debug)]
pub struct ClipTextTransformer {
    embeddings: ClipTextEmbeddings,
    layers: Vec<ClipEncoderLayer>,
    final_layer_norm: nn::LayerNorm,
    /// The config it was built from.
    pub config: ClipTextConfig,
}

impl ClipTextTransformer {
    /// Builds the model with fresh variables under `vs` (keys without the `text_model.` prefix).
    pub fn new(vs: nn::Path, c: &ClipTextConfig) -> Self {
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                ClipEncoderLayer::new(&vs / "encoder" / "layers" / i, &EncoderLayerDims::text(c))
            })
            .collect();
        let ln = nn::LayerNormConfig {
            eps: c.layer_norm_eps,
            ..Default::default()
        };
        Self {
            embeddings: ClipTextEmbeddings::new(&vs / "embeddings", c),
            layers,
            final_layer_norm: nn::layer_norm(&vs / "final_layer_norm", vec![c.hidden_size], ln),
            config: c.clone(),
        }
    }

    /// `last_hidden_state` for `(batch, 77)` int64 token ids: `(batch, 77, hidden_size)`.
    pub fn forward(&self, input_ids: &Tensor) -> Tensor {
        let mut xs = self.embeddings.forward(input_ids);
        for layer in &self.layers {
            xs = layer.forward(&xs);
        }
        xs.apply(&self.final_layer_norm)
    }
}
