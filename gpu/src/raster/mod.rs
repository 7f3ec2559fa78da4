//! Differentiable vector rasteriser on libtorch (the "band" design of `shared/raster-design.md`).
//!
//! A [`Scene`] holds the topology shared by a batch of B scenes ("particles"): which shapes
//! exist, how their control points form subpaths, fill rules, visibility and lock masks.
//! [`SceneParams`] holds the differentiable numbers as tensors with a leading batch axis.
//! [`rasterize`] turns both into an image batch whose gradients reach control points,
//! colours (alpha included) and stroke widths through libtorch autograd, with the same
//! tensor code on CPU and CUDA.
//!
//! How it works, in one paragraph: every cubic is flattened into line pieces by one
//! Bernstein-weight product (piece count from a flatness bound). Inside/outside comes from
//! a per-scanline winding number (±1 crossings summed along x, no gradient) in per-shape
//! windows. Distances are computed only for pixels in each piece's own bounding box grown by
//! the reach of its coverage ramp; the nearest piece per pixel is found with one
//! `scatter_reduce(amin)` over packed integer keys. Only those edge-band pixels recompute a
//! distance with autograd; coverage is the exact 1-D box-filter overlap of the pixel with the
//! signed distance (fills) or the stroke's half width. Fragments are stable-sorted by pixel
//! and composited "over" in paint order with the transmittance from a float64 cumulative sum
//! of `log(1 - a)`. Pixels × all edges is never formed.
//!
//! On the CPU, [`rasterize_with`] (engine [`Engine::Auto`]) runs the fused native kernel of
//! [`native`] instead: the same maths per 16×16 tile in plain Rust, joined to autograd in two
//! phases ([`NativeRender::backward`]). [`rasterize`] is always the tensor path.

pub mod bench;
mod flatten;
pub mod native;
mod render;
mod scene;

pub use bench::{
    BenchCase, BenchResult, BenchScene, DeviceAgreement, agreement_with_cpu, bench_raster,
    bench_raster_with, mse_loss, native_agreement, random_blobs, random_strokes, scene_to_svg,
};
pub use native::{Engine, NativeRender, ParamGrads, rasterize_native, rasterize_with};
pub use render::rasterize;
pub use scene::{Scene, SceneParams, ShapeTopology};

use tch::Tensor;

/// Knobs of the rasteriser. `Default` is what the accuracy tests and the benchmark use.
#[derive(Clone, Debug, PartialEq)]
pub struct RasterOptions {
    /// Largest distance, in pixels, between a cubic and its flattened polyline
    /// (bounded through the cubic's second differences, see `flatten.rs`).
    pub flatten_tolerance_px: f32,
    /// Upper bound on the number of line pieces per cubic segment.
    pub max_pieces_per_cubic: u32,
    /// Straight segments are cut into pieces at most this long (pixels) so that no piece's
    /// bounding box covers much more than its band.
    pub line_piece_px: f32,
}

impl Default for RasterOptions {
    fn default() -> Self {
        Self {
            flatten_tolerance_px: 0.1,
            max_pieces_per_cubic: 64,
            line_piece_px: 16.0,
        }
    }
}

/// The output of [`rasterize`].
#[derive(Debug)]
pub struct Rendered {
    /// `[B, 3, H, W]` float in `[0, 1]`: colour composited over transparent black, i.e.
    /// premultiplied by [`Rendered::alpha`]. With an opaque background this is the plain
    /// image; to put a transparent render on a colour `c`, use `rgb + (1 - alpha) * c`.
    pub rgb: Tensor,
    /// `[B, 1, H, W]` float in `[0, 1]`: coverage of the whole scene (background included).
    pub alpha: Tensor,
}

impl Rendered {
    /// `[B, 3, H, W]`: the render composited over an opaque RGB colour.
    pub fn over(&self, rgb: [f32; 3]) -> Tensor {
        let c = Tensor::from_slice(&rgb)
            .to_device(self.rgb.device())
            .view([1, 3, 1, 1]);
        &self.rgb + (1.0 - &self.alpha) * c
    }

    /// Particle `i` as straight (un-premultiplied) RGBA8 bytes, row-major, with its
    /// `(width, height)`: what a PNG or a texture wants.
    pub fn to_rgba8(&self, i: usize) -> Result<(Vec<u8>, usize, usize), RasterError> {
        let cpu = |t: &Tensor| {
            t.get(i as i64)
                .to_device(tch::Device::Cpu)
                .to_kind(tch::Kind::Float)
        };
        let (a, c) = (cpu(&self.alpha), cpu(&self.rgb));
        let (h, w) = (c.size()[1] as usize, c.size()[2] as usize);
        // Un-premultiply where there is coverage.
        let rgba = Tensor::cat(&[&c / a.clamp_min(1e-6), a], 0)
            .clamp(0.0, 1.0)
            .permute([1, 2, 0])
            .multiply_scalar(255.0)
            .round()
            .to_kind(tch::Kind::Uint8)
            .contiguous();
        Ok((Vec::<u8>::try_from(rgba.view([-1]))?, w, h))
    }
}

/// Why a scene or its parameters cannot be rasterised.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RasterError {
    /// A parameter tensor has the wrong shape for the scene.
    #[error("scene parameter `{field}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Field of [`SceneParams`].
        field: &'static str,
        /// Expected shape.
        expected: Vec<i64>,
        /// Actual shape.
        found: Vec<i64>,
    },
    /// A parameter tensor lives on another device than `points`.
    #[error("scene parameter `{0}` is on another device than `points`")]
    Device(&'static str),
    /// The output size is zero or too large.
    #[error("output size {width}×{height} (batch {batch}) is not supported (1..=32768 per side)")]
    Size {
        /// Requested width.
        width: usize,
        /// Requested height.
        height: usize,
        /// Batch size.
        batch: usize,
    },
    /// The canvas size is not a positive finite number.
    #[error("canvas size {0:?} must be positive and finite")]
    Canvas([f32; 2]),
    /// A subpath refers to points outside the point array.
    #[error("shape {shape}: subpath points {start}..{end} exceed the {len} points of the scene")]
    PointRange {
        /// Slot index.
        shape: usize,
        /// Range start.
        start: usize,
        /// Range end.
        end: usize,
        /// Number of points.
        len: usize,
    },
    /// A per-slot array of the parameter view has the wrong length.
    #[error("parameter view: `{field}` has {found} entries, expected {expected}")]
    ViewLength {
        /// Field of the view.
        field: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A libtorch call failed.
    #[error("libtorch: {0}")]
    Torch(String),
}

impl From<tch::TchError> for RasterError {
    fn from(e: tch::TchError) -> Self {
        Self::Torch(e.to_string())
    }
}
