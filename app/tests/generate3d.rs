//! `vecdream generate3d --views …` end to end through the binary: GLB (checked by the Khronos
//! validator and three.js via `scripts/check-glb`), turntable, loss.csv, checkpoint, `--resume`.

use std::path::{Path, PathBuf};
use std::process::Command;

use vecdream_gpu::field::{AnalyticShape, Camera, write_views};

mod cli_common;
use cli_common::run;

fn scratch(name: &str) -> PathBuf {
    cli_common::scratch("generate3d", name)
}

/// A views folder of an analytic sphere: 10 cameras at 20 px, rendered exactly.
fn sphere_views(dir: &Path) {
    let shape = AnalyticShape::Sphere { radius: 0.3 };
    let mut views = Vec::new();
    for i in 0..10 {
        let c = Camera {
            azimuth_deg: 36.0 * f64::from(i) - 180.0,
            elevation_deg: [10.0, 50.0][i as usize % 2],
            distance: 1.8,
            fov_deg: 45.0,
        };
        views.push((c, shape.render(&c, 20, 2, [1.0; 3])));
    }
    write_views(dir, &views, [1.0; 3]).unwrap();
}

fn check_glb(files: &[PathBuf]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check-glb");
    let out = Command::new(&script).args(files).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().count() == files.len(),
        "scripts/check-glb failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["errors"], 0, "validator errors: {line}");
        assert_eq!(v["loaded"], true, "three.js could not load it: {line}");
    }
}

fn rows(csv: &Path) -> Vec<String> {
    std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn generate3d_from_views_writes_a_valid_glb_and_resumes() {
    let dir = scratch("views");
    let views = dir.join("views");
    sphere_views(&views);
    let out = dir.join("out");
    let (v, o) = (views.to_str().unwrap(), out.to_str().unwrap());
    let common = [
        "generate3d",
        "--views",
        v,
        "--grid",
        "20",
        "--samples",
        "24",
        "--turntable",
        "4",
        "--turntable-size",
        "32",
        "-o",
        o,
    ];
    let mut args = common.to_vec();
    args.extend(["--steps", "6"]);
    let r = run(&args);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for f in [
        "model.glb",
        "turntable.png",
        "loss.csv",
        "checkpoint.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let csv = rows(&out.join("loss.csv"));
    assert_eq!(csv.len(), 7, "{csv:?}");
    assert_eq!(csv[0], "step,loss,skipped,resolution");
    let strip = image::open(out.join("turntable.png")).unwrap();
    assert_eq!((strip.width(), strip.height()), (128, 32));
    let mesh = vecdream_core::glb::read_glb(&out.join("model.glb")).unwrap();
    assert!(mesh.triangle_count() > 0 && mesh.signed_volume() > 0.0);
    let first_glb = dir.join("first.glb");
    std::fs::copy(out.join("model.glb"), &first_glb).unwrap();

    let mut args = common.to_vec();
    args.extend(["--steps", "10", "--resume"]);
    let r = run(&args);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(stderr.contains("resuming from step 6"), "{stderr}");
    let csv = rows(&out.join("loss.csv"));
    assert_eq!(csv.len(), 11, "{csv:?}");
    assert!(csv[10].starts_with("10,"), "{csv:?}");
    check_glb(&[first_glb, out.join("model.glb")]);

    // A resume with another grid is refused, naming the setting.
    let mut args: Vec<&str> = common.to_vec();
    args[4] = "24";
    args.extend(["--steps", "12", "--resume"]);
    let r = run(&args);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && stderr.contains("`grid`"), "{stderr}");
}

#[test]
fn generate3d_with_a_bad_views_folder_names_it() {
    let dir = scratch("bad");
    let o = dir.join("out");
    let r = run(&[
        "generate3d",
        "--views",
        "/nonexistent-vecdream-views",
        "-o",
        o.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && stderr.contains("/nonexistent-vecdream-views"),
        "{stderr}"
    );
    let r = run(&["generate3d", "--prompt", "a cat", "-o", o.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && stderr.contains("--model"),
        "{stderr}"
    );
}
