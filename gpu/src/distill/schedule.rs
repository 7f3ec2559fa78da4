//! Noise and learning-rate schedules: ᾱ of Stable Diffusion's scaled-linear betas, the timestep
//! range with SVGDreamer's "max_0.5_N" annealing, and per-parameter learning-rate multipliers.

use serde::{Deserialize, Serialize};

use super::DistillError;
use crate::rng::Rng;

/// ᾱ_t for t in `0..steps` from betas linear in √β between `beta_start` and `beta_end`
/// (diffusers' "scaled_linear"; SD uses 0.00085 → 0.012 over 1000 steps).
pub fn scaled_linear_alphas_cumprod(steps: usize, beta_start: f64, beta_end: f64) -> Vec<f64> {
    let (a, b) = (beta_start.sqrt(), beta_end.sqrt());
    let mut acc = 1.0;
    (0..steps)
        .map(|i| {
            let s = if steps > 1 {
                a + (b - a) * i as f64 / (steps - 1) as f64
            } else {
                a
            };
            acc *= 1.0 - s * s;
            acc
        })
        .collect()
}

/// Stable Diffusion's ᾱ (1000 steps, betas 0.00085 → 0.012, scaled-linear).
pub fn sd_alphas_cumprod() -> Vec<f64> {
    scaled_linear_alphas_cumprod(1000, 0.00085, 0.012)
}

/// How the upper end of the timestep range moves during a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Annealing {
    /// `t ~ U[t_min, t_max]` throughout.
    None,
    /// SVGDreamer's "max_0.5_N": after step `after` the upper bound drops to 500 (half of 1000).
    MaxHalfAfter {
        /// The step after which t ≤ 500.
        after: usize,
    },
    /// The upper bound falls linearly from `t_max` to `to` over the run (DreamTime-like).
    Linear {
        /// Final upper bound.
        to: i64,
    },
}

impl Annealing {
    /// Parses `none`, `max_0.5_N` (e.g. `max_0.5_1500`) or `linear_T`.
    pub fn parse(s: &str) -> Result<Self, DistillError> {
        let bad = || DistillError::Config {
            field: "t_schedule".into(),
            message: format!("`{s}`: expected `none`, `max_0.5_N` or `linear_T`"),
        };
        if s == "none" || s.is_empty() {
            Ok(Self::None)
        } else if let Some(n) = s.strip_prefix("max_0.5_") {
            Ok(Self::MaxHalfAfter {
                after: n.parse().map_err(|_| bad())?,
            })
        } else if let Some(n) = s.strip_prefix("linear_") {
            Ok(Self::Linear {
                to: n.parse().map_err(|_| bad())?,
            })
        } else {
            Err(bad())
        }
    }
}

/// Range of diffusion timesteps sampled per particle and step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeRange {
    /// Smallest t (20 in threestudio and SVGDreamer).
    pub t_min: i64,
    /// Largest t (980).
    pub t_max: i64,
    /// How `t_max` changes over the run.
    pub annealing: Annealing,
}

impl Default for TimeRange {
    fn default() -> Self {
        Self {
            t_min: 20,
            t_max: 980,
            annealing: Annealing::None,
        }
    }
}

impl TimeRange {
    /// The bounds in force at `step` of `total` steps.
    pub fn bounds(&self, step: usize, total: usize) -> (i64, i64) {
        let hi = match self.annealing {
            Annealing::None => self.t_max,
            Annealing::MaxHalfAfter { after } => {
                if step >= after {
                    self.t_max.min(500)
                } else {
                    self.t_max
                }
            }
            Annealing::Linear { to } => {
                let f = step as f64 / total.max(1) as f64;
                (self.t_max as f64 + (to as f64 - self.t_max as f64) * f.min(1.0)).round() as i64
            }
        };
        (self.t_min, hi.max(self.t_min))
    }

    /// One t per particle.
    pub fn sample(&self, step: usize, total: usize, n: usize, rng: &mut Rng) -> Vec<i64> {
        let (lo, hi) = self.bounds(step, total);
        (0..n).map(|_| rng.int_in(lo, hi)).collect()
    }
}

/// Learning-rate multiplier over the run (the base learning rate is multiplied by it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LrSchedule {
    /// Always 1.
    Constant,
    /// Linear warm-up from `start` to `peak` over `warmup` steps, then cosine from `peak` to `end`
    /// at the last step (SVGDreamer's points: 0.02 → 0.9 over 10 steps, cosine to 0.4).
    WarmupCosine {
        /// Multiplier at step 0.
        start: f64,
        /// Multiplier at the end of the warm-up.
        peak: f64,
        /// Multiplier at the last step.
        end: f64,
        /// Warm-up length in steps.
        warmup: usize,
    },
}

impl LrSchedule {
    /// SVGDreamer's schedule for control points.
    pub fn svgdreamer_points() -> Self {
        Self::WarmupCosine {
            start: 0.02,
            peak: 0.9,
            end: 0.4,
            warmup: 10,
        }
    }

    /// The multiplier at `step` of a `total`-step run.
    pub fn factor(&self, step: usize, total: usize) -> f64 {
        match *self {
            Self::Constant => 1.0,
            Self::WarmupCosine {
                start,
                peak,
                end,
                warmup,
            } => {
                if step < warmup {
                    start + (peak - start) * step as f64 / warmup as f64
                } else {
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    let p = ((step - warmup) as f64 / span).min(1.0);
                    end + 0.5 * (peak - end) * (1.0 + (std::f64::consts::PI * p).cos())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphas_cumprod_match_diffusers_endpoints() {
        let a = sd_alphas_cumprod();
        // diffusers' DDIMScheduler(scaled_linear 0.00085→0.012): ᾱ_0 = 0.99915, ᾱ_999 ≈ 0.0046.
        assert!((a[0] - 0.99915).abs() < 1e-12, "{}", a[0]);
        assert!((a[999] - 0.004_66).abs() < 1e-4, "{}", a[999]);
        assert!(a.windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn time_range_max_half_drops_after_n() {
        let r = TimeRange {
            annealing: Annealing::parse("max_0.5_100").unwrap(),
            ..Default::default()
        };
        assert_eq!(r.bounds(99, 200), (20, 980));
        assert_eq!(r.bounds(100, 200), (20, 500));
        let mut rng = Rng::new(0);
        assert!(
            r.sample(150, 200, 100, &mut rng)
                .iter()
                .all(|t| (20..=500).contains(t))
        );
        assert!(Annealing::parse("max_0.5_x").is_err());
    }

    #[test]
    fn lr_schedule_warms_up_then_decays() {
        let s = LrSchedule::svgdreamer_points();
        assert!((s.factor(0, 100) - 0.02).abs() < 1e-12);
        assert!((s.factor(10, 100) - 0.9).abs() < 1e-12);
        assert!((s.factor(100, 100) - 0.4).abs() < 1e-12);
        assert!(s.factor(50, 100) < 0.9 && s.factor(50, 100) > 0.4);
    }
}
