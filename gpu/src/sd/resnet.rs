//! `ResnetBlock2D`, `Downsample2D` and `Upsample2D`.
//!
//! Reference: diffusers v0.32.0 `models/resnet.py`, `models/downsampling.py`, `models/upsampling.py`.

use tch::{Tensor, nn, nn::Module};

/// Shape of a `ResnetBlock2D`.
#[derive(Clone, Copy, Debug)]
pub struct ResnetBlock2DConfig {
    /// Input channels.
    pub in_channels: i64,
    /// Output channels.
    pub out_channels: i64,
    /// Width of the time embedding (`None`: no `time_emb_proj`, as in the VAE).
    pub temb_channels: Option<i64>,
    /// Group-norm groups.
    pub groups: i64,
    /// Group-norm epsilon.
    pub eps: f64,
    /// The output is divided by this.
    pub output_scale_factor: f64,
}

/// `resnets.{i}`: GroupNorm, SiLU, conv, (+ time embedding), GroupNorm, SiLU, conv, skip.
#[derive(Debug)]
pub struct ResnetBlock2D {
    norm1: nn::GroupNorm,
    conv1: nn::Conv2D,
    time_emb_proj: Option<nn::Linear>,
    norm2: nn::GroupNorm,
    conv2: nn::Conv2D,
    conv_shortcut: Option<nn::Conv2D>,
    output_scale_factor: f64,
}

impl ResnetBlock2D {
    /// Builds the block; `conv_shortcut` (1×1) exists when the channel count changes.
    pub fn new(vs: nn::Path, c: ResnetBlock2DConfig) -> Self {
        let gn = nn::GroupNormConfig {
            eps: c.eps,
            ..Default::default()
        };
        let conv3 = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        Self {
            norm1: nn::group_norm(&vs / "norm1", c.groups, c.in_channels, gn),
            conv1: nn::conv2d(&vs / "conv1", c.in_channels, c.out_channels, 3, conv3),
            time_emb_proj: c
                .temb_channels
                .map(|t| nn::linear(&vs / "time_emb_proj", t, c.out_channels, Default::default())),
            norm2: nn::group_norm(&vs / "norm2", c.groups, c.out_channels, gn),
            conv2: nn::conv2d(&vs / "conv2", c.out_channels, c.out_channels, 3, conv3),
            conv_shortcut: (c.in_channels != c.out_channels).then(|| {
                nn::conv2d(
                    &vs / "conv_shortcut",
                    c.in_channels,
                    c.out_channels,
                    1,
                    Default::default(),
                )
            }),
            output_scale_factor: c.output_scale_factor,
        }
    }

    /// `xs`: `(batch, in, h, w)`; `temb`: `(batch, temb_channels)` when the block has `time_emb_proj`.
    pub fn forward(&self, xs: &Tensor, temb: Option<&Tensor>) -> Tensor {
        let h = xs.apply(&self.norm1).silu().apply(&self.conv1);
        let h = match (&self.time_emb_proj, temb) {
            (Some(proj), Some(temb)) => h + temb.silu().apply(proj).unsqueeze(-1).unsqueeze(-1),
            _ => h,
        };
        let h = h.apply(&self.norm2).silu().apply(&self.conv2);
        let shortcut = match &self.conv_shortcut {
            Some(conv) => xs.apply(conv),
            None => xs.shallow_clone(),
        };
        let out = shortcut + h;
        if self.output_scale_factor == 1.0 {
            out
        } else {
            out / self.output_scale_factor
        }
    }
}

/// `downsamplers.0`: a strided 3×3 `conv`. With `padding == 0` (the VAE), the input is first
/// padded by one on the right and bottom, as diffusers does.
#[derive(Debug)]
pub struct Downsample2D {
    conv: nn::Conv2D,
    pad_right_bottom: bool,
}

impl Downsample2D {
    /// `channels → channels`, stride 2.
    pub fn new(vs: nn::Path, channels: i64, padding: i64) -> Self {
        let c = nn::ConvConfig {
            stride: 2,
            padding,
            ..Default::default()
        };
        Self {
            conv: nn::conv2d(&vs / "conv", channels, channels, 3, c),
            pad_right_bottom: padding == 0,
        }
    }
}

impl Module for Downsample2D {
    fn forward(&self, xs: &Tensor) -> Tensor {
        if self.pad_right_bottom {
            xs.constant_pad_nd([0, 1, 0, 1]).apply(&self.conv)
        } else {
            xs.apply(&self.conv)
        }
    }
}

/// `upsamplers.0`: nearest-neighbour ×2 (or to a given size) then a 3×3 `conv`.
#[derive(Debug)]
pub struct Upsample2D {
    conv: nn::Conv2D,
}

impl Upsample2D {
    /// `channels → channels`.
    pub fn new(vs: nn::Path, channels: i64) -> Self {
        let c = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        Self {
            conv: nn::conv2d(&vs / "conv", channels, channels, 3, c),
        }
    }

    /// Upsamples to `size` (the matching skip connection's size) or by 2.
    pub fn forward(&self, xs: &Tensor, size: Option<(i64, i64)>) -> Tensor {
        let (_, _, h, w) = xs.size4().expect("feature map is 4-D");
        let (oh, ow) = size.unwrap_or((2 * h, 2 * w));
        let up = if oh == 2 * h && ow == 2 * w {
            xs.upsample_nearest2d([oh, ow], Some(2.0), Some(2.0))
        } else {
            xs.upsample_nearest2d([oh, ow], None, None)
        };
        up.apply(&self.conv)
    }
}
