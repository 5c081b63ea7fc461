//! The exact in-memory index of the embedded store: per slot and namespace, the entries'
//! vectors in one contiguous buffer, scanned with a vectorised dot product. At the EMPO² cap
//! (1000 a slot) an exact scan is faster than any approximate index, and exact.

use std::collections::{HashMap, VecDeque};

use super::{Hit, Namespace, Query, Retrieved, SlotCounts, rank_order};
use crate::embed::dot;

/// What the index keeps of an entry besides its vector.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) seq: u64,
    pub(crate) id: String,
    pub(crate) score: f32,
    pub(crate) policy_version: u64,
    pub(crate) created_unix_ms: u64,
    pub(crate) text: String,
}

/// The entries of one slot in one namespace.
#[derive(Debug, Default)]
pub(crate) struct Shelf {
    metas: Vec<Meta>,
    vectors: Vec<f32>,
    /// Sequence numbers oldest first (inserts append larger ones).
    order: VecDeque<u64>,
    position: HashMap<u64, usize>,
    /// text → (id, seq) of the entry holding it (for dedup).
    by_text: HashMap<String, (String, u64)>,
}

impl Shelf {
    pub(crate) fn len(&self) -> usize {
        self.metas.len()
    }

    pub(crate) fn push(&mut self, meta: Meta, vector: &[f32]) {
        self.position.insert(meta.seq, self.metas.len());
        self.order.push_back(meta.seq);
        if !meta.text.is_empty() {
            self.by_text
                .insert(meta.text.clone(), (meta.id.clone(), meta.seq));
        }
        self.vectors.extend_from_slice(vector);
        self.metas.push(meta);
    }

    /// Removes the oldest entry.
    pub(crate) fn pop_oldest(&mut self) -> Option<Meta> {
        let seq = self.order.pop_front()?;
        let pos = self
            .position
            .remove(&seq)
            .expect("indexed seq has a position");
        let dims = self.vectors.len() / self.metas.len();
        let last = self.metas.len() - 1;
        if pos != last {
            self.vectors
                .copy_within(last * dims..(last + 1) * dims, pos * dims);
            self.position.insert(self.metas[last].seq, pos);
        }
        self.vectors.truncate(last * dims);
        let meta = self.metas.swap_remove(pos);
        if self
            .by_text
            .get(&meta.text)
            .is_some_and(|(_, seq)| *seq == meta.seq)
        {
            self.by_text.remove(&meta.text);
        }
        Some(meta)
    }

    /// Id and sequence number of the entry with exactly this text, if any.
    pub(crate) fn find_text(&self, text: &str) -> Option<(&str, u64)> {
        self.by_text.get(text).map(|(id, seq)| (id.as_str(), *seq))
    }

    /// The sequence number of the `n`-th oldest entry.
    pub(crate) fn nth_oldest(&self, n: usize) -> Option<u64> {
        self.order.get(n).copied()
    }

    pub(crate) fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.order.iter().copied()
    }

    /// Positions and similarities of entries strictly above `threshold`.
    fn scan<'a>(
        &'a self,
        query: &'a [f32],
        threshold: f32,
    ) -> impl Iterator<Item = (usize, f32)> + 'a {
        let dims = query.len();
        self.vectors
            .chunks_exact(dims.max(1))
            .enumerate()
            .map(move |(i, v)| (i, dot(query, v)))
            .filter(move |&(_, sim)| sim > threshold)
    }

    pub(crate) fn count_similar(&self, query: &[f32], threshold: f32) -> u64 {
        self.scan(query, threshold).count() as u64
    }

    /// Ranks the candidates by position and builds hits only for the `limit` kept.
    pub(crate) fn retrieve(&self, q: &Query) -> Retrieved {
        let mut candidates: Vec<(usize, f32)> = self.scan(&q.vector, q.threshold).collect();
        let key =
            |&(pos, sim): &(usize, f32)| (self.metas[pos].score, sim, self.metas[pos].id.as_str());
        candidates.sort_by(|a, b| rank_order(q.rank, key(a), key(b)));
        candidates.truncate(q.limit);
        let hits = candidates
            .into_iter()
            .map(|(pos, similarity)| {
                let m = &self.metas[pos];
                Hit {
                    id: m.id.clone(),
                    text: m.text.clone(),
                    score: m.score,
                    similarity,
                    policy_version: m.policy_version,
                    created_unix_ms: m.created_unix_ms,
                }
            })
            .collect();
        Retrieved { hits }
    }
}

/// Tips and states of one slot.
#[derive(Debug, Default)]
pub(crate) struct SlotIndex {
    pub(crate) tips: Shelf,
    pub(crate) states: Shelf,
    pub(crate) evictions: u64,
}

impl SlotIndex {
    pub(crate) fn shelf(&self, ns: Namespace) -> &Shelf {
        match ns {
            Namespace::Tips => &self.tips,
            Namespace::States => &self.states,
        }
    }

    pub(crate) fn shelf_mut(&mut self, ns: Namespace) -> &mut Shelf {
        match ns {
            Namespace::Tips => &mut self.tips,
            Namespace::States => &mut self.states,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tips.len() == 0 && self.states.len() == 0
    }
}

/// Every slot.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) slots: HashMap<String, SlotIndex>,
}

impl Index {
    pub(crate) fn shelf(&self, slot: &str, ns: Namespace) -> Option<&Shelf> {
        self.slots.get(slot).map(|s| s.shelf(ns))
    }

    pub(crate) fn entries(&self) -> u64 {
        self.slots
            .values()
            .map(|s| (s.tips.len() + s.states.len()) as u64)
            .sum()
    }

    pub(crate) fn counts(&self) -> Vec<SlotCounts> {
        let mut counts: Vec<SlotCounts> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.is_empty() || s.evictions > 0)
            .map(|(slot, s)| SlotCounts {
                slot: slot.clone(),
                tips: s.tips.len() as u64,
                states: s.states.len() as u64,
                evictions: s.evictions,
            })
            .collect();
        counts.sort_by(|a, b| a.slot.cmp(&b.slot));
        counts
    }
}
