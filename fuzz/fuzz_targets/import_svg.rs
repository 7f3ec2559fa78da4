//! Fuzz target: SVG import (and its export must import again) must return `Ok` or `Err`, never panic
//! (`vecdream_app::fuzz_entry::import_svg`; seeds in `fuzz/seeds/import_svg/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vecdream_app::fuzz_entry::import_svg(data);
});
