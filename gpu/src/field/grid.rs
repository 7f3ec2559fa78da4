//! The dense voxel grid: one density channel plus `C` colour channels (3 RGB or 4 SD-latent, as
//! in Latent-NeRF / SJC), sampled trilinearly with `grid_sample`, a density bias that makes the
//! start a blob (Magic3D's `λ(1 − ‖x‖/r)`), coarse-to-fine upsampling, and the total-variation
//! regulariser.
//!
//! Layout: tensors `[1, channels, N, N, N]` indexed `[z][y][x]`; voxel `(i, j, k)` (z, y, x)
//! sits at world `(−½ + k/(N−1), −½ + j/(N−1), −½ + i/(N−1))`, so the grid spans the unit box
//! `[−½, ½]³` corner to corner (`align_corners = true`).
//!
//! Density: `σ(p) = density_scale · softplus(raw(p) + bias(p))` per unit length, the activation
//! after interpolation (DVGO's post-activation: sharp surfaces on coarse grids). The mesh is
//! extracted from `softplus(raw + bias)`, the "density" of [`Grid::density_values`].

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Latent → RGB for SD 1.x / 2.x latents (anchors), applied as `rgb = (latent · M + 1) / 2`.
pub const LATENT_TO_RGB: [[f32; 3]; 4] = [
    [0.298, 0.207, 0.208],
    [0.187, 0.286, 0.173],
    [-0.158, 0.189, 0.264],
    [-0.184, -0.271, -0.473],
];

/// What the colour channels hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorSpace {
    /// 3 channels, `sigmoid(raw)` is straight RGB in `[0, 1]`.
    Rgb,
    /// 4 Stable Diffusion latent channels, used as they are (no activation).
    Latent,
}

impl ColorSpace {
    /// Number of colour channels.
    pub fn channels(self) -> i64 {
        match self {
            Self::Rgb => 3,
            Self::Latent => 4,
        }
    }

    /// Raw sampled colour channels `[…, C]` → rendered values (RGB: sigmoid; latent: as is).
    pub fn activate(self, raw: &Tensor) -> Tensor {
        match self {
            Self::Rgb => raw.sigmoid(),
            Self::Latent => raw.shallow_clone(),
        }
    }

    /// Rendered values with channels in dimension `dim` → straight RGB in `[0, 1]` (latents
    /// through [`LATENT_TO_RGB`]).
    pub fn to_rgb(self, values: &Tensor, dim: i64) -> Tensor {
        match self {
            Self::Rgb => values.clamp(0.0, 1.0),
            Self::Latent => {
                let m = Tensor::from_slice(LATENT_TO_RGB.as_flattened())
                    .view([4, 3])
                    .to_device(values.device());
                let moved = values.movedim(&[dim][..], &[-1][..]);
                let rgb = (moved.matmul(&m) + 1.0) / 2.0;
                rgb.movedim(&[-1][..], &[dim][..]).clamp(0.0, 1.0)
            }
        }
    }
}

/// The start's density bias `strength · (1 − ‖x‖ / radius)` (added to the raw density).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blob {
    /// λ: the bias at the centre.
    pub strength: f64,
    /// r: where the bias crosses 0.
    pub radius: f64,
}

impl Default for Blob {
    fn default() -> Self {
        Self {
            strength: 5.0,
            radius: 0.25,
        }
    }
}

/// A density + colour voxel grid with autograd leaves.
#[derive(Debug)]
pub struct Grid {
    /// Raw density `[1, 1, N, N, N]` (trainable).
    pub density: Tensor,
    /// Raw colour `[1, C, N, N, N]` (trainable).
    pub color: Tensor,
    /// The fixed density bias `[1, 1, N, N, N]`.
    bias: Tensor,
    /// Voxels per side N.
    pub resolution: i64,
    /// What the colour channels hold.
    pub color_space: ColorSpace,
    /// The start's bias.
    pub blob: Blob,
    /// σ per unit length at `softplus(raw + bias) = 1`.
    pub density_scale: f64,
}

/// World coordinates of the voxel centres `[N, N, N, 3]` (x, y, z), indexed `[z][y][x]`.
pub fn voxel_positions(n: i64, device: Device) -> Tensor {
    let lin = Tensor::linspace(-0.5, 0.5, n, (Kind::Float, device));
    let z = lin.view([n, 1, 1]).expand([n, n, n], false);
    let y = lin.view([1, n, 1]).expand([n, n, n], false);
    let x = lin.view([1, 1, n]).expand([n, n, n], false);
    Tensor::stack(&[x, y, z], -1)
}

fn bias_tensor(n: i64, blob: Blob, device: Device) -> Tensor {
    let p = voxel_positions(n, device);
    let r = p.square().sum_dim_intlist(-1, false, Kind::Float).sqrt();
    ((r / -blob.radius.max(1e-6) + 1.0) * blob.strength).view([1, 1, n, n, n])
}

impl Grid {
    /// A fresh grid: raw density 0 (so the density is the blob), colour 0 (grey in RGB).
    pub fn new(
        resolution: i64,
        color_space: ColorSpace,
        blob: Blob,
        density_scale: f64,
        device: Device,
    ) -> Self {
        let n = resolution.max(2);
        let opts = (Kind::Float, device);
        Self {
            density: Tensor::zeros([1, 1, n, n, n], opts).set_requires_grad(true),
            color: Tensor::zeros([1, color_space.channels(), n, n, n], opts)
                .set_requires_grad(true),
            bias: bias_tensor(n, blob, device),
            resolution: n,
            color_space,
            blob,
            density_scale,
        }
    }

    /// A grid with the given raw tensors (checkpoints, tests); shapes must be
    /// `[1, 1, N, N, N]` and `[1, C, N, N, N]`.
    pub fn from_tensors(
        density: Tensor,
        color: Tensor,
        color_space: ColorSpace,
        blob: Blob,
        density_scale: f64,
    ) -> Result<Self, String> {
        let d = density.size();
        let c = color.size();
        let n = d.get(2).copied().unwrap_or(0);
        if d.len() != 5 || d[0] != 1 || d[1] != 1 || d[3] != n || d[4] != n || n < 2 {
            return Err(format!("density has shape {d:?}, expected [1, 1, N, N, N]"));
        }
        if c != [1, color_space.channels(), n, n, n] {
            return Err(format!(
                "colour has shape {c:?}, expected [1, {}, {n}, {n}, {n}]",
                color_space.channels()
            ));
        }
        let device = density.device();
        Ok(Self {
            density: density
                .detach()
                .to_kind(Kind::Float)
                .set_requires_grad(true),
            color: color
                .detach()
                .to_kind(Kind::Float)
                .to_device(device)
                .set_requires_grad(true),
            bias: bias_tensor(n, blob, device),
            resolution: n,
            color_space,
            blob,
            density_scale,
        })
    }

    /// The device of the grid.
    pub fn device(&self) -> Device {
        self.density.device()
    }

    /// The trainable tensors: `[density, colour]`.
    pub fn params(&self) -> [&Tensor; 2] {
        [&self.density, &self.color]
    }

    /// Samples at world points `[P, 3]`: `(σ [P], colour [P, C])`, σ per unit length, colour
    /// activated (RGB in `[0, 1]`, latents raw). Differentiable in the grid.
    pub fn sample(&self, points: &Tensor) -> (Tensor, Tensor) {
        let p = points.size()[0];
        let g = (points * 2.0).view([1, p, 1, 1, 3]);
        // grid_sampler: interpolation 0 = bilinear (trilinear in 3D), padding 1 = border.
        let raw = (&self.density + &self.bias).grid_sampler(&g, 0, 1, true);
        let sigma = raw.view([p]).softplus() * self.density_scale;
        let c = self.color_space.channels();
        let col = self
            .color
            .grid_sampler(&g, 0, 1, true)
            .view([c, p])
            .transpose(0, 1)
            .contiguous();
        (sigma, self.color_space.activate(&col))
    }

    /// Activated colour at world points `[P, 3]` as straight RGB `[P, 3]` (no gradient).
    pub fn rgb_at(&self, points: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        let (_, col) = self.sample(points);
        self.color_space.to_rgb(&col, -1)
    }

    /// `softplus(raw + bias)` at the voxels, `[N, N, N]` indexed `[z][y][x]` (no gradient).
    pub fn density_values(&self) -> Tensor {
        let _g = tch::no_grad_guard();
        let n = self.resolution;
        (&self.density + &self.bias).softplus().view([n, n, n])
    }

    /// Resamples the grid to `resolution` voxels per side (trilinear, corner-aligned): the
    /// coarse-to-fine schedule. The bias is recomputed at the new size; new leaves.
    pub fn upsample(&mut self, resolution: i64) {
        let n = resolution.max(2);
        if n == self.resolution {
            return;
        }
        let _g = tch::no_grad_guard();
        let up = |t: &Tensor| t.upsample_trilinear3d([n, n, n], true, None, None, None);
        self.density = up(&self.density.detach()).set_requires_grad(true);
        self.color = up(&self.color.detach()).set_requires_grad(true);
        self.bias = bias_tensor(n, self.blob, self.device());
        self.resolution = n;
    }

    /// Total variation: mean squared difference of neighbouring voxels along x, y and z, of the
    /// raw density plus `color_weight` times that of the colour.
    pub fn tv_loss(&self, color_weight: f64) -> Tensor {
        let tv = |t: &Tensor| {
            let n = self.resolution;
            let mut s = Tensor::zeros([], (Kind::Float, t.device()));
            for dim in [2i64, 3, 4] {
                let a = t.narrow(dim, 1, n - 1);
                let b = t.narrow(dim, 0, n - 1);
                s += (a - b).square().mean(Kind::Float);
            }
            s
        };
        let mut loss = tv(&self.density);
        if color_weight != 0.0 {
            loss += tv(&self.color) * color_weight;
        }
        loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_density_is_high_in_the_middle_and_low_in_the_corners() {
        let g = Grid::new(9, ColorSpace::Rgb, Blob::default(), 32.0, Device::Cpu);
        let pts = Tensor::from_slice(&[0.0f32, 0.0, 0.0, 0.5, 0.5, 0.5]).view([2, 3]);
        let (sigma, col) = g.sample(&pts);
        let s: Vec<f32> = Vec::try_from(sigma).unwrap();
        assert!(s[0] > 100.0 && s[1] < 0.1, "{s:?}");
        assert_eq!(col.size(), [2, 3]);
    }

    #[test]
    fn upsampling_keeps_the_field() {
        let mut g = Grid::new(8, ColorSpace::Latent, Blob::default(), 32.0, Device::Cpu);
        {
            let _g = tch::no_grad_guard();
            let mut c = g.color.detach();
            let _ = c.fill_(0.3);
        }
        g.upsample(15);
        assert_eq!(g.color.size(), [1, 4, 15, 15, 15]);
        let pts = Tensor::from_slice(&[0.1f32, -0.2, 0.05]).view([1, 3]);
        let (_, col) = g.sample(&pts);
        assert!((col.mean(Kind::Float).double_value(&[]) - 0.3).abs() < 1e-5);
    }

    #[test]
    fn latent_to_rgb_uses_the_anchor_matrix() {
        let z = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 0.0]).view([1, 4]);
        let rgb: Vec<f32> = Vec::try_from(ColorSpace::Latent.to_rgb(&z, -1).view([3])).unwrap();
        assert!((rgb[0] - (1.298 / 2.0)).abs() < 1e-6, "{rgb:?}");
    }
}
