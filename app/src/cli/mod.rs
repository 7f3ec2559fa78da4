//! The command line: `vecdream` with no subcommand opens the editor; subcommands do the same work headless.

pub mod doctor;

use clap::{Parser, Subcommand};

/// vecdream — text-guided vector graphics by score distillation.
#[derive(Debug, Parser)]
#[command(name = "vecdream", version = crate::VERSION, about, long_about = None)]
pub struct Cli {
    /// What to do; without a subcommand the editor window opens.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the installation: libtorch, CUDA devices, threads, wgpu adapter, model folder.
    Doctor(doctor::DoctorArgs),
}

impl Command {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Doctor(args) => doctor::run(&args),
        }
    }
}
