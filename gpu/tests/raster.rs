//! Rasteriser tests on hand-built scenes (CPU): coverage, fill rules, compositing, finite
//! differences, batching, masks, bad input and an optimisation sanity check.

use tch::{Device, Kind, Tensor};
use vecdream_core::params::{FillRule, PrimitiveKind};
use vecdream_gpu::raster::{RasterOptions, Rendered, Scene, SceneParams, rasterize};

mod common;
use common::*;

fn render(scene: &Scene, p: &SceneParams, w: usize, h: usize) -> Rendered {
    rasterize(scene, p, w, h, &RasterOptions::default()).expect("render")
}

fn sum(t: &Tensor) -> f64 {
    t.sum(Kind::Double).double_value(&[])
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

#[test]
fn raster_square_area_and_values() {
    // Axis-aligned edges: the linear ramp of the signed distance is the exact box-filter
    // coverage, so only the 4 corner pixels can differ: there the nearest-edge ramp gives
    // 0.5 + d instead of (0.5 + dx)(0.5 + dy), at most 0.25 px² more per corner.
    let pts = rect(10.25, 10.25, 30.75, 20.5);
    let scene = Scene::new(
        [64.0, 64.0],
        4,
        vec![shape(PrimitiveKind::Polygon, 0..4, true)],
    )
    .unwrap();
    let p = params(&pts, &[[0.0, 0.0, 0.0, 1.0]], &[[0.0; 4]], &[0.0], [0.0; 4]);
    let out = render(&scene, &p, 64, 64);
    let area = 20.5 * 10.25;
    let got = sum(&out.alpha);
    assert!(
        got >= area - 1e-4 && got <= area + 1.0,
        "alpha sum {got}, area {area}"
    );
    let a = |x: i64, y: i64| out.alpha.double_value(&[0, 0, y, x]);
    assert_eq!(a(20, 15), 1.0, "interior pixel");
    assert_eq!(a(5, 5), 0.0, "outside pixel");
    assert!(
        (a(10, 15) - 0.75).abs() < 1e-5,
        "left edge pixel covers 3/4: {}",
        a(10, 15)
    );
    assert!(
        (a(30, 15) - 0.75).abs() < 1e-5,
        "right edge pixel covers 3/4: {}",
        a(30, 15)
    );
    assert!(
        (a(20, 20) - 0.5).abs() < 1e-5,
        "bottom edge pixel covers 1/2: {}",
        a(20, 20)
    );
}

#[test]
fn raster_circle_area() {
    // Area of a cubic circle (≈ π r² · 1.000 27 for the 0.5523 handle length); flattening
    // within 0.1 px loses at most perimeter · 0.1 · 2/3 px² ≈ 8 px² at r = 20 — allow 0.5 %.
    let scene = Scene::new(
        [64.0, 64.0],
        12,
        vec![shape(PrimitiveKind::ClosedPath, 0..12, true)],
    )
    .unwrap();
    let p = params(
        &circle(32.0, 31.5, 20.0),
        &[[1.0, 0.0, 0.0, 1.0]],
        &[[0.0; 4]],
        &[0.0],
        [0.0; 4],
    );
    let out = render(&scene, &p, 64, 64);
    let area = std::f64::consts::PI * 400.0;
    let got = sum(&out.alpha);
    assert!(
        (got / area - 1.0).abs() < 5e-3,
        "alpha sum {got}, area {area}"
    );
    // Premultiplied red.
    assert!(max_abs(&(out.rgb.select(1, 0) - out.alpha.select(1, 0))) < 1e-6);
    assert_eq!(sum(&out.rgb.select(1, 1)), 0.0);
}

#[test]
fn raster_fill_rules_with_holes() {
    // Two subpaths, same orientation: nonzero fills the inner square, evenodd cuts it out.
    let mut pts = rect(4.0, 4.0, 28.0, 28.0);
    pts.extend(rect(12.0, 12.0, 20.0, 20.0));
    let mut topo = shape(PrimitiveKind::Polygon, 0..4, true);
    topo.subpaths.push((4..8, true));
    let p = params(
        &pts,
        &[[0.0, 0.0, 1.0, 1.0]],
        &[[0.0; 4]],
        &[0.0],
        [1.0, 1.0, 1.0, 1.0],
    );
    let nonzero = render(
        &Scene::new([32.0, 32.0], 8, vec![topo.clone()]).unwrap(),
        &p,
        32,
        32,
    );
    topo.fill_rule = FillRule::EvenOdd;
    let evenodd = render(
        &Scene::new([32.0, 32.0], 8, vec![topo]).unwrap(),
        &p,
        32,
        32,
    );
    let blue = |r: &Rendered| sum(&(1.0 - r.rgb.select(1, 0)));
    assert!(
        (blue(&nonzero) - 576.0).abs() < 1e-3,
        "nonzero {}",
        blue(&nonzero)
    );
    assert!(
        (blue(&evenodd) - 512.0).abs() < 1e-3,
        "evenodd {}",
        blue(&evenodd)
    );
    assert_eq!(
        evenodd.rgb.double_value(&[0, 0, 16, 16]),
        1.0,
        "hole shows the background"
    );
    // An opaque fragment lets 1e-9 of what is below through (see ALPHA_EPS in render.rs).
    assert!(nonzero.rgb.double_value(&[0, 0, 16, 16]) < 1e-6);
}

#[test]
fn raster_stroke_area_round_caps() {
    // A straight open cubic of length 40 stroked with width 4: area 40·4 + π·2² (two
    // half-disc caps). The 1-D box overlap is exact along the sides; the caps' curved
    // boundary errs by well under 1 px² in total.
    let pts = vec![[10.0, 20.0], [20.0, 20.0], [40.0, 20.0], [50.0, 20.0]];
    let mut topo = shape(PrimitiveKind::OpenPath, 0..4, false);
    topo.has_fill = false;
    topo.has_stroke = true;
    let scene = Scene::new([64.0, 40.0], 4, vec![topo]).unwrap();
    let p = params(&pts, &[[0.0; 4]], &[[0.0, 0.0, 0.0, 1.0]], &[4.0], [0.0; 4]);
    let out = render(&scene, &p, 64, 40);
    let area = 160.0 + std::f64::consts::PI * 4.0;
    let got = sum(&out.alpha);
    assert!((got - area).abs() < 1.0, "alpha sum {got}, area {area}");
    // Thin strokes keep their width: width 0.5 covers ≈ 0.5 · length.
    let thin = params(&pts, &[[0.0; 4]], &[[0.0, 0.0, 0.0, 1.0]], &[0.5], [0.0; 4]);
    let got = sum(&render(&scene, &thin, 64, 40).alpha);
    assert!((got - 20.0).abs() < 1.0, "thin stroke alpha sum {got}");
}

#[test]
fn raster_over_compositing_in_paint_order() {
    // Two overlapping squares (pixel-aligned, so coverage is exactly 0 or 1), then a stroke
    // on top: the colour of an overlap pixel follows the "over" formula.
    let mut pts = rect(2.0, 2.0, 12.0, 12.0);
    pts.extend(rect(6.0, 6.0, 16.0, 16.0));
    let scene = Scene::new(
        [20.0, 20.0],
        8,
        vec![
            shape(PrimitiveKind::Polygon, 0..4, true),
            shape(PrimitiveKind::Polygon, 4..8, true),
        ],
    )
    .unwrap();
    let c0 = [1.0, 0.0, 0.0, 0.6];
    let c1 = [0.0, 0.5, 1.0, 0.7];
    let bg = [0.2, 0.3, 0.4, 0.5];
    let p = params(&pts, &[c0, c1], &[[0.0; 4]; 2], &[0.0; 2], bg);
    let out = render(&scene, &p, 20, 20);
    let alpha = 1.0 - (1.0 - bg[3]) * (1.0 - c0[3]) * (1.0 - c1[3]);
    for ch in 0..3 {
        let want =
            ((bg[ch] * bg[3]) * (1.0 - c0[3]) + c0[ch] * c0[3]) * (1.0 - c1[3]) + c1[ch] * c1[3];
        let got = out.rgb.double_value(&[0, ch as i64, 8, 8]);
        assert!(
            (got - f64::from(want)).abs() < 1e-6,
            "channel {ch}: {got} vs {want}"
        );
    }
    let got = out.alpha.double_value(&[0, 0, 8, 8]);
    assert!((got - f64::from(alpha)).abs() < 1e-6);
    // Swapping the paint order changes the overlap colour.
    let swapped = Scene::new(
        [20.0, 20.0],
        8,
        vec![
            shape(PrimitiveKind::Polygon, 4..8, true),
            shape(PrimitiveKind::Polygon, 0..4, true),
        ],
    )
    .unwrap();
    let p2 = params(&pts, &[c1, c0], &[[0.0; 4]; 2], &[0.0; 2], bg);
    let out2 = render(&swapped, &p2, 20, 20);
    assert!(
        (out2.rgb.double_value(&[0, 0, 8, 8]) - out.rgb.double_value(&[0, 0, 8, 8])).abs() > 0.1
    );
}

/// Autograd of the tensor path against central differences (see
/// [`common::assert_matches_central_differences`] for the step and tolerances).
fn check_finite_differences(scene: &Scene, base: &SceneParams, fields: &[(&str, Field, bool)]) {
    let opts = fixed_pieces();
    let weights = fd_weights();
    let loss = |p: &SceneParams| -> Tensor {
        let out = rasterize(scene, p, 32, 32, &opts).unwrap();
        fd_loss(&out.rgb, &out.alpha, &weights)
    };
    let leaves = base.to_leaves();
    loss(&leaves).backward();
    assert_matches_central_differences(
        base,
        fields,
        &|p| loss(p).double_value(&[]),
        &|_, field| {
            Vec::try_from(field(&leaves).grad().to_kind(Kind::Double).flatten(0, -1)).unwrap()
        },
    );
}

#[test]
fn raster_gradients_match_finite_differences() {
    let (scene, base) = mixed_scene();
    check_finite_differences(
        &scene,
        &base,
        &[
            ("points", |p| &p.points, false),
            ("fill", |p| &p.fill, false),
            ("stroke", |p| &p.stroke, false),
            ("stroke_width", |p| &p.stroke_width, true),
            ("background", |p| &p.background, false),
        ],
    );
}

#[test]
fn raster_gradient_fills_match_finite_differences() {
    // The same scene with linear-gradient fills: colour changes (alpha included) and axes
    // that start and end inside the shapes, so both the ramp and the padded ends are hit.
    let (scene, mut base) = mixed_scene();
    gradient_fills(&mut base);
    let with = rasterize(&scene, &base, 32, 32, &fixed_pieces()).unwrap();
    base.fill_gradient = None;
    let without = rasterize(&scene, &base, 32, 32, &fixed_pieces()).unwrap();
    assert!(
        max_abs(&(with.rgb - without.rgb)) > 0.1,
        "gradients change the picture"
    );
    gradient_fills(&mut base);
    check_finite_differences(
        &scene,
        &base,
        &[
            ("points", |p| &p.points, false),
            ("fill", |p| &p.fill, false),
            ("fill_gradient", |p| p.fill_gradient.as_ref().unwrap(), true),
        ],
    );
}

#[test]
fn raster_batch_equals_single_renders() {
    let (scene, base) = mixed_scene();
    let mut rng = vecdream_gpu::rng::Rng::new(3);
    let b = 3;
    let rep = |t: &Tensor| {
        let mut shape = t.size();
        shape[0] = b;
        t.expand(shape.as_slice(), false).contiguous()
    };
    let batch = SceneParams {
        points: rep(&base.points) + rng.normal_tensor(&[b, 19, 2], Device::Cpu),
        fill: (rep(&base.fill) + rng.uniform_tensor(&[b, 3, 4], Device::Cpu) * 0.2).clamp(0.0, 1.0),
        stroke: rep(&base.stroke),
        stroke_width: rep(&base.stroke_width) + rng.uniform_tensor(&[b, 3], Device::Cpu),
        background: rep(&base.background),
        fill_gradient: None,
    };
    let all = render(&scene, &batch, 32, 24);
    assert_eq!(all.rgb.size(), [b, 3, 24, 32]);
    assert_eq!(all.alpha.size(), [b, 1, 24, 32]);
    for i in 0..b {
        let one = render(&scene, &batch.particle(i as usize), 32, 24);
        // Identical per-element maths; only the float64 running sum of log-transmittance
        // starts from another offset (rounding ≈ 1e-12).
        let d = max_abs(&(one.rgb - all.rgb.narrow(0, i, 1)));
        assert!(d < 1e-5, "particle {i}: max difference {d}");
    }
    // The particles really differ.
    assert!(max_abs(&(all.rgb.get(0) - all.rgb.get(1))) > 0.1);
}

#[test]
fn raster_locked_get_no_gradient_hidden_not_drawn() {
    let (mut scene_shapes, base) = {
        let (s, p) = mixed_scene();
        (s.shapes().to_vec(), p)
    };
    scene_shapes[0].locked = true;
    scene_shapes[2].hidden = true;
    let scene = Scene::new([32.0, 32.0], 19, scene_shapes.clone()).unwrap();
    let p = base.to_leaves();
    let out = render(&scene, &p, 32, 32);
    out.rgb.sum(Kind::Float).backward();
    let pg = p.points.grad();
    assert_eq!(max_abs(&pg.narrow(1, 0, 12)), 0.0, "locked points");
    assert!(max_abs(&pg.narrow(1, 12, 4)) > 0.0, "free points");
    assert_eq!(max_abs(&pg.narrow(1, 16, 3)), 0.0, "hidden points");
    assert_eq!(max_abs(&p.fill.grad().get(0).get(0)), 0.0, "locked colour");
    // Locked is still drawn; hidden is not: same image as with the triangle removed.
    let mut no_tri = scene_shapes.clone();
    no_tri[2].has_fill = false;
    no_tri[2].has_stroke = false;
    no_tri[2].hidden = false;
    let reference = render(
        &Scene::new([32.0, 32.0], 19, no_tri).unwrap(),
        &base,
        32,
        32,
    );
    assert_eq!(max_abs(&(out.rgb.detach() - &reference.rgb)), 0.0);
    let mut unlocked = scene_shapes;
    unlocked[0].locked = false;
    let free = render(
        &Scene::new([32.0, 32.0], 19, unlocked).unwrap(),
        &base,
        32,
        32,
    );
    assert_eq!(max_abs(&(free.rgb - reference.rgb)), 0.0);
}

#[test]
fn raster_bad_input_stays_finite() {
    let (scene, base) = mixed_scene();
    let cases = bad_inputs();
    for (name, spoil) in cases {
        let p = base.particle(0);
        spoil(&p);
        let p = p.to_leaves();
        let out = rasterize(&scene, &p, 32, 32, &RasterOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let finite = |t: &Tensor| t.isfinite().all().int64_value(&[]) == 1;
        assert!(
            finite(&out.rgb) && finite(&out.alpha),
            "{name}: non-finite image"
        );
        (out.rgb.sum(Kind::Float) + out.alpha.sum(Kind::Float)).backward();
        for (field, t) in ["points", "fill", "stroke", "stroke_width", "background"]
            .iter()
            .zip(p.tensors())
        {
            let g = t.grad();
            assert!(
                !g.defined() || finite(&g),
                "{name}: non-finite gradient of {field}"
            );
        }
    }
    // Empty scenes: no shapes, and shapes without drawable subpaths.
    let empty = Scene::new([10.0, 10.0], 0, vec![]).unwrap();
    let p = params(&[], &[], &[], &[], [0.5, 0.5, 0.5, 1.0]);
    let out = render(&empty, &p, 8, 8);
    assert!((sum(&out.rgb) - 0.5 * 3.0 * 64.0).abs() < 1e-9);
    let mut lonely = shape(PrimitiveKind::ClosedPath, 0..2, true);
    lonely.subpaths.push((2..2, false));
    let scene = Scene::new([10.0, 10.0], 2, vec![lonely]).unwrap();
    let p = params(
        &[[1.0, 1.0], [5.0, 5.0]],
        &[[1.0; 4]],
        &[[0.0; 4]],
        &[0.0],
        [0.0; 4],
    );
    assert_eq!(sum(&render(&scene, &p, 8, 8).alpha), 0.0);
    // Wrong shapes are errors, not panics.
    let bad = params(&[[1.0, 1.0]], &[[1.0; 4]], &[[0.0; 4]], &[0.0], [0.0; 4]);
    assert!(rasterize(&scene, &bad, 8, 8, &RasterOptions::default()).is_err());
    assert!(rasterize(&scene, &p, 0, 8, &RasterOptions::default()).is_err());
}

fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse = (a - b).square().mean(Kind::Double).double_value(&[]);
    -10.0 * mse.max(1e-20).log10()
}

#[test]
fn raster_optimisation_fits_a_moved_shape() {
    // Target: a circle moved by (6, -5) px, scaled by 1.25 and recoloured. Adam on points and
    // fill colour must reach 40 dB within the step budget.
    let scene = Scene::new(
        [64.0, 64.0],
        12,
        vec![shape(PrimitiveKind::ClosedPath, 0..12, true)],
    )
    .unwrap();
    let white = [1.0, 1.0, 1.0, 1.0];
    let target_p = params(
        &circle(36.0, 27.0, 15.0),
        &[[0.9, 0.2, 0.1, 1.0]],
        &[[0.0; 4]],
        &[0.0],
        white,
    );
    let target = render(&scene, &target_p, 64, 64).rgb;
    let start = params(
        &circle(30.0, 32.0, 12.0),
        &[[0.2, 0.5, 0.8, 1.0]],
        &[[0.0; 4]],
        &[0.0],
        white,
    );
    let p = start.to_leaves();
    let trained = [(&p.points, 0.4), (&p.fill, 0.03)];
    let mut moments: Vec<(Tensor, Tensor)> = trained
        .iter()
        .map(|(t, _)| (t.zeros_like(), t.zeros_like()))
        .collect();
    let (b1, b2) = (0.9f64, 0.999f64);
    let mut best = 0.0;
    let max_steps = 400;
    for step in 1..=max_steps {
        for (t, _) in &trained {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let out = render(&scene, &p, 64, 64);
        best = psnr(&out.rgb.detach(), &target);
        if best >= 40.0 {
            eprintln!("reached {best:.1} dB after {step} steps");
            break;
        }
        (out.rgb - &target).square().mean(Kind::Float).backward();
        tch::no_grad(|| {
            for ((t, lr), (m, v)) in trained.iter().zip(moments.iter_mut()) {
                let g = t.grad();
                *m = &*m * b1 + &g * (1.0 - b1);
                *v = &*v * b2 + g.square() * (1.0 - b2);
                let mh = &*m / (1.0 - b1.powi(step));
                let vh = &*v / (1.0 - b2.powi(step));
                let mut t = t.shallow_clone();
                let _ = t.f_sub_(&(mh * *lr / (vh.sqrt() + 1e-8))).unwrap();
            }
        });
    }
    assert!(
        best >= 40.0,
        "only {best:.1} dB after {max_steps} Adam steps"
    );
}
