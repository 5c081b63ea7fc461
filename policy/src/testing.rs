//! What the device-generic tests of this crate and of the learner share (STYLE.md §7): a
//! test written once as `fn name(device: &Device)` and expanded by [`test_device!`] into
//! `name::cpu`, always, and `name::cuda` in a `--features cuda` build.

pub use candle_core::Device;

/// The GPU the `cuda` half of [`test_device!`] runs on. Without one the test passes without
/// running and says so, unless `EMPO2_REQUIRE_GPU` is set (`scripts/gpu-check.sh` sets it):
/// then a missing GPU fails the test.
pub fn cuda() -> Option<Device> {
    match crate::load::device("cuda", "cuda") {
        Ok(device) => Some(device),
        Err(e) if std::env::var_os("EMPO2_REQUIRE_GPU").is_some() => {
            panic!("EMPO2_REQUIRE_GPU is set, and {e}")
        }
        Err(e) => {
            eprintln!("skipped on CUDA: {e}");
            None
        }
    }
}

/// Expands `fn $name(device: &Device)` into the tests `$name::cpu` and (with the calling
/// crate's `cuda` feature) `$name::cuda`.
#[macro_export]
macro_rules! test_device {
    ($name:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$name(&$crate::testing::Device::Cpu)
            }

            #[cfg(feature = "cuda")]
            #[test]
            fn cuda() {
                if let Some(device) = $crate::testing::cuda() {
                    super::$name(&device)
                }
            }
        }
    };
}
