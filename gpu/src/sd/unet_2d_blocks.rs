//! UNet and VAE resolution blocks: `CrossAttnDownBlock2D`, `DownBlock2D`, `UNetMidBlock2DCrossAttn`,
//! `CrossAttnUpBlock2D`, `UpBlock2D`, and the VAE's `DownEncoderBlock2D`, `UNetMidBlock2D`,
//! `UpDecoderBlock2D`.
//!
//! Reference: diffusers v0.32.0 `models/unets/unet_2d_blocks.py`.

use tch::{Tensor, nn, nn::Module as _};

use super::attention::{AttnCtx, Transformer2DConfig, Transformer2DModel, VaeAttention};
use super::resnet::{Downsample2D, ResnetBlock2D, ResnetBlock2DConfig, Upsample2D};

/// Settings shared by the blocks of one UNet.
#[derive(Clone, Copy, Debug)]
pub struct BlockConfig {
    /// Width of the time embedding (`None` in the VAE).
    pub temb_channels: Option<i64>,
    /// Group-norm groups.
    pub groups: i64,
    /// Group-norm epsilon of the resnets.
    pub eps: f64,
    /// Cross-attention settings: `Some((heads, cross_attention_dim, transformer layers,
    /// use_linear_projection))` for the `CrossAttn*` blocks, `None` for plain ones.
    pub cross_attn: Option<(i64, i64, i64, bool)>,
}

impl BlockConfig {
    fn resnet(&self, in_channels: i64, out_channels: i64) -> ResnetBlock2DConfig {
        ResnetBlock2DConfig {
            in_channels,
            out_channels,
            temb_channels: self.temb_channels,
            groups: self.groups,
            eps: self.eps,
            output_scale_factor: 1.0,
        }
    }

    fn transformer(&self, vs: nn::Path, channels: i64) -> Option<Transformer2DModel> {
        self.cross_attn.map(|(heads, cross, layers, linear)| {
            Transformer2DModel::new(
                vs,
                Transformer2DConfig {
                    in_channels: channels,
                    heads,
                    num_layers: layers,
                    cross_attention_dim: cross,
                    norm_num_groups: self.groups,
                    use_linear_projection: linear,
                },
            )
        })
    }
}

/// `down_blocks.{i}`: resnets (each followed by a transformer in `CrossAttnDownBlock2D`) and an
/// optional strided downsampler. Also the VAE's `DownEncoderBlock2D` (no time embedding).
#[derive(Debug)]
pub struct DownBlock2D {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2DModel>,
    downsamplers: Option<Downsample2D>,
}

impl DownBlock2D {
    /// `num_layers` resnets `in → out`; `downsample_padding: Some(p)` adds `downsamplers.0`.
    pub fn new(
        vs: nn::Path,
        in_channels: i64,
        out_channels: i64,
        num_layers: i64,
        downsample_padding: Option<i64>,
        c: BlockConfig,
    ) -> Self {
        let mut resnets = Vec::new();
        let mut attentions = Vec::new();
        for i in 0..num_layers {
            let inc = if i == 0 { in_channels } else { out_channels };
            resnets.push(ResnetBlock2D::new(
                &vs / "resnets" / i,
                c.resnet(inc, out_channels),
            ));
            if let Some(t) = c.transformer(&vs / "attentions" / i, out_channels) {
                attentions.push(t);
            }
        }
        Self {
            resnets,
            attentions,
            downsamplers: downsample_padding
                .map(|p| Downsample2D::new(&vs / "downsamplers" / 0, out_channels, p)),
        }
    }

    /// Attaches LoRA adapters to every attention.
    pub fn add_lora(&mut self, vs: &nn::Path, rank: i64) {
        for (i, a) in self.attentions.iter_mut().enumerate() {
            a.add_lora(&(vs / "attentions" / i), rank);
        }
    }

    /// Returns the output and the skip connections it produced (one per resnet, plus the downsampled).
    pub fn forward(
        &self,
        xs: &Tensor,
        temb: Option<&Tensor>,
        encoder_hidden_states: Option<&Tensor>,
        ctx: &AttnCtx,
    ) -> (Tensor, Vec<Tensor>) {
        let mut xs = xs.shallow_clone();
        let mut skips = Vec::new();
        for (i, resnet) in self.resnets.iter().enumerate() {
            xs = resnet.forward(&xs, temb);
            if let (Some(attn), Some(ehs)) = (self.attentions.get(i), encoder_hidden_states) {
                xs = attn.forward(&xs, ehs, ctx);
            }
            skips.push(xs.shallow_clone());
        }
        if let Some(down) = &self.downsamplers {
            xs = xs.apply(down);
            skips.push(xs.shallow_clone());
        }
        (xs, skips)
    }

    /// The VAE encoder's use: no time embedding, no skips.
    pub fn forward_plain(&self, xs: &Tensor) -> Tensor {
        let mut xs = xs.shallow_clone();
        for resnet in &self.resnets {
            xs = resnet.forward(&xs, None);
        }
        match &self.downsamplers {
            Some(down) => xs.apply(down),
            None => xs,
        }
    }
}

/// `mid_block`: resnet, (transformer or VAE attention, resnet) — `UNetMidBlock2DCrossAttn` /
/// `UNetMidBlock2D`.
#[derive(Debug)]
pub struct MidBlock2D {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2DModel>,
    vae_attentions: Vec<VaeAttention>,
}

impl MidBlock2D {
    /// The UNet's `UNetMidBlock2DCrossAttn` with one transformer.
    pub fn cross_attn(
        vs: nn::Path,
        channels: i64,
        output_scale_factor: f64,
        c: BlockConfig,
    ) -> Self {
        let mut rc = c.resnet(channels, channels);
        rc.output_scale_factor = output_scale_factor;
        Self {
            resnets: vec![
                ResnetBlock2D::new(&vs / "resnets" / 0, rc),
                ResnetBlock2D::new(&vs / "resnets" / 1, rc),
            ],
            attentions: c
                .transformer(&vs / "attentions" / 0, channels)
                .into_iter()
                .collect(),
            vae_attentions: Vec::new(),
        }
    }

    /// The VAE's `UNetMidBlock2D` with (optionally) one single-head self-attention.
    pub fn vae(vs: nn::Path, channels: i64, add_attention: bool, c: BlockConfig) -> Self {
        let rc = c.resnet(channels, channels);
        Self {
            resnets: vec![
                ResnetBlock2D::new(&vs / "resnets" / 0, rc),
                ResnetBlock2D::new(&vs / "resnets" / 1, rc),
            ],
            attentions: Vec::new(),
            vae_attentions: if add_attention {
                vec![VaeAttention::new(
                    &vs / "attentions" / 0,
                    channels,
                    c.groups,
                )]
            } else {
                Vec::new()
            },
        }
    }

    /// Attaches LoRA adapters to the transformer.
    pub fn add_lora(&mut self, vs: &nn::Path, rank: i64) {
        for (i, a) in self.attentions.iter_mut().enumerate() {
            a.add_lora(&(vs / "attentions" / i), rank);
        }
    }

    /// `resnets.0`, attention, `resnets.1`.
    pub fn forward(
        &self,
        xs: &Tensor,
        temb: Option<&Tensor>,
        encoder_hidden_states: Option<&Tensor>,
        ctx: &AttnCtx,
    ) -> Tensor {
        let mut xs = self.resnets[0].forward(xs, temb);
        if let (Some(attn), Some(ehs)) = (self.attentions.first(), encoder_hidden_states) {
            xs = attn.forward(&xs, ehs, ctx);
        }
        if let Some(attn) = self.vae_attentions.first() {
            xs = attn.forward(&xs);
        }
        self.resnets[1].forward(&xs, temb)
    }
}

/// `up_blocks.{i}`: resnets over `cat(xs, skip)` (each followed by a transformer in
/// `CrossAttnUpBlock2D`) and an optional upsampler. Also the VAE's `UpDecoderBlock2D` (no skips).
#[derive(Debug)]
pub struct UpBlock2D {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2DModel>,
    upsamplers: Option<Upsample2D>,
}

impl UpBlock2D {
    /// UNet up block: resnet `j` takes `prev_output_channel` (j = 0) or `out_channels`, plus the skip's
    /// channels (`in_channels` for the last resnet, else `out_channels`).
    pub fn new(
        vs: nn::Path,
        in_channels: i64,
        prev_output_channel: i64,
        out_channels: i64,
        num_layers: i64,
        add_upsample: bool,
        c: BlockConfig,
    ) -> Self {
        let mut resnets = Vec::new();
        let mut attentions = Vec::new();
        for j in 0..num_layers {
            let skip = if j == num_layers - 1 {
                in_channels
            } else {
                out_channels
            };
            let inc = if j == 0 {
                prev_output_channel
            } else {
                out_channels
            };
            resnets.push(ResnetBlock2D::new(
                &vs / "resnets" / j,
                c.resnet(inc + skip, out_channels),
            ));
            if let Some(t) = c.transformer(&vs / "attentions" / j, out_channels) {
                attentions.push(t);
            }
        }
        Self {
            resnets,
            attentions,
            upsamplers: add_upsample.then(|| Upsample2D::new(&vs / "upsamplers" / 0, out_channels)),
        }
    }

    /// The VAE decoder's `UpDecoderBlock2D`: resnets `in → out` without skips.
    pub fn decoder(
        vs: nn::Path,
        in_channels: i64,
        out_channels: i64,
        num_layers: i64,
        add_upsample: bool,
        c: BlockConfig,
    ) -> Self {
        let resnets = (0..num_layers)
            .map(|j| {
                let inc = if j == 0 { in_channels } else { out_channels };
                ResnetBlock2D::new(&vs / "resnets" / j, c.resnet(inc, out_channels))
            })
            .collect();
        Self {
            resnets,
            attentions: Vec::new(),
            upsamplers: add_upsample.then(|| Upsample2D::new(&vs / "upsamplers" / 0, out_channels)),
        }
    }

    /// Attaches LoRA adapters to every attention.
    pub fn add_lora(&mut self, vs: &nn::Path, rank: i64) {
        for (i, a) in self.attentions.iter_mut().enumerate() {
            a.add_lora(&(vs / "attentions" / i), rank);
        }
    }

    /// Number of skip connections this block consumes.
    pub fn num_skips(&self) -> usize {
        self.resnets.len()
    }

    /// `skips` are consumed from the end (the last one first), as in diffusers.
    pub fn forward(
        &self,
        xs: &Tensor,
        skips: &[Tensor],
        temb: Option<&Tensor>,
        encoder_hidden_states: Option<&Tensor>,
        upsample_size: Option<(i64, i64)>,
        ctx: &AttnCtx,
    ) -> Tensor {
        let mut xs = xs.shallow_clone();
        for (i, resnet) in self.resnets.iter().enumerate() {
            let skip = &skips[skips.len() - 1 - i];
            xs = resnet.forward(&Tensor::cat(&[&xs, skip], 1), temb);
            if let (Some(attn), Some(ehs)) = (self.attentions.get(i), encoder_hidden_states) {
                xs = attn.forward(&xs, ehs, ctx);
            }
        }
        match &self.upsamplers {
            Some(up) => up.forward(&xs, upsample_size),
            None => xs,
        }
    }

    /// The VAE decoder's use: no skips, no time embedding.
    pub fn forward_plain(&self, xs: &Tensor) -> Tensor {
        let mut xs = xs.shallow_clone();
        for resnet in &self.resnets {
            xs = resnet.forward(&xs, None);
        }
        match &self.upsamplers {
            Some(up) => up.forward(&xs, None),
            None => xs,
        }
    }
}
