//! File dialogs behind a small trait, so tests inject paths instead of opening native dialogs.

use std::collections::VecDeque;
use std::path::PathBuf;

/// What a file dialog is for: decides the title and the file filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogKind {
    /// Open an SVG document.
    OpenSvg,
    /// Open a raster image (PNG, JPEG) to vectorise or use as a reference.
    OpenImage,
    /// Choose where to export the document.
    Export,
    /// Choose where to write a GLB (the document extruded, or the 3D tab's mesh).
    ExportGlb,
    /// Choose a Stable Diffusion model folder (diffusers layout).
    ModelFolder,
    /// Open a GLB (binary glTF 2.0) mesh in the 3D tab.
    OpenGlb,
}

impl DialogKind {
    fn title(self) -> &'static str {
        match self {
            Self::OpenSvg => "Open SVG",
            Self::OpenImage => "Open image",
            Self::Export => "Export",
            Self::ExportGlb => "Export GLB",
            Self::ModelFolder => "Choose a Stable Diffusion model folder",
            Self::OpenGlb => "Open GLB",
        }
    }

    fn filters(self) -> &'static [(&'static str, &'static [&'static str])] {
        match self {
            Self::OpenSvg => &[("SVG", &["svg"])],
            Self::OpenImage => &[("Images", &["png", "jpg", "jpeg"])],
            Self::Export => &[
                ("SVG", &["svg"]),
                ("PNG", &["png"]),
                ("GLB (extruded)", &["glb"]),
            ],
            Self::ExportGlb => &[("GLB", &["glb"])],
            Self::ModelFolder => &[],
            Self::OpenGlb => &[("GLB", &["glb"])],
        }
    }
}

/// Asks the user for a path. `None` means the user cancelled.
pub trait FileDialogs {
    /// Shows a dialog of the given kind and returns the chosen path.
    fn pick(&mut self, kind: DialogKind) -> Option<PathBuf>;
}

/// Native dialogs through rfd (a desktop portal or GTK). Without a portal rfd returns `None` at once.
#[derive(Debug, Default)]
pub struct NativeDialogs;

impl FileDialogs for NativeDialogs {
    fn pick(&mut self, kind: DialogKind) -> Option<PathBuf> {
        let mut dialog = rfd::FileDialog::new().set_title(kind.title());
        for (name, extensions) in kind.filters() {
            dialog = dialog.add_filter(*name, extensions);
        }
        match kind {
            DialogKind::Export | DialogKind::ExportGlb => dialog.save_file(),
            DialogKind::ModelFolder => dialog.pick_folder(),
            DialogKind::OpenSvg | DialogKind::OpenImage | DialogKind::OpenGlb => dialog.pick_file(),
        }
    }
}

/// Dialogs that answer from a queue of prepared paths (for tests and scripted runs), recording what was
/// asked.
#[derive(Debug, Default)]
pub struct ScriptedDialogs {
    /// Answers given in order; an empty queue answers "cancelled".
    pub answers: VecDeque<PathBuf>,
    /// The kinds of dialog that were asked for, in order.
    pub asked: Vec<DialogKind>,
}

impl FileDialogs for ScriptedDialogs {
    fn pick(&mut self, kind: DialogKind) -> Option<PathBuf> {
        self.asked.push(kind);
        self.answers.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_dialogs_answer_in_order_then_cancel() {
        let mut d = ScriptedDialogs {
            answers: ["a.svg", "b.png"].into_iter().map(PathBuf::from).collect(),
            ..Default::default()
        };
        assert_eq!(d.pick(DialogKind::OpenSvg), Some(PathBuf::from("a.svg")));
        assert_eq!(d.pick(DialogKind::Export), Some(PathBuf::from("b.png")));
        assert_eq!(d.pick(DialogKind::OpenImage), None);
        assert_eq!(
            d.asked,
            vec![
                DialogKind::OpenSvg,
                DialogKind::Export,
                DialogKind::OpenImage
            ]
        );
    }
}
