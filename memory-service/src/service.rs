//! The `TipMemory` gRPC service: validate (wire.rs), embed what needs embedding, call the
//! store, answer. Generic over the [`TipStore`] backend.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use empo2_proto::memory::v1 as pb;
use empo2_proto::memory::v1::tip_memory_server::TipMemory;
use tonic::{Request, Response, Status};
use tracing::{Instrument, instrument};

use crate::config::{LimitsConfig, RulesConfig};
use crate::embed::Embedder;
use crate::error::MemoryError;
use crate::latency::Latency;
use crate::store::{NewEntry, Query, TipStore};
use crate::wire::{self, Key, Validator};

/// The tip memory service over a store `S`.
pub struct TipMemoryService<S> {
    store: S,
    embedder: Arc<dyn Embedder>,
    rules: RulesConfig,
    limits: LimitsConfig,
    latency: Arc<Latency>,
    /// The slots that hold something (loaded from the store on first need, reloaded after a
    /// restore), so a client cannot make the service hold more than `limits.max_slots`.
    slots: Mutex<Option<HashSet<String>>>,
}

impl<S: TipStore> TipMemoryService<S> {
    /// A service answering from `store`, embedding text with `embedder`.
    pub fn new(
        store: S,
        embedder: Arc<dyn Embedder>,
        rules: RulesConfig,
        limits: LimitsConfig,
    ) -> Self {
        Self {
            store,
            embedder,
            rules,
            limits,
            latency: Arc::default(),
            slots: Mutex::default(),
        }
    }

    /// Admits writes to `slots`: RESOURCE_EXHAUSTED when the new ones among them would take
    /// the service past `limits.max_slots`. Returns the new ones, to [`Self::unadmit`] when
    /// the write then fails.
    async fn admit<'a>(
        &self,
        slots: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<String>, MemoryError> {
        let loaded = self.slots.lock().expect("slots lock").is_some();
        if !loaded {
            let stored = self.store.slot_counts().await?;
            let mut known = self.slots.lock().expect("slots lock");
            known.get_or_insert_with(|| stored.into_iter().map(|c| c.slot).collect());
        }
        let mut known = self.slots.lock().expect("slots lock");
        let known = known.as_mut().expect("loaded above");
        let new: HashSet<&str> = slots.filter(|s| !known.contains(*s)).collect();
        if known.len() + new.len() > self.limits.max_slots {
            return Err(MemoryError::Store(crate::store::StoreError::Exhausted(
                format!(
                    "the memory holds {} slots; {} more would pass limits.max_slots = {}",
                    known.len(),
                    new.len(),
                    self.limits.max_slots
                ),
            )));
        }
        let new: Vec<String> = new.into_iter().map(str::to_string).collect();
        known.extend(new.iter().cloned());
        Ok(new)
    }

    /// Forgets slots admitted for a write that failed (it stored nothing).
    fn unadmit(&self, slots: &[String]) {
        if let Some(known) = self.slots.lock().expect("slots lock").as_mut() {
            for slot in slots {
                known.remove(slot);
            }
        }
    }

    /// Embeds what needs embedding and stores the entries.
    async fn store_entries(
        &self,
        pending: Vec<wire::PendingEntry>,
    ) -> Result<crate::store::InsertOutcome, MemoryError> {
        let keys = pending.iter().map(|p| p.key.clone()).collect();
        let vectors = self.vectors(keys).await?;
        let entries = pending
            .into_iter()
            .zip(vectors)
            .map(|(p, vector)| NewEntry {
                slot: p.slot,
                text: p.text,
                vector,
                score: p.score,
                policy_version: p.policy_version,
            })
            .collect();
        Ok(self.store.insert(entries).await?)
    }

    fn validator(&self) -> Validator<'_> {
        Validator {
            limits: &self.limits,
            rules: &self.rules,
            dims: self.embedder.dims(),
        }
    }

    /// Turns keys into unit vectors, embedding all texts in one blocking call.
    async fn vectors(&self, keys: Vec<Key>) -> Result<Vec<Vec<f32>>, MemoryError> {
        let texts: Vec<String> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Text(t) => Some(t.clone()),
                Key::Vector(_) => None,
            })
            .collect();
        let mut embedded = if texts.is_empty() {
            Vec::new()
        } else {
            let embedder = self.embedder.clone();
            let span = tracing::debug_span!("embed", texts = texts.len());
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                embedder.embed(&refs)
            })
            .instrument(span)
            .await
            .map_err(|e| MemoryError::Config(format!("embedding task failed: {e}")))??
        }
        .into_iter();
        Ok(keys
            .into_iter()
            .map(|k| match k {
                Key::Text(_) => embedded.next().expect("one vector per text"),
                Key::Vector(v) => v,
            })
            .collect())
    }

    /// Counts (and records) each state in order, its texts embedded together.
    async fn count_novelty(
        &self,
        states: Vec<wire::PendingNovelty>,
    ) -> Result<Vec<pb::NoveltyResponse>, MemoryError> {
        let recorded = states.iter().filter(|n| n.record).map(|n| n.slot.as_str());
        let admitted = self.admit(recorded).await?;
        let counted = async {
            let vectors = self
                .vectors(states.iter().map(|n| n.key.clone()).collect())
                .await?;
            let mut results = Vec::with_capacity(states.len());
            for (n, vector) in states.into_iter().zip(vectors) {
                let similar = self
                    .store
                    .novelty(n.slot, vector, n.threshold, n.record)
                    .await?;
                results.push(pb::NoveltyResponse {
                    similar: u32::try_from(similar).unwrap_or(u32::MAX),
                    reward: 1.0 / (similar as f32 + 1.0),
                });
            }
            Ok::<_, MemoryError>(results)
        };
        counted.await.inspect_err(|_| self.unadmit(&admitted))
    }

    async fn vector(&self, key: Key) -> Result<Vec<f32>, MemoryError> {
        Ok(self
            .vectors(vec![key])
            .await?
            .pop()
            .expect("one key, one vector"))
    }
}

#[tonic::async_trait]
impl<S: TipStore> TipMemory for TipMemoryService<S> {
    #[instrument(name = "memory.insert", skip_all, fields(entries = request.get_ref().entries.len()))]
    async fn insert(
        &self,
        request: Request<pb::InsertRequest>,
    ) -> Result<Response<pb::InsertResponse>, Status> {
        let _timer = self.latency.start("Insert");
        let pending = self.validator().insert(request.into_inner())?;
        let admitted = self.admit(pending.iter().map(|p| p.slot.as_str())).await?;
        let outcome = match self.store_entries(pending).await {
            Ok(outcome) => outcome,
            Err(err) => {
                self.unadmit(&admitted);
                return Err(err.into());
            }
        };
        metrics::counter!("empo2_memory_inserted_total")
            .increment(outcome.results.iter().filter(|r| !r.duplicate).count() as u64);
        metrics::counter!("empo2_memory_evicted_total").increment(outcome.evicted);
        Ok(Response::new(wire::insert_response(outcome)))
    }

    #[instrument(name = "memory.retrieve", skip_all, fields(slot = %empo2_proto::prefix(&request.get_ref().slot, 128), hits))]
    async fn retrieve(
        &self,
        request: Request<pb::RetrieveRequest>,
    ) -> Result<Response<pb::RetrieveResponse>, Status> {
        let _timer = self.latency.start("Retrieve");
        let q = self.validator().retrieve(request.into_inner())?;
        let query = Query {
            vector: self.vector(q.key).await?,
            slot: q.slot,
            threshold: q.threshold,
            limit: q.limit,
            rank: q.rank,
        };
        let retrieved = self
            .store
            .retrieve(query)
            .await
            .map_err(MemoryError::from)?;
        tracing::Span::current().record("hits", retrieved.hits.len());
        let outcome = if retrieved.hits.is_empty() {
            "miss"
        } else {
            "hit"
        };
        metrics::counter!("empo2_memory_retrievals_total", "outcome" => outcome).increment(1);
        Ok(Response::new(pb::RetrieveResponse {
            entries: retrieved
                .hits
                .into_iter()
                .map(wire::retrieved_entry)
                .collect(),
        }))
    }

    #[instrument(name = "memory.novelty", skip_all, fields(slot = %empo2_proto::prefix(&request.get_ref().slot, 128)))]
    async fn novelty(
        &self,
        request: Request<pb::NoveltyRequest>,
    ) -> Result<Response<pb::NoveltyResponse>, Status> {
        let _timer = self.latency.start("Novelty");
        let n = self.validator().novelty(request.into_inner())?;
        let mut results = self.count_novelty(vec![n]).await?;
        Ok(Response::new(results.pop().expect("one state, one result")))
    }

    #[instrument(name = "memory.novelty_batch", skip_all, fields(states = request.get_ref().states.len()))]
    async fn novelty_batch(
        &self,
        request: Request<pb::NoveltyBatchRequest>,
    ) -> Result<Response<pb::NoveltyBatchResponse>, Status> {
        let _timer = self.latency.start("NoveltyBatch");
        let states = self.validator().novelty_batch(request.into_inner())?;
        let results = self.count_novelty(states).await?;
        Ok(Response::new(pb::NoveltyBatchResponse { results }))
    }

    #[instrument(name = "memory.drop_slot", skip_all, fields(slot = %empo2_proto::prefix(&request.get_ref().slot, 128)))]
    async fn drop_slot(
        &self,
        request: Request<pb::DropSlotRequest>,
    ) -> Result<Response<pb::DropSlotResponse>, Status> {
        let _timer = self.latency.start("DropSlot");
        let pb::DropSlotRequest { slot } = request.into_inner();
        let slot = self.validator().slot("slot", slot)?;
        let deleted = self
            .store
            .drop_slot(slot.clone())
            .await
            .map_err(MemoryError::from)?;
        if let Some(known) = self.slots.lock().expect("slots lock").as_mut() {
            known.remove(&slot);
        }
        Ok(Response::new(pb::DropSlotResponse { deleted }))
    }

    #[instrument(name = "memory.snapshot", skip_all)]
    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let _timer = self.latency.start("Snapshot");
        let pb::SnapshotRequest { pin } = request.into_inner();
        let info = self.store.snapshot(pin).await.map_err(MemoryError::from)?;
        tracing::info!(snapshot = %info.id, entries = info.entries, pin, "snapshot taken");
        Ok(Response::new(pb::SnapshotResponse {
            snapshot_id: info.id,
            entries: info.entries,
        }))
    }

    #[instrument(name = "memory.restore", skip_all, fields(snapshot = %empo2_proto::prefix(&request.get_ref().snapshot_id, 64)))]
    async fn restore(
        &self,
        request: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        let _timer = self.latency.start("Restore");
        let pb::RestoreRequest { snapshot_id } = request.into_inner();
        let id = self.validator().snapshot_id(snapshot_id)?;
        let entries = self.store.restore(id).await.map_err(MemoryError::from)?;
        *self.slots.lock().expect("slots lock") = None;
        tracing::info!(entries, "snapshot restored");
        Ok(Response::new(pb::RestoreResponse { entries }))
    }

    #[instrument(name = "memory.release_snapshot", skip_all)]
    async fn release_snapshot(
        &self,
        request: Request<pb::ReleaseSnapshotRequest>,
    ) -> Result<Response<pb::ReleaseSnapshotResponse>, Status> {
        let _timer = self.latency.start("ReleaseSnapshot");
        let pb::ReleaseSnapshotRequest { snapshot_id } = request.into_inner();
        let id = self.validator().snapshot_id(snapshot_id)?;
        let was_pinned = self.store.release(id).await.map_err(MemoryError::from)?;
        Ok(Response::new(pb::ReleaseSnapshotResponse { was_pinned }))
    }

    #[instrument(name = "memory.stats", skip_all)]
    async fn stats(
        &self,
        _request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        let _timer = self.latency.start("Stats");
        let slots = self.store.slot_counts().await.map_err(MemoryError::from)?;
        let latency = self
            .latency
            .summary()
            .into_iter()
            .map(|m| pb::MethodLatency {
                method: m.method.to_string(),
                count: m.count,
                p50_us: m.p50_us,
                p99_us: m.p99_us,
            })
            .collect();
        Ok(Response::new(pb::StatsResponse {
            slots: slots.into_iter().map(wire::slot_stats).collect(),
            latency,
            backend: self.store.backend().to_string(),
            embedder: self.embedder.name().to_string(),
            dimension: self.embedder.dims() as u32,
        }))
    }
}
