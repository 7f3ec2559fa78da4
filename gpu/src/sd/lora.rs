//! LoRA adapters on the UNet attention projections, held in their own `VarStore`.
//!
//! Every `to_q`, `to_k`, `to_v` and `to_out.0` of the UNet gets `W x + s · B(A x)` with
//! `A` (`lora_A`, `(r, in)`) drawn from N(0, (1/r)²) and `B` (`lora_B`, `(out, r)`) zero, in fp32,
//! so a fresh adapter leaves the model unchanged; `s` is the LoRA scale passed to the forward pass
//! (0 skips the adapter: the pretrained model). This is threestudio's VSD setup
//! (`LoRAAttnProcessor` with `nn.init.normal_(down, std=1/rank)`, `nn.init.zeros_(up)`).
//! Saved files use diffusers' PEFT key names with the `unet.` prefix, e.g.
//! `unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight`.

use std::path::Path;

use tch::{Device, Kind, Tensor, nn};

use super::embeddings::TimestepEmbedding;
use super::unet_2d::UNet2DConditionModel;
use super::{Result, SdError};

/// A linear layer with an optional low-rank adapter.
#[derive(Debug)]
pub struct LoraLinear {
    /// The pretrained layer (in the model's `VarStore`).
    pub base: nn::Linear,
    /// The adapter `(lora_A, lora_B)` (in the LoRA `VarStore`), if attached.
    pub lora: Option<(Tensor, Tensor)>,
}

impl LoraLinear {
    /// A plain linear layer `in_dim → out_dim` under `vs`, no adapter yet.
    pub fn new(vs: nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> Self {
        let c = nn::LinearConfig {
            bias,
            ..Default::default()
        };
        Self {
            base: nn::linear(vs, in_dim, out_dim, c),
            lora: None,
        }
    }

    /// Attaches a rank-`rank` adapter whose variables live under `vs` (`lora_A.weight`, `lora_B.weight`).
    pub fn add_lora(&mut self, vs: &nn::Path, rank: i64) {
        let (out_dim, in_dim) = self.base.ws.size2().expect("linear weight is 2-D");
        let down = (vs / "lora_A").randn("weight", &[rank, in_dim], 0.0, 1.0 / rank as f64);
        let up = (vs / "lora_B").zeros("weight", &[out_dim, rank]);
        self.lora = Some((down, up));
    }

    /// `W x + b + scale · B(A x)`; with `scale == 0` or no adapter, exactly the base layer.
    pub fn forward(&self, xs: &Tensor, scale: f64) -> Tensor {
        let ys = xs.linear(&self.base.ws, self.base.bs.as_ref());
        match &self.lora {
            Some((down, up)) if scale != 0.0 => {
                let h = xs
                    .to_kind(down.kind())
                    .linear::<Tensor>(down, None)
                    .linear::<Tensor>(up, None);
                let kind = ys.kind();
                ys + (h * scale).to_kind(kind)
            }
            _ => ys,
        }
    }
}

/// LoRA settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoraConfig {
    /// Rank of every adapter (4 in ProlificDreamer / SVGDreamer).
    pub rank: i64,
    /// Input width of a trainable camera embedding (`class_embedding`, 16 for a flattened 4×4
    /// camera matrix) added to the time embedding when the LoRA scale is non-zero; `None` for none.
    pub camera_embedding_dim: Option<i64>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 4,
            camera_embedding_dim: None,
        }
    }
}

/// The trainable part of a UNet: its LoRA adapters (and camera embedding) in a separate `VarStore`.
#[derive(Debug)]
pub struct Lora {
    /// The variables (fp32); give this to the optimiser.
    pub vs: nn::VarStore,
    /// The settings it was made with.
    pub config: LoraConfig,
}

impl Lora {
    /// Attaches fresh adapters (and the camera embedding) to every attention projection of `unet`.
    pub fn attach(unet: &mut UNet2DConditionModel, device: Device, config: LoraConfig) -> Self {
        let vs = nn::VarStore::new(device);
        unet.add_lora(&vs.root(), config.rank);
        if let Some(dim) = config.camera_embedding_dim {
            let ted = unet.config.time_embed_dim();
            unet.camera_embedding = Some(TimestepEmbedding::new(
                vs.root() / "class_embedding",
                dim,
                ted,
            ));
        }
        Self { vs, config }
    }

    /// Number of trainable scalars.
    pub fn num_parameters(&self) -> i64 {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// Writes the adapters as safetensors (fp32, `unet.`-prefixed PEFT names), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .map(|(k, v)| {
                (
                    format!("unet.{k}"),
                    v.detach()
                        .to_kind(Kind::Float)
                        .to_device(Device::Cpu)
                        .contiguous(),
                )
            })
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{file}.tmp-{}", std::process::id()));
        Tensor::write_safetensors(&named, &tmp)?;
        std::fs::rename(&tmp, path).map_err(|source| SdError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads adapters written by [`Lora::save`] (or diffusers' `save_lora_weights` with the same
    /// rank and targets) into this LoRA's variables.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        super::loader::load_var_store(&self.vs, &[path.to_path_buf()], &|k| {
            Some(k.strip_prefix("unet.").unwrap_or(k).to_string())
        })
    }
}
