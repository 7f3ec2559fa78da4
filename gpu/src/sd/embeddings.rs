//! Timestep embeddings: sinusoidal projection (`Timesteps`) and the MLP (`TimestepEmbedding`).
//!
//! Reference: diffusers v0.32.0 `models/embeddings.py` (`get_timestep_embedding`, `TimestepEmbedding`).

use tch::{Kind, Tensor, nn, nn::Module};

/// Sinusoidal embedding of `(batch,)` timesteps: `(batch, dim)` float32.
///
/// `exponent = -ln(10000) · i / (half - freq_shift)`, `emb = t · exp(exponent)`, then
/// `[sin, cos]` (or `[cos, sin]` with `flip_sin_to_cos`); odd `dim` gets a zero column.
pub fn timestep_embedding(
    timesteps: &Tensor,
    dim: i64,
    flip_sin_to_cos: bool,
    freq_shift: f64,
) -> Tensor {
    let device = timesteps.device();
    let half = dim / 2;
    let exponent = Tensor::arange(half, (Kind::Float, device)) * (-(10000f64.ln()))
        / (half as f64 - freq_shift);
    let emb = exponent.exp();
    let emb = timesteps.to_kind(Kind::Float).unsqueeze(1) * emb.unsqueeze(0);
    let emb = Tensor::cat(&[emb.sin(), emb.cos()], -1);
    let emb = if flip_sin_to_cos {
        Tensor::cat(&[emb.narrow(1, half, half), emb.narrow(1, 0, half)], -1)
    } else {
        emb
    };
    if dim % 2 == 1 {
        emb.constant_pad_nd([0, 1, 0, 0])
    } else {
        emb
    }
}

/// `time_embedding` (and `class_embedding`): `linear_1`, SiLU, `linear_2`.
#[derive(Debug)]
pub struct TimestepEmbedding {
    linear_1: nn::Linear,
    linear_2: nn::Linear,
}

impl TimestepEmbedding {
    /// `in_channels → time_embed_dim → time_embed_dim`.
    pub fn new(vs: nn::Path, in_channels: i64, time_embed_dim: i64) -> Self {
        Self {
            linear_1: nn::linear(
                &vs / "linear_1",
                in_channels,
                time_embed_dim,
                Default::default(),
            ),
            linear_2: nn::linear(
                &vs / "linear_2",
                time_embed_dim,
                time_embed_dim,
                Default::default(),
            ),
        }
    }
}

impl Module for TimestepEmbedding {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.apply(&self.linear_1).silu().apply(&self.linear_2)
    }
}
