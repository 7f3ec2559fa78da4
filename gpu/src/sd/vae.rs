//! `AutoencoderKL`: the VAE that maps images in [-1, 1] to latents and back.
//!
//! Reference: diffusers v0.32.0 `models/autoencoders/{autoencoder_kl,vae}.py`
//! (<https://github.com/huggingface/diffusers/blob/v0.32.0/src/diffusers/models/autoencoders/vae.py>).

use tch::{Tensor, nn};

use super::attention::AttnCtx;
use super::config::VaeConfig;
use super::unet_2d_blocks::{BlockConfig, DownBlock2D, MidBlock2D, UpBlock2D};

const VAE_EPS: f64 = 1e-6;

fn block_config(c: &VaeConfig) -> BlockConfig {
    BlockConfig {
        temb_channels: None,
        groups: c.norm_num_groups,
        eps: VAE_EPS,
        cross_attn: None,
    }
}

fn conv3() -> nn::ConvConfig {
    nn::ConvConfig {
        padding: 1,
        ..Default::default()
    }
}

fn group_norm(vs: nn::Path, c: &VaeConfig, channels: i64) -> nn::GroupNorm {
    let gn = nn::GroupNormConfig {
        eps: VAE_EPS,
        ..Default::default()
    };
    nn::group_norm(vs, c.norm_num_groups, channels, gn)
}

/// `encoder`: image → `2 × latent_channels` (mean and log-variance).
#[derive(Debug)]
pub struct Encoder {
    conv_in: nn::Conv2D,
    down_blocks: Vec<DownBlock2D>,
    mid_block: MidBlock2D,
    conv_norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

impl Encoder {
    fn new(vs: nn::Path, c: &VaeConfig) -> Self {
        let boc = &c.block_out_channels;
        let n = boc.len();
        let bc = block_config(c);
        let mut output_channel = boc[0];
        let down_blocks = (0..n)
            .map(|i| {
                let input_channel = output_channel;
                output_channel = boc[i];
                DownBlock2D::new(
                    &vs / "down_blocks" / i,
                    input_channel,
                    output_channel,
                    c.layers_per_block,
                    (i != n - 1).then_some(0),
                    bc,
                )
            })
            .collect();
        Self {
            conv_in: nn::conv2d(&vs / "conv_in", c.in_channels, boc[0], 3, conv3()),
            down_blocks,
            mid_block: MidBlock2D::vae(
                &vs / "mid_block",
                boc[n - 1],
                c.mid_block_add_attention,
                bc,
            ),
            conv_norm_out: group_norm(&vs / "conv_norm_out", c, boc[n - 1]),
            conv_out: nn::conv2d(
                &vs / "conv_out",
                boc[n - 1],
                2 * c.latent_channels,
                3,
                conv3(),
            ),
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        let mut xs = xs.apply(&self.conv_in);
        for block in &self.down_blocks {
            xs = block.forward_plain(&xs);
        }
        let xs = self.mid_block.forward(&xs, None, None, &AttnCtx::default());
        xs.apply(&self.conv_norm_out).silu().apply(&self.conv_out)
    }
}

/// `decoder`: latents → image.
#[derive(Debug)]
pub struct Decoder {
    conv_in: nn::Conv2D,
    mid_block: MidBlock2D,
    up_blocks: Vec<UpBlock2D>,
    conv_norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
}

impl Decoder {
    fn new(vs: nn::Path, c: &VaeConfig) -> Self {
        let boc = &c.block_out_channels;
        let n = boc.len();
        let bc = block_config(c);
        let mut output_channel = boc[n - 1];
        let up_blocks = (0..n)
            .map(|i| {
                let prev_output_channel = output_channel;
                output_channel = boc[n - 1 - i];
                UpBlock2D::decoder(
                    &vs / "up_blocks" / i,
                    prev_output_channel,
                    output_channel,
                    c.layers_per_block + 1,
                    i != n - 1,
                    bc,
                )
            })
            .collect();
        Self {
            conv_in: nn::conv2d(&vs / "conv_in", c.latent_channels, boc[n - 1], 3, conv3()),
            mid_block: MidBlock2D::vae(
                &vs / "mid_block",
                boc[n - 1],
                c.mid_block_add_attention,
                bc,
            ),
            up_blocks,
            conv_norm_out: group_norm(&vs / "conv_norm_out", c, boc[0]),
            conv_out: nn::conv2d(&vs / "conv_out", boc[0], c.out_channels, 3, conv3()),
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        let xs = xs.apply(&self.conv_in);
        let mut xs = self.mid_block.forward(&xs, None, None, &AttnCtx::default());
        for block in &self.up_blocks {
            xs = block.forward_plain(&xs);
        }
        xs.apply(&self.conv_norm_out).silu().apply(&self.conv_out)
    }
}

/// The diagonal Gaussian the encoder predicts.
#[derive(Debug)]
pub struct DiagonalGaussian {
    /// Mean, `(batch, latent_channels, h/8, w/8)`.
    pub mean: Tensor,
    /// Log-variance clamped to [-30, 20], same shape.
    pub logvar: Tensor,
}

impl DiagonalGaussian {
    /// `mean + exp(logvar / 2) · N(0, 1)`.
    pub fn sample(&self) -> Tensor {
        let std = (&self.logvar * 0.5).exp();
        &self.mean + std * self.mean.randn_like()
    }
}

/// `AutoencoderKL`: `encoder`, `quant_conv`, `post_quant_conv`, `decoder`.
#[derive(Debug)]
pub struct AutoencoderKL {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<nn::Conv2D>,
    post_quant_conv: Option<nn::Conv2D>,
    /// The config it was built from (`scaling_factor` lives here).
    pub config: VaeConfig,
}

impl AutoencoderKL {
    /// Builds the model with fresh variables under `vs`.
    pub fn new(vs: nn::Path, c: &VaeConfig) -> Self {
        let l2 = 2 * c.latent_channels;
        Self {
            encoder: Encoder::new(&vs / "encoder", c),
            decoder: Decoder::new(&vs / "decoder", c),
            quant_conv: c
                .use_quant_conv
                .then(|| nn::conv2d(&vs / "quant_conv", l2, l2, 1, Default::default())),
            post_quant_conv: c.use_post_quant_conv.then(|| {
                nn::conv2d(
                    &vs / "post_quant_conv",
                    c.latent_channels,
                    c.latent_channels,
                    1,
                    Default::default(),
                )
            }),
            config: c.clone(),
        }
    }

    /// Encodes images in [-1, 1], `(batch, 3, h, w)`, to the latent distribution (unscaled).
    pub fn encode(&self, xs: &Tensor) -> DiagonalGaussian {
        let h = self.encoder.forward(xs);
        let h = match &self.quant_conv {
            Some(conv) => h.apply(conv),
            None => h,
        };
        let parts = h.chunk(2, 1);
        DiagonalGaussian {
            mean: parts[0].shallow_clone(),
            logvar: parts[1].clamp(-30.0, 20.0),
        }
    }

    /// Decodes unscaled latents to images in (about) [-1, 1].
    pub fn decode(&self, latents: &Tensor) -> Tensor {
        let z = match &self.post_quant_conv {
            Some(conv) => latents.apply(conv),
            None => latents.shallow_clone(),
        };
        self.decoder.forward(&z)
    }

    /// Latents as the UNet sees them: `mean · scaling_factor` (deterministic).
    pub fn encode_scaled(&self, xs: &Tensor) -> Tensor {
        self.encode(xs).mean * self.config.scaling_factor
    }

    /// Decodes UNet-scale latents (divides by `scaling_factor` first).
    pub fn decode_scaled(&self, latents: &Tensor) -> Tensor {
        self.decode(&(latents / self.config.scaling_factor))
    }
}
