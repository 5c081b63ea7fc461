//! `[policy]`: which model is trained, where it computes and in what dtype — and the policy
//! those settings describe.

use std::path::PathBuf;

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::Policy;
use crate::error::{PolicyError, Result};
use crate::init::init_policy;

/// The policy's settings (read by the learner and `empo2 eval`; actors build whatever the
/// learner sends them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// A model directory (Hugging Face layout) or GGUF file; unset = a fresh `preset` model.
    pub model: Option<PathBuf>,
    /// Preset of the fresh model when `model` is unset: `tiny`, `small`, or the random-weight
    /// shapes `smollm2-135m` and `qwen2-0.5b`.
    pub preset: String,
    /// Where the policy computes: `cpu`, or `cuda` / `cuda:N` (a build with `--features cuda`).
    pub device: String,
    /// Parameter dtype of a loaded model: `f32`, or `bf16` / `f16` on a GPU.
    pub dtype: String,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            model: None,
            preset: "tiny".into(),
            device: "cpu".into(),
            dtype: "f32".into(),
        }
    }
}

impl PolicyConfig {
    /// The policy these settings describe: the model at `model` on `device` in `dtype`, or a
    /// fresh preset model drawn with `seed` (drawn on the CPU in f32, then moved).
    pub fn load(&self, seed: u64) -> Result<Policy> {
        let device = self.device()?;
        let dtype = match self.dtype.as_str() {
            "f32" => DType::F32,
            "bf16" => DType::BF16,
            "f16" => DType::F16,
            other => {
                return Err(PolicyError::Config(format!(
                    "policy.dtype `{other}` is not f32, bf16 or f16"
                )));
            }
        };
        match &self.model {
            Some(path) => Policy::open(path, &device, dtype).map_err(|e| {
                PolicyError::Config(format!("cannot load the model at {}: {e}", path.display()))
            }),
            None => {
                let preset = self.preset.parse().map_err(PolicyError::Config)?;
                let fresh = init_policy(preset, seed)?;
                match device.is_cpu() && dtype == DType::F32 {
                    true => Ok(fresh),
                    false => fresh.to(&device, dtype),
                }
            }
        }
    }

    /// `cpu`, `cuda` or `cuda:N`.
    pub fn device(&self) -> Result<Device> {
        device("policy.device", &self.device)
    }
}

/// The device `name` (the value of setting `field`) names: `cpu`, `cuda` or `cuda:N`.
pub fn device(field: &str, name: &str) -> Result<Device> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                PolicyError::Config(format!("{field} `{other}` is not cpu, cuda or cuda:N"))
            })?,
    };
    let cannot = |why: String| {
        PolicyError::Config(format!(
            "cannot use {name} (is this a build with `--features cuda` on a GPU machine?): {why}"
        ))
    };
    // cudarc loads libcuda when first asked, and panics when it cannot: an error instead.
    match std::panic::catch_unwind(|| Device::new_cuda(ordinal)) {
        Ok(device) => device.map_err(|e| cannot(e.to_string())),
        Err(panic) => Err(cannot(
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .map_or("the CUDA driver library could not be loaded".into(), |m| {
                    m.chars().take(200).collect()
                }),
        )),
    }
}
