//! The 3D field on CPU: fitting to exact renders of analytic shapes (a sphere, a torus), mesh
//! volume and IoU against the analytic solids, checkpoints, views-folder errors, and
//! text-to-3D on the tiny Stable Diffusion fixture.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vecdream_core::mesh::{Mesh, MeshPart};
use vecdream_gpu::distill::SdMethod;
use vecdream_gpu::field::{
    AnalyticShape, Camera, FieldConfig, FieldRun, TextConfig, load_views, write_views,
};
use vecdream_gpu::tch::Device;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vd-field-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

/// 14 cameras: 8 around at 15°, 4 at 55°, one from above, one from below.
fn cameras() -> Vec<Camera> {
    let cam = |azimuth_deg: f64, elevation_deg: f64| Camera {
        azimuth_deg,
        elevation_deg,
        distance: 1.8,
        fov_deg: 45.0,
    };
    let mut c: Vec<Camera> = (0..8).map(|i| cam(45.0 * f64::from(i), 15.0)).collect();
    c.extend((0..4).map(|i| cam(45.0 + 90.0 * f64::from(i), 55.0)));
    c.extend([cam(20.0, 89.0), cam(20.0, -60.0)]);
    c
}

fn write_shape_views(shape: AnalyticShape, dir: &Path, size: u32) {
    let views: Vec<_> = cameras()
        .into_iter()
        .map(|c| (c, shape.render(&c, size, 3, [1.0; 3])))
        .collect();
    write_views(dir, &views, [1.0; 3]).unwrap();
}

/// Inside-test of the points of an `n³` lattice of cell centres of the unit box by ray parity
/// along +x (the lattice is offset a little so rays miss edges and vertices).
fn voxelise(part: &MeshPart, n: usize) -> Vec<bool> {
    let coord = |i: usize| -0.5 + (i as f64 + 0.5) / n as f64 + 1.234e-5;
    let tris: Vec<[[f64; 3]; 3]> = part
        .indices
        .chunks_exact(3)
        .map(|t| [0, 1, 2].map(|k| part.positions[t[k] as usize].map(f64::from)))
        .collect();
    let mut inside = vec![false; n * n * n];
    for zi in 0..n {
        for yi in 0..n {
            let (y, z) = (coord(yi) + 2.1e-6, coord(zi) - 3.7e-6);
            let mut xs: Vec<f64> = Vec::new();
            for [a, b, c] in &tris {
                let (ymin, ymax) = (a[1].min(b[1]).min(c[1]), a[1].max(b[1]).max(c[1]));
                let (zmin, zmax) = (a[2].min(b[2]).min(c[2]), a[2].max(b[2]).max(c[2]));
                if y < ymin || y > ymax || z < zmin || z > zmax {
                    continue;
                }
                // Barycentric coordinates of (y, z) in the triangle projected on the yz plane.
                let det = (b[1] - a[1]) * (c[2] - a[2]) - (c[1] - a[1]) * (b[2] - a[2]);
                if det.abs() < 1e-18 {
                    continue;
                }
                let u = ((y - a[1]) * (c[2] - a[2]) - (c[1] - a[1]) * (z - a[2])) / det;
                let v = ((b[1] - a[1]) * (z - a[2]) - (y - a[1]) * (b[2] - a[2])) / det;
                if u < 0.0 || v < 0.0 || u + v > 1.0 {
                    continue;
                }
                xs.push(a[0] + u * (b[0] - a[0]) + v * (c[0] - a[0]));
            }
            xs.sort_by(f64::total_cmp);
            for xi in 0..n {
                let x = coord(xi);
                let crossings = xs.iter().filter(|&&cx| cx < x).count();
                inside[(zi * n + yi) * n + xi] = crossings % 2 == 1;
            }
        }
    }
    inside
}

fn iou(mesh: &Mesh, shape: AnalyticShape, n: usize) -> f64 {
    let got = voxelise(&mesh.parts[0], n);
    let coord = |i: usize| -0.5 + (i as f64 + 0.5) / n as f64 + 1.234e-5;
    let (mut inter, mut union) = (0usize, 0usize);
    for zi in 0..n {
        for yi in 0..n {
            for xi in 0..n {
                let p = [coord(xi), coord(yi) + 2.1e-6, coord(zi) - 3.7e-6];
                let a = shape.contains(p);
                let b = got[(zi * n + yi) * n + xi];
                inter += usize::from(a && b);
                union += usize::from(a || b);
            }
        }
    }
    inter as f64 / union.max(1) as f64
}

/// Fits a `grid³` field to 14 views of `shape` for `steps` steps; returns (volume error, IoU).
fn fit_shape(name: &str, shape: AnalyticShape, grid: i64, steps: usize, px: u32) -> (f64, f64) {
    let t0 = Instant::now();
    let dir = scratch(name);
    write_shape_views(shape, &dir, px);
    let config = FieldConfig::views(&dir, grid, steps);
    let mut run = FieldRun::new(config, Device::Cpu).unwrap();
    let mut first = None;
    let mut last = 0.0;
    while !run.is_finished() {
        let info = run.step().unwrap();
        assert!(info.loss.is_finite() && !info.skipped, "{info:?}");
        first.get_or_insert(info.loss);
        last = info.loss;
    }
    let (mesh, th) = run.surface();
    mesh.validate().unwrap();
    assert_eq!(mesh.parts.len(), 1);
    let vol = mesh.signed_volume();
    let exact = shape.volume();
    let err = (vol - exact) / exact;
    let iou = iou(&mesh, shape, 48);
    println!(
        "{name}: grid {grid}³, {steps} steps, loss {:.4} → {last:.5}, threshold {th:.3}, mesh {} vertices {} triangles, volume {vol:.5} vs {exact:.5} ({:+.2}%), IoU {iou:.4}, {:.1} s",
        first.unwrap_or(0.0),
        mesh.vertex_count(),
        mesh.triangle_count(),
        err * 100.0,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        last < first.unwrap_or(0.0) * 0.2,
        "the fit did not converge: {last}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    (err, iou)
}

#[test]
fn fitted_sphere_has_the_analytic_volume_and_shape() {
    let (err, iou) = fit_shape("sphere", AnalyticShape::Sphere { radius: 0.3 }, 32, 300, 32);
    // Measured −3.91 % (IoU 0.954) with surface-net vertices projected onto the trilinear surface
    // the renderer draws (−5.09 % with vertices at the mean of the edge crossings).
    assert!(err.abs() < 0.05, "volume error {:.2}%", err * 100.0);
    assert!(iou >= 0.9, "IoU {iou}");
}

#[test]
fn fitted_torus_has_the_analytic_volume_and_shape() {
    let shape = AnalyticShape::Torus {
        major: 0.27,
        minor: 0.12,
    };
    let (err, iou) = fit_shape("torus", shape, 48, 400, 32);
    assert!(err.abs() < 0.05, "volume error {:.2}%", err * 100.0);
    assert!(iou >= 0.9, "IoU {iou}");
}

#[test]
fn a_resumed_run_continues_exactly_and_a_mismatch_is_refused() {
    let dir = scratch("resume");
    let views = dir.join("views");
    write_shape_views(AnalyticShape::Sphere { radius: 0.3 }, &views, 16);
    let mut config = FieldConfig::views(&views, 12, 6);
    config.samples = 16;
    let mut straight = FieldRun::new(config.clone(), Device::Cpu).unwrap();
    for _ in 0..6 {
        straight.step().unwrap();
    }
    let mut first = FieldRun::new(config.clone(), Device::Cpu).unwrap();
    for _ in 0..3 {
        first.step().unwrap();
    }
    let ck = dir.join("checkpoint.safetensors");
    first.save_checkpoint(&ck).unwrap();
    let mut resumed = FieldRun::resume(&ck, config.clone(), Device::Cpu).unwrap();
    assert_eq!(resumed.step_index(), 3);
    while !resumed.is_finished() {
        resumed.step().unwrap();
    }
    let a = straight.grid().density.detach();
    let b = resumed.grid().density.detach();
    assert!(
        a.equal(&b),
        "resumed density differs from the uninterrupted run"
    );
    assert!(
        straight
            .grid()
            .color
            .detach()
            .equal(&resumed.grid().color.detach())
    );
    // A different grid size is refused, naming the setting.
    let mut other = config.clone();
    other.grid = 16;
    other.grid_start = 16;
    let e = FieldRun::resume(&ck, other, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("checkpoint.safetensors") && e.contains("`grid`"),
        "{e}"
    );
    // A file that is not a field checkpoint.
    std::fs::write(dir.join("junk.safetensors"), b"not a checkpoint").unwrap();
    let e = FieldRun::resume(&dir.join("junk.safetensors"), config, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("junk.safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn views_json_errors_name_the_file_the_view_and_the_field() {
    let dir = scratch("views-errors");
    write_shape_views(AnalyticShape::Sphere { radius: 0.3 }, &dir, 8);
    let json = dir.join("views.json");
    let good = std::fs::read_to_string(&json).unwrap();
    assert_eq!(load_views(&dir).unwrap().views.len(), 14);
    // A negative distance in view 0.
    let bad = good.replacen("\"distance\": 1.8", "\"distance\": -1.0", 1);
    std::fs::write(&json, &bad).unwrap();
    let e = load_views(&dir).unwrap_err().to_string();
    assert!(
        e.contains("views.json")
            && e.contains("view 0")
            && e.contains("`distance`")
            && e.contains("line"),
        "{e}"
    );
    // A missing field.
    std::fs::write(&json, good.replacen("\"fov\": 45.0", "\"fovy\": 45.0", 1)).unwrap();
    let e = load_views(&dir).unwrap_err().to_string();
    assert!(
        e.contains("views.json") && e.contains("fovy") && e.contains("line"),
        "{e}"
    );
    // A missing image.
    std::fs::write(&json, good.replacen("view_003.png", "nope.png", 1)).unwrap();
    let e = load_views(&dir).unwrap_err().to_string();
    assert!(e.contains("nope.png") && e.contains("view 3"), "{e}");
    // Images of different sizes.
    std::fs::write(&json, &good).unwrap();
    let small = AnalyticShape::Sphere { radius: 0.3 }.render(&Camera::default(), 6, 1, [1.0; 3]);
    small.save_png(&dir.join("view_005.png")).unwrap();
    let e = load_views(&dir).unwrap_err().to_string();
    assert!(e.contains("view_005.png") && e.contains("one size"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tiny_text(method: SdMethod) -> FieldConfig {
    let text = TextConfig {
        model_dir: fixture("tiny-sd15"),
        prompt: "a hamburger".into(),
        method,
        latent_size: 16,
        ..TextConfig::default()
    };
    let mut config = FieldConfig::text(text, 16, 3);
    config.samples = 24;
    config.seed = 7;
    config
}

/// Runs `scripts/check-glb` (Khronos glTF-Validator + three.js); fails if node is missing.
fn check_glb(files: &[PathBuf]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/check-glb");
    let out = std::process::Command::new(&script)
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().count() == files.len(),
        "scripts/check-glb failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in stdout.lines() {
        assert!(
            line.contains("\"errors\":0") && line.contains("\"loaded\":true"),
            "{line}"
        );
    }
}

#[test]
fn text_to_3d_on_the_tiny_fixture_gives_a_finite_loss_and_a_mesh() {
    let dir = scratch("text");
    let mut glbs = Vec::new();
    for method in [SdMethod::Sds, SdMethod::Vpsd] {
        let mut run = FieldRun::new(tiny_text(method), Device::Cpu).unwrap();
        let mut losses = Vec::new();
        while !run.is_finished() {
            let info = run.step().unwrap();
            assert!(
                info.loss.is_finite() && info.loss > 0.0,
                "{method:?}: {info:?}"
            );
            losses.push(info.loss);
        }
        assert_eq!(losses.len(), 3);
        let cached = run.cached_prompts().unwrap();
        assert!((1..=5).contains(&cached), "{cached}");
        let (mesh, _) = run.surface();
        mesh.validate().unwrap();
        assert!(mesh.triangle_count() > 0 && mesh.signed_volume() > 0.0);
        let preview = run.render_rgb(&Camera::default(), 24);
        assert_eq!(preview.data.len(), 24 * 24 * 4);
        println!(
            "{method:?}: losses {losses:?}, {} triangles",
            mesh.triangle_count()
        );
        let glb = dir.join(format!("{}.glb", method.as_str()));
        vecdream_core::glb::write_glb(&glb, &mesh).unwrap();
        glbs.push(glb);
    }
    check_glb(&glbs);
    let _ = std::fs::remove_dir_all(&dir);
}
