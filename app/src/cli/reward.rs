//! `--reward` for `vecdream generate`: a reward model that re-weights (or resamples) the particles
//! every few steps (ReFL-style feedback on VPSD's particles).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use vecdream_gpu::clip::{AestheticReward, ClipReward, ClipRewardKind};
use vecdream_gpu::distill::{ColorfulnessReward, Reward, RewardConfig, RewardMode};
use vecdream_gpu::tch::Device;

/// Reward flags (flattened into `vecdream generate`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RewardArgs {
    /// Reward model scoring the particles: pickscore:CLIP_DIR (exp(logit_scale)·cos to the prompt,
    /// e.g. a PickScore_v1 folder) | clipscore:CLIP_DIR (100·max(cos, 0)) |
    /// aesthetic:HEAD.safetensors,CLIP_DIR (LAION aesthetic MLP on a ViT-L/14 embedding) |
    /// colorfulness (no weights).
    #[arg(long, value_name = "KIND[:ARGS]")]
    pub reward: Option<String>,
    /// Score the particles every this many steps.
    #[arg(long, default_value_t = 10)]
    pub reward_every: usize,
    /// reweight (particle weights B·softmax(r / T)) | resample (the worst particle becomes a copy
    /// of the best).
    #[arg(long, default_value = "reweight")]
    pub reward_mode: String,
    /// Softmax temperature T of `reweight`, in reward units.
    #[arg(long, default_value_t = 1.0)]
    pub reward_temperature: f64,
}

/// A parsed `--reward` value.
#[derive(Debug, Clone, PartialEq)]
pub enum RewardSpec {
    /// A prompt-alignment score from a CLIP folder.
    Clip(ClipRewardKind, PathBuf),
    /// LAION's aesthetic head on a CLIP folder.
    Aesthetic {
        /// The head (safetensors).
        head: PathBuf,
        /// The CLIP folder.
        clip: PathBuf,
    },
    /// Colourfulness + contrast.
    Colorfulness,
}

impl RewardSpec {
    /// The CLIP folder the reward reads, if any.
    pub fn clip_dir(&self) -> Option<&std::path::Path> {
        match self {
            Self::Clip(_, d) | Self::Aesthetic { clip: d, .. } => Some(d),
            Self::Colorfulness => None,
        }
    }

    /// Loads the reward model (`prompt` for the prompt-alignment rewards); errors name the
    /// folder or file (shared by `vecdream generate` and the app's worker).
    pub fn build(&self, prompt: Option<&str>, device: Device) -> anyhow::Result<Box<dyn Reward>> {
        Ok(match self {
            Self::Clip(kind, dir) => {
                let Some(prompt) = prompt.filter(|p| !p.trim().is_empty()) else {
                    bail!("a prompt-alignment reward needs a prompt");
                };
                Box::new(
                    ClipReward::load(dir, *kind, prompt, device)
                        .with_context(|| format!("CLIP folder {}", dir.display()))?,
                )
            }
            Self::Aesthetic { head, clip } => {
                Box::new(AestheticReward::load(head, clip, device).with_context(|| {
                    format!(
                        "aesthetic head {} on CLIP folder {}",
                        head.display(),
                        clip.display()
                    )
                })?)
            }
            Self::Colorfulness => Box::new(ColorfulnessReward),
        })
    }

    /// Parses `pickscore:DIR`, `clipscore:DIR`, `aesthetic:HEAD,DIR` or `colorfulness`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let need = |what: &str| -> anyhow::Result<PathBuf> {
            if rest.is_empty() {
                bail!("--reward {s}: expected {kind}:{what}");
            }
            Ok(PathBuf::from(rest))
        };
        Ok(match kind {
            "pickscore" => Self::Clip(ClipRewardKind::PickScore, need("CLIP_DIR")?),
            "clipscore" => Self::Clip(ClipRewardKind::ClipScore, need("CLIP_DIR")?),
            "aesthetic" => {
                let Some((head, clip)) = rest.split_once(',') else {
                    bail!("--reward {s}: expected aesthetic:HEAD.safetensors,CLIP_DIR");
                };
                Self::Aesthetic {
                    head: head.into(),
                    clip: clip.into(),
                }
            }
            "colorfulness" => Self::Colorfulness,
            k => bail!(
                "--reward {k}: unknown reward (pickscore:DIR | clipscore:DIR | aesthetic:HEAD,DIR | colorfulness)"
            ),
        })
    }
}

impl RewardArgs {
    /// The engine's reward settings (`None` without `--reward`).
    pub fn config(&self) -> anyhow::Result<Option<RewardConfig>> {
        if self.reward.is_none() {
            return Ok(None);
        }
        if self.reward_every == 0 {
            bail!("--reward-every 0: expected ≥ 1");
        }
        let mode = match self.reward_mode.as_str() {
            "reweight" => {
                if !(self.reward_temperature > 0.0 && self.reward_temperature.is_finite()) {
                    bail!(
                        "--reward-temperature {}: expected a positive number",
                        self.reward_temperature
                    );
                }
                RewardMode::Reweight {
                    temperature: self.reward_temperature,
                }
            }
            "resample" => RewardMode::Resample,
            m => bail!("--reward-mode {m}: expected reweight or resample"),
        };
        Ok(Some(RewardConfig {
            every: self.reward_every,
            mode,
        }))
    }

    /// Loads the reward model (`prompt` for the prompt-alignment rewards).
    pub fn build(
        &self,
        prompt: Option<&str>,
        device: Device,
    ) -> anyhow::Result<Option<Box<dyn Reward>>> {
        let Some(s) = &self.reward else {
            return Ok(None);
        };
        let spec = RewardSpec::parse(s)?;
        if matches!(spec, RewardSpec::Clip(..)) && prompt.is_none() {
            bail!("--reward {s}: a prompt-alignment reward needs --prompt");
        }
        Ok(Some(
            spec.build(prompt, device)
                .with_context(|| format!("--reward {s}"))?,
        ))
    }

    /// The flags as `(flag, value)` pairs for the checkpoint's run settings.
    pub fn settings(&self) -> Vec<(String, String)> {
        let Some(r) = &self.reward else {
            return vec![("--reward".into(), "(not given)".into())];
        };
        vec![
            ("--reward".into(), r.clone()),
            ("--reward-every".into(), self.reward_every.to_string()),
            ("--reward-mode".into(), self.reward_mode.clone()),
            (
                "--reward-temperature".into(),
                self.reward_temperature.to_string(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(
            RewardSpec::parse("pickscore:/m/pick").unwrap(),
            RewardSpec::Clip(ClipRewardKind::PickScore, "/m/pick".into())
        );
        assert_eq!(
            RewardSpec::parse("aesthetic:h.safetensors,/m/l14").unwrap(),
            RewardSpec::Aesthetic {
                head: "h.safetensors".into(),
                clip: "/m/l14".into()
            }
        );
        assert_eq!(
            RewardSpec::parse("colorfulness").unwrap(),
            RewardSpec::Colorfulness
        );
        let e = RewardSpec::parse("clipscore").unwrap_err().to_string();
        assert!(e.contains("clipscore:CLIP_DIR"), "{e}");
        let e = RewardSpec::parse("aesthetic:h.safetensors")
            .unwrap_err()
            .to_string();
        assert!(e.contains("HEAD.safetensors,CLIP_DIR"), "{e}");
        assert!(RewardSpec::parse("imagereward:x").is_err());
    }
}
