//! Fuzz target: the image loader with its limits, and the vectoriser's decoding must return `Ok` or `Err`, never panic
//! (`vecdream_app::fuzz_entry::decode_image`; seeds in `fuzz/seeds/decode_image/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vecdream_app::fuzz_entry::decode_image(data);
});
