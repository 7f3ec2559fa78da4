//! External files of an SVG: `<image href>` is read only from inside the SVG's own folder. An
//! absolute path, a `..` escape, a URL and a symbolic link that leads out are not read; a file
//! beside the SVG is. Import and rendering share these options (`svg_import::usvg_options`).

use std::path::{Path, PathBuf};

use vecdream_core::png::render_svg_str;
use vecdream_core::svg_import::{confined_href, confined_resources_dir};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vecdream-href-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("art")).unwrap();
    std::fs::canonicalize(&dir).unwrap()
}

fn solid_png(path: &Path, rgb: [u8; 3]) {
    let mut p = tiny_skia::Pixmap::new(4, 4).unwrap();
    p.fill(tiny_skia::Color::from_rgba8(rgb[0], rgb[1], rgb[2], 255));
    p.save_png(path).unwrap();
}

#[test]
fn images_outside_the_svgs_folder_are_not_read() {
    let base = scratch("render");
    let art = base.join("art");
    solid_png(&base.join("secret.png"), [255, 0, 0]);
    solid_png(&art.join("inside.png"), [0, 255, 0]);
    std::os::unix::fs::symlink(base.join("secret.png"), art.join("link.png")).unwrap();
    let secret = base.join("secret.png").display().to_string();
    // Five 10-px cells: inside, ../secret, /abs/secret, file:///abs/secret, a link out.
    let hrefs = [
        "inside.png".to_string(),
        "../secret.png".into(),
        secret.clone(),
        format!("file://{secret}"),
        "link.png".into(),
    ];
    let images: String = hrefs
        .iter()
        .enumerate()
        .map(|(i, h)| {
            format!(
                r#"<image x="{}" y="0" width="10" height="10" xlink:href="{h}"/>"#,
                i * 10
            )
        })
        .collect();
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="50" height="10" viewBox="0 0 50 10">{images}</svg>"#
    );
    let svg_path = art.join("art.svg");
    std::fs::write(&svg_path, &svg).unwrap();
    let img = render_svg_str(&svg, 50, 10, &svg_path).unwrap();
    let px = |x: usize| {
        let i = (5 * 50 + x) * 4;
        [
            img.data[i],
            img.data[i + 1],
            img.data[i + 2],
            img.data[i + 3],
        ]
    };
    assert_eq!(px(5), [0, 255, 0, 255], "the image beside the SVG is drawn");
    for (cell, href) in hrefs.iter().enumerate().skip(1) {
        assert_eq!(px(cell * 10 + 5)[3], 0, "{href} was read and drawn");
    }
    // The same SVG as text without a file: nothing external at all.
    let img = render_svg_str(&svg, 50, 10, Path::new("pasted.svg")).unwrap();
    assert_eq!(img.data[(5 * 50 + 5) * 4 + 3], 0);
    // Import reads through the same options and keeps no image (it says so).
    let import = vecdream_core::svg_import::import_svg(&svg_path).unwrap();
    assert!(
        import.warnings.iter().any(|w| w.contains("image")),
        "{:?}",
        import.warnings
    );
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn confined_hrefs_are_relative_paths_inside_the_folder() {
    let base = scratch("rules");
    let art = base.join("art");
    std::fs::create_dir_all(art.join("sub")).unwrap();
    std::fs::write(art.join("sub/a.png"), b"x").unwrap();
    std::fs::write(base.join("out.png"), b"x").unwrap();
    std::fs::write(art.join("art.svg"), b"<svg/>").unwrap();
    let dir = confined_resources_dir(&art.join("art.svg")).unwrap();
    assert_eq!(dir, art);
    assert_eq!(
        confined_href(&dir, "sub/a.png"),
        Some(art.join("sub/a.png"))
    );
    assert_eq!(
        confined_href(&dir, "./sub/a.png"),
        Some(art.join("sub/a.png"))
    );
    for bad in [
        "../out.png",
        "sub/../../out.png",
        "sub/../sub/a.png",
        "/etc/passwd",
        "file:///etc/passwd",
        "http://example.invalid/a.png",
        "sub",
        "missing.png",
    ] {
        assert_eq!(confined_href(&dir, bad), None, "{bad}");
    }
    assert_eq!(confined_resources_dir(Path::new("<document>")), None);
    assert_eq!(
        confined_resources_dir(&art),
        None,
        "a folder is not an SVG file"
    );
    let _ = std::fs::remove_dir_all(&base);
}
