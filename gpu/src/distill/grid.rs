//! A grid of grey squares: the old start of every run, now the baseline that
//! `vecdream bench generate` measures vectorised starts against, and a small, regular test scene.

use kurbo::Point;
use vecdream_core::paint::Paint;
use vecdream_core::{
    Document, FillRule, NodeMeta, Object, ObjectChild, PrimitiveKind, Rgba, Shape, Subpath,
};

/// A `size × size` document holding `cells × cells` grey squares (closed 4-segment cubics,
/// handles on the edges) in one object named "grid".
pub fn grid_document(cells: usize, size: f64) -> Document {
    let mut doc = Document::new(size, size);
    doc.background = Rgba::WHITE;
    let cell = size / cells.max(1) as f64;
    let mut children = Vec::with_capacity(cells * cells);
    for row in 0..cells {
        for col in 0..cells {
            let (x0, y0) = (col as f64 * cell, row as f64 * cell);
            let (x1, y1) = (x0 + cell, y0 + cell);
            let corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)];
            let mut points = Vec::with_capacity(12);
            for k in 0..4 {
                let (ax, ay) = corners[k];
                let (bx, by) = corners[(k + 1) % 4];
                points.push(Point::new(ax, ay));
                points.push(Point::new(ax + (bx - ax) / 3.0, ay + (by - ay) / 3.0));
                points.push(Point::new(
                    ax + 2.0 * (bx - ax) / 3.0,
                    ay + 2.0 * (by - ay) / 3.0,
                ));
            }
            let id = doc.alloc_id();
            children.push(ObjectChild::Shape(Shape {
                meta: NodeMeta::new(id, format!("cell {row},{col}")),
                kind: PrimitiveKind::ClosedPath,
                subpaths: vec![Subpath {
                    points,
                    closed: true,
                }],
                fill: Some(Paint::Solid(Rgba::new(0.5, 0.5, 0.5, 1.0))),
                fill_rule: FillRule::NonZero,
                stroke: None,
            }));
        }
    }
    let id = doc.alloc_id();
    doc.objects.push(Object {
        meta: NodeMeta::new(id, "grid"),
        children,
    });
    doc
}
