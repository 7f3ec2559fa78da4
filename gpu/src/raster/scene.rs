//! Scene topology shared by a batch of particles, and the per-particle parameter tensors.

use std::ops::Range;

use tch::{Device, Kind, Tensor};
use vecdream_core::LinearFill;
use vecdream_core::params::{FillRule, ParamView, PrimitiveKind};

use super::RasterError;

/// Topology of one shape slot (mirrors `vecdream_core::ShapeSlot`, minus the id).
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeTopology {
    /// Closed cubic path, open cubic path, or polygon.
    pub kind: PrimitiveKind,
    /// Point ranges and closed flags of the subpaths (winding is over all of them).
    pub subpaths: Vec<(Range<usize>, bool)>,
    /// Fill rule.
    pub fill_rule: FillRule,
    /// Whether the shape is filled.
    pub has_fill: bool,
    /// Whether the shape is stroked (round caps and joins are rendered for every stroke).
    pub has_stroke: bool,
    /// Rendered but receives no gradient.
    pub locked: bool,
    /// Not rendered.
    pub hidden: bool,
}

/// One segment of the scene, in point indices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Segment {
    /// Cubic: the 4 control points; line: `[a, b, a, b]`.
    pub pts: [u32; 4],
    /// Straight segment (polygon edge or the implicit closing of an open fill).
    pub line: bool,
    /// Slot index.
    pub shape: u32,
    /// Part of the fill outline.
    pub fill: bool,
    /// Part of the stroked outline.
    pub stroke: bool,
}

/// Topology shared by all particles of a batch: shapes in paint order (back to front).
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    canvas: [f32; 2],
    num_points: usize,
    shapes: Vec<ShapeTopology>,
    pub(crate) segments: Vec<Segment>,
    pub(crate) evenodd: Vec<bool>,
}

impl Scene {
    /// A scene over a canvas of `canvas` document units holding `num_points` control points.
    /// Subpaths with too few points for one segment are ignored.
    pub fn new(
        canvas: [f32; 2],
        num_points: usize,
        shapes: Vec<ShapeTopology>,
    ) -> Result<Self, RasterError> {
        if !(canvas[0] > 0.0 && canvas[1] > 0.0 && canvas[0].is_finite() && canvas[1].is_finite()) {
            return Err(RasterError::Canvas(canvas));
        }
        let mut segments = Vec::new();
        for (s, shape) in shapes.iter().enumerate() {
            for (range, _) in &shape.subpaths {
                if range.start > range.end || range.end > num_points {
                    return Err(RasterError::PointRange {
                        shape: s,
                        start: range.start,
                        end: range.end,
                        len: num_points,
                    });
                }
            }
            if shape.hidden || !(shape.has_fill || shape.has_stroke) {
                continue;
            }
            for (range, closed) in &shape.subpaths {
                push_subpath(&mut segments, s as u32, shape, range.clone(), *closed);
            }
        }
        let evenodd = shapes
            .iter()
            .map(|s| s.fill_rule == FillRule::EvenOdd)
            .collect();
        Ok(Self {
            canvas,
            num_points,
            shapes,
            segments,
            evenodd,
        })
    }

    /// The topology of a document's parameter view.
    pub fn from_view(view: &ParamView) -> Result<Self, RasterError> {
        check_view(view)?;
        let shapes = view
            .slots
            .iter()
            .map(|slot| ShapeTopology {
                kind: slot.kind,
                subpaths: slot
                    .subpaths
                    .iter()
                    .map(|sp| (sp.points.clone(), sp.closed))
                    .collect(),
                fill_rule: slot.fill_rule,
                has_fill: slot.has_fill,
                has_stroke: slot.has_stroke,
                locked: slot.locked,
                hidden: slot.hidden,
            })
            .collect();
        Self::new(view.canvas, view.points.len(), shapes)
    }

    /// Canvas size (width, height) in document units.
    pub fn canvas(&self) -> [f32; 2] {
        self.canvas
    }

    /// Number of control points (`P` in `SceneParams::points: [B, P, 2]`).
    pub fn num_points(&self) -> usize {
        self.num_points
    }

    /// Number of shape slots (`S`).
    pub fn num_shapes(&self) -> usize {
        self.shapes.len()
    }

    /// The shape slots.
    pub fn shapes(&self) -> &[ShapeTopology] {
        &self.shapes
    }

    /// Per slot: receives gradient (neither locked nor hidden).
    pub fn shape_trainable(&self) -> Vec<bool> {
        self.shapes.iter().map(|s| !s.locked && !s.hidden).collect()
    }

    /// Per point: belongs to a trainable slot.
    pub fn point_trainable(&self) -> Vec<bool> {
        let mut mask = vec![false; self.num_points];
        for s in self.shapes.iter().filter(|s| !s.locked && !s.hidden) {
            for (range, _) in &s.subpaths {
                mask[range.clone()].fill(true);
            }
        }
        mask
    }

    /// Whether any visible slot is locked (then gradients are masked).
    pub(crate) fn has_frozen(&self) -> bool {
        self.shapes.iter().any(|s| s.locked || s.hidden)
    }
}

fn push_subpath(
    out: &mut Vec<Segment>,
    shape_index: u32,
    shape: &ShapeTopology,
    range: Range<usize>,
    closed: bool,
) {
    let base = range.start as u32;
    let n = range.len() as u32;
    let fill = shape.has_fill;
    let stroke = shape.has_stroke;
    let cubic = |a: u32, b: u32, c: u32, d: u32| Segment {
        pts: [base + a, base + b, base + c, base + d],
        line: false,
        shape: shape_index,
        fill,
        stroke,
    };
    let line = |a: u32, b: u32, stroke: bool| Segment {
        pts: [base + a, base + b, base + a, base + b],
        line: true,
        shape: shape_index,
        fill,
        stroke,
    };
    match shape.kind {
        PrimitiveKind::Polygon => {
            if n < 2 {
                return;
            }
            for i in 0..n - 1 {
                out.push(line(i, i + 1, stroke));
            }
            // The closing edge always bounds the fill; it is stroked only when closed.
            if closed || fill {
                out.push(line(n - 1, 0, stroke && closed));
            }
        }
        PrimitiveKind::ClosedPath | PrimitiveKind::OpenPath => {
            if closed {
                let segs = n / 3;
                for i in 0..segs {
                    let next = if i + 1 == segs { 0 } else { 3 * i + 3 };
                    out.push(cubic(3 * i, 3 * i + 1, 3 * i + 2, next));
                }
            } else {
                if n < 4 {
                    return;
                }
                let segs = (n - 1) / 3;
                for i in 0..segs {
                    out.push(cubic(3 * i, 3 * i + 1, 3 * i + 2, 3 * i + 3));
                }
                if fill {
                    // SVG fills an open subpath as if it were closed by a straight line.
                    out.push(line(3 * segs, 0, false));
                }
            }
        }
    }
}

fn check_view(view: &ParamView) -> Result<(), RasterError> {
    let n = view.slots.len();
    for (field, len) in [
        ("fill", view.fill.len()),
        ("stroke", view.stroke.len()),
        ("stroke_width", view.stroke_width.len()),
        ("fill_gradient", view.fill_gradient.len()),
    ] {
        if len != n {
            return Err(RasterError::ViewLength {
                field,
                expected: n,
                found: len,
            });
        }
    }
    Ok(())
}

/// The differentiable numbers of B particles of one [`Scene`], in document units.
///
/// Colours are straight (non-premultiplied) RGBA in `[0, 1]`; values outside are clamped
/// when rendering, NaN is read as 0 and ±∞ as a far-away coordinate.
#[derive(Debug)]
pub struct SceneParams {
    /// `[B, P, 2]` control points (x right, y down).
    pub points: Tensor,
    /// `[B, S, 4]` fill colours.
    pub fill: Tensor,
    /// `[B, S, 4]` stroke colours.
    pub stroke: Tensor,
    /// `[B, S]` stroke widths.
    pub stroke_width: Tensor,
    /// `[B, 4]` background colour (alpha 0: transparent).
    pub background: Tensor,
    /// `[B, S, 8]` linear-gradient fills, or `None` when every fill is solid. Per shape:
    /// the colour change `Δ` (RGBA) and the axis `x0, y0, x1, y1` (document units). The fill
    /// then paints stops `fill − Δ/2` at the axis start and `fill + Δ/2` at its end (each
    /// clamped to `[0, 1]`), padded beyond: an SVG `linearGradient` whose mean colour is
    /// `fill`. `Δ = 0` paints solid `fill`.
    pub fill_gradient: Option<Tensor>,
}

/// Width of one shape's entry in [`SceneParams::fill_gradient`].
pub const GRADIENT_WIDTH: i64 = 8;

impl SceneParams {
    /// `batch` identical copies of the view's numbers on `device` (float32, no gradient).
    pub fn from_view(view: &ParamView, batch: usize, device: Device) -> Result<Self, RasterError> {
        check_view(view)?;
        let b = batch as i64;
        let s = view.slots.len() as i64;
        let p = view.points.len() as i64;
        let flat = |v: &[[f32; 4]]| v.iter().flatten().copied().collect::<Vec<f32>>();
        let points: Vec<f32> = view.points.iter().flatten().copied().collect();
        let rep = |t: Tensor, shape: &[i64]| {
            let mut full = vec![b];
            full.extend_from_slice(shape);
            t.view(shape)
                .unsqueeze(0)
                .expand(full.as_slice(), false)
                .contiguous()
                .to_device(device)
        };
        Ok(Self {
            points: rep(Tensor::from_slice(&points), &[p, 2]),
            fill: rep(Tensor::from_slice(&flat(&view.fill)), &[s, 4]),
            stroke: rep(Tensor::from_slice(&flat(&view.stroke)), &[s, 4]),
            stroke_width: rep(Tensor::from_slice(&view.stroke_width), &[s]),
            background: rep(Tensor::from_slice(&view.background), &[4]),
            fill_gradient: view.fill_gradient.iter().any(Option::is_some).then(|| {
                let g: Vec<f32> = view
                    .fill_gradient
                    .iter()
                    .flat_map(|g| g.map_or([0.0; 8], |g| g.to_array()))
                    .collect();
                rep(Tensor::from_slice(&g), &[s, GRADIENT_WIDTH])
            }),
        })
    }

    /// Number of particles B.
    pub fn batch(&self) -> usize {
        self.points.size().first().copied().unwrap_or(0) as usize
    }

    /// Device of the tensors.
    pub fn device(&self) -> Device {
        self.points.device()
    }

    /// Applies `f` to every tensor (e.g. to move them to another device).
    pub fn map(&self, f: impl Fn(&Tensor) -> Tensor) -> Self {
        Self {
            points: f(&self.points),
            fill: f(&self.fill),
            stroke: f(&self.stroke),
            stroke_width: f(&self.stroke_width),
            background: f(&self.background),
            fill_gradient: self.fill_gradient.as_ref().map(&f),
        }
    }

    /// A copy of the tensors that are leaves requiring gradient (for an optimiser).
    pub fn to_leaves(&self) -> Self {
        self.map(|t| t.detach().copy().set_requires_grad(true))
    }

    /// Particle `i` alone, as a batch of one (shares no autograd history).
    pub fn particle(&self, i: usize) -> Self {
        self.map(|t| t.detach().narrow(0, i as i64, 1).copy())
    }

    /// All tensors, e.g. to zero their gradients.
    pub fn tensors(&self) -> [&Tensor; 5] {
        [
            &self.points,
            &self.fill,
            &self.stroke,
            &self.stroke_width,
            &self.background,
        ]
    }

    /// Writes particle `particle`'s numbers into `view` (colours clamped to `[0, 1]`, widths
    /// to ≥ 0, as rendered). Every slot is written; `Document::apply_param_view` then keeps
    /// only the trainable ones.
    pub fn write_back(&self, particle: usize, view: &mut ParamView) -> Result<(), RasterError> {
        check_view(view)?;
        let s = view.slots.len() as i64;
        let p = view.points.len() as i64;
        let b = self.batch();
        if particle >= b {
            return Err(RasterError::Shape {
                field: "points",
                expected: vec![particle as i64 + 1, p, 2],
                found: self.points.size(),
            });
        }
        let host = |t: &Tensor, shape: &[i64], field| -> Result<Vec<f32>, RasterError> {
            let one = t.detach().narrow(0, particle as i64, 1);
            if one.size()[1..] != *shape {
                let mut expected = vec![b as i64];
                expected.extend_from_slice(shape);
                return Err(RasterError::Shape {
                    field,
                    expected,
                    found: t.size(),
                });
            }
            Ok(Vec::<f32>::try_from(
                one.to_kind(Kind::Float)
                    .to_device(Device::Cpu)
                    .flatten(0, -1),
            )?)
        };
        let pts = host(&self.points, &[p, 2], "points")?;
        let fill = host(&self.fill, &[s, 4], "fill")?;
        let stroke = host(&self.stroke, &[s, 4], "stroke")?;
        let width = host(&self.stroke_width, &[s], "stroke_width")?;
        let bg = host(&self.background, &[4], "background")?;
        for (dst, src) in view.points.iter_mut().zip(pts.chunks_exact(2)) {
            *dst = [src[0], src[1]];
        }
        let col = |c: &[f32]| -> [f32; 4] { std::array::from_fn(|k| c[k].clamp(0.0, 1.0)) };
        for (dst, src) in view.fill.iter_mut().zip(fill.chunks_exact(4)) {
            *dst = col(src);
        }
        for (dst, src) in view.stroke.iter_mut().zip(stroke.chunks_exact(4)) {
            *dst = col(src);
        }
        for (dst, src) in view.stroke_width.iter_mut().zip(&width) {
            *dst = src.max(0.0);
        }
        view.background = col(&bg);
        if let Some(g) = &self.fill_gradient {
            let g = host(g, &[s, GRADIENT_WIDTH], "fill_gradient")?;
            for (slot, src) in view.fill_gradient.iter_mut().zip(g.chunks_exact(8)) {
                // Solid slots stay solid; gradient slots take the new numbers.
                if slot.is_some() {
                    *slot = Some(LinearFill::from_array(std::array::from_fn(|k| src[k])));
                }
            }
        }
        Ok(())
    }

    /// Checks the tensor shapes against `scene`; returns B.
    pub(crate) fn check(&self, scene: &Scene) -> Result<i64, RasterError> {
        let b = self.points.size().first().copied().unwrap_or(0);
        let p = scene.num_points() as i64;
        let s = scene.num_shapes() as i64;
        let dev = self.points.device();
        for (field, t, want) in [
            ("points", &self.points, vec![b, p, 2]),
            ("fill", &self.fill, vec![b, s, 4]),
            ("stroke", &self.stroke, vec![b, s, 4]),
            ("stroke_width", &self.stroke_width, vec![b, s]),
            ("background", &self.background, vec![b, 4]),
        ] {
            if t.size() != want {
                return Err(RasterError::Shape {
                    field,
                    expected: want,
                    found: t.size(),
                });
            }
            if t.device() != dev {
                return Err(RasterError::Device(field));
            }
        }
        if let Some(g) = &self.fill_gradient {
            let want = vec![b, s, GRADIENT_WIDTH];
            if g.size() != want {
                return Err(RasterError::Shape {
                    field: "fill_gradient",
                    expected: want,
                    found: g.size(),
                });
            }
            if g.device() != dev {
                return Err(RasterError::Device("fill_gradient"));
            }
        }
        Ok(b)
    }
}
