//! The memory service's configuration: one struct per concern, every field with a default.
//! `src/` layers file → environment → CLI flags on top of [`MemoryConfig::default`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything `empo2 memory` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Address to listen on. Loopback unless told otherwise.
    pub listen: SocketAddr,
    /// Where the tips are stored.
    pub backend: BackendKind,
    /// Directory of the embedded database and its snapshots.
    pub data_dir: PathBuf,
    /// The Qdrant server, when `backend = "qdrant"`.
    pub qdrant: QdrantConfig,
    /// EMPO² memory rules (ALGORITHM.md §3).
    pub rules: RulesConfig,
    /// How text is turned into vectors.
    pub embedder: EmbedderConfig,
    /// Size limits on requests.
    pub limits: LimitsConfig,
    /// Optional bearer token every request must carry (health checks excepted).
    pub auth_token: Option<String>,
    /// Optional TLS: PEM certificate chain and private key.
    pub tls: Option<TlsConfig>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            backend: BackendKind::Embedded,
            data_dir: PathBuf::from("data/memory"),
            qdrant: QdrantConfig::default(),
            rules: RulesConfig::default(),
            embedder: EmbedderConfig::default(),
            limits: LimitsConfig::default(),
            auth_token: None,
            tls: None,
        }
    }
}

impl MemoryConfig {
    /// Checks that the settings can work together; the service refuses to start otherwise.
    pub fn validate(&self) -> Result<(), String> {
        let r = &self.rules;
        let l = &self.limits;
        for (name, t) in [
            ("rules.threshold", r.threshold),
            ("rules.novelty_threshold", r.novelty_threshold),
        ] {
            if !(-1.0..=1.0).contains(&t) {
                return Err(format!("{name} is {t}; a cosine threshold lies in [-1, 1]"));
            }
        }
        if r.limit == 0 || r.limit > l.max_limit {
            return Err(format!(
                "rules.limit is {}; it must be between 1 and limits.max_limit ({})",
                r.limit, l.max_limit
            ));
        }
        if r.cap == 0 || r.state_cap == 0 || r.snapshots_keep == 0 {
            return Err(
                "rules.cap, rules.state_cap and rules.snapshots_keep must be at least 1".into(),
            );
        }
        if l.max_batch == 0
            || l.max_text_bytes == 0
            || l.max_slot_bytes == 0
            || l.max_message_bytes < 1024
        {
            return Err("limits must be positive (max_message_bytes at least 1024)".into());
        }
        if self.embedder.dims == 0 {
            return Err("embedder.dims must be at least 1".into());
        }
        empo2_proto::auth::check_token("auth_token", self.auth_token.as_deref())
    }
}

/// Storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// A durable embedded database in `data_dir` (the one-machine default).
    Embedded,
    /// A Qdrant server reached through `qdrant-client` (see [`QdrantConfig`]).
    Qdrant,
}

/// Where the Qdrant backend finds its server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QdrantConfig {
    /// gRPC URL, e.g. `http://qdrant:6334`.
    pub url: String,
    /// Collection holding every slot (created on first use).
    pub collection: String,
    /// Optional API key.
    pub api_key: Option<String>,
    /// REST URL, used only to recover snapshots, which Qdrant offers over REST alone. Empty:
    /// `url`'s host on the port below its gRPC port (6334 → 6333, Qdrant's convention).
    pub rest_url: String,
    /// The server's snapshot directory, as the server sees it.
    pub snapshots_path: String,
}

impl Default for QdrantConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:6334".into(),
            collection: "empo2_tips".into(),
            api_key: None,
            rest_url: String::new(),
            snapshots_path: "/qdrant/snapshots".into(),
        }
    }
}

/// How retrieved tips are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Stored episode score, descending (EMPO²).
    Score,
    /// Cosine similarity, descending.
    Similarity,
}

/// EMPO² memory rules; the defaults are the paper's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Keep entries whose cosine similarity to the query is strictly above this.
    pub threshold: f32,
    /// Return at most this many tips.
    pub limit: u32,
    /// Ranking of retrieved tips.
    pub rank_by: RankBy,
    /// Most tips a slot keeps; the oldest are evicted first.
    pub cap: u32,
    /// Most visited states a slot keeps for the novelty count; the oldest are evicted first.
    pub state_cap: u32,
    /// Skip an entry whose text is already in its slot.
    pub dedup: bool,
    /// A stored state counts as "seen" by Novelty when its similarity is above this.
    pub novelty_threshold: f32,
    /// Snapshots kept (a learner takes one per checkpoint); the oldest go first.
    pub snapshots_keep: u32,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            limit: 10,
            rank_by: RankBy::Score,
            cap: 1000,
            state_cap: 1000,
            dedup: true,
            novelty_threshold: 0.5,
            snapshots_keep: 10,
        }
    }
}

/// Which embedder turns text into vectors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedderConfig {
    /// `minilm` (all-MiniLM-L6-v2 in candle, 384-d) or `hash` (model-free hashed n-grams).
    pub kind: EmbedderKind,
    /// Model directory in Hugging Face layout (for `minilm`).
    pub model_dir: PathBuf,
    /// Vector dimension of the `hash` embedder (MiniLM is always 384).
    pub dims: usize,
    /// MiniLM vectors of this many recent inputs are kept (about 2.5 KB each; 0: none).
    pub cache_entries: usize,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            kind: EmbedderKind::Minilm,
            model_dir: PathBuf::from("models/all-MiniLM-L6-v2"),
            dims: 384,
            cache_entries: 4096,
        }
    }
}

/// Embedder choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedderKind {
    /// all-MiniLM-L6-v2: mean pooling, L2-normalised (the EMPO² reference's embedder).
    Minilm,
    /// Deterministic hashed word and character n-grams: no model, for tests and first runs.
    Hash,
}

/// Request size limits; anything larger is rejected before it is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most entries in one Insert.
    pub max_batch: usize,
    /// Most bytes in one text (entry text, key text or query).
    pub max_text_bytes: usize,
    /// Most bytes in a slot name.
    pub max_slot_bytes: usize,
    /// Largest `limit` a Retrieve may ask for.
    pub max_limit: u32,
    /// Largest encoded gRPC message accepted.
    pub max_message_bytes: usize,
    /// Most slots the memory holds; writes to more new ones are RESOURCE_EXHAUSTED (each
    /// slot holds at most `rules.cap` tips and `rules.state_cap` states).
    pub max_slots: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            max_text_bytes: 32 * 1024,
            max_slot_bytes: 128,
            max_limit: 1000,
            max_message_bytes: 16 * 1024 * 1024,
            max_slots: 65_536,
        }
    }
}

/// TLS files (the shared server builder's).
pub use empo2_proto::server::TlsConfig;
