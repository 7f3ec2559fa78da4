//! Scenes and checks shared by the rasteriser tests (`raster.rs`, the tensor path, and
//! `raster_native.rs`, the native kernel against it).
#![allow(dead_code)] // each test file uses its own subset

use tch::{Device, Kind, Tensor};
use vecdream_core::params::{FillRule, PrimitiveKind};
use vecdream_gpu::raster::{RasterOptions, Scene, SceneParams, ShapeTopology};

/// A filled shape with one subpath over `range`.
pub fn shape(kind: PrimitiveKind, range: std::ops::Range<usize>, closed: bool) -> ShapeTopology {
    ShapeTopology {
        kind,
        subpaths: vec![(range, closed)],
        fill_rule: FillRule::NonZero,
        has_fill: true,
        has_stroke: false,
        locked: false,
        hidden: false,
    }
}

/// `s` stroked, filled or not.
pub fn stroked(mut s: ShapeTopology, fill: bool) -> ShapeTopology {
    s.has_stroke = true;
    s.has_fill = fill;
    s
}

/// One particle's parameters.
pub fn params(
    points: &[[f32; 2]],
    fill: &[[f32; 4]],
    stroke: &[[f32; 4]],
    width: &[f32],
    bg: [f32; 4],
) -> SceneParams {
    let n = fill.len() as i64;
    let flat = |v: &[[f32; 4]]| v.iter().flatten().copied().collect::<Vec<f32>>();
    let pts: Vec<f32> = points.iter().flatten().copied().collect();
    SceneParams {
        points: Tensor::from_slice(&pts).view([1, points.len() as i64, 2]),
        fill: Tensor::from_slice(&flat(fill)).view([1, n, 4]),
        stroke: Tensor::from_slice(&flat(stroke)).view([1, n, 4]),
        stroke_width: Tensor::from_slice(width).view([1, n]),
        background: Tensor::from_slice(&bg).view([1, 4]),
        fill_gradient: None,
    }
}

/// A circle of radius r around (cx, cy) as a closed 4-segment cubic (12 points).
pub fn circle(cx: f32, cy: f32, r: f32) -> Vec<[f32; 2]> {
    let k = 0.552_284_8 * r;
    vec![
        [cx + r, cy],
        [cx + r, cy + k],
        [cx + k, cy + r],
        [cx, cy + r],
        [cx - k, cy + r],
        [cx - r, cy + k],
        [cx - r, cy],
        [cx - r, cy - k],
        [cx - k, cy - r],
        [cx, cy - r],
        [cx + k, cy - r],
        [cx + r, cy - k],
    ]
}

/// An axis-aligned rectangle as 4 polygon points.
pub fn rect(x0: f32, y0: f32, x1: f32, y1: f32) -> Vec<[f32; 2]> {
    vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
}

/// A small scene with every primitive: a cubic blob, an open stroked cubic, a stroked and
/// filled triangle, semi-transparent colours, a translucent background (32 × 32).
pub fn mixed_scene() -> (Scene, SceneParams) {
    let mut pts = circle(12.0, 13.0, 7.3);
    pts.extend([[4.2, 26.1], [11.0, 18.3], [19.7, 30.2], [27.4, 21.6]]);
    pts.extend([[18.3, 3.1], [29.2, 8.7], [21.4, 16.2]]);
    let line = stroked(shape(PrimitiveKind::OpenPath, 12..16, false), false);
    let tri = stroked(shape(PrimitiveKind::Polygon, 16..19, true), true);
    let scene = Scene::new(
        [32.0, 32.0],
        19,
        vec![shape(PrimitiveKind::ClosedPath, 0..12, true), line, tri],
    )
    .unwrap();
    let p = params(
        &pts,
        &[[0.8, 0.2, 0.1, 0.7], [0.0; 4], [0.1, 0.5, 0.9, 0.6]],
        &[[0.0; 4], [0.2, 0.7, 0.3, 0.8], [0.4, 0.3, 0.2, 0.9]],
        &[0.0, 3.3, 1.7],
        [0.9, 0.95, 0.85, 0.9],
    );
    (scene, p)
}

/// Linear-gradient fills for [`mixed_scene`]: colour changes (alpha included) and axes that
/// start and end inside the shapes, so both the ramp and the padded ends are hit.
pub fn gradient_fills(p: &mut SceneParams) {
    let g: Vec<f32> = vec![
        0.3, -0.3, 0.1, -0.2, 6.0, 8.0, 20.0, 14.0, // shape 0
        -0.5, 0.5, 0.1, 0.0, 24.0, 4.0, 18.0, 26.0, // shape 1
        0.3, 0.3, -0.6, 0.1, 2.0, 30.0, 30.0, 2.0, // shape 2
    ];
    p.fill_gradient = Some(Tensor::from_slice(&g).view([1, 3, 8]));
}

/// Options whose piece counts cannot change under tiny perturbations (8 per cubic, 1 per
/// line), so the loss is a continuous function of the parameters for finite differences.
pub fn fixed_pieces() -> RasterOptions {
    RasterOptions {
        flatten_tolerance_px: 1e-3,
        max_pieces_per_cubic: 8,
        line_piece_px: 1e3,
    }
}

/// The seeded per-pixel colour weights of the finite-difference loss
/// `Σ rgb · W + Σ alpha` on a 32 × 32 render.
pub fn fd_weights() -> Tensor {
    vecdream_gpu::rng::Rng::new(7)
        .uniform_tensor(&[1, 3, 32, 32], Device::Cpu)
        .to_kind(Kind::Double)
}

/// `Σ rgb · W + Σ alpha` in float64.
pub fn fd_loss(rgb: &Tensor, alpha: &Tensor, weights: &Tensor) -> Tensor {
    (rgb.to_kind(Kind::Double) * weights).sum(Kind::Double)
        + alpha.to_kind(Kind::Double).sum(Kind::Double)
}

/// Which tensor of [`SceneParams`] a finite-difference check perturbs.
pub type Field = fn(&SceneParams) -> &Tensor;

/// Compares `grad(name, field)` (the gradient under test, flattened) against central differences
/// of `loss_of` around `base` for each `(name, field, skip zero pairs)`.
///
/// Step `eps` = 1e-3 (document units = pixels here). The loss is a sum of float32 pixels
/// (rounding ≈ 1e-6 absolute, i.e. ≈ 5e-4 after dividing by 2·eps), and coverage is piecewise
/// linear in the distance, so a pixel whose ramp ends within ±eps of the current position bends
/// the difference quotient: entries are compared with a tolerance of 2 % of the largest gradient
/// plus 5 % of their own size, and the whole vector must agree to 1 % (relative L2).
pub fn assert_matches_central_differences(
    base: &SceneParams,
    fields: &[(&str, Field, bool)],
    loss_of: &dyn Fn(&SceneParams) -> f64,
    grad: &dyn Fn(&str, Field) -> Vec<f64>,
) {
    let eps = 1e-3;
    for &(name, field, skip_zero) in fields {
        let g = grad(name, field);
        let mut fd = vec![0f64; g.len()];
        for (i, slot) in fd.iter_mut().enumerate() {
            let pert = |sign: f64| {
                // A copy of every tensor (gradient fills included): the base is never touched.
                let p = base.particle(0);
                let t = field(&p).shallow_clone();
                let flat = t.view([-1]);
                let v = flat.double_value(&[i as i64]);
                let _ = flat.get(i as i64).fill_(v + sign * eps);
                loss_of(&p)
            };
            *slot = (pert(1.0) - pert(-1.0)) / (2.0 * eps);
        }
        let gmax = g.iter().fold(0f64, |m, v| m.max(v.abs()));
        let (mut num, mut den) = (0.0, 0.0);
        for (i, (&gi, &fdi)) in g.iter().zip(&fd).enumerate() {
            if skip_zero && gi == 0.0 && fdi == 0.0 {
                continue;
            }
            assert!(
                (fdi - gi).abs() <= 0.02 * gmax + 0.05 * gi.abs(),
                "{name}[{i}]: gradient {gi} vs central difference {fdi}"
            );
            num += (fdi - gi).powi(2);
            den += gi.powi(2);
        }
        let rel = (num / den.max(1e-30)).sqrt();
        assert!(rel < 1e-2, "{name}: relative L2 error {rel}");
        assert!(gmax > 0.0, "{name}: no gradient at all");
        eprintln!("{name}: max |grad| {gmax:.4}, relative L2 error {rel:.2e}");
    }
}

/// A parameter tensor filled with `v` (through a shallow clone, so the caller's handle stays).
fn set(t: &Tensor, v: f64) {
    let _ = t.shallow_clone().fill_(v);
}

/// Spoils particle 0 of [`mixed_scene`]'s parameters in place.
pub type Mutation = Box<dyn Fn(&SceneParams)>;

/// Bad input for [`mixed_scene`]: NaN / ±Inf / huge points, NaN and out-of-range colours, bad
/// widths, zero-area paths, degenerate segments, a NaN background. Each renders to finite values.
pub fn bad_inputs() -> Vec<(&'static str, Mutation)> {
    vec![
        (
            "NaN point",
            Box::new(|p| {
                let _ = p.points.get(0).get(3).get(0).fill_(f64::NAN);
            }),
        ),
        (
            "Inf point",
            Box::new(|p| {
                let _ = p.points.get(0).get(13).get(1).fill_(f64::INFINITY);
            }),
        ),
        (
            "-Inf point",
            Box::new(|p| {
                let _ = p.points.get(0).get(17).get(0).fill_(f64::NEG_INFINITY);
            }),
        ),
        (
            "huge point",
            Box::new(|p| {
                let _ = p.points.get(0).get(5).fill_(1e30);
            }),
        ),
        (
            "NaN colours",
            Box::new(|p| {
                set(&p.fill, f64::NAN);
                let _ = p.stroke.get(0).get(1).fill_(f64::NAN);
            }),
        ),
        (
            "out-of-range colours",
            Box::new(|p| {
                let _ = p.fill.get(0).get(0).get(3).fill_(1.7);
                let _ = p.stroke.get(0).get(2).get(0).fill_(-0.4);
            }),
        ),
        (
            "NaN/Inf width",
            Box::new(|p| {
                let _ = p.stroke_width.get(0).get(1).fill_(f64::NAN);
                let _ = p.stroke_width.get(0).get(2).fill_(f64::INFINITY);
            }),
        ),
        ("negative width", Box::new(|p| set(&p.stroke_width, -3.0))),
        (
            "zero-area path",
            Box::new(|p| {
                p.points.narrow(1, 0, 12).copy_(
                    &Tensor::from_slice(&[5.0f32, 5.0])
                        .view([1, 1, 2])
                        .expand([1, 12, 2], false),
                );
            }),
        ),
        (
            "degenerate segments",
            Box::new(|p| {
                p.points
                    .narrow(1, 13, 3)
                    .copy_(&p.points.narrow(1, 12, 1).expand([1, 3, 2], false));
            }),
        ),
        ("NaN background", Box::new(|p| set(&p.background, f64::NAN))),
    ]
}
