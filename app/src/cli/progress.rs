//! Progress bars for long CLI work (indicatif), drawn on stderr so stdout stays machine-readable.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps named `unit`, with elapsed time, rate and ETA.
pub fn bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!(
        "{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
