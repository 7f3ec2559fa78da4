//! Errors of file import, export and rendering.

use std::path::PathBuf;

/// Why reading, writing or rendering a file failed. Every variant names the file.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("{path}: cannot read: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file could not be written.
    #[error("{path}: cannot write: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is larger than the import limit.
    #[error("{path}: file is {size} bytes, larger than the {limit}-byte limit for SVG import")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The content is not an SVG document (not text, broken XML, wrong root element…).
    #[error("{path}: not a valid SVG document: {reason}")]
    NotSvg {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The SVG has no usable size (zero or negative width, height or viewBox).
    #[error(
        "{path}: the SVG has a zero, negative or invalid size (check width, height and viewBox)"
    )]
    InvalidSize {
        /// The file.
        path: PathBuf,
    },
    /// A coordinate, width or colour is NaN or infinite.
    #[error("{path}: {reason}")]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// Which node and value.
        reason: String,
    },
    /// Rendering failed (e.g. a zero or huge image size).
    #[error("{path}: cannot render: {reason}")]
    Render {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
