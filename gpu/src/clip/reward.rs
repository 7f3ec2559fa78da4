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

/// A reward that keeps a copy of the scores it last gave, for the caller to show or log (the
/// engine owns the reward; the [`RewardTap`] stays with the caller).
pub struct TappedReward {
    inner: Box<dyn Reward>,
    last: std::sync::Arc<std::sync::Mutex<Option<Vec<f64>>>>,
}

/// The caller's end of a [`TappedReward`].
#[derive(Clone, Debug, Default)]
pub struct RewardTap(std::sync::Arc<std::sync::Mutex<Option<Vec<f64>>>>);

impl RewardTap {
    /// The scores given since the last call, if any.
    pub fn take(&self) -> Option<Vec<f64>> {
        self.0.lock().ok()?.take()
    }
}

impl TappedReward {
    /// Wraps `inner`; the tap sees every score it gives.
    pub fn new(inner: Box<dyn Reward>) -> (Self, RewardTap) {
        let tap = RewardTap::default();
        (
            Self {
                inner,
                last: tap.0.clone(),
            },
            tap,
        )
    }
}

impl Reward for TappedReward {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn score(&mut self, images: &Tensor) -> Result<Vec<f64>, DistillError> {
        let s = self.inner.score(images)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some(s.clone());
        }
        Ok(s)
    }
}

/// Each particle's latest reward and CLIP score (`None`: not computed at this step).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParticleScores {
    /// Steps completed.
    pub step: usize,
    /// The reward of each particle (the render the step optimised).
    pub reward: Option<Vec<f64>>,
    /// `100 · max(cos, 0)` of each particle's render to the prompt.
    pub clip_score: Option<Vec<f64>>,
}

/// Scores the particles after steps: the reward through its tap (on the engine's reward steps)
/// and the CLIP score of the same renders, every `every` steps (the reward's steps, 1, 1 + every,
/// …, when both are there).
pub struct ParticleScorer {
    tap: Option<RewardTap>,
    clip: Option<ClipReward>,
    every: usize,
}

impl std::fmt::Debug for ParticleScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParticleScorer")
            .field("reward", &self.tap.is_some())
            .field("clip", &self.clip.as_ref().map(|c| c.clip.dir.clone()))
            .field("every", &self.every)
            .finish()
    }
}

impl ParticleScorer {
    /// A scorer over `tap` and a CLIP-score model (`every` ≥ 1).
    pub fn new(tap: Option<RewardTap>, clip: Option<ClipReward>, every: usize) -> Self {
        Self {
            tap,
            clip,
            every: every.max(1),
        }
    }

    /// Loads the CLIP folder `clip_dir` (if any) for CLIP scores to `prompt`.
    pub fn load(
        tap: Option<RewardTap>,
        clip_dir: Option<&Path>,
        prompt: &str,
        every: usize,
        device: Device,
    ) -> Result<Self, DistillError> {
        let clip = clip_dir
            .map(|d| ClipReward::load(d, ClipRewardKind::ClipScore, prompt, device))
            .transpose()?;
        Ok(Self::new(tap, clip, every))
    }

    /// Whether it reports anything at all.
    pub fn is_empty(&self) -> bool {
        self.tap.is_none() && self.clip.is_none()
    }

    /// Whether it computes CLIP scores.
    pub fn has_clip(&self) -> bool {
        self.clip.is_some()
    }

    /// Whether it reports rewards.
    pub fn has_reward(&self) -> bool {
        self.tap.is_some()
    }

    /// The scores after the step that made `step` steps completed (`None`: nothing new).
    pub fn after_step(
        &mut self,
        step: usize,
        d: &mut crate::distill::Distiller,
    ) -> Result<Option<ParticleScores>, DistillError> {
        let reward = self.tap.as_ref().and_then(RewardTap::take);
        let clip_score = match &mut self.clip {
            Some(c) if step >= 1 && (step - 1).is_multiple_of(self.every) => {
                let frames = d.frames()?;
                Some(c.score(&frames_to_images(&frames))?)
            }
            _ => None,
        };
        if reward.is_none() && clip_score.is_none() {
            return Ok(None);
        }
        Ok(Some(ParticleScores {
            step,
            reward,
            clip_score,
        }))
    }
}

/// RGBA8 frames of one size as `(B, 3, H, W)` in `[0, 1]` (alpha ignored: frames are opaque).
pub fn frames_to_images(frames: &[crate::distill::Frame]) -> Tensor {
    let images: Vec<Tensor> = frames
        .iter()
        .map(|f| {
            Tensor::from_slice(&f.rgba)
                .reshape([f.height as i64, f.width as i64, 4])
                .narrow(2, 0, 3)
                .permute([2, 0, 1])
                .to_kind(Kind::Float)
                / 255.0
        })
        .collect();
    Tensor::stack(&images, 0)
}
