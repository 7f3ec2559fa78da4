//! Each particle's latest reward and CLIP score from the worker, as the small line shown under
//! its thumbnail ("reward 0.82 · CLIP 27.1").

use vecdream_gpu::clip::ParticleScores;

/// The latest numbers per particle (each kept until a newer one arrives).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatestScores {
    reward: Vec<Option<f64>>,
    clip: Vec<Option<f64>>,
}

impl LatestScores {
    /// Takes the numbers of an [`vecdream_gpu::distill::Event::Scores`].
    pub fn update(&mut self, s: &ParticleScores) {
        let put = |into: &mut Vec<Option<f64>>, from: &Option<Vec<f64>>| {
            if let Some(v) = from {
                into.resize(into.len().max(v.len()), None);
                for (slot, x) in into.iter_mut().zip(v) {
                    *slot = Some(*x);
                }
            }
        };
        put(&mut self.reward, &s.reward);
        put(&mut self.clip, &s.clip_score);
    }

    /// Forgets everything (a new run).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// One label per particle (empty where there is nothing yet).
    pub fn labels(&self) -> Vec<String> {
        let n = self.reward.len().max(self.clip.len());
        (0..n)
            .map(|i| {
                let mut parts = Vec::new();
                if let Some(Some(r)) = self.reward.get(i) {
                    parts.push(format!("reward {r:.2}"));
                }
                if let Some(Some(c)) = self.clip.get(i) {
                    parts.push(format!("CLIP {c:.1}"));
                }
                parts.join(" · ")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_the_latest_of_each_number() {
        let mut l = LatestScores::default();
        l.update(&ParticleScores {
            step: 1,
            reward: Some(vec![0.824, 1.5]),
            clip_score: Some(vec![27.13, 0.0]),
        });
        l.update(&ParticleScores {
            step: 2,
            reward: Some(vec![0.5, 2.0]),
            clip_score: None,
        });
        assert_eq!(
            l.labels(),
            ["reward 0.50 · CLIP 27.1", "reward 2.00 · CLIP 0.0"]
        );
        l.clear();
        assert!(l.labels().is_empty());
    }
}
