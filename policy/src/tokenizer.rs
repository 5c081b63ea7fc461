//! The tokenizer and the ChatML chat template (`<|im_start|>role\n…<|im_end|>\n`) used by the
//! Qwen2 family. Segments are tokenised on their own (ARCHITECTURE.md: the prompt is the
//! concatenation of segment tokens), so no special tokens are added implicitly.

use std::path::Path;

use crate::error::{PolicyError, Result};

/// Start of a chat turn.
pub const IM_START: &str = "<|im_start|>";
/// End of a chat turn; the stop token of a generated action.
pub const IM_END: &str = "<|im_end|>";
/// End of text.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A Hugging Face tokenizer with the ChatML special tokens resolved.
#[derive(Clone)]
pub struct ChatTokenizer {
    inner: tokenizers::Tokenizer,
    im_end: u32,
}

impl ChatTokenizer {
    /// Loads `tokenizer.json` from a model directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| PolicyError::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::new(inner)
    }

    /// Wraps a tokenizer that knows `<|im_start|>` and `<|im_end|>`.
    pub fn new(inner: tokenizers::Tokenizer) -> Result<Self> {
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| PolicyError::Tokenizer(format!("the tokenizer has no `{t}` token")))
        };
        id(IM_START)?;
        let im_end = id(IM_END)?;
        Ok(Self { inner, im_end })
    }

    /// Token ids of `text` (special-token strings in it map to their ids).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(|e| PolicyError::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| PolicyError::Tokenizer(e.to_string()))
    }

    /// The id that ends an assistant turn (the action's stop token).
    pub fn im_end(&self) -> u32 {
        self.im_end
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The wrapped tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// ChatML pieces: a system turn, a user turn, and the opening of the assistant turn (the
/// prompt for an action). A full conversation is their concatenation.
pub mod chatml {
    use super::{IM_END, IM_START};

    /// A whole turn: `<|im_start|>{role}\n{content}<|im_end|>\n`.
    pub fn turn(role: &str, content: &str) -> String {
        format!("{IM_START}{role}\n{content}{IM_END}\n")
    }

    /// The opening of the assistant's reply.
    pub fn assistant_prompt() -> String {
        format!("{IM_START}assistant\n")
    }

    /// A conversation of (role, content) turns followed by the assistant prompt.
    pub fn prompt(turns: &[(&str, &str)]) -> String {
        let mut text: String = turns.iter().map(|(r, c)| turn(r, c)).collect();
        text.push_str(&assistant_prompt());
        text
    }
}
