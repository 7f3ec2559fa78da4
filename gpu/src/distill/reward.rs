//! Reward models that score rendered particles (for ReFL-style re-weighting of φ and for
//! re-weighting / resampling the particles themselves).

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::DistillError;
use super::reference::ReferenceTeacher;

/// Scores images `[B, 3, H, W]` in `[0, 1]`; higher is better. Called without gradient.
pub trait Reward: Send {
    /// Short name for logs.
    fn name(&self) -> String;
    /// One score per image.
    fn score(&mut self, images: &Tensor) -> Result<Vec<f64>, DistillError>;
}

/// Particle weights with mean 1 from rewards: `B · softmax(r / temperature)`.
pub fn reward_weights(scores: &[f64], temperature: f64) -> Vec<f64> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores.iter().map(|s| ((s - max) / t).exp()).collect();
    let sum: f64 = e.iter().sum();
    let n = scores.len() as f64;
    e.iter().map(|v| n * v / sum).collect()
}

/// A prompt-independent aesthetic proxy that needs no download: Hasler & Süsstrunk's
/// colourfulness (2003) plus the luminance contrast (standard deviation), both in `[0, 1]` units.
#[derive(Clone, Debug, Default)]
pub struct ColorfulnessReward;

impl Reward for ColorfulnessReward {
    fn name(&self) -> String {
        "colorfulness".into()
    }

    fn score(&mut self, images: &Tensor) -> Result<Vec<f64>, DistillError> {
        let b = images.size()[0];
        let x = images.to_kind(Kind::Double).reshape([b, 3, -1]);
        let r = x.select(1, 0);
        let g = x.select(1, 1);
        let bl = x.select(1, 2);
        let rg = &r - &g;
        let yb = (&r + &g) * 0.5 - &bl;
        let std = |t: &Tensor| t.std_dim(-1, false, false);
        let mean = |t: &Tensor| t.mean_dim(-1, false, Kind::Double);
        let sigma = (std(&rg).square() + std(&yb).square()).sqrt();
        let mu = (mean(&rg).square() + mean(&yb).square()).sqrt();
        let luma = &r * 0.299 + &g * 0.587 + &bl * 0.114;
        let score = sigma + mu * 0.3 + std(&luma);
        Ok(Vec::try_from(score)?)
    }
}

/// The reference teacher's log-likelihood of each image under its targets as a Gaussian mixture
/// of width `sigma` (in `[-1, 1]` units, per pixel): `log Σ_k exp(−‖x − y_k‖² / 2σ²) / D`.
#[derive(Debug)]
pub struct ReferenceLikelihoodReward {
    targets: Tensor,
    resolution: i64,
    sigma: f64,
}

impl ReferenceLikelihoodReward {
    /// A reward from the same targets as `teacher`.
    pub fn new(teacher: &ReferenceTeacher, sigma: f64) -> Self {
        Self {
            targets: teacher.targets().shallow_clone(),
            resolution: teacher.resolution(),
            sigma,
        }
    }
}

impl Reward for ReferenceLikelihoodReward {
    fn name(&self) -> String {
        "reference-likelihood".into()
    }

    fn score(&mut self, images: &Tensor) -> Result<Vec<f64>, DistillError> {
        let r = self.resolution;
        let x = images
            .to_device(self.targets.device())
            .adaptive_avg_pool2d([r, r])
            * 2.0
            - 1.0;
        let b = x.size()[0];
        let k = self.targets.size()[0];
        let d = (3 * r * r) as f64;
        let d2 = (x.reshape([b, 1, -1]).to_kind(Kind::Double)
            - self.targets.reshape([1, k, -1]).to_kind(Kind::Double))
        .square()
        .sum_dim_intlist(-1, false, Kind::Double);
        let ll = (-d2 / (2.0 * self.sigma * self.sigma)).logsumexp(-1, false) / d;
        Ok(Vec::try_from(ll)?)
    }
}

/// A linear reward head on 16×16 average-pooled RGB, loaded from a safetensors file with
/// `weight` `[1, 768]` and `bias` `[1]` — the format for small learned aesthetic probes. (Large
/// reward models such as ImageReward need a BLIP backbone that this crate does not implement.)
#[derive(Debug)]
pub struct LinearReward {
    weight: Tensor,
    bias: Tensor,
}

impl LinearReward {
    /// Reads `weight` and `bias` from `path`.
    pub fn load(path: &Path, device: Device) -> Result<Self, DistillError> {
        let err = |message: String| DistillError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        let tensors = Tensor::read_safetensors(path).map_err(|e| err(e.to_string()))?;
        let get = |name: &str| {
            tensors
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, t)| t.to_kind(Kind::Float).to_device(device))
                .ok_or_else(|| {
                    err(format!(
                        "missing tensor `{name}` (expected weight [1, 768], bias [1])"
                    ))
                })
        };
        let weight = get("weight")?;
        let bias = get("bias")?;
        if weight.size() != [1, 768] || bias.size() != [1] {
            return Err(err(format!(
                "weight {:?} / bias {:?}: expected [1, 768] / [1]",
                weight.size(),
                bias.size()
            )));
        }
        Ok(Self { weight, bias })
    }
}

impl Reward for LinearReward {
    fn name(&self) -> String {
        "linear".into()
    }

    fn score(&mut self, images: &Tensor) -> Result<Vec<f64>, DistillError> {
        let x = images
            .to_device(self.weight.device())
            .to_kind(Kind::Float)
            .adaptive_avg_pool2d([16, 16])
            .flatten(1, -1);
        let s = x.linear(&self.weight, Some(&self.bias)).flatten(0, -1);
        Ok(Vec::try_from(s.to_kind(Kind::Double))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reward_weights_have_mean_one_and_follow_the_scores() {
        let w = reward_weights(&[0.0, 1.0, 2.0], 1.0);
        assert!((w.iter().sum::<f64>() - 3.0).abs() < 1e-12);
        assert!(w[0] < w[1] && w[1] < w[2]);
    }

    #[test]
    fn colorfulness_prefers_colour_to_grey() {
        let grey = Tensor::full([1, 3, 8, 8], 0.5, (Kind::Float, Device::Cpu));
        let colour = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
        let _ = colour.narrow(3, 0, 4).select(1, 0).fill_(1.0);
        let _ = colour.narrow(3, 4, 4).select(1, 2).fill_(1.0);
        let s = ColorfulnessReward
            .score(&Tensor::cat(&[grey, colour], 0))
            .unwrap();
        assert!(s[0] < 1e-9 && s[1] > 0.5, "{s:?}");
    }
}
