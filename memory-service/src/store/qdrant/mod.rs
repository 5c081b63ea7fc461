//! The Qdrant backend: one collection for every slot, slots as payload-indexed tenants
//! (`slot`, keyword, `is_tenant`), tips and states told apart by `ns`. The EMPO² query runs in
//! Qdrant as one call: a prefetch searches the slot under the cosine threshold (its limit is
//! the cap, so the search is exact over the slot), then a formula re-ranks by the payload
//! `score`. Tips get deterministic ids (UUIDv5 of slot + text), so a duplicate is found by id.
//!
//! Differences from the embedded backend, all documented Qdrant behaviour: ties in `score` at
//! the limit are broken by Qdrant, not by similarity; an insert and the evictions it causes
//! are two operations, not one; eviction counts cover the time since this process started;
//! restoring a snapshot uses Qdrant's REST API (there is no gRPC recover call).
//!
//! One concern a file: [`schema`] (collection, payload, ids), [`query`] (retrieval and
//! novelty), [`write`](mod@write) (inserting tips, dropping slots), [`cap`] (counts and the
//! per-slot cap), [`snapshot`] (snapshots, their pins and their REST recovery).

mod cap;
mod query;
mod schema;
mod snapshot;
mod write;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use qdrant_client::{Qdrant, QdrantError};

use super::{
    InsertOutcome, NewEntry, Query, Retrieved, SlotCounts, SnapshotInfo, StoreError, TipStore,
    WriteRules, now_unix_ms,
};
use crate::config::QdrantConfig;

/// Tip store in a Qdrant collection.
pub struct QdrantStore {
    /// gRPC client of the server.
    client: Qdrant,
    /// The one collection holding every slot.
    collection: String,
    /// REST endpoint of the same server (snapshot recovery has no gRPC call).
    rest_url: String,
    /// API key, sent on gRPC and REST requests alike.
    api_key: Option<String>,
    /// Where the server keeps snapshots, as the server sees its filesystem.
    snapshots_path: String,
    /// Write rules (dedup, caps, snapshots kept).
    rules: WriteRules,
    /// Orders entries for oldest-first eviction: microseconds since the epoch, kept increasing.
    seq: AtomicU64,
    /// Entries (tips and states) evicted per slot by this process.
    evictions: Mutex<HashMap<String, u64>>,
    /// HTTP client for the REST calls.
    http: reqwest::Client,
    /// Held while snapshots are taken or released (and pruned): two taken at once could
    /// fall in one second, which Qdrant gives one name.
    snapshots: tokio::sync::Mutex<()>,
}

/// Transient failures (unreachable, overloaded, timed out) are retryable `Qdrant`; a refusal
/// of the request itself is `Backend`.
fn qdrant_err(e: QdrantError) -> StoreError {
    use tonic::Code;
    match &e {
        QdrantError::ResponseError { status }
            if !matches!(
                status.code(),
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
                    | Code::Cancelled
                    | Code::Unknown
            ) =>
        {
            StoreError::Backend(e.to_string())
        }
        _ => StoreError::Qdrant(e.to_string()),
    }
}

impl QdrantStore {
    /// Connects to the server and creates the collection and its payload indexes if missing.
    pub async fn connect(
        cfg: &QdrantConfig,
        space: &str,
        dims: usize,
        rules: WriteRules,
    ) -> Result<Self, StoreError> {
        let QdrantConfig {
            url,
            collection,
            api_key,
            rest_url,
            snapshots_path,
        } = cfg;
        let client = Qdrant::from_url(url)
            .api_key(api_key.clone())
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .skip_compatibility_check()
            .build()
            .map_err(qdrant_err)?;
        let store = Self {
            client,
            collection: collection.clone(),
            rest_url: if rest_url.is_empty() {
                snapshot::rest_url_of(url)
            } else {
                rest_url.clone()
            },
            api_key: api_key.clone(),
            snapshots_path: snapshots_path.clone(),
            rules,
            seq: AtomicU64::new(now_unix_ms() * 1000),
            evictions: Mutex::default(),
            http: reqwest::Client::new(),
            snapshots: tokio::sync::Mutex::new(()),
        };
        store.ensure_collection(dims as u64).await?;
        store.check_space(space).await?;
        tracing::info!(%url, collection = %store.collection, "connected to qdrant");
        Ok(store)
    }
}

impl TipStore for QdrantStore {
    fn backend(&self) -> &'static str {
        "qdrant"
    }

    async fn insert(&self, entries: Vec<NewEntry>) -> Result<InsertOutcome, StoreError> {
        self.insert_tips(entries).await
    }

    async fn retrieve(&self, query: Query) -> Result<Retrieved, StoreError> {
        self.retrieve_tips(query).await
    }

    async fn novelty(
        &self,
        slot: String,
        vector: Vec<f32>,
        threshold: f32,
        record: bool,
    ) -> Result<u64, StoreError> {
        let similar = self.similar_states(&slot, &vector, threshold).await?;
        if record {
            self.record_state(slot, vector).await?;
        }
        Ok(similar)
    }

    async fn drop_slot(&self, slot: String) -> Result<u64, StoreError> {
        self.delete_slot(slot).await
    }

    async fn snapshot(&self, pin: bool) -> Result<SnapshotInfo, StoreError> {
        self.take_snapshot(pin).await
    }

    async fn release(&self, id: String) -> Result<bool, StoreError> {
        self.release_snapshot(id).await
    }

    async fn restore(&self, id: String) -> Result<u64, StoreError> {
        self.recover_snapshot(id).await
    }

    async fn slot_counts(&self) -> Result<Vec<SlotCounts>, StoreError> {
        self.count_slots().await
    }
}
