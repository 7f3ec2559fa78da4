//! Fuzz target: batch jobs files must return `Ok` or `Err`, never panic
//! (`vecdream_app::fuzz_entry::jobs_file`; seeds in `fuzz/seeds/jobs_file/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vecdream_app::fuzz_entry::jobs_file(data);
});
