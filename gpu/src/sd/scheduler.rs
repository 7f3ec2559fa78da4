//! Noise schedule (float32 ᾱ exactly as diffusers), DDPM noising and DDIM sampling.
//!
//! Reference: diffusers v0.32.0 `schedulers/scheduling_ddim.py`
//! (<https://github.com/huggingface/diffusers/blob/v0.32.0/src/diffusers/schedulers/scheduling_ddim.py>).

use tch::{Device, Kind, Tensor};

use super::config::SchedulerConfig;
use super::{Result, SdError};

/// What the UNet predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredictionType {
    /// The added noise ε.
    Epsilon,
    /// The velocity `v = √ᾱ ε − √(1−ᾱ) x₀` (SD2.x 768).
    VPrediction,
}

/// DDIM (η = 0) sampler with DDPM noising, built from a scheduler config.
#[derive(Debug)]
pub struct DdimScheduler {
    /// ᾱ_t for t in 0..num_train_timesteps, float32 on the CPU.
    pub alphas_cumprod: Tensor,
    alphas_cumprod_vec: Vec<f64>,
    final_alpha_cumprod: f64,
    /// The inference timesteps, descending (set by [`Self::set_timesteps`]).
    pub timesteps: Vec<i64>,
    num_inference_steps: i64,
    /// What the UNet predicts.
    pub prediction_type: PredictionType,
    /// The config it was built from.
    pub config: SchedulerConfig,
}

impl DdimScheduler {
    /// Builds the schedule (the config must have passed [`SchedulerConfig::validate`]).
    pub fn new(config: &SchedulerConfig) -> Self {
        let n = config.num_train_timesteps;
        let opts = (Kind::Float, Device::Cpu);
        let betas = match config.beta_schedule.as_str() {
            "scaled_linear" => {
                Tensor::linspace(config.beta_start.sqrt(), config.beta_end.sqrt(), n, opts)
                    .pow_tensor_scalar(2)
            }
            "squaredcos_cap_v2" => {
                // betas_for_alpha_bar: computed in float64 Python, then stored as float32.
                let alpha_bar = |t: f64| {
                    ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
                        .cos()
                        .powi(2)
                };
                let b: Vec<f64> = (0..n)
                    .map(|i| {
                        let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                        (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999)
                    })
                    .collect();
                Tensor::from_slice(&b).to_kind(Kind::Float)
            }
            _ => Tensor::linspace(config.beta_start, config.beta_end, n, opts),
        };
        let alphas: Tensor = 1.0 - betas;
        let alphas_cumprod = alphas.cumprod(0, Kind::Float);
        let alphas_cumprod_vec: Vec<f64> = Vec::<f32>::try_from(&alphas_cumprod)
            .unwrap_or_default()
            .into_iter()
            .map(f64::from)
            .collect();
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod_vec[0]
        };
        Self {
            alphas_cumprod,
            alphas_cumprod_vec,
            final_alpha_cumprod,
            timesteps: Vec::new(),
            num_inference_steps: 0,
            prediction_type: if config.prediction_type == "v_prediction" {
                PredictionType::VPrediction
            } else {
                PredictionType::Epsilon
            },
            config: config.clone(),
        }
    }

    /// Number of training timesteps.
    pub fn num_train_timesteps(&self) -> i64 {
        self.config.num_train_timesteps
    }

    /// ᾱ_t as float32 values widened to f64.
    pub fn alpha_cumprod(&self, t: i64) -> f64 {
        self.alphas_cumprod_vec[t.clamp(0, self.num_train_timesteps() - 1) as usize]
    }

    /// Chooses `steps` inference timesteps per `timestep_spacing` (diffusers `set_timesteps`).
    pub fn set_timesteps(&mut self, steps: i64) -> Result<()> {
        let n = self.num_train_timesteps();
        if steps < 1 || steps > n {
            return Err(SdError::InvalidArgument {
                name: "steps".into(),
                message: format!("{steps} inference steps; expected 1..={n}"),
            });
        }
        self.timesteps = match self.config.timestep_spacing.as_str() {
            "linspace" => (0..steps)
                .rev()
                .map(|i| (i as f64 * (n - 1) as f64 / (steps - 1).max(1) as f64).round() as i64)
                .collect(),
            "trailing" => {
                let ratio = n as f64 / steps as f64;
                (0..steps)
                    .map(|i| (n as f64 - i as f64 * ratio).round() as i64 - 1)
                    .collect()
            }
            _ => {
                let ratio = n / steps;
                (0..steps)
                    .rev()
                    .map(|i| i * ratio + self.config.steps_offset)
                    .collect()
            }
        };
        self.num_inference_steps = steps;
        Ok(())
    }

    /// Gathers `coef(ᾱ_t)` per sample as a `(batch, 1, 1, 1)` float32 tensor on `like`'s device.
    fn per_sample(
        &self,
        timesteps: &Tensor,
        like: &Tensor,
        coef: impl Fn(&Tensor) -> Tensor,
    ) -> Tensor {
        let t = timesteps
            .to_device(Device::Cpu)
            .to_kind(Kind::Int64)
            .reshape([-1]);
        let a = self.alphas_cumprod.index_select(0, &t);
        let mut shape = vec![-1i64];
        shape.extend(std::iter::repeat_n(1, like.dim().saturating_sub(1)));
        coef(&a)
            .reshape(shape)
            .to_device(like.device())
            .to_kind(like.kind())
    }

    fn check_timesteps(&self, timesteps: &Tensor) -> Result<()> {
        let n = self.num_train_timesteps();
        let t = timesteps.to_kind(Kind::Int64);
        if t.numel() > 0 && (t.min().int64_value(&[]) < 0 || t.max().int64_value(&[]) >= n) {
            return Err(SdError::InvalidArgument {
                name: "timesteps".into(),
                message: format!("expected values in 0..{n}"),
            });
        }
        Ok(())
    }

    /// `√ᾱ_t · x₀ + √(1−ᾱ_t) · ε` (diffusers `add_noise`, computed in float32).
    pub fn add_noise(
        &self,
        original: &Tensor,
        noise: &Tensor,
        timesteps: &Tensor,
    ) -> Result<Tensor> {
        self.check_timesteps(timesteps)?;
        let sqrt_a = self.per_sample(timesteps, original, |a| a.pow_tensor_scalar(0.5));
        let sqrt_1ma = self.per_sample(timesteps, original, |a: &Tensor| {
            (a.neg() + 1.0).pow_tensor_scalar(0.5)
        });
        Ok(sqrt_a * original + sqrt_1ma * noise)
    }

    /// The v-prediction target `√ᾱ_t · ε − √(1−ᾱ_t) · x₀` (diffusers `get_velocity`).
    pub fn get_velocity(
        &self,
        sample: &Tensor,
        noise: &Tensor,
        timesteps: &Tensor,
    ) -> Result<Tensor> {
        self.check_timesteps(timesteps)?;
        let sqrt_a = self.per_sample(timesteps, sample, |a| a.pow_tensor_scalar(0.5));
        let sqrt_1ma = self.per_sample(timesteps, sample, |a: &Tensor| {
            (a.neg() + 1.0).pow_tensor_scalar(0.5)
        });
        Ok(sqrt_a * noise - sqrt_1ma * sample)
    }

    /// `1 − ᾱ_t` per sample, `(batch, 1, 1, 1)`: the SDS weight w(t).
    pub fn sds_weight(&self, timesteps: &Tensor, like: &Tensor) -> Result<Tensor> {
        self.check_timesteps(timesteps)?;
        Ok(self.per_sample(timesteps, like, |a: &Tensor| a.neg() + 1.0))
    }

    /// Converts a model output at `t` to the predicted ε (for either prediction type).
    pub fn to_epsilon(&self, model_output: &Tensor, sample: &Tensor, t: i64) -> Tensor {
        match self.prediction_type {
            PredictionType::Epsilon => model_output.shallow_clone(),
            PredictionType::VPrediction => {
                let a = self.alpha_cumprod(t);
                model_output * a.sqrt() + sample * (1.0 - a).sqrt()
            }
        }
    }

    /// Moves `sample` from timestep `from` to timestep `to` along the deterministic DDIM (η = 0)
    /// trajectory of the noise prediction `eps` (an ε, not a v: see [`Self::to_epsilon`]):
    /// `x̂₀ = (x − √(1−ᾱ_from) ε) / √ᾱ_from`, `x_to = √ᾱ_to x̂₀ + √(1−ᾱ_to) ε` (DDIM eq. 12 with
    /// σ = 0). `to < from` is an ordinary denoising step; `to > from` is a DDIM inversion step
    /// (the probability-flow ODE run toward noise), as ISM / TSM / CDS use it. No x̂₀ clipping.
    pub fn ddim_transfer(&self, eps: &Tensor, sample: &Tensor, from: i64, to: i64) -> Tensor {
        let a_from = self.alpha_cumprod(from);
        let a_to = self.alpha_cumprod(to);
        let x0 = (sample - eps * (1.0 - a_from).sqrt()) / a_from.sqrt();
        x0 * a_to.sqrt() + eps * (1.0 - a_to).sqrt()
    }

    /// One DDIM step (η = 0) from `t` to the previous inference timestep.
    pub fn step(&self, model_output: &Tensor, t: i64, sample: &Tensor) -> Tensor {
        let prev_t = t - self.num_train_timesteps() / self.num_inference_steps.max(1);
        let alpha_prod_t = self.alpha_cumprod(t);
        let alpha_prod_t_prev = if prev_t >= 0 {
            self.alpha_cumprod(prev_t)
        } else {
            self.final_alpha_cumprod
        };
        let beta_prod_t = 1.0 - alpha_prod_t;
        let (pred_original, pred_epsilon) = match self.prediction_type {
            PredictionType::Epsilon => (
                (sample - model_output * beta_prod_t.sqrt()) / alpha_prod_t.sqrt(),
                model_output.shallow_clone(),
            ),
            PredictionType::VPrediction => (
                sample * alpha_prod_t.sqrt() - model_output * beta_prod_t.sqrt(),
                model_output * alpha_prod_t.sqrt() + sample * beta_prod_t.sqrt(),
            ),
        };
        let pred_original = if self.config.clip_sample {
            let r = self.config.clip_sample_range;
            pred_original.clamp(-r, r)
        } else {
            pred_original
        };
        pred_original * alpha_prod_t_prev.sqrt() + pred_epsilon * (1.0 - alpha_prod_t_prev).sqrt()
    }
}
