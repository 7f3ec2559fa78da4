//! SVG/PNG I/O: error handling, metadata round trip, gradients, arcs, text, PNG export.

use std::path::Path;

use kurbo::{ParamCurve as _, Point};
use vecdream_core::metrics::{composite_rgb, psnr};
use vecdream_core::svg_import::MAX_SVG_BYTES;
use vecdream_core::{
    Document, Error, NodeKind, Paint, PrimitiveKind, SvgOptions, import_svg, render_png,
    render_rgba, render_svg_str,
};

fn tmp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vecdream-core-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn import_rejects_bad_input_with_named_errors() {
    let cases: [(&[u8], &str); 5] = [
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "not UTF-8"),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'><g></svg>",
            "broken XML",
        ),
        (b"<html/>", "expected <svg>"),
        (b"just text", "broken XML"),
        (b"", "broken XML"),
    ];
    for (bytes, want) in cases {
        let err = Document::from_svg_bytes(bytes, "bad.svg").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("bad.svg: ") && msg.contains(want), "{msg}");
    }
}

#[test]
fn import_rejects_zero_view_box() {
    for svg in [
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 0 0"><path d="M0 0L1 1"/></svg>"#,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="0" height="10"><path d="M0 0L1 1"/></svg>"#,
    ] {
        let err = Document::from_svg_str(svg, "zero.svg").unwrap_err();
        assert_eq!(
            err,
            Error::InvalidSize {
                path: "zero.svg".into()
            },
            "{svg}"
        );
    }
}

#[test]
fn import_rejects_nan_coordinates() {
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">
        <path d="M0 0 L NaN 5 L 3 3Z"/></svg>"#;
    let err = Document::from_svg_str(svg, "nan.svg").unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::NotFinite { .. }) && msg.contains("nan.svg") && msg.contains("line 2"),
        "{msg}"
    );
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">
        <rect x="1" y="1" width="2" height="2" transform="scale(1e39)"/></svg>"#;
    // 1e39 overflows f32 inside usvg: whatever happens, no panic and no non-finite document.
    if let Ok(import) = Document::from_svg_str(svg, "huge-scale.svg") {
        import.document.validate().unwrap();
    }
}

#[test]
fn import_rejects_huge_and_missing_files() {
    let dir = tmp_dir("huge");
    let p = dir.join("huge.svg");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(MAX_SVG_BYTES + 1).unwrap(); // sparse: no real 64 MB write
    let err = import_svg(&p).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("huge.svg"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    let err = import_svg(Path::new("/no/such/file.svg")).unwrap_err();
    assert!(
        matches!(err, Error::Read { .. }) && err.to_string().contains("/no/such/file.svg"),
        "{err}"
    );
}

const RICH: &str = r##"<svg xmlns="http://www.w3.org/2000/svg"
    xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
    xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
    width="200" height="100" viewBox="10 20 100 50">
  <defs>
    <linearGradient id="lg" x1="0" y1="0" x2="1" y2="0">
      <stop offset="0" stop-color="#ff0000"/><stop offset="1" stop-color="#0000ff" stop-opacity="0.5"/>
    </linearGradient>
    <radialGradient id="rg" cx="60" cy="45" r="20" gradientUnits="userSpaceOnUse">
      <stop offset="0.2" stop-color="#ffff00"/><stop offset="1" stop-color="#008000"/>
    </radialGradient>
  </defs>
  <g id="cat" inkscape:label="The Cat" sodipodi:insensitive="true" transform="translate(5 0)">
    <g id="ear" opacity="0.5">
      <path id="left-ear" d="M20 30 Q 30 20 40 30 T 60 30 Z" fill="#336699"/>
      <g transform="rotate(10 30 40)"><rect id="deep" x="20" y="35" width="10" height="5" fill="url(#lg)"/></g>
    </g>
    <circle id="eye" cx="60" cy="45" r="10" fill="url(#rg)" fill-rule="evenodd"/>
    <path id="whisker" d="M70 40 A 10 5 0 0 1 90 40" fill="none" stroke="#000" stroke-width="1.5"
          stroke-linecap="round" stroke-linejoin="bevel" stroke-dasharray="2 1"/>
  </g>
  <g id="hidden-thing" display="none"><rect id="ghost" x="10" y="20" width="5" height="5" fill="#0f0"/></g>
  <rect id="loose" x="80" y="50" width="10" height="10" fill="#123456" fill-opacity="0.25"/>
</svg>"##;

#[test]
fn import_keeps_tree_names_flags_and_paints() {
    let imported = Document::from_svg_str(RICH, "rich.svg").unwrap();
    let doc = imported.document;
    assert_eq!(
        (doc.width, doc.height),
        (100.0, 50.0),
        "canvas is the view box"
    );
    let names: Vec<_> = doc.objects.iter().map(|o| o.meta.name.as_str()).collect();
    assert_eq!(names, ["The Cat", "hidden-thing", "object 3"]);
    assert!(doc.objects[0].meta.locked && !doc.objects[0].meta.hidden);
    assert!(
        doc.objects[1].meta.hidden,
        "display=none with an id is kept as hidden"
    );
    let ear = doc.objects[0].children[0].meta();
    assert_eq!(ear.name, "ear");
    let ear = doc.component(ear.id).unwrap();
    assert_eq!(
        ear.shapes.len(),
        2,
        "the nested rotated group is flattened into the component"
    );
    // Group opacity folded into the fill alpha.
    assert_eq!(
        ear.shapes[0].fill,
        Some(Paint::Solid(vecdream_core::Rgba::from_rgb8(
            0x33, 0x66, 0x99, 0.5
        )))
    );
    // translate(5 0) baked and the view box origin (10, 20) subtracted: (20,30) → (15,10).
    assert_eq!(ear.shapes[0].subpaths[0].points[0], Point::new(15.0, 10.0));
    // Quadratics are raised exactly: the first cubic control point is 2/3 towards (30,20).
    let c1 = ear.shapes[0].subpaths[0].points[1];
    assert!(
        (c1 - Point::new(15.0 + 20.0 / 3.0, 10.0 - 20.0 / 3.0)).hypot() < 1e-5,
        "{c1:?}"
    );
    assert!(
        matches!(ear.shapes[1].fill, Some(Paint::Linear(_))),
        "gradient kept"
    );
    let eye = doc.shape(doc.objects[0].children[1].meta().id).unwrap();
    assert!(matches!(eye.fill, Some(Paint::Radial(_))));
    assert_eq!(eye.fill_rule, vecdream_core::FillRule::EvenOdd);
    let whisker = doc.shape(doc.objects[0].children[2].meta().id).unwrap();
    assert_eq!(whisker.kind, PrimitiveKind::OpenPath);
    let st = whisker.stroke.as_ref().unwrap();
    assert_eq!(
        (st.width, st.cap, st.join),
        (
            1.5,
            vecdream_core::LineCap::Round,
            vecdream_core::LineJoin::Bevel
        )
    );
    assert_eq!(st.dash_array, vec![2.0, 1.0]);
    let loose = &doc.objects[2];
    assert_eq!(
        doc.kind_of(loose.children[0].meta().id),
        Some(NodeKind::Shape)
    );
    let alpha = loose
        .shapes()
        .next()
        .unwrap()
        .fill
        .as_ref()
        .unwrap()
        .mean_color()
        .a;
    assert_eq!(alpha, 0.25);
    let summary = doc.summary();
    assert!(
        summary.contains("object \"The Cat\" (4 shapes) [locked]"),
        "{summary}"
    );
    assert!(
        summary.contains("component \"ear\" (2 shapes)"),
        "{summary}"
    );
}

#[test]
fn export_round_trip_keeps_everything_and_renders_the_same() {
    let doc = Document::from_svg_str(RICH, "rich.svg").unwrap().document;
    let svg = doc.to_svg_string(&SvgOptions::default());
    assert!(svg.contains("xmlns:inkscape="), "{svg}");
    assert!(svg.contains(r#"id="cat" inkscape:label="The Cat" sodipodi:insensitive="true" data-vecdream-locked="true""#), "{svg}");
    assert!(
        svg.contains(r#"id="hidden-thing" inkscape:label="hidden-thing" display="none" "#),
        "{svg}"
    );
    assert!(
        svg.contains("<linearGradient") && svg.contains("<radialGradient"),
        "{svg}"
    );
    let again = Document::from_svg_str(&svg, "export.svg").unwrap().document;
    // Same structure and flags (ids are allocated afresh on import), numbers up to rounding.
    let (mut a, mut b) = (doc.param_view(), again.param_view());
    for s in a.slots.iter_mut().chain(b.slots.iter_mut()) {
        s.shape = vecdream_core::NodeId(0);
    }
    assert_eq!(a.slots, b.slots);
    assert_eq!(a.fill, b.fill);
    for (p, q) in a.points.iter().zip(&b.points) {
        assert!(
            (p[0] - q[0]).abs() < 1e-4 && (p[1] - q[1]).abs() < 1e-4,
            "{p:?} {q:?}"
        );
    }
    assert_eq!(doc.summary(), again.summary());
    // Render (the hidden object is not drawn in either).
    let orig = render_svg_str(RICH, 200, 100, Path::new("rich.svg")).unwrap();
    let ours = render_rgba(&doc, 200, 100).unwrap();
    let score = psnr(
        &composite_rgb(&orig.data, [255; 3]),
        &composite_rgb(&ours.data, [255; 3]),
    )
    .unwrap();
    // Group opacity is folded per shape; the two ear shapes do not overlap, so it is exact.
    assert!(score >= 40.0, "PSNR {score:.2} dB");
}

#[test]
fn export_precision_is_configurable() {
    let doc = Document::from_svg_str(RICH, "rich.svg").unwrap().document;
    let coarse = doc.to_svg_string(&SvgOptions {
        precision: 1,
        indent: false,
    });
    assert!(!coarse.contains('\n'));
    // 15 + 20/3 = 21.666… written with one decimal.
    assert!(coarse.contains("21.7 3.3"), "{coarse}");
}

#[test]
fn import_arcs_within_tolerance() {
    // usvg converts arcs and circles to cubics (≤ 90° each); check the distance of
    // sampled points to the true circle. The kappa approximation's radial error is
    // about 2.7e-4 · r, so r = 100 must stay within the 0.05 px budget.
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400">
        <circle id="c" cx="200" cy="200" r="100" fill="#000"/>
        <path id="a" d="M100 200 A 100 100 0 0 1 300 200" fill="none" stroke="#000"/></svg>"##;
    let doc = Document::from_svg_str(svg, "arc.svg").unwrap().document;
    let mut worst: f64 = 0.0;
    for e in doc.shape_entries() {
        for sp in &e.shape.subpaths {
            for seg in sp.segments(e.shape.kind) {
                for i in 0..=64 {
                    let p = seg.eval(f64::from(i) / 64.0);
                    worst = worst.max(((p - Point::new(200.0, 200.0)).hypot() - 100.0).abs());
                }
            }
        }
    }
    assert!(worst <= 0.05, "arc error {worst}");
}

#[test]
fn import_text_becomes_paths_with_the_system_font() {
    // scripts/setup installs DejaVu (fonts-dejavu-core), so text is converted to outlines; without a
    // font it is dropped with a warning (unit test `text_without_a_usable_font_is_dropped_with_a_warning`).
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 40">
        <text x="5" y="30" font-size="20" font-family="DejaVu Sans">Hi</text></svg>"#;
    let import = Document::from_svg_str(svg, "text.svg").unwrap();
    assert!(
        import.warnings.iter().all(|w| !w.contains("<text>")),
        "{:?}",
        import.warnings
    );
    assert!(
        import.document.shape_count() >= 1,
        "no outlines for the text"
    );
    // The outlines cover the glyphs' area: "Hi" at 20 px paints a few percent of the 100×40 canvas.
    let img = vecdream_core::render_rgba(&import.document, 100, 40).unwrap();
    let inked = img.data.chunks(4).filter(|p| p[3] > 128).count();
    assert!((40..1200).contains(&inked), "{inked} inked pixels");
}

#[test]
fn current_color_defaults_to_black() {
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" stroke="currentColor" fill="none">
        <path d="M1 1 L 20 20"/></svg>"#;
    let doc = Document::from_svg_str(svg, "cc.svg").unwrap().document;
    let s = doc.shape_entries()[0].shape;
    assert_eq!(
        s.stroke.as_ref().unwrap().paint,
        Paint::Solid(vecdream_core::Rgba::BLACK)
    );
}

#[test]
fn render_png_writes_requested_size() {
    let doc = Document::from_svg_str(RICH, "rich.svg").unwrap().document;
    let dir = tmp_dir("png");
    let p = dir.join("out.png");
    render_png(&doc, &p, 123, 45).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    // IHDR: width and height are big-endian u32 at bytes 16..24.
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((w, h), (123, 45));
    let err = render_png(&doc, &p, 0, 10).unwrap_err();
    assert!(err.to_string().contains("out.png"), "{err}");
    vecdream_core::export_svg(&doc, &dir.join("out.svg"), &SvgOptions::default()).unwrap();
    assert!(import_svg(&dir.join("out.svg")).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn import_rejects_absurd_numbers() {
    // Found by the fuzzer: an arc with a radius of ~4e73 made usvg flatten it into billions
    // of cubics (out of memory). Such numbers are refused up front.
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 36 36">
        <path d="M26.9 14.4a20.9 20.9 0 0 0-444444444444444444444444444444444444444444444444444444.3.9z" fill="#C1694F"/></svg>"##;
    let err = Document::from_svg_str(svg, "arc-bomb.svg").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("arc-bomb.svg") && msg.contains("outside the supported range"),
        "{msg}"
    );
    // Ordinary numbers with exponents still import.
    let ok = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 36 36">
        <path d="M1e1 2.5e-1 L 3E1 20 Z" fill="#000"/></svg>"##;
    assert!(Document::from_svg_str(ok, "ok.svg").is_ok());
}
