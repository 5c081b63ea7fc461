//! Weight broadcast: a version is serialised once (safetensors) and its bytes are cut into
//! chunks, each with its CRC32C, the whole version's SHA-256 and the id of the model it
//! belongs to; the [`Assembler`] on the receiving side puts a version back together and
//! accepts it only whole and intact. A [`ModelSpec`] says what to build to load it.

use bytes::Bytes;
use empo2_proto::learner::v1 as pb;
use sha2::{Digest, Sha256};

/// Bytes per chunk (well under gRPC's 4 MiB default message limit).
pub const CHUNK_BYTES: usize = 1 << 20;

/// What a subscriber builds before it loads weights: the policy's `config.json` and
/// `tokenizer.json` (as the learner's `Model` call returns them), and their id, which every
/// weights chunk carries, so a subscriber notices when the learner trains another model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// `config.json`.
    pub config_json: String,
    /// `tokenizer.json`.
    pub tokenizer_json: String,
    /// First 16 hex digits of the SHA-256 of both texts.
    pub id: String,
}

impl ModelSpec {
    /// The spec of a model, with its id.
    pub fn new(config_json: String, tokenizer_json: String) -> Self {
        let mut hasher = Sha256::new();
        for text in [&config_json, &tokenizer_json] {
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        let id = hasher.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            config_json,
            tokenizer_json,
            id,
        }
    }
}

/// Who publishes weights: the run (kept across resumes) and the learner process (new at
/// every start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// The run's id.
    pub run_id: String,
    /// This learner process's id.
    pub instance: String,
}

/// One published policy version.
#[derive(Debug, Clone)]
pub struct Published {
    /// Its version.
    pub version: u64,
    /// Its safetensors bytes.
    pub bytes: Bytes,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
    /// The [`ModelSpec::id`] of the model the weights fit.
    pub model_id: String,
    /// The run the weights belong to.
    pub run_id: String,
    /// The learner process that published them.
    pub learner_instance: String,
}

impl Published {
    /// Stamps `bytes` as `version` of model `model_id`, published by `publisher`.
    pub fn new(version: u64, bytes: Vec<u8>, model_id: &str, publisher: &Publisher) -> Self {
        let sha256 = Sha256::digest(&bytes).into();
        Self {
            version,
            bytes: Bytes::from(bytes),
            sha256,
            model_id: model_id.to_string(),
            run_id: publisher.run_id.clone(),
            learner_instance: publisher.instance.clone(),
        }
    }

    /// The chunks of this version, in order (shared slices of the one buffer, no copies).
    pub fn chunks(&self) -> impl Iterator<Item = pb::WeightsChunk> + '_ {
        let total = self.bytes.len().div_ceil(CHUNK_BYTES).max(1);
        (0..total).map(move |index| {
            let start = index * CHUNK_BYTES;
            let end = (start + CHUNK_BYTES).min(self.bytes.len());
            let data = self.bytes.slice(start..end);
            pb::WeightsChunk {
                version: self.version,
                index: index as u32,
                total_chunks: total as u32,
                total_bytes: self.bytes.len() as u64,
                crc32c: crc32c::crc32c(&data),
                data,
                sha256: self.sha256.to_vec(),
                model_id: self.model_id.clone(),
                run_id: self.run_id.clone(),
                learner_instance: self.learner_instance.clone(),
            }
        })
    }
}

/// Why a chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("weights chunk {index} of version {version}: {reason}")]
pub struct ChunkError {
    /// The version it claimed.
    pub version: u64,
    /// Its index.
    pub index: u32,
    /// What was wrong.
    pub reason: String,
}

/// Puts versions back together from chunks.
/// The SHA-256 is computed as chunks arrive, so hashing overlaps the transfer.
#[derive(Default)]
pub struct Assembler {
    version: u64,
    next: u32,
    buffer: Vec<u8>,
    hasher: Sha256,
}

impl Assembler {
    /// Takes the next chunk; returns the version when this chunk completes it. Chunks of a
    /// version come in order; a chunk that starts a new version discards an unfinished one.
    pub fn push(&mut self, chunk: pb::WeightsChunk) -> Result<Option<Published>, ChunkError> {
        let fail = |reason: String| ChunkError {
            version: chunk.version,
            index: chunk.index,
            reason,
        };
        if chunk.index == 0 {
            self.version = chunk.version;
            self.next = 0;
            self.buffer = Vec::with_capacity(chunk.total_bytes.min(1 << 34) as usize);
            self.hasher = Sha256::new();
        }
        if chunk.version != self.version || chunk.index != self.next {
            return Err(fail(format!(
                "expected chunk {} of version {}",
                self.next, self.version
            )));
        }
        if crc32c::crc32c(&chunk.data) != chunk.crc32c {
            return Err(fail("CRC32C mismatch".into()));
        }
        self.buffer.extend_from_slice(&chunk.data);
        self.hasher.update(&chunk.data);
        self.next += 1;
        if self.next < chunk.total_chunks {
            return Ok(None);
        }
        let bytes = std::mem::take(&mut self.buffer);
        if bytes.len() as u64 != chunk.total_bytes {
            return Err(fail(format!(
                "{} bytes received, {} announced",
                bytes.len(),
                chunk.total_bytes
            )));
        }
        let sha256: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if sha256[..] != chunk.sha256[..] {
            return Err(fail("SHA-256 of the version does not match".into()));
        }
        Ok(Some(Published {
            version: chunk.version,
            bytes: Bytes::from(bytes),
            sha256,
            model_id: chunk.model_id,
            run_id: chunk.run_id,
            learner_instance: chunk.learner_instance,
        }))
    }
}
