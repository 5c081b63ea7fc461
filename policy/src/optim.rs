//! One optimizer step, in one place: `[train.optim]`, gradient-norm clipping and AdamW
//! (decoupled weight decay) over a policy's named variables, with its state — both moments
//! of every variable and the step count — saved to and loaded from safetensors, so a resumed
//! run continues the exact optimizer trajectory. Same update as `candle_nn::AdamW`, run in
//! place on f32 CPU tensors. A bf16 or f16 parameter gets an f32 master copy that the update
//! runs on (the parameter is its rounding), and its moments are f32: steps far smaller than
//! a bf16 ulp still accumulate.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::error::{PolicyError, Result};
use crate::ops::{self, AdamWStep};

const STEP_KEY: &str = "empo2.adamw_step";
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// `[train.optim]`: AdamW and gradient clipping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Learning rate (the reference uses 1e-6 for 7B; tiny models need more).
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Gradients are scaled down to at most this global L2 norm.
    pub max_grad_norm: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-6,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
        }
    }
}

impl OptimConfig {
    /// Checks the settings are usable: a positive finite learning rate and clip norm, and a
    /// finite non-negative weight decay.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.lr) {
            return Err(format!("optim.lr is {}; it must be positive", self.lr));
        }
        if !positive(self.max_grad_norm) {
            return Err(format!(
                "optim.max_grad_norm is {}; it must be positive",
                self.max_grad_norm
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!(
                "optim.weight_decay is {}; it must be at least 0",
                self.weight_decay
            ));
        }
        Ok(())
    }
}

/// The gradient a clipped step took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradNorm {
    /// Global L2 norm before clipping.
    pub norm: f64,
    /// Parameter tensors with a non-zero gradient.
    pub vars_with_grad: usize,
    /// Parameter tensors.
    pub vars: usize,
}

/// One parameter and its moments.
struct Slot {
    name: String,
    var: Var,
    /// The f32 weights a half-precision `var` rounds (none for f32 and f64).
    master: Option<Var>,
    first: Var,
    second: Var,
}

impl Slot {
    /// The weights the update runs on.
    fn weights(&self) -> &Var {
        self.master.as_ref().unwrap_or(&self.var)
    }
}

/// AdamW with β = (0.9, 0.999), ε = 1e-8.
pub struct AdamW {
    slots: Vec<Slot>,
    lr: f64,
    weight_decay: f64,
    step: u64,
}

impl AdamW {
    /// Zero moments for every variable of `vars`.
    pub fn new(vars: &VarMap, lr: f64, weight_decay: f64) -> Result<Self> {
        let data = vars.data().lock().expect("varmap lock");
        let mut slots = Vec::with_capacity(data.len());
        for (name, var) in data.iter() {
            let master = match var.dtype() {
                DType::BF16 | DType::F16 => Some(Var::from_tensor(&var.to_dtype(DType::F32)?)?),
                _ => None,
            };
            let weights = master.as_ref().unwrap_or(var);
            let zeros = || Var::zeros(var.shape(), weights.dtype(), var.device());
            slots.push(Slot {
                name: name.clone(),
                var: var.clone(),
                first: zeros()?,
                second: zeros()?,
                master,
            });
        }
        slots.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            slots,
            lr,
            weight_decay,
            step: 0,
        })
    }

    /// AdamW at the learning rate and weight decay of `cfg`.
    pub fn from_config(vars: &VarMap, cfg: &OptimConfig) -> Result<Self> {
        Self::new(vars, cfg.lr, cfg.weight_decay)
    }

    /// Scales `grads` down to a global L2 norm of at most `max_norm`, then steps. A
    /// non-finite norm steps nothing and is an error.
    pub fn clip_and_step(&mut self, mut grads: GradStore, max_norm: f64) -> Result<GradNorm> {
        let mut sum_sq = 0f64;
        let mut vars_with_grad = 0;
        for slot in &self.slots {
            if let Some(g) = grads.get(slot.var.as_tensor()) {
                let sq = f64::from(
                    g.to_dtype(DType::F32)?
                        .sqr()?
                        .sum_all()?
                        .to_scalar::<f32>()?,
                );
                if sq > 0.0 {
                    vars_with_grad += 1;
                }
                sum_sq += sq;
            }
        }
        let norm = sum_sq.sqrt();
        if !norm.is_finite() {
            return Err(PolicyError::InvalidInput(format!(
                "gradient norm is {norm}; the step is skipped"
            )));
        }
        if norm > max_norm {
            let scale = max_norm / norm;
            for slot in &self.slots {
                if let Some(g) = grads.remove(slot.var.as_tensor()) {
                    grads.insert(slot.var.as_tensor(), (g * scale)?);
                }
            }
        }
        self.step(&grads)?;
        Ok(GradNorm {
            norm,
            vars_with_grad,
            vars: self.slots.len(),
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update from `grads`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let step = AdamWStep {
            lr: self.lr,
            weight_decay: self.weight_decay,
            beta1: BETA1,
            beta2: BETA2,
            eps: EPS,
            step: self.step,
        };
        for slot in &self.slots {
            if let Some(grad) = grads.get(slot.var.as_tensor()) {
                let weights = slot.weights();
                let grad = grad.to_dtype(weights.dtype())?;
                ops::adamw(weights, &slot.first, &slot.second, &grad, &step)?;
                if let Some(master) = &slot.master {
                    slot.var.set(&master.to_dtype(slot.var.dtype())?)?;
                }
            }
        }
        Ok(())
    }

    /// Writes both moments of every variable, the master weights of half-precision ones and
    /// the step count to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(2 * self.slots.len());
        for slot in &self.slots {
            tensors.push((format!("m.{}", slot.name), slot.first.as_tensor().clone()));
            tensors.push((format!("v.{}", slot.name), slot.second.as_tensor().clone()));
            if let Some(master) = &slot.master {
                tensors.push((format!("w.{}", slot.name), master.as_tensor().clone()));
            }
        }
        let metadata = HashMap::from([(STEP_KEY.to_string(), self.step.to_string())]);
        safetensors::serialize_to_file(
            tensors.iter().map(|(n, t)| (n.as_str(), t)),
            Some(metadata),
            path,
        )
        .map_err(|e| PolicyError::Optimizer(format!("write {}: {e}", path.display())))
    }

    /// Loads the state written by [`AdamW::save`]; every moment must be there with its
    /// variable's shape, or nothing changes. Master weights are the saved ones when they still
    /// round to the parameter, else the parameter itself (weights loaded since win).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bad = |m: String| PolicyError::Optimizer(format!("{}: {m}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let step: u64 = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(STEP_KEY))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("no `{STEP_KEY}`")))?;
        let device = self
            .slots
            .first()
            .map_or(candle_core::Device::Cpu, |s| s.var.device().clone());
        let tensors = candle_core::safetensors::load_buffer(&bytes, &device)?;
        let mut staged = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            for (prefix, moment) in [("m", &slot.first), ("v", &slot.second)] {
                let name = format!("{prefix}.{}", slot.name);
                let t = tensors
                    .get(&name)
                    .ok_or_else(|| bad(format!("`{name}` is missing")))?;
                if t.shape() != moment.shape() {
                    return Err(bad(format!(
                        "`{name}` has shape {:?}, the parameter {:?}",
                        t.shape(),
                        moment.shape()
                    )));
                }
                staged.push((moment, t.to_dtype(moment.dtype())?));
            }
            if let Some(master) = &slot.master {
                let saved = tensors.get(&format!("w.{}", slot.name));
                staged.push((master, self::master(slot, saved)?));
            }
        }
        for (moment, t) in staged {
            moment.set(&t)?;
        }
        self.step = step;
        Ok(())
    }
}

/// The master weights of `slot` after a load: `saved` when it rounds to the parameter as it
/// is now, else the parameter in f32.
fn master(slot: &Slot, saved: Option<&Tensor>) -> Result<Tensor> {
    let current = slot.var.as_tensor();
    if let Some(saved) = saved.filter(|t| t.shape() == current.shape()) {
        let rounded = saved.to_dtype(current.dtype())?;
        let same = rounded
            .eq(current)?
            .to_dtype(DType::F32)?
            .min_all()?
            .to_scalar::<f32>()?;
        if same == 1.0 {
            return Ok(saved.to_dtype(DType::F32)?);
        }
    }
    Ok(current.to_dtype(DType::F32)?)
}
