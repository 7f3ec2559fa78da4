//! vecdream-gpu: everything that runs on libtorch (tch) — the differentiable rasteriser, Stable Diffusion
//! modules, schedulers, guidance, optimisers, 3D fields. Runs on CUDA when available, else on the CPU.

pub mod clip;
pub mod device;
pub mod distill;
pub mod faults;
pub mod field;
pub mod generate;
pub mod gpu_memory;
pub mod raster;
pub mod rng;
pub mod sd;
pub mod vectorize;

pub use tch;
