//! Attention blocks: `Attention`, `BasicTransformerBlock`, `Transformer2DModel`, the VAE's
//! spatial self-attention, and optional capture of cross-attention maps.
//!
//! References (diffusers v0.32.0): `models/attention_processor.py` (`Attention`, `AttnProcessor2_0`),
//! `models/attention.py` (`BasicTransformerBlock`, `FeedForward`, `GEGLU`),
//! `models/transformers/transformer_2d.py`. All attention goes through
//! `scaled_dot_product_attention`; `upcast_attention` needs no special path because SDPA already
//! accumulates in fp32 (this is what diffusers' `AttnProcessor2_0` does too).

use std::collections::BTreeMap;
use std::sync::Mutex;

use tch::{Kind, Tensor, nn, nn::Module};

use super::lora::LoraLinear;

/// Per-call settings threaded through the UNet blocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttnCtx<'a> {
    /// LoRA scale (0 = pretrained weights only).
    pub lora_scale: f64,
    /// Where to record cross-attention maps, if anywhere.
    pub capture: Option<&'a AttentionCapture>,
}

/// Collects cross-attention probabilities per text token, averaged over heads and layers, at
/// selected latent resolutions (SVGDreamer's semantic initialisation uses 16×16 and 32×32 at a
/// 64×64 latent).
///
/// Capturing computes `softmax(q kᵀ / √d)` explicitly next to SDPA, so enable it for one pass only.
#[derive(Debug)]
pub struct AttentionCapture {
    resolutions: Vec<i64>,
    /// `(height, width)` → (sum of `(batch, tokens, h*w)` maps, count).
    maps: Mutex<BTreeMap<(i64, i64), (Tensor, i64)>>,
}

impl AttentionCapture {
    /// Captures cross-attention at the layers whose feature map is `res × res` for `res` in `resolutions`.
    pub fn new(resolutions: &[i64]) -> Self {
        Self {
            resolutions: resolutions.to_vec(),
            maps: Mutex::new(BTreeMap::new()),
        }
    }

    fn wants(&self, height: i64) -> bool {
        self.resolutions.contains(&height)
    }

    fn record(&self, height: i64, width: i64, probs: Tensor) {
        // probs: (batch, h*w, tokens) averaged over heads.
        let probs = probs
            .detach()
            .to_kind(Kind::Float)
            .transpose(1, 2)
            .contiguous();
        let mut maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        maps.entry((height, width))
            .and_modify(|(sum, n)| {
                *sum = &*sum + &probs;
                *n += 1;
            })
            .or_insert((probs, 1));
    }

    /// The average map at `res`: `(batch, tokens, res, res_w)`, or `None` if nothing was captured there.
    pub fn map(&self, res: i64) -> Option<Tensor> {
        let maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        maps.iter()
            .find(|((h, _), _)| *h == res)
            .map(|((h, w), (sum, n))| {
                let (b, t, _) = sum.size3().expect("stored maps are 3-D");
                (sum / *n as f64).view([b, t, *h, *w])
            })
    }

    /// All captured resolutions resized (bilinear) to `res × res` and averaged over every layer:
    /// `(batch, tokens, res, res)`.
    pub fn aggregate(&self, res: i64) -> Option<Tensor> {
        let maps = self.maps.lock().unwrap_or_else(|e| e.into_inner());
        let mut acc: Option<Tensor> = None;
        let mut total = 0;
        for ((h, w), (sum, n)) in maps.iter() {
            let (b, t, _) = sum.size3().expect("stored maps are 3-D");
            let m = sum
                .view([b * t, 1, *h, *w])
                .upsample_bilinear2d([res, res], false, None, None)
                .view([b, t, res, res]);
            acc = Some(match acc {
                Some(a) => a + m,
                None => m,
            });
            total += n;
        }
        acc.map(|a| a / total as f64)
    }

    /// Forgets everything captured so far.
    pub fn clear(&self) {
        self.maps.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// diffusers `Attention` as used in the UNet: `to_q`, `to_k`, `to_v` (no bias), `to_out.0`.
#[derive(Debug)]
pub struct Attention {
    to_q: LoraLinear,
    to_k: LoraLinear,
    to_v: LoraLinear,
    to_out: LoraLinear,
    heads: i64,
    is_cross: bool,
}

impl Attention {
    /// `query_dim` in, `heads × dim_head` inner; `cross_attention_dim` is the key/value width
    /// (`None`: self-attention). `bias` applies to q/k/v (`to_out.0` always has one).
    pub fn new(
        vs: nn::Path,
        query_dim: i64,
        cross_attention_dim: Option<i64>,
        heads: i64,
        dim_head: i64,
        bias: bool,
    ) -> Self {
        let inner = heads * dim_head;
        let kv = cross_attention_dim.unwrap_or(query_dim);
        Self {
            to_q: LoraLinear::new(&vs / "to_q", query_dim, inner, bias),
            to_k: LoraLinear::new(&vs / "to_k", kv, inner, bias),
            to_v: LoraLinear::new(&vs / "to_v", kv, inner, bias),
            to_out: LoraLinear::new(&vs / "to_out" / 0, inner, query_dim, true),
            heads,
            is_cross: cross_attention_dim.is_some(),
        }
    }

    /// Attaches LoRA adapters to the four projections.
    pub fn add_lora(&mut self, vs: &nn::Path, rank: i64) {
        self.to_q.add_lora(&(vs / "to_q"), rank);
        self.to_k.add_lora(&(vs / "to_k"), rank);
        self.to_v.add_lora(&(vs / "to_v"), rank);
        self.to_out.add_lora(&(vs / "to_out" / 0), rank);
    }

    /// `xs`: `(batch, tokens, query_dim)`; `context`: `(batch, ctx_tokens, kv_dim)` for cross-attention.
    /// `hw` is the feature-map size of `xs`, used to label captured maps.
    pub fn forward(
        &self,
        xs: &Tensor,
        context: Option<&Tensor>,
        ctx: &AttnCtx,
        hw: (i64, i64),
    ) -> Tensor {
        let (bsize, n, _) = xs.size3().expect("attention input is (batch, tokens, dim)");
        let context = context.unwrap_or(xs);
        let s = ctx.lora_scale;
        let q = self.to_q.forward(xs, s);
        let k = self.to_k.forward(context, s);
        let v = self.to_v.forward(context, s);
        let inner = q.size()[2];
        let dim_head = inner / self.heads;
        let split = |t: Tensor| t.view([bsize, -1, self.heads, dim_head]).transpose(1, 2);
        let (q, k, v) = (split(q), split(k), split(v));
        if let Some(capture) = ctx.capture.filter(|c| self.is_cross && c.wants(hw.0)) {
            let probs = (q
                .to_kind(Kind::Float)
                .matmul(&k.to_kind(Kind::Float).transpose(-1, -2))
                * (dim_head as f64).powf(-0.5))
            .softmax(-1, Kind::Float)
            .mean_dim(1, false, Kind::Float);
            capture.record(hw.0, hw.1, probs);
        }
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
        let out = out.transpose(1, 2).reshape([bsize, n, inner]);
        self.to_out.forward(&out, s)
    }
}

/// `ff`: GEGLU feed-forward (`net.0.proj` → `x · gelu(gate)` → `net.2`).
#[derive(Debug)]
pub struct FeedForward {
    net_0_proj: nn::Linear,
    net_2: nn::Linear,
}

impl FeedForward {
    fn new(vs: nn::Path, dim: i64) -> Self {
        let inner = dim * 4;
        Self {
            net_0_proj: nn::linear(&vs / "net" / 0 / "proj", dim, inner * 2, Default::default()),
            net_2: nn::linear(&vs / "net" / 2, inner, dim, Default::default()),
        }
    }
}

impl Module for FeedForward {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let h = xs.apply(&self.net_0_proj).chunk(2, -1);
        (&h[0] * h[1].gelu("none")).apply(&self.net_2)
    }
}

/// `transformer_blocks.{i}`: self-attention, cross-attention, feed-forward, each pre-LayerNorm.
#[derive(Debug)]
pub struct BasicTransformerBlock {
    norm1: nn::LayerNorm,
    attn1: Attention,
    norm2: nn::LayerNorm,
    attn2: Attention,
    norm3: nn::LayerNorm,
    ff: FeedForward,
}

impl BasicTransformerBlock {
    fn new(vs: nn::Path, dim: i64, heads: i64, dim_head: i64, cross_attention_dim: i64) -> Self {
        let ln = || nn::LayerNormConfig::default();
        Self {
            norm1: nn::layer_norm(&vs / "norm1", vec![dim], ln()),
            attn1: Attention::new(&vs / "attn1", dim, None, heads, dim_head, false),
            norm2: nn::layer_norm(&vs / "norm2", vec![dim], ln()),
            attn2: Attention::new(
                &vs / "attn2",
                dim,
                Some(cross_attention_dim),
                heads,
                dim_head,
                false,
            ),
            norm3: nn::layer_norm(&vs / "norm3", vec![dim], ln()),
            ff: FeedForward::new(&vs / "ff", dim),
        }
    }

    fn forward(
        &self,
        xs: &Tensor,
        encoder_hidden_states: &Tensor,
        ctx: &AttnCtx,
        hw: (i64, i64),
    ) -> Tensor {
        let xs = self.attn1.forward(&xs.apply(&self.norm1), None, ctx, hw) + xs;
        let xs = self
            .attn2
            .forward(&xs.apply(&self.norm2), Some(encoder_hidden_states), ctx, hw)
            + xs;
        xs.apply(&self.norm3).apply(&self.ff) + xs
    }
}

/// Projection in/out of the transformer: 1×1 conv (SD1.x) or linear (SD2.x).
#[derive(Debug)]
enum Proj {
    Conv(nn::Conv2D),
    Linear(nn::Linear),
}

/// `attentions.{i}` of a cross-attention UNet block (diffusers `Transformer2DModel`).
#[derive(Debug)]
pub struct Transformer2DModel {
    norm: nn::GroupNorm,
    proj_in: Proj,
    transformer_blocks: Vec<BasicTransformerBlock>,
    proj_out: Proj,
}

/// Shape of a `Transformer2DModel`.
#[derive(Clone, Copy, Debug)]
pub struct Transformer2DConfig {
    /// Channels of the feature map.
    pub in_channels: i64,
    /// Heads.
    pub heads: i64,
    /// Transformer blocks.
    pub num_layers: i64,
    /// Width of the text embeddings.
    pub cross_attention_dim: i64,
    /// Group-norm groups.
    pub norm_num_groups: i64,
    /// Linear instead of 1×1-conv projections.
    pub use_linear_projection: bool,
}

impl Transformer2DModel {
    /// Builds the block; the head size is `in_channels / heads`.
    pub fn new(vs: nn::Path, c: Transformer2DConfig) -> Self {
        let dim_head = c.in_channels / c.heads;
        let inner = c.heads * dim_head;
        let norm = nn::group_norm(
            &vs / "norm",
            c.norm_num_groups,
            c.in_channels,
            nn::GroupNormConfig {
                eps: 1e-6,
                ..Default::default()
            },
        );
        let proj = |name: &str, i: i64, o: i64| {
            if c.use_linear_projection {
                Proj::Linear(nn::linear(&vs / name, i, o, Default::default()))
            } else {
                Proj::Conv(nn::conv2d(&vs / name, i, o, 1, Default::default()))
            }
        };
        Self {
            norm,
            proj_in: proj("proj_in", c.in_channels, inner),
            transformer_blocks: (0..c.num_layers)
                .map(|i| {
                    BasicTransformerBlock::new(
                        &vs / "transformer_blocks" / i,
                        inner,
                        c.heads,
                        dim_head,
                        c.cross_attention_dim,
                    )
                })
                .collect(),
            proj_out: proj("proj_out", inner, c.in_channels),
        }
    }

    /// Attaches LoRA adapters to every attention.
    pub fn add_lora(&mut self, vs: &nn::Path, rank: i64) {
        for (i, b) in self.transformer_blocks.iter_mut().enumerate() {
            b.attn1
                .add_lora(&(vs / "transformer_blocks" / i / "attn1"), rank);
            b.attn2
                .add_lora(&(vs / "transformer_blocks" / i / "attn2"), rank);
        }
    }

    /// `xs`: `(batch, channels, h, w)`; `encoder_hidden_states`: `(batch, 77, cross_attention_dim)`.
    pub fn forward(&self, xs: &Tensor, encoder_hidden_states: &Tensor, ctx: &AttnCtx) -> Tensor {
        let (bsize, _channels, height, width) = xs.size4().expect("feature map is 4-D");
        let residual = xs;
        let xs = xs.apply(&self.norm);
        let mut xs = match &self.proj_in {
            Proj::Conv(conv) => {
                let xs = xs.apply(conv);
                let inner = xs.size()[1];
                xs.permute([0, 2, 3, 1])
                    .reshape([bsize, height * width, inner])
            }
            Proj::Linear(lin) => {
                let c = xs.size()[1];
                xs.permute([0, 2, 3, 1])
                    .reshape([bsize, height * width, c])
                    .apply(lin)
            }
        };
        for block in &self.transformer_blocks {
            xs = block.forward(&xs, encoder_hidden_states, ctx, (height, width));
        }
        let xs = match &self.proj_out {
            Proj::Conv(conv) => {
                let inner = xs.size()[2];
                xs.reshape([bsize, height, width, inner])
                    .permute([0, 3, 1, 2])
                    .contiguous()
                    .apply(conv)
            }
            Proj::Linear(lin) => {
                let xs = xs.apply(lin);
                let c = xs.size()[2];
                xs.reshape([bsize, height, width, c])
                    .permute([0, 3, 1, 2])
                    .contiguous()
            }
        };
        xs + residual
    }
}

/// The VAE mid-block attention: `group_norm`, one-head self-attention with biases, residual.
#[derive(Debug)]
pub struct VaeAttention {
    group_norm: nn::GroupNorm,
    attn: Attention,
}

impl VaeAttention {
    /// Single head over all `channels`; keys `group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0`.
    pub fn new(vs: nn::Path, channels: i64, groups: i64) -> Self {
        let gn = nn::GroupNormConfig {
            eps: 1e-6,
            ..Default::default()
        };
        Self {
            group_norm: nn::group_norm(&vs / "group_norm", groups, channels, gn),
            attn: Attention::new(vs, channels, None, 1, channels, true),
        }
    }
}

impl Module for VaeAttention {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let (bsize, channels, height, width) = xs.size4().expect("feature map is 4-D");
        let h = xs
            .apply(&self.group_norm)
            .view([bsize, channels, height * width])
            .transpose(1, 2);
        let h = self
            .attn
            .forward(&h, None, &AttnCtx::default(), (height, width));
        h.transpose(1, 2).reshape([bsize, channels, height, width]) + xs
    }
}
