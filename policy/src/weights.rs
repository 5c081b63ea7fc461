//! Weight transport: a model's parameters as safetensors bytes (f32 or bf16) stamped with a
//! policy version, and loading such bytes into an existing model in place. Loading checks
//! every tensor (name, shape, dtype) before changing anything, so a bad payload changes
//! nothing.

use std::collections::{BTreeSet, HashMap};

use candle_core::{DType, Tensor};
use candle_nn::VarMap;

use crate::error::{PolicyError, Result};

const VERSION_KEY: &str = "empo2.policy_version";

fn weights_err(message: String) -> PolicyError {
    PolicyError::Weights(message)
}

/// Serialises every variable of `vars` as safetensors in `dtype` (F32 or BF16), with
/// `version` in the header metadata.
pub fn to_safetensors(vars: &VarMap, dtype: DType, version: u64) -> Result<Vec<u8>> {
    if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
        return Err(weights_err(format!("cannot send weights as {dtype:?}")));
    }
    let data = vars.data().lock().expect("varmap lock");
    let tensors: Vec<(String, Tensor)> = data
        .iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().to_dtype(dtype)?)))
        .collect::<Result<_>>()?;
    let metadata = HashMap::from([(VERSION_KEY.to_string(), version.to_string())]);
    safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
        .map_err(|e| weights_err(format!("serialise: {e}")))
}

/// The policy version stamped in safetensors `bytes`.
pub fn version_of(bytes: &[u8]) -> Result<u64> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| weights_err(format!("header: {e}")))?;
    meta.metadata()
        .as_ref()
        .and_then(|m| m.get(VERSION_KEY))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| weights_err(format!("no `{VERSION_KEY}` in the header")))
}

/// Loads safetensors `bytes` into `vars` in place; see [`load_tensors`].
pub fn load_safetensors(vars: &VarMap, bytes: &[u8]) -> Result<()> {
    let device = {
        let data = vars.data().lock().expect("varmap lock");
        data.values()
            .next()
            .map(|v| v.device().clone())
            .unwrap_or(candle_core::Device::Cpu)
    };
    let tensors = candle_core::safetensors::load_buffer(bytes, &device)
        .map_err(|e| weights_err(format!("not safetensors: {e}")))?;
    load_tensors(vars, tensors)
}

/// Sets every variable of `vars` from `tensors` (converting f32/bf16/f16 to the variable's
/// dtype). Every variable must be present with its exact shape and finite values, and
/// nothing else may be; otherwise nothing changes and the error names the first offender.
pub fn load_tensors(vars: &VarMap, tensors: HashMap<String, Tensor>) -> Result<()> {
    let data = vars.data().lock().expect("varmap lock");
    let expected: BTreeSet<&str> = data.keys().map(String::as_str).collect();
    let given: BTreeSet<&str> = tensors.keys().map(String::as_str).collect();
    if let Some(missing) = expected.difference(&given).next() {
        return Err(weights_err(format!("tensor `{missing}` is missing")));
    }
    if let Some(extra) = given.difference(&expected).next() {
        return Err(weights_err(format!(
            "tensor `{extra}` is not a parameter of this model"
        )));
    }
    let mut staged = Vec::with_capacity(data.len());
    for (name, var) in data.iter() {
        let tensor = &tensors[name];
        if !matches!(tensor.dtype(), DType::F32 | DType::BF16 | DType::F16) {
            return Err(weights_err(format!(
                "tensor `{name}` has dtype {:?}; expected a float",
                tensor.dtype()
            )));
        }
        if tensor.dims() != var.dims() {
            return Err(weights_err(format!(
                "tensor `{name}` has shape {:?}; the model needs {:?}",
                tensor.dims(),
                var.dims()
            )));
        }
        let values = tensor
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if values.iter().any(|x| !x.is_finite()) {
            return Err(weights_err(format!(
                "tensor `{name}` holds NaN or infinity"
            )));
        }
        staged.push((var, tensor.to_device(var.device())?.to_dtype(var.dtype())?));
    }
    for (var, tensor) in staged {
        var.set(&tensor)?;
    }
    Ok(())
}
