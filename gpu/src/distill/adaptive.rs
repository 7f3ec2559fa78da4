//! Adaptive primitive control during distillation (SVGDreamer++): every N steps, shapes that
//! faded or shrank are pruned and new ones are added inside the owning object where the render
//! disagrees most with the guidance's target (its denoised estimate x̂₀), within a budget.
//!
//! Structural changes need each particle to own its topology, so a shared group is split into
//! one group per particle at the first round. Kept shapes keep their optimiser moments.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use vecdream_core::paint::Paint;
use vecdream_core::{
    Component, Document, FillRule, NodeId, NodeMeta, ObjectChild, PrimitiveKind, Rgba, Shape,
    Stroke, Subpath,
};

use super::DistillError;
use super::engine::{Distiller, Group, set_masks};
use super::guidance::StepCtx;
use crate::rng::Rng;
use crate::vectorize::fit::{ContourFit, SpanKind, offset_outward, smooth_closed};
use crate::vectorize::segment::{silhouette, trace_boundary};

/// Random stream of adaptive control (see [`Rng::for_step`]).
const STREAM_ADAPT: u64 = 3;

/// What new shapes look like.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum NewShape {
    /// Closed filled cubic paths fitted to the residual's outline.
    Filled,
    /// Filled polygons fitted to the residual's outline.
    Polygon,
    /// An open stroke along the residual, `segments` cubic segments, this width (document
    /// units); `black` keeps it black, else it takes the target's colour there.
    Stroke {
        /// Cubic segments.
        segments: usize,
        /// Width in document units.
        width: f64,
        /// Black (sketch, ink) or coloured (painting).
        black: bool,
    },
}

/// Settings of adaptive primitive control.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveConfig {
    /// A round every this many steps.
    pub every: usize,
    /// No rounds after this fraction of the run (shapes settle at the end).
    pub until_fraction: f32,
    /// Shapes more transparent than this are pruned.
    pub min_alpha: f32,
    /// Filled shapes smaller than this (square render pixels) are pruned (`None`: never).
    pub min_area_px: Option<f32>,
    /// Most shapes a particle may hold (the path budget); `None`: re-initialise only (as many
    /// shapes are added as were pruned, the count holds).
    pub max_shapes: Option<usize>,
    /// Most shapes added per particle per round.
    pub max_added: usize,
    /// What a new shape is.
    pub new_shape: NewShape,
}

impl AdaptiveConfig {
    pub(crate) fn check(&self) -> Result<(), DistillError> {
        let bad = |field: &str, message: String| {
            Err(DistillError::Config {
                field: format!("adaptive.{field}"),
                message,
            })
        };
        if self.every == 0 {
            return bad("every", "0: expected ≥ 1".into());
        }
        if !(0.0..=1.0).contains(&self.until_fraction) {
            return bad(
                "until_fraction",
                format!("{}: expected 0..=1", self.until_fraction),
            );
        }
        if self.max_shapes == Some(0) {
            return bad("max_shapes", "0: expected ≥ 1".into());
        }
        Ok(())
    }

    /// Whether a round runs after step `step` (1-based count of steps done) of `total`.
    pub fn due(&self, step: usize, total: usize) -> bool {
        step.is_multiple_of(self.every)
            && (step as f64) <= f64::from(self.until_fraction) * total as f64
            && step < total
    }
}

impl Distiller {
    /// One adaptive round over every particle; returns `(pruned, added)` summed over particles.
    pub(crate) fn adapt(&mut self, cfg: &AdaptiveConfig) -> Result<(usize, usize), DistillError> {
        let images = match &self.last_images {
            Some(i) => i.shallow_clone(),
            None => tch::no_grad(|| self.render())?.detach(),
        };
        let mut rng = Rng::for_step(self.config.seed, STREAM_ADAPT, self.step as u64);
        let mut ctx = StepCtx {
            step: self.step,
            total_steps: self.config.steps,
            rng: &mut rng,
            weights: None,
        };
        let Some(target) = tch::no_grad(|| self.guidance.denoised_target(&images, &mut ctx))?
        else {
            return Ok((0, 0));
        };
        self.split_groups()?;
        let (w, h) = (self.width, self.height);
        let mut pruned = 0;
        let mut added = 0;
        for i in 0..self.groups.len() {
            let doc = self.particle_document(i)?;
            let render = image_rows(&images, i, w, h);
            let goal = image_rows(&target, i, w, h);
            let (doc, p, a) = adapt_document(doc, &render, &goal, w, h, cfg);
            pruned += p;
            added += a;
            if p + a > 0 {
                let dev = self.groups[i].params.device();
                let mut g = Self::build_group(doc, 1, &self.config, dev)?;
                carry_moments(&self.groups[i], &mut g);
                set_masks(&mut g, &self.config);
                self.groups[i] = g;
            }
        }
        self.refresh_shape_counts();
        self.last_images = None;
        if self.config.region_weight > 0.0 {
            self.rebuild_regions()?;
        }
        Ok((pruned, added))
    }

    /// Splits groups of several particles into one group per particle (same ids in each: a lock
    /// still reaches the same shape of every particle).
    fn split_groups(&mut self) -> Result<(), DistillError> {
        if self.groups.iter().all(|g| g.len() == 1) {
            return Ok(());
        }
        let mut out = Vec::with_capacity(self.config.particles);
        for g in &self.groups {
            for r in 0..g.len() {
                let row = |t: &Tensor| t.detach().narrow(0, r as i64, 1).copy();
                let mut params = g.params.map(row).to_leaves();
                params.fill_gradient = params.fill_gradient.map(|t| t.detach());
                let mut adam = super::adam::MaskedAdam::new(
                    g.adam.config.clone(),
                    &params.tensors(),
                    Vec::new(),
                );
                adam.t = g.adam.t;
                adam.set_moments(
                    g.adam
                        .moments()
                        .into_iter()
                        .map(|(m, v)| (row(m), row(v)))
                        .collect(),
                );
                let mut one = Group {
                    doc: g.doc.clone(),
                    view: g.view.clone(),
                    scene: g.scene.clone(),
                    params,
                    adam,
                    region: g.region.clone(),
                };
                set_masks(&mut one, &self.config);
                out.push(one);
            }
        }
        self.groups = out;
        Ok(())
    }
}

/// Copies the optimiser moments (and update count) of the shapes `new` shares with `old`.
fn carry_moments(old: &Group, new: &mut Group) {
    let _g = tch::no_grad_guard();
    let old_m = old.adam.moments();
    let new_m = new.adam.moments();
    for (ns, slot) in new.view.slots.iter().enumerate() {
        let Some(os) = old.view.slot_of(slot.shape) else {
            continue;
        };
        let (or, nr) = (old.view.point_range(os), new.view.point_range(ns));
        for k in 0..5 {
            let (om, ov) = old_m[k];
            let (nm, nv) = new_m[k];
            match k {
                0 if or.len() == nr.len() && !or.is_empty() => {
                    for (o, n) in [(om, nm), (ov, nv)] {
                        let src = o.narrow(1, or.start as i64, or.len() as i64);
                        n.narrow(1, nr.start as i64, nr.len() as i64).copy_(&src);
                    }
                }
                1..=3 => {
                    for (o, n) in [(om, nm), (ov, nv)] {
                        let src = o.narrow(1, os as i64, 1);
                        n.narrow(1, ns as i64, 1).copy_(&src);
                    }
                }
                _ => {}
            }
        }
    }
    new.adam.t = old.adam.t;
}

/// Particle `i` of `[B, 3, H, W]` as row-major RGB `[H·W][3]`.
fn image_rows(images: &Tensor, i: usize, w: usize, h: usize) -> Vec<[f32; 3]> {
    let one = images
        .get(i as i64)
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .permute([1, 2, 0])
        .contiguous()
        .flatten(0, -1);
    let v: Vec<f32> = Vec::try_from(one).unwrap_or_else(|_| vec![0.0; w * h * 3]);
    v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}

/// Prunes and adds shapes of one particle's document; returns it with the counts.
fn adapt_document(
    mut doc: Document,
    render: &[[f32; 3]],
    target: &[[f32; 3]],
    w: usize,
    h: usize,
    cfg: &AdaptiveConfig,
) -> (Document, usize, usize) {
    let px = w as f64 / doc.width; // render pixels per document unit
    let pruned = prune(&mut doc, cfg, px);
    let count = doc.shape_count();
    let room = match cfg.max_shapes {
        Some(m) => m.saturating_sub(count).min(cfg.max_added),
        None => pruned,
    };
    let added = if room > 0 {
        add_at_residual(&mut doc, render, target, w, h, room, cfg, px)
    } else {
        0
    };
    (doc, pruned, added)
}

/// Removes trainable shapes that faded below `min_alpha` or shrank below `min_area_px`.
fn prune(doc: &mut Document, cfg: &AdaptiveConfig, px: f64) -> usize {
    let before = doc.shape_count();
    let keep = |s: &Shape, locked: bool| {
        if locked || s.meta.locked || s.meta.hidden {
            return true;
        }
        let alpha = match (&s.fill, &s.stroke) {
            (Some(f), _) => f.mean_color().a,
            (None, Some(st)) => st.paint.mean_color().a,
            (None, None) => 0.0,
        };
        if alpha < cfg.min_alpha {
            return false;
        }
        if let (Some(min), Some(_)) = (cfg.min_area_px, &s.fill) {
            let area: f64 = s.subpaths.iter().map(|p| polygon_area(&p.points)).sum();
            if area.abs() * px * px < f64::from(min) {
                return false;
            }
        }
        true
    };
    for o in &mut doc.objects {
        let olocked = o.meta.locked || o.meta.hidden;
        for c in &mut o.children {
            if let ObjectChild::Component(comp) = c {
                let locked = olocked || comp.meta.locked || comp.meta.hidden;
                comp.shapes.retain(|s| keep(s, locked));
            }
        }
        o.children.retain(|c| match c {
            ObjectChild::Shape(s) => keep(s, olocked),
            ObjectChild::Component(_) => true,
        });
    }
    before - doc.shape_count()
}

fn polygon_area(p: &[kurbo::Point]) -> f64 {
    let n = p.len();
    (0..n)
        .map(|i| {
            let (a, b) = (p[i], p[(i + 1) % n]);
            a.x * b.y - b.x * a.y
        })
        .sum::<f64>()
        / 2.0
}

struct Blob {
    err: f32,
    pixels: Vec<usize>,
    bbox: [usize; 4],
}

/// Connected pixels whose error is above twice the mean (and above a floor), biggest total
/// error first.
fn residual_blobs(err: &[f32], w: usize, h: usize) -> Vec<Blob> {
    let mean = err.iter().sum::<f32>() / err.len().max(1) as f32;
    let thr = (2.0 * mean).max(0.01);
    let mut seen = vec![false; w * h];
    let mut blobs = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if seen[start] || err[start] <= thr {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut b = Blob {
            err: 0.0,
            pixels: Vec::new(),
            bbox: [w, h, 0, 0],
        };
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            b.err += err[i];
            b.pixels.push(i);
            b.bbox = [
                b.bbox[0].min(x),
                b.bbox[1].min(y),
                b.bbox[2].max(x),
                b.bbox[3].max(y),
            ];
            let n = [
                (x > 0).then(|| i - 1),
                (x + 1 < w).then_some(i + 1),
                (y > 0).then(|| i - w),
                (y + 1 < h).then_some(i + w),
            ];
            for j in n.into_iter().flatten() {
                if !seen[j] && err[j] > thr {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        if b.pixels.len() >= 6 {
            blobs.push(b);
        }
    }
    blobs.sort_by(|a, b| b.err.total_cmp(&a.err));
    blobs
}

/// Adds up to `room` shapes at the largest residual blobs; returns how many.
#[allow(clippy::too_many_arguments)]
fn add_at_residual(
    doc: &mut Document,
    render: &[[f32; 3]],
    target: &[[f32; 3]],
    w: usize,
    h: usize,
    room: usize,
    cfg: &AdaptiveConfig,
    px: f64,
) -> usize {
    let err: Vec<f32> = render
        .iter()
        .zip(target)
        .map(|(a, b)| (0..3).map(|k| (a[k] - b[k]).powi(2)).sum())
        .collect();
    let mut added = 0;
    for blob in residual_blobs(&err, w, h) {
        if added >= room {
            break;
        }
        let n = blob.pixels.len() as f32;
        let mut mean = [0f32; 3];
        let (mut cx, mut cy) = (0f64, 0f64);
        for &p in &blob.pixels {
            for k in 0..3 {
                mean[k] += target[p][k] / n;
            }
            cx += (p % w) as f64 + 0.5;
            cy += (p / w) as f64 + 0.5;
        }
        let centre = kurbo::Point::new(cx / n as f64 / px, cy / n as f64 / px);
        let color = Rgba::new(mean[0], mean[1], mean[2], 1.0);
        let Some(shape) = new_shape(&blob, w, color, cfg, px) else {
            continue;
        };
        let object = owning_object(doc, centre);
        let id = doc.alloc_id();
        let shape = Shape {
            meta: NodeMeta::new(id, format!("detail {}", id.0)),
            ..shape
        };
        insert_detail(doc, object, shape);
        added += 1;
    }
    added
}

/// The shape for a blob in document units (render pixels / `px`).
fn new_shape(blob: &Blob, w: usize, color: Rgba, cfg: &AdaptiveConfig, px: f64) -> Option<Shape> {
    let to_doc = |p: [f32; 2]| kurbo::Point::new(f64::from(p[0]) / px, f64::from(p[1]) / px);
    let placeholder = NodeMeta::new(NodeId(0), "");
    match &cfg.new_shape {
        NewShape::Filled | NewShape::Polygon => {
            let set: std::collections::HashSet<usize> = blob.pixels.iter().copied().collect();
            let mask = silhouette(w, blob.bbox, |p| set.contains(&p));
            let contour = offset_outward(&smooth_closed(&trace_boundary(&mask)), 0.5);
            let perimeter = contour.len();
            let (kind, span) = if cfg.new_shape == NewShape::Polygon {
                (PrimitiveKind::Polygon, SpanKind::Line)
            } else {
                (PrimitiveKind::ClosedPath, SpanKind::Cubic)
            };
            let mut fit = ContourFit::new(contour, span)?;
            fit.grow((perimeter / 10).clamp(3, 8));
            Some(Shape {
                meta: placeholder,
                kind,
                subpaths: vec![Subpath {
                    points: fit.points().into_iter().map(to_doc).collect(),
                    closed: true,
                }],
                fill: Some(Paint::Solid(color)),
                fill_rule: FillRule::NonZero,
                stroke: None,
            })
        }
        NewShape::Stroke {
            segments,
            width,
            black,
        } => {
            // Along the blob's principal axis, through its centre.
            let n = blob.pixels.len() as f64;
            let pts: Vec<(f64, f64)> = blob
                .pixels
                .iter()
                .map(|&p| ((p % w) as f64 + 0.5, (p / w) as f64 + 0.5))
                .collect();
            let (mx, my) = pts
                .iter()
                .fold((0.0, 0.0), |(a, b), &(x, y)| (a + x / n, b + y / n));
            let (sxx, syy, sxy) = pts.iter().fold((0.0, 0.0, 0.0), |(a, b, c), &(x, y)| {
                (
                    a + (x - mx).powi(2) / n,
                    b + (y - my).powi(2) / n,
                    c + (x - mx) * (y - my) / n,
                )
            });
            let angle = 0.5 * (2.0 * sxy).atan2(sxx - syy);
            let (dx, dy) = (angle.cos(), angle.sin());
            let half = pts
                .iter()
                .map(|&(x, y)| ((x - mx) * dx + (y - my) * dy).abs())
                .fold(1.0f64, f64::max);
            let segs = (*segments).max(1);
            let count = 3 * segs + 1;
            let points = (0..count)
                .map(|k| {
                    let t = -half + 2.0 * half * k as f64 / (count - 1) as f64;
                    kurbo::Point::new((mx + t * dx) / px, (my + t * dy) / px)
                })
                .collect();
            let paint = if *black { Rgba::BLACK } else { color };
            Some(Shape {
                meta: placeholder,
                kind: PrimitiveKind::OpenPath,
                subpaths: vec![Subpath {
                    points,
                    closed: false,
                }],
                fill: None,
                fill_rule: FillRule::NonZero,
                stroke: Some(Stroke {
                    cap: vecdream_core::LineCap::Round,
                    join: vecdream_core::LineJoin::Round,
                    ..Stroke::solid(paint, *width)
                }),
            })
        }
    }
}

/// The object whose unlocked, visible shape is topmost at `p` (else the one with the nearest
/// shape outline, else the last object).
fn owning_object(doc: &Document, p: kurbo::Point) -> usize {
    let mut best: Option<(usize, f64)> = None;
    for (oi, o) in doc.objects.iter().enumerate() {
        if o.meta.locked || o.meta.hidden {
            continue;
        }
        for s in o.shapes() {
            if s.meta.hidden {
                continue;
            }
            let d = if s.fill.is_some() && s.fill_contains(p) {
                0.0
            } else {
                s.distance_to_outline(p)
            };
            // Later shapes are on top: ties go to the later one.
            if best.is_none_or(|(_, bd)| d <= bd) {
                best = Some((oi, d));
            }
        }
    }
    best.map_or(doc.objects.len().saturating_sub(1), |(o, _)| o)
}

/// Appends `shape` to the "details" component of object `object` (made when missing).
fn insert_detail(doc: &mut Document, object: usize, shape: Shape) {
    if doc.objects.is_empty() {
        let id = doc.alloc_id();
        doc.objects.push(vecdream_core::Object {
            meta: NodeMeta::new(id, "details"),
            children: Vec::new(),
        });
    }
    let object = object.min(doc.objects.len() - 1);
    let has = doc.objects[object]
        .children
        .iter()
        .position(|c| matches!(c, ObjectChild::Component(comp) if comp.meta.name == "details"));
    let idx = match has {
        Some(i) => i,
        None => {
            let id = doc.alloc_id();
            doc.objects[object]
                .children
                .push(ObjectChild::Component(Component {
                    meta: NodeMeta::new(id, "details"),
                    shapes: Vec::new(),
                }));
            doc.objects[object].children.len() - 1
        }
    };
    if let ObjectChild::Component(c) = &mut doc.objects[object].children[idx] {
        c.shapes.push(shape);
    }
}
