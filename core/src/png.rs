//! Rasterising documents and SVG files with resvg (PNG export).

use std::path::Path;

use crate::atomic::write_atomic;
use crate::document::Document;
use crate::error::Error;
use crate::svg_export::{SvgOptions, to_svg_string};
use crate::svg_import::usvg_options;

/// Largest image side accepted for rendering, in pixels.
pub const MAX_RENDER_SIDE: u32 = 16384;

/// A rendered RGBA8 image (straight alpha, row-major, 4 bytes per pixel).
#[derive(Clone, Debug, PartialEq)]
pub struct RgbaImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixels, straight (non-premultiplied) RGBA.
    pub data: Vec<u8>,
}

fn check_size(width: u32, height: u32, path: &Path) -> Result<(), Error> {
    if width == 0 || height == 0 || width > MAX_RENDER_SIDE || height > MAX_RENDER_SIDE {
        return Err(Error::Render {
            path: path.to_path_buf(),
            reason: format!(
                "image size {width}x{height} is outside 1..={MAX_RENDER_SIDE} pixels per side"
            ),
        });
    }
    Ok(())
}

/// Renders a usvg tree stretched to `width`×`height` pixels.
fn render_tree(
    tree: &usvg::Tree,
    width: u32,
    height: u32,
    path: &Path,
) -> Result<tiny_skia::Pixmap, Error> {
    check_size(width, height, path)?;
    let mut pixmap = tiny_skia::Pixmap::new(width, height).ok_or_else(|| Error::Render {
        path: path.to_path_buf(),
        reason: format!("cannot allocate a {width}x{height} image"),
    })?;
    let size = tree.size();
    let ts = tiny_skia::Transform::from_scale(
        width as f32 / size.width(),
        height as f32 / size.height(),
    );
    resvg::render(tree, ts, &mut pixmap.as_mut());
    Ok(pixmap)
}

fn to_image(pixmap: &tiny_skia::Pixmap) -> RgbaImage {
    let mut data = Vec::with_capacity(pixmap.data().len());
    for p in pixmap.pixels() {
        let c = p.demultiply();
        data.extend([c.red(), c.green(), c.blue(), c.alpha()]);
    }
    RgbaImage {
        width: pixmap.width(),
        height: pixmap.height(),
        data,
    }
}

/// Parses `svg`; `path` names it in errors, `source` is the file it was read from (external
/// images only from its folder) or anything else (none).
fn parse_tree(svg: &str, path: &Path, source: &Path) -> Result<usvg::Tree, Error> {
    usvg::Tree::from_str(svg, &usvg_options(source)).map_err(|e| match e {
        usvg::Error::InvalidSize => Error::InvalidSize {
            path: path.to_path_buf(),
        },
        other => Error::NotSvg {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

/// Renders `doc` (its SVG export) to an RGBA image of `width`×`height` pixels; the canvas
/// is stretched to fill the image.
pub fn render_rgba(doc: &Document, width: u32, height: u32) -> Result<RgbaImage, Error> {
    let origin = Path::new("<document>");
    let tree = parse_tree(&to_svg_string(doc, &SvgOptions::default()), origin, origin)?;
    Ok(to_image(&render_tree(&tree, width, height, origin)?))
}

/// Renders SVG text directly with resvg (no import into a [`Document`]); `origin` names the
/// source in errors, and external `<image>` files are read only from inside its folder (none when
/// `origin` is not an existing file).
pub fn render_svg_str(
    svg: &str,
    width: u32,
    height: u32,
    origin: &Path,
) -> Result<RgbaImage, Error> {
    let tree = parse_tree(svg, origin, origin)?;
    Ok(to_image(&render_tree(&tree, width, height, origin)?))
}

/// Renders `doc` to a PNG file of `width`×`height` pixels (written atomically).
pub fn render_png(doc: &Document, path: &Path, width: u32, height: u32) -> Result<(), Error> {
    check_size(width, height, path)?;
    let doc_svg = to_svg_string(doc, &SvgOptions::default());
    let tree = parse_tree(&doc_svg, path, Path::new("<document>"))?;
    let pixmap = render_tree(&tree, width, height, path)?;
    let bytes = pixmap.encode_png().map_err(|e| Error::Render {
        path: path.to_path_buf(),
        reason: format!("PNG encoding failed: {e}"),
    })?;
    write_atomic(path, &bytes)
}

impl RgbaImage {
    /// Encodes the image as PNG and writes it atomically.
    pub fn save_png(&self, path: &Path) -> Result<(), Error> {
        check_size(self.width, self.height, path)?;
        let expected = self.width as usize * self.height as usize * 4;
        if self.data.len() != expected {
            return Err(Error::Render {
                path: path.to_path_buf(),
                reason: format!(
                    "image data has {} bytes, expected {expected} for {}x{} RGBA",
                    self.data.len(),
                    self.width,
                    self.height
                ),
            });
        }
        let mut pixmap =
            tiny_skia::Pixmap::new(self.width, self.height).ok_or_else(|| Error::Render {
                path: path.to_path_buf(),
                reason: "cannot allocate the image".into(),
            })?;
        for (dst, src) in pixmap
            .pixels_mut()
            .iter_mut()
            .zip(self.data.chunks_exact(4))
        {
            *dst = tiny_skia::ColorU8::from_rgba(src[0], src[1], src[2], src[3]).premultiply();
        }
        let bytes = pixmap.encode_png().map_err(|e| Error::Render {
            path: path.to_path_buf(),
            reason: format!("PNG encoding failed: {e}"),
        })?;
        write_atomic(path, &bytes)
    }
}
