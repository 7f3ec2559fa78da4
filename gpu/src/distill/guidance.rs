//! The [`Guidance`] trait: rendered particles in, a score-distillation loss out.

use tch::{Kind, Tensor};

use super::DistillError;
use crate::rng::Rng;

/// What a guidance gets besides the images at one optimisation step.
#[derive(Debug)]
pub struct StepCtx<'a> {
    /// Step index, from 0.
    pub step: usize,
    /// Planned number of steps (for annealed schedules).
    pub total_steps: usize,
    /// This step's random stream (timesteps, noise, subsets); deterministic per `(seed, step)`.
    pub rng: &'a mut Rng,
    /// Per-particle weights from a reward (mean 1), multiplying each particle's gradient and, for
    /// VPSD, its share of φ's loss; `None`: all 1.
    pub weights: Option<&'a [f64]>,
}

/// The result of [`Guidance::loss`].
#[derive(Debug)]
pub struct GuidanceOutput {
    /// Scalar to call `backward` on; its gradient on the images is the guidance gradient.
    pub loss: Tensor,
    /// The value to report as "the loss" (for SDS-style methods `0.5·Σ grad² / B`, the anchor's
    /// `0.5‖z − sg(z − grad)‖² / B`, which `loss` itself does not equal).
    pub value: f64,
    /// Named extra numbers for the log (e.g. `phi_loss`, `mean_t`).
    pub terms: Vec<(String, f64)>,
    /// The particles that received a gradient this step.
    pub guided: Vec<usize>,
}

/// A score-distillation guidance.
///
/// `images` are the rendered particles `[B, 3, H, W]`, straight RGB in `[0, 1]`, with autograd
/// history back to the vector parameters. The returned loss must only depend on `images` through
/// differentiable ops (guidances usually detach everything and return `Σ images·g` so that the
/// gradient is exactly `g`, see [`apply_grad_loss`]).
pub trait Guidance: Send {
    /// Short name for logs and checkpoints ("sds", "vpsd", "reference-sds", …).
    fn name(&self) -> String;

    /// The loss of one step. A guidance with its own trainable state (VPSD's LoRA) updates it here.
    fn loss(&mut self, images: &Tensor, ctx: &mut StepCtx) -> Result<GuidanceOutput, DistillError>;

    /// The guidance's estimate of the clean picture each particle is pulled toward
    /// (`[B, 3, H, W]` in `[0, 1]`, the images' size), e.g. the denoised estimate x̂₀ at a moderate
    /// timestep. Adaptive primitive control adds shapes where a render disagrees most with it.
    /// `None` when the guidance has none.
    fn denoised_target(
        &mut self,
        _images: &Tensor,
        _ctx: &mut StepCtx,
    ) -> Result<Option<Tensor>, DistillError> {
        Ok(None)
    }

    /// Changes a named setting during a run (e.g. `cfg`, `t_max`); `Ok(false)` if unknown.
    fn set_param(&mut self, _name: &str, _value: f64) -> Result<bool, DistillError> {
        Ok(false)
    }

    /// Tensors to save in a checkpoint (e.g. LoRA weights and their optimiser moments).
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Scalars to save in a checkpoint next to [`Guidance::state`].
    fn state_scalars(&self) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// Restores what [`Guidance::state`] and [`Guidance::state_scalars`] returned.
    fn load_state(
        &mut self,
        _tensors: &[(String, Tensor)],
        _scalars: &[(String, f64)],
    ) -> Result<(), DistillError> {
        Ok(())
    }
}

/// A loss whose gradient w.r.t. `x` is exactly `grad / B` (B = first dim), plus the value the
/// anchors report for it, `0.5·Σ grad² / B` (= `0.5‖x − sg(x − grad)‖² / B`).
///
/// Writing the loss as `Σ x·sg(grad) / B` instead of the anchors' squared form gives the same
/// gradient without the rounding of `x − (x − grad)`.
pub fn apply_grad_loss(x: &Tensor, grad: &Tensor) -> (Tensor, f64) {
    let b = x.size().first().copied().unwrap_or(1).max(1) as f64;
    let grad = grad.detach().to_kind(x.kind());
    let value = 0.5 * grad.square().sum(Kind::Double).double_value(&[]) / b;
    ((x * &grad).sum(Kind::Float) / b, value)
}
