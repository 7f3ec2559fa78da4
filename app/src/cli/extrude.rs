//! `vecdream extrude`: SVG → GLB, every visible fill and stroke extruded into a solid, one part per
//! object (see [`vecdream_core::extrude`] for the geometry, units and stacking).

use std::path::PathBuf;

use vecdream_core::extrude::ExtrudeOptions;

use crate::io::load_svg;

/// Arguments of `vecdream extrude`.
#[derive(Debug, clap::Args)]
pub struct ExtrudeArgs {
    /// The SVG to extrude.
    pub input: PathBuf,
    /// Output GLB (written atomically).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Thickness of every slab, in output units (1.0 = the document's longer side).
    #[arg(long, default_value_t = ExtrudeOptions::default().depth)]
    pub depth: f32,
    /// How far each painted layer (a fill, a stroke) sits in front of the one before, in output units.
    #[arg(long, default_value_t = ExtrudeOptions::default().layer_gap)]
    pub layer_gap: f32,
    /// Curve flattening tolerance, in output units.
    #[arg(long, default_value_t = ExtrudeOptions::default().tolerance)]
    pub tolerance: f32,
}

/// `vecdream extrude`.
pub fn run(args: &ExtrudeArgs) -> anyhow::Result<()> {
    let doc = load_svg(&args.input)?;
    let options = ExtrudeOptions {
        depth: args.depth,
        layer_gap: args.layer_gap,
        tolerance: args.tolerance,
    };
    let extrusion = crate::io::export_glb(&doc, &args.output, &options)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", args.input.display()))?;
    for note in &extrusion.notes {
        println!("note: {note}");
    }
    print!("{}", crate::io::mesh_summary(&extrusion.mesh));
    println!("wrote {}", args.output.display());
    Ok(())
}
