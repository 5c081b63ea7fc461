//! The one place the memory service crosses `proto/`: requests are validated and turned into
//! domain types (every field named, so a new proto field fails to compile here), results are
//! turned back into messages. Anything invalid is `INVALID_ARGUMENT` naming the field.

use empo2_proto::memory::v1 as pb;

use crate::config::{LimitsConfig, RankBy, RulesConfig};
use crate::embed::l2_normalize;
use crate::error::MemoryError;
use crate::store::{Hit, InsertOutcome, SlotCounts};

/// A key to search or store by: text still to embed, or a ready unit vector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key {
    Text(String),
    Vector(Vec<f32>),
}

/// A validated entry whose key may still need embedding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingEntry {
    pub(crate) slot: String,
    pub(crate) text: String,
    pub(crate) key: Key,
    pub(crate) score: f32,
    pub(crate) policy_version: u64,
}

/// A validated retrieval.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingQuery {
    pub(crate) slot: String,
    pub(crate) key: Key,
    pub(crate) threshold: f32,
    pub(crate) limit: usize,
    pub(crate) rank: RankBy,
}

/// A validated novelty request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingNovelty {
    pub(crate) slot: String,
    pub(crate) key: Key,
    pub(crate) threshold: f32,
    pub(crate) record: bool,
}

/// Checks requests against the limits and the vector dimension.
pub(crate) struct Validator<'a> {
    pub(crate) limits: &'a LimitsConfig,
    pub(crate) rules: &'a RulesConfig,
    pub(crate) dims: usize,
}

fn invalid(message: String) -> MemoryError {
    MemoryError::InvalidArgument(message)
}

impl Validator<'_> {
    pub(crate) fn slot(&self, field: &str, slot: String) -> Result<String, MemoryError> {
        if slot.is_empty() {
            return Err(invalid(format!("{field} is empty")));
        }
        if slot.len() > self.limits.max_slot_bytes {
            return Err(invalid(format!(
                "{field} is {} bytes, more than the limit of {}",
                slot.len(),
                self.limits.max_slot_bytes
            )));
        }
        if let Some(c) = slot
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._:/-".contains(*c)))
        {
            return Err(invalid(format!(
                "{field} `{slot}` contains {c:?}; allowed are A-Z a-z 0-9 . _ : / -"
            )));
        }
        Ok(slot)
    }

    fn text(&self, field: &str, text: String) -> Result<String, MemoryError> {
        if text.trim().is_empty() {
            return Err(invalid(format!("{field} is empty")));
        }
        if text.len() > self.limits.max_text_bytes {
            return Err(invalid(format!(
                "{field} is {} bytes, more than the limit of {}",
                text.len(),
                self.limits.max_text_bytes
            )));
        }
        Ok(text)
    }

    fn vector(&self, field: &str, vector: pb::Vector) -> Result<Vec<f32>, MemoryError> {
        let pb::Vector { mut values } = vector;
        if values.len() != self.dims {
            return Err(invalid(format!(
                "{field} has {} dimensions, the service's embeddings have {}",
                values.len(),
                self.dims
            )));
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(invalid(format!(
                "{field}[{i}] is {}, not a finite number",
                values[i]
            )));
        }
        if !l2_normalize(&mut values) {
            return Err(invalid(format!(
                "{field} is the zero vector; it has no direction"
            )));
        }
        Ok(values)
    }

    fn threshold(&self, field: &str, value: Option<f32>, default: f32) -> Result<f32, MemoryError> {
        let t = value.unwrap_or(default);
        if !(-1.0..=1.0).contains(&t) {
            return Err(invalid(format!(
                "{field} is {t}; a cosine threshold lies in [-1, 1]"
            )));
        }
        Ok(t)
    }

    fn key(
        &self,
        field: &str,
        text: Option<String>,
        vector: Option<pb::Vector>,
    ) -> Result<Key, MemoryError> {
        match (text, vector) {
            (Some(text), None) => Ok(Key::Text(self.text(&format!("{field}.text"), text)?)),
            (None, Some(vector)) => Ok(Key::Vector(
                self.vector(&format!("{field}.vector"), vector)?,
            )),
            _ => Err(invalid(format!(
                "{field} is missing: give a text or a vector"
            ))),
        }
    }

    pub(crate) fn insert(
        &self,
        request: pb::InsertRequest,
    ) -> Result<Vec<PendingEntry>, MemoryError> {
        let pb::InsertRequest { entries } = request;
        if entries.is_empty() {
            return Err(invalid("entries is empty: nothing to insert".into()));
        }
        if entries.len() > self.limits.max_batch {
            return Err(invalid(format!(
                "entries has {} items, more than the batch limit of {}",
                entries.len(),
                self.limits.max_batch
            )));
        }
        entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let pb::InsertEntry {
                    slot,
                    text,
                    key,
                    score,
                    policy_version,
                } = entry;
                let field = format!("entries[{i}]");
                if !score.is_finite() {
                    return Err(invalid(format!(
                        "{field}.score is {score}, not a finite number"
                    )));
                }
                let (key_text, key_vector) = match key {
                    Some(pb::insert_entry::Key::KeyText(t)) => (Some(t), None),
                    Some(pb::insert_entry::Key::KeyVector(v)) => (None, Some(v)),
                    None => (None, None),
                };
                Ok(PendingEntry {
                    slot: self.slot(&format!("{field}.slot"), slot)?,
                    text: self.text(&format!("{field}.text"), text)?,
                    key: self.key(&format!("{field}.key"), key_text, key_vector)?,
                    // -0.0 becomes 0.0, so equal scores tie as the ranking rule says.
                    score: score + 0.0,
                    policy_version,
                })
            })
            .collect()
    }

    pub(crate) fn retrieve(
        &self,
        request: pb::RetrieveRequest,
    ) -> Result<PendingQuery, MemoryError> {
        let pb::RetrieveRequest {
            slot,
            query,
            threshold,
            limit,
            rank,
        } = request;
        let (text, vector) = match query {
            Some(pb::retrieve_request::Query::Text(t)) => (Some(t), None),
            Some(pb::retrieve_request::Query::Vector(v)) => (None, Some(v)),
            None => (None, None),
        };
        let limit = limit.unwrap_or(self.rules.limit);
        if limit == 0 || limit > self.limits.max_limit {
            return Err(invalid(format!(
                "limit is {limit}; it must be between 1 and {}",
                self.limits.max_limit
            )));
        }
        let rank = match pb::Rank::try_from(rank) {
            Ok(pb::Rank::Unspecified) => self.rules.rank_by,
            Ok(pb::Rank::Score) => RankBy::Score,
            Ok(pb::Rank::Similarity) => RankBy::Similarity,
            Err(_) => return Err(invalid(format!("rank {rank} is not a known Rank"))),
        };
        Ok(PendingQuery {
            slot: self.slot("slot", slot)?,
            key: self.key("query", text, vector)?,
            threshold: self.threshold("threshold", threshold, self.rules.threshold)?,
            limit: limit as usize,
            rank,
        })
    }

    pub(crate) fn novelty(
        &self,
        request: pb::NoveltyRequest,
    ) -> Result<PendingNovelty, MemoryError> {
        let pb::NoveltyRequest {
            slot,
            state,
            threshold,
            record,
        } = request;
        let (text, vector) = match state {
            Some(pb::novelty_request::State::Text(t)) => (Some(t), None),
            Some(pb::novelty_request::State::Vector(v)) => (None, Some(v)),
            None => (None, None),
        };
        Ok(PendingNovelty {
            slot: self.slot("slot", slot)?,
            key: self.key("state", text, vector)?,
            threshold: self.threshold("threshold", threshold, self.rules.novelty_threshold)?,
            record,
        })
    }

    pub(crate) fn novelty_batch(
        &self,
        request: pb::NoveltyBatchRequest,
    ) -> Result<Vec<PendingNovelty>, MemoryError> {
        let pb::NoveltyBatchRequest { states } = request;
        if states.is_empty() || states.len() > self.limits.max_batch {
            return Err(invalid(format!(
                "states has {} items; a batch holds 1 to {}",
                states.len(),
                self.limits.max_batch
            )));
        }
        states
            .into_iter()
            .enumerate()
            .map(|(i, state)| {
                self.novelty(state).map_err(|e| match e {
                    MemoryError::InvalidArgument(m) => invalid(format!("states[{i}]: {m}")),
                    other => other,
                })
            })
            .collect()
    }

    pub(crate) fn snapshot_id(&self, id: String) -> Result<String, MemoryError> {
        let valid = !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !id.starts_with('.');
        if valid {
            Ok(id)
        } else {
            Err(invalid(format!(
                "snapshot_id `{}` is not a snapshot id returned by Snapshot",
                empo2_proto::prefix(&id, 64)
            )))
        }
    }
}

pub(crate) fn insert_response(outcome: InsertOutcome) -> pb::InsertResponse {
    let InsertOutcome { results, evicted } = outcome;
    pb::InsertResponse {
        results: results
            .into_iter()
            .map(|r| pb::InsertResult {
                id: r.id,
                duplicate: r.duplicate,
            })
            .collect(),
        evicted,
    }
}

pub(crate) fn retrieved_entry(hit: Hit) -> pb::RetrievedEntry {
    let Hit {
        id,
        text,
        score,
        similarity,
        policy_version,
        created_unix_ms,
    } = hit;
    pb::RetrievedEntry {
        id,
        text,
        score,
        similarity,
        policy_version,
        created_unix_ms,
    }
}

pub(crate) fn slot_stats(counts: SlotCounts) -> pb::SlotStats {
    let SlotCounts {
        slot,
        tips,
        states,
        evictions,
    } = counts;
    pb::SlotStats {
        slot,
        tips,
        states,
        evictions,
    }
}
