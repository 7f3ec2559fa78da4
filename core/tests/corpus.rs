//! Real files: every shared SVG imports, renders like the original (PSNR ≥ 40 dB at 256 px)
//! and survives import → export → import as a fixed point.

use std::path::{Path, PathBuf};

use vecdream_core::metrics::{composite_rgb, psnr};
use vecdream_core::{
    Document, GradientStop, ObjectChild, Paint, Shape, SvgOptions, import_svg, render_svg_str,
    test_data_dir,
};

/// Render size of the comparison.
const SIZE: u32 = 256;
/// Required agreement between the original and our export, both rendered by resvg.
const MIN_PSNR_DB: f64 = 40.0;
/// Round trip tolerance (document units and colour channels).
const TOL: f64 = 1e-4;

fn corpus(name: &str, min_files: usize) -> Vec<PathBuf> {
    let dir = test_data_dir().join("svg").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "svg"))
        .collect();
    files.sort();
    assert!(
        files.len() >= min_files,
        "{}: only {} SVGs",
        dir.display(),
        files.len()
    );
    files
}

fn close(a: f64, b: f64, what: &str, ctx: &str) {
    assert!((a - b).abs() <= TOL, "{ctx}: {what} {a} vs {b}");
}

fn stops_close(a: &[GradientStop], b: &[GradientStop], ctx: &str) {
    assert_eq!(a.len(), b.len(), "{ctx}: stops");
    for (x, y) in a.iter().zip(b) {
        close(f64::from(x.offset), f64::from(y.offset), "stop offset", ctx);
        for (u, v) in x.color.to_array().iter().zip(y.color.to_array()) {
            close(f64::from(*u), f64::from(v), "stop colour", ctx);
        }
    }
}

fn affine_close(a: kurbo::Affine, b: kurbo::Affine, ctx: &str) {
    for (u, v) in a.as_coeffs().iter().zip(b.as_coeffs()) {
        close(*u, v, "gradient transform", ctx);
    }
}

fn paint_close(a: &Paint, b: &Paint, ctx: &str) {
    match (a, b) {
        (Paint::Solid(x), Paint::Solid(y)) => {
            for (u, v) in x.to_array().iter().zip(y.to_array()) {
                close(f64::from(*u), f64::from(v), "colour", ctx);
            }
        }
        (Paint::Linear(x), Paint::Linear(y)) => {
            stops_close(&x.stops, &y.stops, ctx);
            for (p, q, what) in [(x.start, y.start, "x1/y1"), (x.end, y.end, "x2/y2")] {
                close(p.x, q.x, what, ctx);
                close(p.y, q.y, what, ctx);
            }
            affine_close(x.transform, y.transform, ctx);
            assert_eq!(x.spread, y.spread, "{ctx}: spread");
        }
        (Paint::Radial(x), Paint::Radial(y)) => {
            stops_close(&x.stops, &y.stops, ctx);
            for (p, q, what) in [(x.center, y.center, "cx/cy"), (x.focal, y.focal, "fx/fy")] {
                close(p.x, q.x, what, ctx);
                close(p.y, q.y, what, ctx);
            }
            close(x.radius, y.radius, "r", ctx);
            close(x.focal_radius, y.focal_radius, "fr", ctx);
            affine_close(x.transform, y.transform, ctx);
            assert_eq!(x.spread, y.spread, "{ctx}: spread");
        }
        _ => panic!("{ctx}: paint kinds differ: {a:?} vs {b:?}"),
    }
}

fn shape_close(a: &Shape, b: &Shape, ctx: &str) {
    let ctx = format!("{ctx} shape \"{}\"", a.meta.name);
    assert_eq!(
        (
            &a.meta.name,
            a.meta.locked,
            a.meta.hidden,
            a.kind,
            a.fill_rule
        ),
        (
            &b.meta.name,
            b.meta.locked,
            b.meta.hidden,
            b.kind,
            b.fill_rule
        ),
        "{ctx}"
    );
    assert_eq!(a.subpaths.len(), b.subpaths.len(), "{ctx}: subpaths");
    for (x, y) in a.subpaths.iter().zip(&b.subpaths) {
        assert_eq!(
            (x.points.len(), x.closed),
            (y.points.len(), y.closed),
            "{ctx}"
        );
        for (p, q) in x.points.iter().zip(&y.points) {
            close(p.x, q.x, "x", &ctx);
            close(p.y, q.y, "y", &ctx);
        }
    }
    match (&a.fill, &b.fill) {
        (Some(x), Some(y)) => paint_close(x, y, &ctx),
        (None, None) => {}
        _ => panic!("{ctx}: fill presence differs"),
    }
    match (&a.stroke, &b.stroke) {
        (Some(x), Some(y)) => {
            paint_close(&x.paint, &y.paint, &ctx);
            close(x.width, y.width, "stroke width", &ctx);
            assert_eq!((x.cap, x.join), (y.cap, y.join), "{ctx}");
        }
        (None, None) => {}
        _ => panic!("{ctx}: stroke presence differs"),
    }
}

/// Same tree (names, flags, structure) and numbers within [`TOL`]; ids may differ.
fn assert_fixed_point(a: &Document, b: &Document, ctx: &str) {
    close(a.width, b.width, "width", ctx);
    close(a.height, b.height, "height", ctx);
    assert_eq!(a.objects.len(), b.objects.len(), "{ctx}: objects");
    for (x, y) in a.objects.iter().zip(&b.objects) {
        assert_eq!(
            (&x.meta.name, x.meta.locked, x.meta.hidden, x.children.len()),
            (&y.meta.name, y.meta.locked, y.meta.hidden, y.children.len()),
            "{ctx}"
        );
        for (c, d) in x.children.iter().zip(&y.children) {
            match (c, d) {
                (ObjectChild::Shape(s), ObjectChild::Shape(t)) => shape_close(s, t, ctx),
                (ObjectChild::Component(s), ObjectChild::Component(t)) => {
                    assert_eq!(
                        (&s.meta.name, s.meta.locked, s.meta.hidden, s.shapes.len()),
                        (&t.meta.name, t.meta.locked, t.meta.hidden, t.shapes.len()),
                        "{ctx}"
                    );
                    for (u, v) in s.shapes.iter().zip(&t.shapes) {
                        shape_close(u, v, ctx);
                    }
                }
                _ => panic!("{ctx}: child kinds differ"),
            }
        }
    }
}

fn check_corpus(name: &str, min_files: usize) {
    let mut scores = Vec::new();
    let mut failures = Vec::new();
    for file in corpus(name, min_files) {
        let ctx = file.display().to_string();
        let imported = import_svg(&file).unwrap_or_else(|e| panic!("{e}"));
        let doc = imported.document;
        assert!(doc.shape_count() > 0, "{ctx}: no shapes");
        doc.validate().unwrap_or_else(|e| panic!("{ctx}: {e}"));

        let original = std::fs::read_to_string(&file).unwrap();
        let exported = doc.to_svg_string(&SvgOptions::default());
        let a = render_svg_str(&original, SIZE, SIZE, &file).unwrap();
        let b = render_svg_str(&exported, SIZE, SIZE, Path::new("export")).unwrap();
        let score = psnr(
            &composite_rgb(&a.data, [255; 3]),
            &composite_rgb(&b.data, [255; 3]),
        )
        .unwrap();
        if score < MIN_PSNR_DB {
            failures.push(format!("{ctx}: {score:.2} dB"));
        }
        scores.push(score.min(99.0)); // identical renders count as 99 dB in the mean

        let again = Document::from_svg_str(&exported, "export")
            .unwrap_or_else(|e| panic!("{ctx}: re-import: {e}"))
            .document;
        assert_fixed_point(&doc, &again, &ctx);
    }
    let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    println!(
        "{name}: {} files, PSNR min {min:.2} dB, mean {mean:.2} dB (identical = 99)",
        scores.len()
    );
    assert!(failures.is_empty(), "below {MIN_PSNR_DB} dB: {failures:#?}");
}

#[test]
fn corpus_twemoji_round_trip() {
    check_corpus("twemoji", 50);
}

#[test]
fn corpus_tabler_round_trip() {
    check_corpus("tabler", 50);
}

#[test]
fn gradient_files_render_like_the_original_and_round_trip() {
    // Every gradient field (stops, axes, centres, focal points, transforms, spread) must survive.
    check_corpus("gradients", 6);
}
