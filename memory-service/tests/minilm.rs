//! all-MiniLM-L6-v2 in candle gives sentence-transformers-like similarities. Needs the model
//! files (`scripts/fetch-models.sh`); skipped with a message when they are absent, except in
//! CI (`CI` set), where their absence is a failure.

use std::path::PathBuf;

use memory_service::embed::{Embedder, MiniLmEmbedder, dot};

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("EMPO2_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2")
        });
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must fetch the model: run scripts/fetch-models.sh"
    );
    eprintln!(
        "skipped: no all-MiniLM-L6-v2 in {} (run scripts/fetch-models.sh)",
        dir.display()
    );
    None
}

#[test]
fn paraphrases_are_close_and_unrelated_sentences_are_far() {
    let Some(dir) = model_dir() else { return };
    let model = MiniLmEmbedder::load(&dir).unwrap();
    assert_eq!((model.name(), model.dims()), ("all-MiniLM-L6-v2", 384));
    let v = model
        .embed(&[
            "The cat sits on the mat.",
            "A cat is sitting on a rug.",
            "Quarterly revenue grew by eight percent.",
        ])
        .unwrap();
    for x in &v {
        assert!((dot(x, x) - 1.0).abs() < 1e-4, "unit length");
    }
    let paraphrase = dot(&v[0], &v[1]);
    let unrelated = dot(&v[0], &v[2]);
    eprintln!("cos(paraphrase) = {paraphrase:.3}, cos(unrelated) = {unrelated:.3}");
    assert!(paraphrase > 0.7, "paraphrase cosine {paraphrase}");
    assert!(unrelated < 0.2, "unrelated cosine {unrelated}");
}

#[test]
fn batching_and_padding_do_not_change_a_text_embedding() {
    let Some(dir) = model_dir() else { return };
    let model = MiniLmEmbedder::load(&dir).unwrap();
    let alone = model.embed(&["open the door to the hallway"]).unwrap();
    let long = "you walk through many rooms and look at every object you can find ".repeat(8);
    let batched = model
        .embed(&[long.as_str(), "open the door to the hallway"])
        .unwrap();
    let diff = alone[0]
        .iter()
        .zip(&batched[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-4, "padding changed the embedding by {diff}");
}

#[test]
fn missing_model_files_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = MiniLmEmbedder::load(dir.path())
        .err()
        .expect("no files, no model");
    let msg = err.to_string();
    assert!(msg.contains("config.json"), "{msg}");
}
