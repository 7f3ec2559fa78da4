//! The weight-free demo: a grid of vector squares distilled toward a few bundled images by the
//! reference teacher (VPSD, so the particles spread over the images).

use kurbo::Point;
use tch::Device;
use vecdream_core::paint::Paint;
use vecdream_core::{
    Document, FillRule, NodeMeta, Object, ObjectChild, PrimitiveKind, Rgba, Shape, Subpath,
};

use super::engine::DistillConfig;
use super::reference::{ReferenceConfig, ReferenceMode};
use super::worker::{GuidanceSpec, StartRequest};

/// A `size × size` document holding `cells × cells` grey squares (closed 4-segment cubics,
/// handles on the edges) in one object named "grid": an initial state that can take any picture.
pub fn demo_document(cells: usize, size: f64) -> Document {
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

/// A worker request for the demo: 4 particles of a 16×16 grid on a 64-unit canvas, reference VPSD
/// over `images` (straight RGBA8 `(width, height, pixels)`), 400 steps, rendered at 64 px.
pub fn demo_start_request(images: Vec<(u32, u32, Vec<u8>)>, device: Device) -> StartRequest {
    let config = DistillConfig {
        steps: 400,
        particles: 4,
        render_size: 64,
        ..DistillConfig::default()
    };
    let guidance = GuidanceSpec::Reference {
        images,
        config: ReferenceConfig {
            mode: ReferenceMode::Vpsd,
            ..ReferenceConfig::default()
        },
    };
    let mut req = StartRequest::new(demo_document(16, 64.0), config, guidance, device);
    req.snapshot_every = 100;
    req
}
