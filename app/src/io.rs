//! Document I/O for the app and the CLI: open SVG, render previews, export by file extension (SVG, PNG,
//! extruded GLB), describe meshes.

use std::path::Path;

use vecdream_core::extrude::{ExtrudeOptions, Extrusion};
use vecdream_core::mesh::Mesh;
use vecdream_core::{Document, SvgOptions};

use crate::dialogs::{DialogKind, FileDialogs};

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
    /// GLB of the extruded document (default [`ExtrudeOptions`]; the CLI's `extrude` sets them).
    Glb,
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
            Some("glb") => Ok(Self::Glb),
            _ => anyhow::bail!(
                "{}: unknown export format (expected a .svg, .png or .glb file name)",
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
        ExportFormat::Glb => {
            export_glb(doc, path, &ExtrudeOptions::default())?;
        }
    }
    Ok(())
}

/// Whether `path` names a GLB file (by its extension, any case).
pub fn is_glb_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("glb"))
}

/// Extrudes the document's visible fills and strokes ([`vecdream_core::extrude`]) and writes the GLB to
/// `path` atomically; returns the extrusion (its notes say what was approximated). A document with nothing
/// visible to extrude is an error (no file is written).
pub fn export_glb(
    doc: &Document,
    path: &Path,
    options: &ExtrudeOptions,
) -> anyhow::Result<Extrusion> {
    let extrusion = vecdream_core::extrude::extrude_document(doc, options)?;
    anyhow::ensure!(
        !extrusion.mesh.parts.is_empty(),
        "nothing to extrude: the document has no visible fill or stroke"
    );
    vecdream_core::glb::write_glb(path, &extrusion.mesh)?;
    Ok(extrusion)
}

/// *File → Export GLB (extruded)…*: asks where (a GLB dialog), extrudes `doc` with the default options and
/// writes it. Returns the status-bar message, `None` when the user cancelled.
pub fn export_glb_with_dialog(
    doc: Option<&Document>,
    dialogs: &mut dyn FileDialogs,
) -> Option<String> {
    let Some(doc) = doc else {
        return Some("Nothing to export: open or create a document first".into());
    };
    let mut path = dialogs.pick(DialogKind::ExportGlb)?;
    if path.extension().is_none() {
        path.set_extension("glb");
    }
    Some(match export_glb(doc, &path, &ExtrudeOptions::default()) {
        Ok(e) => {
            let mut msg = format!(
                "Exported {} ({} parts, {} triangles)",
                path.display(),
                e.mesh.parts.len(),
                e.mesh.triangle_count()
            );
            if let Some(note) = e.notes.first() {
                msg.push_str(&format!("; note: {note}"));
                if e.notes.len() > 1 {
                    msg.push_str(&format!(" (+{} more)", e.notes.len() - 1));
                }
            }
            msg
        }
        Err(e) => format!("Error: {}: {e:#}", path.display()),
    })
}

/// A mesh's totals, then one line per part with its vertex and triangle counts, then its bounds.
pub fn mesh_summary(mesh: &Mesh) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} parts, {} vertices, {} triangles",
        mesh.parts.len(),
        mesh.vertex_count(),
        mesh.triangle_count()
    );
    for part in &mesh.parts {
        let _ = writeln!(
            s,
            "  part \"{}\": {} vertices, {} triangles",
            part.name,
            part.vertex_count(),
            part.triangle_count()
        );
    }
    if let Some((lo, hi)) = mesh.bounds() {
        let _ = writeln!(
            s,
            "bounds x {:.4}…{:.4}, y {:.4}…{:.4}, z {:.4}…{:.4}",
            lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]
        );
    }
    s
}

/// Loads a PNG or JPEG (any colour type) as straight RGBA8 with its longer side `size` pixels.
/// Errors name the file.
pub fn load_image_rgba(path: &Path, size: u32) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    let img = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?
        .decode()
        .map_err(|e| {
            anyhow::anyhow!("{}: not a readable PNG or JPEG image: {e}", path.display())
        })?;
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
        assert_eq!(
            ExportFormat::from_path(Path::new("a.GLB")).unwrap(),
            ExportFormat::Glb
        );
        let err = ExportFormat::from_path(Path::new("dir/a.gif"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dir/a.gif") && err.contains(".svg"), "{err}");
    }

    #[test]
    fn export_glb_through_scripted_dialogs() {
        use crate::dialogs::ScriptedDialogs;
        let dir = std::env::temp_dir().join(format!("vecdream-io-glb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let doc = Document::from_svg_str(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">
                 <g id="box"><rect x="1" y="1" width="4" height="4" fill="#ff0000"/></g></svg>"##,
            "box.svg",
        )
        .unwrap()
        .document;
        let mut dialogs = ScriptedDialogs {
            answers: [dir.join("box"), dir.join("empty.glb")]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let msg = export_glb_with_dialog(Some(&doc), &mut dialogs).unwrap();
        assert!(
            msg.starts_with("Exported") && msg.contains("1 parts"),
            "{msg}"
        );
        assert_eq!(dialogs.asked, vec![DialogKind::ExportGlb]);
        let mesh = vecdream_core::glb::read_glb(&dir.join("box.glb")).unwrap();
        assert_eq!(mesh.parts[0].name, "box");
        assert!(mesh_summary(&mesh).contains("part \"box\": "));
        // An empty document: an error naming the file, nothing written.
        let msg = export_glb_with_dialog(Some(&Document::new(10.0, 10.0)), &mut dialogs).unwrap();
        assert!(
            msg.starts_with("Error")
                && msg.contains("empty.glb")
                && msg.contains("nothing to extrude"),
            "{msg}"
        );
        assert!(!dir.join("empty.glb").exists());
        // Cancelled: no message.
        assert_eq!(export_glb_with_dialog(Some(&doc), &mut dialogs), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
