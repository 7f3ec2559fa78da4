//! Initial strokes for the stroked styles (sketch, ink & wash, painting): start points drawn
//! from a weight map (the ink of the style's target, times an attention map when there is one),
//! each stroke a streamline of the picture's edge directions (perpendicular to the luminance
//! gradient), so strokes start along the contours they will draw.

use kurbo::Point;
use vecdream_core::paint::Paint;
use vecdream_core::{
    FillRule, LineCap, LineJoin, NodeId, NodeMeta, PrimitiveKind, Rgba, Shape, Stroke, Style,
    StylePreset, Subpath,
};

use super::target::{RgbImage, sobel};
use crate::rng::Rng;

/// Where and how strokes start.
#[derive(Debug)]
pub struct StrokePlan<'a> {
    /// The style's target picture (what the strokes will draw).
    pub target: &'a RgbImage,
    /// The colour picture (painting takes its stroke colours here).
    pub colors: &'a RgbImage,
    /// Start-point weight per pixel (`None`: the target's ink).
    pub weight: Option<&'a [f32]>,
    /// The preset (segments, width, colour rule).
    pub preset: &'a StylePreset,
    /// Strokes to place.
    pub count: usize,
    /// Document units per pixel.
    pub unit: f64,
}

/// Places `plan.count` strokes; shape ids are placeholders (`NodeId(0)`), names "stroke k".
pub fn place_strokes(plan: &StrokePlan, rng: &mut Rng) -> Vec<Shape> {
    let t = plan.target;
    let (w, h) = (t.width, t.height);
    let lum = t.luminance();
    let ink: Vec<f32> = lum.iter().map(|l| (1.0 - l).max(0.0)).collect();
    let (gx, gy) = sobel(&t.luminance(), w, h);
    let painting = plan.preset.style == Style::Painting;
    let weight: Vec<f64> = match plan.weight {
        Some(wm) => wm
            .iter()
            .zip(&ink)
            .map(|(&a, &k)| f64::from(a) * (0.2 + f64::from(k)))
            .collect(),
        None if painting => {
            // Cover what is not plain white, with extra strokes along edges.
            ink.iter()
                .zip(gx.iter().zip(&gy))
                .map(|(&k, (&x, &y))| {
                    let visible = if k > 0.02 { 1.0 } else { 0.05 };
                    visible + 4.0 * f64::from(x.hypot(y))
                })
                .collect()
        }
        None => ink.iter().map(|&k| f64::from(k).powi(2) + 1e-4).collect(),
    };
    let total: f64 = weight.iter().sum();
    let mut cdf = Vec::with_capacity(weight.len());
    let mut acc = 0.0;
    for v in &weight {
        acc += v / total.max(1e-12);
        cdf.push(acc);
    }
    let canvas_px = w.max(h) as f64;
    // Stroke length: sketch and ink long pen lines, painting short dabs, shorter when many.
    let length = match plan.preset.style {
        Style::Painting => canvas_px * (0.9 / (plan.count as f64).sqrt()).clamp(0.04, 0.12),
        _ => canvas_px * (1.1 / (plan.count as f64).sqrt()).clamp(0.08, 0.2),
    };
    let [width, _, _] = plan.preset.widths_for(canvas_px * plan.unit);
    let segments = plan.preset.segments_per_stroke.max(1);
    let n_pts = 3 * segments + 1;
    let dir_at = |x: f64, y: f64| -> Option<(f64, f64)> {
        let (xi, yi) = (
            (x.floor() as isize).clamp(0, w as isize - 1) as usize,
            (y.floor() as isize).clamp(0, h as isize - 1) as usize,
        );
        let i = yi * w + xi;
        let (a, b) = (f64::from(gx[i]), f64::from(gy[i]));
        let m = a.hypot(b);
        (m > 1e-3).then(|| (-b / m, a / m))
    };
    let mut shapes = Vec::with_capacity(plan.count);
    for k in 0..plan.count {
        let u = rng.uniform();
        let i = cdf.partition_point(|&c| c < u).min(w * h - 1);
        let mut p = (
            (i % w) as f64 + rng.uniform(),
            (i / w) as f64 + rng.uniform(),
        );
        let a0 = rng.uniform() * std::f64::consts::TAU;
        let mut d = dir_at(p.0, p.1).unwrap_or((a0.cos(), a0.sin()));
        let step = length / (n_pts - 1) as f64;
        // Start half a stroke back so the stroke is centred on its start pixel.
        let mut back = p;
        for _ in 0..(n_pts - 1) / 2 {
            let nd = dir_at(back.0, back.1).map_or(d, |e| {
                if e.0 * d.0 + e.1 * d.1 < 0.0 {
                    (-e.0, -e.1)
                } else {
                    e
                }
            });
            back = (
                (back.0 - nd.0 * step).clamp(0.0, w as f64),
                (back.1 - nd.1 * step).clamp(0.0, h as f64),
            );
        }
        p = back;
        let mut pts = Vec::with_capacity(n_pts);
        let mut col = [0f32; 3];
        for _ in 0..n_pts {
            pts.push(Point::new(p.0 * plan.unit, p.1 * plan.unit));
            let (xi, yi) = ((p.0 as usize).min(w - 1), (p.1 as usize).min(h - 1));
            let c = plan.colors.pixels[yi * w + xi];
            for j in 0..3 {
                col[j] += c[j] / n_pts as f32;
            }
            let wobble = (rng.uniform() - 0.5) * 0.3;
            let e = dir_at(p.0, p.1).map_or(d, |e| {
                if e.0 * d.0 + e.1 * d.1 < 0.0 {
                    (-e.0, -e.1)
                } else {
                    e
                }
            });
            let (c, s) = (wobble.cos(), wobble.sin());
            d = (0.5 * (d.0 + e.0), 0.5 * (d.1 + e.1));
            let m = d.0.hypot(d.1).max(1e-9);
            d = ((d.0 * c - d.1 * s) / m, (d.0 * s + d.1 * c) / m);
            p = (
                (p.0 + d.0 * step).clamp(0.0, w as f64),
                (p.1 + d.1 * step).clamp(0.0, h as f64),
            );
        }
        let color = match plan.preset.color {
            vecdream_core::style::ColorRule::Black => Rgba::new(
                0.0,
                0.0,
                0.0,
                if plan.preset.trained.stroke { 0.8 } else { 1.0 },
            ),
            vecdream_core::style::ColorRule::Free => {
                // Each stroke a little lighter or darker and warmer or cooler than the picture.
                let shade = 1.0 + (rng.uniform() as f32 - 0.5) * 0.16;
                let warm = (rng.uniform() as f32 - 0.5) * 0.06;
                Rgba::new(
                    (col[0] * shade + warm).clamp(0.0, 1.0),
                    (col[1] * shade).clamp(0.0, 1.0),
                    (col[2] * shade - warm).clamp(0.0, 1.0),
                    0.9,
                )
            }
        };
        shapes.push(Shape {
            meta: NodeMeta::new(NodeId(0), format!("stroke {}", k + 1)),
            kind: PrimitiveKind::OpenPath,
            subpaths: vec![Subpath {
                points: pts,
                closed: false,
            }],
            fill: None,
            fill_rule: FillRule::NonZero,
            stroke: Some(Stroke {
                paint: Paint::Solid(color),
                cap: LineCap::Round,
                join: LineJoin::Round,
                ..Stroke::solid(color, width)
            }),
        });
    }
    shapes
}
