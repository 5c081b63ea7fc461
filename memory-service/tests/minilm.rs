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

#[test]
fn cached_vectors_equal_fresh_ones_and_inputs_past_the_truncation_share_one() {
    let Some(dir) = model_dir() else { return };
    let fresh = MiniLmEmbedder::load(&dir).unwrap();
    let cached = MiniLmEmbedder::load_cached(&dir, 16).unwrap();
    let story = "you walk through many rooms and look at every object you can find ".repeat(40);
    let longer = format!("{story} and then you open the fridge");
    let texts = [
        "open the door to the hallway",
        story.as_str(),
        "look around",
    ];
    let first = cached.embed(&texts).unwrap();
    assert_eq!(cached.cached(), 3);
    // A batch of cache hits, a repeat inside one batch, and a text that differs only past
    // the model's 256 word pieces: no new input, so nothing new is cached.
    let again = cached
        .embed(&[longer.as_str(), "look around", "look around", texts[0]])
        .unwrap();
    assert_eq!(cached.cached(), 3, "every input was seen before");
    let reference = fresh.embed(&[texts[0], texts[1], texts[2]]).unwrap();
    let worst = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    for (got, want) in first.iter().zip(&reference) {
        // Padding to another batch's width changes the sums' order only.
        assert!(worst(got, want) < 1e-5, "{}", worst(got, want));
    }
    assert_eq!(
        again[0], first[1],
        "past the truncation the input is the same"
    );
    assert_eq!(
        (&again[1], &again[2], &again[3]),
        (&first[2], &first[2], &first[0])
    );
}
