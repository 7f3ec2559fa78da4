//! The native CPU kernel against the tensor path (the reference): same pixels (≤ 1e-5) and
//! same gradients (≤ 1e-4 relative, see `compare`) on the rasteriser's test scenes, the
//! benchmark scenes, the SVG corpora and bad input; finite differences of the native gradients on every parameter kind; locks,
//! hidden shapes and the two-phase autograd wiring.

use tch::{Device, Kind, Tensor};
use vecdream_core::params::{FillRule, PrimitiveKind};
use vecdream_gpu::raster::{
    Engine, RasterOptions, Scene, SceneParams, random_blobs, random_strokes, rasterize,
    rasterize_native, rasterize_with,
};

mod common;
use common::*;

struct Case {
    name: String,
    scene: Scene,
    params: SceneParams,
    size: (usize, usize),
    opts: RasterOptions,
}

fn case(name: &str, scene: Scene, params: SceneParams, w: usize, h: usize) -> Case {
    Case {
        name: name.into(),
        scene,
        params,
        size: (w, h),
        opts: RasterOptions::default(),
    }
}

/// The scenes of `tests/raster.rs` and more: fill rules, open fills, wide strokes,
/// off-canvas shapes, canvas scaling, gradient fills, batches.
fn hand_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let poly = |r: std::ops::Range<usize>| shape(PrimitiveKind::Polygon, r, true);
    out.push(case(
        "square",
        Scene::new([64.0, 64.0], 4, vec![poly(0..4)]).unwrap(),
        params(
            &rect(10.25, 10.25, 30.75, 20.5),
            &[[0.0, 0.0, 0.0, 1.0]],
            &[[0.0; 4]],
            &[0.0],
            [0.0; 4],
        ),
        64,
        64,
    ));
    out.push(case(
        "circle",
        Scene::new(
            [64.0, 64.0],
            12,
            vec![shape(PrimitiveKind::ClosedPath, 0..12, true)],
        )
        .unwrap(),
        params(
            &circle(32.0, 31.5, 20.0),
            &[[1.0, 0.0, 0.0, 1.0]],
            &[[0.0; 4]],
            &[0.0],
            [0.0; 4],
        ),
        64,
        64,
    ));
    for rule in [FillRule::NonZero, FillRule::EvenOdd] {
        let mut pts = rect(4.0, 4.0, 28.0, 28.0);
        pts.extend(rect(12.0, 12.0, 20.0, 20.0));
        // A reversed inner square too: a hole under both rules.
        pts.extend([[22.0, 6.0], [22.0, 10.0], [26.0, 10.0], [26.0, 6.0]]);
        let mut topo = poly(0..4);
        topo.subpaths.push((4..8, true));
        topo.subpaths.push((8..12, true));
        topo.fill_rule = rule;
        out.push(case(
            &format!("holes {rule:?}"),
            Scene::new([32.0, 32.0], 12, vec![topo]).unwrap(),
            params(
                &pts,
                &[[0.0, 0.0, 1.0, 1.0]],
                &[[0.0; 4]],
                &[0.0],
                [1.0, 1.0, 1.0, 1.0],
            ),
            32,
            32,
        ));
        // A self-intersecting star (winding 2 in the middle).
        let star: Vec<[f32; 2]> = (0..5)
            .map(|k| {
                let a = std::f32::consts::TAU * (2 * k) as f32 / 5.0 - 1.3;
                [16.0 + 13.0 * a.cos(), 16.3 + 13.0 * a.sin()]
            })
            .collect();
        let mut topo = poly(0..5);
        topo.fill_rule = rule;
        out.push(case(
            &format!("star {rule:?}"),
            Scene::new([32.0, 32.0], 5, vec![stroked(topo, true)]).unwrap(),
            params(
                &star,
                &[[0.9, 0.6, 0.1, 0.85]],
                &[[0.1, 0.1, 0.4, 0.7]],
                &[1.3],
                [0.2, 0.3, 0.4, 0.5],
            ),
            32,
            32,
        ));
    }
    let stroke_pts = vec![[10.0, 20.0], [20.0, 20.0], [40.0, 20.0], [50.0, 20.0]];
    for wd in [4.0, 0.5] {
        out.push(case(
            &format!("stroke caps w {wd}"),
            Scene::new(
                [64.0, 40.0],
                4,
                vec![stroked(shape(PrimitiveKind::OpenPath, 0..4, false), false)],
            )
            .unwrap(),
            params(
                &stroke_pts,
                &[[0.0; 4]],
                &[[0.0, 0.0, 0.0, 1.0]],
                &[wd],
                [0.0; 4],
            ),
            64,
            40,
        ));
    }
    let mut pts = rect(2.0, 2.0, 12.0, 12.0);
    pts.extend(rect(6.0, 6.0, 16.0, 16.0));
    out.push(case(
        "over",
        Scene::new([20.0, 20.0], 8, vec![poly(0..4), poly(4..8)]).unwrap(),
        params(
            &pts,
            &[[1.0, 0.0, 0.0, 0.6], [0.0, 0.5, 1.0, 0.7]],
            &[[0.0; 4]; 2],
            &[0.0; 2],
            [0.2, 0.3, 0.4, 0.5],
        ),
        20,
        20,
    ));
    let (scene, p) = mixed_scene();
    out.push(case("mixed", scene.clone(), p.particle(0), 32, 32));
    let mut c = case("mixed fixed pieces", scene.clone(), p.particle(0), 32, 32);
    c.opts = fixed_pieces();
    out.push(c);
    // Canvas 32×32 drawn at 47×29: unequal scales, widths scaled by √(sx·sy).
    out.push(case("mixed scaled", scene.clone(), p.particle(0), 47, 29));
    let mut g = p.particle(0);
    gradient_fills(&mut g);
    out.push(case("mixed gradient fills", scene.clone(), g, 32, 32));
    // Degenerate gradient axes (zero length) and a vertical one.
    let mut g = p.particle(0);
    let gv: Vec<f32> = vec![
        0.4, 0.2, -0.1, 0.3, 9.0, 9.0, 9.0, 9.0, //
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, //
        -0.9, 0.9, 0.5, -0.4, 20.0, 2.0, 20.0, 30.0,
    ];
    g.fill_gradient = Some(Tensor::from_slice(&gv).view([1, 3, 8]));
    out.push(case("mixed degenerate gradients", scene.clone(), g, 32, 32));
    // A batch of 3 jittered particles.
    let mut rng = vecdream_gpu::rng::Rng::new(3);
    let b = 3;
    let rep = |t: &Tensor| {
        let mut sz = t.size();
        sz[0] = b;
        t.expand(sz.as_slice(), false).contiguous()
    };
    let batch = SceneParams {
        points: rep(&p.points) + rng.normal_tensor(&[b, 19, 2], Device::Cpu),
        fill: (rep(&p.fill) + rng.uniform_tensor(&[b, 3, 4], Device::Cpu) * 0.2).clamp(0.0, 1.0),
        stroke: rep(&p.stroke),
        stroke_width: rep(&p.stroke_width) + rng.uniform_tensor(&[b, 3], Device::Cpu),
        background: rep(&p.background),
        fill_gradient: None,
    };
    out.push(case("batch of 3", scene.clone(), batch, 32, 24));
    // Open fills (closed by a straight line), strokes wider than the canvas, off-canvas and
    // canvas-covering shapes.
    let mut pts = vec![[3.0, 3.0], [30.0, 2.0], [28.0, 30.0], [5.0, 25.0]];
    pts.extend(circle(-20.0, 10.0, 9.0)); // entirely off the canvas (left)
    pts.extend(circle(33.0, 30.0, 8.0)); // half off (bottom right)
    pts.extend(rect(-10.0, -7.0, 45.0, 41.0)); // covers everything
    pts.extend([[2.0, 30.0], [10.0, 0.0], [20.0, 40.0], [30.0, 2.0]]);
    let open_fill = stroked(shape(PrimitiveKind::OpenPath, 0..4, false), true);
    let wide = stroked(shape(PrimitiveKind::OpenPath, 32..36, false), false);
    let scene = Scene::new(
        [32.0, 32.0],
        36,
        vec![
            poly(28..32),
            open_fill,
            shape(PrimitiveKind::ClosedPath, 4..16, true),
            stroked(shape(PrimitiveKind::ClosedPath, 16..28, true), true),
            wide,
        ],
    )
    .unwrap();
    let mk = |wide_w: f32| {
        params(
            &pts,
            &[
                [0.3, 0.3, 0.3, 0.5],
                [0.9, 0.1, 0.2, 0.6],
                [0.1, 0.9, 0.1, 1.0],
                [0.2, 0.4, 0.9, 0.8],
                [0.0; 4],
            ],
            &[
                [0.0; 4],
                [0.1, 0.2, 0.3, 0.9],
                [0.0; 4],
                [0.9, 0.9, 0.1, 0.5],
                [0.5, 0.1, 0.6, 0.3],
            ],
            &[0.0, 2.5, 0.0, 6.0, wide_w],
            [0.0; 4],
        )
    };
    out.push(case(
        "open fill, off canvas",
        scene.clone(),
        mk(3.0),
        32,
        32,
    ));
    out.push(case(
        "stroke wider than the canvas",
        scene,
        mk(90.0),
        32,
        32,
    ));
    out
}

/// The benchmark generators at small sizes, and scene (a) at full size.
fn bench_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (name, s) in [
        (
            "blobs 24 at 64²",
            random_blobs(24, [64, 64], 1, Device::Cpu),
        ),
        (
            "blobs 40 at 80×56",
            random_blobs(40, [80, 56], 2, Device::Cpu),
        ),
        (
            "strokes 24 w 2 at 64²",
            random_strokes(24, [64, 64], 2.0, 3, Device::Cpu),
        ),
        (
            "strokes 12 w 7 at 48²",
            random_strokes(12, [48, 48], 7.0, 4, Device::Cpu),
        ),
        (
            "(a) 64 blobs 256²",
            random_blobs(64, [256, 256], 0, Device::Cpu),
        ),
    ] {
        let s = s.unwrap();
        out.push(case(name, s.scene, s.params, s.width, s.height));
    }
    out
}

fn max_abs(t: &Tensor) -> f64 {
    if t.numel() == 0 {
        0.0
    } else {
        t.abs().max().double_value(&[])
    }
}

/// Renders `c` both ways with a loss `Σ rgb · Wc + Σ alpha · Wa` (seeded weights) and
/// checks pixels and every parameter gradient.
fn compare(c: &Case) {
    let (w, h) = c.size;
    let b = c.params.batch() as i64;
    let mut rng = vecdream_gpu::rng::Rng::new(11);
    let wr = rng.uniform_tensor(&[b, 3, h as i64, w as i64], Device::Cpu) - 0.3;
    let wa = rng.uniform_tensor(&[b, 1, h as i64, w as i64], Device::Cpu) - 0.3;
    let leaves = c.params.to_leaves();
    let out = rasterize(&c.scene, &leaves, w, h, &c.opts).unwrap();
    ((&out.rgb * &wr).sum(Kind::Float) + (&out.alpha * &wa).sum(Kind::Float)).backward();
    let native_leaves = c.params.to_leaves();
    let nat = rasterize_native(&c.scene, &native_leaves, w, h, &c.opts).unwrap();
    let finite = |t: &Tensor| t.isfinite().all().int64_value(&[]) == 1;
    assert!(
        finite(&nat.rendered.rgb) && finite(&nat.rendered.alpha),
        "{}: non-finite native image",
        c.name
    );
    let dp =
        max_abs(&(&nat.rendered.rgb - &out.rgb)).max(max_abs(&(&nat.rendered.alpha - &out.alpha)));
    assert!(dp <= 1e-5, "{}: pixels differ by {dp:e}", c.name);
    let g = nat.param_grads(&wr, &wa).unwrap();
    let mut fields = vec![
        ("points", &leaves.points, g.points),
        ("fill", &leaves.fill, g.fill),
        ("stroke", &leaves.stroke, g.stroke),
        ("stroke_width", &leaves.stroke_width, g.stroke_width),
        ("background", &leaves.background, g.background),
    ];
    if let (Some(t), Some(gg)) = (&leaves.fill_gradient, g.fill_gradient) {
        fields.push(("fill_gradient", t, gg));
    }
    let mut worst = 0f64;
    for (field, t, native) in fields {
        let reference = t.grad();
        let reference = if reference.defined() {
            reference
        } else {
            t.zeros_like()
        };
        assert!(finite(&native), "{}: non-finite {field} gradient", c.name);
        if native.numel() == 0 {
            continue;
        }
        let diff = (&native - &reference).abs();
        // Points and widths: 1e-4 of max(1, |g|) per entry. Colours, the background and the
        // gradient-fill numbers are float32 sums over every fragment of a shape (every pixel
        // for the background) in the tensor path's backward (index_add), whose rounding grows
        // with the pixel count and shows most where large terms cancel (the native kernel sums
        // in float64); they are held to 1e-4 of max(1, the field's largest |g|) per entry and
        // 1e-4 relative in L2 over the field.
        let per_entry = matches!(field, "points" | "stroke_width");
        let bound = if per_entry {
            reference.abs().clamp_min(1.0) * 1e-4
        } else {
            let l2 = (&native - &reference).norm().double_value(&[]);
            let norm = reference.norm().double_value(&[]);
            assert!(
                l2 <= 1e-4 * norm.max(1.0),
                "{}: {field} differs by {l2:e} in L2 (norm {norm:e})",
                c.name
            );
            reference.ones_like() * (1e-4 * max_abs(&reference).max(1.0))
        };
        let excess = (&diff - &bound).max().double_value(&[]);
        if excess > 0.0 {
            let i = (&diff - &bound).argmax(None, false).int64_value(&[]);
            panic!(
                "{}: {field}[{i}] native {} vs tensor {}",
                c.name,
                native.view([-1]).double_value(&[i]),
                reference.view([-1]).double_value(&[i]),
            );
        }
        worst = worst.max(max_abs(&(diff / &bound)) * 1e-4);
    }
    eprintln!(
        "{}: max |Δ pixel| {dp:.1e}, max |Δ grad| / bound scale {worst:.1e}",
        c.name
    );
}

#[test]
fn native_matches_tensor_on_hand_scenes() {
    for c in hand_cases() {
        compare(&c);
    }
}

#[test]
fn native_matches_tensor_on_bench_scenes() {
    for c in bench_cases() {
        compare(&c);
    }
}

#[test]
fn native_matches_tensor_on_bad_input() {
    let (scene, base) = mixed_scene();
    let cases = bad_inputs();
    for (name, spoil) in cases {
        let p = base.particle(0);
        spoil(&p);
        compare(&case(name, scene.clone(), p, 32, 32));
        let mut p = base.particle(0);
        gradient_fills(&mut p);
        spoil(&p);
        if let Some(g) = &p.fill_gradient {
            let _ = g.get(0).get(1).get(6).fill_(f64::NAN);
            let _ = g.get(0).get(2).get(0).fill_(f64::INFINITY);
        }
        compare(&case(
            &format!("{name}, gradient fills"),
            scene.clone(),
            p,
            32,
            32,
        ));
    }
    // Empty scenes.
    let empty = Scene::new([10.0, 10.0], 0, vec![]).unwrap();
    compare(&case(
        "empty",
        empty,
        params(&[], &[], &[], &[], [0.5, 0.5, 0.5, 1.0]),
        8,
        8,
    ));
    let mut lonely = shape(PrimitiveKind::ClosedPath, 0..2, true);
    lonely.subpaths.push((2..2, false));
    let scene = Scene::new([10.0, 10.0], 2, vec![lonely]).unwrap();
    let p = params(
        &[[1.0, 1.0], [5.0, 5.0]],
        &[[1.0; 4]],
        &[[0.0; 4]],
        &[0.0],
        [0.3, 0.2, 0.1, 0.4],
    );
    compare(&case("no drawable subpath", scene.clone(), p, 8, 8));
    let bad = params(&[[1.0, 1.0]], &[[1.0; 4]], &[[0.0; 4]], &[0.0], [0.0; 4]);
    assert!(rasterize_native(&scene, &bad, 8, 8, &RasterOptions::default()).is_err());
}

#[test]
fn native_locked_get_no_gradient_hidden_not_drawn() {
    let (s, base) = mixed_scene();
    let mut shapes = s.shapes().to_vec();
    shapes[0].locked = true;
    shapes[2].hidden = true;
    let scene = Scene::new([32.0, 32.0], 19, shapes.clone()).unwrap();
    let mut gp = base.particle(0);
    gradient_fills(&mut gp);
    for p in [base.particle(0), gp] {
        compare(&case(
            "locked and hidden",
            scene.clone(),
            p.particle(0),
            32,
            32,
        ));
        let mut p2 = p.particle(0);
        p2.fill_gradient = p.fill_gradient.as_ref().map(Tensor::copy);
        let leaves = p2.to_leaves();
        let out = rasterize_native(&scene, &leaves, 32, 32, &RasterOptions::default()).unwrap();
        let ones = |t: &Tensor| t.ones_like();
        let g = out
            .param_grads(&ones(&out.rendered.rgb), &ones(&out.rendered.alpha))
            .unwrap();
        assert_eq!(max_abs(&g.points.narrow(1, 0, 12)), 0.0, "locked points");
        assert!(max_abs(&g.points.narrow(1, 12, 4)) > 0.0, "free points");
        assert_eq!(max_abs(&g.points.narrow(1, 16, 3)), 0.0, "hidden points");
        for t in [&g.fill, &g.stroke] {
            assert_eq!(max_abs(&t.narrow(1, 0, 1)), 0.0, "locked colour");
            assert_eq!(max_abs(&t.narrow(1, 2, 1)), 0.0, "hidden colour");
        }
        assert_eq!(max_abs(&g.stroke_width.narrow(1, 2, 1)), 0.0);
        if let Some(fg) = &g.fill_gradient {
            assert_eq!(max_abs(&fg.narrow(1, 0, 1)), 0.0, "locked gradient");
            assert_eq!(max_abs(&fg.narrow(1, 2, 1)), 0.0, "hidden gradient");
            assert!(max_abs(&fg.narrow(1, 1, 1)) == 0.0, "shape 1 has no fill");
        }
        // Hidden is not drawn: the same image as with the triangle removed.
        let mut no_tri = shapes.clone();
        no_tri[2].has_fill = false;
        no_tri[2].has_stroke = false;
        no_tri[2].hidden = false;
        let reference = rasterize_native(
            &Scene::new([32.0, 32.0], 19, no_tri).unwrap(),
            &p2,
            32,
            32,
            &RasterOptions::default(),
        )
        .unwrap();
        assert_eq!(max_abs(&(&out.rendered.rgb - &reference.rendered.rgb)), 0.0);
    }
}

/// The native gradients against central differences of the native render (see
/// [`common::assert_matches_central_differences`] for the step and tolerances).
fn check_finite_differences(scene: &Scene, base: &SceneParams, fields: &[(&str, Field, bool)]) {
    let opts = fixed_pieces();
    let weights = fd_weights();
    let wa = Tensor::ones([1, 1, 32, 32], (Kind::Float, Device::Cpu));
    let loss_of = |p: &SceneParams| -> f64 {
        let out = rasterize_native(scene, p, 32, 32, &opts).unwrap().rendered;
        fd_loss(&out.rgb, &out.alpha, &weights).double_value(&[])
    };
    let leaves = base.to_leaves();
    let nat = rasterize_native(scene, &leaves, 32, 32, &opts).unwrap();
    let g = nat.param_grads(&weights.to_kind(Kind::Float), &wa).unwrap();
    assert_matches_central_differences(base, fields, &loss_of, &|name, _| {
        let grad = match name {
            "points" => &g.points,
            "fill" => &g.fill,
            "stroke" => &g.stroke,
            "stroke_width" => &g.stroke_width,
            "background" => &g.background,
            _ => g.fill_gradient.as_ref().unwrap(),
        };
        Vec::try_from(grad.to_kind(Kind::Double).flatten(0, -1)).unwrap()
    });
}

#[test]
fn native_gradients_match_finite_differences() {
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
    let mut g = base.particle(0);
    gradient_fills(&mut g);
    check_finite_differences(
        &scene,
        &g,
        &[
            ("points", |p| &p.points, false),
            ("fill", |p| &p.fill, false),
            ("fill_gradient", |p| p.fill_gradient.as_ref().unwrap(), true),
        ],
    );
}

#[test]
fn native_two_phase_backward_joins_the_graph() {
    // loss = MSE(render over white, target) + 0.01·Σ points² + 0.5·Σ fill (terms on θ that do
    // not go through the image), with θ made from leaves by a scale (a non-leaf θ).
    let (scene, base) = mixed_scene();
    let mut p = base.particle(0);
    gradient_fills(&mut p);
    let target = vecdream_gpu::rng::Rng::new(5).uniform_tensor(&[1, 3, 32, 32], Device::Cpu);
    let run = |engine: Engine| -> Vec<Tensor> {
        let leaves = p.to_leaves();
        let theta = leaves.map(|t| t * 1.5);
        let r = rasterize_with(&scene, &theta, 32, 32, &fixed_pieces(), engine).unwrap();
        assert_eq!(r.is_native(), engine == Engine::Native);
        let loss = (r.rendered.over([1.0, 1.0, 1.0]) - &target)
            .square()
            .mean(Kind::Float)
            + theta.points.square().sum(Kind::Float) * 0.01
            + theta.fill.sum(Kind::Float) * 0.5;
        r.backward(&loss).unwrap();
        let mut g: Vec<Tensor> = leaves.tensors().iter().map(|t| t.grad()).collect();
        g.push(leaves.fill_gradient.as_ref().unwrap().grad());
        g
    };
    let native = run(Engine::Native);
    let tensor = run(Engine::Tensor);
    for (i, (a, b)) in native.iter().zip(&tensor).enumerate() {
        let d = max_abs(&(a - b)) / max_abs(b).max(1e-12);
        assert!(d < 1e-4, "tensor {i}: relative difference {d:e}");
    }
    if std::env::var_os("VECDREAM_RASTER_ENGINE").is_none() {
        assert_eq!(Engine::Auto.resolve(Device::Cpu), Engine::Native);
        assert_eq!(Engine::Auto.resolve(Device::Cuda(0)), Engine::Tensor);
    }
    assert_eq!(Engine::Tensor.resolve(Device::Cpu), Engine::Tensor);
    // Without gradient nothing is kept and backward is a no-op.
    let r = tch::no_grad(|| {
        rasterize_with(
            &scene,
            &p.to_leaves(),
            32,
            32,
            &fixed_pieces(),
            Engine::Auto,
        )
    })
    .unwrap();
    assert!(!r.is_native() && !r.rendered.rgb.requires_grad());
}

/// Every SVG of the test corpora (`tests/data/svg/{twemoji,tabler,gradients}`), imported and
/// rendered at 96×96 by both paths (files with features neither path draws, e.g. clip paths,
/// take part too: both ignore them alike).
#[test]
fn native_matches_tensor_on_the_corpora() {
    let root = vecdream_core::testing::test_data_dir().join("svg");
    let mut n = 0;
    for corpus in ["twemoji", "tabler", "gradients"] {
        let dir = root.join(corpus);
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "svg"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no SVG files in {}", dir.display());
        for path in files {
            let svg = std::fs::read_to_string(&path).unwrap();
            let name = format!("{corpus}/{}", path.file_name().unwrap().to_string_lossy());
            let doc = vecdream_core::Document::from_svg_str(&svg, &path)
                .unwrap_or_else(|e| panic!("{name}: import failed: {e}"))
                .document;
            let view = doc.param_view();
            let scene = Scene::from_view(&view).unwrap();
            let params = SceneParams::from_view(&view, 1, Device::Cpu).unwrap();
            compare(&case(&name, scene, params, 96, 96));
            n += 1;
        }
    }
    assert!(n >= 100, "only {n} corpus files");
}
