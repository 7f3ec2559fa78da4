//! Score distillation: guidance methods (SDS, VPSD, ESD, CSD, DDS, a model-free reference-image
//! teacher), the optimisation loop over vector particles, checkpoints and the background worker.
//!
//! The pieces, bottom up:
//! - [`Guidance`]: turns a batch of rendered particles into a loss whose gradient on the images is
//!   the score-distillation gradient. [`ReferenceGuidance`] needs no weights (the exact denoiser of
//!   the empirical distribution of a few images); [`SdGuidance`] runs SDS / VPSD / ESD / CSD / DDS on
//!   a Stable Diffusion model from [`crate::sd`].
//! - [`Distiller`]: particles from a document's [`vecdream_core::ParamView`], rendered by
//!   [`crate::raster`], updated by a masked Adam ([`MaskedAdam`]) with SVGDreamer's learning rates;
//!   locked and hidden shapes never change; non-finite steps are skipped; checkpoints resume exactly.
//! - [`Worker`]: runs a [`Distiller`] on a background thread, driven by [`Command`]s, reporting
//!   [`Event`]s over `std::sync::mpsc` channels.

mod adam;
mod adaptive;
mod bench;
mod checkpoint;
mod clipdraw;
mod engine;
mod grid;
mod guidance;
mod reference;
mod region;
mod reward;
mod scribbles;

mod schedule;
mod sd_guidance;
mod worker;

pub use crate::rng::Rng;
pub use adam::{AdamConfig, MaskedAdam};
pub use adaptive::{AdaptiveConfig, NewShape};
pub use bench::{DistillBenchResult, bench_distill, bench_reference, random_sd21};
pub use checkpoint::{CHECKPOINT_VERSION, CheckpointMeta, GroupMeta};
pub use clipdraw::{ClipDrawConfig, ClipDrawGuidance, WithClipDraw};
pub use engine::{
    Constraints, DistillConfig, Distiller, Frame, LrConfig, Optimise, RewardConfig, RewardMode,
    StepReport,
};
pub use grid::grid_document;
pub use guidance::{Guidance, GuidanceOutput, StepCtx, apply_grad_loss};
pub use reference::{
    ReferenceConfig, ReferenceGuidance, ReferenceMode, ReferenceTeacher, closed_form_denoiser,
};
pub use reward::{
    ColorfulnessReward, LinearReward, ReferenceLikelihoodReward, Reward, reward_weights,
};
pub use schedule::{
    Annealing, LrSchedule, TimeRange, scaled_linear_alphas_cumprod, sd_alphas_cumprod,
};
pub use scribbles::scribble_document;
pub use sd_guidance::{SdGuidance, SdGuidanceConfig, SdMethod};
pub use worker::{Command, Event, GuidanceFactory, GuidanceSpec, StartRequest, Worker};

/// Everything that can go wrong while distilling.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum DistillError {
    /// A configuration value is out of range or inconsistent.
    #[error("distill config `{field}`: {message}")]
    Config {
        /// The offending field.
        field: String,
        /// What was expected.
        message: String,
    },
    /// The rasteriser refused the scene or its parameters.
    #[error("rasteriser: {0}")]
    Raster(#[from] crate::raster::RasterError),
    /// Stable Diffusion failed (loading or running).
    #[error("stable diffusion: {0}")]
    Sd(#[from] crate::sd::SdError),
    /// The document's parameter view could not be written back.
    #[error("writing particle {particle} into the document: {source}")]
    Param {
        /// Particle index.
        particle: usize,
        /// Why core refused it.
        source: vecdream_core::ParamError,
    },
    /// A checkpoint file is missing, unreadable or does not fit this run.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A libtorch call failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// An allocation failed (CUDA or CPU memory); the run cannot go on at this size.
    #[error("out of memory: {message}. {}", crate::faults::OUT_OF_MEMORY_REMEDY)]
    OutOfMemory {
        /// What the allocator said.
        message: String,
    },
}
