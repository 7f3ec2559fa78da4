//! CLIP-based rewards for the particles ([`crate::distill::Reward`]):
//! - PickScore-style preference: `exp(logit_scale) · cos(image, prompt)` with any `CLIPModel`
//!   folder (`yuvalkirstain/PickScore_v1` is a fine-tuned CLIP-H/14 saved as one);
//! - CLIP score: `100 · max(cos(image, prompt), 0)` (Hessel et al. 2021, w = 100);
//! - the LAION aesthetic predictor: an MLP head on the L2-normalised image embedding.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::{Clip, normalize};
use crate::distill::{DistillError, Reward};

/// Which prompt-alignment score a [`ClipReward`] gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClipRewardKind {
    /// `exp(logit_scale) · cos` (PickScore's scoring rule).
    PickScore,
    /// `100 · max(cos, 0)`.
    ClipScore,
}

/// A prompt-alignment reward from a CLIP model.
#[derive(Debug)]
pub struct ClipReward {
    clip: Clip,
    kind: ClipRewardKind,
    text: Tensor,
    prompt: String,
}

impl ClipReward {
    /// Loads the CLIP folder `dir` and encodes `prompt` once.
    pub fn load(
        dir: &Path,
        kind: ClipRewardKind,
        prompt: &str,
        device: Device,
    ) -> Result<Self, DistillError> {
        Ok(Self::new(Clip::load(dir, device)?, kind, prompt))
    }

    /// A reward from a loaded model.
    pub fn new(clip: Clip, kind: ClipRewardKind, prompt: &str) -> Self {
        let text = tch::no_grad(|| normalize(&clip.text_features(&[prompt])));
        Self {
            clip,
            kind,
            text,
            prompt: prompt.to_string(),
        }
    }

    /// The model.
    pub fn clip(&self) -> &Clip {
        &self.clip
    }

    /// Cosine of each render `(B, 3, H, W)` in `[0, 1]` to the prompt.
    pub fn cosines(&self, images: &Tensor) -> Tensor {
        let f = self
            .clip
            .render_features(&images.to_device(self.text.device()));
        Clip::cosine(&f, &self.text)
    }

    /// The score from cosines.
    pub fn from_cosine(&self, cos: &Tensor) -> Tensor {
        match self.kind {
            ClipRewardKind::PickScore => cos * self.clip.model.logit_scale(),
            ClipRewardKind::ClipScore => cos.clamp_min(0.0) * 100.0,
        }
    }
}

impl Reward for ClipReward {
    fn name(&self) -> String {
        let k = match self.kind {
            ClipRewardKind::PickScore => "pickscore",
            ClipRewardKind::ClipScore => "clipscore",
        };
        format!("{k}({}, {:?})", self.clip.dir.display(), self.prompt)
    }

    fn score(&mut self, images: &Tensor) -> Result<Vec<f64>, DistillError> {
        let s = tch::no_grad(|| self.from_cosine(&self.cosines(images)));
        Ok(Vec::try_from(
            s.to_device(Device::Cpu).to_kind(Kind::Double),
        )?)
    }
}

/// A stack of linear layers (no activations between them, as in LAION's
/// `improved-aesthetic-predictor` MLP whose ReLUs are commented out), applied to the
/// L2-normalised CLIP image embedding.
#[derive(Debug)]
pub struct AestheticHead {
    layers: Vec<(Tensor, Tensor)>,
}

impl AestheticHead {
    /// Reads `layers.{i}.weight` / `layers.{i}.bias` (in index order; the published head has
    /// 0, 2, 4, 6, 7), or a single `weight` / `bias` linear probe, from a safetensors file.
    /// The first layer's input width must be `embed_dim` and the last output 1.
    pub fn load(path: &Path, embed_dim: i64, device: Device) -> Result<Self, DistillError> {
        let err = |message: String| DistillError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        let tensors = crate::sd::loader::read_all(path).map_err(|e| err(e.to_string()))?;
        let get = |name: &str| {
            tensors
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, t)| t.to_kind(Kind::Float).to_device(device))
        };
        let mut idx: Vec<usize> = tensors
            .iter()
            .filter_map(|(k, _)| {
                k.strip_prefix("layers.")?
                    .strip_suffix(".weight")?
                    .parse()
                    .ok()
            })
            .collect();
        idx.sort_unstable();
        let mut layers = Vec::new();
        if idx.is_empty() {
            match (get("weight"), get("bias")) {
                (Some(w), Some(b)) => layers.push((w, b)),
                _ => {
                    return Err(err(
                        "no `layers.N.weight` tensors and no `weight` / `bias` pair: expected \
                         LAION's aesthetic MLP (see notes/README-clip.md for the conversion)"
                            .into(),
                    ));
                }
            }
        } else {
            for i in idx {
                let w = get(&format!("layers.{i}.weight")).expect("listed above");
                let b = get(&format!("layers.{i}.bias"))
                    .ok_or_else(|| err(format!("missing tensor `layers.{i}.bias`")))?;
                layers.push((w, b));
            }
        }
        let mut width = embed_dim;
        for (i, (w, b)) in layers.iter().enumerate() {
            let s = w.size();
            if s.len() != 2 || s[1] != width || b.size() != [s[0]] {
                return Err(err(format!(
                    "layer {i}: weight {:?} / bias {:?} do not take a {width}-wide input \
                     (the CLIP model's projection_dim)",
                    s,
                    b.size()
                )));
            }
            width = s[0];
        }
        if width != 1 {
            return Err(err(format!(
                "the last layer has {width} outputs, expected 1"
            )));
        }
        Ok(Self { layers })
    }

    /// A head from explicit `(weight, bias)` layers (tests, probes).
    pub fn from_layers(layers: Vec<(Tensor, Tensor)>) -> Self {
        Self { layers }
    }

    /// Scores `(B,)` of unnormalised image features `(B, D)`.
    pub fn forward(&self, image_features: &Tensor) -> Tensor {
        let mut x = normalize(image_features);
        for (w, b) in &self.layers {
            x = x.linear(&w.to_device(x.device()), Some(&b.to_device(x.device())));
        }
        x.flatten(0, -1)
    }
}

/// The LAION aesthetic score of renders: [`AestheticHead`] on a CLIP (ViT-L/14 for the
/// published head) image embedding.
#[derive(Debug)]
pub struct AestheticReward {
    clip: Clip,
    head: AestheticHead,
}

impl AestheticReward {
    /// Loads the head from `head` (safetensors) and the CLIP folder `clip_dir`.
    pub fn load(head: &Path, clip_dir: &Path, device: Device) -> Result<Self, DistillError> {
        let clip = Clip::load(clip_dir, device)?;
        let head = AestheticHead::load(head, clip.model.config.projection_dim, device)?;
        Ok(Self { clip, head })
    }

    /// A reward from a loaded model and head.
    pub fn new(clip: Clip, head: AestheticHead) -> Self {
        Self { clip, head }
    }

    /// The head's scores of image features.
    pub fn head(&self) -> &AestheticHead {
        &self.head
    }
}

impl Reward for AestheticReward {
    fn name(&self) -> String {
        format!("aesthetic({})", self.clip.dir.display())
    }

    fn score(&mut self, images: &Tensor) -> Result<Vec<f64>, DistillError> {
        let dev = self.clip.model.vs.device();
        let s = tch::no_grad(|| {
            self.head
                .forward(&self.clip.render_features(&images.to_device(dev)))
        });
        Ok(Vec::try_from(
            s.to_device(Device::Cpu).to_kind(Kind::Double),
        )?)
    }
}
