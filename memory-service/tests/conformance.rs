//! One behaviour suite for every `TipStore` backend: the embedded store always, a Qdrant
//! server when `QDRANT_URL` is set (e.g. `QDRANT_URL=http://127.0.0.1:6334`, with
//! `QDRANT_SNAPSHOTS_PATH` its snapshot directory); otherwise the Qdrant cases print that
//! they were skipped.

use memory_service::config::{QdrantConfig, RankBy};
use memory_service::store::{
    EmbeddedStore, NewEntry, QdrantStore, Query, StoreError, TipStore, WriteRules,
};

const DIMS: usize = 8;
const RULES: WriteRules = WriteRules {
    cap: 3,
    state_cap: 3,
    dedup: true,
    snapshots_keep: 2,
};

/// A unit vector mostly along axis `axis`, tilted towards `axis + 1` by `tilt`.
fn vec_at(axis: usize, tilt: f32) -> Vec<f32> {
    let mut v = [0.0f32; DIMS];
    v[axis] = 1.0;
    v[(axis + 1) % DIMS] = tilt;
    let n = (1.0 + tilt * tilt).sqrt();
    v.iter().map(|x| x / n).collect()
}

fn entry(slot: &str, text: &str, vector: Vec<f32>, score: f32) -> NewEntry {
    NewEntry {
        slot: slot.into(),
        text: text.into(),
        vector,
        score,
        policy_version: 3,
    }
}

fn query(slot: &str, vector: Vec<f32>, limit: usize, rank: RankBy) -> Query {
    Query {
        slot: slot.into(),
        vector,
        threshold: 0.5,
        limit,
        rank,
    }
}

async fn texts<S: TipStore>(store: &S, q: Query) -> Vec<String> {
    store
        .retrieve(q)
        .await
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.text)
        .collect()
}

async fn dedup_skips_exact_text_within_a_slot<S: TipStore>(store: &S) {
    let first = store
        .insert(vec![entry("a", "open the door", vec_at(0, 0.0), 10.0)])
        .await
        .unwrap();
    assert!(!first.results[0].duplicate);
    let again = store
        .insert(vec![
            entry("a", "open the door", vec_at(0, 0.1), 50.0),
            entry("b", "open the door", vec_at(0, 0.0), 10.0),
            entry("a", "open the window", vec_at(0, 0.0), 10.0),
            entry("a", "open the window", vec_at(0, 0.0), 10.0),
        ])
        .await
        .unwrap();
    let dup: Vec<bool> = again.results.iter().map(|r| r.duplicate).collect();
    assert_eq!(
        dup,
        [true, false, false, true],
        "same text, same slot is a duplicate; other slot is not"
    );
    assert_eq!(
        again.results[0].id, first.results[0].id,
        "a duplicate reports the stored id"
    );
    assert_eq!(
        again.results[3].id, again.results[2].id,
        "a duplicate within the batch too"
    );
    let hits = store
        .retrieve(query("a", vec_at(0, 0.0), 10, RankBy::Score))
        .await
        .unwrap()
        .hits;
    assert_eq!(hits.len(), 2);
    assert!(
        hits.iter().all(|h| h.score == 10.0),
        "the duplicate's score was not written"
    );
}

async fn cap_evicts_oldest_first<S: TipStore>(store: &S) {
    for i in 0..3 {
        store
            .insert(vec![entry(
                "s",
                &format!("tip {i}"),
                vec_at(0, 0.0),
                i as f32,
            )])
            .await
            .unwrap();
    }
    let out = store
        .insert(vec![
            entry("s", "tip 3", vec_at(0, 0.0), 3.0),
            entry("s", "tip 4", vec_at(0, 0.0), 4.0),
        ])
        .await
        .unwrap();
    assert_eq!(out.evicted, 2);
    let mut left = texts(store, query("s", vec_at(0, 0.0), 10, RankBy::Score)).await;
    left.sort();
    assert_eq!(left, ["tip 2", "tip 3", "tip 4"]);
    let counts = store.slot_counts().await.unwrap();
    let s = counts.iter().find(|c| c.slot == "s").unwrap();
    assert_eq!((s.tips, s.evictions), (3, 2));
}

async fn eviction_spans_stored_and_new_entries<S: TipStore>(store: &S) {
    for t in ["s1", "s2"] {
        store
            .insert(vec![entry("e", t, vec_at(0, 0.0), 1.0)])
            .await
            .unwrap();
    }
    let batch = ["n1", "n2", "n3", "n4"]
        .map(|t| entry("e", t, vec_at(0, 0.0), 1.0))
        .to_vec();
    assert_eq!(store.insert(batch).await.unwrap().evicted, 3);
    let mut left = texts(store, query("e", vec_at(0, 0.0), 10, RankBy::Score)).await;
    left.sort();
    assert_eq!(
        left,
        ["n2", "n3", "n4"],
        "both stored entries and the oldest new one went"
    );
}

async fn retrieve_keeps_above_threshold_ranks_by_score_then_limits<S: TipStore>(store: &S) {
    store
        .insert(vec![
            entry("r", "close, low score", vec_at(0, 0.1), 5.0),
            entry("r", "close-ish, high score", vec_at(0, 0.9), 90.0),
            entry("r", "far, best score", vec_at(3, 0.0), 100.0),
            entry("r", "middle", vec_at(0, 0.5), 40.0),
        ])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Cap 3 evicted the oldest ("close, low score").
    assert_eq!(
        texts(store, query("r", vec_at(0, 0.0), 10, RankBy::Score)).await,
        ["close-ish, high score", "middle"],
        "the far entry is below the threshold; the rest are by score, not similarity"
    );
    assert_eq!(
        texts(store, query("r", vec_at(0, 0.0), 1, RankBy::Score)).await,
        ["close-ish, high score"]
    );
    assert_eq!(
        texts(store, query("r", vec_at(0, 0.0), 10, RankBy::Similarity)).await,
        ["middle", "close-ish, high score"]
    );
    let hits = store
        .retrieve(query("r", vec_at(0, 0.0), 10, RankBy::Score))
        .await
        .unwrap()
        .hits;
    let expected = 1.0 / (1.0f32 + 0.81).sqrt();
    assert!(
        (hits[0].similarity - expected).abs() < 1e-4,
        "similarity {}",
        hits[0].similarity
    );
    assert_eq!(hits[0].policy_version, 3);
    assert!(hits[0].created_unix_ms > 1_600_000_000_000);
}

async fn slots_are_isolated_and_unknown_slots_are_empty<S: TipStore>(store: &S) {
    store
        .insert(vec![entry("x", "in x", vec_at(1, 0.0), 1.0)])
        .await
        .unwrap();
    assert!(
        texts(store, query("y", vec_at(1, 0.0), 10, RankBy::Score))
            .await
            .is_empty()
    );
    assert_eq!(
        texts(store, query("x", vec_at(1, 0.0), 10, RankBy::Score)).await,
        ["in x"]
    );
}

async fn drop_slot_removes_tips_and_states<S: TipStore>(store: &S) {
    store
        .insert(vec![entry("d", "tip", vec_at(1, 0.0), 1.0)])
        .await
        .unwrap();
    store
        .novelty("d".into(), vec_at(2, 0.0), 0.5, true)
        .await
        .unwrap();
    store
        .insert(vec![entry("keep", "tip", vec_at(1, 0.0), 1.0)])
        .await
        .unwrap();
    assert_eq!(store.drop_slot("d".into()).await.unwrap(), 2);
    assert!(
        texts(store, query("d", vec_at(1, 0.0), 10, RankBy::Score))
            .await
            .is_empty()
    );
    assert_eq!(
        store
            .novelty("d".into(), vec_at(2, 0.0), 0.5, false)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        texts(store, query("keep", vec_at(1, 0.0), 10, RankBy::Score)).await,
        ["tip"]
    );
    assert!(matches!(
        store.drop_slot("d".into()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.drop_slot("never".into()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn novelty_counts_similar_states_then_records<S: TipStore>(store: &S) {
    let n = |v, record| store.novelty("n".into(), v, 0.5, record);
    assert_eq!(n(vec_at(0, 0.0), true).await.unwrap(), 0);
    assert_eq!(n(vec_at(0, 0.1), true).await.unwrap(), 1);
    assert_eq!(n(vec_at(0, 0.0), false).await.unwrap(), 2);
    assert_eq!(
        n(vec_at(0, 0.0), false).await.unwrap(),
        2,
        "record = false stores nothing"
    );
    assert_eq!(
        n(vec_at(4, 0.0), false).await.unwrap(),
        0,
        "a dissimilar state is novel"
    );
    assert!(
        texts(store, query("n", vec_at(0, 0.0), 10, RankBy::Score))
            .await
            .is_empty(),
        "states are not tips"
    );
}

async fn snapshot_restore_returns_to_the_snapshot<S: TipStore>(store: &S) {
    store
        .insert(vec![entry("snap", "before", vec_at(5, 0.0), 1.0)])
        .await
        .unwrap();
    let snap = store.snapshot(false).await.unwrap();
    assert_eq!(snap.entries, 1);
    store
        .insert(vec![entry("snap", "after", vec_at(5, 0.0), 2.0)])
        .await
        .unwrap();
    store
        .insert(vec![entry("other", "after", vec_at(5, 0.0), 2.0)])
        .await
        .unwrap();
    assert_eq!(store.restore(snap.id.clone()).await.unwrap(), 1);
    assert_eq!(
        texts(store, query("snap", vec_at(5, 0.0), 10, RankBy::Score)).await,
        ["before"]
    );
    assert!(
        texts(store, query("other", vec_at(5, 0.0), 10, RankBy::Score))
            .await
            .is_empty()
    );
    // Writes continue normally after a restore.
    store
        .insert(vec![entry("snap", "later", vec_at(5, 0.0), 3.0)])
        .await
        .unwrap();
    assert_eq!(
        texts(store, query("snap", vec_at(5, 0.0), 10, RankBy::Score)).await,
        ["later", "before"]
    );
    assert!(matches!(
        store.restore("snap-unknown".into()).await,
        Err(StoreError::NotFound(_))
    ));
    // Two are kept: a second and a third snapshot retire the first.
    store.snapshot(false).await.unwrap();
    let last = store.snapshot(false).await.unwrap();
    assert!(matches!(
        store.restore(snap.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.restore(last.id).await.unwrap(), 2);
}

async fn a_pinned_snapshot_survives_retention_until_released<S: TipStore>(store: &S) {
    store
        .insert(vec![entry("pin", "pinned", vec_at(6, 0.0), 1.0)])
        .await
        .unwrap();
    let pinned = store.snapshot(true).await.unwrap();
    // Three unpinned snapshots after it: with two kept, an unpinned one would be gone.
    let mut unpinned = Vec::new();
    for _ in 0..3 {
        unpinned.push(store.snapshot(false).await.unwrap());
    }
    assert!(matches!(
        store.restore(unpinned[0].id.clone()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store.release(pinned.id.clone()).await.unwrap(),
        "it was pinned"
    );
    assert!(
        !store.release(unpinned[2].id.clone()).await.unwrap(),
        "an unpinned snapshot was not pinned"
    );
    // Released, it is the oldest of three unpinned snapshots, so retention deletes it.
    assert!(matches!(
        store.restore(pinned.id.clone()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.release(pinned.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.restore(unpinned[2].id.clone()).await.unwrap(), 1);
}

async fn ties_at_the_limit_keep_the_more_similar<S: TipStore>(store: &S) {
    // Inserted least similar first, so insertion order cannot pass for similarity order.
    for (text, tilt) in [("far", 0.9), ("near", 0.1), ("middle", 0.5)] {
        store
            .insert(vec![entry("ties", text, vec_at(2, tilt), 50.0)])
            .await
            .unwrap();
    }
    assert_eq!(
        texts(store, query("ties", vec_at(2, 0.0), 2, RankBy::Score)).await,
        ["near", "middle"],
        "equal scores rank by similarity, also at the limit"
    );
    assert_eq!(
        texts(store, query("ties", vec_at(2, 0.0), 1, RankBy::Score)).await,
        ["near"]
    );
}

async fn slot_counts_are_sorted_per_slot<S: TipStore>(store: &S) {
    store
        .insert(vec![
            entry("b", "t1", vec_at(0, 0.0), 1.0),
            entry("a", "t1", vec_at(0, 0.0), 1.0),
        ])
        .await
        .unwrap();
    store
        .novelty("a".into(), vec_at(0, 0.0), 0.5, true)
        .await
        .unwrap();
    let counts = store.slot_counts().await.unwrap();
    let view: Vec<(&str, u64, u64)> = counts
        .iter()
        .map(|c| (c.slot.as_str(), c.tips, c.states))
        .collect();
    assert_eq!(view, [("a", 1, 1), ("b", 1, 0)]);
}

fn embedded() -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        EmbeddedStore::open(dir.path(), "test/8", RULES).unwrap(),
        dir,
    )
}

/// A fresh collection on the server at `QDRANT_URL`, or `None` when unset.
fn qdrant_config() -> Option<QdrantConfig> {
    let url = std::env::var("QDRANT_URL").ok()?;
    Some(QdrantConfig {
        url,
        collection: format!("empo2_test_{}", uuid::Uuid::now_v7().simple()),
        // Where the server keeps snapshots, as it sees it (restores name the file there).
        snapshots_path: std::env::var("QDRANT_SNAPSHOTS_PATH")
            .unwrap_or_else(|_| QdrantConfig::default().snapshots_path),
        ..QdrantConfig::default()
    })
}

/// A store on a fresh collection of the server at `QDRANT_URL`, or `None` when unset.
async fn qdrant() -> Option<QdrantStore> {
    let cfg = qdrant_config()?;
    Some(
        QdrantStore::connect(&cfg, "test/8", DIMS, RULES)
            .await
            .expect("QDRANT_URL is set but unreachable"),
    )
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _dir) = super::embedded();
                    super::$case(&store).await;
                }
            )*
        }
        mod qdrant {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(store) = super::qdrant().await else {
                        eprintln!("skipped: QDRANT_URL is not set, so the Qdrant backend was not tested");
                        return;
                    };
                    super::$case(&store).await;
                }
            )*
        }
    };
}

conformance!(
    dedup_skips_exact_text_within_a_slot,
    cap_evicts_oldest_first,
    eviction_spans_stored_and_new_entries,
    retrieve_keeps_above_threshold_ranks_by_score_then_limits,
    slots_are_isolated_and_unknown_slots_are_empty,
    drop_slot_removes_tips_and_states,
    novelty_counts_similar_states_then_records,
    snapshot_restore_returns_to_the_snapshot,
    a_pinned_snapshot_survives_retention_until_released,
    ties_at_the_limit_keep_the_more_similar,
    slot_counts_are_sorted_per_slot,
);

#[tokio::test]
async fn embedded_store_survives_reopen_and_refuses_another_embedding_space() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path(), "test/8", RULES).unwrap();
        store
            .insert(vec![entry("p", "persisted", vec_at(0, 0.0), 7.0)])
            .await
            .unwrap();
        store
            .novelty("p".into(), vec_at(0, 0.0), 0.5, true)
            .await
            .unwrap();
        for i in 0..4 {
            store
                .insert(vec![entry("q", &format!("q{i}"), vec_at(0, 0.0), 1.0)])
                .await
                .unwrap();
        }
    }
    let store = EmbeddedStore::open(dir.path(), "test/8", RULES).unwrap();
    assert_eq!(
        texts(&store, query("p", vec_at(0, 0.0), 10, RankBy::Score)).await,
        ["persisted"]
    );
    let counts = store.slot_counts().await.unwrap();
    let q = counts.iter().find(|c| c.slot == "q").unwrap();
    assert_eq!((q.tips, q.evictions), (3, 1), "evictions persist too");
    // New writes after reopen still evict the oldest, not the newest.
    store
        .insert(vec![entry("q", "q4", vec_at(0, 0.0), 1.0)])
        .await
        .unwrap();
    let mut left = texts(&store, query("q", vec_at(0, 0.0), 10, RankBy::Score)).await;
    left.sort();
    assert_eq!(left, ["q2", "q3", "q4"]);
    drop(store);
    match EmbeddedStore::open(dir.path(), "other/8", RULES) {
        Err(StoreError::Incompatible(msg)) => assert!(msg.contains("test/8"), "{msg}"),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("opened a store of another embedding space"),
    }
}

#[tokio::test]
async fn a_duplicate_of_an_entry_the_batch_evicts_is_stored_again() {
    let (store, _dir) = embedded();
    for t in ["t0", "t1", "t2"] {
        store
            .insert(vec![entry("d", t, vec_at(0, 0.0), 1.0)])
            .await
            .unwrap();
    }
    // t3 evicts t0; then t0 is no longer in the slot, so it is new (and evicts t1).
    let out = store
        .insert(vec![
            entry("d", "t3", vec_at(0, 0.0), 1.0),
            entry("d", "t0", vec_at(0, 0.0), 1.0),
        ])
        .await
        .unwrap();
    assert_eq!(
        out.results.iter().map(|r| r.duplicate).collect::<Vec<_>>(),
        [false, false]
    );
    let mut left = texts(&store, query("d", vec_at(0, 0.0), 10, RankBy::Score)).await;
    left.sort();
    assert_eq!(left, ["t0", "t2", "t3"]);
}

#[tokio::test]
async fn a_batch_larger_than_the_cap_keeps_its_newest_entries() {
    let (store, _dir) = embedded();
    let batch = (0..5)
        .map(|i| entry("big", &format!("b{i}"), vec_at(0, 0.0), i as f32))
        .collect();
    let out = store.insert(batch).await.unwrap();
    assert_eq!(out.evicted, 2);
    assert_eq!(
        texts(&store, query("big", vec_at(0, 0.0), 10, RankBy::Score)).await,
        ["b4", "b3", "b2"]
    );
}

#[tokio::test]
async fn qdrant_refuses_a_collection_another_embedder_wrote() {
    let Some(cfg) = qdrant_config() else {
        eprintln!("skipped: QDRANT_URL is not set, so the Qdrant backend was not tested");
        return;
    };
    let store = QdrantStore::connect(&cfg, "test/8", DIMS, RULES)
        .await
        .unwrap();
    store
        .insert(vec![entry("s", "tip", vec_at(0, 0.0), 1.0)])
        .await
        .unwrap();
    QdrantStore::connect(&cfg, "test/8", DIMS, RULES)
        .await
        .expect("the same embedder reopens it");
    let refused = QdrantStore::connect(&cfg, "other/8", DIMS, RULES).await;
    assert!(
        matches!(refused, Err(StoreError::Incompatible(_))),
        "another embedder of the same dimension is refused"
    );
}
