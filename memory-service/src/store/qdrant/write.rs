//! Writes of tips: inserting a batch (dedup by deterministic id, then the cap), upserting
//! points, and dropping a slot.

use std::collections::HashSet;

use qdrant_client::qdrant::{
    DeletePointsBuilder, GetPointsBuilder, PointId, PointStruct, UpsertPointsBuilder,
};

use super::schema::{id_string, slot_filter};
use super::{QdrantStore, qdrant_err};
use crate::store::{InsertOutcome, Inserted, Namespace, NewEntry, StoreError};

impl QdrantStore {
    /// Upserts `points`; with `wait`, returns once they are applied.
    pub(super) async fn upsert(
        &self,
        points: Vec<PointStruct>,
        wait: bool,
    ) -> Result<(), StoreError> {
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(wait))
            .await
            .map_err(qdrant_err)?;
        Ok(())
    }

    /// [`TipStore::insert`](crate::store::TipStore::insert): stores the batch's new tips
    /// (with dedup, a tip whose id is stored or earlier in the batch is a duplicate), then
    /// evicts the oldest beyond the cap in each slot written.
    pub(super) async fn insert_tips(
        &self,
        entries: Vec<NewEntry>,
    ) -> Result<InsertOutcome, StoreError> {
        let ids: Vec<String> = entries.iter().map(|e| self.tip_id(e)).collect();
        let existing: HashSet<String> = if self.rules.dedup {
            let lookup: Vec<PointId> = ids.iter().map(|id| id.clone().into()).collect();
            self.client
                .get_points(
                    GetPointsBuilder::new(&self.collection, lookup)
                        .with_payload(false)
                        .with_vectors(false),
                )
                .await
                .map_err(qdrant_err)?
                .result
                .into_iter()
                .map(|p| id_string(p.id))
                .collect()
        } else {
            HashSet::new()
        };
        let mut seen = HashSet::new();
        let mut points = Vec::new();
        let mut results = Vec::with_capacity(entries.len());
        let mut slots = HashSet::new();
        for (entry, id) in entries.iter().zip(ids) {
            let duplicate = existing.contains(&id) || !seen.insert(id.clone());
            if !duplicate {
                points.push(self.point(Namespace::Tips, &id, entry)?);
                slots.insert(entry.slot.clone());
            }
            results.push(Inserted { id, duplicate });
        }
        if !points.is_empty() {
            self.upsert(points, true).await?;
        }
        // The entries are stored: a failed eviction must not report the insert as failed
        // (a retry would duplicate it); the next insert into the slot evicts again.
        let mut evicted = 0;
        for slot in slots {
            match self
                .enforce_cap(&slot, Namespace::Tips, self.rules.cap)
                .await
            {
                Ok(n) => evicted += n,
                Err(e) => {
                    tracing::warn!(%slot, "eviction after insert failed, retried on the next insert: {e}")
                }
            }
        }
        Ok(InsertOutcome { results, evicted })
    }

    /// [`TipStore::drop_slot`](crate::store::TipStore::drop_slot): deletes the slot's tips
    /// and states and forgets its eviction count; `NotFound` if it holds nothing.
    pub(super) async fn delete_slot(&self, slot: String) -> Result<u64, StoreError> {
        let count = self.count(slot_filter(&slot, None)).await?;
        if count == 0 {
            return Err(StoreError::NotFound(format!("slot `{slot}` holds nothing")));
        }
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(slot_filter(&slot, None))
                    .wait(true),
            )
            .await
            .map_err(qdrant_err)?;
        self.evictions.lock().expect("evictions lock").remove(&slot);
        Ok(count)
    }
}
