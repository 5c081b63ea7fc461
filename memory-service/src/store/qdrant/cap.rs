//! Per-slot counts and the cap: exact point counts, the oldest-first eviction that keeps a
//! slot's tips or states within their cap, the eviction counters (kept by this process
//! only), and the per-slot counts reported in stats.

use std::collections::HashMap;

use qdrant_client::qdrant::{
    CountPointsBuilder, DeletePointsBuilder, Direction, FacetCountsBuilder, Filter, OrderByBuilder,
    PointId, PointsIdsList, ScrollPointsBuilder, facet_value,
};

use super::schema::{keyword, ns_name, slot_filter};
use super::{QdrantStore, qdrant_err};
use crate::store::{Namespace, SlotCounts, StoreError};

impl QdrantStore {
    /// Exactly how many points match `filter`.
    pub(super) async fn count(&self, filter: Filter) -> Result<u64, StoreError> {
        let r = self
            .client
            .count(
                CountPointsBuilder::new(&self.collection)
                    .filter(filter)
                    .exact(true),
            )
            .await
            .map_err(qdrant_err)?;
        Ok(r.result.map_or(0, |r| r.count))
    }

    /// Evicts the oldest entries of a slot beyond `cap`; returns how many.
    pub(super) async fn enforce_cap(
        &self,
        slot: &str,
        ns: Namespace,
        cap: usize,
    ) -> Result<u64, StoreError> {
        let count = self.count(slot_filter(slot, Some(ns))).await?;
        let excess = count.saturating_sub(cap as u64);
        if excess == 0 {
            return Ok(0);
        }
        let oldest = self
            .client
            .scroll(
                ScrollPointsBuilder::new(&self.collection)
                    .filter(slot_filter(slot, Some(ns)))
                    .order_by(OrderByBuilder::new("seq").direction(Direction::Asc as i32))
                    .limit(excess as u32)
                    .with_payload(false)
                    .with_vectors(false),
            )
            .await
            .map_err(qdrant_err)?;
        let ids: Vec<PointId> = oldest.result.into_iter().filter_map(|p| p.id).collect();
        let evicted = ids.len() as u64;
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(PointsIdsList { ids })
                    .wait(true),
            )
            .await
            .map_err(qdrant_err)?;
        *self
            .evictions
            .lock()
            .expect("evictions lock")
            .entry(slot.to_string())
            .or_default() += evicted;
        Ok(evicted)
    }

    /// Points of namespace `ns` per slot, exactly.
    async fn facet(&self, ns: Namespace) -> Result<Vec<(String, u64)>, StoreError> {
        let r = self
            .client
            .facet(
                FacetCountsBuilder::new(&self.collection, "slot")
                    .filter(Filter::must([keyword("ns", ns_name(ns))]))
                    .limit(1_000_000)
                    .exact(true),
            )
            .await
            .map_err(qdrant_err)?;
        Ok(r.hits
            .into_iter()
            .filter_map(|h| match h.value.and_then(|v| v.variant) {
                Some(facet_value::Variant::StringValue(s)) => Some((s, h.count)),
                _ => None,
            })
            .collect())
    }

    /// [`TipStore::slot_counts`](crate::store::TipStore::slot_counts): tips, states and this
    /// process's evictions of every slot that holds entries or has evicted some, sorted by
    /// slot name.
    pub(super) async fn count_slots(&self) -> Result<Vec<SlotCounts>, StoreError> {
        fn slot_entry(counts: &mut HashMap<String, SlotCounts>, slot: String) -> &mut SlotCounts {
            counts.entry(slot.clone()).or_insert_with(|| SlotCounts {
                slot,
                ..SlotCounts::default()
            })
        }
        let mut counts = HashMap::new();
        for (slot, n) in self.facet(Namespace::Tips).await? {
            slot_entry(&mut counts, slot).tips = n;
        }
        for (slot, n) in self.facet(Namespace::States).await? {
            slot_entry(&mut counts, slot).states = n;
        }
        for (slot, n) in self.evictions.lock().expect("evictions lock").iter() {
            slot_entry(&mut counts, slot.clone()).evictions = *n;
        }
        let mut counts: Vec<SlotCounts> = counts.into_values().collect();
        counts.sort_by(|a, b| a.slot.cmp(&b.slot));
        Ok(counts)
    }
}
