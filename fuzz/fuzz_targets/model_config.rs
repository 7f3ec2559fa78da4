//! Fuzz target: diffusers config.json files (UNet, VAE, CLIP, scheduler) must return `Ok` or `Err`, never panic
//! (`vecdream_app::fuzz_entry::model_config`; seeds in `fuzz/seeds/model_config/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vecdream_app::fuzz_entry::model_config(data);
});
