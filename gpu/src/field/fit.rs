//! Multi-view photometric fitting: the loss of a batch of known views (MSE of the composited
//! colour, plus the opacity against the images' alpha where they have one), and the Adam that
//! updates the grid (density, colour) and the background.

use tch::{Device, Kind, Tensor};

use super::camera::Camera;
use super::grid::Grid;
use super::render::{RenderOutput, render};
use super::views::Views;
use crate::distill::{AdamConfig, MaskedAdam};
use crate::rng::Rng;

/// The photometric objective of a views folder.
#[derive(Debug)]
pub struct ViewFit {
    rgb: Tensor,
    alpha: Tensor,
    has_alpha: bool,
    cameras: Vec<Camera>,
    /// Side of the renders (the images', at most `max_size`).
    pub size: i64,
    /// Views per step.
    pub batch: usize,
    /// Weight of the opacity-vs-alpha term (views with alpha).
    pub mask_weight: f64,
}

/// What one objective evaluation gives back.
#[derive(Debug)]
pub struct ObjectiveOutput {
    /// The differentiable loss (regularisers not included).
    pub loss: Tensor,
    /// The value to report.
    pub value: f64,
    /// Extra named numbers for the log.
    pub terms: Vec<(String, f64)>,
    /// The render it came from (for the emptiness regulariser).
    pub render: RenderOutput,
}

impl ViewFit {
    /// The views as tensors on `device`, area-downsampled to at most `max_size` pixels a side.
    pub fn new(
        views: &Views,
        max_size: u32,
        batch: usize,
        mask_weight: f64,
        device: Device,
    ) -> Self {
        let (mut rgb, mut alpha) = views.tensors(device);
        let mut size = i64::from(views.size);
        let max = i64::from(max_size.max(8));
        if size > max {
            rgb = rgb.adaptive_avg_pool2d([max, max]);
            alpha = alpha.adaptive_avg_pool2d([max, max]);
            size = max;
        }
        Self {
            rgb,
            alpha,
            has_alpha: views.views.iter().all(|v| v.has_alpha),
            cameras: views.cameras(),
            size,
            batch: batch.max(1),
            mask_weight,
        }
    }

    /// Number of views.
    pub fn len(&self) -> usize {
        self.cameras.len()
    }

    /// Whether there are no views.
    pub fn is_empty(&self) -> bool {
        self.cameras.is_empty()
    }

    /// The views' alpha `[V, 1, S, S]` when every image has one.
    pub fn alpha(&self) -> Option<&Tensor> {
        self.has_alpha.then_some(&self.alpha)
    }

    /// The cameras of the views.
    pub fn cameras(&self) -> &[Camera] {
        &self.cameras
    }

    /// The loss of `batch` random views (drawn from `rng`) rendered with `samples` per ray
    /// against `background` (`[3]`): `mse(colour) + mask_weight · mse(opacity, alpha)`.
    pub fn loss(
        &self,
        grid: &Grid,
        background: &Tensor,
        samples: i64,
        rng: &mut Rng,
    ) -> ObjectiveOutput {
        let idx = rng.subset(self.cameras.len(), self.batch);
        let cams: Vec<Camera> = idx.iter().map(|&i| self.cameras[i]).collect();
        let index = Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>())
            .to_device(self.rgb.device());
        let target = self.rgb.index_select(0, &index);
        let out = render(grid, &cams, self.size, samples, background, Some(rng));
        let mse = (&out.color - target).square().mean(Kind::Float);
        let mse_v = mse.double_value(&[]);
        let mut terms = vec![("mse".to_string(), mse_v)];
        let loss = if self.has_alpha && self.mask_weight > 0.0 {
            let a = self.alpha.index_select(0, &index);
            let m = (&out.opacity - a).square().mean(Kind::Float);
            terms.push(("mask".into(), m.double_value(&[])));
            mse + m * self.mask_weight
        } else {
            mse
        };
        let value = loss.double_value(&[]);
        ObjectiveOutput {
            loss,
            value,
            terms,
            render: out,
        }
    }
}

/// Adam over `[density, colour, background]` with one learning rate each.
#[derive(Debug)]
pub struct FieldAdam {
    /// The optimiser state.
    pub adam: MaskedAdam,
    /// Learning rates of density, colour, background.
    pub lrs: [f64; 3],
}

/// Adam's hyper-parameters for grids (β = (0.9, 0.99), ε = 1e-15 as in DVGO / instant-NGP).
pub fn grid_adam_config() -> AdamConfig {
    AdamConfig {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-15,
        weight_decay: 0.0,
    }
}

impl FieldAdam {
    /// Fresh moments for the grid's tensors and `background`.
    pub fn new(grid: &Grid, background: &Tensor, lrs: [f64; 3]) -> Self {
        let [d, c] = grid.params();
        Self {
            adam: MaskedAdam::new(grid_adam_config(), &[d, c, background], Vec::new()),
            lrs,
        }
    }

    /// Clears the gradients of the optimised tensors.
    pub fn zero_grad(grid: &Grid, background: &Tensor) {
        let [d, c] = grid.params();
        for p in [d, c, background] {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Whether every gradient is finite.
    pub fn grads_finite(grid: &Grid, background: &Tensor) -> bool {
        let [d, c] = grid.params();
        MaskedAdam::grads_finite(&[d, c, background])
    }

    /// One update from the current gradients.
    pub fn step(&mut self, grid: &Grid, background: &Tensor) {
        let [d, c] = grid.params();
        self.adam.step(&[d, c, background], &self.lrs);
    }
}
