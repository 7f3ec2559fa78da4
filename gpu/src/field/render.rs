//! Differentiable volume rendering of a [`Grid`] along camera rays through the unit box
//! `[−½, ½]³`: `samples` points per ray between the box's entry and exit (stratified jitter while
//! training), alpha compositing `wᵢ = Tᵢ(1 − e^{−σᵢδᵢ})`, `Tᵢ = e^{−Σ_{j<i} σⱼδⱼ}`, and a background
//! (solid or learned) behind what is left of the transmittance.

use tch::{Kind, Tensor};

use super::camera::{Camera, Rays};
use super::grid::Grid;
use crate::rng::Rng;

/// One batch of renders.
#[derive(Debug)]
pub struct RenderOutput {
    /// Composited colour `[B, C, H, W]` (the grid's channels: RGB in `[0, 1]` or latents).
    pub color: Tensor,
    /// Accumulated opacity `Σ wᵢ` `[B, 1, H, W]`.
    pub opacity: Tensor,
    /// Expected termination distance `Σ wᵢ tᵢ + (1 − Σ wᵢ)·t_exit` `[B, 1, H, W]` (the box's
    /// exit distance where nothing was hit).
    pub depth: Tensor,
    /// Compositing weights `[B·H·W, samples]` (for the emptiness regulariser).
    pub weights: Tensor,
    /// Median termination distance `[B·H·W]`: the first sample where the accumulated weight
    /// reaches ½ (the exit distance where it never does). No gradient.
    pub median_t: Tensor,
    /// Ray origins and unit directions `[B·H·W, 3]` each.
    pub rays: (Tensor, Tensor),
}

/// Entry and exit distances `[R]` of rays with the unit box (`far = near` when a ray misses).
pub fn box_intersect(rays: &Rays) -> (Tensor, Tensor) {
    let d = &rays.dirs;
    let safe = d.abs().clamp_min(1e-9) * d.sign().where_scalarother(&d.ne(0.0), 1.0);
    let inv = safe.reciprocal();
    let t0 = (&rays.origins * -1.0 - 0.5) * &inv;
    let t1 = (&rays.origins * -1.0 + 0.5) * &inv;
    let tmin = t0.minimum(&t1).amax(&[-1][..], false);
    let tmax = t0.maximum(&t1).amin(&[-1][..], false);
    let near = tmin.clamp_min(0.0);
    let far = tmax.maximum(&near);
    (near, far)
}

/// Renders `cameras` at `size × size` with `samples` points per ray against `background` (a
/// `[C]` tensor, may require grad). `jitter`: stratified sample offsets drawn from it (training);
/// `None`: the middle of each stratum (deterministic previews).
pub fn render(
    grid: &Grid,
    cameras: &[Camera],
    size: i64,
    samples: i64,
    background: &Tensor,
    jitter: Option<&mut Rng>,
) -> RenderOutput {
    let dev = grid.device();
    let b = cameras.len() as i64;
    let s = samples.max(1);
    let (origins, dirs): (Vec<Tensor>, Vec<Tensor>) = cameras
        .iter()
        .map(|c| {
            let r = c.rays(size, size, dev);
            (r.origins, r.dirs)
        })
        .unzip();
    let rays = Rays {
        origins: Tensor::cat(&origins, 0),
        dirs: Tensor::cat(&dirs, 0),
        height: size,
        width: size,
    };
    let r = b * size * size;
    let (near, far) = box_intersect(&rays);
    let u = match jitter {
        Some(rng) => {
            let v: Vec<f32> = (0..r * s).map(|_| rng.uniform() as f32).collect();
            Tensor::from_slice(&v).view([r, s]).to_device(dev)
        }
        None => Tensor::full([r, s], 0.5, (Kind::Float, dev)),
    };
    let steps = Tensor::arange(s, (Kind::Float, dev)).view([1, s]);
    let span = (&far - &near).view([r, 1]);
    let t = near.view([r, 1]) + (steps + u) / s as f64 * &span;
    let delta = (&span / s as f64).expand([r, s], false);
    let points = rays.origins.view([r, 1, 3]) + t.unsqueeze(-1) * rays.dirs.view([r, 1, 3]);
    let (sigma, col) = grid.sample(&points.view([r * s, 3]));
    let c = grid.color_space.channels();
    let tau = sigma.view([r, s]) * delta;
    let alpha = -(-&tau).exp() + 1.0;
    let trans = (-(tau.cumsum(1, Kind::Float) - &tau)).exp();
    let weights = trans * alpha;
    let opacity = weights.sum_dim_intlist(1, true, Kind::Float);
    let col = col.view([r, s, c]);
    let rgb = (weights.unsqueeze(-1) * col).sum_dim_intlist(1, false, Kind::Float)
        + (-&opacity + 1.0) * background.view([1, c]);
    let depth_sum = (&weights * &t).sum_dim_intlist(1, true, Kind::Float);
    let depth = &depth_sum + (-&opacity + 1.0) * far.view([r, 1]);
    let to_image = |x: Tensor, ch: i64| {
        x.view([b, size, size, ch])
            .permute([0, 3, 1, 2])
            .contiguous()
    };
    let median_t = {
        let _g = tch::no_grad_guard();
        let cum = weights.detach().cumsum(1, Kind::Float);
        let idx = cum.lt(0.5).sum_dim_intlist(1, true, Kind::Int64);
        let hit = idx.lt(s);
        let tt = t.detach().gather(1, &idx.clamp_max(s - 1), false);
        tt.where_self(&hit, &far.view([r, 1])).view([r])
    };
    RenderOutput {
        color: to_image(rgb, c),
        opacity: to_image(opacity, 1),
        depth: to_image(depth, 1),
        weights,
        median_t,
        rays: (rays.origins, rays.dirs),
    }
}

/// SJC's emptiness regulariser `mean(ln(1 + scale · wᵢ))` over all samples: pushes the weight of
/// every sample toward 0 unless the guidance needs it.
pub fn emptiness_loss(weights: &Tensor, scale: f64) -> Tensor {
    (weights * scale + 1.0).log().mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::grid::{Blob, ColorSpace};
    use tch::Device;

    #[test]
    fn an_empty_grid_shows_the_background_and_a_blob_is_opaque_in_the_middle() {
        let empty = Blob {
            strength: -20.0,
            radius: 10.0,
        };
        let g = Grid::new(8, ColorSpace::Rgb, empty, 32.0, Device::Cpu);
        let bg = Tensor::from_slice(&[0.2f32, 0.4, 0.6]);
        let out = render(&g, &[Camera::default()], 8, 16, &bg, None);
        let mean = out.color.mean_dim(&[0i64, 2, 3][..], false, Kind::Float);
        let m: Vec<f32> = Vec::try_from(mean).unwrap();
        assert!(
            (m[0] - 0.2).abs() < 1e-3 && (m[2] - 0.6).abs() < 1e-3,
            "{m:?}"
        );
        let g = Grid::new(16, ColorSpace::Rgb, Blob::default(), 32.0, Device::Cpu);
        let out = render(&g, &[Camera::default()], 9, 32, &bg, None);
        let centre = out.opacity.double_value(&[0, 0, 4, 4]);
        let corner = out.opacity.double_value(&[0, 0, 0, 0]);
        assert!(centre > 0.99 && corner < 0.05, "{centre} {corner}");
        let depth = out.depth.double_value(&[0, 0, 4, 4]);
        // The blob's surface (σ ≈ scale·softplus(0)) lies a little inside r = 0.25.
        assert!(depth > 1.8 - 0.3 && depth < 1.8 - 0.1, "{depth}");
    }
}
