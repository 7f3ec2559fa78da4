//! The `vecdream` binary: opens the editor, or runs a CLI subcommand.

use clap::Parser as _;
use vecdream_app::cli::Cli;

fn main() {
    vecdream_app::threads::ensure_passive_wait_policy();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,vecdream=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = vecdream_gpu::device::device_from_env() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let result = match cli.command {
        Some(command) => command.run(),
        None => vecdream_app::app::run_window(cli.open_3d),
    };
    if let Err(e) = result {
        // `{:#}` prints the whole chain of causes on one line, e.g. "rendering a.svg: a.svg: not a valid SVG…".
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
