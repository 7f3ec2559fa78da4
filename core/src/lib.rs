//! vecdream-core: the document model of vecdream.
//!
//! A [`Document`] is an ordered tree of [`Object`]s → [`Component`]s → [`Shape`]s with
//! stable ids, names and `locked` / `hidden` flags. It is the single source of truth that the
//! optimiser writes into (through the flat [`ParamView`]), the UI edits (through
//! [`Command`]s with undo), and exporters serialise (SVG and PNG).
//!
//! ```
//! use vecdream_core::{Document, Rgba};
//! let doc = Document::from_svg_str(
//!     r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">
//!           <g id="cat"><rect id="body" x="1" y="1" width="4" height="4" fill="#ff0000"/></g>
//!         </svg>"##,
//!     "example.svg",
//! )
//! .unwrap()
//! .document;
//! assert_eq!(doc.objects.len(), 1);
//! assert_eq!(doc.objects[0].meta.name, "cat");
//! let view = doc.param_view();
//! assert_eq!(view.slots.len(), 1);
//! assert_eq!(view.fill[0], Rgba::new(1.0, 0.0, 0.0, 1.0).to_array());
//! // A closed rectangle: 4 cubic segments, 3 points each.
//! assert_eq!(view.points.len(), 12);
//! ```

pub mod color;
pub mod command;
pub mod component;
pub mod document;
pub mod history;
pub mod ids;
pub mod object;
pub mod paint;
pub mod params;
pub mod shape;
pub mod style;

pub use color::Rgba;
pub use command::{Command, EditError, Outcome};
pub use component::Component;
pub use document::{Document, NodeKind, NodePath, ShapeEntry};
pub use history::Editor;
pub use ids::{NodeId, NodeMeta, ShapeId};
pub use object::{Object, ObjectChild};
pub use paint::{GradientStop, LinearFill, LinearGradient, Paint, RadialGradient, SpreadMethod};
pub use params::{ParamError, ParamView, ShapeSlot, SubpathSlot};
pub use shape::{FillRule, LineCap, LineJoin, PrimitiveKind, Shape, Stroke, Subpath};
pub use style::{ContentType, GenerationOptions, Palette, Style, StylePreset};
pub mod atomic;
pub mod error;
pub mod extrude;
pub mod geometry;
pub mod glb;
pub mod mesh;
pub mod metrics;
pub mod png;
pub mod svg_export;
pub mod svg_import;

pub use error::Error;
pub use png::{RgbaImage, render_png, render_rgba, render_svg_str};
pub use svg_export::{SvgOptions, export_svg, to_svg_string};
pub use svg_import::{Import, import_svg};

/// Test and tool helpers (not part of the stable API).
#[doc(hidden)]
pub mod testing {
    use std::path::PathBuf;

    /// The repository's own test data (`tests/data`: real SVGs and photos with their licences,
    /// see `tests/data/README.md`). Only tests, examples and benchmarks built from the source tree
    /// use it; no binary reads it.
    pub fn test_data_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data")
    }
}

#[doc(hidden)]
pub use testing::test_data_dir;
