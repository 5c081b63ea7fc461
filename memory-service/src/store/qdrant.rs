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

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vector_output::Vector as OutVector;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, DeleteSnapshotRequestBuilder, Direction, Distance, Expression,
    FacetCountsBuilder, FieldType, Filter, FloatIndexParamsBuilder, FormulaBuilder,
    GetPointsBuilder, IntegerIndexParamsBuilder, KeywordIndexParamsBuilder, OrderByBuilder,
    PointId, PointStruct, PointsIdsList, PrefetchQueryBuilder, Query as QdrantQuery,
    QueryPointsBuilder, ScoredPoint, ScrollPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
    facet_value,
};
use qdrant_client::{Payload, Qdrant, QdrantError};

use super::{
    Hit, InsertOutcome, Inserted, Namespace, NewEntry, Query, Retrieved, SlotCounts, SnapshotInfo,
    StoreError, TipStore, WriteRules, new_entry_id, now_unix_ms, rank_hits,
};
use crate::config::{QdrantConfig, RankBy};
use crate::embed::dot;

/// Namespace of the UUIDv5 ids of tips (any fixed UUID works; this one is ours).
const TIP_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5e6f_2a1c_9b1d_4c1e_8f3a_e3b0_c442_98fc);

/// Tip store in a Qdrant collection.
pub struct QdrantStore {
    client: Qdrant,
    collection: String,
    rest_url: String,
    api_key: Option<String>,
    snapshots_path: String,
    rules: WriteRules,
    /// Orders entries for oldest-first eviction: microseconds since the epoch, kept increasing.
    seq: AtomicU64,
    evictions: Mutex<HashMap<String, u64>>,
    http: reqwest::Client,
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

/// Qdrant keeps scores at or above `score_threshold`; EMPO² keeps those strictly above.
fn strictly_above(threshold: f32) -> f32 {
    threshold.next_up()
}

/// The REST endpoint (port 6333) of the server whose gRPC endpoint is `url`.
fn rest_url_of(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}:6333",
            uri.scheme_str().unwrap_or("http"),
            uri.host().unwrap_or("127.0.0.1")
        ),
        Err(_) => url.to_string(),
    }
}

fn ns_name(ns: Namespace) -> &'static str {
    match ns {
        Namespace::Tips => "tip",
        Namespace::States => "state",
    }
}

/// Exact keyword match (a plain string with spaces would become a full-text match).
fn keyword(key: &str, value: &str) -> Condition {
    Condition::matches(key, MatchValue::Keyword(value.to_string()))
}

fn slot_filter(slot: &str, ns: Option<Namespace>) -> Filter {
    let mut must = vec![keyword("slot", slot)];
    if let Some(ns) = ns {
        must.push(keyword("ns", ns_name(ns)));
    }
    Filter::must(must)
}

fn id_string(id: Option<PointId>) -> String {
    match id.and_then(|i| i.point_id_options) {
        Some(PointIdOptions::Uuid(u)) => u,
        Some(PointIdOptions::Num(n)) => n.to_string(),
        None => String::new(),
    }
}

impl QdrantStore {
    /// Connects to the server and creates the collection and its payload indexes if missing.
    pub async fn connect(
        cfg: &QdrantConfig,
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
                rest_url_of(url)
            } else {
                rest_url.clone()
            },
            api_key: api_key.clone(),
            snapshots_path: snapshots_path.clone(),
            rules,
            seq: AtomicU64::new(now_unix_ms() * 1000),
            evictions: Mutex::default(),
            http: reqwest::Client::new(),
        };
        store.ensure_collection(dims as u64).await?;
        tracing::info!(%url, collection = %store.collection, "connected to qdrant");
        Ok(store)
    }

    async fn ensure_collection(&self, dims: u64) -> Result<(), StoreError> {
        let c = &self.client;
        let name = self.collection.as_str();
        if !c.collection_exists(name).await.map_err(qdrant_err)? {
            let created = c
                .create_collection(
                    CreateCollectionBuilder::new(name)
                        .vectors_config(VectorParamsBuilder::new(dims, Distance::Cosine)),
                )
                .await;
            match created {
                // Another replica created it first.
                Err(QdrantError::ResponseError { status })
                    if status.code() == tonic::Code::AlreadyExists => {}
                other => {
                    other.map_err(qdrant_err)?;
                }
            }
        }
        self.check_dimension(dims).await?;
        let indexes = [
            CreateFieldIndexCollectionBuilder::new(name, "slot", FieldType::Keyword)
                .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true)),
            CreateFieldIndexCollectionBuilder::new(name, "ns", FieldType::Keyword),
            CreateFieldIndexCollectionBuilder::new(name, "score", FieldType::Float)
                .field_index_params(FloatIndexParamsBuilder::new()),
            CreateFieldIndexCollectionBuilder::new(name, "seq", FieldType::Integer)
                .field_index_params(IntegerIndexParamsBuilder::new(true, true)),
        ];
        for index in indexes {
            c.create_field_index(index.wait(true))
                .await
                .map_err(qdrant_err)?;
        }
        Ok(())
    }

    /// Refuses a collection whose vectors are not `dims`-dimensional cosine vectors.
    async fn check_dimension(&self, dims: u64) -> Result<(), StoreError> {
        use qdrant_client::qdrant::vectors_config::Config;
        let info = self
            .client
            .collection_info(&self.collection)
            .await
            .map_err(qdrant_err)?;
        let params = info
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config);
        match params {
            Some(Config::Params(p)) if p.size == dims && p.distance == Distance::Cosine as i32 => {
                Ok(())
            }
            other => Err(StoreError::Incompatible(format!(
                "collection `{}` holds {other:?}, but the service needs {dims}-d cosine vectors",
                self.collection
            ))),
        }
    }

    /// A strictly increasing sequence number, close to the time in microseconds.
    fn next_seq(&self) -> u64 {
        let now = now_unix_ms() * 1000;
        let update = |prev: u64| Some((prev + 1).max(now));
        let prev = self
            .seq
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, update)
            .expect("always Some");
        update(prev).expect("always Some")
    }

    fn point(&self, ns: Namespace, id: &str, entry: &NewEntry) -> Result<PointStruct, StoreError> {
        let payload: Payload = serde_json::json!({
            "ns": ns_name(ns),
            "slot": entry.slot,
            "text": entry.text,
            "score": entry.score,
            "policy_version": entry.policy_version,
            "created_unix_ms": now_unix_ms(),
            "seq": self.next_seq(),
        })
        .try_into()
        .map_err(qdrant_err)?;
        Ok(PointStruct::new(
            id.to_string(),
            entry.vector.clone(),
            payload,
        ))
    }

    async fn count(&self, filter: Filter) -> Result<u64, StoreError> {
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
    async fn enforce_cap(&self, slot: &str, ns: Namespace, cap: usize) -> Result<u64, StoreError> {
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

    async fn upsert(&self, points: Vec<PointStruct>, wait: bool) -> Result<(), StoreError> {
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(wait))
            .await
            .map_err(qdrant_err)?;
        Ok(())
    }

    fn hit(point: ScoredPoint, query: &[f32]) -> Hit {
        let text = |key: &str| {
            point
                .payload
                .get(key)
                .and_then(|v| v.as_str())
                .cloned()
                .unwrap_or_default()
        };
        let number = |key: &str| {
            point
                .payload
                .get(key)
                .and_then(|v| v.as_double().or_else(|| v.as_integer().map(|i| i as f64)))
        };
        let similarity = point
            .vectors
            .as_ref()
            .and_then(|v| v.get_vector())
            .and_then(|v| match v {
                OutVector::Dense(d) => Some(dot(query, &d.data)),
                _ => None,
            })
            .unwrap_or(point.score);
        Hit {
            id: id_string(point.id.clone()),
            text: text("text"),
            score: number("score").unwrap_or(0.0) as f32,
            similarity,
            policy_version: number("policy_version").unwrap_or(0.0) as u64,
            created_unix_ms: number("created_unix_ms").unwrap_or(0.0) as u64,
        }
    }

    /// Deletes the oldest snapshots beyond `snapshots_keep`; a failure is logged, not
    /// returned (the snapshot just taken is fine).
    async fn prune_snapshots(&self) {
        let listed = self.client.list_snapshots(&self.collection).await;
        let Ok(listed) = listed else { return };
        let mut snapshots = listed.snapshot_descriptions;
        snapshots.sort_by_key(|d| d.creation_time.map(|t| (t.seconds, t.nanos)));
        let excess = snapshots
            .len()
            .saturating_sub(self.rules.snapshots_keep.max(1));
        for old in &snapshots[..excess] {
            let request = DeleteSnapshotRequestBuilder::new(&self.collection, &old.name);
            if let Err(e) = self.client.delete_snapshot(request).await {
                tracing::warn!(snapshot = %old.name, "could not delete old snapshot: {e}");
            }
        }
    }

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
}

impl TipStore for QdrantStore {
    fn backend(&self) -> &'static str {
        "qdrant"
    }

    async fn insert(&self, entries: Vec<NewEntry>) -> Result<InsertOutcome, StoreError> {
        let ids: Vec<String> = entries
            .iter()
            .map(|e| {
                if self.rules.dedup {
                    uuid::Uuid::new_v5(
                        &TIP_ID_NAMESPACE,
                        format!("{}\0{}", e.slot, e.text).as_bytes(),
                    )
                } else {
                    new_entry_id()
                }
                .hyphenated()
                .to_string()
            })
            .collect();
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

    async fn retrieve(&self, query: Query) -> Result<Retrieved, StoreError> {
        let filter = slot_filter(&query.slot, Some(Namespace::Tips));
        let builder = QueryPointsBuilder::new(&self.collection)
            .limit(query.limit as u64)
            .with_payload(true)
            .with_vectors(true);
        let builder = match query.rank {
            RankBy::Score => builder
                .add_prefetch(
                    PrefetchQueryBuilder::default()
                        .query(QdrantQuery::new_nearest(query.vector.clone()))
                        .filter(filter)
                        .score_threshold(strictly_above(query.threshold))
                        .limit(self.rules.cap as u64),
                )
                .query(QdrantQuery::new_formula(
                    FormulaBuilder::new(Expression::variable("score")).add_default("score", 0.0),
                )),
            RankBy::Similarity => builder
                .query(QdrantQuery::new_nearest(query.vector.clone()))
                .filter(filter)
                .score_threshold(strictly_above(query.threshold)),
        };
        let points = self.client.query(builder).await.map_err(qdrant_err)?.result;
        let hits = points
            .into_iter()
            .map(|p| Self::hit(p, &query.vector))
            .collect();
        Ok(rank_hits(hits, query.rank, query.limit))
    }

    async fn novelty(
        &self,
        slot: String,
        vector: Vec<f32>,
        threshold: f32,
        record: bool,
    ) -> Result<u64, StoreError> {
        let similar = self
            .client
            .query(
                QueryPointsBuilder::new(&self.collection)
                    .query(QdrantQuery::new_nearest(vector.clone()))
                    .filter(slot_filter(&slot, Some(Namespace::States)))
                    .score_threshold(strictly_above(threshold))
                    .limit(self.rules.state_cap.max(1) as u64)
                    .with_payload(false),
            )
            .await
            .map_err(qdrant_err)?
            .result
            .len() as u64;
        if record {
            let state = NewEntry::state(slot.clone(), vector);
            let point = self.point(
                Namespace::States,
                &new_entry_id().hyphenated().to_string(),
                &state,
            )?;
            self.upsert(vec![point], true).await?;
            if let Err(e) = self
                .enforce_cap(&slot, Namespace::States, self.rules.state_cap)
                .await
            {
                tracing::warn!(%slot, "state eviction failed, retried on the next visit: {e}");
            }
        }
        Ok(similar)
    }

    async fn drop_slot(&self, slot: String) -> Result<u64, StoreError> {
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

    async fn snapshot(&self) -> Result<SnapshotInfo, StoreError> {
        let entries = self.count(Filter::default()).await?;
        let description = self
            .client
            .create_snapshot(&self.collection)
            .await
            .map_err(qdrant_err)?
            .snapshot_description
            .ok_or_else(|| StoreError::Qdrant("create_snapshot returned no description".into()))?;
        self.prune_snapshots().await;
        Ok(SnapshotInfo {
            id: description.name,
            entries,
        })
    }

    async fn restore(&self, id: String) -> Result<u64, StoreError> {
        let known = self
            .client
            .list_snapshots(&self.collection)
            .await
            .map_err(qdrant_err)?
            .snapshot_descriptions
            .into_iter()
            .any(|d| d.name == id);
        if !known {
            return Err(StoreError::NotFound(format!(
                "no snapshot `{id}` of collection `{}`",
                self.collection
            )));
        }
        let url = format!(
            "{}/collections/{}/snapshots/recover?wait=true",
            self.rest_url, self.collection
        );
        let location = format!("file://{}/{}/{}", self.snapshots_path, self.collection, id);
        let mut request = self
            .http
            .put(&url)
            .json(&serde_json::json!({ "location": location, "priority": "snapshot" }));
        if let Some(key) = &self.api_key {
            request = request.header("api-key", key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| StoreError::Qdrant(format!("recover {url}: {e}")))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(StoreError::Qdrant(format!(
                "recover {url}: {status}: {body}"
            )));
        }
        self.evictions.lock().expect("evictions lock").clear();
        self.count(Filter::default()).await
    }

    async fn slot_counts(&self) -> Result<Vec<SlotCounts>, StoreError> {
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
