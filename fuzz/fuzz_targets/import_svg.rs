//! Fuzz target: SVG import must return `Ok` or `Err`, never panic; what imports must export.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vecdream_core::{Document, SvgOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(import) = Document::from_svg_bytes(data, "fuzz.svg") {
        let svg = import.document.to_svg_string(&SvgOptions::default());
        // Our own export must always import again.
        if let Err(e) = Document::from_svg_str(&svg, "fuzz-export.svg") {
            panic!("export of an imported document does not re-import: {e}\n{svg}");
        }
    }
});
