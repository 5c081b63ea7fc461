//! Snapshots: taking one through gRPC (keeping the newest `snapshots_keep` unpinned ones),
//! pinning, and restoring one through Qdrant's REST recover call, the only way Qdrant offers.
//! Pins are points of a small side collection, `<collection>-pins` (one per pinned snapshot,
//! its name in the payload), so restoring the main collection leaves them as they are.

use qdrant_client::Payload;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, DeletePointsBuilder, DeleteSnapshotRequestBuilder, Distance, Filter,
    PointId, PointStruct, PointsIdsList, ScrollPointsBuilder, UpsertPointsBuilder,
    VectorParamsBuilder,
};

use super::{QdrantStore, qdrant_err};
use crate::store::{MAX_PINNED, SnapshotInfo, StoreError};

/// Namespace of the UUIDv5 point ids of pins.
const PIN_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x7a1e_3c55_0b8d_4f0e_9d62_5b7c_11aa_0c3e);

fn pin_id(snapshot: &str) -> PointId {
    uuid::Uuid::new_v5(&PIN_ID_NAMESPACE, snapshot.as_bytes())
        .to_string()
        .into()
}

/// The REST endpoint (port 6333) of the server whose gRPC endpoint is `url`.
pub(super) fn rest_url_of(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}:6333",
            uri.scheme_str().unwrap_or("http"),
            uri.host().unwrap_or("127.0.0.1")
        ),
        Err(_) => url.to_string(),
    }
}

impl QdrantStore {
    /// Deletes the oldest snapshots beyond `snapshots_keep`; a failure is logged, not
    /// returned (the snapshot just taken is fine).
    async fn prune_snapshots(&self) {
        let listed = self.client.list_snapshots(&self.collection).await;
        let Ok(listed) = listed else { return };
        let Ok(pinned) = self.pinned().await else {
            return;
        };
        let mut snapshots = listed.snapshot_descriptions;
        snapshots.retain(|d| !pinned.contains(&d.name));
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

    /// [`TipStore::snapshot`](crate::store::TipStore::snapshot): snapshots the collection,
    /// then prunes old snapshots.
    pub(super) async fn take_snapshot(&self, pin: bool) -> Result<SnapshotInfo, StoreError> {
        if pin && self.pinned().await?.len() >= MAX_PINNED {
            return Err(StoreError::Exhausted(format!(
                "{MAX_PINNED} snapshots are pinned already; release one first"
            )));
        }
        let entries = self.count(Filter::default()).await?;
        let description = self
            .client
            .create_snapshot(&self.collection)
            .await
            .map_err(qdrant_err)?
            .snapshot_description
            .ok_or_else(|| StoreError::Qdrant("create_snapshot returned no description".into()))?;
        if pin {
            self.ensure_pins().await?;
            let payload = Payload::try_from(serde_json::json!({ "snapshot": description.name }))
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let point = PointStruct::new(pin_id(&description.name), vec![0.0f32], payload);
            self.client
                .upsert_points(UpsertPointsBuilder::new(self.pins(), vec![point]).wait(true))
                .await
                .map_err(qdrant_err)?;
        }
        self.prune_snapshots().await;
        Ok(SnapshotInfo {
            id: description.name,
            entries,
        })
    }

    /// The side collection of pins.
    fn pins(&self) -> String {
        format!("{}-pins", self.collection)
    }

    /// Creates the pins collection if missing.
    async fn ensure_pins(&self) -> Result<(), StoreError> {
        let pins = self.pins();
        if self
            .client
            .collection_exists(&pins)
            .await
            .map_err(qdrant_err)?
        {
            return Ok(());
        }
        let created = self
            .client
            .create_collection(
                CreateCollectionBuilder::new(&pins)
                    .vectors_config(VectorParamsBuilder::new(1, Distance::Dot)),
            )
            .await;
        match created {
            Err(qdrant_client::QdrantError::ResponseError { status })
                if status.code() == tonic::Code::AlreadyExists =>
            {
                Ok(())
            }
            other => other.map(|_| ()).map_err(qdrant_err),
        }
    }

    /// The names of the pinned snapshots.
    async fn pinned(&self) -> Result<Vec<String>, StoreError> {
        let pins = self.pins();
        if !self
            .client
            .collection_exists(&pins)
            .await
            .map_err(qdrant_err)?
        {
            return Ok(Vec::new());
        }
        let scrolled = self
            .client
            .scroll(
                ScrollPointsBuilder::new(pins)
                    .limit(MAX_PINNED as u32 + 1)
                    .with_payload(true),
            )
            .await
            .map_err(qdrant_err)?;
        Ok(scrolled
            .result
            .into_iter()
            .filter_map(|p| p.payload.get("snapshot")?.as_str().map(|s| s.to_string()))
            .collect())
    }

    /// [`TipStore::release`](crate::store::TipStore::release): unpins a known snapshot, then
    /// prunes.
    pub(super) async fn release_snapshot(&self, id: String) -> Result<bool, StoreError> {
        self.known_snapshot(&id).await?;
        let was_pinned = self.pinned().await?.contains(&id);
        if was_pinned {
            let ids = PointsIdsList {
                ids: vec![pin_id(&id)],
            };
            self.client
                .delete_points(DeletePointsBuilder::new(self.pins()).points(ids).wait(true))
                .await
                .map_err(qdrant_err)?;
        }
        self.prune_snapshots().await;
        Ok(was_pinned)
    }

    /// `NotFound` unless the collection has a snapshot named `id`.
    async fn known_snapshot(&self, id: &str) -> Result<(), StoreError> {
        let known = self
            .client
            .list_snapshots(&self.collection)
            .await
            .map_err(qdrant_err)?
            .snapshot_descriptions
            .into_iter()
            .any(|d| d.name == id);
        if known {
            return Ok(());
        }
        Err(StoreError::NotFound(format!(
            "no snapshot `{id}` of collection `{}`",
            self.collection
        )))
    }

    /// [`TipStore::restore`](crate::store::TipStore::restore): recovers the collection from
    /// a known snapshot over REST and resets the eviction counts; returns the entries now
    /// stored.
    pub(super) async fn recover_snapshot(&self, id: String) -> Result<u64, StoreError> {
        self.known_snapshot(&id).await?;
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
}
