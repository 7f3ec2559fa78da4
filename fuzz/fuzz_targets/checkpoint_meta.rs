//! Fuzz target: a checkpoint's JSON metadata as `--resume` reads it must return `Ok` or `Err`, never panic
//! (`vecdream_app::fuzz_entry::checkpoint_meta`; seeds in `fuzz/seeds/checkpoint_meta/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vecdream_app::fuzz_entry::checkpoint_meta(data);
});
