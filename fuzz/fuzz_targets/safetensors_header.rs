//! Fuzz target: safetensors files: header and tensors must return `Ok` or `Err`, never panic
//! (`vecdream_app::fuzz_entry::safetensors_header`; seeds in `fuzz/seeds/safetensors_header/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vecdream_app::fuzz_entry::safetensors_header(data);
});
