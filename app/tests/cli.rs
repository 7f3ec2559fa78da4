//! The CLI subcommands, run as a user would: the built `vecdream` binary on real files.

use std::path::{Path, PathBuf};
use std::process::Command;

mod cli_common;
use cli_common::{BIN, run};

fn scratch(name: &str) -> PathBuf {
    cli_common::scratch("cli", name)
}

fn shared(rel: &str) -> PathBuf {
    vecdream_core::testing::test_data_dir().join(rel)
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "vecdream {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn load_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let p = tiny_skia::Pixmap::load_png(path).unwrap();
    let rgba = p
        .pixels()
        .iter()
        .flat_map(|c| {
            let c = c.demultiply();
            [c.red(), c.green(), c.blue(), c.alpha()]
        })
        .collect();
    (p.width(), p.height(), rgba)
}

#[test]
fn render_info_convert_on_a_twemoji() {
    let svg = shared("svg/twemoji/1f404.svg");
    let dir = scratch("render");
    let png = dir.join("cow.png");
    ok(&[
        "render",
        svg.to_str().unwrap(),
        "--size",
        "300",
        "-o",
        png.to_str().unwrap(),
    ]);
    let (w, h, _) = load_png(&png);
    assert_eq!((w, h), (300, 300));

    let info = ok(&["info", svg.to_str().unwrap()]);
    assert!(info.contains("7 shapes"), "{info}");

    let out = dir.join("cow.svg");
    ok(&[
        "convert",
        svg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("<g") && text.contains("inkscape:label"),
        "{text}"
    );
    // The converted file renders like the original.
    let png2 = dir.join("cow2.png");
    ok(&[
        "render",
        out.to_str().unwrap(),
        "--size",
        "300",
        "-o",
        png2.to_str().unwrap(),
    ]);
    let psnr = vecdream_core::metrics::psnr(&load_png(&png).2, &load_png(&png2).2).unwrap();
    assert!(psnr > 40.0, "convert changed the picture: {psnr:.1} dB");
}

#[test]
fn render_with_the_differentiable_engine_matches_resvg() {
    let svg = shared("svg/twemoji/1f404.svg");
    let dir = scratch("render-diff");
    let (a, b) = (dir.join("resvg.png"), dir.join("diff.png"));
    ok(&[
        "render",
        svg.to_str().unwrap(),
        "--size",
        "128",
        "-o",
        a.to_str().unwrap(),
    ]);
    ok(&[
        "render",
        svg.to_str().unwrap(),
        "--size",
        "128",
        "--engine",
        "diff",
        "-o",
        b.to_str().unwrap(),
    ]);
    let (pa, pb) = (load_png(&a), load_png(&b));
    assert_eq!((pa.0, pa.1), (pb.0, pb.1));
    let rgb_a = vecdream_core::metrics::composite_rgb(&pa.2, [255, 255, 255]);
    let rgb_b = vecdream_core::metrics::composite_rgb(&pb.2, [255, 255, 255]);
    let psnr = vecdream_core::metrics::psnr(&rgb_a, &rgb_b).unwrap();
    // The rasteriser's own corpus test asks ≥ 30 dB per file at 256 px; 128 px has more edge pixels.
    assert!(
        psnr > 28.0,
        "differentiable render differs from resvg: {psnr:.1} dB"
    );
}

#[test]
fn bad_input_gives_a_clear_error_and_writes_nothing() {
    let dir = scratch("bad");
    let bad = dir.join("broken.svg");
    std::fs::write(&bad, "<svg xmlns='http://www.w3.org/2000/svg'><g></svg").unwrap();
    let png = dir.join("out.png");
    let out = run(&["render", bad.to_str().unwrap(), "-o", png.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.svg") && err.contains("not a valid SVG"),
        "{err}"
    );
    assert!(!png.exists(), "no output file after an error");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temp files left"
    );

    let out = run(&["render", "/no/such/file.svg", "-o", png.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("/no/such/file.svg"),
        "{err}"
    );
}

#[test]
fn txt2img_on_the_tiny_fixture_is_deterministic() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-sd21");
    let dir = scratch("txt2img");
    let run_once = |name: &str, seed: &str| {
        let out = dir.join(name);
        ok(&[
            "txt2img",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "a photo of a cat",
            "--steps",
            "3",
            "--seed",
            seed,
            "-o",
            out.to_str().unwrap(),
        ]);
        load_png(&out)
    };
    let a = run_once("a.png", "1");
    let b = run_once("b.png", "1");
    let c = run_once("c.png", "2");
    assert_eq!(
        (a.0, a.1),
        (32, 32),
        "the tiny VAE decodes 4×4… latents to 32 px"
    );
    assert_eq!(a.2, b.2, "same seed, same image");
    assert_ne!(a.2, c.2, "another seed, another image");
}

#[test]
fn txt2img_with_a_missing_model_names_the_folder() {
    let out = run(&[
        "txt2img",
        "--model",
        "/no/model/here",
        "--prompt",
        "x",
        "-o",
        "/tmp/never.png",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/model/here"), "{err}");
}

#[test]
fn generate_from_reference_images_writes_particles_and_resumes() {
    let dir = scratch("generate");
    let refs = [
        shared("svg/twemoji/1f499.svg"),
        shared("svg/twemoji/1f7e8.svg"),
    ];
    let out = dir.join("run");
    let args = |steps: &str| {
        vec![
            "generate".to_string(),
            "--reference".into(),
            refs[0].display().to_string(),
            refs[1].display().to_string(),
            "--particles".into(),
            "2".into(),
            "--steps".into(),
            steps.into(),
            "--size".into(),
            "32".into(),
            "--paths".into(),
            "12".into(),
            "--checkpoint-every".into(),
            "4".into(),
            "--seed".into(),
            "3".into(),
            "-o".into(),
            out.display().to_string(),
        ]
    };
    let a: Vec<String> = args("6");
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    for f in ["loss.csv", "checkpoint.safetensors", "checkpoint.json"] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    for i in 0..2 {
        let svg = out.join(format!("particle_{i}.svg"));
        let png = out.join(format!("particle_{i}.png"));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("inkscape:label"), "particle {i}: no groups");
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert_eq!(
            (img.width(), img.height()),
            (32, 32),
            "particle {i} PNG size"
        );
        let rgba = img.to_rgba8();
        assert!(
            rgba.pixels()
                .any(|p| p.0[0] < 200 || p.0[1] < 200 || p.0[2] < 200),
            "particle {i} PNG is blank"
        );
    }
    let rows = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(rows.lines().next(), Some("step,loss,skipped,shapes"));
    let steps: Vec<usize> = rows
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, (1..=6).collect::<Vec<_>>(), "{rows}");
    // Resume to 10 steps: it says where it resumes and continues from the checkpoint's step.
    let mut b: Vec<String> = args("10");
    b.push("--resume".into());
    let res = run(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("resuming from step 6"), "{err}");
    let rows2 = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    let steps2: Vec<usize> = rows2
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps2, (1..=10).collect::<Vec<_>>(), "{rows2}");
}

/// The tiny random Stable Diffusion fixture (made by diffusers, committed under tests/fixtures).
fn tiny_sd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-sd15")
}

/// Numbers in an SVG's path data and coordinates, as written.
fn svg_numbers(svg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in svg.chars() {
        if c.is_ascii_digit() || c == '.' || (c == '-' && cur.is_empty()) {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    out
}

#[test]
fn convert_writes_at_most_the_requested_decimals() {
    let dir = scratch("convert-precision");
    let input = shared("svg/twemoji/1f404.svg");
    let decimals = |p: &Path| {
        let text = std::fs::read_to_string(p).unwrap();
        let d = text.find("<path").expect("a path");
        svg_numbers(&text[d..])
            .iter()
            .filter_map(|n| n.split_once('.').map(|(_, f)| f.len()))
            .max()
            .unwrap_or(0)
    };
    for precision in [1usize, 4] {
        let out = dir.join(format!("p{precision}.svg"));
        ok(&[
            "convert",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--precision",
            &precision.to_string(),
        ]);
        let max = decimals(&out);
        assert!(max <= precision, "--precision {precision}: {max} decimals");
        // The twemoji cow has coordinates with more decimals than 1, so the option is what cuts them.
        if precision == 4 {
            assert!(max > 1, "--precision 4 kept only {max} decimals");
        }
    }
}

#[test]
fn vectorize_turns_a_photo_into_a_layered_svg() {
    let dir = scratch("vectorize");
    let out = dir.join("logo.svg");
    let stderr = String::from_utf8_lossy(
        &run(&[
            "vectorize",
            shared("images/logo.png").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--paths",
            "24",
            "--size",
            "64",
            "--steps",
            "20",
        ])
        .stderr,
    )
    .to_string();
    let import = vecdream_core::import_svg(&out).unwrap_or_else(|e| panic!("{e}\n{stderr}"));
    let doc = import.document;
    assert!(
        (2..=30).contains(&doc.shape_count()),
        "{} shapes",
        doc.shape_count()
    );
    assert!(doc.objects.len() >= 2, "one object only: not layered");
}

#[test]
fn generate_from_a_prompt_with_the_tiny_model_and_an_init_svg() {
    let dir = scratch("generate-prompt");
    let init = shared("svg/twemoji/1f499.svg");
    let out = dir.join("run");
    let res = run(&[
        "generate",
        "--prompt",
        "a blue heart",
        "--model",
        tiny_sd().to_str().unwrap(),
        "--method",
        "sds",
        "--particles",
        "1",
        "--steps",
        "2",
        "--size",
        "64",
        "--init",
        init.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let rows = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(rows.lines().count(), 3, "{rows}");
    // --init: the particle keeps the init file's objects and shape count (SDS moves points, adds none).
    let init_doc = vecdream_core::import_svg(&init).unwrap().document;
    let p = vecdream_core::import_svg(&out.join("particle_0.svg"))
        .unwrap()
        .document;
    assert_eq!(p.shape_count(), init_doc.shape_count());
    assert!(out.join("particle_0.png").is_file());
}

#[test]
fn edit_moves_an_svg_toward_a_new_prompt() {
    let dir = scratch("edit");
    let input = shared("svg/twemoji/1f7e8.svg");
    let out = dir.join("edited");
    let res = run(&[
        "edit",
        input.to_str().unwrap(),
        "--source",
        "a yellow square",
        "--prompt",
        "a red square",
        "--model",
        tiny_sd().to_str().unwrap(),
        "--steps",
        "3",
        "--size",
        "64",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let before = vecdream_core::import_svg(&input).unwrap().document;
    let after = vecdream_core::import_svg(&out.join("particle_0.svg"))
        .unwrap()
        .document;
    assert_eq!(after.shape_count(), before.shape_count());
    assert_ne!(
        before.param_view().points,
        after.param_view().points,
        "DDS changed nothing"
    );
}

#[test]
fn vecdream_device_values_are_checked_at_start() {
    for (value, expected) in [
        ("gpu", "expected cpu, cuda or cuda:N"),
        ("cuda:x", "`x` is not a device number"),
    ] {
        let out = Command::new(BIN)
            .args(["info", shared("svg/twemoji/1f499.svg").to_str().unwrap()])
            .env("VECDREAM_DEVICE", value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "VECDREAM_DEVICE={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("VECDREAM_DEVICE={value}")) && err.contains(expected),
            "{err}"
        );
    }
    // A CUDA index past the devices here (none on a CPU host) is refused, not silently replaced.
    let out = Command::new(BIN)
        .args(["info", shared("svg/twemoji/1f499.svg").to_str().unwrap()])
        .env("VECDREAM_DEVICE", "cuda:63")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["info", shared("svg/twemoji/1f499.svg").to_str().unwrap()])
        .env("VECDREAM_DEVICE", "cpu")
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn doctor_exits_non_zero_when_libtorch_cannot_load() {
    // A libtorch_cpu.so that is not a library, found first through LD_LIBRARY_PATH (the binary's
    // RUNPATH comes after it): the real dynamic loader refuses it and nothing runs.
    let dir = scratch("broken-libtorch");
    std::fs::write(dir.join("libtorch_cpu.so"), b"not an ELF file").unwrap();
    let out = Command::new(BIN)
        .arg("doctor")
        .env("LD_LIBRARY_PATH", &dir)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "doctor succeeded with a broken libtorch"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("libtorch_cpu.so"), "{err}");
}

/// Every SVG the tests use (`tests/data/svg`, recursively), sorted.
fn all_test_svgs() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "svg") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&shared("svg"), &mut out);
    out.sort();
    out
}

/// Every test SVG extruded to GLB, then the Khronos glTF-Validator and three.js GLTFLoader on all of them
/// (`scripts/check-glb`, one Node process). Every 12th SVG goes through the real `vecdream extrude` and
/// `vecdream info` processes (each start loads libtorch, ≈0.5 s), the others through the same function
/// in-process (`vecdream_app::io::export_glb`, what the subcommand calls). Node is required: CI installs it
/// through scripts/setup.
#[test]
fn extrude_every_test_svg_to_a_validator_clean_glb() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "Node.js is not installed (`node --version` failed: {node:?}): the GLB checks need it; \
         run scripts/setup (installs nodejs, npm and tools/glb-check's packages)"
    );
    let svgs = all_test_svgs();
    assert!(svgs.len() >= 100, "{} SVGs", svgs.len());
    let dir = scratch("extrude");
    let glbs: Vec<PathBuf> = svgs
        .iter()
        .map(|svg| {
            let family = svg.parent().unwrap().file_name().unwrap().to_str().unwrap();
            let stem = svg.file_stem().unwrap().to_str().unwrap();
            dir.join(format!("{family}-{stem}.glb"))
        })
        .collect();
    let options = vecdream_core::extrude::ExtrudeOptions::default();
    for (i, (svg, glb)) in svgs.iter().zip(&glbs).enumerate() {
        if i % 12 != 0 {
            let doc = vecdream_core::import_svg(svg).unwrap().document;
            vecdream_app::io::export_glb(&doc, glb, &options)
                .unwrap_or_else(|e| panic!("{}: {e:#}", svg.display()));
            continue;
        }
        let out = ok(&[
            "extrude",
            svg.to_str().unwrap(),
            "-o",
            glb.to_str().unwrap(),
        ]);
        let info = ok(&["info", glb.to_str().unwrap()]);
        let mesh = vecdream_core::glb::read_glb(glb).unwrap();
        assert!(mesh.triangle_count() > 0, "{}: empty", svg.display());
        let totals = format!(
            "{} parts, {} vertices, {} triangles",
            mesh.parts.len(),
            mesh.vertex_count(),
            mesh.triangle_count()
        );
        assert!(
            info.contains(&totals) && out.contains(&totals),
            "{info}\n{out}"
        );
        for part in &mesh.parts {
            let line = format!(
                "part \"{}\": {} vertices, {} triangles",
                part.name,
                part.vertex_count(),
                part.triangle_count()
            );
            assert!(info.contains(&line), "{info}");
        }
    }
    // What the test SVGs lack: gradients (mean colour), dashes, translucency (BLEND material), hidden shapes;
    // and a mesh with an empty part (a node without a mesh).
    let mut glbs = glbs;
    let layered = dir.join("layered.svg");
    std::fs::write(&layered, LAYERED_SVG).unwrap();
    glbs.push(dir.join("layered.glb"));
    let out = ok(&[
        "extrude",
        layered.to_str().unwrap(),
        "-o",
        glbs.last().unwrap().to_str().unwrap(),
    ]);
    assert!(
        out.contains("note: 1 gradient") && out.contains("mean colour") && out.contains("1 hidden"),
        "{out}"
    );
    assert!(out.contains("3 parts"), "{out}");
    use vecdream_core::mesh::{Mesh, MeshPart};
    let triangle = MeshPart {
        name: "triangle".into(),
        positions: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        normals: vec![[0.0, 0.0, 1.0]; 3],
        colors: vec![[1.0, 0.0, 0.0, 1.0]; 3],
        indices: vec![0, 1, 2],
    };
    let empty = MeshPart {
        name: "empty".into(),
        ..MeshPart::default()
    };
    glbs.push(dir.join("with-empty-part.glb"));
    vecdream_core::glb::write_glb(
        glbs.last().unwrap(),
        &Mesh {
            parts: vec![empty, triangle],
        },
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check-glb");
    let out = Command::new(&script).args(&glbs).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (mut warnings, mut infos, mut lines) = (0, 0, 0);
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["errors"], 0, "validator errors: {line}");
        assert_eq!(v["loaded"], true, "three.js could not load it: {line}");
        warnings += v["warnings"].as_u64().unwrap();
        infos += v["infos"].as_u64().unwrap();
        lines += 1;
    }
    assert!(
        out.status.success() && lines == glbs.len(),
        "scripts/check-glb failed ({} lines for {} files):\n{stdout}\n{}",
        lines,
        glbs.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "glTF-Validator: {lines} files, 0 errors, {warnings} warnings, {infos} infos; three.js loaded all"
    );
}

const LAYERED_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">
  <defs><linearGradient id="g"><stop offset="0" stop-color="#000"/><stop offset="1" stop-color="#fff"/></linearGradient></defs>
  <g id="back"><rect x="0" y="0" width="200" height="100" fill="#3366cc"/></g>
  <g id="middle"><rect x="20" y="20" width="50" height="50" fill="url(#g)" stroke="#ff0000" stroke-width="2" stroke-dasharray="4 2"/></g>
  <g id="ghost"><rect id="hid" x="0" y="0" width="10" height="10" fill="#0f0" display="none"/></g>
  <g id="front"><circle cx="100" cy="50" r="10" fill="#ffffff" fill-opacity="0.5"/></g>
</svg>"##;

#[test]
fn extrude_and_info_errors_name_the_file() {
    let dir = scratch("extrude-errors");
    let missing = dir.join("missing.svg");
    let out = run(&[
        "extrude",
        missing.to_str().unwrap(),
        "-o",
        dir.join("x.glb").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.svg"));
    let empty = dir.join("empty.svg");
    std::fs::write(
        &empty,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"/>"#,
    )
    .unwrap();
    let out = run(&[
        "extrude",
        empty.to_str().unwrap(),
        "-o",
        dir.join("e.glb").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("empty.svg") && err.contains("nothing to extrude"),
        "{err}"
    );
    assert!(!dir.join("e.glb").exists());
    let bad = dir.join("bad.glb");
    std::fs::write(&bad, b"not a glb at all").unwrap();
    let out = run(&["info", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad.glb") && err.contains("bad magic"),
        "{err}"
    );
    let svg = shared("svg/twemoji/1f404.svg");
    let out = run(&[
        "extrude",
        svg.to_str().unwrap(),
        "-o",
        dir.join("c.glb").to_str().unwrap(),
        "--depth",
        "0",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("depth"), "{err}");
}
