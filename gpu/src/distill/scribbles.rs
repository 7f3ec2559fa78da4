//! CLIPDraw's start: random primitives of the style over a white canvas, for guidances with no
//! sampler to vectorise (`--method clipdraw` alone). Strokes for the stroked styles (short random
//! cubics, as CLIPDraw starts), triangles for low-poly, small jittered blobs for the filled styles,
//! the cell grid for pixel art.

use kurbo::Point;
use vecdream_core::paint::Paint;
use vecdream_core::{
    Document, FillRule, LineCap, LineJoin, NodeMeta, Object, ObjectChild, PrimitiveKind, Rgba,
    Shape, Stroke, Style, Subpath,
};

use super::grid_document;
use crate::rng::Rng;

/// A `size × size` document with `paths` random primitives of `style` in one object named
/// "scribbles" (pixel art: the `√paths × √paths` cell grid), reproducible from `seed`.
pub fn scribble_document(style: Style, paths: usize, size: f64, seed: u64) -> Document {
    let paths = paths.max(1);
    if style == Style::PixelArt {
        let cells = ((paths as f64).sqrt().floor() as usize).max(1);
        return grid_document(cells, size);
    }
    let mut rng = Rng::new(seed);
    let mut doc = Document::new(size, size);
    doc.background = Rgba::WHITE;
    let clamp = |v: f64| v.clamp(0.0, size);
    let colour = |rng: &mut Rng, alpha: f64| {
        Rgba::new(
            rng.uniform() as f32,
            rng.uniform() as f32,
            rng.uniform() as f32,
            alpha as f32,
        )
    };
    let mut children = Vec::with_capacity(paths);
    for k in 0..paths {
        let (cx, cy) = (rng.uniform() * size, rng.uniform() * size);
        let id = doc.alloc_id();
        let shape = if style.is_stroked() {
            // CLIPDraw: one cubic whose points each move up to a tenth of the canvas from the last.
            let mut points = vec![Point::new(cx, cy)];
            for _ in 0..3 {
                let last = points[points.len() - 1];
                points.push(Point::new(
                    clamp(last.x + (rng.uniform() - 0.5) * 0.2 * size),
                    clamp(last.y + (rng.uniform() - 0.5) * 0.2 * size),
                ));
            }
            let color = if style == Style::Painting {
                colour(&mut rng, 0.9)
            } else {
                Rgba::new(0.0, 0.0, 0.0, 1.0)
            };
            let width = size * if style == Style::Sketch { 1.5 } else { 2.5 } / 256.0;
            Shape {
                meta: NodeMeta::new(id, format!("stroke {}", k + 1)),
                kind: PrimitiveKind::OpenPath,
                subpaths: vec![Subpath {
                    points,
                    closed: false,
                }],
                fill: None,
                fill_rule: FillRule::NonZero,
                stroke: Some(Stroke {
                    cap: LineCap::Round,
                    join: LineJoin::Round,
                    ..Stroke::solid(color, width)
                }),
            }
        } else if style == Style::LowPoly {
            let r = size * (0.04 + 0.08 * rng.uniform());
            let mut angles: Vec<f64> = (0..3)
                .map(|_| rng.uniform() * std::f64::consts::TAU)
                .collect();
            angles.sort_by(f64::total_cmp);
            let points = angles
                .iter()
                .map(|a| Point::new(clamp(cx + r * a.cos()), clamp(cy + r * a.sin())))
                .collect();
            Shape {
                meta: NodeMeta::new(id, format!("facet {}", k + 1)),
                kind: PrimitiveKind::Polygon,
                subpaths: vec![Subpath {
                    points,
                    closed: true,
                }],
                fill: Some(Paint::Solid(colour(&mut rng, 1.0))),
                fill_rule: FillRule::NonZero,
                stroke: None,
            }
        } else {
            // A circle as 4 cubics with every point jittered by up to a fifth of the radius.
            let r = size * (0.03 + 0.07 * rng.uniform());
            let h = 0.552_284_75 * r;
            let offsets = [
                (r, 0.0),
                (r, h),
                (h, r),
                (0.0, r),
                (-h, r),
                (-r, h),
                (-r, 0.0),
                (-r, -h),
                (-h, -r),
                (0.0, -r),
                (h, -r),
                (r, -h),
            ];
            let points = offsets
                .iter()
                .map(|(dx, dy)| {
                    Point::new(
                        clamp(cx + dx + (rng.uniform() - 0.5) * 0.4 * r),
                        clamp(cy + dy + (rng.uniform() - 0.5) * 0.4 * r),
                    )
                })
                .collect();
            Shape {
                meta: NodeMeta::new(id, format!("blob {}", k + 1)),
                kind: PrimitiveKind::ClosedPath,
                subpaths: vec![Subpath {
                    points,
                    closed: true,
                }],
                fill: Some(Paint::Solid(colour(&mut rng, 1.0))),
                fill_rule: FillRule::NonZero,
                stroke: None,
            }
        };
        children.push(ObjectChild::Shape(shape));
    }
    let id = doc.alloc_id();
    doc.objects.push(Object {
        meta: NodeMeta::new(id, "scribbles"),
        children,
    });
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scribbles_follow_the_style_and_the_seed() {
        for style in [
            Style::Iconography,
            Style::Sketch,
            Style::Ink,
            Style::Painting,
            Style::LowPoly,
            Style::PixelArt,
        ] {
            let doc = scribble_document(style, 36, 224.0, 3);
            assert_eq!(doc, scribble_document(style, 36, 224.0, 3), "{style:?}");
            // The pixel-art grid is the same for every seed; everything else is random.
            if style != Style::PixelArt {
                assert_ne!(doc, scribble_document(style, 36, 224.0, 4), "{style:?}");
            }
            let shapes: Vec<&Shape> = doc.objects.iter().flat_map(|o| o.shapes()).collect();
            assert_eq!(shapes.len(), 36, "{style:?}");
            for s in &shapes {
                assert!(
                    s.subpaths.iter().all(|p| p.is_well_formed(s.kind)),
                    "{style:?}"
                );
                assert_eq!(s.stroke.is_some(), style.is_stroked(), "{style:?}");
                let in_canvas = s.subpaths.iter().flat_map(|p| &p.points).all(|p| {
                    (0.0..=224.0 + 1e-9).contains(&p.x) && (0.0..=224.0 + 1e-9).contains(&p.y)
                });
                assert!(in_canvas, "{style:?}");
            }
        }
    }
}
