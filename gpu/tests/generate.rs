//! Generation in a style on CPU: vectorised starts (reference teacher and the tiny Stable
//! Diffusion fixture with attention masks), the six styles' invariants on the exported SVG,
//! palettes, recolouring, adaptive primitive control, per-particle topologies.

use std::path::PathBuf;

use vecdream_core::{
    ContentType, Document, GenerationOptions, ObjectChild, Palette, Style, SvgOptions,
};
use vecdream_gpu::distill::{
    Distiller, GuidanceSpec, ReferenceConfig, ReferenceMode, ReferenceTeacher,
};
use vecdream_gpu::generate::{
    GenerateSetup, StartSample, StartsFrom, build_with_starts, distill_config, masks,
    recolor::{RecolorSettings, recolor},
    start_document,
    target::FitGuidance,
};
use vecdream_gpu::tch::{Device, Kind, Tensor};
use vecdream_gpu::vectorize::TargetImage;

fn data(rel: &str) -> PathBuf {
    vecdream_core::testing::test_data_dir().join(rel)
}

/// Twemoji rendered by resvg at `size` px, straight RGBA8.
fn emoji(name: &str, size: u32) -> (u32, u32, Vec<u8>) {
    let path = data(&format!("svg/twemoji/{name}.svg"));
    let svg = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let img = vecdream_core::png::render_svg_str(&svg, size, size, &path).unwrap();
    (img.width, img.height, img.data)
}

/// Multi-part emoji: cow, desert island, steaming bowl, owl.
const REFS: [&str; 4] = ["1f404", "1f3dd", "1f35c", "1f989"];

fn reference_spec(size: usize) -> GuidanceSpec {
    GuidanceSpec::Reference {
        images: REFS.iter().map(|n| emoji(n, 128)).collect(),
        config: ReferenceConfig {
            mode: ReferenceMode::Vpsd,
            resolution: size as i64,
            ..ReferenceConfig::default()
        },
    }
}

/// Runs a short reference-teacher generation; returns the particles' documents.
fn generate(setup: &GenerateSetup) -> Vec<Document> {
    let starts = StartsFrom::Samples {
        setup: setup.clone(),
        sample_steps: 10,
    };
    let (g, docs) = build_with_starts(
        reference_spec(setup.size),
        &starts,
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    let docs = docs.expect("sample starts");
    let config = distill_config(setup, docs[0].width.max(docs[0].height));
    let mut d = Distiller::from_starts(docs, config, g, Device::Cpu).unwrap();
    while !d.is_finished() {
        let r = d.step().unwrap();
        assert!(
            r.skipped.is_none(),
            "step {} skipped: {:?}",
            r.step,
            r.skipped
        );
    }
    d.particle_documents().unwrap()
}

fn export_and_reimport(doc: &Document, name: &str) -> (String, Document) {
    let svg = vecdream_core::to_svg_string(doc, &SvgOptions::default());
    let back = Document::from_svg_str(&svg, name).unwrap().document;
    (svg, back)
}

#[test]
fn every_style_keeps_its_invariants_to_the_exported_svg() {
    for style in Style::ALL {
        let options = GenerationOptions {
            style,
            paths: Some(match style {
                Style::PixelArt => 256,
                Style::Painting => 48,
                _ => 24,
            }),
            adaptive: style == Style::Iconography,
            ..GenerationOptions::default()
        };
        let mut setup = GenerateSetup::new(options, 2, 48, 7);
        setup.steps = 12;
        let docs = generate(&setup);
        assert_eq!(docs.len(), 2);
        let preset = setup.options.preset();
        for (i, doc) in docs.iter().enumerate() {
            assert!(doc.shape_count() > 0, "{style}: particle {i} is empty");
            let (svg, back) = export_and_reimport(doc, &format!("{style}-{i}.svg"));
            preset
                .check_document(&back)
                .unwrap_or_else(|e| panic!("{style}, particle {i}: {e}\n{svg}"));
            // The hierarchy is in the export: objects and components as labelled groups.
            assert!(
                svg.matches("<g ").count() >= 2 && svg.contains("inkscape:label"),
                "{style}: no object/component groups"
            );
            assert!(
                back.objects.iter().any(|o| o
                    .children
                    .iter()
                    .any(|c| matches!(c, ObjectChild::Component(_)))),
                "{style}: no components"
            );
        }
    }
}

#[test]
fn particles_start_from_distinct_vectorised_samples_with_their_own_ids() {
    let options = GenerationOptions {
        paths: Some(32),
        ..GenerationOptions::default()
    };
    let mut setup = GenerateSetup::new(options, 4, 64, 3);
    setup.steps = 1;
    let starts = StartsFrom::Samples {
        setup: setup.clone(),
        sample_steps: 10,
    };
    let (g, docs) =
        build_with_starts(reference_spec(64), &starts, Device::Cpu, &mut |_, _| {}).unwrap();
    let docs = docs.unwrap();
    // Each particle's sample is a different reference: the teacher's PSNR to its nearest target
    // is high and the nearest targets are all distinct.
    let teacher = ReferenceTeacher::from_rgba8(
        &REFS.iter().map(|n| emoji(n, 128)).collect::<Vec<_>>(),
        64,
        Device::Cpu,
    )
    .unwrap();
    let config = distill_config(&setup, 64.0);
    let d = Distiller::from_starts(docs.clone(), config, g, Device::Cpu).unwrap();
    assert_eq!(d.group_count(), 4, "one topology per particle");
    let images = d.render().unwrap().detach();
    let psnr = teacher.psnr(&images);
    let mut nearest: Vec<usize> = psnr
        .iter()
        .map(|row| {
            (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap()
        })
        .collect();
    for (i, row) in psnr.iter().enumerate() {
        let best = row.iter().copied().fold(f64::MIN, f64::max);
        assert!(
            best > 20.0,
            "particle {i} starts at only {best:.1} dB: {row:?}"
        );
    }
    nearest.sort();
    nearest.dedup();
    assert_eq!(
        nearest.len(),
        4,
        "4 particles start on 4 distinct references"
    );
    // Ids are disjoint across particles, so a lock reaches exactly one particle.
    let ids: Vec<std::collections::HashSet<_>> = docs
        .iter()
        .map(|d| d.node_ids().into_iter().collect())
        .collect();
    for a in 0..4 {
        for b in a + 1..4 {
            assert!(
                ids[a].is_disjoint(&ids[b]),
                "particles {a} and {b} share ids"
            );
        }
    }
}

#[test]
fn a_lock_in_one_particle_freezes_that_particle_only() {
    let options = GenerationOptions {
        paths: Some(16),
        ..GenerationOptions::default()
    };
    let mut setup = GenerateSetup::new(options, 2, 48, 11);
    setup.steps = 6;
    let starts = StartsFrom::Samples {
        setup: setup.clone(),
        sample_steps: 10,
    };
    let (g, docs) =
        build_with_starts(reference_spec(48), &starts, Device::Cpu, &mut |_, _| {}).unwrap();
    let docs = docs.unwrap();
    let config = distill_config(&setup, 48.0);
    let mut d = Distiller::from_starts(docs.clone(), config, g, Device::Cpu).unwrap();
    let locked: Vec<_> = docs[0]
        .shape_entries()
        .iter()
        .map(|e| e.shape.meta.id)
        .collect();
    d.set_locks(&locked.iter().map(|&id| (id, true)).collect::<Vec<_>>())
        .unwrap();
    while !d.is_finished() {
        d.step().unwrap();
    }
    let after = d.particle_documents().unwrap();
    assert_eq!(
        after[0].param_view().points,
        docs[0].param_view().points,
        "particle 0 is locked"
    );
    assert_ne!(
        after[1].param_view().points,
        docs[1].param_view().points,
        "particle 1 moves"
    );
}

#[test]
fn per_particle_runs_resume_bit_identically_from_a_checkpoint() {
    let options = GenerationOptions {
        paths: Some(16),
        adaptive: true,
        ..GenerationOptions::default()
    };
    let mut setup = GenerateSetup::new(options, 2, 48, 5);
    setup.steps = 24;
    let make = || {
        let starts = StartsFrom::Samples {
            setup: setup.clone(),
            sample_steps: 10,
        };
        build_with_starts(reference_spec(48), &starts, Device::Cpu, &mut |_, _| {}).unwrap()
    };
    let (g, docs) = make();
    let docs = docs.unwrap();
    let config = distill_config(&setup, 48.0);
    let mut straight =
        Distiller::from_starts(docs.clone(), config.clone(), g, Device::Cpu).unwrap();
    while !straight.is_finished() {
        straight.step().unwrap();
    }
    let (g, _) = make();
    let mut first = Distiller::from_starts(docs, config, g, Device::Cpu).unwrap();
    for _ in 0..10 {
        first.step().unwrap();
    }
    let dir = std::env::temp_dir().join(format!("vd-gen-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("run.safetensors");
    first.save_checkpoint(&ckpt).unwrap();
    let (g, _) = make();
    let mut second = Distiller::resume(&ckpt, g, Device::Cpu).unwrap();
    assert_eq!(second.step_index(), 10);
    while !second.is_finished() {
        second.step().unwrap();
    }
    assert_eq!(
        straight.particle_documents().unwrap(),
        second.particle_documents().unwrap(),
        "resumed run differs"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two discs (red left-top, blue right-bottom) on white, and attention maps peaking on them.
fn two_blob_sample(size: usize) -> (TargetImage, Vec<Tensor>) {
    let mut px = vec![255u8; size * size * 4];
    let (a, b) = (size as f64 * 0.3, size as f64 * 0.7);
    let r = size as f64 * 0.16;
    for y in 0..size {
        for x in 0..size {
            let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
            let i = (y * size + x) * 4;
            if (fx - a).hypot(fy - a) < r {
                px[i..i + 3].copy_from_slice(&[220, 40, 40]);
            } else if (fx - b).hypot(fy - b) < r {
                px[i..i + 3].copy_from_slice(&[40, 60, 220]);
            }
        }
    }
    let img = TargetImage::from_rgba8(size, size, &px).unwrap();
    let map = |c: f64| {
        let n = 16i64;
        let v: Vec<f32> = (0..n * n)
            .map(|i| {
                let (x, y) = ((i % n) as f64 + 0.5, (i / n) as f64 + 0.5);
                let s = n as f64 / size as f64;
                (-((x - c * s).powi(2) + (y - c * s).powi(2)) / 6.0).exp() as f32
            })
            .collect();
        Tensor::from_slice(&v).view([n, n])
    };
    (img, vec![map(a), map(b)])
}

#[test]
fn two_attention_blobs_yield_two_objects_whose_shapes_start_inside_them() {
    let size = 64;
    let (image, maps) = two_blob_sample(size);
    let masks = masks::object_masks(&maps, size);
    let sample = StartSample {
        image,
        objects: vec![
            ("cat".into(), masks[0].clone()),
            ("hat".into(), masks[1].clone()),
        ],
        attention: None,
    };
    let options = GenerationOptions {
        paths: Some(24),
        objects: vec!["cat".into(), "hat".into()],
        content: ContentType::Subject,
        ..GenerationOptions::default()
    };
    let setup = GenerateSetup::new(options, 1, size, 1);
    let doc = start_document(&sample, &setup, 0, Device::Cpu).unwrap();
    let names: Vec<&str> = doc.objects.iter().map(|o| o.meta.name.as_str()).collect();
    assert!(
        names.contains(&"cat") && names.contains(&"hat"),
        "{names:?}"
    );
    for o in &doc.objects {
        let centre = if o.meta.name == "cat" { 0.3 } else { 0.7 } * size as f64;
        assert!(o.shapes().count() > 0, "{} has no shapes", o.meta.name);
        for s in o.shapes() {
            let bb = s.bounding_box();
            let c = bb.center();
            assert!(
                (c.x - centre).abs() < size as f64 * 0.2
                    && (c.y - centre).abs() < size as f64 * 0.2,
                "a shape of {} starts at {c:?}, outside its blob at {centre}",
                o.meta.name
            );
        }
        assert!(
            o.children
                .iter()
                .all(|c| matches!(c, ObjectChild::Component(_))),
            "shapes sit in components"
        );
    }
}

#[test]
fn tiny_sd_samples_give_one_object_per_word_and_groups_in_the_export() {
    let model = vecdream_core::testing::test_data_dir().join("../fixtures/tiny-sd21");
    let mut sd = vecdream_gpu::sd::StableDiffusion::load(&model, Device::Cpu, Kind::Float).unwrap();
    let options = GenerationOptions {
        paths: Some(16),
        objects: vec!["cat".into(), "hat".into()],
        content: ContentType::Scene,
        ..GenerationOptions::default()
    };
    let setup = GenerateSetup::new(options, 2, 32, 0);
    let docs = vecdream_gpu::generate::sd_starts(
        &mut sd,
        "a photo of a cat wearing a hat",
        "",
        &setup,
        4,
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(docs.len(), 2);
    for doc in &docs {
        let names: Vec<&str> = doc.objects.iter().map(|o| o.meta.name.as_str()).collect();
        assert!(
            names.contains(&"cat") && names.contains(&"hat") && names.contains(&"background"),
            "{names:?}"
        );
        let svg = vecdream_core::to_svg_string(doc, &SvgOptions::default());
        for w in ["cat", "hat"] {
            assert!(
                svg.contains(&format!("inkscape:label=\"{w}\"")),
                "no group for {w}"
            );
        }
    }
    // A word that is not in the prompt is refused by name.
    let bad = GenerateSetup::new(
        GenerationOptions {
            objects: vec!["zebra".into()],
            ..GenerationOptions::default()
        },
        1,
        32,
        0,
    );
    let e = vecdream_gpu::generate::sd_starts(
        &mut sd,
        "a photo of a cat",
        "",
        &bad,
        2,
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("zebra"), "{e}");
}

fn svg_colours(svg: &str) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["fill=\"#", "stroke=\"#"] {
        let mut rest = svg;
        while let Some(i) = rest.find(key) {
            let c = &rest[i + key.len() - 1..i + key.len() + 6];
            out.push(c.to_ascii_lowercase());
            rest = &rest[i + key.len()..];
        }
    }
    out
}

#[test]
fn a_palette_limits_every_exported_colour_to_its_colours() {
    let palette = Palette::parse("#1d3557,#e63946,#f1faee,#a8dadc").unwrap();
    let options = GenerationOptions {
        paths: Some(24),
        palette: Some(palette.clone()),
        ..GenerationOptions::default()
    };
    let mut setup = GenerateSetup::new(options, 2, 48, 2);
    setup.steps = 10;
    let allowed: Vec<String> = palette
        .colors
        .iter()
        .map(|c| vecdream_core::Rgba::from_rgb8(c[0], c[1], c[2], 1.0).to_hex())
        .collect();
    for doc in generate(&setup) {
        let svg = vecdream_core::to_svg_string(&doc, &SvgOptions::default());
        let used = svg_colours(&svg);
        assert!(!used.is_empty());
        for c in used {
            assert!(
                allowed.contains(&c),
                "{c} is not in the palette {allowed:?}"
            );
        }
        assert!(!svg.contains("Gradient"), "palette fills are solid");
    }
}

#[test]
fn recolouring_changes_colours_and_leaves_every_coordinate_bit_identical() {
    let path = data("svg/twemoji/1f404.svg");
    let doc = vecdream_core::import_svg(&path).unwrap().document;
    let before = vecdream_core::to_svg_string(&doc, &SvgOptions::default());
    let geometry = |d: &Document| {
        d.shape_entries()
            .iter()
            .map(|e| {
                (
                    e.shape.subpaths.clone(),
                    e.shape.stroke.as_ref().map(|s| s.width),
                )
            })
            .collect::<Vec<_>>()
    };
    // A palette alone.
    let palette = Palette::parse("#264653,#2a9d8f,#e9c46a,#f4a261,#e76f51").unwrap();
    let settings = RecolorSettings {
        palette: Some(palette.clone()),
        ..RecolorSettings::default()
    };
    let out = recolor(&doc, None, &settings, Device::Cpu, &mut |_, _| {}).unwrap();
    assert_eq!(geometry(&out), geometry(&doc), "geometry moved (palette)");
    let svg = vecdream_core::to_svg_string(&out, &SvgOptions::default());
    assert_ne!(svg, before);
    // Toward an image (another emoji's colours), limited to the palette.
    let (w, h, px) = emoji("1f3dd", 64);
    let t = Tensor::from_slice(&px)
        .view([h as i64, w as i64, 4])
        .permute([2, 0, 1])
        .narrow(0, 0, 3)
        .to_kind(Kind::Float)
        .unsqueeze(0)
        / 255.0;
    let settings = RecolorSettings {
        steps: 8,
        size: 64,
        palette: Some(palette),
        ..RecolorSettings::default()
    };
    let guided = recolor(
        &doc,
        Some(Box::new(FitGuidance::new(t))),
        &settings,
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(geometry(&guided), geometry(&doc), "geometry moved (image)");
    assert_ne!(
        guided.param_view().fill,
        doc.param_view().fill,
        "colours changed"
    );
}

fn psnr_to(d: &Distiller, target: &Tensor) -> f64 {
    let img = d.render().unwrap().detach();
    let mse = (img - target).square().mean(Kind::Double).double_value(&[]);
    -10.0 * mse.log10()
}

#[test]
fn adaptive_control_changes_the_shape_count_within_budget_without_losing_psnr() {
    // Start from a coarse vectorisation of a detailed emoji, fit toward the full picture.
    let (w, h, px) = emoji("1f35c", 64);
    let img = TargetImage::from_rgba8(w as usize, h as usize, &px).unwrap();
    let options = GenerationOptions {
        paths: Some(40),
        adaptive: true,
        ..GenerationOptions::default()
    };
    let mut setup = GenerateSetup::new(options.clone(), 1, 64, 4);
    setup.steps = 40;
    let coarse = GenerateSetup::new(
        GenerationOptions {
            paths: Some(10),
            ..options
        },
        1,
        64,
        4,
    );
    let sample = StartSample {
        image: img.clone(),
        objects: Vec::new(),
        attention: None,
    };
    let doc = start_document(&sample, &coarse, 0, Device::Cpu).unwrap();
    let target = vecdream_gpu::generate::target::over_white(&img).to_tensor(Device::Cpu);
    let mut config = distill_config(&setup, 64.0);
    config.lr.points = 2.0;
    let budget = 40;
    let mut d = Distiller::new(
        &doc,
        config,
        Box::new(FitGuidance::new(target.shallow_clone())),
        Device::Cpu,
    )
    .unwrap();
    let start_count = d.shape_counts()[0];
    let start_psnr = psnr_to(&d, &target);
    let mut counts = vec![start_count];
    while !d.is_finished() {
        let r = d.step().unwrap();
        let n = r.terms.iter().find(|(k, _)| k == "shapes").unwrap().1 as usize;
        assert!(n <= budget, "{n} shapes over the budget {budget}");
        counts.push(n);
    }
    let end_psnr = psnr_to(&d, &target);
    assert!(
        counts.iter().any(|&c| c != start_count),
        "the shape count never changed: {counts:?}"
    );
    assert!(
        end_psnr >= start_psnr,
        "PSNR dropped: {start_psnr:.2} → {end_psnr:.2} dB ({counts:?})"
    );
    eprintln!("shapes {counts:?}, PSNR {start_psnr:.2} → {end_psnr:.2} dB");
}
