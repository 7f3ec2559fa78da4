//! Parameter view: a document (or subtree) packed into flat `f32` arrays for the optimiser.
//!
//! [`Document::param_view`] packs; [`Document::apply_param_view`] writes back the trainable
//! slots (neither locked nor hidden). Values are compared in `f32`: a number whose `f32` value
//! did not change keeps its exact `f64` value, a gradient whose mean colour did not change
//! stays a gradient, so `apply(pack(doc))` leaves the document exactly as it was.

use serde::{Deserialize, Serialize};

use crate::color::Rgba;
use crate::document::{Document, ShapeEntry};
use crate::ids::{NodeId, ShapeId};
use crate::paint::{LinearFill, Paint};
use crate::shape::Stroke;

pub use crate::shape::{FillRule, LineCap, LineJoin, PrimitiveKind};

/// One subpath's control points inside [`ParamView::points`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubpathSlot {
    /// Indices into [`ParamView::points`] (points, not floats).
    pub points: std::ops::Range<usize>,
    /// Closed cubic subpath with n segments: 3n points `[p0,c1,c2,p1,…,c1,c2]` (last segment
    /// returns to p0); open: 3n+1 points `[p0,c1,c2,p1,…,pn]`; polygon: vertices joined by
    /// straight edges (closed says whether last→first).
    pub closed: bool,
}

/// One shape's slot (slots are listed in paint order, back to front).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShapeSlot {
    /// Id of the shape in the document.
    pub shape: ShapeId,
    /// Primitive kind.
    pub kind: PrimitiveKind,
    /// Subpaths (several for holes; winding is over all of them).
    pub subpaths: Vec<SubpathSlot>,
    /// Fill rule.
    pub fill_rule: FillRule,
    /// Fill colour in [`ParamView::fill`] (and [`ParamView::fill_gradient`] for a two-stop
    /// linear gradient); any other gradient is represented by its mean colour and is kept on
    /// write-back unless that colour changed.
    pub has_fill: bool,
    /// Stroke colour and width in [`ParamView::stroke`] / [`ParamView::stroke_width`].
    pub has_stroke: bool,
    /// Stroke caps.
    pub line_cap: LineCap,
    /// Stroke joins.
    pub line_join: LineJoin,
    /// Effective (inherited from ancestors): rendered, never updated.
    pub locked: bool,
    /// Effective: not rendered.
    pub hidden: bool,
}

/// Flat parameter arrays of a document or subtree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamView {
    /// Width, height in document units (= view box size; origin already subtracted).
    pub canvas: [f32; 2],
    /// Straight RGBA in `[0, 1]`; alpha 0 = transparent.
    pub background: [f32; 4],
    /// One per shape, paint order.
    pub slots: Vec<ShapeSlot>,
    /// All control points, x right, y down, document units.
    pub points: Vec<[f32; 2]>,
    /// Per slot, straight (non-premultiplied) RGBA in `[0, 1]`, opacity folded in.
    pub fill: Vec<[f32; 4]>,
    /// Per slot stroke colour.
    pub stroke: Vec<[f32; 4]>,
    /// Per slot stroke width (0 when there is no stroke).
    pub stroke_width: Vec<f32>,
    /// Per slot: the fill's change and axis when it is a padded two-stop linear gradient
    /// (then [`ParamView::fill`] holds its mean colour); `None` for other fills.
    #[serde(default)]
    pub fill_gradient: Vec<Option<LinearFill>>,
}

impl ParamView {
    /// Whether slot `slot` may be changed by the optimiser (`!locked && !hidden`).
    pub fn trainable(&self, slot: usize) -> bool {
        self.slots.get(slot).is_some_and(|s| !s.locked && !s.hidden)
    }

    /// Per point: whether it belongs to a trainable slot.
    pub fn point_mask(&self) -> Vec<bool> {
        let mut mask = vec![false; self.points.len()];
        for (i, slot) in self.slots.iter().enumerate() {
            let t = self.trainable(i);
            for sp in &slot.subpaths {
                if let Some(m) = mask.get_mut(sp.points.clone()) {
                    m.fill(t);
                }
            }
        }
        mask
    }

    /// Per slot: trainable.
    pub fn slot_mask(&self) -> Vec<bool> {
        (0..self.slots.len()).map(|i| self.trainable(i)).collect()
    }

    /// Per slot: rendered (not hidden).
    pub fn visible_mask(&self) -> Vec<bool> {
        self.slots.iter().map(|s| !s.hidden).collect()
    }

    /// Index of the slot holding `shape`.
    pub fn slot_of(&self, shape: ShapeId) -> Option<usize> {
        self.slots.iter().position(|s| s.shape == shape)
    }

    /// Range of points of slot `slot` (subpaths are contiguous).
    pub fn point_range(&self, slot: usize) -> std::ops::Range<usize> {
        let Some(s) = self.slots.get(slot) else {
            return 0..0;
        };
        match (s.subpaths.first(), s.subpaths.last()) {
            (Some(a), Some(b)) => a.points.start..b.points.end,
            _ => 0..0,
        }
    }

    /// Checks array lengths and index ranges.
    pub fn check_consistent(&self) -> Result<(), ParamError> {
        let n = self.slots.len();
        for (what, len) in [
            ("fill", self.fill.len()),
            ("stroke", self.stroke.len()),
            ("stroke_width", self.stroke_width.len()),
            ("fill_gradient", self.fill_gradient.len()),
        ] {
            if len != n {
                return Err(ParamError::Length {
                    array: what,
                    expected: n,
                    found: len,
                });
            }
        }
        for s in &self.slots {
            for sp in &s.subpaths {
                if sp.points.end > self.points.len() || sp.points.start > sp.points.end {
                    return Err(ParamError::PointRange {
                        shape: s.shape,
                        end: sp.points.end,
                        len: self.points.len(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Why a parameter view could not be written back.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParamError {
    /// A per-slot array has the wrong length.
    #[error("parameter array `{array}` has {found} entries, expected {expected} (one per slot)")]
    Length {
        /// Array name.
        array: &'static str,
        /// Number of slots.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A subpath range points past the point array.
    #[error("slot for shape {shape}: point range ends at {end} but there are only {len} points")]
    PointRange {
        /// Shape.
        shape: NodeId,
        /// End of the range.
        end: usize,
        /// Number of points.
        len: usize,
    },
    /// A slot names a shape that is not in the document.
    #[error("slot names shape {0}, which is not in the document")]
    UnknownShape(NodeId),
    /// The subpath structure of a slot differs from the document's shape.
    #[error(
        "slot for shape {0} has a different subpath structure than the document (re-pack the view after structural edits)"
    )]
    Structure(NodeId),
    /// A value is NaN or infinite.
    #[error("slot for shape {shape}: {what} is not finite")]
    NotFinite {
        /// Shape.
        shape: NodeId,
        /// Which value.
        what: &'static str,
    },
    /// The background colour is NaN or infinite.
    #[error("background colour is not finite")]
    Background,
}

fn pack(doc: &Document, entries: &[ShapeEntry<'_>]) -> ParamView {
    let mut view = ParamView {
        canvas: [doc.width as f32, doc.height as f32],
        background: doc.background.to_array(),
        slots: Vec::with_capacity(entries.len()),
        points: Vec::new(),
        fill: Vec::with_capacity(entries.len()),
        stroke: Vec::with_capacity(entries.len()),
        stroke_width: Vec::with_capacity(entries.len()),
        fill_gradient: Vec::with_capacity(entries.len()),
    };
    for e in entries {
        let s = e.shape;
        let mut subpaths = Vec::with_capacity(s.subpaths.len());
        for sp in &s.subpaths {
            let start = view.points.len();
            view.points
                .extend(sp.points.iter().map(|p| [p.x as f32, p.y as f32]));
            subpaths.push(SubpathSlot {
                points: start..view.points.len(),
                closed: sp.closed,
            });
        }
        let (cap, join) = s
            .stroke
            .as_ref()
            .map_or((LineCap::Butt, LineJoin::Miter), |st| (st.cap, st.join));
        view.slots.push(ShapeSlot {
            shape: s.meta.id,
            kind: s.kind,
            subpaths,
            fill_rule: s.fill_rule,
            has_fill: s.fill.is_some(),
            has_stroke: s.stroke.is_some(),
            line_cap: cap,
            line_join: join,
            locked: e.locked,
            hidden: e.hidden,
        });
        let linear = s.fill.as_ref().and_then(Paint::as_linear_fill);
        view.fill.push(match (&s.fill, linear) {
            (_, Some((mean, _))) => mean,
            (Some(p), None) => p.mean_color().to_array(),
            (None, None) => [0.0; 4],
        });
        view.fill_gradient.push(linear.map(|(_, g)| g));
        view.stroke.push(
            s.stroke
                .as_ref()
                .map_or([0.0; 4], |st| st.paint.mean_color().to_array()),
        );
        view.stroke_width
            .push(s.stroke.as_ref().map_or(0.0, |st| st.width as f32));
    }
    view
}

/// Keeps `old` when its f32 value equals `new`, so unchanged numbers keep full precision.
fn merge_f64(old: &mut f64, new: f32) {
    if *old as f32 != new {
        *old = f64::from(new);
    }
}

/// A fill from the view: a two-stop linear gradient when `gradient` is set (the old paint is
/// kept if it reads back as the same numbers), else as [`merge_paint`].
fn merge_fill(old: Option<Paint>, mean: [f32; 4], gradient: Option<LinearFill>) -> Paint {
    match gradient {
        Some(g) => match old {
            Some(p) if p.as_linear_fill() == Some((mean, g)) => p,
            _ => Paint::from_linear_fill(mean, g),
        },
        None => merge_paint(old, mean),
    }
}

fn merge_paint(old: Option<Paint>, new: [f32; 4]) -> Paint {
    match old {
        Some(p) if p.mean_color().to_array() == new => p,
        _ => Paint::Solid(Rgba::from_array(new)),
    }
}

impl Document {
    /// Packs the whole document.
    pub fn param_view(&self) -> ParamView {
        pack(self, &self.shape_entries())
    }

    /// Packs the subtree rooted at `node` (empty view if there is no such node).
    pub fn param_view_of(&self, node: NodeId) -> ParamView {
        let entries = self.shape_entries_of(node).unwrap_or_default();
        pack(self, &entries)
    }

    /// Writes back the trainable slots of `view` (and the background). Locked and hidden
    /// slots are ignored. All checks happen before any write: on error nothing changes.
    pub fn apply_param_view(&mut self, view: &ParamView) -> Result<(), ParamError> {
        view.check_consistent()?;
        if !view.background.iter().all(|v| v.is_finite()) {
            return Err(ParamError::Background);
        }
        for (i, slot) in view.slots.iter().enumerate() {
            if !view.trainable(i) {
                continue;
            }
            let shape = self
                .shape(slot.shape)
                .ok_or(ParamError::UnknownShape(slot.shape))?;
            let same_structure = shape.kind == slot.kind
                && shape.subpaths.len() == slot.subpaths.len()
                && shape
                    .subpaths
                    .iter()
                    .zip(&slot.subpaths)
                    .all(|(a, b)| a.points.len() == b.points.len() && a.closed == b.closed);
            if !same_structure {
                return Err(ParamError::Structure(slot.shape));
            }
            let not_finite = |what| ParamError::NotFinite {
                shape: slot.shape,
                what,
            };
            for sp in &slot.subpaths {
                if !view.points[sp.points.clone()]
                    .iter()
                    .all(|p| p[0].is_finite() && p[1].is_finite())
                {
                    return Err(not_finite("a control point"));
                }
            }
            if !view.fill[i].iter().all(|v| v.is_finite()) {
                return Err(not_finite("the fill colour"));
            }
            if view.fill_gradient[i].is_some_and(|g| !g.is_finite()) {
                return Err(not_finite("the fill gradient"));
            }
            if !view.stroke[i].iter().all(|v| v.is_finite()) {
                return Err(not_finite("the stroke colour"));
            }
            if !view.stroke_width[i].is_finite() {
                return Err(not_finite("the stroke width"));
            }
        }
        if self.background.to_array() != view.background {
            self.background = Rgba::from_array(view.background);
        }
        for (i, slot) in view.slots.iter().enumerate() {
            if !view.trainable(i) {
                continue;
            }
            let Some(shape) = self.shape_mut(slot.shape) else {
                continue; // checked above
            };
            for (sp, range) in shape.subpaths.iter_mut().zip(&slot.subpaths) {
                for (p, q) in sp.points.iter_mut().zip(&view.points[range.points.clone()]) {
                    merge_f64(&mut p.x, q[0]);
                    merge_f64(&mut p.y, q[1]);
                }
            }
            shape.fill_rule = slot.fill_rule;
            shape.fill = slot
                .has_fill
                .then(|| merge_fill(shape.fill.take(), view.fill[i], view.fill_gradient[i]));
            shape.stroke = if slot.has_stroke {
                let mut st = shape
                    .stroke
                    .take()
                    .unwrap_or_else(|| Stroke::solid(Rgba::BLACK, 0.0));
                st.paint = merge_paint(Some(st.paint), view.stroke[i]);
                merge_f64(&mut st.width, view.stroke_width[i]);
                st.cap = slot.line_cap;
                st.join = slot.line_join;
                Some(st)
            } else {
                None
            };
        }
        Ok(())
    }
}
