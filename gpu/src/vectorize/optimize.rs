//! Gradient refinement of a fit: masked Adam on control points and fill colours through the
//! differentiable rasteriser, with a self-intersection ("xing") penalty on closed cubics.

use tch::{Device, Kind, Tensor};
use vecdream_core::LinearFill;
use vecdream_core::params::{ParamView, PrimitiveKind};

use super::VectorizeError;
use super::layers::Layered;
use crate::raster::{
    Engine, RasterOptions, Rendered, Scene, SceneParams, ShapeTopology, rasterize_with,
};

/// The target image as tensors, composited the way the loss compares them.
#[derive(Debug)]
pub struct TargetTensors {
    /// `[1, 3, H, W]`: the target over white.
    pub over_white: Tensor,
    /// `[1, 1, H, W]`: its alpha.
    pub alpha: Tensor,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

impl TargetTensors {
    /// From a target image.
    pub fn new(img: &super::image::TargetImage, device: Device) -> Self {
        let (w, h) = (img.width as i64, img.height as i64);
        let flat: Vec<f32> = img.pixels.iter().flatten().copied().collect();
        let t = Tensor::from_slice(&flat)
            .view([h, w, 4])
            .permute([2, 0, 1])
            .unsqueeze(0)
            .to_device(device);
        let rgb = t.narrow(1, 0, 3);
        let alpha = t.narrow(1, 3, 1);
        let over_white = &rgb * &alpha + (1.0 - &alpha);
        Self {
            over_white,
            alpha,
            width: img.width,
            height: img.height,
        }
    }
}

/// Mean squared error of a render against the target: (over-white colour, alpha).
pub fn render_mse(out: &Rendered, target: &TargetTensors) -> (Tensor, Tensor) {
    let rgb = out.over([1.0, 1.0, 1.0]);
    (
        (rgb - &target.over_white).square().mean(Kind::Float),
        (&out.alpha - &target.alpha).square().mean(Kind::Float),
    )
}

/// PSNR in dB of a mean squared error on `[0, 1]` values.
pub fn psnr_of_mse(mse: f64) -> f64 {
    -10.0 * mse.max(1e-12).log10()
}

/// Differentiable parameters of one fit plus Adam state.
#[derive(Debug)]
pub struct Flat {
    /// Topology.
    pub scene: Scene,
    /// `[1, P, 2]` leaf.
    pub points: Tensor,
    /// `[1, S, 4]` leaf.
    pub fill: Tensor,
    /// `[1, S, 8]` leaf: linear-gradient fills (see [`SceneParams::fill_gradient`]), if any
    /// shape has one.
    pub gradient: Option<Tensor>,
    stroke: Tensor,
    stroke_width: Tensor,
    background: Tensor,
    point_mask: Tensor,
    fill_mask: Tensor,
    gradient_mask: Option<Tensor>,
    /// `[N, 4]` point indices of closed cubic segments and `[N]` orientation signs.
    xing: Option<(Tensor, Tensor)>,
    moments: [(Tensor, Tensor); 3],
    t: i32,
}

/// Per-shape description used to build a [`Flat`].
pub struct FlatInput {
    /// Canvas size in document units.
    pub canvas: [f32; 2],
    /// Topology per shape.
    pub shapes: Vec<ShapeTopology>,
    /// All points.
    pub points: Vec<[f32; 2]>,
    /// Fill per shape (the mean colour of a gradient).
    pub fill: Vec<[f32; 4]>,
    /// Linear-gradient fill per shape.
    pub gradient: Vec<Option<LinearFill>>,
    /// Stroke per shape.
    pub stroke: Vec<[f32; 4]>,
    /// Stroke width per shape.
    pub stroke_width: Vec<f32>,
    /// Background RGBA.
    pub background: [f32; 4],
    /// Per point: optimised.
    pub point_trainable: Vec<bool>,
    /// Per shape: fill optimised.
    pub fill_trainable: Vec<bool>,
    /// Device.
    pub device: Device,
}

impl Flat {
    /// Builds tensors (fresh Adam state) from plain arrays.
    pub fn new(input: FlatInput) -> Result<Self, VectorizeError> {
        let dev = input.device;
        let scene = Scene::new(input.canvas, input.points.len(), input.shapes)?;
        let p = input.points.len() as i64;
        let s = scene.num_shapes() as i64;
        let f = |v: &[[f32; 4]]| v.iter().flatten().copied().collect::<Vec<f32>>();
        let pts: Vec<f32> = input.points.iter().flatten().copied().collect();
        let points = Tensor::from_slice(&pts)
            .view([1, p, 2])
            .to_device(dev)
            .set_requires_grad(true);
        let fill = Tensor::from_slice(&f(&input.fill))
            .view([1, s, 4])
            .to_device(dev)
            .set_requires_grad(true);
        let stroke = Tensor::from_slice(&f(&input.stroke))
            .view([1, s, 4])
            .to_device(dev);
        let stroke_width = Tensor::from_slice(&input.stroke_width)
            .view([1, s])
            .to_device(dev);
        let background = Tensor::from_slice(&input.background)
            .view([1, 4])
            .to_device(dev);
        let mask = |m: &[bool], n: i64| {
            let v: Vec<f32> = m.iter().map(|&b| f32::from(u8::from(b))).collect();
            Tensor::from_slice(&v).view([1, n, 1]).to_device(dev)
        };
        let point_mask = mask(&input.point_trainable, p);
        let fill_mask = mask(&input.fill_trainable, s);
        let (gradient, gradient_mask) = if input.gradient.iter().any(Option::is_some) {
            let g: Vec<f32> = input
                .gradient
                .iter()
                .flat_map(|g| g.map_or([0.0; 8], LinearFill::to_array))
                .collect();
            let trainable: Vec<bool> = input
                .gradient
                .iter()
                .zip(&input.fill_trainable)
                .map(|(g, t)| g.is_some() && *t)
                .collect();
            (
                Some(
                    Tensor::from_slice(&g)
                        .view([1, s, 8])
                        .to_device(dev)
                        .set_requires_grad(true),
                ),
                Some(mask(&trainable, s)),
            )
        } else {
            (None, None)
        };
        // Closed cubic subpaths of trainable shapes get the xing penalty.
        let mut idx: Vec<i64> = Vec::new();
        let mut sign: Vec<f32> = Vec::new();
        for (shape, trainable) in scene.shapes().iter().zip(&input.fill_trainable) {
            if shape.kind != PrimitiveKind::ClosedPath || !trainable {
                continue;
            }
            for (range, closed) in &shape.subpaths {
                let n = range.len();
                if !closed || n < 6 || n % 3 != 0 {
                    continue;
                }
                let pts = &input.points[range.clone()];
                let area: f32 = (0..n)
                    .map(|i| {
                        let (a, b) = (pts[i], pts[(i + 1) % n]);
                        a[0] * b[1] - b[0] * a[1]
                    })
                    .sum();
                for k in 0..n / 3 {
                    let base = range.start as i64;
                    let next = if 3 * k + 3 == n { 0 } else { 3 * k + 3 };
                    idx.extend([
                        base + 3 * k as i64,
                        base + 3 * k as i64 + 1,
                        base + 3 * k as i64 + 2,
                        base + next as i64,
                    ]);
                    sign.push(if area >= 0.0 { 1.0 } else { -1.0 });
                }
            }
        }
        let xing = (!sign.is_empty()).then(|| {
            (
                Tensor::from_slice(&idx).view([-1, 4]).to_device(dev),
                Tensor::from_slice(&sign).to_device(dev),
            )
        });
        let zeros = |t: &Tensor| (t.zeros_like(), t.zeros_like());
        let moments = [
            zeros(&points),
            zeros(&fill),
            gradient.as_ref().map_or_else(|| zeros(&fill), zeros),
        ];
        Ok(Self {
            scene,
            points,
            fill,
            gradient,
            stroke,
            stroke_width,
            background,
            point_mask,
            fill_mask,
            gradient_mask,
            xing,
            moments,
            t: 0,
        })
    }

    /// From a layered fit (background rectangle and pixel cells keep their points).
    pub fn from_layers(l: &Layered, device: Device) -> Result<Self, VectorizeError> {
        let mut shapes = Vec::new();
        let mut points = Vec::new();
        let mut fill = Vec::new();
        let mut gradient = Vec::new();
        let mut point_trainable = Vec::new();
        for s in l.shapes() {
            let start = points.len();
            points.extend_from_slice(&s.points);
            let subpaths = s
                .subpath_ranges()
                .into_iter()
                .map(|r| (start + r.start..start + r.end, true))
                .collect();
            point_trainable.extend(std::iter::repeat_n(!s.fixed_points, s.points.len()));
            shapes.push(ShapeTopology {
                kind: s.kind,
                subpaths,
                fill_rule: vecdream_core::FillRule::NonZero,
                has_fill: true,
                has_stroke: false,
                locked: false,
                hidden: false,
            });
            fill.push(s.color);
            gradient.push(s.gradient);
        }
        let n = shapes.len();
        let mut flat = Self::new(FlatInput {
            canvas: [l.size[0] as f32, l.size[1] as f32],
            shapes,
            points,
            fill,
            gradient,
            stroke: vec![[0.0; 4]; n],
            stroke_width: vec![0.0; n],
            background: [0.0; 4],
            point_trainable,
            fill_trainable: vec![true; n],
            device,
        })?;
        // Vectorised gradients keep one opacity along the axis: colour only.
        if let Some(mask) = &flat.gradient_mask {
            let keep = Tensor::from_slice(&[1.0f32, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
                .to_device(device)
                .view([1, 1, 8]);
            flat.gradient_mask = Some(mask * keep);
        }
        Ok(flat)
    }

    /// From a document's parameter view: only trainable slots move (locks respected).
    pub fn from_view(view: &ParamView, device: Device) -> Result<Self, VectorizeError> {
        let scene = Scene::from_view(view)?;
        Self::new(FlatInput {
            canvas: view.canvas,
            shapes: scene.shapes().to_vec(),
            points: view.points.clone(),
            fill: view.fill.clone(),
            gradient: view.fill_gradient.clone(),
            stroke: view.stroke.clone(),
            stroke_width: view.stroke_width.clone(),
            background: view.background,
            point_trainable: view.point_mask(),
            fill_trainable: (0..view.slots.len())
                .map(|i| view.trainable(i) && view.slots[i].has_fill)
                .collect(),
            device,
        })
    }

    /// The rasteriser's parameters (sharing the leaves).
    pub fn params(&self) -> SceneParams {
        SceneParams {
            points: self.points.shallow_clone(),
            fill: self.fill.shallow_clone(),
            stroke: self.stroke.shallow_clone(),
            stroke_width: self.stroke_width.shallow_clone(),
            background: self.background.shallow_clone(),
            fill_gradient: self.gradient.as_ref().map(Tensor::shallow_clone),
        }
    }

    /// Self-intersection penalty: for each closed cubic segment `p0 c1 c2 p3`, the handles
    /// `c1 − p0` and `p3 − c2` should turn the way the whole path turns; a segment whose
    /// handles cross over (a loop or cusp) is penalised by the sine of the wrong-way turn
    /// (our formulation of LIVE's "xing" loss).
    fn xing_loss(&self) -> Option<Tensor> {
        let (idx, sign) = self.xing.as_ref()?;
        let pts = self.points.squeeze_dim(0);
        let g = |k: i64| pts.index_select(0, &idx.select(1, k));
        let (p0, c1, c2, p3) = (g(0), g(1), g(2), g(3));
        let d1 = &c1 - &p0;
        let d3 = &p3 - &c2;
        let cross = d1.select(1, 0) * d3.select(1, 1) - d1.select(1, 1) * d3.select(1, 0);
        let norm = (d1.square().sum_dim_intlist(1, false, Kind::Float) + 1e-6).sqrt()
            * (d3.square().sum_dim_intlist(1, false, Kind::Float) + 1e-6).sqrt();
        Some((-(cross / norm) * sign).relu().mean(Kind::Float))
    }

    /// One Adam step on `mse_rgb + 0.5·mse_alpha + xing_weight·xing`. Returns the render
    /// (detached) and the colour MSE before the step.
    pub fn step(
        &mut self,
        target: &TargetTensors,
        opts: &RasterOptions,
        lr_points: f64,
        lr_fill: f64,
        xing_weight: f64,
    ) -> Result<(Rendered, f64), VectorizeError> {
        for t in [&self.points, &self.fill].into_iter().chain(&self.gradient) {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        // The native kernel on the CPU (two-phase backward), the tensor path on CUDA.
        let render = rasterize_with(
            &self.scene,
            &self.params(),
            target.width,
            target.height,
            opts,
            Engine::Auto,
        )?;
        let out = &render.rendered;
        let (mse_rgb, mse_a) = render_mse(out, target);
        let mse = mse_rgb.double_value(&[]);
        let data_loss = &mse_rgb + &mse_a * 0.5;
        let xing = if xing_weight > 0.0 {
            self.xing_loss()
        } else {
            None
        };
        let loss = match xing {
            Some(x) => data_loss + x * xing_weight,
            None => data_loss,
        };
        render.backward(&loss)?;
        self.adam(lr_points, lr_fill);
        Ok((
            Rendered {
                rgb: out.rgb.detach(),
                alpha: out.alpha.detach(),
            },
            mse,
        ))
    }

    fn adam(&mut self, lr_points: f64, lr_fill: f64) {
        let _guard = tch::no_grad_guard();
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        self.t += 1;
        let bc1 = 1.0 - b1.powi(self.t);
        let bc2 = 1.0 - b2.powi(self.t);
        let dev = self.points.device();
        let scalar = |lr: f64| Tensor::from(lr as f32).to_device(dev);
        // Gradient fills: the colour change moves like a colour, the axis like points.
        let gradient_lr = Tensor::from_slice(&[
            lr_fill as f32,
            lr_fill as f32,
            lr_fill as f32,
            lr_fill as f32,
            lr_points as f32,
            lr_points as f32,
            lr_points as f32,
            lr_points as f32,
        ])
        .to_device(dev)
        .view([1, 1, 8]);
        let mut params = vec![
            (&self.points, &self.point_mask, scalar(lr_points)),
            (&self.fill, &self.fill_mask, scalar(lr_fill)),
        ];
        if let (Some(g), Some(mask)) = (&self.gradient, &self.gradient_mask) {
            params.push((g, mask, gradient_lr));
        }
        for ((p, mask, lr), (m, v)) in params.into_iter().zip(self.moments.iter_mut()) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let g = g.nan_to_num(0.0, 0.0, 0.0) * mask;
            *m = &*m * b1 + &g * (1.0 - b1);
            *v = &*v * b2 + g.square() * (1.0 - b2);
            // Masked entries get an exact zero update (x − 0 = x bit for bit).
            let update = (&*m / bc1) / ((&*v / bc2).sqrt() + eps) * lr * mask;
            let mut p = p.shallow_clone();
            let _ = p.f_sub_(&update);
        }
        let mut fill = self.fill.shallow_clone();
        let _ = fill.clamp_(0.0, 1.0);
        if let Some(g) = &self.gradient {
            let _ = g.narrow(2, 0, 4).clamp_(-1.0, 1.0);
        }
    }

    /// Renders the current parameters without gradient.
    pub fn render(
        &self,
        target: &TargetTensors,
        opts: &RasterOptions,
    ) -> Result<Rendered, VectorizeError> {
        Ok(tch::no_grad(|| {
            rasterize_with(
                &self.scene,
                &self.params(),
                target.width,
                target.height,
                opts,
                Engine::Auto,
            )
        })?
        .rendered)
    }

    /// Copies the points and fills back into the layered fit (same structure).
    pub fn write_layers(&self, l: &mut Layered) -> Result<(), VectorizeError> {
        let pts = Vec::<f32>::try_from(
            self.points
                .detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .flatten(0, -1),
        )?;
        let fill = Vec::<f32>::try_from(
            self.fill
                .detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .flatten(0, -1),
        )?;
        let gradient = match &self.gradient {
            Some(g) => Some(Vec::<f32>::try_from(
                g.detach()
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
                    .flatten(0, -1),
            )?),
            None => None,
        };
        let mut pi = 0;
        for (si, s) in l.shapes_mut().enumerate() {
            for p in &mut s.points {
                if let (Some(&x), Some(&y)) = (pts.get(2 * pi), pts.get(2 * pi + 1))
                    && x.is_finite()
                    && y.is_finite()
                {
                    *p = [x, y];
                }
                pi += 1;
            }
            if let Some(c) = fill.get(4 * si..4 * si + 4) {
                s.color = [c[0], c[1], c[2], c[3]].map(|v| v.clamp(0.0, 1.0));
            }
            if let (Some(g), Some(all)) = (&mut s.gradient, &gradient)
                && let Some(v) = all.get(8 * si..8 * si + 8)
                && v.iter().all(|x| x.is_finite())
            {
                *g = LinearFill::from_array(std::array::from_fn(|k| v[k]));
            }
        }
        Ok(())
    }

    /// Writes the parameters into a view (every slot; `apply_param_view` keeps trainable ones).
    pub fn write_view(&self, view: &mut ParamView) -> Result<(), VectorizeError> {
        self.params().write_back(0, view)?;
        Ok(())
    }
}
