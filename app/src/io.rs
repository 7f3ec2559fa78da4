//! Document I/O for the app and the CLI: open SVG, render previews, export by file extension.

use std::path::Path;

use vecdream_core::{Document, SvgOptions};

/// Opens an SVG file; import warnings are logged.
pub fn load_svg(path: &Path) -> Result<Document, vecdream_core::Error> {
    let import = vecdream_core::import_svg(path)?;
    for warning in &import.warnings {
        tracing::warn!("{}: {warning}", path.display());
    }
    Ok(import.document)
}

/// A preview size whose longer side is `max_side` pixels, with the document's aspect ratio.
pub fn preview_size(doc: &Document, max_side: u32) -> (u32, u32) {
    let (w, h) = (doc.width.max(1e-6), doc.height.max(1e-6));
    let scale = max_side as f64 / w.max(h);
    (
        ((w * scale).round() as u32).max(1),
        ((h * scale).round() as u32).max(1),
    )
}

/// Renders the document to straight-alpha RGBA8 pixels with resvg.
pub fn render_rgba(
    doc: &Document,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, vecdream_core::Error> {
    Ok(vecdream_core::render_rgba(doc, width, height)?.data)
}

/// Formats an export can be written in, chosen by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// Grouped SVG.
    Svg,
    /// PNG at the preview size (the CLI's `render` picks any size).
    Png,
}

impl ExportFormat {
    /// The format for `path`'s extension, or an error naming the file and the accepted extensions.
    pub fn from_path(path: &Path) -> anyhow::Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => Ok(Self::Svg),
            Some("png") => Ok(Self::Png),
            _ => anyhow::bail!(
                "{}: unknown export format (expected a .svg or .png file name)",
                path.display()
            ),
        }
    }
}

/// Exports the document to `path` (format by extension), atomically.
pub fn export(doc: &Document, path: &Path) -> anyhow::Result<()> {
    match ExportFormat::from_path(path)? {
        ExportFormat::Svg => vecdream_core::export_svg(doc, path, &SvgOptions::default())?,
        ExportFormat::Png => {
            let (w, h) = preview_size(doc, 1024);
            vecdream_core::render_png(doc, path, w, h)?
        }
    }
    Ok(())
}

/// Loads a PNG or JPEG (any colour type) as straight RGBA8 with its longer side `size` pixels.
/// Errors name the file.
pub fn load_image_rgba(path: &Path, size: u32) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    let img = vecdream_gpu::vectorize::read_image(path)?;
    let img = img
        .resize(size, size, image::imageops::FilterType::Triangle)
        .to_rgba8();
    Ok((img.width(), img.height(), img.into_raw()))
}

/// What a background vectorisation reports to the UI.
#[derive(Debug)]
pub enum VectorizeMsg {
    /// A line for the status bar (progress, resize notes).
    Status(String),
    /// An intermediate document to show live.
    Preview(Box<Document>),
    /// The result.
    Done(anyhow::Result<Box<Document>>),
}

/// Vectorises `path` on a background thread (256 px working size, default budget; `gradients`: shaded
/// regions get linear-gradient fills), streaming progress and intermediate documents; `wake` is called
/// after each message (e.g. to request a repaint).
pub fn spawn_vectorize(
    path: &Path,
    gradients: bool,
    wake: impl Fn() + Send + 'static,
) -> std::sync::mpsc::Receiver<VectorizeMsg> {
    use std::ops::ControlFlow;
    use vecdream_gpu::vectorize::{Progress, VectorizeConfig, vectorize_file};
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let cfg = VectorizeConfig {
            preview_every: 10,
            gradients,
            ..VectorizeConfig::default()
        };
        let send = |m: VectorizeMsg| {
            let _ = tx.send(m);
            wake();
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            vectorize_file(&path, 256, &cfg, &mut |p| {
                match p {
                    Progress::Note(n) => send(VectorizeMsg::Status(n)),
                    Progress::Step {
                        step,
                        total,
                        psnr_db,
                        ..
                    } => send(VectorizeMsg::Status(format!(
                        "Vectorising {}: step {step}/{total}, {psnr_db:.1} dB",
                        path.display()
                    ))),
                    Progress::Preview(doc) => send(VectorizeMsg::Preview(doc)),
                    _ => {}
                }
                ControlFlow::Continue(())
            })
        }));
        let done = match result {
            Ok(Ok(v)) => Ok(Box::new(v.document)),
            Ok(Err(e)) => Err(anyhow::Error::from(e)),
            Err(_) => Err(anyhow::anyhow!(
                "{}: the vectoriser crashed",
                path.display()
            )),
        };
        send(VectorizeMsg::Done(done));
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_size_keeps_the_aspect_ratio() {
        let doc = Document::new(300.0, 150.0);
        assert_eq!(preview_size(&doc, 512), (512, 256));
        let doc = Document::new(36.0, 36.0);
        assert_eq!(preview_size(&doc, 100), (100, 100));
    }

    #[test]
    fn export_format_follows_the_extension() {
        assert_eq!(
            ExportFormat::from_path(Path::new("a.SVG")).unwrap(),
            ExportFormat::Svg
        );
        assert_eq!(
            ExportFormat::from_path(Path::new("a.png")).unwrap(),
            ExportFormat::Png
        );
        let err = ExportFormat::from_path(Path::new("dir/a.gif"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dir/a.gif") && err.contains(".svg"), "{err}");
    }
}
