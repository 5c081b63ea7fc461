//! Snapshots: taking one through gRPC (keeping the newest `snapshots_keep`), and restoring
//! one through Qdrant's REST recover call, the only way Qdrant offers.

use qdrant_client::qdrant::{DeleteSnapshotRequestBuilder, Filter};

use super::{QdrantStore, qdrant_err};
use crate::store::{SnapshotInfo, StoreError};

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

    /// [`TipStore::snapshot`](crate::store::TipStore::snapshot): snapshots the collection,
    /// then prunes old snapshots.
    pub(super) async fn take_snapshot(&self) -> Result<SnapshotInfo, StoreError> {
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

    /// [`TipStore::restore`](crate::store::TipStore::restore): recovers the collection from
    /// a known snapshot over REST and resets the eviction counts; returns the entries now
    /// stored.
    pub(super) async fn recover_snapshot(&self, id: String) -> Result<u64, StoreError> {
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
}
