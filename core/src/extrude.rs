//! SVG → 3D: every visible fill and stroke of a [`Document`] extruded into a closed solid, one
//! [`MeshPart`] per object (named by its label), ready for [`crate::glb::write_glb`].
//!
//! **Geometry.** A fill is tessellated with lyon (its fill rule and holes honoured, curves
//! flattened to [`ExtrudeOptions::tolerance`]); a stroke is first outlined with kurbo's stroke
//! expansion (width, caps, joins, miter limit and dashes of the shape) and that outline is
//! tessellated with the non-zero rule. Each tessellated layer becomes a slab: a front cap
//! (normal +z), a back cap (−z) and side walls along the boundary of the tessellated region
//! (the edges that only one triangle uses, so holes, self-overlapping stroke joins and fill
//! rules all give the right walls), with outward normals. Shading is flat: every cap and every
//! wall quad has its own vertices. The solids are closed and wind counter-clockwise seen from
//! outside, so each part's [`MeshPart::signed_volume`] is the area times the depth.
//!
//! **Units and axes.** SVG is y-down, glTF y-up: x stays right, y flips, z points at the
//! viewer. One unit is the document's longer side, and the canvas centre is the origin (a
//! 200 × 100 document spans x ∈ [−0.5, 0.5], y ∈ [−0.25, 0.25]). Depth, layer gap and
//! tolerance are in those units.
//!
//! **Stacking.** Layers are stacked in paint order: the first painted layer spans
//! z ∈ [0, depth], and each later one (a shape's fill, then its stroke, then the next shape,
//! across objects) sits [`ExtrudeOptions::layer_gap`] further toward the viewer, so what is
//! painted on top in 2D is in front in 3D.
//!
//! **Colour.** `COLOR_0` is linear RGBA: the paint's sRGB colour is linearised, its alpha
//! (opacity) kept. Gradients become their mean colour ([`crate::Paint::mean_color`]), with a
//! note saying so. Hidden shapes (themselves or through their object or component) are skipped;
//! the document background is not extruded (a note says so when it is not transparent).

use std::collections::HashMap;

use kurbo::{Affine, BezPath, PathEl, Shape as _};
use lyon::tessellation::{BuffersBuilder, FillOptions, FillTessellator, FillVertex, VertexBuffers};

use crate::document::Document;
use crate::mesh::{Mesh, MeshPart};
use crate::paint::Paint;
use crate::shape::{FillRule, LineCap, LineJoin, Shape, Stroke};

/// Most dashes one stroke may be cut into; a finer dash pattern is drawn solid (with a note).
pub const MAX_DASHES: f64 = 10_000.0;

/// How [`extrude_document`] builds the solids. All lengths are in output units: 1.0 is the
/// document's longer side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExtrudeOptions {
    /// Thickness of every slab (default 0.02: 2 % of the longer side).
    pub depth: f32,
    /// How far each painted layer sits in front of the one painted before it (default 0.001).
    pub layer_gap: f32,
    /// Largest distance between a curve and its flattened polyline (default 0.0005, a quarter of
    /// a pixel at 512 px).
    pub tolerance: f32,
}

impl Default for ExtrudeOptions {
    fn default() -> Self {
        Self {
            depth: 0.02,
            layer_gap: 0.001,
            tolerance: 0.0005,
        }
    }
}

/// The extruded mesh and what was approximated or left out on the way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extrusion {
    /// One part per object that had visible geometry, in paint order.
    pub mesh: Mesh,
    /// Human-readable notes (gradients replaced by their mean colour, skipped shapes…).
    pub notes: Vec<String>,
}

/// Why a document could not be extruded.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ExtrudeError {
    /// An option is out of range.
    #[error("extrude: {0}")]
    Options(String),
    /// The document is malformed (non-finite numbers, bad subpaths).
    #[error("extrude: the document is invalid: {0}")]
    Document(String),
}

/// Extrudes every visible fill and stroke of `doc` (see the module docs).
pub fn extrude_document(doc: &Document, opts: &ExtrudeOptions) -> Result<Extrusion, ExtrudeError> {
    let positive = |v: f32| v.is_finite() && v > 0.0;
    if !positive(opts.depth) {
        return Err(ExtrudeError::Options(format!(
            "depth must be a positive number (got {})",
            opts.depth
        )));
    }
    if !(opts.layer_gap.is_finite() && opts.layer_gap >= 0.0) {
        return Err(ExtrudeError::Options(format!(
            "layer gap must be zero or positive (got {})",
            opts.layer_gap
        )));
    }
    if !positive(opts.tolerance) {
        return Err(ExtrudeError::Options(format!(
            "tolerance must be a positive number (got {})",
            opts.tolerance
        )));
    }
    doc.validate().map_err(ExtrudeError::Document)?;

    let scale = 1.0 / doc.width.max(doc.height);
    // x' = s (x − w/2), y' = s (h/2 − y).
    let to_output = Affine::new([
        scale,
        0.0,
        0.0,
        -scale,
        -scale * doc.width / 2.0,
        scale * doc.height / 2.0,
    ]);
    let doc_tolerance = f64::from(opts.tolerance) / scale;
    let mut out = Extrusion::default();
    let mut layer = 0u32;
    let mut hidden = 0usize;
    let mut gradients = Vec::new();
    for (index, object) in doc.objects.iter().enumerate() {
        let mut part = MeshPart {
            name: if object.meta.name.trim().is_empty() {
                format!("object {}", index + 1)
            } else {
                object.meta.name.clone()
            },
            ..MeshPart::default()
        };
        let mut visible = 0usize;
        for entry in doc.shape_entries_of(object.meta.id).unwrap_or_default() {
            let shape = entry.shape;
            if entry.hidden {
                hidden += 1;
                continue;
            }
            visible += 1;
            let mut layers: Vec<(BezPath, lyon::tessellation::FillRule, &Paint)> = Vec::new();
            if let Some(fill) = &shape.fill {
                let rule = match shape.fill_rule {
                    FillRule::NonZero => lyon::tessellation::FillRule::NonZero,
                    FillRule::EvenOdd => lyon::tessellation::FillRule::EvenOdd,
                };
                layers.push((shape.to_bezpath(), rule, fill));
            }
            if let Some(stroke) = &shape.stroke
                && stroke.width > 0.0
            {
                let outline = stroke_outline(shape, stroke, doc_tolerance, &mut out.notes);
                layers.push((
                    outline,
                    lyon::tessellation::FillRule::NonZero,
                    &stroke.paint,
                ));
            }
            for (path, rule, paint) in layers {
                let color = paint.mean_color();
                if color.a <= 0.0 {
                    continue;
                }
                if !matches!(paint, Paint::Solid(_)) {
                    gradients.push(format!("\"{}\" ({})", shape.meta.name, color.to_hex()));
                }
                let path = to_output * path;
                let Some(triangles) = tessellate(&path, rule, opts.tolerance) else {
                    out.notes.push(format!(
                        "shape \"{}\" of \"{}\" skipped: lyon could not tessellate it",
                        shape.meta.name, part.name
                    ));
                    continue;
                };
                if triangles.is_empty() {
                    continue;
                }
                let back = opts.layer_gap * layer as f32;
                let linear = [
                    srgb_to_linear(color.r),
                    srgb_to_linear(color.g),
                    srgb_to_linear(color.b),
                    color.a.clamp(0.0, 1.0),
                ];
                add_slab(&mut part, &triangles, back, back + opts.depth, linear);
                layer += 1;
            }
        }
        if part.indices.is_empty() {
            if visible > 0 {
                out.notes.push(format!(
                    "object \"{}\" has no visible area: no part",
                    part.name
                ));
            }
        } else {
            out.mesh.parts.push(part);
        }
    }
    if !gradients.is_empty() {
        out.notes.push(format!(
            "{} gradient paint(s) replaced by their mean colour: {}",
            gradients.len(),
            gradients.join(", ")
        ));
    }
    if hidden > 0 {
        out.notes.push(format!("{hidden} hidden shape(s) skipped"));
    }
    if doc.background.a > 0.0 {
        out.notes.push(format!(
            "the background colour {} is not extruded",
            doc.background.to_hex()
        ));
    }
    Ok(out)
}

/// The filled outline of `shape`'s stroke (document units), from kurbo's stroke expansion.
fn stroke_outline(
    shape: &Shape,
    stroke: &Stroke,
    tolerance: f64,
    notes: &mut Vec<String>,
) -> BezPath {
    let cap = match stroke.cap {
        LineCap::Butt => kurbo::Cap::Butt,
        LineCap::Round => kurbo::Cap::Round,
        LineCap::Square => kurbo::Cap::Square,
    };
    let join = match stroke.join {
        LineJoin::Miter => kurbo::Join::Miter,
        LineJoin::Round => kurbo::Join::Round,
        LineJoin::Bevel => kurbo::Join::Bevel,
    };
    let mut style = kurbo::Stroke::new(stroke.width)
        .with_caps(cap)
        .with_join(join)
        .with_miter_limit(stroke.miter_limit.max(1.0));
    let path = shape.to_bezpath();
    let pattern: f64 = stroke.dash_array.iter().sum();
    if !stroke.dash_array.is_empty() && stroke.dash_array.iter().all(|&d| d >= 0.0) && pattern > 0.0
    {
        // SVG repeats an odd-length pattern twice.
        let mut dashes = stroke.dash_array.clone();
        if dashes.len() % 2 == 1 {
            dashes.extend_from_within(..);
        }
        let cycle: f64 = dashes.iter().sum();
        let count = path.perimeter(tolerance) / cycle * (dashes.len() / 2) as f64;
        if count <= MAX_DASHES {
            style = style.with_dashes(stroke.dash_offset, dashes);
        } else {
            notes.push(format!(
                "shape \"{}\": dash pattern too fine for its length, stroked solid",
                shape.meta.name
            ));
        }
    }
    kurbo::stroke(
        path.iter(),
        &style,
        &kurbo::StrokeOpts::default(),
        tolerance,
    )
}

/// Triangles (counter-clockwise, deduplicated vertices) covering `path`'s fill, or `None` when
/// lyon fails. An empty list when the area is empty.
fn tessellate(
    path: &BezPath,
    rule: lyon::tessellation::FillRule,
    tolerance: f32,
) -> Option<Triangles> {
    use lyon::math::point;
    let mut builder = lyon::path::Path::builder();
    let mut open = false;
    let p = |pt: kurbo::Point| point(pt.x as f32, pt.y as f32);
    for el in path.elements() {
        match *el {
            PathEl::MoveTo(a) => {
                if open {
                    builder.end(true);
                }
                builder.begin(p(a));
                open = true;
            }
            PathEl::LineTo(a) | PathEl::QuadTo(_, a) | PathEl::CurveTo(_, _, a) if !open => {
                builder.begin(p(a));
                open = true;
            }
            PathEl::LineTo(a) => {
                builder.line_to(p(a));
            }
            PathEl::QuadTo(c, a) => {
                builder.quadratic_bezier_to(p(c), p(a));
            }
            PathEl::CurveTo(c1, c2, a) => {
                builder.cubic_bezier_to(p(c1), p(c2), p(a));
            }
            PathEl::ClosePath => {
                if open {
                    builder.end(true);
                    open = false;
                }
            }
        }
    }
    if open {
        builder.end(true);
    }
    let lyon_path = builder.build();
    let mut buffers: VertexBuffers<[f32; 2], u32> = VertexBuffers::new();
    let options = FillOptions::tolerance(tolerance).with_fill_rule(rule);
    // lyon returns errors for the inputs it cannot handle; the unwind guard is a second line of
    // defence so a document can never crash an export.
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        FillTessellator::new()
            .tessellate_path(
                &lyon_path,
                &options,
                &mut BuffersBuilder::new(&mut buffers, |v: FillVertex| v.position().to_array()),
            )
            .is_ok()
    }))
    .unwrap_or(false);
    ok.then(|| Triangles::new(&buffers.vertices, &buffers.indices))
}

/// A planar triangulation with shared vertices, every triangle counter-clockwise.
#[derive(Debug, Default)]
struct Triangles {
    vertices: Vec<[f32; 2]>,
    triangles: Vec<[u32; 3]>,
}

impl Triangles {
    fn new(vertices: &[[f32; 2]], indices: &[u32]) -> Self {
        let mut out = Triangles::default();
        let mut ids: HashMap<[u32; 2], u32> = HashMap::new();
        let mut remap = Vec::with_capacity(vertices.len());
        for v in vertices {
            let key = v.map(|c| if c == 0.0 { 0 } else { c.to_bits() });
            let id = *ids.entry(key).or_insert_with(|| {
                out.vertices.push(*v);
                (out.vertices.len() - 1) as u32
            });
            remap.push(id);
        }
        for t in indices.chunks_exact(3) {
            let Some(mut t) = t
                .iter()
                .map(|&i| remap.get(i as usize).copied())
                .collect::<Option<Vec<u32>>>()
            else {
                continue;
            };
            let [a, b, c] = [0, 1, 2].map(|k| out.vertices[t[k] as usize].map(f64::from));
            let area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
            if area == 0.0 || t[0] == t[1] || t[1] == t[2] || t[0] == t[2] {
                continue;
            }
            if area < 0.0 {
                t.swap(1, 2);
            }
            out.triangles.push([t[0], t[1], t[2]]);
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.triangles.is_empty()
    }

    /// The directed edges used by exactly one triangle (the region's boundary, interior on the
    /// left), in a deterministic order.
    fn boundary(&self) -> Vec<(u32, u32)> {
        let mut count: HashMap<(u32, u32), i32> = HashMap::new();
        for t in &self.triangles {
            for (a, b) in [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])] {
                match count.get_mut(&(b, a)) {
                    Some(n) if *n > 0 => *n -= 1,
                    _ => *count.entry((a, b)).or_insert(0) += 1,
                }
            }
        }
        let mut edges: Vec<(u32, u32)> = count
            .into_iter()
            .flat_map(|(e, n)| std::iter::repeat_n(e, n.max(0) as usize))
            .collect();
        edges.sort_unstable();
        edges
    }
}

/// Appends the slab `z ∈ [back, front]` over `tri` to `part`: caps and outward walls, flat
/// shaded, all in `color`.
fn add_slab(part: &mut MeshPart, tri: &Triangles, back: f32, front: f32, color: [f32; 4]) {
    let push = |part: &mut MeshPart, p: [f32; 3], n: [f32; 3]| {
        part.positions.push(p);
        part.normals.push(n);
        part.colors.push(color);
        (part.positions.len() - 1) as u32
    };
    for (z, normal, flip) in [
        (front, [0.0, 0.0, 1.0], false),
        (back, [0.0, 0.0, -1.0], true),
    ] {
        let base = part.positions.len() as u32;
        for v in &tri.vertices {
            push(part, [v[0], v[1], z], normal);
        }
        for t in &tri.triangles {
            let t = if flip { [t[0], t[2], t[1]] } else { *t };
            part.indices.extend(t.map(|i| base + i));
        }
    }
    for (a, b) in tri.boundary() {
        let (pa, pb) = (tri.vertices[a as usize], tri.vertices[b as usize]);
        let (dx, dy) = (pb[0] - pa[0], pb[1] - pa[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if len == 0.0 || !len.is_finite() {
            continue;
        }
        // Interior on the left of a→b: the outward normal is the edge turned clockwise.
        let n = [dy / len, -dx / len, 0.0];
        let ab = push(part, [pa[0], pa[1], back], n);
        let bb = push(part, [pb[0], pb[1], back], n);
        let bf = push(part, [pb[0], pb[1], front], n);
        let af = push(part, [pa[0], pa[1], front], n);
        part.indices.extend([ab, bb, bf, ab, bf, af]);
    }
}

/// sRGB transfer function inverse (IEC 61966-2-1): an sRGB channel in `[0, 1]` to linear.
pub fn srgb_to_linear(c: f32) -> f32 {
    let c = c.clamp(0.0, 1.0);
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_endpoints_and_mid_grey() {
        assert_eq!(srgb_to_linear(0.0), 0.0);
        assert!((srgb_to_linear(1.0) - 1.0).abs() < 1e-6);
        assert!((srgb_to_linear(0.5) - 0.2140).abs() < 1e-3);
    }

    #[test]
    fn options_are_checked() {
        let doc = Document::new(10.0, 10.0);
        for bad in [
            ExtrudeOptions {
                depth: 0.0,
                ..Default::default()
            },
            ExtrudeOptions {
                layer_gap: -1.0,
                ..Default::default()
            },
            ExtrudeOptions {
                tolerance: f32::NAN,
                ..Default::default()
            },
        ] {
            assert!(matches!(
                extrude_document(&doc, &bad),
                Err(ExtrudeError::Options(_))
            ));
        }
        assert!(
            extrude_document(&doc, &ExtrudeOptions::default())
                .unwrap()
                .mesh
                .parts
                .is_empty()
        );
    }

    #[test]
    fn boundary_of_two_triangles_is_the_square() {
        let t = Triangles::new(
            &[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]],
            &[0, 1, 2, 0, 4, 3],
        );
        assert_eq!(t.vertices.len(), 4, "duplicate vertex merged");
        assert_eq!(t.boundary(), vec![(0, 1), (1, 2), (2, 3), (3, 0)]);
    }
}
