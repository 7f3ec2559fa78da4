//! Geometry via kurbo: Bézier paths, bounding boxes, hit testing and transforms.

use kurbo::{
    Affine, BezPath, CubicBez, Line, ParamCurveNearest as _, PathSeg, Point, Rect, Shape as _,
};

use crate::document::Document;
use crate::ids::NodeId;
use crate::paint::Paint;
use crate::shape::{FillRule, PrimitiveKind, Shape, Subpath};

/// Accuracy (document units) of nearest-point queries on cubic segments.
pub const NEAREST_ACCURACY: f64 = 1e-6;

impl Subpath {
    /// The segments of this subpath for a shape of `kind`.
    pub fn segments(&self, kind: PrimitiveKind) -> Vec<PathSeg> {
        let pts = &self.points;
        let Some(&p0) = pts.first() else {
            return Vec::new();
        };
        let mut segs = Vec::new();
        if kind == PrimitiveKind::Polygon {
            for w in pts.windows(2) {
                segs.push(PathSeg::Line(Line::new(w[0], w[1])));
            }
            if self.closed && pts.len() > 1 {
                segs.push(PathSeg::Line(Line::new(pts[pts.len() - 1], p0)));
            }
        } else {
            let n = if self.closed {
                pts.len() / 3
            } else {
                pts.len().saturating_sub(1) / 3
            };
            for i in 0..n {
                let end = pts.get(3 * i + 3).copied().unwrap_or(p0);
                segs.push(PathSeg::Cubic(CubicBez::new(
                    pts[3 * i],
                    pts[3 * i + 1],
                    pts[3 * i + 2],
                    end,
                )));
            }
        }
        segs
    }
}

impl Shape {
    /// The outline as a kurbo path (closed subpaths end with `ClosePath`).
    pub fn to_bezpath(&self) -> BezPath {
        let mut path = BezPath::new();
        for sp in &self.subpaths {
            let segs = sp.segments(self.kind);
            let Some(first) = sp.points.first() else {
                continue;
            };
            path.move_to(*first);
            for seg in segs {
                match seg {
                    PathSeg::Line(l) => path.line_to(l.p1),
                    PathSeg::Cubic(c) => path.curve_to(c.p1, c.p2, c.p3),
                    PathSeg::Quad(q) => path.quad_to(q.p1, q.p2),
                }
            }
            if sp.closed {
                path.close_path();
            }
        }
        path
    }

    /// Bounding box of the geometry, grown by half the stroke width when stroked
    /// (a conservative box: miter corners may reach further).
    pub fn bounding_box(&self) -> Rect {
        let b = self.to_bezpath().bounding_box();
        match &self.stroke {
            Some(s) => b.inflate(s.width / 2.0, s.width / 2.0),
            None => b,
        }
    }

    /// Whether `p` is inside the filled area (fill rule applied); false when not filled.
    pub fn fill_contains(&self, p: Point) -> bool {
        if self.fill.is_none() {
            return false;
        }
        // Fill treats every subpath as closed.
        let mut path = BezPath::new();
        for sp in &self.subpaths {
            let mut closed = sp.clone();
            if self.kind != PrimitiveKind::Polygon && !closed.closed && closed.points.len() > 1 {
                // An open cubic subpath closes with a straight line back to its start.
                let (a, b) = (closed.points[closed.points.len() - 1], closed.points[0]);
                closed
                    .points
                    .extend([a.lerp(b, 1.0 / 3.0), a.lerp(b, 2.0 / 3.0)]);
            }
            closed.closed = true;
            let tmp = Shape {
                subpaths: vec![closed],
                ..self.clone()
            };
            path.extend(tmp.to_bezpath());
        }
        let w = path.winding(p);
        match self.fill_rule {
            FillRule::NonZero => w != 0,
            FillRule::EvenOdd => w % 2 != 0,
        }
    }

    /// Distance from `p` to the nearest point of the outline (every segment).
    pub fn distance_to_outline(&self, p: Point) -> f64 {
        self.subpaths
            .iter()
            .flat_map(|sp| sp.segments(self.kind))
            .map(|seg| seg.nearest(p, NEAREST_ACCURACY).distance_sq.sqrt())
            .fold(f64::INFINITY, f64::min)
    }

    /// Whether `p` hits the shape: inside its fill, or within half the stroke width
    /// (plus `tolerance`) of its outline when stroked.
    pub fn hit_test(&self, p: Point, tolerance: f64) -> bool {
        if self.fill_contains(p) {
            return true;
        }
        let reach = self.stroke.as_ref().map_or(0.0, |s| s.width / 2.0) + tolerance;
        (self.stroke.is_some() || tolerance > 0.0) && self.distance_to_outline(p) <= reach
    }

    /// Maps every point (and gradient) through `affine`; stroke widths scale by
    /// `sqrt(|det|)` (exact for uniform scales and rotations).
    pub fn transform(&mut self, affine: Affine) {
        for sp in &mut self.subpaths {
            for p in &mut sp.points {
                *p = affine * *p;
            }
        }
        if let Some(f) = self.fill.take() {
            self.fill = Some(f.transformed(affine));
        }
        if let Some(s) = &mut self.stroke {
            let scale = affine.determinant().abs().sqrt();
            s.width *= scale;
            s.dash_array.iter_mut().for_each(|d| *d *= scale);
            s.dash_offset *= scale;
            let paint: Paint = s.paint.clone();
            s.paint = paint.transformed(affine);
        }
    }
}

impl Document {
    /// The topmost visible shape hit at `p` (see [`Shape::hit_test`]).
    pub fn hit_test(&self, p: Point, tolerance: f64) -> Option<NodeId> {
        self.shape_entries()
            .iter()
            .rev()
            .find(|e| !e.hidden && e.shape.hit_test(p, tolerance))
            .map(|e| e.shape.meta.id)
    }

    /// Bounding box of the node `id` (union over its shapes), `None` if absent or empty.
    pub fn bounding_box(&self, id: NodeId) -> Option<Rect> {
        self.shape_entries_of(id)?
            .iter()
            .map(|e| e.shape.bounding_box())
            .reduce(|a, b| a.union(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeMeta, Rgba, Stroke};

    fn square(kind: PrimitiveKind) -> Shape {
        let pts = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)];
        let points: Vec<Point> = match kind {
            PrimitiveKind::Polygon => pts.iter().map(|&p| p.into()).collect(),
            _ => (0..4)
                .flat_map(|i| {
                    let a: Point = pts[i].into();
                    let b: Point = pts[(i + 1) % 4].into();
                    [a, a.lerp(b, 1.0 / 3.0), a.lerp(b, 2.0 / 3.0)]
                })
                .collect(),
        };
        Shape {
            meta: NodeMeta::new(NodeId(1), "sq"),
            kind,
            subpaths: vec![Subpath {
                points,
                closed: true,
            }],
            fill: Some(Paint::Solid(Rgba::BLACK)),
            fill_rule: FillRule::NonZero,
            stroke: None,
        }
    }

    #[test]
    fn shape_fill_contains_square() {
        for kind in [PrimitiveKind::ClosedPath, PrimitiveKind::Polygon] {
            let s = square(kind);
            assert!(s.fill_contains(Point::new(5.0, 5.0)), "{kind:?}");
            assert!(!s.fill_contains(Point::new(15.0, 5.0)), "{kind:?}");
            let b = s.bounding_box();
            assert!((b.width() - 10.0).abs() < 1e-12 && (b.height() - 10.0).abs() < 1e-12);
        }
    }

    #[test]
    fn shape_stroke_hit_uses_half_width() {
        let mut s = square(PrimitiveKind::ClosedPath);
        s.fill = None;
        s.stroke = Some(Stroke::solid(Rgba::BLACK, 2.0));
        assert!((s.distance_to_outline(Point::new(12.0, 5.0)) - 2.0).abs() < 1e-6);
        assert!(s.hit_test(Point::new(10.9, 5.0), 0.0));
        assert!(!s.hit_test(Point::new(11.1, 5.0), 0.0));
        assert!(
            !s.hit_test(Point::new(5.0, 5.0), 0.0),
            "no fill, centre is not a hit"
        );
    }

    #[test]
    fn shape_transform_scales_points_and_width() {
        let mut s = square(PrimitiveKind::ClosedPath);
        s.stroke = Some(Stroke::solid(Rgba::BLACK, 1.0));
        s.transform(Affine::scale(2.0).then_translate((1.0, 0.0).into()));
        assert_eq!(s.subpaths[0].points[3], Point::new(21.0, 0.0));
        assert_eq!(s.stroke.as_ref().unwrap().width, 2.0);
    }
}
