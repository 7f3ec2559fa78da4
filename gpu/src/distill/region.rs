//! The object-region loss: each object's trainable control points are held near the region the
//! object covered at the start (dilated by a margin), so semantic objects do not drift into each
//! other while distillation reshapes them.
//!
//! Per object, a field of the distance (in render pixels) from the dilated start region is
//! sampled at every control point; the loss is `weight · Σ d² / N` over trainable points. It is
//! zero inside the region and grows smoothly outside, so it only acts on points that leave.

use tch::{Device, Kind, Tensor};
use vecdream_core::{Document, ObjectChild, ParamView};

use super::DistillError;
use super::engine::Distiller;

/// Field side in pixels (the distance is computed on this grid).
const FIELD: usize = 64;
/// Margin around an object's start region, as a fraction of the canvas' longer side.
const MARGIN: f64 = 0.06;

/// One group's distance fields and which field each control point reads.
#[derive(Debug)]
pub(crate) struct RegionField {
    /// `[1, O, FIELD, FIELD]` distances outside each object's dilated region, in render pixels.
    fields: Tensor,
    /// `[P]` the object of each control point.
    object_of_point: Tensor,
    /// `[P]` 1 for trainable points of objects that have a region, else 0.
    weight: Tensor,
    /// Number of weighted points.
    count: f64,
}

/// Coverage `[FIELD²]` of one object's shapes (resvg, over nothing).
fn object_mask(doc: &Document, object: usize) -> Vec<bool> {
    let mut one = doc.clone();
    one.background = vecdream_core::Rgba::TRANSPARENT;
    one.objects = vec![doc.objects[object].clone()];
    for o in &mut one.objects {
        o.meta.hidden = false;
    }
    match vecdream_core::png::render_rgba(&one, FIELD as u32, FIELD as u32) {
        Ok(img) => img.data.chunks_exact(4).map(|p| p[3] >= 128).collect(),
        Err(_) => vec![false; FIELD * FIELD],
    }
}

/// Two-pass chamfer distance (3-4 weights, in pixels) to the nearest `true` cell.
fn distance_to(mask: &[bool]) -> Vec<f32> {
    let n = FIELD;
    let inf = 1e9f32;
    let mut d: Vec<f32> = mask.iter().map(|&m| if m { 0.0 } else { inf }).collect();
    let at = |x: isize, y: isize| -> Option<usize> {
        (x >= 0 && y >= 0 && (x as usize) < n && (y as usize) < n)
            .then(|| y as usize * n + x as usize)
    };
    let fwd = [
        (-1, 0, 1.0),
        (0, -1, 1.0),
        (-1, -1, std::f32::consts::SQRT_2),
        (1, -1, std::f32::consts::SQRT_2),
    ];
    let bwd = [
        (1, 0, 1.0),
        (0, 1, 1.0),
        (1, 1, std::f32::consts::SQRT_2),
        (-1, 1, std::f32::consts::SQRT_2),
    ];
    for y in 0..n as isize {
        for x in 0..n as isize {
            let i = y as usize * n + x as usize;
            for &(dx, dy, w) in &fwd {
                if let Some(j) = at(x + dx, y + dy) {
                    d[i] = d[i].min(d[j] + w);
                }
            }
        }
    }
    for y in (0..n as isize).rev() {
        for x in (0..n as isize).rev() {
            let i = y as usize * n + x as usize;
            for &(dx, dy, w) in &bwd {
                if let Some(j) = at(x + dx, y + dy) {
                    d[i] = d[i].min(d[j] + w);
                }
            }
        }
    }
    d
}

impl Clone for RegionField {
    fn clone(&self) -> Self {
        Self {
            fields: self.fields.shallow_clone(),
            object_of_point: self.object_of_point.shallow_clone(),
            weight: self.weight.shallow_clone(),
            count: self.count,
        }
    }
}

impl RegionField {
    /// Fields for `doc`'s objects (rendered at `render_px` pixels on the longer side).
    fn new(doc: &Document, view: &ParamView, render_px: usize, device: Device) -> Self {
        let field_to_render = render_px as f32 / FIELD as f32;
        let margin = (MARGIN * FIELD as f64) as f32;
        let mut fields = Vec::with_capacity(doc.objects.len() * FIELD * FIELD);
        let mut has_region = Vec::with_capacity(doc.objects.len());
        for o in 0..doc.objects.len() {
            let mask = object_mask(doc, o);
            let any = mask.iter().any(|&m| m);
            // An object covering (nearly) the whole canvas (a background) is not held.
            let covered = mask.iter().filter(|&&m| m).count() as f64 / (FIELD * FIELD) as f64;
            has_region.push(any && covered < 0.9);
            let dist = distance_to(&mask);
            fields.extend(
                dist.iter()
                    .map(|&d| ((d - margin).max(0.0) * field_to_render).min(1e4)),
            );
        }
        let o = doc.objects.len().max(1) as i64;
        if fields.is_empty() {
            fields = vec![0.0; FIELD * FIELD];
            has_region.push(false);
        }
        let mut object_of = std::collections::HashMap::new();
        for (oi, o) in doc.objects.iter().enumerate() {
            for c in &o.children {
                match c {
                    ObjectChild::Component(comp) => {
                        for s in &comp.shapes {
                            object_of.insert(s.meta.id, oi);
                        }
                    }
                    ObjectChild::Shape(s) => {
                        object_of.insert(s.meta.id, oi);
                    }
                }
            }
        }
        let mut obj = vec![0i64; view.points.len()];
        let mut w = vec![0f32; view.points.len()];
        for (si, slot) in view.slots.iter().enumerate() {
            let oi = object_of.get(&slot.shape).copied().unwrap_or(0);
            let on = view.trainable(si) && has_region.get(oi).copied().unwrap_or(false);
            for p in view.point_range(si) {
                obj[p] = oi as i64;
                w[p] = if on { 1.0 } else { 0.0 };
            }
        }
        let count = w.iter().map(|&v| f64::from(v)).sum::<f64>();
        Self {
            fields: Tensor::from_slice(&fields)
                .view([1, o, FIELD as i64, FIELD as i64])
                .to_device(device),
            object_of_point: Tensor::from_slice(&obj).to_device(device),
            weight: Tensor::from_slice(&w).to_device(device),
            count,
        }
    }

    /// `Σ d²` over the weighted points of `points` (`[b, P, 2]`, document units), and the
    /// number of weighted points per particle.
    fn penalty(&self, points: &Tensor, canvas: [f32; 2]) -> Tensor {
        let size = points.size();
        let (b, p) = (size[0], size[1]);
        if p == 0 || self.count == 0.0 {
            return points.sum(Kind::Float) * 0.0;
        }
        let scale = Tensor::from_slice(&[2.0 / canvas[0], 2.0 / canvas[1]])
            .to_device(points.device())
            .view([1, 1, 2]);
        let grid = (points * scale - 1.0).view([b, p, 1, 2]);
        let o = self.fields.size()[1];
        let input = self
            .fields
            .expand([b, o, FIELD as i64, FIELD as i64], false);
        // [b, O, P, 1]: every object's field at every point; keep the point's own object.
        let all = input.grid_sampler(&grid, 0, 1, false).squeeze_dim(-1);
        let idx = self
            .object_of_point
            .view([1, 1, p])
            .expand([b, 1, p], false);
        let own = all.gather(1, &idx, false).squeeze_dim(1); // [b, P]
        (own.square() * self.weight.view([1, p])).sum(Kind::Float)
    }
}

impl Distiller {
    /// Recomputes every group's region fields from its document.
    pub(crate) fn rebuild_regions(&mut self) -> Result<(), DistillError> {
        let px = self.width.max(self.height);
        for g in &mut self.groups {
            let dev = g.params.device();
            g.region = Some(RegionField::new(&g.doc, &g.view, px, dev));
        }
        Ok(())
    }

    /// The weighted object-region loss over every group, and its value.
    pub(crate) fn region_loss(&self) -> Result<(Tensor, f64), DistillError> {
        let mut total: Option<Tensor> = None;
        let mut count = 0.0;
        for g in &self.groups {
            let Some(r) = &g.region else { continue };
            let pen = r.penalty(&g.params.points, g.view.canvas);
            count += r.count * g.len() as f64;
            total = Some(match total {
                Some(t) => t + pen,
                None => pen,
            });
        }
        let Some(total) = total else {
            let zero = Tensor::zeros([], (Kind::Float, self.groups[0].params.device()));
            return Ok((zero, 0.0));
        };
        let loss = total * (self.config.region_weight / count.max(1.0));
        let value = loss.double_value(&[]);
        Ok((loss, value))
    }
}
