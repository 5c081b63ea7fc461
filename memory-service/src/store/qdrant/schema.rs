//! How entries lie in the collection: the collection and its payload indexes, the point of an
//! entry (payload fields, insertion sequence), tip ids, and the payload filters every query
//! uses.

use std::sync::atomic::Ordering;

use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{
    Condition, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, Distance, FieldType,
    Filter, FloatIndexParamsBuilder, IntegerIndexParamsBuilder, KeywordIndexParamsBuilder, PointId,
    PointStruct, VectorParamsBuilder,
};
use qdrant_client::{Payload, QdrantError};

use super::{QdrantStore, qdrant_err};
use crate::store::{Namespace, NewEntry, StoreError, new_entry_id, now_unix_ms};

/// Namespace of the UUIDv5 ids of tips (any fixed UUID works; this one is ours).
const TIP_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5e6f_2a1c_9b1d_4c1e_8f3a_e3b0_c442_98fc);

/// The `ns` payload value of a namespace.
pub(super) fn ns_name(ns: Namespace) -> &'static str {
    match ns {
        Namespace::Tips => "tip",
        Namespace::States => "state",
    }
}

/// Exact keyword match (a plain string with spaces would become a full-text match).
pub(super) fn keyword(key: &str, value: &str) -> Condition {
    Condition::matches(key, MatchValue::Keyword(value.to_string()))
}

/// The entries of a slot: of one namespace, or of both if `ns` is `None`.
pub(super) fn slot_filter(slot: &str, ns: Option<Namespace>) -> Filter {
    let mut must = vec![keyword("slot", slot)];
    if let Some(ns) = ns {
        must.push(keyword("ns", ns_name(ns)));
    }
    Filter::must(must)
}

/// A point id as the entry id the service reports (empty if absent).
pub(super) fn id_string(id: Option<PointId>) -> String {
    match id.and_then(|i| i.point_id_options) {
        Some(PointIdOptions::Uuid(u)) => u,
        Some(PointIdOptions::Num(n)) => n.to_string(),
        None => String::new(),
    }
}

impl QdrantStore {
    /// Creates the collection (cosine vectors of `dims`) and its payload indexes if missing,
    /// then checks the collection's vectors.
    pub(super) async fn ensure_collection(&self, dims: u64) -> Result<(), StoreError> {
        let c = &self.client;
        let name = self.collection.as_str();
        self.create_if_missing(name, VectorParamsBuilder::new(dims, Distance::Cosine))
            .await?;
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

    /// Creates collection `name` with `vectors` unless it exists (or another replica creates
    /// it first).
    async fn create_if_missing(
        &self,
        name: &str,
        vectors: VectorParamsBuilder,
    ) -> Result<(), StoreError> {
        if self
            .client
            .collection_exists(name)
            .await
            .map_err(qdrant_err)?
        {
            return Ok(());
        }
        let created = self
            .client
            .create_collection(CreateCollectionBuilder::new(name).vectors_config(vectors))
            .await;
        match created {
            Err(QdrantError::ResponseError { status })
                if status.code() == tonic::Code::AlreadyExists =>
            {
                Ok(())
            }
            other => other.map(drop).map_err(qdrant_err),
        }
    }

    /// The side collection of what the store knows about itself: the embedding space that
    /// wrote it, and a record of each snapshot (see [`super::snapshot`]).
    pub(super) fn meta_collection(&self) -> String {
        format!("{}-meta", self.collection)
    }

    /// Creates the meta collection if missing.
    pub(super) async fn ensure_meta(&self) -> Result<(), StoreError> {
        let meta = self.meta_collection();
        self.create_if_missing(&meta, VectorParamsBuilder::new(1, Distance::Dot))
            .await
    }

    /// Records `space` (embedder/dims) as the one that writes this collection, or refuses
    /// when another one wrote it (vectors of two embedders do not compare). A collection
    /// written before spaces were recorded takes this one.
    pub(super) async fn check_space(&self, space: &str) -> Result<(), StoreError> {
        self.ensure_meta().await?;
        let id: PointId = uuid::Uuid::new_v5(&TIP_ID_NAMESPACE, b"embedding space")
            .to_string()
            .into();
        let got = self
            .client
            .get_points(
                qdrant_client::qdrant::GetPointsBuilder::new(
                    self.meta_collection(),
                    vec![id.clone()],
                )
                .with_payload(true),
            )
            .await
            .map_err(qdrant_err)?
            .result;
        let recorded = got
            .first()
            .and_then(|p| p.payload.get("space")?.as_str().cloned());
        match recorded {
            Some(recorded) if recorded == space => Ok(()),
            Some(recorded) => Err(StoreError::Incompatible(format!(
                "collection `{}` holds vectors of {recorded:?}, this service embeds with {space:?}",
                self.collection
            ))),
            None => {
                let payload = Payload::try_from(serde_json::json!({ "space": space }))
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                let point = PointStruct::new(id, vec![0.0f32], payload);
                self.client
                    .upsert_points(
                        qdrant_client::qdrant::UpsertPointsBuilder::new(
                            self.meta_collection(),
                            vec![point],
                        )
                        .wait(true),
                    )
                    .await
                    .map_err(qdrant_err)?;
                Ok(())
            }
        }
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

    /// The id of a new tip: with dedup, the UUIDv5 of slot and text (so a duplicate has the
    /// same id); without, a fresh time-ordered id.
    pub(super) fn tip_id(&self, e: &NewEntry) -> String {
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

    /// The point storing `entry` in namespace `ns` under `id`, stamped with the time and the
    /// next sequence number.
    pub(super) fn point(
        &self,
        ns: Namespace,
        id: &str,
        entry: &NewEntry,
    ) -> Result<PointStruct, StoreError> {
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
}
