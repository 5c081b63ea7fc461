//! Snapshots: taking one through gRPC (keeping the newest `snapshots_keep` unpinned ones),
//! pinning, and restoring one through Qdrant's REST recover call, the only way Qdrant offers.
//! Each snapshot taken is recorded in the side collection `<collection>-meta` (its name, when
//! it was taken to the nanosecond, and whether it is pinned), so restoring the main
//! collection leaves the records as they are, and retention knows the order of snapshots
//! taken within one second (Qdrant's `creation_time` has whole seconds).

use qdrant_client::Payload;
use qdrant_client::qdrant::{
    DeletePointsBuilder, DeleteSnapshotRequestBuilder, Filter, PointId, PointStruct, PointsIdsList,
    ScrollPointsBuilder, UpsertPointsBuilder,
};

use super::{QdrantStore, qdrant_err};
use crate::store::{MAX_PINNED, SnapshotInfo, StoreError};

/// Namespace of the UUIDv5 point ids of snapshot records.
const RECORD_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x7a1e_3c55_0b8d_4f0e_9d62_5b7c_11aa_0c3e);

/// Most snapshot records read at once (the kept, the pinned, and a margin).
const MAX_RECORDS: u32 = 4096;

fn record_id(snapshot: &str) -> PointId {
    uuid::Uuid::new_v5(&RECORD_ID_NAMESPACE, snapshot.as_bytes())
        .to_string()
        .into()
}

fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// What the side collection knows of one snapshot.
struct Record {
    name: String,
    taken_ns: i64,
    pinned: bool,
}

/// The REST endpoint of the server whose gRPC endpoint is `url`: the same host, on the port
/// below the gRPC port (Qdrant's 6333 / 6334 convention; 6333 when the URL names no port).
pub(super) fn rest_url_of(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!(
            "{}://{}:{}",
            uri.scheme_str().unwrap_or("http"),
            uri.host().unwrap_or("127.0.0.1"),
            uri.port_u16().map_or(6333, |p| p.saturating_sub(1))
        ),
        Err(_) => url.to_string(),
    }
}

impl QdrantStore {
    /// Deletes the oldest unpinned snapshots beyond `snapshots_keep` (in the order they were
    /// taken; snapshots without a record, older ones, first by `creation_time`); a failure is
    /// logged, not returned (the snapshot just taken is fine).
    async fn prune_snapshots(&self) {
        let listed = self.client.list_snapshots(&self.collection).await;
        let Ok(listed) = listed else { return };
        let records = match self.records().await {
            Ok(records) => records,
            Err(e) => return tracing::warn!("cannot read the snapshot records: {e}"),
        };
        let record = |name: &str| records.iter().find(|r| r.name == name);
        // Records of snapshots that are gone (deleted by hand, lost) would count as pins.
        for orphan in records.iter().filter(|r| {
            !listed
                .snapshot_descriptions
                .iter()
                .any(|d| d.name == r.name)
        }) {
            self.delete_record(&orphan.name).await;
        }
        let mut snapshots: Vec<(bool, i64, String)> = listed
            .snapshot_descriptions
            .into_iter()
            .filter(|d| !record(&d.name).is_some_and(|r| r.pinned))
            .map(|d| match record(&d.name) {
                Some(r) => (true, r.taken_ns, d.name),
                None => (false, d.creation_time.map_or(0, |t| t.seconds), d.name),
            })
            .collect();
        snapshots.sort();
        let excess = snapshots
            .len()
            .saturating_sub(self.rules.snapshots_keep.max(1));
        for (_, _, name) in &snapshots[..excess] {
            let request = DeleteSnapshotRequestBuilder::new(&self.collection, name);
            if let Err(e) = self.client.delete_snapshot(request).await {
                tracing::warn!(snapshot = %name, "could not delete old snapshot: {e}");
                continue;
            }
            self.delete_record(name).await;
        }
    }

    /// Deletes the record of snapshot `name`; a failure is logged.
    async fn delete_record(&self, name: &str) {
        let ids = PointsIdsList {
            ids: vec![record_id(name)],
        };
        let deleted = self
            .client
            .delete_points(DeletePointsBuilder::new(self.meta_collection()).points(ids))
            .await;
        if let Err(e) = deleted {
            tracing::warn!(snapshot = %name, "could not delete its record: {e}");
        }
    }

    /// [`TipStore::snapshot`](crate::store::TipStore::snapshot): snapshots the collection,
    /// records it, then prunes old snapshots.
    pub(super) async fn take_snapshot(&self, pin: bool) -> Result<SnapshotInfo, StoreError> {
        let _one_at_a_time = self.snapshots.lock().await;
        self.ensure_meta().await?;
        let records = self.records().await?;
        if pin && records.iter().filter(|r| r.pinned).count() >= MAX_PINNED {
            return Err(StoreError::Exhausted(format!(
                "{MAX_PINNED} snapshots are pinned already; release one first"
            )));
        }
        // Qdrant names a snapshot by the second it was taken in, so a second snapshot within
        // the same second would replace the first (pinned or not): wait for the next second.
        let newest = records.iter().map(|r| r.taken_ns).max();
        let now = unix_ns();
        if let Some(newest) = newest
            && newest.div_euclid(1_000_000_000) >= now.div_euclid(1_000_000_000)
        {
            let rest = 1_000_000_000 - now.rem_euclid(1_000_000_000);
            tokio::time::sleep(std::time::Duration::from_nanos(rest as u64 + 5_000_000)).await;
        }
        let entries = self.count(Filter::default()).await?;
        let description = self
            .client
            .create_snapshot(&self.collection)
            .await
            .map_err(qdrant_err)?
            .snapshot_description
            .ok_or_else(|| StoreError::Qdrant("create_snapshot returned no description".into()))?;
        // Another replica may have taken one in the same second (the same name): keep its pin.
        let pinned_before = records
            .iter()
            .any(|r| r.name == description.name && r.pinned);
        self.write_record(&Record {
            name: description.name.clone(),
            taken_ns: unix_ns(),
            pinned: pin || pinned_before,
        })
        .await?;
        self.prune_snapshots().await;
        Ok(SnapshotInfo {
            id: description.name,
            entries,
        })
    }

    async fn write_record(&self, record: &Record) -> Result<(), StoreError> {
        let payload = Payload::try_from(serde_json::json!({
            "snapshot": record.name,
            "taken_ns": record.taken_ns,
            "pinned": record.pinned,
        }))
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        let point = PointStruct::new(record_id(&record.name), vec![0.0f32], payload);
        self.client
            .upsert_points(UpsertPointsBuilder::new(self.meta_collection(), vec![point]).wait(true))
            .await
            .map_err(qdrant_err)?;
        Ok(())
    }

    /// Every snapshot record (none before the first snapshot).
    async fn records(&self) -> Result<Vec<Record>, StoreError> {
        let name = self.meta_collection();
        if !self
            .client
            .collection_exists(&name)
            .await
            .map_err(qdrant_err)?
        {
            return Ok(Vec::new());
        }
        let scrolled = self
            .client
            .scroll(
                ScrollPointsBuilder::new(name)
                    .limit(MAX_RECORDS)
                    .with_payload(true),
            )
            .await
            .map_err(qdrant_err)?;
        Ok(scrolled
            .result
            .into_iter()
            .filter_map(|p| {
                Some(Record {
                    name: p.payload.get("snapshot")?.as_str()?.to_string(),
                    taken_ns: p.payload.get("taken_ns")?.as_integer()?,
                    pinned: p.payload.get("pinned")?.as_bool()?,
                })
            })
            .collect())
    }

    /// [`TipStore::release`](crate::store::TipStore::release): unpins a known snapshot, then
    /// prunes.
    pub(super) async fn release_snapshot(&self, id: String) -> Result<bool, StoreError> {
        let _one_at_a_time = self.snapshots.lock().await;
        self.known_snapshot(&id).await?;
        let records = self.records().await?;
        let pinned = records.into_iter().find(|r| r.name == id && r.pinned);
        let was_pinned = pinned.is_some();
        if let Some(record) = pinned {
            self.write_record(&Record {
                pinned: false,
                ..record
            })
            .await?;
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
