//! `UNet2DConditionModel`: the text-conditioned denoiser, built from its `config.json`.
//!
//! Reference: diffusers v0.32.0 `models/unets/unet_2d_condition.py`
//! (<https://github.com/huggingface/diffusers/blob/v0.32.0/src/diffusers/models/unets/unet_2d_condition.py>).

use tch::{Kind, Tensor, nn};

use super::attention::{AttentionCapture, AttnCtx};
use super::config::UNet2DConditionConfig;
use super::embeddings::{TimestepEmbedding, timestep_embedding};
use super::unet_2d_blocks::{BlockConfig, DownBlock2D, MidBlock2D, UpBlock2D};
use super::{Result, SdError};

/// Optional inputs of [`UNet2DConditionModel::forward_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct UNetInputs<'a> {
    /// Class / camera conditioning, `(batch, dim)`: required when the config has a
    /// `class_embed_type`; fed to the LoRA camera embedding (when attached) if `lora_scale != 0`.
    pub class_labels: Option<&'a Tensor>,
    /// LoRA scale: 0 runs the pretrained weights only.
    pub lora_scale: f64,
    /// Record cross-attention maps here.
    pub capture: Option<&'a AttentionCapture>,
}

/// The Stable Diffusion UNet. Field names equal the checkpoint keys.
#[derive(Debug)]
pub struct UNet2DConditionModel {
    conv_in: nn::Conv2D,
    time_embedding: TimestepEmbedding,
    class_embedding: Option<TimestepEmbedding>,
    /// A trainable camera embedding attached by [`super::Lora::attach`] (in the LoRA `VarStore`).
    pub camera_embedding: Option<TimestepEmbedding>,
    down_blocks: Vec<DownBlock2D>,
    mid_block: MidBlock2D,
    up_blocks: Vec<UpBlock2D>,
    conv_norm_out: nn::GroupNorm,
    conv_out: nn::Conv2D,
    /// The config it was built from.
    pub config: UNet2DConditionConfig,
}

impl UNet2DConditionModel {
    /// Builds the model with fresh variables under `vs`. The config must have passed
    /// [`UNet2DConditionConfig::validate`].
    pub fn new(vs: nn::Path, config: &UNet2DConditionConfig) -> Self {
        let c = config;
        let boc = &c.block_out_channels;
        let n = boc.len();
        let heads = c.heads();
        let layers = c.layers_per_block.expand(n);
        let tlayers = c.transformer_layers_per_block.expand(n);
        let cross = c.cross_attention_dim.get(0);
        let ted = c.time_embed_dim();
        let conv3 = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let block = |cross_attn: bool, i: usize| BlockConfig {
            temb_channels: Some(ted),
            groups: c.norm_num_groups,
            eps: c.norm_eps,
            cross_attn: cross_attn.then_some((
                heads[i],
                cross,
                tlayers[i],
                c.use_linear_projection,
            )),
        };
        let class_embedding = match c.class_embed_type.as_deref() {
            Some("projection") => Some(TimestepEmbedding::new(
                &vs / "class_embedding",
                c.projection_class_embeddings_input_dim.unwrap_or(ted),
                ted,
            )),
            Some("timestep") => Some(TimestepEmbedding::new(&vs / "class_embedding", boc[0], ted)),
            _ => None,
        };
        let mut down_blocks = Vec::with_capacity(n);
        let mut output_channel = boc[0];
        for (i, kind) in c.down_block_types.iter().enumerate() {
            let input_channel = output_channel;
            output_channel = boc[i];
            let is_final = i == n - 1;
            down_blocks.push(DownBlock2D::new(
                &vs / "down_blocks" / i,
                input_channel,
                output_channel,
                layers[i],
                (!is_final).then_some(c.downsample_padding),
                block(kind == "CrossAttnDownBlock2D", i),
            ));
        }
        let mid_block = MidBlock2D::cross_attn(
            &vs / "mid_block",
            boc[n - 1],
            c.mid_block_scale_factor,
            block(true, n - 1),
        );
        let mut up_blocks = Vec::with_capacity(n);
        let rev = |i: usize| n - 1 - i;
        let mut output_channel = boc[n - 1];
        for (i, kind) in c.up_block_types.iter().enumerate() {
            let prev_output_channel = output_channel;
            output_channel = boc[rev(i)];
            let input_channel = boc[rev((i + 1).min(n - 1))];
            up_blocks.push(UpBlock2D::new(
                &vs / "up_blocks" / i,
                input_channel,
                prev_output_channel,
                output_channel,
                layers[rev(i)] + 1,
                i != n - 1,
                block(kind == "CrossAttnUpBlock2D", rev(i)),
            ));
        }
        let gn = nn::GroupNormConfig {
            eps: c.norm_eps,
            ..Default::default()
        };
        Self {
            conv_in: nn::conv2d(&vs / "conv_in", c.in_channels, boc[0], 3, conv3),
            time_embedding: TimestepEmbedding::new(&vs / "time_embedding", boc[0], ted),
            class_embedding,
            camera_embedding: None,
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: nn::group_norm(&vs / "conv_norm_out", c.norm_num_groups, boc[0], gn),
            conv_out: nn::conv2d(&vs / "conv_out", boc[0], c.out_channels, 3, conv3),
            config: c.clone(),
        }
    }

    /// Attaches LoRA adapters under `vs` to every attention (see [`super::Lora::attach`]).
    pub fn add_lora(&mut self, vs: &nn::Path, rank: i64) {
        for (i, b) in self.down_blocks.iter_mut().enumerate() {
            b.add_lora(&(vs / "down_blocks" / i), rank);
        }
        self.mid_block.add_lora(&(vs / "mid_block"), rank);
        for (i, b) in self.up_blocks.iter_mut().enumerate() {
            b.add_lora(&(vs / "up_blocks" / i), rank);
        }
    }

    /// Noise (or v) prediction for `xs` `(batch, 4, h, w)` at `timesteps` (a scalar or `(batch,)`,
    /// any numeric kind) given `encoder_hidden_states` `(batch, 77, cross_attention_dim)`.
    pub fn forward(
        &self,
        xs: &Tensor,
        timesteps: &Tensor,
        encoder_hidden_states: &Tensor,
        lora_scale: f64,
    ) -> Result<Tensor> {
        self.forward_with(
            xs,
            timesteps,
            encoder_hidden_states,
            UNetInputs {
                lora_scale,
                ..Default::default()
            },
        )
    }

    /// [`Self::forward`] with class/camera labels and attention capture.
    pub fn forward_with(
        &self,
        xs: &Tensor,
        timesteps: &Tensor,
        encoder_hidden_states: &Tensor,
        inputs: UNetInputs,
    ) -> Result<Tensor> {
        let (bsize, _channels, _height, _width) = xs
            .size4()
            .map_err(|_| bad("sample", "expected (batch, channels, h, w)"))?;
        let c = &self.config;
        let ctx = AttnCtx {
            lora_scale: inputs.lora_scale,
            capture: inputs.capture,
        };
        // 0. center input
        let xs = if c.center_input_sample {
            xs * 2.0 - 1.0
        } else {
            xs.shallow_clone()
        };
        // 1. time
        let timesteps = match timesteps.numel() {
            1 => timesteps.reshape([1]).expand([bsize], false),
            n if n as i64 == bsize => timesteps.reshape([bsize]),
            n => {
                return Err(bad(
                    "timesteps",
                    &format!("{n} values for a batch of {bsize}"),
                ));
            }
        };
        let t_emb = timestep_embedding(
            &timesteps,
            c.block_out_channels[0],
            c.flip_sin_to_cos,
            c.freq_shift,
        )
        .to_kind(xs.kind());
        let emb = t_emb.apply(&self.time_embedding);
        let emb = if let Some(class_embedding) = &self.class_embedding {
            let labels = inputs.class_labels.ok_or_else(|| {
                bad(
                    "class_labels",
                    "required: the UNet config has a class_embed_type",
                )
            })?;
            let labels = if c.class_embed_type.as_deref() == Some("timestep") {
                timestep_embedding(
                    labels,
                    c.block_out_channels[0],
                    c.flip_sin_to_cos,
                    c.freq_shift,
                )
            } else {
                labels.shallow_clone()
            };
            emb + labels.to_kind(xs.kind()).apply(class_embedding)
        } else {
            emb
        };
        let emb = match (&self.camera_embedding, inputs.class_labels) {
            (Some(camera), Some(labels)) if inputs.lora_scale != 0.0 => {
                let kind = emb.kind();
                emb + labels.to_kind(Kind::Float).apply(camera).to_kind(kind)
            }
            _ => emb,
        };
        let ehs = encoder_hidden_states.to_kind(xs.kind());
        // 2. pre-process
        let mut xs = xs.apply(&self.conv_in);
        let mut skips = vec![xs.shallow_clone()];
        // 3. down
        for block in &self.down_blocks {
            let (out, res) = block.forward(&xs, Some(&emb), Some(&ehs), &ctx);
            xs = out;
            skips.extend(res);
        }
        // 4. mid
        xs = self.mid_block.forward(&xs, Some(&emb), Some(&ehs), &ctx);
        // 5. up
        let last = self.up_blocks.len() - 1;
        for (i, block) in self.up_blocks.iter().enumerate() {
            let res = skips.split_off(skips.len() - block.num_skips());
            let upsample_size = (i != last)
                .then(|| skips.last().map(|t| (t.size()[2], t.size()[3])))
                .flatten();
            xs = block.forward(&xs, &res, Some(&emb), Some(&ehs), upsample_size, &ctx);
        }
        // 6. post-process
        Ok(xs.apply(&self.conv_norm_out).silu().apply(&self.conv_out))
    }
}

fn bad(name: &str, message: &str) -> SdError {
    SdError::InvalidArgument {
        name: name.into(),
        message: message.into(),
    }
}
