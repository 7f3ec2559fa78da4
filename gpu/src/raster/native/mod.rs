//! Fused native CPU rasteriser: the same image and gradients as the tensor path
//! ([`rasterize`](super::rasterize)), computed per 16×16 tile in plain Rust on threads.
//!
//! Forward: each particle is sanitised and flattened with the tensor path's float32 maths
//! (`prep`), the layers (fill and stroke of every shape) and the pieces whose reach boxes
//! touch a tile are binned to it, and each tile computes winding, nearest piece, coverage and
//! exact "over" compositing (`tiles`). Backward: the kept fragments are replayed per tile
//! and reduced to control points through the flattening weights (`backward`).
//!
//! tch has no custom autograd function from Rust, so gradients join the graph in two
//! phases: the image is a leaf tensor; after `loss.backward()` has filled its `.grad()`, the
//! native backward computes dL/dθ and `Σ (θ · g.detach())` is back-propagated, which adds
//! `g` to every parameter's gradient (through whatever graph made θ) while other loss terms
//! on θ keep working. [`NativeRender::backward`] does both steps.

mod backward;
mod pool;
mod prep;
mod tiles;

use std::sync::Arc;

use tch::{Device, Kind, Tensor};

use super::scene::{Scene, SceneParams};
use super::{RasterError, RasterOptions, Rendered, rasterize};
use pool::par_map;
use prep::{Prepared, Raw};
use tiles::TileFrags;

/// Which rasteriser renders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// The native kernel on the CPU, the tensor path on CUDA.
    #[default]
    Auto,
    /// The fused native CPU kernel (parameters on another device are copied over).
    Native,
    /// The libtorch tensor path (autograd end to end; the reference).
    Tensor,
}

impl Engine {
    /// `Native` or `Tensor`: what `self` means for parameters on `device`. `Auto` follows
    /// the environment variable `VECDREAM_RASTER_ENGINE` (`native` or `tensor`) when set,
    /// e.g. to compare the two paths in a whole run.
    pub fn resolve(self, device: Device) -> Self {
        static FROM_ENV: std::sync::OnceLock<Option<Engine>> = std::sync::OnceLock::new();
        let env = *FROM_ENV.get_or_init(|| {
            std::env::var("VECDREAM_RASTER_ENGINE")
                .ok()
                .and_then(|v| Self::parse(v.trim()))
                .filter(|e| *e != Self::Auto)
        });
        match (self, env) {
            (Self::Auto, Some(e)) => e,
            (Self::Auto, None) if device.is_cuda() => Self::Tensor,
            (Self::Auto, None) => Self::Native,
            (e, _) => e,
        }
    }

    /// Parses `native`, `tensor` or `auto`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(Self::Auto),
            "native" => Some(Self::Native),
            "tensor" => Some(Self::Tensor),
            _ => None,
        }
    }
}

/// A render and what its backward needs.
pub struct NativeRender {
    /// The image. With the native engine `rgb` and `alpha` are leaves (requiring gradient
    /// when a parameter does); with the tensor engine they carry the autograd graph.
    pub rendered: Rendered,
    state: Option<State>,
}

impl std::fmt::Debug for NativeRender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeRender")
            .field("rendered", &self.rendered)
            .field("native", &self.state.is_some())
            .finish()
    }
}

/// Kept by a native render whose parameters need gradient.
struct State {
    scene: Scene,
    params: SceneParams,
    particles: Vec<Particle>,
    width: usize,
    height: usize,
}

struct Particle {
    raw: Raw,
    prep: Arc<Prepared>,
    tiles: Arc<Vec<TileFrags>>,
    trans: Vec<f32>,
}

/// dL/d(each tensor of [`SceneParams`]), same shapes, float32 on the CPU.
#[derive(Debug)]
pub struct ParamGrads {
    /// `[B, P, 2]`.
    pub points: Tensor,
    /// `[B, S, 4]`.
    pub fill: Tensor,
    /// `[B, S, 4]`.
    pub stroke: Tensor,
    /// `[B, S]`.
    pub stroke_width: Tensor,
    /// `[B, 4]`.
    pub background: Tensor,
    /// `[B, S, 8]` when the parameters have gradient fills.
    pub fill_gradient: Option<Tensor>,
}

/// Renders with `engine` ([`Engine::Auto`]: native on the CPU, tensor path on CUDA).
pub fn rasterize_with(
    scene: &Scene,
    params: &SceneParams,
    width: usize,
    height: usize,
    opts: &RasterOptions,
    engine: Engine,
) -> Result<NativeRender, RasterError> {
    match engine.resolve(params.device()) {
        Engine::Tensor => Ok(NativeRender {
            rendered: rasterize(scene, params, width, height, opts)?,
            state: None,
        }),
        _ => rasterize_native(scene, params, width, height, opts),
    }
}

/// Whether autograd records operations here (tch has no query for it).
fn grad_enabled() -> bool {
    (Tensor::zeros([1], (Kind::Float, Device::Cpu)).set_requires_grad(true) * 2.0).requires_grad()
}

fn host(t: &Tensor) -> Result<Vec<f32>, RasterError> {
    Ok(Vec::<f32>::try_from(
        t.detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]),
    )?)
}

/// Phase timings on stderr when `VECDREAM_RASTER_PROFILE` is set (as the tensor path).
struct Phases(
    Option<(std::time::Instant, Vec<(&'static str, f64)>)>,
    &'static str,
);

impl Phases {
    fn new(what: &'static str) -> Self {
        Self(
            std::env::var_os("VECDREAM_RASTER_PROFILE")
                .map(|_| (std::time::Instant::now(), Vec::new())),
            what,
        )
    }

    fn mark(&mut self, name: &'static str) {
        if let Some((t, v)) = &mut self.0 {
            v.push((name, t.elapsed().as_secs_f64() * 1e3));
            *t = std::time::Instant::now();
        }
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        if let Some((_, v)) = &self.0 {
            let v: Vec<String> = v.iter().map(|(n, t)| format!("{n} {t:.2}")).collect();
            eprintln!("native {} ms: {}", self.1, v.join(", "));
        }
    }
}

/// Threads for the tiles: libtorch's intra-op thread count (`--threads` of the CLI).
fn threads() -> usize {
    tch::get_num_threads().max(1) as usize
}

/// Renders B particles with the native kernel; same contract as [`rasterize`].
pub fn rasterize_native(
    scene: &Scene,
    params: &SceneParams,
    width: usize,
    height: usize,
    opts: &RasterOptions,
) -> Result<NativeRender, RasterError> {
    let mut phases = Phases::new("forward");
    let b = params.check(scene)?;
    if width == 0 || height == 0 || width > 32768 || height > 32768 || b == 0 {
        return Err(RasterError::Size {
            width,
            height,
            batch: b as usize,
        });
    }
    let b = b as usize;
    let needs_grad = grad_enabled()
        && (params.tensors().iter().any(|t| t.requires_grad())
            || params
                .fill_gradient
                .as_ref()
                .is_some_and(Tensor::requires_grad));
    let (p, s) = (scene.num_points(), scene.num_shapes());
    let points = host(&params.points)?;
    let fill = host(&params.fill)?;
    let stroke = host(&params.stroke)?;
    let width_v = host(&params.stroke_width)?;
    let bg = host(&params.background)?;
    let gradient = params.fill_gradient.as_ref().map(host).transpose()?;
    let hw = width * height;
    let mut rgb = vec![0f32; b * 3 * hw];
    let mut alpha = vec![0f32; b * hw];
    let mut particles = Vec::new();
    let n_threads = threads();
    for i in 0..b {
        let raw = Raw {
            points: points[i * 2 * p..(i + 1) * 2 * p].to_vec(),
            fill: fill[i * 4 * s..(i + 1) * 4 * s].to_vec(),
            stroke: stroke[i * 4 * s..(i + 1) * 4 * s].to_vec(),
            width: width_v[i * s..(i + 1) * s].to_vec(),
            background: std::array::from_fn(|k| bg[4 * i + k]),
            gradient: gradient
                .as_ref()
                .map(|g| g[i * 8 * s..(i + 1) * 8 * s].to_vec()),
        };
        phases.mark("read");
        let prep = Arc::new(Prepared::new(scene, &raw, width, height, opts));
        phases.mark("prepare");
        let n_tiles = prep.tiles_x * prep.tiles_y;
        let tile_prep = Arc::clone(&prep);
        let done = par_map(n_tiles, n_threads, move |t| {
            let tf = tiles::tile_fragments(&tile_prep, t);
            let px = tiles::composite(&tile_prep, t, &tf);
            (tf, px)
        });
        phases.mark("tiles");
        let mut trans = vec![1f32; if needs_grad { hw } else { 0 }];
        let mut kept = Vec::with_capacity(if needs_grad { n_tiles } else { 0 });
        let (img, a_img) = (&mut rgb[i * 3 * hw..], &mut alpha[i * hw..]);
        for (t, (tf, px)) in done.into_iter().enumerate() {
            let [x0, x1, y0, y1] = tiles::tile_rect(&prep, t);
            let mut it = px.into_iter();
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let Some((v, tr)) = it.next() else { break };
                    let pi = y as usize * width + x as usize;
                    for c in 0..3 {
                        img[c * hw + pi] = v[c];
                    }
                    a_img[pi] = v[3];
                    if needs_grad {
                        trans[pi] = tr;
                    }
                }
            }
            if needs_grad {
                kept.push(tf);
            }
        }
        if needs_grad {
            particles.push(Particle {
                raw,
                prep,
                tiles: Arc::new(kept),
                trans,
            });
        }
    }
    phases.mark("assemble");
    let dev = params.device();
    let (bi, hi, wi) = (b as i64, height as i64, width as i64);
    let mut rgb_t = Tensor::from_slice(&rgb)
        .view([bi, 3, hi, wi])
        .to_device(dev);
    let mut alpha_t = Tensor::from_slice(&alpha)
        .view([bi, 1, hi, wi])
        .to_device(dev);
    let state = if needs_grad {
        rgb_t = rgb_t.set_requires_grad(true);
        alpha_t = alpha_t.set_requires_grad(true);
        Some(State {
            scene: scene.clone(),
            params: params.map(Tensor::shallow_clone),
            particles,
            width,
            height,
        })
    } else {
        None
    };
    phases.mark("tensors");
    Ok(NativeRender {
        rendered: Rendered {
            rgb: rgb_t,
            alpha: alpha_t,
        },
        state,
    })
}

impl NativeRender {
    /// Whether the native kernel made this render (and gradients need [`Self::finish_backward`]).
    pub fn is_native(&self) -> bool {
        self.state.is_some()
    }

    /// `loss.backward()`, then the native phase ([`Self::finish_backward`]).
    pub fn backward(&self, loss: &Tensor) -> Result<(), RasterError> {
        let mut phases = Phases::new("two-phase backward");
        loss.backward();
        phases.mark("loss.backward");
        self.finish_backward()?;
        phases.mark("native + surrogate");
        Ok(())
    }

    /// After the caller's `loss.backward()`: dL/dθ from the image's `.grad()` (natively),
    /// back-propagated into the parameters by the surrogate `Σ θ · g`. Nothing to do for a
    /// tensor-path render or one without gradient.
    pub fn finish_backward(&self) -> Result<(), RasterError> {
        let Some(st) = &self.state else {
            return Ok(());
        };
        let mut phases = Phases::new("finish_backward");
        let grad_or_zero = |t: &Tensor| {
            let g = t.grad();
            if g.defined() { g } else { t.zeros_like() }
        };
        let g = self.param_grads(
            &grad_or_zero(&self.rendered.rgb),
            &grad_or_zero(&self.rendered.alpha),
        )?;
        phases.mark("param_grads");
        let p = &st.params;
        let mut pairs = vec![
            (&p.points, g.points),
            (&p.fill, g.fill),
            (&p.stroke, g.stroke),
            (&p.stroke_width, g.stroke_width),
            (&p.background, g.background),
        ];
        if let (Some(t), Some(gg)) = (&p.fill_gradient, g.fill_gradient) {
            pairs.push((t, gg));
        }
        let mut surrogate: Option<Tensor> = None;
        for (theta, grad) in pairs {
            if !theta.requires_grad() {
                continue;
            }
            let grad = grad.to_device(theta.device()).to_kind(theta.kind());
            let term = (theta * grad).sum(theta.kind());
            surrogate = Some(match surrogate {
                Some(s) => s + term,
                None => term,
            });
        }
        if let Some(s) = surrogate {
            s.backward();
        }
        phases.mark("surrogate");
        Ok(())
    }

    /// dL/dθ of every parameter tensor given dL/d`rgb` `[B, 3, H, W]` and dL/d`alpha`
    /// `[B, 1, H, W]` (locked and hidden shapes get zeros). Errors for tensor-path renders
    /// and renders made without gradient.
    pub fn param_grads(&self, g_rgb: &Tensor, g_alpha: &Tensor) -> Result<ParamGrads, RasterError> {
        let Some(st) = &self.state else {
            return Err(RasterError::Torch(
                "param_grads: this render kept no native state (tensor engine or no gradient)"
                    .into(),
            ));
        };
        let b = st.particles.len() as i64;
        let (h, w) = (st.height as i64, st.width as i64);
        for (field, t, want) in [
            ("rgb.grad", g_rgb, vec![b, 3, h, w]),
            ("alpha.grad", g_alpha, vec![b, 1, h, w]),
        ] {
            if t.size() != want {
                return Err(RasterError::Shape {
                    field,
                    expected: want,
                    found: t.size(),
                });
            }
        }
        let mut phases = Phases::new("backward");
        let gr = Arc::new(host(g_rgb)?);
        let ga = Arc::new(host(g_alpha)?);
        phases.mark("read");
        let hw = st.width * st.height;
        let n_threads = threads();
        let mut all: Vec<backward::Grads> = Vec::new();
        for (i, part) in st.particles.iter().enumerate() {
            let base = &gr[i * 3 * hw..(i + 1) * 3 * hw];
            let planes = [&base[..hw], &base[hw..2 * hw], &base[2 * hw..]];
            let a = &ga[i * hw..(i + 1) * hw];
            let (prep, kept) = (Arc::clone(&part.prep), Arc::clone(&part.tiles));
            let (tile_gr, tile_ga) = (Arc::clone(&gr), Arc::clone(&ga));
            let tiles = par_map(part.tiles.len(), n_threads, move |t| {
                let base = &tile_gr[i * 3 * hw..(i + 1) * 3 * hw];
                let planes = [&base[..hw], &base[hw..2 * hw], &base[2 * hw..]];
                backward::tile_backward(&prep, t, &kept[t], planes, &tile_ga[i * hw..(i + 1) * hw])
            });
            phases.mark("tiles");
            all.push(backward::reduce(
                &st.scene,
                &part.prep,
                &part.raw,
                &tiles,
                &part.trans,
                planes,
                a,
            ));
            phases.mark("reduce");
        }
        let cat = |f: &dyn Fn(&backward::Grads) -> &[f32], shape: &[i64]| {
            let v: Vec<f32> = all.iter().flat_map(|g| f(g).iter().copied()).collect();
            let mut dims = vec![b];
            dims.extend_from_slice(shape);
            Tensor::from_slice(&v).view(dims.as_slice())
        };
        let (p, s) = (st.scene.num_points() as i64, st.scene.num_shapes() as i64);
        Ok(ParamGrads {
            points: cat(&|g| &g.points, &[p, 2]),
            fill: cat(&|g| &g.fill, &[s, 4]),
            stroke: cat(&|g| &g.stroke, &[s, 4]),
            stroke_width: cat(&|g| &g.width, &[s]),
            background: cat(&|g| &g.background, &[4]),
            fill_gradient: st.particles[0]
                .raw
                .gradient
                .as_ref()
                .map(|_| cat(&|g| g.gradient.as_deref().unwrap_or(&[]), &[s, 8])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_engine_names() {
        assert_eq!(Engine::parse("native"), Some(Engine::Native));
        assert_eq!(Engine::parse("tensor"), Some(Engine::Tensor));
        assert_eq!(Engine::parse("auto"), Some(Engine::Auto));
        assert_eq!(Engine::parse("gpu"), None);
        assert_eq!(Engine::Native.resolve(Device::Cuda(0)), Engine::Native);
    }
}
