//! 3D fields: a dense voxel grid of density and colour (RGB or 4 SD-latent channels, as in
//! Latent-NeRF / SJC), rendered differentiably by volume rendering, optimised either toward a
//! folder of images with known cameras (multi-view photometric fitting, no model weights) or
//! toward a prompt by score distillation (SDS / VSD / ESD on Stable Diffusion), then turned into
//! a closed, coloured triangle mesh ([`vecdream_core::mesh::Mesh`]) for GLB export.
//!
//! The pieces, one file each:
//! - [`camera`]: orbit cameras, rays, random training cameras, view-dependent prompt suffixes;
//! - [`grid`]: the voxel grid, trilinear sampling, the blob start, upsampling, total variation;
//! - [`render`]: volume rendering (colour, opacity, depth) and the emptiness regulariser;
//! - [`views`]: `views.json` folders; [`shapes`]: analytic ground truth (sphere, torus);
//! - [`fit`]: the photometric objective and the grid's Adam; [`sds`]: the text objective;
//! - [`mesh`]: surface nets at a density threshold; [`checkpoint`]: save / resume;
//! - [`bench`]: `vecdream bench 3d`;
//! - [`FieldRun`]: one run, step by step, with previews, meshes and checkpoints.

pub mod bench;
pub mod camera;
pub mod checkpoint;
pub mod fit;
pub mod grid;
pub mod mesh;
pub mod render;
pub mod run;
pub mod sds;
pub mod shapes;
pub mod views;

pub use camera::{Camera, CameraRanges};
pub use checkpoint::FIELD_CHECKPOINT_VERSION;
pub use grid::{Blob, ColorSpace, Grid, LATENT_TO_RGB};
pub use run::{FieldConfig, FieldRun, FieldSource, StepInfo};
pub use sds::TextConfig;
pub use shapes::AnalyticShape;
pub use views::{Views, load_views, write_views};

use std::path::PathBuf;

/// Everything that can go wrong with a field.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum FieldError {
    /// A setting is out of range or inconsistent.
    #[error("field config `{field}`: {message}")]
    Config {
        /// The offending setting.
        field: String,
        /// What was expected.
        message: String,
    },
    /// A views folder, its `views.json` or one of its images is wrong.
    #[error("{path}: {message}")]
    Views {
        /// The folder, `views.json` or image.
        path: PathBuf,
        /// What is wrong (with the line, view and field where it applies).
        message: String,
    },
    /// A checkpoint is missing, unreadable or does not fit this run.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing an image or file through core failed.
    #[error("{0}")]
    Core(#[from] vecdream_core::Error),
    /// The guidance (Stable Diffusion) failed.
    #[error("{0}")]
    Distill(#[from] crate::distill::DistillError),
    /// A libtorch call failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}
