//! What a policy is built from, weights aside: its `config.json` and `tokenizer.json`. The
//! learner sends it to actors, so they build whatever model it trains and take its weights.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

use crate::error::{PolicyError, Result};
use crate::{ChatTokenizer, ModelConfig, Policy, Qwen2};

/// A model's architecture and tokenizer, as the texts of their Hugging Face files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    /// `config.json`.
    pub config_json: String,
    /// `tokenizer.json`.
    pub tokenizer_json: String,
}

impl Policy {
    /// This policy's architecture and tokenizer.
    pub fn architecture(&self) -> Result<Architecture> {
        Ok(Architecture {
            config_json: self.model.config().to_json(),
            tokenizer_json: self
                .tokenizer
                .inner()
                .to_string(false)
                .map_err(|e| PolicyError::Tokenizer(e.to_string()))?,
        })
    }

    /// A policy of `architecture` in f32 on `device`, its parameters at their initial values
    /// until weights are loaded into `vars`.
    pub fn build(architecture: &Architecture, device: &Device) -> Result<Self> {
        let cfg = ModelConfig::from_json(&architecture.config_json)?;
        let inner: tokenizers::Tokenizer = architecture
            .tokenizer_json
            .parse()
            .map_err(|e| PolicyError::Tokenizer(format!("tokenizer.json: {e}")))?;
        let tokenizer = ChatTokenizer::new(inner)?;
        crate::fits_vocabulary(&tokenizer, &cfg)?;
        let vars = VarMap::new();
        let model = Qwen2::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, device))?;
        Ok(Self {
            model,
            vars,
            tokenizer,
        })
    }
}
