//! Tip storage: the [`TipStore`] interface, its domain types, and the two backends that
//! pass the same conformance suite — [`EmbeddedStore`] (redb + exact in-memory index, the
//! default) and [`QdrantStore`] (a Qdrant server through `qdrant-client`).

mod embedded;
mod index;
mod qdrant;
mod record;

use std::future::Future;

pub use embedded::EmbeddedStore;
pub use qdrant::QdrantStore;

use crate::config::RankBy;

/// What a stored vector belongs to: a tip entry, or a visited state counted for novelty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// Tip entries (returned by retrieval).
    Tips,
    /// Visited states (counted by novelty).
    States,
}

/// An entry to store; already validated, its key vector unit-length.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// Slot (tenant).
    pub slot: String,
    /// Entry text (empty for states).
    pub text: String,
    /// Unit-length key vector.
    pub vector: Vec<f32>,
    /// Final episode score.
    pub score: f32,
    /// Policy version that produced it.
    pub policy_version: u64,
}

impl NewEntry {
    /// A visited state of `slot` (states have no text or score).
    pub fn state(slot: String, vector: Vec<f32>) -> Self {
        Self {
            slot,
            text: String::new(),
            vector,
            score: 0.0,
            policy_version: 0,
        }
    }
}

/// The outcome of one inserted entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// Id of the stored entry (the existing one for a duplicate).
    pub id: String,
    /// True if the text was already in the slot.
    pub duplicate: bool,
}

/// The outcome of an insert batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// One per requested entry, in order.
    pub results: Vec<Inserted>,
    /// Entries evicted to keep slots within the cap.
    pub evicted: u64,
}

/// A retrieval query; validated, vector unit-length.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Slot to search.
    pub slot: String,
    /// Unit-length query vector.
    pub vector: Vec<f32>,
    /// Strict lower bound on cosine similarity.
    pub threshold: f32,
    /// Most entries returned.
    pub limit: usize,
    /// Ordering.
    pub rank: RankBy,
}

/// One retrieved entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Entry id.
    pub id: String,
    /// Entry text.
    pub text: String,
    /// Stored score.
    pub score: f32,
    /// Cosine similarity to the query.
    pub similarity: f32,
    /// Policy version that wrote it.
    pub policy_version: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_unix_ms: u64,
}

/// A retrieval result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retrieved {
    /// Hits in rank order, at most `limit`.
    pub hits: Vec<Hit>,
}

/// Counts of one slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotCounts {
    /// Slot name.
    pub slot: String,
    /// Tips stored.
    pub tips: u64,
    /// States stored.
    pub states: u64,
    /// Entries evicted by the cap.
    pub evictions: u64,
}

/// A snapshot that was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Id to restore it by.
    pub id: String,
    /// Tips and states it holds.
    pub entries: u64,
}

/// Rules a store enforces on writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteRules {
    /// Most tips per slot (oldest evicted first).
    pub cap: usize,
    /// Most states per slot (oldest evicted first).
    pub state_cap: usize,
    /// Skip an entry whose text is already in its slot.
    pub dedup: bool,
    /// Unpinned snapshots kept; taking one more deletes the oldest unpinned one.
    pub snapshots_keep: usize,
}

/// Most snapshots pinned at once.
pub const MAX_PINNED: usize = 32;

/// Storage failures. Validation happens before a store is called, so these are not the
/// caller's fault except [`StoreError::NotFound`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A slot or snapshot does not exist; the caller asked for something absent.
    #[error("{0}")]
    NotFound(String),
    /// The embedded database failed; the operation had no effect (its transaction aborted).
    #[error("embedded database: {0}")]
    Database(#[from] redb::Error),
    /// The Qdrant server is unreachable, overloaded or timed out; the operation may be retried.
    #[error("qdrant: {0}")]
    Qdrant(String),
    /// The Qdrant server refused the request (e.g. a collection of another dimension); retrying
    /// will not help.
    #[error("qdrant refused: {0}")]
    Backend(String),
    /// A stored record or snapshot is unreadable; the data needs attention.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The store holds vectors of another embedder or dimension; refuse to mix them.
    #[error("incompatible store: {0}")]
    Incompatible(String),
    /// A bound on what clients can make the store hold is reached (e.g. [`MAX_PINNED`]).
    #[error("{0}")]
    Exhausted(String),
    /// A filesystem operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Every redb error converts (through `redb::Error`) into [`StoreError::Database`].
macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(e: $error) -> Self {
                Self::Database(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<redb::SetDurabilityError> for StoreError {
    fn from(e: redb::SetDurabilityError) -> Self {
        Self::Io(std::io::Error::other(e))
    }
}

/// The storage interface the service is written against. Implementations enforce the write
/// rules (dedup, caps) and compute retrieval exactly (threshold, then rank, then limit).
pub trait TipStore: Send + Sync + 'static {
    /// Backend name for stats ("embedded", "qdrant").
    fn backend(&self) -> &'static str;

    /// Stores tip entries atomically and durably; evicts the oldest past the cap.
    fn insert(
        &self,
        entries: Vec<NewEntry>,
    ) -> impl Future<Output = Result<InsertOutcome, StoreError>> + Send;

    /// Tips of a slot above the threshold, ranked, limited.
    fn retrieve(&self, query: Query) -> impl Future<Output = Result<Retrieved, StoreError>> + Send;

    /// Counts stored states of `slot` with similarity above `threshold`; then, if `record`,
    /// stores this state.
    fn novelty(
        &self,
        slot: String,
        vector: Vec<f32>,
        threshold: f32,
        record: bool,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes a slot's tips and states; `NotFound` if it holds nothing.
    fn drop_slot(&self, slot: String) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Takes a durable, consistent snapshot of everything. A `pin`ned snapshot is kept until
    /// [`TipStore::release`], whatever `snapshots_keep` says; at most [`MAX_PINNED`] are
    /// pinned at once ([`StoreError::Exhausted`]).
    fn snapshot(&self, pin: bool) -> impl Future<Output = Result<SnapshotInfo, StoreError>> + Send;

    /// Unpins snapshot `id` (it is then kept or pruned like any other); returns whether it
    /// was pinned. `NotFound` if there is no such snapshot.
    fn release(&self, id: String) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces everything with a snapshot's contents; returns the entries now stored.
    fn restore(&self, id: String) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Counts per slot, sorted by slot name.
    fn slot_counts(&self) -> impl Future<Output = Result<Vec<SlotCounts>, StoreError>> + Send;
}

/// The EMPO² order of two candidates given as (score, similarity, id): by score descending,
/// ties by similarity descending, then by id; or by similarity, ties by id.
pub fn rank_order(rank: RankBy, a: (f32, f32, &str), b: (f32, f32, &str)) -> std::cmp::Ordering {
    let by_similarity = b.1.total_cmp(&a.1);
    let key = match rank {
        RankBy::Score => b.0.total_cmp(&a.0).then(by_similarity),
        RankBy::Similarity => by_similarity,
    };
    key.then_with(|| a.2.cmp(b.2))
}

/// Orders hits by [`rank_order`] and keeps the first `limit`.
pub fn rank_hits(mut hits: Vec<Hit>, rank: RankBy, limit: usize) -> Retrieved {
    hits.sort_by(|a, b| {
        rank_order(
            rank,
            (a.score, a.similarity, &a.id),
            (b.score, b.similarity, &b.id),
        )
    });
    hits.truncate(limit);
    Retrieved { hits }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new time-ordered entry id (UUIDv7): ids sort by creation time.
pub(crate) fn new_entry_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
