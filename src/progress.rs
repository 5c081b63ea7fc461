//! Progress bars of long work (warm starts, evaluations), in one style.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps of `what` (the length may grow with `inc_length`).
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {what}, eta {{eta}} {{msg}}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}
