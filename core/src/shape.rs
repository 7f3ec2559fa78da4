//! Shapes: the primitives (cubic paths and polygons) with their fill and stroke.

use kurbo::Point;
use serde::{Deserialize, Serialize};

use crate::ids::NodeMeta;
use crate::paint::Paint;

/// Kind of primitive a shape holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrimitiveKind {
    /// Cubic Bézier path that is filled (subpaths normally closed).
    ClosedPath,
    /// Cubic Bézier path that is stroked (subpaths normally open).
    OpenPath,
    /// Straight-edged polygon (pixel-art and low-poly styles).
    Polygon,
}

/// Fill rule (`fill-rule` in SVG).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FillRule {
    /// Non-zero winding.
    #[default]
    NonZero,
    /// Even-odd.
    EvenOdd,
}

/// Stroke end caps (`stroke-linecap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LineCap {
    /// Flat, ends at the end point.
    #[default]
    Butt,
    /// Half-disc.
    Round,
    /// Half-square.
    Square,
}

/// Stroke corner joins (`stroke-linejoin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LineJoin {
    /// Sharp corner up to the miter limit.
    #[default]
    Miter,
    /// Rounded corner.
    Round,
    /// Cut corner.
    Bevel,
}

/// Stroke style and paint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stroke {
    /// Paint of the stroke (opacity folded in).
    pub paint: Paint,
    /// Width in document units.
    pub width: f64,
    /// End caps.
    pub cap: LineCap,
    /// Corner joins.
    pub join: LineJoin,
    /// Miter limit (SVG default 4).
    pub miter_limit: f64,
    /// Dash lengths in document units (empty: solid line).
    pub dash_array: Vec<f64>,
    /// Dash offset in document units.
    pub dash_offset: f64,
}

impl Stroke {
    /// A solid stroke with SVG default style.
    pub fn solid(color: crate::Rgba, width: f64) -> Self {
        Self {
            paint: Paint::Solid(color),
            width,
            cap: LineCap::Butt,
            join: LineJoin::Miter,
            miter_limit: 4.0,
            dash_array: Vec::new(),
            dash_offset: 0.0,
        }
    }
}

/// One subpath's control points.
///
/// Layout (same as [`crate::params::SubpathSlot`]):
/// - cubic, closed, `n` segments: `3n` points `[p0, c1, c2, p1, …, c1, c2]`, the last segment returns to `p0`;
/// - cubic, open, `n` segments: `3n + 1` points `[p0, c1, c2, p1, …, pn]`;
/// - polygon: vertices joined by straight edges, last→first when `closed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subpath {
    /// Control points in document units (x right, y down).
    pub points: Vec<Point>,
    /// Whether the subpath is closed.
    pub closed: bool,
}

impl Subpath {
    /// True if the number of points fits the layout for `kind`.
    pub fn is_well_formed(&self, kind: PrimitiveKind) -> bool {
        let n = self.points.len();
        match kind {
            PrimitiveKind::Polygon => n >= 1,
            _ if self.closed => n >= 3 && n.is_multiple_of(3),
            _ => n >= 1 && n % 3 == 1,
        }
    }
}

/// A primitive with its paint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Id, name, lock and visibility.
    pub meta: NodeMeta,
    /// Primitive kind.
    pub kind: PrimitiveKind,
    /// Subpaths (several for shapes with holes; winding is over all of them).
    pub subpaths: Vec<Subpath>,
    /// Fill paint, if filled.
    pub fill: Option<Paint>,
    /// Fill rule.
    pub fill_rule: FillRule,
    /// Stroke, if stroked.
    pub stroke: Option<Stroke>,
}

impl Shape {
    /// Number of control points over all subpaths.
    pub fn point_count(&self) -> usize {
        self.subpaths.iter().map(|s| s.points.len()).sum()
    }

    /// True if every coordinate, width and colour is finite.
    pub fn is_finite(&self) -> bool {
        self.subpaths
            .iter()
            .all(|s| s.points.iter().all(|p| p.is_finite()))
            && self.fill.as_ref().is_none_or(Paint::is_finite)
            && self.stroke.as_ref().is_none_or(|s| {
                s.paint.is_finite()
                    && s.width.is_finite()
                    && s.miter_limit.is_finite()
                    && s.dash_offset.is_finite()
                    && s.dash_array.iter().all(|d| d.is_finite())
            })
    }
}
