//! Property: on random data, the embedded store's Retrieve returns exactly what a
//! straightforward reference implementation of the EMPO² memory rules returns — same ids,
//! same order — after random batches (up to twice the cap, so evictions span stored and new
//! entries) that exercise dedup and oldest-first eviction, and again after reopening the store.

use memory_service::config::RankBy;
use memory_service::store::{EmbeddedStore, NewEntry, Query, TipStore, WriteRules};
use proptest::prelude::*;

const DIMS: usize = 6;
const CAP: usize = 6;
const SLOTS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
struct Op {
    slot: usize,
    text: u8,
    vector: Vec<i8>,
    score: i8,
}

#[derive(Debug, Clone)]
struct Probe {
    slot: usize,
    vector: Vec<i8>,
    threshold: f32,
    limit: usize,
    by_score: bool,
}

/// The unit vector the store is given (f32), or None for the zero vector.
fn unit(v: &[i8]) -> Option<Vec<f32>> {
    let n = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    (n > 0.0).then(|| v.iter().map(|&x| (f64::from(x) / n) as f32).collect())
}

/// The same vector widened, for the reference's f64 arithmetic.
fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn op() -> impl Strategy<Value = Op> {
    (
        0..SLOTS.len(),
        0u8..12,
        prop::collection::vec(-2i8..=2, DIMS),
        -10i8..=10,
    )
        .prop_filter("non-zero vector", |(_, _, v, _)| unit(v).is_some())
        .prop_map(|(slot, text, vector, score)| Op {
            slot,
            text,
            vector,
            score,
        })
}

fn probe() -> impl Strategy<Value = Probe> {
    (
        0..SLOTS.len(),
        prop::collection::vec(-2i8..=2, DIMS),
        prop::sample::select(vec![-0.2f32, 0.0, 0.3, 0.5, 0.7]),
        1usize..8,
        any::<bool>(),
    )
        .prop_filter("non-zero vector", |(_, v, ..)| unit(v).is_some())
        .prop_map(|(slot, vector, threshold, limit, by_score)| Probe {
            slot,
            vector,
            threshold,
            limit,
            by_score,
        })
}

/// The reference: a list in insertion order, the rules applied literally.
#[derive(Default)]
struct Reference {
    entries: Vec<(usize, u8, Vec<f64>, f64, String)>,
}

impl Reference {
    fn is_duplicate(&self, slot: usize, text: u8) -> bool {
        self.entries.iter().any(|e| e.0 == slot && e.1 == text)
    }

    /// The cap, applied after each single entry: the slot's oldest go first.
    fn evict(&mut self, slot: usize) {
        while self.entries.iter().filter(|e| e.0 == slot).count() > CAP {
            let oldest = self.entries.iter().position(|e| e.0 == slot).unwrap();
            self.entries.remove(oldest);
        }
    }

    /// Ids in rank order, or None when a near-tie makes the exact order depend on rounding.
    fn retrieve(&self, p: &Probe) -> Option<Vec<String>> {
        let q = wide(&unit(&p.vector).unwrap());
        let mut hits: Vec<(f64, f64, &str, &[f64])> = Vec::new();
        for (slot, _, v, score, id) in &self.entries {
            if *slot != p.slot {
                continue;
            }
            let sim: f64 = v.iter().zip(&q).map(|(a, b)| a * b).sum();
            if (sim - f64::from(p.threshold)).abs() < 1e-5 {
                return None;
            }
            if sim > f64::from(p.threshold) {
                hits.push((*score, sim, id, v));
            }
        }
        // Two candidates whose order hangs on similarity, with similarities within rounding
        // of each other, are only comparable when their vectors are identical (then the store
        // computes the same float for both and falls back to ids, as the reference does).
        for a in &hits {
            for b in &hits {
                let same_key = !p.by_score || a.0 == b.0;
                let near = (a.1 - b.1).abs() < 1e-5;
                if same_key && near && a.3 != b.3 {
                    return None;
                }
            }
        }
        hits.sort_by(|a, b| {
            let by_sim = b.1.partial_cmp(&a.1).unwrap();
            let key = if p.by_score {
                b.0.partial_cmp(&a.0).unwrap().then(by_sim)
            } else {
                by_sim
            };
            key.then(a.2.cmp(b.2))
        });
        Some(
            hits.into_iter()
                .take(p.limit)
                .map(|h| h.2.to_string())
                .collect(),
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn embedded_retrieve_equals_the_reference(
        batches in prop::collection::vec(prop::collection::vec(op(), 1..2 * CAP + 2), 1..8),
        probes in prop::collection::vec(probe(), 1..12),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rules = WriteRules { cap: CAP, state_cap: CAP, dedup: true, snapshots_keep: 1 };
        let store = EmbeddedStore::open(dir.path(), "prop/6", rules).unwrap();
        let mut reference = Reference::default();
        for batch in batches {
            let entries = batch
                .iter()
                .map(|o| NewEntry {
                    slot: SLOTS[o.slot].into(),
                    text: format!("tip {}", o.text),
                    vector: unit(&o.vector).unwrap(),
                    score: f32::from(o.score) * 10.0,
                    policy_version: 0,
                })
                .collect();
            let out = runtime.block_on(store.insert(entries)).unwrap();
            for (o, result) in batch.iter().zip(out.results) {
                let duplicate = reference.is_duplicate(o.slot, o.text);
                prop_assert_eq!(result.duplicate, duplicate, "dedup of slot {} text {}", o.slot, o.text);
                if !duplicate {
                    let v = wide(&unit(&o.vector).unwrap());
                    reference.entries.push((o.slot, o.text, v, f64::from(o.score) * 10.0, result.id));
                    reference.evict(o.slot);
                }
            }
        }
        let mut checked = Vec::new();
        for p in &probes {
            let Some(expected) = reference.retrieve(p) else { continue };
            let got = runtime.block_on(store.retrieve(query_of(p))).unwrap();
            let got: Vec<String> = got.hits.into_iter().map(|h| h.id).collect();
            prop_assert_eq!(&got, &expected, "probe {:?}", p);
            checked.push((p.clone(), expected));
        }
        drop(store);
        let reopened = EmbeddedStore::open(dir.path(), "prop/6", rules).unwrap();
        for (p, expected) in checked {
            let got = runtime.block_on(reopened.retrieve(query_of(&p))).unwrap();
            let got: Vec<String> = got.hits.into_iter().map(|h| h.id).collect();
            prop_assert_eq!(got, expected, "after reopening, probe {:?}", p);
        }
    }
}

fn query_of(p: &Probe) -> Query {
    Query {
        slot: SLOTS[p.slot].into(),
        vector: unit(&p.vector).unwrap(),
        threshold: p.threshold,
        limit: p.limit,
        rank: if p.by_score {
            RankBy::Score
        } else {
            RankBy::Similarity
        },
    }
}
