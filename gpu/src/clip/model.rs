//! transformers `CLIPModel`: `text_model`, `vision_model`, `visual_projection`,
//! `text_projection`, `logit_scale`. Variable-store paths equal the checkpoint keys.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor, nn};

use super::config::ClipConfig;
use super::vision::ClipVisionTransformer;
use crate::sd::loader::{find_weights, load_var_store_checked, rename_identity};
use crate::sd::{ClipTextTransformer, Result, SdError};

/// A CLIP model (both towers and the projections) with its variables.
pub struct ClipModel {
    /// The variables (for `freeze`, device moves, parameter counts).
    pub vs: nn::VarStore,
    /// `text_model`: the causal text transformer (shared with Stable Diffusion's text encoder).
    pub text_model: ClipTextTransformer,
    /// `vision_model`.
    pub vision_model: ClipVisionTransformer,
    visual_projection: nn::Linear,
    text_projection: nn::Linear,
    logit_scale: Tensor,
    /// The config it was built from.
    pub config: ClipConfig,
}

impl std::fmt::Debug for ClipModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipModel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ClipModel {
    /// A model with random weights (transformers-like initialisation scales) on `device`.
    pub fn new(config: &ClipConfig, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let text_model =
            ClipTextTransformer::new(&root / "text_model", &config.text_config.to_sd());
        let vision_model =
            ClipVisionTransformer::new(&root / "vision_model", &config.vision_config);
        let no_bias = nn::LinearConfig {
            bias: false,
            ..Default::default()
        };
        let visual_projection = nn::linear(
            &root / "visual_projection",
            config.vision_config.hidden_size,
            config.projection_dim,
            no_bias,
        );
        let text_projection = nn::linear(
            &root / "text_projection",
            config.text_config.hidden_size,
            config.projection_dim,
            no_bias,
        );
        let logit_scale = root.var(
            "logit_scale",
            &[],
            nn::Init::Const(config.logit_scale_init_value),
        );
        Self {
            vs,
            text_model,
            vision_model,
            visual_projection,
            text_projection,
            logit_scale,
            config: config.clone(),
        }
    }

    /// Loads `dir/config.json` and `dir/model.safetensors` (or `model.fp16.safetensors`, or a
    /// sharded index) in fp32 on `device`, frozen. Every error names the file (and the key).
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(SdError::MissingFolder {
                path: dir.to_path_buf(),
                expected: "a transformers CLIPModel folder (config.json, model.safetensors, \
                           tokenizer files, preprocessor_config.json)"
                    .into(),
            });
        }
        let config = ClipConfig::from_file(&dir.join("config.json"))?;
        let files = Self::weight_files(dir)?;
        let mut model = Self::new(&config, device);
        load_var_store_checked(&model.vs, &files, &rename_identity, true)?;
        model.vs.freeze();
        Ok(model)
    }

    fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
        match find_weights(dir, "model") {
            Ok(f) => Ok(f),
            Err(e) => {
                let pickle = dir.join("pytorch_model.bin");
                if pickle.is_file() {
                    return Err(SdError::UnsupportedWeights {
                        path: pickle,
                        message: "pickle weights are not read; convert with \
                                  `CLIPModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`"
                            .into(),
                    });
                }
                Err(e)
            }
        }
    }

    /// The `exp(logit_scale)` multiplier of the logits.
    pub fn logit_scale(&self) -> f64 {
        self.logit_scale.exp().double_value(&[])
    }

    /// Pooled text output: `final_layer_norm` hidden state at each sequence's first `eos_id`
    /// (the last position when there is none): `(batch, text hidden)`.
    pub fn text_pooled(&self, input_ids: &Tensor, eos_id: i64) -> Tensor {
        let ids = input_ids.to_device(self.vs.device());
        let hidden = self.text_model.forward(&ids);
        let (b, n) = ids.size2().expect("input_ids are (batch, seq)");
        let flat: Vec<i64> =
            Vec::try_from(ids.to_device(Device::Cpu).flatten(0, -1)).unwrap_or_default();
        let pos: Vec<i64> = (0..b as usize)
            .map(|i| {
                let row = &flat[i * n as usize..(i + 1) * n as usize];
                row.iter()
                    .position(|&t| t == eos_id)
                    .unwrap_or(n as usize - 1) as i64
            })
            .collect();
        let index = Tensor::from_slice(&pos)
            .to_device(hidden.device())
            .view([b, 1, 1])
            .expand([b, 1, hidden.size()[2]], false);
        hidden.gather(1, &index, false).squeeze_dim(1)
    }

    /// Unnormalised text features `text_projection(pooled)`: `(batch, projection_dim)`.
    pub fn text_features(&self, input_ids: &Tensor, eos_id: i64) -> Tensor {
        self.text_pooled(input_ids, eos_id)
            .apply(&self.text_projection)
    }

    /// Pooled image output (class token after `post_layernorm`) of normalised pixel values.
    pub fn image_pooled(&self, pixel_values: &Tensor) -> Tensor {
        let x = pixel_values
            .to_device(self.vs.device())
            .to_kind(Kind::Float);
        self.vision_model.forward(&x).1
    }

    /// Unnormalised image features `visual_projection(pooled)`: `(batch, projection_dim)`.
    pub fn image_features(&self, pixel_values: &Tensor) -> Tensor {
        self.image_pooled(pixel_values)
            .apply(&self.visual_projection)
    }

    /// `logits_per_image` `(images, texts)`: `exp(logit_scale) · cos(image, text)`.
    pub fn logits_per_image(&self, image_features: &Tensor, text_features: &Tensor) -> Tensor {
        normalize(image_features).matmul(&normalize(text_features).tr()) * self.logit_scale.exp()
    }

    /// Number of parameters of the image tower (for benchmarks).
    pub fn vision_parameters(&self) -> i64 {
        self.vs
            .variables()
            .iter()
            .filter(|(k, _)| k.starts_with("vision_model.") || k.starts_with("visual_projection."))
            .map(|(_, t)| t.numel() as i64)
            .sum()
    }
}

/// Rows divided by their L2 norm.
pub fn normalize(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2.0, [-1], true).clamp_min(1e-12)
}
